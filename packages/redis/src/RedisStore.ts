/**
 * The RateLimiterStore in Redis: one quota shared by every process that
 * names the same limiter (`RateLimiter.Options.name`) on the same Redis.
 *
 * Effect and `@sluice/core` gave us the store contract (`RateLimiterStore`,
 * kept to the letter: the conformance suite runs against this store), the
 * CircuitBreaker (used on the store itself), `Metric`, `Clock` and `Scope`;
 * ioredis gives the connection, the deadline per command and the reply
 * parser. This module adds:
 *
 * - *One script call per operation*, for every limit of the call at once
 *   (`internal/script.ts`, the arithmetic of `gcra.ts` in Lua), all keys
 *   declared and hash-tagged (one cluster slot per call), a key's state in
 *   one hash (read and written once per call) expiring once its buckets are
 *   full again (plus `expiryMargin`). The script is called by SHA and sent
 *   whole when Redis does not hold it (`NOSCRIPT`: a restart, a failover,
 *   `SCRIPT FLUSH`); each call's bytes are made once per key and bucket list
 *   but for its numbers, and the calls of one turn of the event loop leave in
 *   one write, so an admission costs little CPU on either side.
 * - *Server time*: the script computes on Redis `TIME` and shifts every
 *   absolute time in and out of the call by (Redis time - the caller's now),
 *   so processes whose clocks disagree by minutes still share one schedule
 *   and each sees only its own clock. (`time: "caller"` computes on the
 *   caller's `now` instead: one clock for all users, as in tests.)
 * - *Waiting stays local*: Redis holds counters, never queues or clients; a
 *   caller that must wait is told until when and sleeps on its own Clock.
 * - *A key known blocked costs no round trip*: a block (`penalize`, an
 *   exhausted `sync`, or one another process set, learned from an answer) is
 *   remembered until it ends; a reserve on that key answers from memory.
 * - *Fairness across processes*: a caller that is not due leaves a hold (its
 *   costs, when it will be due); every other process counts the holds ahead
 *   of it as if already charged then (a reservation of the future, as GCRA
 *   does), so a large cost is not starved by small ones from elsewhere. A
 *   hold not taken up within `holdGrace` of its time is dropped (its holder
 *   went away); until then a vanished holder delays the others by its cost.
 * - *A typed outage policy* (`onUnavailable`): every call has a deadline
 *   (`RedisClient`'s `deadline`, default 50 ms) and goes through a CircuitBreaker, so an outage costs at
 *   most that per call, and nothing once the breaker is open; then
 *   `"failClosed"` fails with a `RateLimiterStoreError` whose message says the
 *   store is unavailable (the limiter reports it as `StoreFailure`, never as a
 *   rate limit), `"failOpen"` admits everything, `{ degrade: { share } }`
 *   runs on a local memory store holding `share` of each limit (1/N for N
 *   processes). A half-open probe finds Redis again and the store goes back.
 *   Each switch is logged, counted (`sluice_redis_store_switches_total`) and
 *   shown by `snapshot`.
 *
 * @since 0.1.0
 */
import type { InvalidOptions, RateLimiterStore } from "@sluice/core"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { Options, RedisStore } from "./internal/options.js"
import * as internal from "./internal/outage.js"
import type { RedisClient } from "./RedisClient.js"

/**
 * The store's Effect `Metric`s: `sluice_redis_store_switches_total` (tagged
 * `to`: `redis` or the policy), `sluice_redis_store_round_trips_total`,
 * `sluice_redis_store_available` (gauge: 1 on Redis, 0 on the policy).
 *
 * @since 0.1.0
 * @category metrics
 */
export * as metrics from "./internal/metrics.js"

export type {
  /**
   * @since 0.1.0
   * @category models
   */
  RedisStore,
  /**
   * @since 0.1.0
   * @category models
   */
  Snapshot
} from "./internal/options.js"
export {
  /**
   * What the store does while Redis does not answer: `"failClosed"`,
   * `"failOpen"`, or `{ degrade: { share } }` (a local memory store holding
   * `share` of every limit: 1/N for N processes).
   *
   * @since 0.1.0
   * @category models
   */
  OnUnavailable,
  /**
   * The store's options (a Schema; decoded at construction).
   *
   * @since 0.1.0
   * @category models
   */
  Options,
  /**
   * Why a call found no Redis (`reason`: `"Unavailable"`, `"Deadline"`,
   * `"BreakerOpen"`); the `cause` of a `"failClosed"` store's error.
   *
   * @since 0.1.0
   * @category errors
   */
  RedisStoreUnavailable
} from "./internal/options.js"

/**
 * Builds the store over the {@link RedisClient} in context. Bad options fail
 * with an `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<RedisStore, InvalidOptions.InvalidOptionsError, RedisClient | Scope.Scope> = internal.make

/**
 * The store as the `RateLimiterStore` every RateLimiter in context uses.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<RateLimiterStore.RateLimiterStore, InvalidOptions.InvalidOptionsError, RedisClient> =>
  Layer.scoped(internal.StoreTag, make(options))
