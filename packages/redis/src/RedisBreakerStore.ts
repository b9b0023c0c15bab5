/**
 * Shared circuit-breaker state in Redis (opt-in): every process whose breaker
 * of one name uses this store sees OPEN when one of them opened it. A breaker
 * uses it only when given it (`CircuitBreaker.Options.store`, or
 * `CircuitBreaker.layerShared` over {@link layer}); by default a breaker's
 * state is its own.
 *
 * **The trade-off.** Sharing the state shares the verdict: *one bad process
 * can open the breaker for everyone*. A process whose own network is broken,
 * whose calls time out because it is overloaded, or that is simply
 * misconfigured (a wrong key: every call a 401 classified as a failure) trips
 * its window and every process stops calling a dependency that is fine for
 * them, for the whole open duration (and each re-open). Failure windows stay
 * per process, so one process's failures never mix with another's successes;
 * but any one window that trips opens it for all. Use it where the failure is
 * the dependency's (an outage every process sees, where the others would trip
 * a moment later anyway, after spending calls on it), give it a policy that
 * needs real evidence (a rate over a minimum number of calls, not two
 * failures in a row), and keep `classify` strict. Leave it off where processes
 * reach the dependency by different paths.
 *
 * Effect and `@sluice/core` gave us the contract (`CircuitBreakerStore`, kept
 * to the letter: the conformance suite runs against this store), the breaker
 * that mirrors it, a CircuitBreaker for the store itself, `PubSub`, `Metric`,
 * `Scope`; ioredis gives scripts by SHA with the `NOSCRIPT` fallback
 * (`defineCommand`) and a subscriber connection that subscribes again after a
 * reconnect. This module adds:
 *
 * - *Transitions by script on server time* (`internal/breakerScript.ts`):
 *   open, probe slots, close, isolate, each one Lua call on Redis `TIME`, the
 *   key declared and hash-tagged (`<prefix>breaker:{<name>:<key>}`); answers
 *   carry the deadline as a duration, so a process whose clock is off by
 *   minutes still opens and half-opens with the others.
 * - *Monotonic deadlines*: a later open keeps the later deadline, never an
 *   earlier one; generations (Redis `TIME` in µs, raised past the last) only go up.
 * - *Published*: each change is published in the same script on
 *   `<prefix>breaker-changes`; every store holds a second connection
 *   subscribed to it (opened and closed with its scope), so the other
 *   processes learn within milliseconds, and no call polls Redis: a breaker
 *   reads a key once when it starts using it, then follows the notices.
 * - *One probe across processes*: half-open grants `halfOpenProbes` slots in
 *   all, each a lease of `halfOpenTimeout`; a probe that ends or is
 *   interrupted gives its slot back, and a slot whose holder died frees itself
 *   when its lease ends.
 * - *Keys expire*: `retention` (default 10 minutes) after the later of the
 *   deadline and the leases; a CLOSED key is deleted. An ISOLATED key does not
 *   expire: isolation holds until `reset`, as in a breaker.
 * - *When Redis does not answer*: each call has the client's deadline
 *   (`RedisClient`'s `deadline`, default 50 ms) and goes through a breaker on
 *   the store (nothing is sent while it is open), then fails with a
 *   `CircuitBreakerStoreError`; each breaker then decides alone, on its local
 *   state (an open it made then lasts its time whatever Redis says later). The
 *   switch is logged and counted (`sluice_redis_breaker_store_switches_total`)
 *   and shown by `snapshot`. When Redis answers again the breakers follow it
 *   again: the next call's answer, and, once the subscription is back, every
 *   breaker reads its keys again (changes made meanwhile were not heard).
 *
 * @since 0.1.0
 */
import type { CircuitBreakerStore, InvalidOptions } from "@sluice/core"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/redisBreakerStore.js"
import type { RedisClient } from "./RedisClient.js"

/**
 * The store's Effect `Metric`s: `sluice_redis_breaker_store_switches_total`
 * (tagged `to`: `redis` or `local`), `sluice_redis_breaker_store_available`
 * (gauge: 1 while Redis answers, 0 while breakers decide alone).
 *
 * @since 0.1.0
 * @category metrics
 */
export * as metrics from "./internal/breakerStoreMetrics.js"

/**
 * The store's options (a Schema; decoded at construction): `prefix`, `time`
 * (`"server"` or `"caller"`), `retention`, and `breaker` (the store's own).
 *
 * @since 0.1.0
 * @category models
 */
export const Options = internal.Options

/**
 * @since 0.1.0
 * @category models
 */
export type Options = internal.Options

/**
 * What the store runs on now (`backend`: `"redis"`, or `"local"` while Redis
 * does not answer), its switches, whether its subscription is up.
 *
 * @since 0.1.0
 * @category models
 */
export type Snapshot = internal.Snapshot

/**
 * The store, plus `snapshot`.
 *
 * @since 0.1.0
 * @category models
 */
export type RedisBreakerStore = internal.RedisBreakerStore

/**
 * Builds the store over the {@link RedisClient} in context, with its
 * subscriber connection (closed with the scope). Bad options fail with an
 * `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<RedisBreakerStore, InvalidOptions.InvalidOptionsError, RedisClient | Scope.Scope> = internal.make

/**
 * The store as the `CircuitBreakerStore` in context, for `CircuitBreaker.layerShared`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<CircuitBreakerStore.CircuitBreakerStore, InvalidOptions.InvalidOptionsError, RedisClient> =>
  Layer.scoped(internal.Tag, make(options))
