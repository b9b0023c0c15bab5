import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as Executor from "../src/Executor.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import type { RequestEvent } from "../src/RequestEvent.js"

/**
 * A request whose only resilience is its retry policy runs its first attempt
 * on the plain path (when the executor's spans are off) and moves to the
 * resilient path only once that attempt failed. With spans on, the same
 * request takes the resilient path from the start. Each scenario runs on
 * both, and what a caller or an observer can see must be the same.
 */

const settle = TestClock.adjust(0)

class Flaky {
  readonly _tag = "Flaky"
  readonly retryable = true
}

class Fatal {
  readonly _tag = "Fatal"
  readonly retryable = false
}

/** Fails with the scripted errors in turn, then succeeds. */
const script = (errors: ReadonlyArray<unknown>) => {
  let calls = 0
  return Effect.suspend(() => {
    const error = errors[calls++]
    return error === undefined ? Effect.succeed(`ok after ${calls}`) : Effect.fail(error)
  })
}

const makeLimiter = (tokens: number) =>
  RateLimiter.make({ limits: { tokens: { limit: 1, interval: "1000 hours", capacity: tokens } } }).pipe(
    Effect.provide(RateLimiterStore.layerMemory())
  )

const tokensLeft = (limiter: RateLimiter.RateLimiterShape) =>
  Effect.map(limiter.state(), (buckets) => Math.round(buckets.find((bucket) => bucket.name === "tokens")!.available))

/** Each request's events in order, without the executor's name. */
const byRequest = (events: ReadonlyArray<RequestEvent>) => {
  const out: Record<number, Array<Omit<RequestEvent, "executor">>> = {}
  for (const { executor: _, ...event } of events) (out[event.id] ??= []).push(event)
  return out
}

const RETRY = { maxAttempts: 3, base: "100 millis", jitter: "none" } as const

type Scenario = (executor: Executor.ExecutorShape) => Effect.Effect<unknown, unknown, any>

/** Runs `scenario` on an executor with spans on (the resilient path) and one with spans off (attempt 1 plain). */
const onBothPaths = (options: Omit<Executor.Options, "name" | "spans">, scenario: Scenario) =>
  Effect.gen(function* () {
    // Each on a clock of its own, from zero.
    const run = (spans: boolean) =>
      Effect.provide(
        Effect.scoped(
          Effect.gen(function* () {
            const executor = yield* Executor.make({ ...options, name: "retry-only", spans })
            const events = yield* executor.subscribe
            const answer = yield* scenario(executor)
            yield* settle
            const stats = yield* executor.stats
            return { answer, stats, events: byRequest(Array.from(yield* Queue.takeAll(events))) }
          })
        ),
        TestContext.TestContext
      )
    const resilient = yield* run(true)
    const plainFirst = yield* run(false)
    expect(plainFirst).toEqual(resilient)
    return plainFirst
  })

describe("Executor: a request with a retry policy alone", () => {
  it.scoped("a store that fails is not retried by the policy's default verdict: one attempt, StoreFailure", () =>
    Effect.gen(function* () {
      // The store's outage policy handles a store that is down; a retry loop would add attempts while it is.
      const memory = yield* RateLimiterStore.makeMemory()
      let reserves = 0
      const failing: RateLimiterStore.RateLimiterStoreShape = {
        ...memory,
        reserve: () =>
          Effect.suspend(() => {
            reserves++
            return Effect.fail(new RateLimiterStore.RateLimiterStoreError({ operation: "reserve", message: "down" }))
          })
      }
      const limiter = yield* RateLimiter.make({ limits: { requests: { limit: 10, interval: "1 second" } } }).pipe(
        Effect.provideService(RateLimiterStore.RateLimiterStore, failing)
      )
      const executor = yield* Executor.make({
        name: "store-down",
        concurrency: 1,
        rateLimiter: limiter,
        retry: { maxAttempts: 3, base: "10 millis" }
      })
      const fiber = yield* Effect.fork(Effect.flip(executor.submit(Effect.succeed("sent"))))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "RateLimiterError", reason: "StoreFailure", retryable: false })
      expect(reserves).toBe(1)
    })
  )

  it.scoped("succeeds at once: the same events and attempt log as on the resilient path", () =>
    Effect.gen(function* () {
      const { answer, events, stats } = yield* onBothPaths({ concurrency: 2, retry: RETRY }, (executor) =>
        executor.submit(Effect.succeed("ok"))
      )
      expect(answer).toBe("ok")
      expect(events[1]!.map((event) => event.status)).toEqual([
        "PENDING",
        "QUEUED",
        "PROCESSING",
        "CALLING",
        "COMPLETED"
      ])
      expect(events[1]!.at(-1)!.attemptLog).toEqual([{ attempt: 1, startedAt: 0, endedAt: 0, outcome: "success" }])
      expect(stats).toMatchObject({ completed: 1, inFlight: 0, retrying: 0, availablePermits: 2 })
    })
  )

  it.scoped("a failed first attempt is retried through the resilient path, re-admitted through the limits", () =>
    Effect.gen(function* () {
      const { answer, events, stats } = yield* onBothPaths({ concurrency: 1, retry: RETRY }, (executor) =>
        Effect.gen(function* () {
          const calls = script([new Flaky(), new Flaky()])
          const fiber = yield* Effect.fork(
            executor.submit(Effect.zipLeft(calls, Effect.sleep("10 millis")), { cost: { tokens: 5 } })
          )
          yield* settle
          // Between attempts it holds no permit.
          const between = yield* executor.stats
          yield* TestClock.adjust("1 second")
          return [between, yield* Fiber.join(fiber)]
        })
      )
      expect(answer).toEqual([expect.objectContaining({ inFlight: 0, retrying: 1, availablePermits: 1 }), "ok after 3"])
      expect(events[1]!.map((event) => event.status)).toEqual([
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
      expect(events[1]!.at(-1)!.attemptLog).toEqual([
        { attempt: 1, startedAt: 0, endedAt: 0, outcome: "failure", error: new Flaky(), retryDelayMillis: 100 },
        { attempt: 2, startedAt: 100, endedAt: 100, outcome: "failure", error: new Flaky(), retryDelayMillis: 200 },
        { attempt: 3, startedAt: 300, endedAt: 310, outcome: "success" }
      ])
      expect(stats).toMatchObject({ completed: 1, inFlight: 0, retrying: 0, availablePermits: 1 })
    })
  )

  it.scoped("a first attempt that is not retried ends FAILED at once, saying why", () =>
    Effect.gen(function* () {
      const { answer, events } = yield* onBothPaths({ concurrency: 1, retry: RETRY }, (executor) =>
        Effect.exit(executor.submit(Effect.fail(new Fatal())))
      )
      expect(answer).toEqual(Exit.fail(new Fatal()))
      expect(events[1]!.at(-1)).toMatchObject({ status: "FAILED", attempts: 1, error: new Fatal() })
      expect(events[1]!.at(-1)!.attemptLog).toEqual([
        { attempt: 1, startedAt: 0, endedAt: 0, outcome: "failure", error: new Fatal(), gaveUp: "NotRetryable" }
      ])
    })
  )

  it.scoped("a defect in the first attempt is not retried", () =>
    Effect.gen(function* () {
      const { answer, events } = yield* onBothPaths({ concurrency: 1, retry: RETRY }, (executor) =>
        Effect.map(Effect.exit(executor.submit(Effect.die("bug"))), Exit.isFailure)
      )
      expect(answer).toBe(true)
      expect(events[1]!.at(-1)!.attemptLog?.map((record) => [record.outcome, record.gaveUp])).toEqual([
        ["failure", "NotRetryable"]
      ])
    })
  )

  it.scoped("a per-attempt timeout in the first attempt is logged as a timeout and retried", () =>
    Effect.gen(function* () {
      const { answer, events } = yield* onBothPaths({ concurrency: 1, retry: RETRY, timeout: "1 second" }, (executor) =>
        Effect.gen(function* () {
          let calls = 0
          const slowOnce = Effect.suspend(() => (calls++ === 0 ? Effect.never : Effect.succeed("second")))
          const fiber = yield* Effect.fork(executor.submit(slowOnce))
          yield* TestClock.adjust("2 seconds")
          return yield* Fiber.join(fiber)
        })
      )
      expect(answer).toBe("second")
      expect(events[1]!.at(-1)!.attemptLog?.map((record) => [record.attempt, record.outcome, record.endedAt])).toEqual([
        [1, "timeout", 1000],
        [2, "success", 1100]
      ])
    })
  )

  it.scoped("a deadline given at submit takes the resilient path: it bounds the attempt and the retries", () =>
    Effect.gen(function* () {
      const { answer, events } = yield* onBothPaths({ concurrency: 1, retry: RETRY }, (executor) =>
        Effect.gen(function* () {
          const fiber = yield* Effect.fork(Effect.exit(executor.submit(Effect.never, { deadline: "250 millis" })))
          yield* TestClock.adjust("1 second")
          return Exit.isFailure(yield* Fiber.join(fiber))
        })
      )
      expect(answer).toBe(true)
      expect(events[1]!.at(-1)).toMatchObject({ status: "FAILED", error: { reason: "Deadline" } })
      expect(events[1]!.at(-1)!.attemptLog?.map((record) => [record.outcome, record.endedAt])).toEqual([
        ["timeout", 250]
      ])
    })
  )

  it.scoped("with limits: the first attempt spends its tokens, a retry pays again, and a failure refunds nothing", () =>
    Effect.gen(function* () {
      for (const spans of [true, false]) {
        const limiter = yield* makeLimiter(100)
        const executor = yield* Executor.make({
          name: "limited",
          concurrency: 1,
          rateLimiter: limiter,
          retry: RETRY,
          spans
        })
        const exit = yield* Effect.fork(
          Effect.exit(executor.submit(Effect.fail(new Flaky()), { cost: { tokens: 10 } }))
        )
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(exit)).toEqual(Exit.fail(new Flaky()))
        expect(yield* tokensLeft(limiter)).toBe(70)
        expect(yield* executor.stats).toMatchObject({ failed: 1, inFlight: 0, retrying: 0, availablePermits: 1 })
      }
    })
  )

  it.scoped("interrupted during its first attempt: CANCELLED, the permit back, the attempt logged as interrupted", () =>
    Effect.gen(function* () {
      const { answer, events, stats } = yield* onBothPaths({ concurrency: 1, retry: RETRY }, (executor) =>
        Effect.gen(function* () {
          const started = yield* Deferred.make<void>()
          const released = yield* Deferred.make<void>()
          const call = Effect.onInterrupt(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never), () =>
            Deferred.succeed(released, undefined)
          )
          const fiber = yield* Effect.fork(executor.submit(call))
          yield* Deferred.await(started)
          yield* TestClock.adjust("5 millis")
          yield* Fiber.interrupt(fiber)
          const next = yield* executor.submit(Effect.succeed("next"))
          return [yield* Deferred.isDone(released), next]
        })
      )
      expect(answer).toEqual([true, "next"])
      expect(events[1]!.at(-1)).toMatchObject({ status: "CANCELLED", error: "interrupted", attempts: 1 })
      expect(events[1]!.at(-1)!.attemptLog).toEqual([{ attempt: 1, startedAt: 0, endedAt: 5, outcome: "interrupted" }])
      expect(stats).toMatchObject({ cancelled: 1, completed: 1, inFlight: 0, retrying: 0, availablePermits: 1 })
    })
  )

  it.scoped("interrupted after its first attempt failed, waiting to retry: CANCELLED and holding nothing", () =>
    Effect.gen(function* () {
      const { events, stats } = yield* onBothPaths({ concurrency: 1, retry: RETRY }, (executor) =>
        Effect.gen(function* () {
          const fiber = yield* Effect.fork(executor.submit(Effect.fail(new Flaky())))
          yield* TestClock.adjust("50 millis")
          yield* Fiber.interrupt(fiber)
        })
      )
      expect(events[1]!.at(-1)).toMatchObject({ status: "CANCELLED", attempts: 1 })
      expect(stats).toMatchObject({ cancelled: 1, inFlight: 0, retrying: 0, availablePermits: 1 })
    })
  )

  it.scoped("a batch: failed first attempts retry on their own fibers while the workers go on", () =>
    Effect.gen(function* () {
      const { answer, events } = yield* onBothPaths({ concurrency: 2, retry: RETRY }, (executor) =>
        Effect.gen(function* () {
          const tasks = [script([new Flaky()]), script([]), script([new Fatal()]), script([new Flaky(), new Flaky()])]
          const fiber = yield* Effect.fork(executor.submitAll(tasks))
          yield* TestClock.adjust("1 second")
          return yield* Fiber.join(fiber)
        })
      )
      expect(answer).toEqual([
        Exit.succeed("ok after 2"),
        Exit.succeed("ok after 1"),
        Exit.fail(new Fatal()),
        Exit.succeed("ok after 3")
      ])
      expect(Object.values(events).map((list) => list.at(-1)!.attempts)).toEqual([2, 1, 1, 3])
    })
  )

  it.scoped("shut down during its first attempt: abandoned, CANCELLED", () =>
    Effect.gen(function* () {
      for (const spans of [true, false]) {
        const executor = yield* Executor.make({ name: "shut", concurrency: 1, retry: RETRY, spans })
        const fiber = yield* Effect.fork(Effect.exit(executor.submit(Effect.never)))
        yield* settle
        const report = yield* executor.shutdown("1 second").pipe(Effect.fork)
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.join(report)).abandoned).toEqual([1])
        const exit = yield* Fiber.join(fiber)
        expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({ reason: "Abandoned" })
        expect(yield* executor.stats).toMatchObject({ cancelled: 1, inFlight: 0 })
      }
    })
  )

  it.scoped("with a breaker too, it takes the resilient path: the breaker records each attempt's outcome", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({
        name: "guarded",
        concurrency: 1,
        retry: { maxAttempts: 2, base: "10 millis", jitter: "none" },
        breaker: { policy: { kind: "consecutive", failures: 2 }, openDuration: "1 minute" },
        spans: false
      })
      const fiber = yield* Effect.fork(Effect.exit(executor.submit(Effect.fail(new Flaky()))))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toEqual(Exit.fail(new Flaky()))
      const refused = yield* Effect.exit(executor.submit(Effect.succeed("no")))
      expect(Exit.isFailure(refused) && String(refused.cause)).toContain("CircuitOpen")
      const now = yield* Clock.currentTimeMillis
      expect(now).toBe(1000)
    })
  )
})
