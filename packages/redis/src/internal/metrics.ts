/**
 * The Redis store's Effect `Metric`s: switches between Redis and the outage
 * policy (tagged `to`), calls that reached Redis, and whether Redis serves now.
 */
import * as Metric from "effect/Metric"

export const switches = Metric.counter("sluice_redis_store_switches_total", {
  description: "Switches of the Redis rate-limiter store between Redis and its outage policy, tagged to",
  incremental: true
})
export const roundTrips = Metric.counter("sluice_redis_store_round_trips_total", {
  description: "Calls of the Redis rate-limiter store that reached Redis",
  incremental: true
})
export const available = Metric.gauge("sluice_redis_store_available", {
  description: "1 while the Redis rate-limiter store runs on Redis, 0 while on its outage policy"
})
