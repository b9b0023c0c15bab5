/**
 * The CircuitBreaker's Effect `Metric`s, tagged by breaker name and key:
 * the state as a gauge (0 CLOSED, 1 HALF_OPEN, 2 OPEN, 3 ISOLATED), refused
 * calls and transitions (tagged `from` and `to`) as counters. Bound to their
 * labels once per key, so the hot path does no registry lookup.
 */
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import type { State } from "../CircuitBreaker.js"

export const stateGauge = Metric.gauge("sluice_breaker_state", {
  description: "Circuit breaker state: 0 CLOSED, 1 HALF_OPEN, 2 OPEN, 3 ISOLATED"
})
export const rejections = Metric.counter("sluice_breaker_rejections_total", {
  description: "Calls refused by an open, isolated or saturated half-open breaker",
  incremental: true
})
export const transitions = Metric.counter("sluice_breaker_transitions_total", {
  description: "State changes, tagged from and to",
  incremental: true
})

const stateValue: Record<State, number> = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2, ISOLATED: 3 }

export const makeKeyMetrics = (breaker: string, key: string) => {
  const labels = [MetricLabel.make("breaker", breaker), MetricLabel.make("key", key)]
  const state = Metric.taggedWithLabels(stateGauge, labels)
  const rejected = Metric.taggedWithLabels(rejections, labels)
  return {
    state: (value: State) => state.unsafeUpdate(stateValue[value], []),
    rejected: () => rejected.unsafeUpdate(1, []),
    transition: (from: State, to: State) =>
      Metric.taggedWithLabels(transitions, [
        ...labels,
        MetricLabel.make("from", from),
        MetricLabel.make("to", to)
      ]).unsafeUpdate(1, [])
  }
}
