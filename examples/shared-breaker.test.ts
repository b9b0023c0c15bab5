import { describe, expect, it } from "@effect/vitest"
import { CircuitBreakerStore } from "@sluice/core"
import * as Effect from "effect/Effect"
import { program } from "./shared-breaker.js"

describe("examples/shared-breaker", () => {
  it.scoped("A trips on ten failures; B, which made no call, learns OPEN and refuses with A's trip", () =>
    Effect.gen(function* () {
      const { learned, refused } = yield* program
      expect(learned).toMatchObject({ breaker: "payments-api", from: "CLOSED", to: "OPEN", shared: true })
      expect(refused).toMatchObject({ state: "OPEN", retryAfterMillis: 30_000 })
      expect(refused.trip).toMatchObject({ reason: "Tripped", calls: 10, failures: 10 })
    }).pipe(Effect.provide(CircuitBreakerStore.layerMemory))
  )
})
