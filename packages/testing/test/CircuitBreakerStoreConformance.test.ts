/**
 * The breaker-store conformance suite against the memory store, built as an
 * Effect and through its Layer.
 */
import { CircuitBreakerStore } from "@sluice/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as CircuitBreakerStoreConformance from "../src/CircuitBreakerStoreConformance.js"

CircuitBreakerStoreConformance.suite("memory", { store: CircuitBreakerStore.makeMemory })

CircuitBreakerStoreConformance.suite("memory (layerMemory)", {
  store: Effect.map(Layer.build(CircuitBreakerStore.layerMemory), Context.get(CircuitBreakerStore.CircuitBreakerStore))
})
