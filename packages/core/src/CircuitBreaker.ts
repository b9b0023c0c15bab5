/**
 * Circuit breakers: stop calling a dependency that is failing, let a few
 * probes find out when it has recovered.
 *
 * CLOSED → (trips) → OPEN → (open duration elapsed) → HALF_OPEN → (every
 * probe succeeds) → CLOSED, or (a probe fails) → OPEN again, for longer when
 * the open duration is a `Schedule`. `isolate` holds a breaker ISOLATED
 * (refusing everything) until `reset`.
 *
 * Effect has no circuit breaker. It gives the parts: `Clock` for time (so
 * everything here runs under `TestClock`), `Schedule` for growing open
 * durations, `PubSub`/`Stream` for transitions, `Metric`, and `Exit`/`Cause`
 * to tell a failure from an interruption. This module adds the policies
 * (consecutive failures; failure rate over a count- or time-based window with
 * a minimum number of calls; slow-call rate, as in Resilience4j), `classify`
 * (which outcomes are the dependency's fault), a fixed number of half-open
 * probes, keyed breakers with eviction of idle keys, and the guarantee the
 * peers' users keep asking for: a probe that is interrupted or times out
 * frees its slot, so no breaker is ever stuck HALF_OPEN, and half-open never
 * lets more than `halfOpenProbes` calls through. A probe that simply never
 * answers (no timeout around it) is cut off too: one still running
 * `halfOpenTimeout` (default 1 minute) after it was admitted counts as failed,
 * and the breaker re-opens (`ProbeTimedOut`); when it does end, its outcome
 * is ignored. This is decided lazily from `Clock` time by the next call that
 * looks at the key (`check`, `admit`, `protect`, `release`, `state`,
 * `inspect`), stamped with the moment it became due: no watcher fiber.
 *
 * Refusals are `CircuitOpenError`s, refined by `reason` (`"Open"`,
 * `"HalfOpenFull"`, `"Isolated"`), carrying `retryAfter` (never 0: during
 * HALF_OPEN it is the open duration last used, or sooner the time until the
 * earliest probe reaches `halfOpenTimeout`) and the `Trip` that opened the breaker: the failure that
 * tipped it, described safely in one line, and what the window held then
 * (also on `inspect` and on the OPEN transition). They are not retryable
 * (failing fast is the point), so retry policies leave them alone.
 *
 * Shared state is opt-in (`store`, or `layerShared` over a
 * `CircuitBreakerStore` such as `@sluice/redis`'s `RedisBreakerStore`): every
 * breaker of one name on one store then opens, half-opens (one set of probe
 * slots for all) and closes together, while each still judges the dependency
 * from its own calls. Without a store nothing changes: the state is the
 * breaker's own, kept as before, at no cost. One bad process can then open
 * the breaker for everyone: see `RedisBreakerStore` for the trade-off.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import { CircuitBreakerStore, type CircuitBreakerStoreShape } from "./CircuitBreakerStore.js"
import type { InvalidOptionsError } from "./InvalidOptions.js"
import * as internal from "./internal/circuitBreaker.js"
import type { CircuitOpenError, Trip } from "./internal/circuitBreakerError.js"

export type {
  /**
   * Which refusal a `CircuitOpenError` is (its `reason`): `"Open"`,
   * `"HalfOpenFull"` (every probe slot taken) or `"Isolated"`.
   *
   * @since 0.1.0
   * @category errors
   */
  CircuitOpenReason
} from "./internal/circuitBreakerError.js"
/**
 * Refused by an OPEN, ISOLATED or full HALF_OPEN breaker; carries `retryAfter`.
 *
 * @since 0.1.0
 * @category errors
 */
export {
  /**
   * What opened a breaker: `reason` (`"Tripped"`, `"ProbeFailed"`,
   * `"ProbeTimedOut"`), `at`, `failure` (the call that tipped it, in one line:
   * the error's `_tag`, `reason` and message, never the whole value; a
   * `Redacted` stays redacted), and the window then: `calls`, `failures`,
   * `slowCalls`, `failureRate`, `slowCallRate`. A probe's trip counts the
   * probes of that half-open instead (the window is empty while half-open).
   *
   * @since 0.1.0
   * @category models
   */
  CircuitOpenError,
  /**
   * What opened a breaker: `reason` (`"Tripped"`, `"ProbeFailed"`,
   * `"ProbeTimedOut"`), `at`, `failure` (the call that tipped it, in one line:
   * the error's `_tag`, `reason` and message, never the whole value; a
   * `Redacted` stays redacted), and the window then: `calls`, `failures`,
   * `slowCalls`, `failureRate`, `slowCallRate`. A probe's trip counts the
   * probes of that half-open instead (the window is empty while half-open).
   *
   * @since 0.1.0
   * @category models
   */
  Trip
} from "./internal/circuitBreakerError.js"

/**
 * The breaker's Effect `Metric`s, tagged `breaker` and `key`:
 * `sluice_breaker_state` (gauge: 0 CLOSED, 1 HALF_OPEN, 2 OPEN, 3 ISOLATED),
 * `sluice_breaker_rejections_total`, `sluice_breaker_transitions_total` (also tagged `from`, `to`).
 *
 * @since 0.1.0
 * @category metrics
 */
export * as metrics from "./internal/circuitBreakerMetrics.js"

/**
 * @since 0.1.0
 * @category models
 */
export type State = "CLOSED" | "OPEN" | "HALF_OPEN" | "ISOLATED"

/**
 * How an outcome counts: against the dependency (`"failure"`), for it
 * (`"success"`), or not at all (`"ignore"`, e.g. a 400: the caller's fault).
 *
 * @since 0.1.0
 * @category models
 */
export type Verdict = "success" | "failure" | "ignore"

/**
 * When a CLOSED breaker trips:
 * - `consecutive`: after `failures` bad calls in a row (failed, or slow);
 * - `count`: over the last `size` calls, once `minimumCalls` (default `size`;
 *   more than `size` is refused, as such a breaker could never open) were seen, the failure rate reaches `failureRate` (0–1], or the slow-call
 *   rate reaches `slowCall.rate`;
 * - `time`: the same over the calls of the last `window`, kept in `buckets`
 *   (default 10) slices, so a call ages out within one slice; `minimumCalls` default 1.
 *
 * @since 0.1.0
 * @category models
 */
export type Policy =
  | { readonly kind: "consecutive"; readonly failures: number }
  | {
      readonly kind: "count"
      readonly size: number
      readonly failureRate: number
      readonly minimumCalls?: number | undefined
    }
  | {
      readonly kind: "time"
      readonly window: Duration.DurationInput
      readonly failureRate: number
      readonly minimumCalls?: number | undefined
      readonly buckets?: number | undefined
    }

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the breaker in errors, transitions and metrics. */
  readonly name: string
  readonly policy: Policy
  /** Calls that take `threshold` or longer are slow; `rate` (default 1) of slow calls trips a rate policy. */
  readonly slowCall?: { readonly threshold: Duration.DurationInput; readonly rate?: number | undefined } | undefined
  /**
   * How long OPEN lasts: a duration (default 30 s), or a `Schedule` whose
   * successive delays are the open durations after each re-open (reset once
   * the breaker closes); when the schedule ends its last delay is kept.
   */
  readonly openDuration?: Duration.DurationInput | Schedule.Schedule<unknown, number> | undefined
  /** Probes HALF_OPEN lets through; all must succeed to close. Default 1. */
  readonly halfOpenProbes?: number | undefined
  /**
   * The longest a probe may run: one still running this long after it was
   * admitted counts as failed and the breaker re-opens (`ProbeTimedOut`); its
   * outcome, when it ends, is ignored. Default 1 minute (set it above the
   * calls' own timeout); `Duration.infinity` turns it off (a probe that never
   * ends then holds its slot until it is interrupted).
   */
  readonly halfOpenTimeout?: Duration.DurationInput | undefined
  /** Which outcomes count against the dependency. Default: any failure (interruptions never count). */
  readonly classify?: ((exit: Exit.Exit<unknown, unknown>) => Verdict) | undefined
  /**
   * A CLOSED key holding no permit, unused this long, is forgotten. Default
   * 10 minutes. A `protect` call still running on it brings it back, with its
   * verdict, when it ends.
   */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Transitions kept per slow subscriber before the oldest are dropped. Default 1,024. */
  readonly transitionBufferSize?: number | undefined
  /**
   * Shares the transitions with every breaker of this `name` on the same
   * store (other processes too): see `CircuitBreakerStore`. Default: none,
   * the breaker's state is its own. Failure windows stay local; opening (with
   * its deadline, which only ever moves later), the half-open probe slots
   * (`halfOpenProbes` across all processes, each a lease of `halfOpenTimeout`,
   * or 1 minute if that is infinite), closing and isolation go through the
   * store, and the breaker mirrors what the store's notices say. When the
   * store does not answer, the breaker decides alone (its local state) and
   * goes back to the store's when it answers again.
   */
  readonly store?: CircuitBreakerStoreShape | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface KeyOptions {
  /** Which breaker of the keyed set. Default `"default"`. */
  readonly key?: string | undefined
}

/**
 * Why a breaker changed state.
 *
 * @since 0.1.0
 * @category models
 */
export type TransitionReason =
  | "Tripped"
  | "OpenDurationElapsed"
  | "ProbesSucceeded"
  | "ProbeFailed"
  | "ProbeTimedOut"
  | "Isolated"
  | "Reset"

/**
 * @since 0.1.0
 * @category models
 */
export interface Transition {
  readonly breaker: string
  readonly key: string
  readonly from: State
  readonly to: State
  /** When it happened (ms on the breaker's Clock); HALF_OPEN is stamped with when the open duration ended. */
  readonly at: number
  readonly reason: TransitionReason
  /** On a change to OPEN: what opened it. */
  readonly trip?: Trip
  /** True when the change was learned from the shared store (made by another breaker of this name). */
  readonly shared?: boolean
}

/**
 * One key's breaker, now.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly key: string
  readonly state: State
  /** What the CLOSED window holds (for `consecutive`: the current run of bad calls). */
  readonly calls: number
  readonly failures: number
  readonly slowCalls: number
  /** Probes admitted and not yet answered. */
  readonly probesInFlight: number
  /**
   * Permits held: probes, and calls admitted through `admit`. A call through
   * `protect` while CLOSED holds nothing (there is nothing it could leak) and
   * is not counted.
   */
  readonly inFlight: number
  /**
   * While OPEN: milliseconds until a probe may go. While HALF_OPEN with every
   * probe slot taken: the open duration last used (a probe usually answers
   * within it), or until the earliest running probe reaches `halfOpenTimeout`
   * if that is sooner. Never 0.
   */
  readonly retryAfterMillis?: number
  /** While OPEN or HALF_OPEN: what opened it. */
  readonly trip?: Trip
}

/**
 * A call let through, to be handed back to `release` with its outcome.
 *
 * @since 0.1.0
 * @category models
 */
export interface Permit {
  readonly key: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreakerShape {
  readonly name: string
  /** Runs the effect if the breaker lets it through, and records its outcome. */
  readonly protect: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: KeyOptions
  ) => Effect.Effect<A, E | CircuitOpenError, R>
  /**
   * Refuses now if `admit` would, taking nothing (no probe slot): a caller
   * can check before it spends anything else (the Executor checks before
   * rate admission, so a refused request costs no tokens).
   */
  readonly check: (key?: string) => Effect.Effect<void, CircuitOpenError>
  /**
   * The two halves of `protect`, for callers that must do work between them
   * (the Executor admits, then calls): take a permit, or be refused …
   */
  readonly admit: (key?: string) => Effect.Effect<Permit, CircuitOpenError>
  /** … and give it back with the outcome (`"interrupted"` frees a probe slot without a verdict). Idempotent. */
  readonly release: (permit: Permit, result: Exit.Exit<unknown, unknown> | "interrupted") => Effect.Effect<void>
  readonly state: (key?: string) => Effect.Effect<State>
  readonly inspect: (key?: string) => Effect.Effect<Snapshot>
  /** Holds the key ISOLATED: every call refused until `reset`. */
  readonly isolate: (key?: string) => Effect.Effect<void>
  /** Back to CLOSED with an empty window. */
  readonly reset: (key?: string) => Effect.Effect<void>
  /** Every state change from now on. */
  readonly transitions: Stream.Stream<Transition>
  /** The same as a scoped queue (subscribed at once, so nothing is missed after it returns). */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Transition>, never, Scope.Scope>
  /** Keys held now. */
  readonly size: Effect.Effect<number>
  /** Forgets idle CLOSED keys now (also done every `idleTimeout`); answers how many. */
  readonly sweep: Effect.Effect<number>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class CircuitBreaker extends Context.Tag("@sluice/core/CircuitBreaker")<CircuitBreaker, CircuitBreakerShape>() {}

/**
 * Builds a breaker; bad options fail with an `InvalidOptionsError` naming the
 * field. Needs a `Scope` for its idle-key sweeper.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<CircuitBreakerShape, InvalidOptionsError, Scope.Scope> =
  internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<CircuitBreaker, InvalidOptionsError> =>
  Layer.scoped(CircuitBreaker, make(options))

/**
 * A breaker whose transitions go through the `CircuitBreakerStore` in
 * context (e.g. `RedisBreakerStore.layer`), shared with every breaker of the
 * same name on that store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerShared = (
  options: Omit<Options, "store">
): Layer.Layer<CircuitBreaker, InvalidOptionsError, CircuitBreakerStore> =>
  Layer.scoped(
    CircuitBreaker,
    Effect.flatMap(CircuitBreakerStore, (store) => make({ ...options, store }))
  )

/**
 * Runs an effect through the breaker in context.
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect =
  (options?: KeyOptions) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R | CircuitBreaker> =>
    Effect.flatMap(CircuitBreaker, (breaker) => breaker.protect(effect, options))
