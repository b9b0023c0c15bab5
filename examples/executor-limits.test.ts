/**
 * Drives the `executor-limits` example under TestClock: virtual time, no real
 * sleeping. 12 prompts against a burst of 10 requests: the first 10 start at
 * once, then one every 100 ms (600 per minute).
 */
import { describe, expect, it } from "@effect/vitest"
import { Executor } from "@sluice/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { ModelExecutor } from "./executor-limits.js"

describe("examples/executor-limits", () => {
  it.scoped("starts a burst of 10, then one request every 100 ms", () =>
    Effect.gen(function* () {
      const starts: Array<number> = []
      const call = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(now)))
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 12 }), () => Executor.submit(call, { cost: { tokens: 100 } }), {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(starts.sort((a, b) => a - b)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, 200])
    }).pipe(Effect.provide(ModelExecutor))
  )
})
