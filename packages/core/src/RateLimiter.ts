/**
 * Token buckets with several named limits, acquired all at once.
 *
 * A limiter holds named limits, e.g. `{ requests: 500 per minute, tokens:
 * 90_000 per minute }`, kept per key in a {@link RateLimiterStore}. `acquire`
 * waits until every limit can pay its share and takes them all at the same
 * instant (no limit is charged while another one is still short).
 *
 * What Effect already gives, and why this module exists:
 * - `effect/RateLimiter` is a single token bucket whose refill is a chain of
 *   sleeps; it drifts below the configured rate and lets bursts through (the
 *   benchmark in `bench/` shows 311 starts in a 1 s window at 200/s).
 * - `@effect/experimental/RateLimiter` has the right shape (a store behind a
 *   Tag, Clock-driven, an error refined by `reason`) and is what this module
 *   mirrors so a later move to Effect 4's `effect/persistence` is a swap. But it
 *   takes one limit per call (requests and tokens cannot be taken together),
 *   cannot refund an interrupted waiter, and has no reconcile, sync or penalize.
 *
 * So this module adds: all-or-nothing across limits (nothing is charged
 * until every limit can pay); FIFO fairness (callers on a key wait in one
 * line, whatever they take, and only its head waits for the buckets, so a
 * large cost is never starved by small ones and a dequeue is O(1)); an
 * interrupted waiter leaves having paid nothing; `reconcile`, `refund`,
 * `sync` and `penalize`; `admissibleIn`, when a cost could be admitted,
 * asked of the store without charging (its `peek` mode).
 * Each limit is a GCRA bucket (`internal/gcra.ts`): refill is computed from
 * elapsed `Clock` time, and the head charges at its due time even when its
 * timer fires late, so a backlog runs at the configured rate. A sliding log of
 * admissions keeps the catch-up after a late timer from putting more than
 * `capacity + limit - 1` into a window (see {@link LimitOptions}); it delays
 * real admissions but does not move the schedule.
 *
 * The line is per process: with a shared store (Redis), processes share the
 * buckets but each keeps its own line.
 *
 * A limiter made by {@link make} also keeps two capabilities that only the
 * Executor uses, and that are not part of this interface: dating a charge back
 * to the admission a queued request waited behind, and telling the sliding log
 * when the admitted work really began (`internal/rateLimiter.ts`,
 * `acquireWaiting` and `began`). Any other object implementing
 * {@link RateLimiterShape} works with the Executor too, without them.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { InvalidOptionsError } from "./InvalidOptions.js"
import * as internal from "./internal/rateLimiter.js"
import type { RateLimiterError } from "./internal/rateLimiterError.js"
import type { BucketSnapshot, RateLimiterStore, Receipt } from "./RateLimiterStore.js"

/**
 * One token bucket: `limit` units per `interval`, holding at most `capacity`
 * (the burst; defaults to `limit`).
 *
 * Besides the bucket, a sliding log keeps a backlog that catches up on timers
 * that fired late from bunching: each round of `capacity + limit - 1` units
 * is scheduled no sooner than `interval + windowMargin` after the round
 * before it, and no window of `interval + windowMargin / 2` of real time (on
 * the Clock) ever sees more. The margin (default 5 ms) is room for what
 * happens between an admission and the start of the work it admits (a
 * scheduler turn) and for timers that fire late, so that real starts keep to
 * the window too and late timers cost the rate nothing. A longer pause
 * before the work starts is covered when the Executor runs the work: it tells
 * the limiter as each attempt begins, and the log counts it from then. The
 * margin is what a saturated limit gives up: at most `windowMargin` per
 * `interval` (5 ms per second is 0.5 %, per minute under 0.01 %). `0` keeps
 * the rate exact to the limiter's own Clock readings, with no such room.
 *
 * @since 0.1.0
 * @category models
 */
export interface LimitOptions {
  readonly limit: number
  readonly interval: Duration.DurationInput
  readonly capacity?: number | undefined
  readonly windowMargin?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Names this limiter's keys in a shared store. Two limiters with the same
   * name on one store share their buckets (that is how processes share a
   * Redis limit). Defaults to a name unique to this process.
   */
  readonly name?: string | undefined
  readonly limits: Readonly<Record<string, LimitOptions>>
}

/**
 * What a call costs. A number charges every limit that much; a record charges
 * each named limit its amount and every limit it does not name 1, so
 * `{ tokens: 1200 }` on a `{ requests, tokens }` limiter costs 1 request and
 * 1,200 tokens.
 *
 * @since 0.1.0
 * @category models
 */
export type Cost = number | Readonly<Record<string, number>>

/**
 * @since 0.1.0
 * @category models
 */
export interface KeyOptions {
  /** Which bucket set to charge. Defaults to `"default"`. */
  readonly key?: string | undefined
}

/**
 * The options of `acquire`: which key.
 *
 * @since 0.1.0
 * @category models
 */
export type AcquireOptions = KeyOptions

/**
 * A paid acquisition: what was charged, to which key, and when.
 * Hand it to `reconcile` once the real cost is known.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reservation {
  readonly key: string
  /** The charge per limit, by limit name. */
  readonly costs: Readonly<Record<string, number>>
  /** When it was charged (ms on the limiter's Clock). */
  readonly at: number
  /** How long the caller had to wait for it (ms). */
  readonly waited: number
  /**
   * What the store needs to refund it exactly: one plain receipt per limit, in
   * configuration order (`null` where nothing was charged).
   */
  readonly receipts: ReadonlyArray<Receipt | null>
}

/**
 * @since 0.1.0
 * @category models
 */
export type TryAcquireResult =
  | { readonly _tag: "Admitted"; readonly reservation: Reservation }
  | { readonly _tag: "Delayed"; readonly retryAfter: Duration.Duration }

/**
 * What a server said about one limit: how much is left and, optionally, when
 * it is full again.
 *
 * @since 0.1.0
 * @category models
 */
export interface SyncInfo {
  readonly remaining: number
  readonly resetAfter?: Duration.DurationInput | undefined
}

export {
  /**
   * Why an acquisition failed: `CostExceedsCapacity` (it could never be
   * admitted), `InvalidCost`, `InvalidDuration`, `UnknownLimit`, `StoreFailure`.
   * None is `retryable`: the others would fail the same way again, and a
   * `StoreFailure` is the store's outage policy's to handle, not a retry loop's.
   *
   * @since 0.1.0
   * @category errors
   */
  RateLimiterError
} from "./internal/rateLimiterError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface RateLimiterShape {
  readonly name: string
  /** The limit names, in the order they were configured. */
  readonly limitNames: ReadonlyArray<string>
  /**
   * Waits until every limit can pay, then pays them all at once. Callers on
   * one key are served first come, first served, whatever each takes (a
   * caller that finds anyone waiting queues behind them); interrupting a
   * waiting caller takes it out of line, having paid nothing.
   */
  readonly acquire: (cost?: Cost, options?: AcquireOptions) => Effect.Effect<Reservation, RateLimiterError>
  /**
   * Pays only if every limit can pay now and nobody is waiting ahead on the
   * key; otherwise says how long it would take, and pays nothing.
   */
  readonly tryAcquire: (cost?: Cost, options?: KeyOptions) => Effect.Effect<TryAcquireResult, RateLimiterError>
  /**
   * How long from now until `cost` could be admitted on the key (`Duration.zero`:
   * now), charging nothing and changing nothing: it counts every limit's level,
   * the blocks `penalize` and `sync` set, the sliding log, and the callers
   * already waiting in the key's line (served first, so after them). It is
   * the query behind `tryAcquire`'s delay, without its charge: a caller that
   * waits this long and then acquires is admitted at once, as long as nothing
   * else took from the key meanwhile. With callers in line, their costs are
   * counted as one charge after the buckets' current state: exact for one
   * limit; with several limits, or behind a block, the line's own spacing can
   * make the real admission later than answered. A cost above a limit's
   * capacity fails as `acquire` does.
   */
  readonly admissibleIn: (cost?: Cost, options?: KeyOptions) => Effect.Effect<Duration.Duration, RateLimiterError>
  /**
   * Gives a whole reservation back (a call admitted but never made): what of
   * it has not refilled yet, which is all of it while the key has a backlog.
   */
  readonly refund: (reservation: Reservation) => Effect.Effect<void, RateLimiterError>
  /**
   * Charges the difference when more was used than reserved; gives back the
   * difference when less was (at most what of the reservation has not refilled yet).
   */
  readonly reconcile: (reservation: Reservation, actual: Cost) => Effect.Effect<void, RateLimiterError>
  /**
   * Lowers one limit's local view to what the server reported. Nothing
   * `remaining` blocks the key until room comes back: when the oldest of its
   * own admissions leaves the window (the server's oldest has left by then),
   * or at `resetAfter` (the server's window empty), whichever is sooner.
   */
  readonly sync: (limit: string, info: SyncInfo, options?: KeyOptions) => Effect.Effect<void, RateLimiterError>
  /**
   * Admits nothing on this key for `duration` (e.g. a `Retry-After`). A call
   * that costs nothing on every limit is not held.
   */
  readonly penalize: (duration: Duration.DurationInput, options?: KeyOptions) => Effect.Effect<void, RateLimiterError>
  /** Every limit's state on one key, now. */
  readonly state: (options?: KeyOptions) => Effect.Effect<ReadonlyArray<BucketSnapshot>, RateLimiterError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class RateLimiter extends Context.Tag("@sluice/core/RateLimiter")<RateLimiter, RateLimiterShape>() {}

/**
 * Marks a limiter made by {@link make}.
 *
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: typeof internal.TypeId = internal.TypeId

/**
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * Whether `u` is a limiter made by {@link make} (a wrapper that copies its
 * fields is not one).
 *
 * @since 0.1.0
 * @category guards
 */
export const isRateLimiter: (u: unknown) => u is RateLimiterShape = internal.isRateLimiter

/**
 * Builds a limiter over the {@link RateLimiterStore} in context. Bad options
 * fail with an `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<RateLimiterShape, InvalidOptionsError, RateLimiterStore> =
  internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<RateLimiter, InvalidOptionsError, RateLimiterStore> =>
  Layer.effect(RateLimiter, make(options))

/**
 * Reads the options through `Config`, then validates them like {@link layer}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<RateLimiter, ConfigError.ConfigError | InvalidOptionsError, RateLimiterStore> =>
  Layer.effect(RateLimiter, Effect.flatMap(Config.unwrap(config), make))
