/**
 * The Redis breaker store's Effect `Metric`s: switches between Redis and each
 * breaker's local state (tagged `to`: `redis` or `local`), and whether Redis
 * serves now.
 *
 * @internal
 */
import * as Metric from "effect/Metric"

export const switches = Metric.counter("sluice_redis_breaker_store_switches_total", {
  description: "Switches of the Redis breaker store between Redis and the breakers' local state, tagged to",
  incremental: true
})
export const available = Metric.gauge("sluice_redis_breaker_store_available", {
  description: "1 while the Redis breaker store answers, 0 while the breakers decide alone"
})
