/**
 * The Router's Effect `Metric`s, tagged `router`, `provider` and `domain`
 * (a provider in several domains is tagged with all of them, comma-separated):
 * calls by outcome, in-flight calls, ejections, domain cooldowns. Each
 * provider's metrics are bound to their labels once, when it is added.
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
    const labels = [
      routerLabel,
      MetricLabel.make("provider", provider.name),
      MetricLabel.make("domain", provider.domainLabel)
    ]
    const outcomes = new Map<string, Metric.Metric.Counter<number>>()
    return {
      call: (outcome: string) => {
        let counter = outcomes.get(outcome)
        if (counter === undefined) {
          counter = Metric.taggedWithLabels(calls, [...labels, MetricLabel.make("outcome", outcome)])
          outcomes.set(outcome, counter)
        }
        counter.unsafeUpdate(1, [])
      },
      inFlight: Metric.taggedWithLabels(inFlight, labels),
      ejections: Metric.taggedWithLabels(ejections, labels)
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
