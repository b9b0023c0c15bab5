import { RateLimiterStore } from "@sluice/core"
import * as RateLimiterStoreConformance from "@sluice/testing/RateLimiterStoreConformance"
import * as Effect from "effect/Effect"
import { testStore } from "./utils/redis.js"

// The same suite as the memory store's: the Redis store on the caller's clock (the suite passes every time
// as `now`; Redis TIME cannot be set), with keys that outlive the suite's invented times by a minute.
RateLimiterStoreConformance.suite("redis", {
  store: Effect.map(
    testStore({ time: "caller", expiryMargin: "1 minute" }, undefined, { deadline: "5 seconds" }),
    ({ store }) => store
  ),
  live: true
})

// And the memory store, side by side, so the two cannot drift.
RateLimiterStoreConformance.suite("memory (beside redis)", { store: RateLimiterStore.makeMemory() })
