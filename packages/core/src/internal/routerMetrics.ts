/**
 * The Router's Effect `Metric`s, tagged `router`, `provider` and `domain`
 * (a provider in several domains is tagged with all of them, comma-separated):
 * calls by outcome, in-flight calls, ejections, domain cooldowns. Each
 * provider's labels are one array, made the first time it is counted: the
 * untagged metric updated with that array (`unsafeUpdate(value, labels)`)
 * finds its hook in Effect's cache by the array, at a fraction of a
 * `Metric.taggedWithLabels` wrapper's cost per update (an in-flight count
 * moves twice per call).
 */
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import type { ProviderEntry } from "./routerProvider.js"

export const calls = Metric.counter("sluice_router_calls_total", {
  description: "Calls the router sent to a provider, by how they ended (success, or the failure's signal)",
  incremental: true
})
export const inFlight = Metric.gauge("sluice_router_in_flight", { description: "Calls in flight on a provider" })
export const ejections = Metric.counter("sluice_router_ejections_total", {
  description: "Times a provider was ejected as an outlier",
  incremental: true
})
export const domainCooldowns = Metric.counter("sluice_router_domain_cooldowns_total", {
  description: "Times a quota domain was cooled down by a 429",
  incremental: true
})

/** Adaptive concurrency's limit and the health checks' probes, bound where they are kept. */
export { concurrencyLimit } from "./routerAdaptive.js"
export { probes } from "./routerHealthCheck.js"

export const makeMetrics = (router: string) => {
  const routerLabel = MetricLabel.make("router", router)
  const byProvider = new WeakMap<ProviderEntry, ReturnType<typeof bind>>()
  const bind = (provider: ProviderEntry) => {
    const labels: ReadonlyArray<MetricLabel.MetricLabel> = [
      routerLabel,
      MetricLabel.make("provider", provider.name),
      MetricLabel.make("domain", provider.domainLabel)
    ]
    const outcomes = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
    return {
      call: (outcome: string) => {
        let withOutcome = outcomes.get(outcome)
        if (withOutcome === undefined) {
          withOutcome = [...labels, MetricLabel.make("outcome", outcome)]
          outcomes.set(outcome, withOutcome)
        }
        calls.unsafeUpdate(1, withOutcome)
      },
      inFlight: (count: number) => inFlight.unsafeUpdate(count, labels),
      ejected: () => ejections.unsafeUpdate(1, labels)
    }
  }
  const of = (provider: ProviderEntry) => {
    let bound = byProvider.get(provider)
    if (bound === undefined) {
      bound = bind(provider)
      byProvider.set(provider, bound)
    }
    return bound
  }
  const cooldown = (domain: string) =>
    Metric.taggedWithLabels(domainCooldowns, [routerLabel, MetricLabel.make("domain", domain)]).unsafeUpdate(1, [])
  return { of, cooldown }
}
