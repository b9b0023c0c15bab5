import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Executor from "../src/Executor.js"
import * as Hedge from "../src/Hedge.js"
import { InvalidOptionsError } from "../src/InvalidOptions.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import type { RequestEvent } from "../src/RequestEvent.js"

const settle = TestClock.adjust(0)

class Flaky {
  readonly _tag = "Flaky"
  readonly retryable = true
  constructor(readonly retryAfter?: Duration.Duration) {}
}

/** Fails with the scripted errors in turn, then succeeds; records when each attempt started. */
const script = (errors: ReadonlyArray<unknown>) => {
  const starts: Array<number> = []
  const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    starts.push(now)
    const error = errors[starts.length - 1]
    return error === undefined ? Effect.succeed(`ok after ${starts.length}`) : Effect.fail(error)
  })
  return { starts, call }
}

const tokensLeft = (limiter: RateLimiter.RateLimiterShape) =>
  Effect.map(limiter.state(), (buckets) => Math.round(buckets.find((bucket) => bucket.name === "tokens")!.available))

const statusesOf = (events: ReadonlyArray<RequestEvent>, id: number) =>
  events.filter((event) => event.id === id).map((event) => event.status)

const makeLimiter = (tokens: number) =>
  RateLimiter.make({
    limits: {
      requests: { limit: 1, interval: "1 second" },
      // Refills one token per 1,000 hours: within a test, a plain counter.
      tokens: { limit: 1, interval: "1000 hours", capacity: tokens }
    }
  }).pipe(Effect.provide(RateLimiterStore.layerMemory()))

describe("Executor with retry, breaker, timeout and deadline", () => {
  it.scoped("re-admits every attempt through the limits and records each attempt", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter(100)
      const executor = yield* Executor.make({
        name: "retrying",
        concurrency: 2,
        rateLimiter: limiter,
        retry: { maxAttempts: 5, base: "100 millis", jitter: "none" }
      })
      const events = yield* executor.subscribe
      const { starts, call } = script([new Flaky(), new Flaky()])
      const fiber = yield* Effect.fork(executor.submit(call, { cost: { tokens: 10 } }))
      yield* TestClock.adjust("5 seconds")
      expect(yield* Fiber.join(fiber)).toBe("ok after 3")
      // 100 ms of backoff, but the requests limit (1 per second) holds each re-admission to the next second
      // (and its sliding log, which counts a window of one interval plus a 5 ms margin, to 5 ms past it).
      expect(starts).toEqual([0, 1005, 2010])
      expect(yield* tokensLeft(limiter)).toBe(70)

      const all = Array.from(yield* Queue.takeAll(events))
      // Between attempts: PROCESSING (the delay), then QUEUED again and PROCESSING (re-admission).
      expect(statusesOf(all, 1)).toEqual([
        "PENDING",
        "QUEUED",
        "PROCESSING",
        "CALLING",
        "PROCESSING",
        "QUEUED",
        "PROCESSING",
        "CALLING",
        "PROCESSING",
        "QUEUED",
        "PROCESSING",
        "CALLING",
        "COMPLETED"
      ])
      const last = all[all.length - 1]!
      expect(last.attempts).toBe(3)
      expect(last.attemptLog).toEqual([
        { attempt: 1, startedAt: 0, endedAt: 0, outcome: "failure", error: new Flaky(), retryDelayMillis: 100 },
        { attempt: 2, startedAt: 1005, endedAt: 1005, outcome: "failure", error: new Flaky(), retryDelayMillis: 200 },
        { attempt: 3, startedAt: 2010, endedAt: 2010, outcome: "success" }
      ])
      expect(yield* executor.stats).toMatchObject({ completed: 1, inFlight: 0, retrying: 0, availablePermits: 2 })
    })
  )

  it.scoped("holds no permit between attempts, and says why it gave up", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({
        name: "gave-up",
        concurrency: 1,
        retry: { maxAttempts: 2, base: "1 second", jitter: "none" }
      })
      const events = yield* executor.subscribe
      const failing = script([new Flaky(), new Flaky()])
      const first = yield* Effect.fork(Effect.exit(executor.submit(failing.call)))
      yield* settle
      // During the first one's retry delay, the only permit is free for another request.
      expect(yield* executor.stats).toMatchObject({ inFlight: 0, retrying: 1, availablePermits: 1 })
      const other = yield* executor.submit(Effect.succeed("other"))
      expect(other).toBe("other")
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(first)).toEqual(Exit.fail(new Flaky()))
      const final = Array.from(yield* Queue.takeAll(events))
        .filter((event) => event.id === 1)
        .pop()!
      expect(final.status).toBe("FAILED")
      expect(final.attemptLog?.map((record) => [record.outcome, record.gaveUp])).toEqual([
        ["failure", undefined],
        ["failure", "AttemptsExhausted"]
      ])
    })
  )

  it.scoped("respects Retry-After, and a Retry-After above the ceiling ends at once", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({
        name: "retry-after",
        concurrency: 1,
        retry: { maxAttempts: 3, base: "10 millis", jitter: "none", retryAfterCeiling: "10 seconds" }
      })
      const polite = script([new Flaky(Duration.seconds(3))])
      const fiber = yield* Effect.fork(executor.submit(polite.call))
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      expect(polite.starts).toEqual([0, 3000])

      const rude = script([new Flaky(Duration.minutes(5))])
      const exit = yield* Effect.exit(executor.submit(rude.call))
      expect(exit).toEqual(Exit.fail(new Flaky(Duration.minutes(5))))
      expect(rude.starts).toHaveLength(1)
    })
  )

  it.scoped("an open breaker refuses before admission: the refused request costs no tokens", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter(100)
      const executor = yield* Executor.make({
        name: "breaker",
        concurrency: 1,
        rateLimiter: limiter,
        breaker: { policy: { kind: "consecutive", failures: 1 }, openDuration: "1 minute" }
      })
      yield* Effect.exit(executor.submit(Effect.fail("down"), { cost: { tokens: 10 } }))
      expect(yield* tokensLeft(limiter)).toBe(90)
      let ran = false
      const refused = yield* Effect.flip(
        executor.submit(
          Effect.sync(() => (ran = true)),
          { cost: { tokens: 10 } }
        )
      )
      expect(ran).toBe(false)
      expect(refused).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
      expect(refused).toMatchObject({ breaker: "breaker", key: "default", state: "OPEN" })
      expect(yield* tokensLeft(limiter)).toBe(90)
      // Not even a request-limit slot was taken: a third request is admitted at once when the breaker closes.
      const [bucket] = yield* limiter.state()
      expect(bucket!.available).toBe(0) // the first request's slot, refilling
      expect(yield* executor.stats).toMatchObject({ failed: 2, inFlight: 0, availablePermits: 1 })
    })
  )

  it.scoped("a breaker that opens while a request waits for admission refuses it and refunds its tokens", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter(100)
      const executor = yield* Executor.make({
        name: "late-open",
        concurrency: 2,
        rateLimiter: limiter,
        breaker: { policy: { kind: "consecutive", failures: 1 }, openDuration: "1 minute" }
      })
      const first = yield* Effect.fork(
        Effect.exit(
          executor.submit(Effect.zipRight(Effect.sleep("500 millis"), Effect.fail("down")), { cost: { tokens: 10 } })
        )
      )
      // Waits for the requests limit until t=1005; the breaker opens at t=500.
      const second = yield* Effect.fork(Effect.exit(executor.submit(Effect.succeed("late"), { cost: { tokens: 10 } })))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(first)
      const exit = yield* Fiber.join(second)
      expect(exit).toEqual(
        Exit.fail(
          new CircuitBreaker.CircuitOpenError({
            breaker: "late-open",
            key: "default",
            state: "OPEN",
            retryAfterMillis: 59_495,
            trip: {
              reason: "Tripped",
              at: 500,
              failure: "down",
              calls: 1,
              failures: 1,
              slowCalls: 0,
              failureRate: 1,
              slowCallRate: 0
            }
          })
        )
      )
      expect(yield* tokensLeft(limiter)).toBe(90)
      expect(yield* executor.stats).toMatchObject({ inFlight: 0, availablePermits: 2 })
    })
  )

  it.scoped(
    "a policy that retries CircuitOpenError makes requests wait out an open breaker, paying nothing meanwhile",
    () =>
      Effect.gen(function* () {
        const limiter = yield* makeLimiter(100)
        const breaker = yield* CircuitBreaker.make({
          name: "waiting",
          policy: { kind: "consecutive", failures: 1 },
          openDuration: "2 seconds"
        })
        const executor = yield* Executor.make({
          name: "waiting",
          concurrency: 1,
          rateLimiter: limiter,
          breaker,
          retry: {
            maxAttempts: 2,
            base: "10 millis",
            jitter: "none",
            isRetryable: (error) => error instanceof CircuitBreaker.CircuitOpenError
          }
        })
        const events = yield* executor.subscribe
        yield* Effect.exit(executor.submit(Effect.fail("down"), { cost: { tokens: 10 } }))
        expect(yield* breaker.state()).toBe("OPEN")
        const starts: Array<number> = []
        const call = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(now)))
        const waiting = yield* Effect.fork(executor.submit(call, { cost: { tokens: 10 } }))
        yield* TestClock.adjust("1 second")
        // Refused at dispatch, waiting for the breaker: no tokens taken, no call made.
        expect(starts).toEqual([])
        expect(yield* tokensLeft(limiter)).toBe(90)
        expect(yield* executor.stats).toMatchObject({ retrying: 1, inFlight: 0 })
        yield* TestClock.adjust("3 seconds")
        yield* Fiber.join(waiting)
        expect(starts).toHaveLength(1)
        expect(starts[0]!).toBeGreaterThanOrEqual(2000)
        expect(yield* breaker.state()).toBe("CLOSED")
        const final = Array.from(yield* Queue.takeAll(events))
          .filter((event) => event.id === 2)
          .pop()!
        expect(final.status).toBe("COMPLETED")
        // Refusals made no call: they are logged as rejected and counted as no attempt.
        expect(final.attempts).toBe(1)
        expect(final.attemptLog!.filter((record) => record.outcome === "rejected").length).toBeGreaterThanOrEqual(1)
        expect(final.attemptLog!.at(-1)!.outcome).toBe("success")
      })
  )

  it.scoped("per-attempt timeout is retried; the total deadline cuts the last attempt and is final", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({
        name: "deadline",
        concurrency: 1,
        timeout: "1 second",
        deadline: "2500 millis",
        retry: { maxAttempts: 10, base: "100 millis", jitter: "none" }
      })
      const events = yield* executor.subscribe
      const starts: Array<number> = []
      const hang = Effect.zipRight(
        Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(now))),
        Effect.never
      )
      const fiber = yield* Effect.fork(Effect.exit(executor.submit(hang)))
      yield* TestClock.adjust("10 seconds")
      const exit = yield* Fiber.join(fiber)
      expect(starts).toEqual([0, 1100, 2300])
      expect(exit).toEqual(
        Exit.fail(
          new Executor.ExecutorError({
            executor: "deadline",
            reason: "Deadline",
            requestId: 1,
            timeoutMillis: 2500
          })
        )
      )
      const final = Array.from(yield* Queue.takeAll(events)).pop()!
      expect(final.timestamps.FAILED).toBe(2500)
      expect(final.attemptLog?.map((record) => [record.outcome, record.endedAt, record.gaveUp])).toEqual([
        ["timeout", 1000, undefined],
        ["timeout", 2100, undefined],
        ["timeout", 2500, "NotRetryable"]
      ])
    })
  )

  it.scoped("a deadline ends a request still waiting in the queue", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "queued-deadline", concurrency: 1 })
      const blocker = yield* Effect.fork(executor.submit(Effect.sleep("10 seconds")))
      yield* settle
      const waiting = yield* Effect.fork(
        Effect.exit(executor.submit(Effect.succeed("never ran"), { deadline: "1 second" }))
      )
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.join(waiting)
      expect(exit).toEqual(
        Exit.fail(
          new Executor.ExecutorError({
            executor: "queued-deadline",
            reason: "Deadline",
            requestId: 2,
            timeoutMillis: 1000
          })
        )
      )
      expect(yield* executor.stats).toMatchObject({ queued: 0, failed: 1, inFlight: 1 })
      yield* TestClock.adjust("9 seconds")
      yield* Fiber.join(blocker)
    })
  )

  it.scoped("per-key settings override the executor's, field by field", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({
        name: "keyed",
        concurrency: 2,
        retry: { maxAttempts: 3, base: "10 millis", jitter: "none" },
        keys: { "no-retry": { retry: { maxAttempts: 1 } }, slow: { timeout: "50 millis" } }
      })
      const retried = script([new Flaky(), new Flaky()])
      const once = script([new Flaky()])
      const fibers = yield* Effect.all([
        Effect.fork(Effect.exit(executor.submit(retried.call, { key: "anything" }))),
        Effect.fork(Effect.exit(executor.submit(once.call, { key: "no-retry" }))),
        Effect.fork(Effect.exit(executor.submit(Effect.never, { key: "slow" })))
      ])
      yield* TestClock.adjust("1 second")
      const [retriedExit, onceExit, slowExit] = yield* Effect.forEach(fibers, Fiber.join)
      expect(retriedExit).toEqual(Exit.succeed("ok after 3"))
      expect(onceExit).toEqual(Exit.fail(new Flaky()))
      expect(retried.starts).toEqual([0, 10, 30])
      expect(once.starts).toEqual([0])
      // The slow key keeps the executor's retry: three attempts of 50 ms, 10 and 20 ms apart.
      expect(Exit.isFailure(slowExit!)).toBe(true)
    })
  )

  it.scoped("a caller interrupted between attempts ends CANCELLED and holds nothing", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter(100)
      const executor = yield* Executor.make({
        name: "cancel-retry",
        concurrency: 1,
        rateLimiter: limiter,
        retry: { maxAttempts: 5, base: "10 seconds", jitter: "none" }
      })
      const events = yield* executor.subscribe
      const fiber = yield* Effect.fork(executor.submit(Effect.fail(new Flaky()), { cost: { tokens: 10 } }))
      yield* TestClock.adjust("1 second")
      expect(yield* executor.stats).toMatchObject({ retrying: 1, inFlight: 0 })
      yield* Fiber.interrupt(fiber)
      expect(yield* executor.stats).toMatchObject({ retrying: 0, inFlight: 0, cancelled: 1, availablePermits: 1 })
      expect(yield* tokensLeft(limiter)).toBe(90)
      expect(Array.from(yield* Queue.takeAll(events)).pop()!.status).toBe("CANCELLED")
    })
  )

  it.scoped("a request interrupted after re-admission gives its tokens back", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        limits: { tokens: { limit: 1, interval: "1000 hours", capacity: 100 } }
      }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      const executor = yield* Executor.make({
        name: "readmitted",
        concurrency: 1,
        rateLimiter: limiter,
        retry: { maxAttempts: 5, base: "10 millis", jitter: "none" }
      })
      const gate = yield* Deferred.make<void>()
      const failing = yield* Effect.fork(executor.submit(Effect.fail(new Flaky()), { cost: { tokens: 10 } }))
      yield* settle
      // Meanwhile another request takes the only permit; the retry is admitted at t=10 and waits for the permit.
      const blocker = yield* Effect.fork(executor.submit(Deferred.await(gate), { cost: { tokens: 1 } }))
      yield* TestClock.adjust("2 seconds")
      expect(yield* tokensLeft(limiter)).toBe(79) // 10 + 1 + the re-admitted retry's 10
      yield* Fiber.interrupt(failing)
      expect(yield* tokensLeft(limiter)).toBe(89)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(blocker)
      expect(yield* executor.stats).toMatchObject({ inFlight: 0, retrying: 0, availablePermits: 1 })
    })
  )

  it.scoped("shutdown abandons a request waiting to retry", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({
        name: "abandon-retry",
        concurrency: 1,
        shutdownTimeout: "1 second",
        retry: { maxAttempts: 5, base: "1 minute", jitter: "none" }
      })
      const fiber = yield* Effect.fork(Effect.exit(executor.submit(Effect.fail(new Flaky()))))
      yield* settle
      const report = yield* Effect.fork(executor.shutdown())
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(report)).abandoned).toEqual([1])
      expect(yield* Fiber.join(fiber)).toEqual(
        Exit.fail(new Executor.ExecutorError({ executor: "abandon-retry", reason: "Abandoned", requestId: 1 }))
      )
      expect(yield* executor.stats).toMatchObject({ retrying: 0, inFlight: 0, cancelled: 1 })
    })
  )

  it.scoped("bad resilience options fail at construction, naming the field", () =>
    Effect.gen(function* () {
      const retry = yield* Effect.flip(Executor.make({ name: "bad", concurrency: 1, retry: { maxAttempts: 0 } }))
      expect(retry).toBeInstanceOf(InvalidOptionsError)
      expect(retry.message).toContain('Executor "bad" retry options are invalid: ["maxAttempts"]')
      const breaker = yield* Effect.flip(
        Executor.make({
          name: "bad",
          concurrency: 1,
          keys: { east: { breaker: { policy: { kind: "consecutive", failures: 0 } } } }
        })
      )
      expect(breaker.message).toContain('Executor "bad" keys.east.breaker options are invalid: ["policy","failures"]')
      const deadline = yield* Effect.flip(Executor.make({ name: "bad", concurrency: 1, deadline: 0 }))
      expect(deadline.message).toContain('["deadline"]')
    })
  )
})

describe("Hedging through the Executor", () => {
  it.scoped("the losing attempt is interrupted and returns its permit", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "hedged", concurrency: 2 })
      const events = yield* executor.subscribe
      const policy = yield* Hedge.policy({ delay: "100 millis" })
      const durations: Record<number, number> = { 1: 1000, 2: 50 }
      const fiber = yield* Effect.fork(
        Hedge.hedge(policy)((n) => executor.submit(Effect.as(Effect.sleep(durations[n]!), `attempt ${n}`)))
      )
      yield* TestClock.adjust("150 millis")
      expect(yield* Fiber.join(fiber)).toBe("attempt 2")
      expect(yield* executor.stats).toMatchObject({ inFlight: 0, availablePermits: 2, completed: 1, cancelled: 1 })
      const final = Array.from(yield* Queue.takeAll(events)).filter((event) => event.status === "CANCELLED")
      expect(final.map((event) => [event.id, event.timestamps.CANCELLED])).toEqual([[1, 150]])
    })
  )

  it.scoped("a losing attempt still waiting for its permit gives its tokens back", () =>
    Effect.gen(function* () {
      // Hedging to a second provider: the hedge waits for a permit there, holding its tokens.
      const primary = yield* Executor.make({ name: "primary", concurrency: 1 })
      const limiter = yield* RateLimiter.make({
        limits: { tokens: { limit: 1, interval: "1000 hours", capacity: 100 } }
      }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      const secondary = yield* Executor.make({ name: "secondary", concurrency: 1, rateLimiter: limiter })
      const gate = yield* Deferred.make<void>()
      const blocker = yield* Effect.fork(secondary.submit(Deferred.await(gate), { cost: 5 }))
      const policy = yield* Hedge.policy({ delay: "100 millis" })
      const fiber = yield* Effect.fork(
        Hedge.hedge(policy)((n) =>
          n === 1
            ? primary.submit(Effect.as(Effect.sleep("500 millis"), "primary"))
            : secondary.submit(Effect.succeed("secondary"), { cost: 10 })
        )
      )
      yield* TestClock.adjust("200 millis")
      // The hedge is admitted (10 tokens reserved) and waits for the secondary's only permit.
      expect(yield* tokensLeft(limiter)).toBe(85)
      expect(yield* secondary.stats).toMatchObject({ admitting: 1, inFlight: 1 })
      yield* TestClock.adjust("300 millis")
      expect(yield* Fiber.join(fiber)).toBe("primary")
      expect(yield* tokensLeft(limiter)).toBe(95)
      expect(yield* secondary.stats).toMatchObject({ admitting: 0, queued: 0, cancelled: 1 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(blocker)
      expect(yield* secondary.stats).toMatchObject({ inFlight: 0, availablePermits: 1 })
    })
  )
})
