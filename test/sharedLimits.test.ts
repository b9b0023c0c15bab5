/**
 * Across modules: executors and limiters sharing one budget.
 * - Two executors given the same RateLimiter split its rate between them.
 * - Two limiters with the same name on one RateLimiterStore share buckets
 *   (how two processes share a Redis-held limit); a different name does not.
 */
import { describe, expect, it } from "@effect/vitest"
import { Executor, RateLimiter, RateLimiterStore } from "@sluice/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"

const recordStart = (starts: Array<string>, label: string) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(`${label}@${now}`)))

describe("shared limits", () => {
  it.scoped("two executors on one limiter share its rate, first come first served", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        limits: { requests: { limit: 10, interval: "1 second", capacity: 1 } }
      }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      const left = yield* Executor.make({ name: "left", concurrency: 4, rateLimiter: limiter })
      const right = yield* Executor.make({ name: "right", concurrency: 4, rateLimiter: limiter })
      const starts: Array<string> = []
      const fiber = yield* Effect.fork(
        Effect.all(
          [
            left.submitAll([recordStart(starts, "L1"), recordStart(starts, "L2")]),
            right.submitAll([recordStart(starts, "R1"), recordStart(starts, "R2")])
          ],
          { concurrency: "unbounded" }
        )
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      // One budget of 10 per second for both: four starts, 100 ms apart.
      expect(starts.map((start) => Number(start.split("@")[1]))).toEqual([0, 100, 200, 300])
      expect(starts.filter((start) => start.startsWith("L")).length).toBe(2)
    })
  )

  it.scoped("limiters with the same name on one store share buckets; another name does not", () =>
    Effect.gen(function* () {
      const store = yield* RateLimiterStore.makeMemory()
      const make = (name: string) =>
        RateLimiter.make({ name, limits: { tokens: { limit: 1_000, interval: "1 minute" } } }).pipe(
          Effect.provideService(RateLimiterStore.RateLimiterStore, store)
        )
      const processA = yield* make("openai")
      const processB = yield* make("openai")
      const other = yield* make("anthropic")
      yield* processA.acquire({ tokens: 700 })
      const fromB = yield* processB.tryAcquire({ tokens: 700 })
      // 400 more tokens are needed at 1,000 per minute: 24 seconds.
      expect(fromB).toEqual({ _tag: "Delayed", retryAfter: Duration.millis(24_000) })
      const fromOther = yield* other.tryAcquire({ tokens: 700 })
      expect(fromOther._tag).toBe("Admitted")
      const [shared] = yield* processB.state()
      expect(Math.round(shared!.available)).toBe(300)
    })
  )
})
