/**
 * The store conformance suite against the memory store: built as a scoped
 * Effect (with its sweeper standing in for eviction, at the suite's times)
 * and as a Layer.
 */
import { RateLimiterStore } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as RateLimiterStoreConformance from "../src/RateLimiterStoreConformance.js"

RateLimiterStoreConformance.suite("memory", {
  store: RateLimiterStore.makeMemory(),
  // The memory store evicts on its own Clock: move it to the suite's time, then sweep.
  evictIdle: (store, now) => Effect.zipRight(TestClock.setTime(now), store.sweep)
})

RateLimiterStoreConformance.suite("memory (layerMemory)", { store: RateLimiterStore.layerMemory() })
