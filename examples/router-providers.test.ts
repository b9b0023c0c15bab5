/**
 * Drives the `router-providers` example under TestClock: org-a's 429 sends
 * the first call to openai and cools all of org-a (both deployments) for the
 * 2 s it asked; openai takes every call meanwhile; afterwards org-a's
 * deployments take their turns again.
 */
import { describe, expect, it } from "@effect/vitest"
import { Router } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { ask, ModelsRouter, makeCallModel } from "./router-providers.js"

describe("examples/router-providers", () => {
  it.scoped("a 429 cools its whole domain; the other domain carries the calls until it is back", () =>
    Effect.gen(function* () {
      const callModel = makeCallModel()
      const answered = (prompt: string) =>
        Effect.gen(function* () {
          const fiber = yield* Effect.fork(ask(callModel, prompt))
          yield* TestClock.adjust("50 millis")
          return (yield* Fiber.join(fiber)).provider
        })
      const router = yield* Router.Router
      expect(yield* answered("one")).toBe("openai")
      const snapshot = yield* router.snapshot
      expect(snapshot.domains.find((domain) => domain.name === "org-a")!.cooldownUntil).toBe(2_000)
      expect([yield* answered("two"), yield* answered("three")]).toEqual(["openai", "openai"])
      yield* TestClock.adjust("2 seconds")
      const after = [yield* answered("four"), yield* answered("five"), yield* answered("six")]
      expect(after).toContain("azure-east")
      expect(after).toContain("azure-west")
      expect(after).not.toContain("backup")
    }).pipe(Effect.provide(ModelsRouter))
  )
})
