import { describe, expect, it } from "@effect/vitest"
import { Executor } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import { flakyProvider, ResilientExecutor } from "./resilient-executor.js"

describe("examples/resilient-executor", () => {
  it.scoped("every third call is a 429; each is retried after its Retry-After and every prompt is answered", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.Executor
      const events = yield* executor.subscribe
      const call = flakyProvider()
      const fiber = yield* Effect.fork(
        Effect.forEach(["one", "two", "three"], (prompt) => Executor.submit(call(prompt)), { concurrency: 1 })
      )
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(fiber)).toEqual(["answer to one", "answer to two", "answer to three"])
      const third = Array.from(yield* Queue.takeAll(events))
        .filter((event) => event.id === 3)
        .pop()!
      expect(third.attempts).toBe(2)
      // The first attempt ended at 150 ms (three 50 ms calls); the retry waited at least the 500 ms Retry-After.
      const [first, second] = third.attemptLog!
      expect(first).toMatchObject({ outcome: "failure", endedAt: 150 })
      expect(first!.retryDelayMillis).toBeGreaterThanOrEqual(500)
      expect(second!.startedAt - first!.endedAt).toBe(first!.retryDelayMillis)
    }).pipe(Effect.provide(ResilientExecutor))
  )
})
