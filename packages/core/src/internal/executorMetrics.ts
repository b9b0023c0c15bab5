/**
 * The Executor's Effect `Metric`s, each tagged with the executor's name:
 * queue depth, in-flight and concurrency-limit gauges, admission-wait and call-duration
 * histograms (milliseconds), and a counter of outcomes tagged by status.
 * Updated with `unsafeUpdate` from the executor's synchronous bookkeeping:
 * the histograms once per request; the gauges as a request is queued and as
 * it ends, the outcome counter as it ends, so they are exact whenever
 * anything else can read them.
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"

const millisBoundaries = MetricBoundaries.exponential({ start: 1, factor: 2, count: 18 })

export const queueDepth = Metric.gauge("sluice_executor_queue_depth", {
  description: "Requests waiting in the executor's priority queue"
})
export const inFlight = Metric.gauge("sluice_executor_in_flight", { description: "Requests running now" })
export const concurrency = Metric.gauge("sluice_executor_concurrency", {
  description: "How many requests may run at once: the limit in force (setConcurrency changes it)"
})
export const admissionWait = Metric.histogram(
  "sluice_executor_admission_wait_ms",
  millisBoundaries,
  "From leaving the queue to starting: waiting for rate and token admission and a permit"
)
export const callDuration = Metric.histogram(
  "sluice_executor_call_duration_ms",
  millisBoundaries,
  "How long requests ran"
)
export const outcomes = Metric.counter("sluice_executor_requests_total", {
  description: "Requests that ended, by status",
  incremental: true
})

/**
 * The metrics of one executor, each bound to its labels once: a tag array
 * built per update would miss Effect's hook cache and cost a registry lookup
 * on every request.
 */
export const makeMetrics = (executor: string) => {
  const label = MetricLabel.make("executor", executor)
  const outcome = (status: string) => Metric.taggedWithLabels(outcomes, [label, MetricLabel.make("status", status)])
  const byStatus = { COMPLETED: outcome("COMPLETED"), FAILED: outcome("FAILED"), CANCELLED: outcome("CANCELLED") }
  return {
    queueDepth: Metric.taggedWithLabels(queueDepth, [label]),
    inFlight: Metric.taggedWithLabels(inFlight, [label]),
    concurrency: Metric.taggedWithLabels(concurrency, [label]),
    admissionWait: Metric.taggedWithLabels(admissionWait, [label]),
    callDuration: Metric.taggedWithLabels(callDuration, [label]),
    outcome: (status: keyof typeof byStatus, count: number) => byStatus[status].unsafeUpdate(count, [])
  }
}
