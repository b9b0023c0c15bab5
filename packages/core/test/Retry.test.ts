import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import { InvalidOptionsError } from "../src/InvalidOptions.js"
import * as Retry from "../src/Retry.js"

class Flaky {
  readonly _tag = "Flaky"
  readonly retryable = true
  constructor(readonly retryAfter?: Duration.Duration) {}
}
class Fatal {
  readonly _tag = "Fatal"
  readonly retryable = false
}

/** A call that fails with `error` every time, recording when each attempt started. */
const failing = <E>(error: E) => {
  const starts: Array<number> = []
  const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    starts.push(now)
    return Effect.fail(error)
  })
  return { starts, call }
}

/** Runs `effect` in a fiber and moves the clock until it ends. */
const runToEnd = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(Effect.exit(effect))
    for (let i = 0; i < 1000 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("100 millis")
    return yield* Fiber.join(fiber)
  })

const seeded = Random.make("sluice")

describe("Retry", () => {
  it.effect("waits exactly the schedule's delays, capped, up to maxAttempts", () =>
    Effect.gen(function* () {
      const policy = yield* Retry.policy({ maxAttempts: 6, base: "100 millis", maxDelay: "1 second", jitter: "none" })
      const { starts, call } = failing(new Flaky())
      yield* runToEnd(Retry.retry(policy)(call))
      expect(starts).toEqual([0, 100, 300, 700, 1500, 2500])
    })
  )

  it.effect("full jitter: each delay is the seeded schedule's, within [0, min(cap, base × 2^n)]", () =>
    Effect.gen(function* () {
      const options = { base: "100 millis", maxDelay: "500 millis", jitter: "full" } as const
      const expected = yield* Schedule.run(Retry.backoff(options), 0, [1, 2, 3, 4, 5]).pipe(Effect.withRandom(seeded))
      const policy = yield* Retry.policy({ ...options, maxAttempts: 6 })
      const { starts, call } = failing(new Flaky())
      const delays: Array<number> = []
      yield* runToEnd(Retry.retry(policy)(call).pipe(Effect.withRandom(Random.make("sluice"))))
      for (let i = 1; i < starts.length; i++) delays.push(starts[i]! - starts[i - 1]!)
      const expectedMillis = Chunk.toReadonlyArray(expected).map(Duration.toMillis)
      expect(delays).toHaveLength(5)
      // TestClock sleeps to the fraction of a millisecond: the gaps are the schedule's delays.
      delays.forEach((delay, n) => {
        expect(delay).toBeCloseTo(expectedMillis[n]!, 6)
      })
      expectedMillis.forEach((delay, n) => {
        expect(delay).toBeGreaterThanOrEqual(0)
        expect(delay).toBeLessThanOrEqual(Math.min(500, 100 * 2 ** n))
      })
      expect(new Set(delays).size).toBeGreaterThan(1)
    })
  )

  it.effect("decorrelated jitter stays within [base, 3 × previous], capped", () =>
    Effect.gen(function* () {
      const delays = yield* Schedule.run(
        Retry.backoff({ base: "100 millis", maxDelay: "2 seconds", jitter: "decorrelated" }),
        0,
        Array.from({ length: 50 }, (_, i) => i)
      ).pipe(Effect.withRandom(seeded))
      let previous = 100
      for (const delay of Chunk.toReadonlyArray(delays).map(Duration.toMillis)) {
        expect(delay).toBeGreaterThanOrEqual(100)
        expect(delay).toBeLessThanOrEqual(Math.min(2000, previous * 3))
        previous = delay
      }
    })
  )

  it.effect("a retryAfter makes the next delay at least that long; a shorter one leaves the schedule's", () =>
    Effect.gen(function* () {
      const policy = yield* Retry.policy({ maxAttempts: 3, base: "1 second", jitter: "none" })
      const errors = [new Flaky(Duration.seconds(5)), new Flaky(Duration.millis(10))]
      const starts: Array<number> = []
      const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
        starts.push(now)
        return Effect.fail(errors[starts.length - 1] ?? new Flaky())
      })
      yield* runToEnd(Retry.retry(policy)(call))
      expect(starts).toEqual([0, 5000, 7000])
    })
  )

  it.effect("a retryAfter above the ceiling gives up at once", () =>
    Effect.gen(function* () {
      const policy = yield* Retry.policy({ maxAttempts: 5, retryAfterCeiling: "1 minute" })
      const error = new Flaky(Duration.minutes(2))
      const { starts, call } = failing(error)
      const exit = yield* runToEnd(Retry.retry(policy)(call))
      expect(starts).toEqual([0])
      expect(exit).toStrictEqual(Exit.fail(error))
    })
  )

  it.effect("non-retryable errors, and defects, are not retried", () =>
    Effect.gen(function* () {
      const policy = yield* Retry.policy({ maxAttempts: 5, base: "10 millis" })
      const fatal = failing(new Fatal())
      yield* runToEnd(Retry.retry(policy)(fatal.call))
      expect(fatal.starts).toHaveLength(1)
      const plain = failing("no verdict")
      yield* runToEnd(Retry.retry(policy)(plain.call))
      expect(plain.starts).toHaveLength(1)
      let defects = 0
      yield* runToEnd(Retry.retry(policy)(Effect.suspend(() => Effect.die(`bug ${++defects}`))))
      expect(defects).toBe(1)
    })
  )

  it.effect("a predicate can classify instead of the error's verdict", () =>
    Effect.gen(function* () {
      const policy = yield* Retry.policy({
        maxAttempts: 4,
        base: "10 millis",
        isRetryable: (error) => error === "try again"
      })
      const { starts, call } = failing("try again")
      yield* runToEnd(Retry.retry(policy)(call))
      expect(starts).toHaveLength(4)
    })
  )

  it.effect("no attempt is scheduled to start past maxElapsed", () =>
    Effect.gen(function* () {
      const policy = yield* Retry.policy({ maxAttempts: 10, base: "1 second", jitter: "none", maxElapsed: "5 seconds" })
      const { starts, call } = failing(new Flaky())
      yield* runToEnd(Retry.retry(policy)(call))
      // 0, 1000, 3000; the next would start at 7000.
      expect(starts).toEqual([0, 1000, 3000])
    })
  )

  it.effect("succeeds as soon as an attempt does", () =>
    Effect.gen(function* () {
      const policy = yield* Retry.policy({ maxAttempts: 5, base: "10 millis", jitter: "none" })
      let attempts = 0
      const call = Effect.suspend(() => (++attempts < 3 ? Effect.fail(new Flaky()) : Effect.succeed(attempts)))
      const fiber = yield* Effect.fork(Retry.retry(policy)(call))
      yield* TestClock.adjust("30 millis")
      expect(yield* Fiber.join(fiber)).toBe(3)
    })
  )

  describe("budget", () => {
    it.effect("100 requests against a failing dependency with a 20% budget send at most 20 retries", () =>
      Effect.gen(function* () {
        const budget = yield* Retry.makeBudget({ ratio: 0.2, window: "10 seconds" })
        const policy = yield* Retry.policy({ maxAttempts: 3, base: "10 millis", jitter: "none", budget })
        let calls = 0
        const dependency = Effect.suspend(() => {
          calls++
          return Effect.fail(new Flaky())
        })
        const fiber = yield* Effect.fork(
          Effect.forEach(Array.from({ length: 100 }), () => Effect.exit(Retry.retry(policy)(dependency)), {
            concurrency: "unbounded"
          })
        )
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
        const retries = calls - 100
        expect(retries).toBe(20)
        expect(yield* budget.state).toEqual({ requests: 100, retries: 20, allowance: 20 })
      })
    )

    it.effect("counts only the window; the minimum allowance holds when traffic is light", () =>
      Effect.gen(function* () {
        const budget = yield* Retry.makeBudget({ ratio: 0.5, minRetries: 2, window: "10 seconds" })
        expect(yield* budget.tryRetry).toBe(true)
        expect(yield* budget.tryRetry).toBe(true)
        expect(yield* budget.tryRetry).toBe(false)
        for (let i = 0; i < 6; i++) yield* budget.recordRequest
        expect(yield* budget.tryRetry).toBe(true) // allowance 3
        expect(yield* budget.tryRetry).toBe(false)
        yield* TestClock.adjust("10 seconds")
        expect(yield* budget.state).toEqual({ requests: 0, retries: 0, allowance: 2 })
      })
    )
  })

  it.effect("bad options fail naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Retry.policy({ maxAttempts: 0, factor: 0.5, jitter: "some" as "full" }))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.message).toContain('["maxAttempts"]')
      expect(error.message).toContain('["factor"]')
      expect(error.message).toContain('["jitter"]')
      const budget = yield* Effect.flip(Retry.makeBudget({ ratio: 2 }))
      expect(budget.message).toContain('["ratio"]')
    })
  )
})
