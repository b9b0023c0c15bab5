/**
 * Passive outlier ejection in Envoy's model, fed only by the provider's own
 * failures (5xx, timeouts, broken connections; never a 429, never the
 * caller's 4xx):
 *
 * - a provider is ejected after `consecutiveFailures` failures in a row, or
 *   when the failure rate over its last `window` outcomes reaches
 *   `failureRate` once it has seen `minimumVolume` of them;
 * - the n-th ejection lasts `baseEjectionTime × n`, at most
 *   `maxEjectionTime`, plus a random jitter up to `jitter`; n drops by one
 *   for each `baseEjectionTime` it stayed healthy since it last came back;
 * - at most `floor(pool × maxEjectionPercent / 100)` providers are ejected at
 *   once, exactly, however small the pool (with 3 providers and 50 %, one);
 * - when fewer than `panicThreshold` of the pool are healthy the Router
 *   routes to all of them, ejected or not (Envoy's panic mode).
 *
 * The window of last outcomes is kept only with a `failureRate` (nothing
 * else reads it), so a call's success costs a counter reset by default.
 *
 * An ejected provider comes back when its time is up, decided lazily from
 * the Clock by the next selection that looks at it: no timer fiber.
 * Effect has no outlier detection; this is all of it.
 */

import type { ProviderEntry } from "./routerProvider.js"
import type { Draw } from "./routerStrategy.js"

export interface OutlierPolicy {
  readonly consecutiveFailures: number
  readonly failureRate: number | undefined
  readonly minimumVolume: number
  readonly window: number
  readonly baseEjectionMillis: number
  readonly maxEjectionMillis: number
  readonly jitterMillis: number
  readonly maxEjectionPercent: number
  readonly panicThreshold: number
}

export type EjectionReason = "ConsecutiveFailures" | "FailureRate"

export type Verdict =
  | { readonly _tag: "None" }
  | { readonly _tag: "Ejected"; readonly reason: EjectionReason; readonly until: number; readonly ejections: number }
  | { readonly _tag: "Spared"; readonly reason: EjectionReason; readonly ejected: number; readonly allowed: number }

const none: Verdict = { _tag: "None" }

export const make = (policy: OutlierPolicy, draw: Draw) => {
  /** How many of a pool of `size` may be ejected at once. */
  const allowedEjections = (size: number) => Math.floor((size * policy.maxEjectionPercent) / 100)

  /** Into the provider's window of outcomes, which only the failure rate reads (none without one). */
  const record = (provider: ProviderEntry, failed: boolean) => {
    if (policy.failureRate === undefined) return
    if (provider.outcomes.length < policy.window) provider.outcomes.push(failed)
    else {
      provider.outcomes[provider.outcomeIndex] = failed
      provider.outcomeIndex = (provider.outcomeIndex + 1) % policy.window
    }
  }

  const failureRateReached = (provider: ProviderEntry) => {
    if (policy.failureRate === undefined || provider.outcomes.length < policy.minimumVolume) return false
    let failures = 0
    for (const failed of provider.outcomes) if (failed) failures++
    return failures / provider.outcomes.length >= policy.failureRate
  }

  const success = (provider: ProviderEntry) => {
    provider.consecutiveFailures = 0
    record(provider, false)
  }

  /**
   * A failure of the provider's own; `pool` is every active provider and
   * `ejectedNow` how many of them are ejected at `now`.
   */
  const failure = (provider: ProviderEntry, now: number, pool: number, ejectedNow: number): Verdict => {
    provider.consecutiveFailures++
    record(provider, true)
    if (provider.isEjected(now)) return none
    const reason: EjectionReason | undefined =
      provider.consecutiveFailures >= policy.consecutiveFailures
        ? "ConsecutiveFailures"
        : failureRateReached(provider)
          ? "FailureRate"
          : undefined
    if (reason === undefined) return none
    const allowed = allowedEjections(pool)
    if (ejectedNow + 1 > allowed) return { _tag: "Spared", reason, ejected: ejectedNow, allowed }
    const healthySince = Math.max(0, now - provider.returnedAt)
    const decayed = provider.ejections === 0 ? 0 : Math.floor(healthySince / policy.baseEjectionMillis)
    provider.ejections = Math.max(0, provider.ejections - decayed) + 1
    const jitter = policy.jitterMillis > 0 ? draw(Math.floor(policy.jitterMillis) + 1) : 0
    const until = now + Math.min(policy.baseEjectionMillis * provider.ejections, policy.maxEjectionMillis) + jitter
    provider.ejectedUntil = until
    provider.returnedAt = until
    provider.ejectionReason = reason
    provider.consecutiveFailures = 0
    provider.outcomes.length = 0
    provider.outcomeIndex = 0
    return { _tag: "Ejected", reason, until, ejections: provider.ejections }
  }

  /** Below the panic threshold of healthy providers, every provider takes traffic. */
  const panics = (pool: number, ejectedNow: number) => pool > 0 && (pool - ejectedNow) / pool < policy.panicThreshold

  return { success, failure, panics, allowedEjections }
}
