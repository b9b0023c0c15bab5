/**
 * Active health checks for the Router's providers (opt-in, per provider):
 * a probe you give, run on a fiber of the router's scope, one per provider,
 * from when it is added until it drains, is removed or replaced (or the
 * router's scope closes).
 *
 * - Interval: `healthyInterval` while the last probe passed (or none ran
 *   yet), `failingInterval` while it failed or the provider is ejected. An
 *   ejection (passive, from calls) while the fiber waits out a healthy
 *   interval wakes it, and the next probe comes a failing interval later.
 * - A probe fails when it fails, dies or outlasts `timeout`. A failing probe
 *   counts as one failure of the provider's own (the Router's `Unavailable`
 *   path: consecutive failures, failure rate, `maxEjectionPercent`), so a
 *   dead provider that no call reaches is ejected too.
 * - A passing probe returns an ejected provider at once and clears its
 *   outlier counts (Envoy's `successful_active_health_check_uneject_host`);
 *   the ejection count stays, so the next ejection is longer. While the
 *   provider is not ejected a pass changes nothing: a cheap probe passing
 *   says little about real calls, and theirs are what reset the counts.
 *
 * What Effect gave us: `FiberSet` (the fibers, interrupted with the router's
 * scope; through the Router's `fork`), `Effect.sleep` and `Effect.race` (the
 * interval, cut short by an ejection), `Effect.timeout` (the probe's),
 * `Deferred`, `Metric`. What this adds: the schedule that follows the
 * provider's health, and what a probe's verdict does to the provider.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import type * as Router from "../Router.js"
import type { ProviderEntry } from "./routerProvider.js"

export const probes = Metric.counter("sluice_router_probes_total", {
  description: "Health-check probes run on a provider, by outcome (passed, failed)",
  incremental: true
})

/** The decoded options of one provider's health check. */
export interface Policy {
  readonly probe: Effect.Effect<void, unknown>
  readonly healthyMillis: number
  readonly failingMillis: number
  readonly timeoutMillis: number
}

export const DEFAULT_HEALTHY_INTERVAL = Duration.seconds(30)
export const DEFAULT_FAILING_INTERVAL = Duration.seconds(5)
export const DEFAULT_TIMEOUT = Duration.seconds(5)

class Check {
  passing: boolean | undefined = undefined
  consecutiveFailures = 0
  lastProbeAt: number | undefined = undefined
  fiber: Fiber.RuntimeFiber<void> | undefined = undefined
  /** Completed by an ejection while the fiber waits out a healthy interval. */
  wake: Deferred.Deferred<void> | undefined = undefined

  constructor(
    readonly policy: Policy,
    readonly passed: Metric.Metric.Counter<number>,
    readonly failed: Metric.Metric.Counter<number>
  ) {}
}

/** What the Router lends this module. */
export interface Host {
  readonly router: string
  readonly now: () => number
  /** Forks a fiber in the router's scope. */
  readonly fork: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
  /** A probe ended. */
  readonly probed: (provider: ProviderEntry, passed: boolean) => void
  /** A probe failed: one failure of the provider's own, toward its ejection. */
  readonly failed: (provider: ProviderEntry) => void
  /** A probe passed while the provider was ejected: it was taken back (its counts cleared); tell selection. */
  readonly returned: (provider: ProviderEntry, at: number) => void
}

export const make = (host: Host) => {
  const checks = new WeakMap<ProviderEntry, Check>()
  const routerLabel = MetricLabel.make("router", host.router)

  const register = (provider: ProviderEntry, policy: Policy) => {
    const labels = [
      routerLabel,
      MetricLabel.make("provider", provider.name),
      MetricLabel.make("domain", provider.domainLabel)
    ]
    checks.set(
      provider,
      new Check(
        policy,
        Metric.taggedWithLabels(probes, [...labels, MetricLabel.make("outcome", "passed")]),
        Metric.taggedWithLabels(probes, [...labels, MetricLabel.make("outcome", "failed")])
      )
    )
  }

  /** A passing probe: an ejected provider comes back now, with clean outlier counts. */
  const pass = (provider: ProviderEntry, check: Check, at: number) => {
    check.passing = true
    check.consecutiveFailures = 0
    check.passed.unsafeUpdate(1, [])
    host.probed(provider, true)
    if (!provider.isEjected(at) || provider.ejectionReason === undefined) return
    provider.ejectedUntil = at
    provider.returnedAt = at
    provider.consecutiveFailures = 0
    provider.outcomes.length = 0
    provider.outcomeIndex = 0
    host.returned(provider, at)
  }

  const fail = (provider: ProviderEntry, check: Check) => {
    check.passing = false
    check.consecutiveFailures++
    check.failed.unsafeUpdate(1, [])
    host.probed(provider, false)
    host.failed(provider)
  }

  /** Waits out the interval the provider's health calls for; an ejection cuts a healthy wait short. */
  const wait = (provider: ProviderEntry, check: Check): Effect.Effect<void> =>
    Effect.suspend(() => {
      const failing = check.passing === false || provider.isEjected(host.now())
      if (failing) return Effect.sleep(check.policy.failingMillis)
      const wake = Deferred.unsafeMake<void>(FiberId.none)
      check.wake = wake
      return Effect.race(
        Effect.sleep(check.policy.healthyMillis),
        Effect.zipRight(Deferred.await(wake), Effect.sleep(check.policy.failingMillis))
      ).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            check.wake = undefined
          })
        )
      )
    })

  const probeOnce = (provider: ProviderEntry, check: Check): Effect.Effect<void> =>
    Effect.flatMap(Effect.exit(Effect.timeout(check.policy.probe, check.policy.timeoutMillis)), (exit) =>
      Effect.sync(() => {
        const at = host.now()
        check.lastProbeAt = at
        if (Exit.isSuccess(exit)) pass(provider, check, at)
        else fail(provider, check)
      })
    )

  const loop = (provider: ProviderEntry, check: Check): Effect.Effect<void> =>
    Effect.forever(Effect.zipRight(wait(provider, check), probeOnce(provider, check)))

  /** The provider was added (or took another's place): its probes begin. */
  const start = (provider: ProviderEntry) => {
    const check = checks.get(provider)
    if (check === undefined || check.fiber !== undefined) return
    check.fiber = host.fork(loop(provider, check))
  }

  /** The provider takes no more work (draining, removed, replaced): its probes end. */
  const stop = (provider: ProviderEntry) => {
    const check = checks.get(provider)
    const fiber = check?.fiber
    if (check === undefined || fiber === undefined) return
    check.fiber = undefined
    fiber.unsafeInterruptAsFork(FiberId.none)
  }

  /** The provider was ejected by its calls: a probe waiting out a healthy interval comes a failing one from now. */
  const ejected = (provider: ProviderEntry) => {
    const wake = checks.get(provider)?.wake
    if (wake !== undefined) Deferred.unsafeDone(wake, Exit.void)
  }

  const snapshot = (provider: ProviderEntry): Router.HealthCheckSnapshot | undefined => {
    const check = checks.get(provider)
    if (check === undefined) return undefined
    return {
      passing: check.passing,
      consecutiveFailures: check.consecutiveFailures,
      lastProbeAt: check.lastProbeAt
    }
  }

  return { register, start, stop, ejected, snapshot }
}
