/**
 * Drives the `executor-tenants` example under TestClock: tenant A's third
 * request waits a second for its own bucket; tenant B's request starts at
 * once, and settling gives back what each call did not use.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { ask, TenantsExecutor } from "./executor-tenants.js"

describe("examples/executor-tenants", () => {
  it.scoped("a tenant out of quota holds only its own requests", () =>
    Effect.gen(function* () {
      const startedAt = (tenant: string, prompt: string) =>
        Effect.zipRight(ask(tenant, prompt), Clock.currentTimeMillis)
      const fiber = yield* Effect.fork(
        Effect.all(
          [
            startedAt("tenant-a", "one"),
            startedAt("tenant-a", "two"),
            startedAt("tenant-a", "three"),
            startedAt("tenant-b", "hello")
          ],
          { concurrency: "unbounded" }
        )
      )
      yield* TestClock.adjust("2 seconds")
      // Each call takes 20 ms; tenant A's third waits a second for its bucket (a burst of 2, then one a second).
      expect(yield* Fiber.join(fiber)).toEqual([20, 20, 1020, 20])
    }).pipe(Effect.provide(TenantsExecutor))
  )
})
