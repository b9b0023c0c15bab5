/**
 * The ProviderPool's Effect `Metric`s, tagged `pool` (the invalidations also
 * `reason`), bound to their labels once per pool.
 */
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"

export const instances = Metric.gauge("sluice_pool_instances", {
  description: "Instances of a provider pool started and not yet released"
})
export const inUse = Metric.gauge("sluice_pool_in_use", {
  description: "Callers holding an instance of a provider pool"
})
export const waiting = Metric.gauge("sluice_pool_waiting", {
  description: "Callers waiting for an instance of a provider pool"
})
export const starts = Metric.counter("sluice_pool_starts_total", {
  description: "Instances a provider pool started",
  incremental: true
})
export const stops = Metric.counter("sluice_pool_stops_total", {
  description: "Instances a provider pool released",
  incremental: true
})
export const acquireFailures = Metric.counter("sluice_pool_acquire_failures_total", {
  description: "Instances a provider pool failed to start",
  incremental: true
})
export const invalidations = Metric.counter("sluice_pool_invalidations_total", {
  description: "Instances a provider pool invalidated, by reason (HealthCheck, Fatal, Manual)",
  incremental: true
})
export const restarts = Metric.counter("sluice_pool_restarts_total", {
  description: "Instances a provider pool started to make good an invalidation",
  incremental: true
})

export const makeMetrics = (pool: string) => {
  const labels = [MetricLabel.make("pool", pool)]
  const byReason = (reason: string) =>
    Metric.taggedWithLabels(invalidations, [...labels, MetricLabel.make("reason", reason)])
  return {
    instances: Metric.taggedWithLabels(instances, labels),
    inUse: Metric.taggedWithLabels(inUse, labels),
    waiting: Metric.taggedWithLabels(waiting, labels),
    starts: Metric.taggedWithLabels(starts, labels),
    stops: Metric.taggedWithLabels(stops, labels),
    acquireFailures: Metric.taggedWithLabels(acquireFailures, labels),
    restarts: Metric.taggedWithLabels(restarts, labels),
    invalidations: {
      HealthCheck: byReason("HealthCheck"),
      Fatal: byReason("Fatal"),
      Manual: byReason("Manual")
    }
  }
}
