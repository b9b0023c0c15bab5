import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as Executor from "../src/Executor.js"
import type { RequestEvent } from "../src/RequestEvent.js"

/**
 * A single submit that finds nothing ahead of it (an empty lane, a permit
 * free) goes through its lane like any request, and starts in the same
 * instant, in a fiber of its own. What a caller and an observer see must be
 * what the queued path shows; its timeout, cancellation and shutdown work as
 * for any request.
 */

const settle = TestClock.adjust(0)

const RETRY = { maxAttempts: 3, base: "100 millis", jitter: "none" } as const

class Slow {
  readonly _tag = "Slow"
  readonly retryable = true
}

const statusesOf = (events: ReadonlyArray<RequestEvent>, id: number) =>
  events.filter((event) => event.id === id).map((event) => event.status)

describe("Executor: a submit with nothing ahead of it starts at once", () => {
  it.scoped("it is running once the scheduler has had a turn, at the instant it was submitted", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "at-once", concurrency: 2, spans: false })
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        executor.submit(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      )
      // No fast path: it goes through its lane and the starter like any request, without the clock moving.
      yield* TestClock.adjust(0)
      expect(yield* Deferred.isDone(started)).toBe(true)
      expect(yield* executor.stats).toMatchObject({ queued: 0, admitting: 0, inFlight: 1 })
      yield* Fiber.interrupt(fiber)
    })
  )

  it.scoped("its events go PENDING → QUEUED → PROCESSING → CALLING → COMPLETED, as queued work's do", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "at-once-events", concurrency: 1, spans: false })
      const events = yield* executor.subscribe
      yield* executor.submit(Effect.sleep("1 second")).pipe(Effect.fork, Effect.zipLeft(TestClock.adjust("1 second")))
      yield* settle
      const all = Array.from(yield* Queue.takeAll(events))
      expect(statusesOf(all, 1)).toEqual(["PENDING", "QUEUED", "PROCESSING", "CALLING", "COMPLETED"])
      expect(all.at(-1)!.timestamps).toEqual({ PENDING: 0, QUEUED: 0, PROCESSING: 0, CALLING: 0, COMPLETED: 1000 })
      expect(all.at(-1)!.attempts).toBe(1)
    })
  )

  it.scoped("interrupting its caller mid-call interrupts the call, frees the permit and ends it CANCELLED", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "at-once-cancel", concurrency: 1, spans: false })
      const events = yield* executor.subscribe
      const released = yield* Ref.make(false)
      const call = Effect.never.pipe(Effect.ensuring(Ref.set(released, true)))
      const fiber = yield* Effect.fork(executor.submit(call))
      yield* settle
      expect(yield* executor.stats).toMatchObject({ inFlight: 1 })
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(released)).toBe(true)
      expect(yield* executor.stats).toMatchObject({ inFlight: 0, availablePermits: 1, cancelled: 1 })
      const all = Array.from(yield* Queue.takeAll(events))
      expect(statusesOf(all, 1)).toEqual(["PENDING", "QUEUED", "PROCESSING", "CALLING", "CANCELLED"])
      // The permit is free for the next one, which also starts at once.
      expect(yield* executor.submit(Effect.succeed("next"))).toBe("next")
    })
  )

  it.scoped("an attempt past its timeout is interrupted at exactly the timeout (its finalizers run first)", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "at-once-timeout", concurrency: 1, spans: false })
      const released = yield* Ref.make(false)
      const call = Effect.never.pipe(Effect.ensuring(Ref.set(released, true)))
      const fiber = yield* Effect.fork(Effect.exit(executor.submit(call, { timeout: "2 seconds" })))
      yield* TestClock.adjust("1999 millis")
      expect(yield* executor.stats).toMatchObject({ inFlight: 1 })
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.join(fiber)
      expect(yield* Ref.get(released)).toBe(true)
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toMatchObject({
        value: { _tag: "ExecutorError", reason: "AttemptTimeout", timeoutMillis: 2000 }
      })
      expect(yield* executor.stats).toMatchObject({ inFlight: 0, failed: 1 })
    })
  )

  it.scoped("onTimeout gives the timeout's error, and a retry policy retries it like the effect's own", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "at-once-on-timeout", concurrency: 1, spans: false, retry: RETRY })
      const events = yield* executor.subscribe
      const calls = yield* Ref.make(0)
      // The first attempt hangs; the second answers.
      const call = Effect.flatMap(
        Ref.getAndUpdate(calls, (n) => n + 1),
        (n) => (n === 0 ? Effect.never : Effect.succeed("second"))
      )
      const fiber = yield* Effect.fork(
        executor.submit(call as Effect.Effect<string, Slow>, { timeout: "1 second", onTimeout: () => new Slow() })
      )
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(fiber)).toBe("second")
      const all = Array.from(yield* Queue.takeAll(events))
      const last = all.at(-1)!
      expect(last.status).toBe("COMPLETED")
      expect(last.attemptLog?.map((attempt) => attempt.outcome)).toEqual(["failure", "success"])
      expect(last.attemptLog?.[0]?.error).toBeInstanceOf(Slow)
      expect(last.attemptLog?.[0]).toMatchObject({ startedAt: 0, endedAt: 1000, retryDelayMillis: 100 })
    })
  )

  it.scoped("a hundred attempts in flight under a timeout hold one timer between them", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "one-timer", concurrency: 100, spans: false })
      const gate = yield* Deferred.make<void>()
      const fibers = yield* Effect.forEach(Array.from({ length: 100 }), () =>
        Effect.fork(executor.submit(Deferred.await(gate), { timeout: "30 seconds" }))
      )
      const [stats, sleeps] = yield* Effect.zipRight(settle, Effect.zip(executor.stats, TestClock.sleeps())).pipe(
        Effect.ensuring(Deferred.succeed(gate, undefined))
      )
      expect(stats).toMatchObject({ inFlight: 100 })
      // The executor's watcher sleeps until the soonest deadline; no attempt arms a timer of its own
      // (with Effect.timeoutFail there would be a hundred).
      expect(sleeps.length).toBe(1)
      yield* Effect.forEach(fibers, Fiber.join)
    })
  )

  it.scoped("a call that ends before its timeout is not interrupted later, and the timer holds nothing", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "at-once-quick", concurrency: 4, spans: false })
      const results = yield* Effect.forEach(
        [1, 2, 3],
        (n) => Effect.fork(executor.submit(Effect.as(Effect.sleep(`${n * 100} millis`), n), { timeout: "1 second" })),
        { concurrency: "unbounded" }
      )
      yield* TestClock.adjust("300 millis")
      expect(yield* Effect.forEach(results, Fiber.join)).toEqual([1, 2, 3])
      // Long after the timeouts would have fired: nothing else happened.
      yield* TestClock.adjust("10 seconds")
      expect(yield* executor.stats).toMatchObject({ inFlight: 0, completed: 3, failed: 0, cancelled: 0 })
    })
  )

  it.scoped("a submit behind queued work waits its turn in priority order", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "at-once-behind", concurrency: 1, spans: false })
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      const blocker = yield* Effect.fork(executor.submit(Deferred.await(gate)))
      yield* settle
      const low = yield* Effect.fork(
        executor.submit(
          Effect.sync(() => order.push("low")),
          { priority: 0 }
        )
      )
      const high = yield* Effect.fork(
        executor.submit(
          Effect.sync(() => order.push("high")),
          { priority: 5 }
        )
      )
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(blocker)
      yield* Fiber.join(low)
      yield* Fiber.join(high)
      expect(order).toEqual(["high", "low"])
    })
  )

  it.scoped("closing the executor abandons a call it started at once with ExecutorError Abandoned", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "at-once-shutdown", concurrency: 1, spans: false })
      const fiber = yield* Effect.fork(Effect.exit(executor.submit(Effect.never)))
      yield* settle
      const report = yield* executor
        .shutdown("1 second")
        .pipe(Effect.fork, Effect.zipLeft(TestClock.adjust("1 second")))
      expect((yield* Fiber.join(report)).abandoned).toEqual([1])
      const exit = yield* Fiber.join(fiber)
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toMatchObject({
        value: { _tag: "ExecutorError", reason: "Abandoned" }
      })
    })
  )
})
