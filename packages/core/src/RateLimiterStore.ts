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
 * and `block` (server feedback), which that store has no room for.
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

export type { BucketSpec, Receipt } from "./internal/gcra.js"

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
  /** When charged: one receipt per bucket (undefined where the cost was 0), for a later refund. */
  readonly receipts?: ReadonlyArray<Receipt | undefined>
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
   * but never what has already refilled. Answers what went back per bucket.
   */
  readonly refund: (
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    amounts: ReadonlyArray<number>,
    receipts: ReadonlyArray<Receipt | undefined>,
    now: number
  ) => Effect.Effect<ReadonlyArray<number>, RateLimiterStoreError>
  /**
   * The work the charges behind `receipts` admitted began at `now`: the
   * sliding log counts them from then (see `RateLimiter.began`). A store that
   * keeps no log of real times may do nothing.
   */
  readonly began: (
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    receipts: ReadonlyArray<Receipt | undefined>,
    now: number
  ) => Effect.Effect<void, RateLimiterStoreError>
  /** Lowers one bucket's level to what a server reported. */
  readonly sync: (
    key: string,
    bucket: BucketSpec,
    remaining: number,
    resetAfter: number | undefined,
    now: number
  ) => Effect.Effect<void, RateLimiterStoreError>
  /** Blocks every bucket of the key until `until`. */
  readonly block: (
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    until: number
  ) => Effect.Effect<void, RateLimiterStoreError>
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
