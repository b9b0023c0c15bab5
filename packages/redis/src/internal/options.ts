/**
 * The Redis store's options, error and snapshot, in their own module so that
 * the public module and the machinery can both use them without importing
 * each other.
 *
 * @internal
 */
import { InvalidOptions, type RateLimiterStore } from "@sluice/core"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/**
 * What the store does while Redis does not answer.
 *
 * @since 0.1.0
 * @category models
 */
export const OnUnavailable = Schema.Union(
  Schema.Literal("failClosed", "failOpen"),
  Schema.Struct({
    degrade: Schema.Struct({
      /** The share of every limit this process may use alone (1/N for N processes), in (0, 1]. */
      share: Schema.Number.pipe(
        Schema.greaterThan(0, { message: () => "Expected a share above 0" }),
        Schema.lessThanOrEqualTo(1, { message: () => "Expected a share of at most 1" })
      )
    })
  })
)

/**
 * @since 0.1.0
 * @category models
 */
export type OnUnavailable = typeof OnUnavailable.Type

/**
 * @since 0.1.0
 * @category models
 */
export const Options = Schema.Struct({
  /** Put before every key this store writes (default `"sluice:"`); one per application or test. */
  prefix: Schema.optional(Schema.String.pipe(Schema.pattern(/^[^*?[\]\\{}]*$/))),
  /** Whose clock the buckets run on: Redis `TIME` (`"server"`, default) or the caller's `now`. */
  time: Schema.optional(Schema.Literal("server", "caller")),
  /** Default `"failClosed"`. */
  onUnavailable: Schema.optional(OnUnavailable),
  /** The breaker on the store: open after `failures` calls in a row fail, for `openDuration` (default 3, 1 s). */
  breaker: Schema.optional(
    Schema.Struct({
      failures: Schema.optional(InvalidOptions.PositiveInt),
      openDuration: Schema.optional(InvalidOptions.PositiveDuration)
    })
  ),
  /**
   * How much longer than until it is idle a key's state lives (default 1 s): at least this, at most twice
   * this (its expiry is moved only when a call needs it later, not on every call).
   */
  expiryMargin: Schema.optional(InvalidOptions.NonNegativeDuration),
  /** Holds across processes for large costs (default true). */
  fairness: Schema.optional(Schema.Boolean),
  /** How long past its time a hold outlives a holder that does not come back (default 1 s). */
  holdGrace: Schema.optional(InvalidOptions.NonNegativeDuration)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Options = typeof Options.Encoded

/**
 * Why a call found no Redis: the connection is down or refused
 * (`"Unavailable"`), the deadline passed (`"Deadline"`), or the breaker is
 * open and nobody asked (`"BreakerOpen"`). It is the `cause` of the
 * `RateLimiterStoreError` a `"failClosed"` store fails with.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisStoreUnavailable extends Schema.TaggedError<RedisStoreUnavailable>(
  "@sluice/redis/RedisStore/RedisStoreUnavailable"
)("RedisStoreUnavailable", {
  reason: Schema.Literal("Unavailable", "Deadline", "BreakerOpen"),
  operation: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `The Redis rate-limiter store is unavailable (${this.reason}) for ${this.operation}: ${this.detail}`
  }
}

/**
 * What the store runs on now, and how often it switched.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  /** `"redis"`, or the policy in force while Redis does not answer. */
  readonly backend: "redis" | "failClosed" | "failOpen" | "degraded"
  /** Switches between Redis and the policy since the store was made. */
  readonly switches: number
  /** When the current backend took over (ms on the Clock). */
  readonly since: number
  /** Why the last call to Redis failed, if one did. */
  readonly lastFailure?: string | undefined
  /** The store's breaker. */
  readonly breaker: "CLOSED" | "OPEN" | "HALF_OPEN" | "ISOLATED"
  /** Calls that reached Redis (each one round trip). */
  readonly roundTrips: number
  /** Reserves answered from a known block, with no round trip. */
  readonly answeredLocally: number
}

/**
 * The Redis store, plus `snapshot`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisStore extends RateLimiterStore.RateLimiterStoreShape {
  readonly snapshot: Effect.Effect<Snapshot>
}
