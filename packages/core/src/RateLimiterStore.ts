/**
 * Where token-bucket state lives. The RateLimiter decides *what* to take; the
 * store applies it atomically to the buckets of one key. Two stores: memory
 * (here) and Redis (`@sluice/redis`, one Lua script per operation).
 *
 * Effect gave us `Context.Tag`, `Layer`, `Clock` and `forkScoped` (the idle-key
 * sweeper). `@effect/experimental` has a RateLimiterStore too, but its shape is
 * one limit per call (`tokenBucket({ key, limit, tokens })`); this store takes
 * all the buckets of a key in one call, which is what makes a multi-limit
 * acquire all-or-nothing, and adds `charge` and `refund` (reconcile), `sync`
 * and `block` (server feedback), and `began` (the sliding log's real starts),
 * which that store has no room for.
 *
 * **The contract a store keeps** (the memory store keeps it; a network store
 * such as Redis must, and `RateLimiterStoreConformance` in `@sluice/testing`
 * checks it against any store):
 *
 * - *Plain values.* Every argument and every answer is JSON: strings, finite
 *   numbers, arrays and plain records (`null` where an array has no entry),
 *   never an object whose identity matters or a function. A bucket's whole
 *   configuration (`BucketSpec`) comes with each call, so a store keeps no
 *   configuration of its own; state is per key and bucket name.
 * - *Receipts name, they do not point.* A receipt holds the bucket's `tat` after
 *   the charge (`paidUntil`), its refund total then (`credited`), the bucket's
 *   `generation` (different for every life of a bucket under one name: an
 *   evicted and re-created bucket must not honour old receipts; a counter that
 *   never goes back, not one kept in the evicted state) and the charge's
 *   `admission`: its number among the bucket's admissions (1, 2, 3, ... per
 *   generation). `refund` and `began` find the sliding-log entry by that number.
 * - *One call, one atomic step, one round trip.* Each operation reads and
 *   writes every bucket it names (all of one key) as one step that no other
 *   operation on the key interleaves with (a Lua script; the memory store is
 *   synchronous). `reserve` checks every bucket and charges all or none in that
 *   step, so an `acquire` of any number of limits is one call.
 * - *Time.* Every operation that reads time takes `now`: the caller's Clock in
 *   fractional milliseconds. Absolute times in arguments (`notBefore`, `until`)
 *   and answers (`at`, `chargeAt`, `blockedUntil`) are on that clock. A store
 *   shared by processes whose clocks disagree may compute in its own time
 *   (Redis `TIME`), but then shifts every absolute time by (its time - `now`)
 *   on the way in and back on the way out of the same call, so a caller only
 *   ever sees its own clock; what only the store reads again (a receipt) may
 *   stay in the store's time. Times are not rounded: a charge dated a fraction
 *   of a millisecond early or late is a different schedule (a Lua script gets
 *   full-precision numbers, e.g. as strings, not through cjson's 14 digits).
 * - *The arithmetic is `gcra.ts`'s*: the same `tat`, `blockedUntil`, refund
 *   credits and sliding log (`interval + windowMargin` long, at most
 *   `windowLimit` units), with the same float comparisons, so every store gives
 *   the same answers to the same calls.
 * - *Eviction is invisible.* A store may drop a key once every bucket of it is
 *   idle: full (`tat <= now`), unblocked, and with no admission left in its
 *   sliding window; a dropped key is a fresh one. It never drops one in debt,
 *   blocked, or with admissions in the window (Redis: an expiry at the latest
 *   of those times). `inspect` creates no state. `size` counts the keys that
 *   hold state.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { BucketSpec, Receipt } from "./internal/gcra.js"
import * as internal from "./internal/memoryStore.js"

export type {
  /**
   * A bucket as the store receives it (`BucketSpec`), and what a charge on it answers (`Receipt`).
   *
   * @since 0.1.0
   * @category models
   */
  BucketSpec,
  /**
   * A bucket as the store receives it (`BucketSpec`), and what a charge on it answers (`Receipt`).
   *
   * @since 0.1.0
   * @category models
   */
  Receipt
} from "./internal/gcra.js"

/**
 * How a reservation is taken:
 * - `"ifDue"`: charge every bucket at once if all of them hold their cost now
 *   (all-or-nothing), at the earliest moment they did, but not before `notBefore`;
 * - `"peek"`: never charge, only answer when it would be due.
 *
 * @since 0.1.0
 * @category models
 */
export type ReserveMode = "ifDue" | "peek"

/**
 * @since 0.1.0
 * @category models
 */
export interface ReserveRequest {
  readonly key: string
  readonly buckets: ReadonlyArray<BucketSpec>
  /** One cost per bucket, in the same order. */
  readonly costs: ReadonlyArray<number>
  readonly now: number
  /**
   * The earliest time the charge may be dated (at most `now`). A caller that
   * slept until its due time passes the date the store answered for it
   * (`chargeAt`, else `at`), so that a late timer does not cost refill; a
   * caller that waited behind an earlier admission may pass that one's date;
   * anyone else passes `now`.
   */
  readonly notBefore: number
  readonly mode: ReserveMode
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ReserveResult {
  /**
   * If charged, the time the charge is dated (at most now; earlier than now
   * when it was due earlier by the schedule, see `notBefore`). If not, when it
   * will be due: a time after now.
   */
  readonly at: number
  /**
   * If not charged: the time the charge will be dated once due, by the
   * buckets' schedule (at most `at`; earlier when only the sliding log holds
   * it back, behind an admission that was itself late). A caller that waits
   * until `at` passes it as `notBefore`. Omitted: `at`.
   */
  readonly chargeAt?: number | undefined
  readonly charged: boolean
  /** When charged: one receipt per bucket (`null` where the cost was 0), for a later refund or `began`. */
  readonly receipts?: ReadonlyArray<Receipt | null>
}

/**
 * A bucket as the store sees it at one instant.
 *
 * @since 0.1.0
 * @category models
 */
export interface BucketSnapshot {
  readonly name: string
  readonly capacity: number
  /** Units available now (negative while paying off an over-charge). */
  readonly available: number
  /** The time until which the bucket is blocked by `penalize` or `sync` (0 if not). */
  readonly blockedUntil: number
}

/**
 * @since 0.1.0
 * @category errors
 */
export class RateLimiterStoreError extends Schema.TaggedError<RateLimiterStoreError>(
  "@sluice/core/RateLimiterStore/RateLimiterStoreError"
)("RateLimiterStoreError", {
  operation: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * @since 0.1.0
 * @category models
 */
export interface RateLimiterStoreShape {
  readonly reserve: (request: ReserveRequest) => Effect.Effect<ReserveResult, RateLimiterStoreError>
  /** Charges one more amount per bucket, now (a reconcile above the estimate). */
  readonly charge: (
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    amounts: ReadonlyArray<number>,
    now: number
  ) => Effect.Effect<void, RateLimiterStoreError>
  /**
   * Gives back up to one amount per bucket of the charges behind `receipts`,
   * but never what has already refilled; the charge's sliding-log entry
   * (found by `admission`) shrinks by what went unused. A receipt of another
   * generation, or `null` (or missing), gives back nothing. Answers what went
   * back per bucket.
   */
  readonly refund: (
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    amounts: ReadonlyArray<number>,
    receipts: ReadonlyArray<Receipt | null>,
    now: number
  ) => Effect.Effect<ReadonlyArray<number>, RateLimiterStoreError>
  /**
   * The work the charges behind `receipts` admitted began at `now`: each
   * one's sliding-log entry (found by `admission`) counts from then, but never
   * from later than the entry after it. An entry that has left the log, or a
   * receipt of another generation, is left alone.
   */
  readonly began: (
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    receipts: ReadonlyArray<Receipt | null>,
    now: number
  ) => Effect.Effect<void, RateLimiterStoreError>
  /**
   * Lowers one bucket's level to what a server reported (never raises it);
   * with nothing `remaining` and a `resetAfter` (ms, when the server's window
   * is empty again), blocks it until the oldest admission in its sliding log
   * leaves the window, or until `resetAfter` when that is sooner or the log is
   * empty (`gcra.ts`'s `sync`).
   */
  readonly sync: (
    key: string,
    bucket: BucketSpec,
    remaining: number,
    resetAfter: number | undefined,
    now: number
  ) => Effect.Effect<void, RateLimiterStoreError>
  /** Blocks every bucket of the key until `until` (never shortens a block). */
  readonly block: (
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    until: number,
    now: number
  ) => Effect.Effect<void, RateLimiterStoreError>
  /** Every named bucket of the key at `now` (full ones for a key with no state; creates none). */
  readonly inspect: (
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    now: number
  ) => Effect.Effect<ReadonlyArray<BucketSnapshot>, RateLimiterStoreError>
  /** How many keys hold state (an idle key is evicted and no longer counts). */
  readonly size: Effect.Effect<number, RateLimiterStoreError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class RateLimiterStore extends Context.Tag("@sluice/core/RateLimiterStore")<
  RateLimiterStore,
  RateLimiterStoreShape
>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** How often idle keys are swept. A key is idle once all its buckets are full again. */
  readonly sweepInterval?: Duration.DurationInput | undefined
}

/**
 * An in-process store. Keys whose buckets have refilled completely are evicted
 * by a sweeper fiber (a full bucket is the same as a new one, so nothing is lost).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: (options?: MemoryOptions) => Effect.Effect<MemoryStore, never, Scope.Scope> =
  internal.makeMemory

/**
 * The memory store, plus `sweep` (evict idle keys now; answers how many went).
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryStore extends RateLimiterStoreShape {
  readonly sweep: Effect.Effect<number>
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<RateLimiterStore> =>
  Layer.scoped(RateLimiterStore, makeMemory(options))
