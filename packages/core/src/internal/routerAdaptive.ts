/**
 * Adaptive concurrency for the Router's providers (opt-in, per provider):
 * AIMD on each provider's Executor's concurrency, fed by every attempt the
 * Router sends it.
 *
 * - Each attempt is observed from its start to its end (the call's effect
 *   is wrapped, so what is measured is the attempt itself, not its wait in
 *   the Executor's queue or for its limits): a success gives a latency
 *   sample (successful attempts only), and one that took the last permit
 *   (`running ≥ limit` as it started) adds one to the limit, up to the ceiling.
 * - Back-pressure cuts the limit by the `decrease` factor, rounded down, not
 *   below the floor: a 429 (`RateLimited`), a 503, 529 or `Overloaded`
 *   provider (`Overloaded`), a timeout of the attempt's own or the
 *   Executor's `AttemptTimeout` (`Timeout`). Other failures (a 500, the
 *   caller's 4xx) say nothing about load. Each attempt remembers how many
 *   cuts had been made when it started; it cuts only if none was made since,
 *   so a burst of failures from one overloaded moment is one cut (TCP's one
 *   decrease per window, without reading time, so it holds under TestClock).
 * - The ceiling is the option's; or Little's law over `requestLimit`: the
 *   rate per second × the successful attempts' latency EWMA in seconds,
 *   rounded up, at least the floor (more could not run at that rate), the
 *   starting limit until the first sample; or the Executor's concurrency
 *   when the provider was added. A ceiling that falls below the limit pulls
 *   the limit down to it.
 *
 * An Executor's timeout interrupts the attempt, which the wrapper sees only
 * as an interruption: the Router tells this module of an `AttemptTimeout`
 * the call ended with (`timedOut`), charged to the call's last attempt. A
 * timeout the Executor retried by itself is not seen.
 *
 * What Effect gave us: `Effect.onExit` (the end of every attempt, however it
 * ends), `Metric` (the limit as a gauge), `Clock` (through the Router's
 * `now`). The limit itself is applied by `Executor.setConcurrency` (Effect's
 * `Semaphore.resize` semantics: lowered, running work finishes). What this
 * adds: the AIMD policy, the back-pressure reading and the derived ceiling.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Router from "../Router.js"
import { ExecutorError } from "./executorError.js"
import type { ProviderEntry } from "./routerProvider.js"
import type { Signal } from "./routerSignal.js"

export const concurrencyLimit = Metric.gauge("sluice_router_concurrency_limit", {
  description: "A provider's concurrency limit under adaptive concurrency"
})

/** What a back-pressure failure was, as the `ConcurrencyChanged` event names it. */
export type Pressure = "RateLimited" | "Overloaded" | "Timeout"

/** The decoded policy of one provider. */
export interface Policy {
  readonly floor: number
  /** A fixed ceiling, if given. */
  readonly ceiling: number | undefined
  /** The request rate per second the ceiling is derived from, if given. */
  readonly requestsPerSecond: number | undefined
  readonly decrease: number
}

/** One provider's AIMD state. */
class Limit {
  /** Attempts of this provider running now (through the Router). */
  running = 0
  /** Cuts so far: an attempt cuts only if none was made since it started. */
  cuts = 0
  latencyMillis: number | undefined = undefined
  ceiling: number

  constructor(
    readonly policy: Policy,
    public limit: number,
    /** The ceiling when neither `ceiling` nor a sample gives one. */
    readonly fallbackCeiling: number,
    readonly gauge: Metric.Metric.Gauge<number>
  ) {
    this.ceiling = policy.ceiling ?? fallbackCeiling
  }
}

/** What one call's attempts on a provider tell the Router: the cut count its last attempt started at. */
export interface Attempts {
  startedAtCut: number | undefined
}

/** What the Router lends this module. */
export interface Host {
  readonly router: string
  readonly now: () => number
  /** The weight (0–1] of a new latency sample. */
  readonly latencyWeight: number
  readonly classify: (error: unknown) => Signal
  readonly changed: (provider: ProviderEntry, from: number, to: number, reason: Router.ConcurrencyChangedReason) => void
}

const OVERLOADED_STATUS = new Set([503, 529])
const TIMEOUT_STATUS = new Set([504])

/**
 * Whether a failed attempt's error is back-pressure, and which: a 429; a
 * 503 or 529 (overloaded) or a 504 (a gateway's timeout); a timeout.
 * Read from the Router's signal, then from the `reason`, `status` and `kind`
 * that `ApiError` and `ModelError` carry.
 */
export const pressureOf = (error: unknown, signal: Signal): Pressure | undefined => {
  if (signal._tag === "RateLimited") return "RateLimited"
  if (signal._tag !== "Unavailable") return undefined
  if (error instanceof ExecutorError) return error.reason === "AttemptTimeout" ? "Timeout" : undefined
  const reason = Predicate.hasProperty(error, "reason") ? error.reason : undefined
  const status = Predicate.hasProperty(error, "status") ? error.status : undefined
  const kind = Predicate.hasProperty(error, "kind") ? error.kind : undefined
  if (reason === "Timeout" || kind === "Timeout") return "Timeout"
  if (kind === "Overloaded") return "Overloaded"
  if (typeof status === "number") {
    if (OVERLOADED_STATUS.has(status)) return "Overloaded"
    if (TIMEOUT_STATUS.has(status)) return "Timeout"
  }
  return undefined
}

export const make = (host: Host) => {
  const limits = new WeakMap<ProviderEntry, Limit>()
  const routerLabel = MetricLabel.make("router", host.router)

  /** Sets the limit and tells the provider's Executor, the gauge and the Router. */
  const apply = (
    provider: ProviderEntry,
    state: Limit,
    to: number,
    reason: Router.ConcurrencyChangedReason
  ): Effect.Effect<void> => {
    const from = state.limit
    if (to === from) return Effect.void
    state.limit = to
    state.gauge.unsafeUpdate(to, [])
    host.changed(provider, from, to, reason)
    return Effect.ignore(provider.executor.setConcurrency(to))
  }

  /**
   * Takes the provider under adaptive concurrency: its limit starts at its
   * Executor's concurrency, within the bounds (and is set on the Executor
   * if that moved it).
   */
  const register = (provider: ProviderEntry, policy: Policy): Effect.Effect<void> =>
    Effect.flatMap(provider.executor.stats, (stats) => {
      const fallbackCeiling = Math.max(policy.floor, stats.concurrency)
      const ceiling = policy.ceiling ?? fallbackCeiling
      const initial = Math.min(ceiling, Math.max(policy.floor, stats.concurrency))
      const gauge = Metric.taggedWithLabels(concurrencyLimit, [
        routerLabel,
        MetricLabel.make("provider", provider.name),
        MetricLabel.make("domain", provider.domainLabel)
      ])
      const state = new Limit(policy, initial, fallbackCeiling, gauge)
      limits.set(provider, state)
      gauge.unsafeUpdate(initial, [])
      return initial === stats.concurrency ? Effect.void : Effect.ignore(provider.executor.setConcurrency(initial))
    })

  /** A latency sample: the EWMA moves, and a derived ceiling with it (pulling the limit down if need be). */
  const sample = (provider: ProviderEntry, state: Limit, millis: number): Effect.Effect<void> => {
    state.latencyMillis =
      state.latencyMillis === undefined
        ? millis
        : state.latencyMillis + host.latencyWeight * (millis - state.latencyMillis)
    const rate = state.policy.requestsPerSecond
    if (state.policy.ceiling !== undefined || rate === undefined) return Effect.void
    state.ceiling = Math.max(state.policy.floor, Math.ceil((rate * state.latencyMillis) / 1000))
    return state.limit > state.ceiling ? apply(provider, state, state.ceiling, "Ceiling") : Effect.void
  }

  /** A back-pressure failure of an attempt that started at `startedAtCut` cuts, unless a cut came since. */
  const cut = (provider: ProviderEntry, state: Limit, startedAtCut: number, pressure: Pressure) => {
    if (startedAtCut !== state.cuts) return Effect.void
    state.cuts++
    const to = Math.max(state.policy.floor, Math.floor(state.limit * state.policy.decrease))
    return apply(provider, state, to, pressure)
  }

  /**
   * The attempt, observed: counted as running while it runs; at its end a
   * success samples its latency and, if every permit was taken, steps the
   * limit up; a back-pressure failure cuts it.
   */
  const observe = <A, E, R>(
    provider: ProviderEntry,
    attempt: Effect.Effect<A, E, R>,
    attempts: Attempts
  ): Effect.Effect<A, E, R> => {
    const state = limits.get(provider)
    if (state === undefined) return attempt
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const startedAt = host.now()
        const startedAtCut = state.cuts
        attempts.startedAtCut = startedAtCut
        state.running++
        // It took the last permit: the limit, not the demand, held the work back.
        const saturated = state.running >= state.limit
        return Effect.onExit(restore(attempt), (exit) =>
          Effect.suspend(() => {
            state.running--
            if (Exit.isSuccess(exit)) {
              return Effect.zipRight(
                sample(provider, state, host.now() - startedAt),
                Effect.suspend(() =>
                  saturated && state.limit < state.ceiling
                    ? apply(provider, state, state.limit + 1, "Saturated")
                    : Effect.void
                )
              )
            }
            const failure = Cause.failureOption(exit.cause)
            if (Option.isNone(failure)) return Effect.void
            const pressure = pressureOf(failure.value, host.classify(failure.value))
            return pressure === undefined ? Effect.void : cut(provider, state, startedAtCut, pressure)
          })
        )
      })
    )
  }

  /** The call ended with its Executor's `AttemptTimeout`: its last attempt, interrupted by it, was a timeout. */
  const timedOut = (provider: ProviderEntry, error: unknown, attempts: Attempts): Effect.Effect<void> => {
    const state = limits.get(provider)
    if (state === undefined || attempts.startedAtCut === undefined) return Effect.void
    if (!(error instanceof ExecutorError) || error.reason !== "AttemptTimeout") return Effect.void
    return cut(provider, state, attempts.startedAtCut, "Timeout")
  }

  const snapshot = (provider: ProviderEntry): Router.ConcurrencySnapshot | undefined => {
    const state = limits.get(provider)
    if (state === undefined) return undefined
    return {
      limit: state.limit,
      floor: state.policy.floor,
      ceiling: state.ceiling,
      latencyMillis: state.latencyMillis
    }
  }

  return { register, observe, timedOut, snapshot }
}
