import { CircuitBreakerStore } from "@sluice/core"
import * as CircuitBreakerStoreConformance from "@sluice/testing/CircuitBreakerStoreConformance"
import * as Effect from "effect/Effect"
import { processStore } from "./utils/breakerStore.js"
import { freshPrefix } from "./utils/redis.js"

// The same suite as the memory store's: the Redis store on the caller's clock (the suite passes every time
// as `now`; Redis TIME cannot be set), a fresh prefix per test, notices through the subscriber connection.
CircuitBreakerStoreConformance.suite("redis", {
  store: Effect.suspend(() => processStore(freshPrefix(), { time: "caller" }, undefined, { deadline: "5 seconds" })),
  live: true
})

// And the memory store, side by side, so the two cannot drift.
CircuitBreakerStoreConformance.suite("memory (beside redis)", { store: CircuitBreakerStore.makeMemory })
