import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type * as Tracer from "effect/Tracer"
import * as Executor from "../src/Executor.js"
import { InvalidOptionsError } from "../src/InvalidOptions.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import type { RequestEvent } from "../src/RequestEvent.js"

/** Lets every runnable fiber run (forked work, the dispatcher) without moving the clock. */
const settle = TestClock.adjust(0)

/** An effect that records when it started, then sleeps. */
const timedTask = (log: Array<string>, label: string, duration: Duration.DurationInput) =>
  Effect.gen(function* () {
    log.push(`${label}@${yield* Clock.currentTimeMillis}`)
    yield* Effect.sleep(duration)
    return label
  })

/** One-second timed tasks that count how many ended, however they ended (their finalizer ran). */
const releasingTasks = (log: Array<string>) =>
  Effect.map(Ref.make(0), (released) => ({
    released,
    task: (label: string) =>
      Effect.ensuring(
        timedTask(log, label, "1 second"),
        Ref.update(released, (n) => n + 1)
      )
  }))

const eventsOf = (queue: Queue.Dequeue<RequestEvent>, id: number) =>
  Effect.map(Queue.takeAll(queue), (events) => Array.from(events).filter((event) => event.id === id))

describe("Executor", () => {
  describe("submit", () => {
    it.scoped("answers with the effect's own result and error", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "basic", concurrency: 2 })
        expect(yield* executor.submit(Effect.succeed(42))).toBe(42)
        const failure = yield* Effect.flip(executor.submit(Effect.fail("boom" as const)))
        expect(failure).toBe("boom")
        const stats = yield* executor.stats
        expect(stats).toMatchObject({ completed: 1, failed: 1, queued: 0, inFlight: 0, availablePermits: 2 })
      })
    )

    it.scoped("never runs more than `concurrency` at once, and reaches it", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "concurrency", concurrency: 4 })
        let current = 0
        let highest = 0
        const task = Effect.acquireUseRelease(
          Effect.sync(() => {
            current++
            highest = Math.max(highest, current)
          }),
          () => Effect.sleep("100 millis"),
          () => Effect.sync(() => current--)
        )
        const fiber = yield* Effect.fork(
          Effect.forEach(Array.from({ length: 20 }), () => executor.submit(task), { concurrency: "unbounded" })
        )
        yield* settle
        expect(current).toBe(4)
        yield* TestClock.adjust("500 millis")
        yield* Fiber.join(fiber)
        expect(highest).toBe(4)
        expect(yield* Clock.currentTimeMillis).toBe(500)
      })
    )

    it.scoped("runs higher priority first, FIFO within a priority", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "priority", concurrency: 1 })
        const gate = yield* Deferred.make<void>()
        const order: Array<string> = []
        const blocker = yield* Effect.fork(executor.submit(Deferred.await(gate)))
        yield* settle
        const submissions: Array<[string, number]> = [
          ["low", 0],
          ["high-a", 5],
          ["mid", 1],
          ["high-b", 5],
          ["top", 10]
        ]
        const fibers = yield* Effect.forEach(submissions, ([label, priority]) =>
          Effect.fork(
            executor.submit(
              Effect.sync(() => order.push(label)),
              { priority }
            )
          )
        )
        yield* settle
        // The dispatcher has already taken the highest one and waits for a permit for it.
        expect(yield* executor.stats).toMatchObject({ queued: 4, admitting: 1 })
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(blocker)
        yield* Effect.forEach(fibers, Fiber.join)
        expect(order).toEqual(["top", "high-a", "high-b", "mid", "low"])
      })
    )

    it.scoped("times a request out after exactly its timeout", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "timeout", concurrency: 1, timeout: "5 seconds" })
        const fiber = yield* Effect.fork(
          Effect.flip(executor.submit(Effect.sleep("1 minute"), { timeout: "1 second" }))
        )
        yield* TestClock.adjust("999 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(fiber)
        expect(error).toBeInstanceOf(Executor.ExecutorError)
        expect(error).toMatchObject({
          _tag: "ExecutorError",
          reason: "AttemptTimeout",
          timeoutMillis: 1000,
          executor: "timeout"
        })
        // The executor's default applies when the request sets none.
        const second = yield* Effect.fork(Effect.flip(executor.submit(Effect.never)))
        yield* TestClock.adjust("5 seconds")
        expect(yield* Fiber.join(second)).toMatchObject({
          _tag: "ExecutorError",
          reason: "AttemptTimeout",
          timeoutMillis: 5000
        })
        expect((yield* executor.stats).availablePermits).toBe(1)
      })
    )

    it.scoped("a request submitted from an uninterruptible region still times out", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "uninterruptible-caller", concurrency: 1 })
        const fiber = yield* Effect.fork(
          Effect.uninterruptible(Effect.flip(executor.submit(Effect.never, { timeout: "1 second" })))
        )
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fiber)).toMatchObject({
          _tag: "ExecutorError",
          reason: "AttemptTimeout",
          timeoutMillis: 1000
        })
        expect((yield* executor.stats).availablePermits).toBe(1)
      })
    )

    it.scoped("runs each request in a span carrying the executor and request attributes", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "spans", concurrency: 1 })
        const span = yield* executor.submit(Effect.orDie(Effect.currentSpan), { key: "alpha", priority: 3 })
        expect(span.name).toBe("sluice.executor.request")
        expect(span.attributes.get("sluice.executor")).toBe("spans")
        expect(span.attributes.get("sluice.request.key")).toBe("alpha")
        expect(span.attributes.get("sluice.request.priority")).toBe(3)
      })
    )

    it.scoped("one span across an attempt cut off by its timeout and the retry after it, ended with the request", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({
          name: "span-retry",
          concurrency: 1,
          timeout: "1 second",
          retry: { maxAttempts: 2, base: "100 millis", jitter: "none" }
        })
        const seen: Array<Tracer.AnySpan> = []
        let calls = 0
        // The first attempt hangs until its timer cuts it off (its fiber interrupted); the second, on the
        // request's next fiber, answers.
        const work = Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) => {
          seen.push(span)
          return calls++ === 0 ? Effect.never : Effect.succeed(span)
        })
        const fiber = yield* Effect.fork(executor.submit(work).pipe(Effect.withSpan("caller")))
        yield* TestClock.adjust("1100 millis")
        const span = yield* Fiber.join(fiber)
        expect(seen).toHaveLength(2)
        expect(seen[0]).toBe(seen[1])
        expect(span.name).toBe("sluice.executor.request")
        expect(Option.map(span.parent, (parent) => (parent as Tracer.Span).name)).toEqual(Option.some("caller"))
        const status = span.status
        expect(status._tag).toBe("Ended")
        if (status._tag === "Ended") expect(Exit.isSuccess(status.exit)).toBe(true)
      })
    )

    it.scoped("rejects a non-finite priority or a bad timeout with a typed error", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "bad-submit", concurrency: 1 })
        const priority = yield* Effect.flip(executor.submit(Effect.void, { priority: Number.NaN }))
        expect(priority).toBeInstanceOf(InvalidOptionsError)
        expect(priority.message).toContain("priority")
        const timeout = yield* Effect.flip(executor.submit(Effect.void, { timeout: "soon" as never }))
        expect(timeout.message).toContain("timeout")
        // Milliseconds are checked without the Schema: zero, negative and NaN are refused all the same.
        for (const millis of [0, -5, Number.NaN]) {
          const refused = yield* Effect.flip(executor.submit(Effect.void, { timeout: millis }))
          expect(refused.message).toContain("timeout")
        }
        expect(yield* executor.submit(Effect.succeed("ok"), { timeout: 1 })).toBe("ok")
      })
    )
  })

  describe("queue full", () => {
    it.scoped('"fail" refuses at once with ExecutorError "QueueFull"', () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "full-fail", concurrency: 1, queueCapacity: 2, whenFull: "fail" })
        const gate = yield* Deferred.make<void>()
        const running = yield* Effect.fork(executor.submit(Deferred.await(gate)))
        yield* settle
        // One waits for the permit (admitting), two fill the queue.
        const queued = yield* Effect.forEach([1, 2, 3], () =>
          Effect.zipLeft(Effect.fork(executor.submit(Deferred.await(gate))), settle)
        )
        expect(yield* executor.stats).toMatchObject({ inFlight: 1, admitting: 1, queued: 2 })
        const refused = yield* Effect.flip(executor.submit(Effect.void))
        expect(refused).toMatchObject({ _tag: "ExecutorError", reason: "QueueFull" })
        expect(refused).toMatchObject({ executor: "full-fail", queueCapacity: 2 })
        expect(refused.message).toContain("capacity")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(running)
        yield* Effect.forEach(queued, Fiber.join)
        expect(yield* executor.stats).toMatchObject({ completed: 4, queued: 0 })
      })
    )

    it.scoped('"suspend" makes callers wait for room, in arrival order', () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "full-suspend", concurrency: 1, queueCapacity: 2 })
        const gate = yield* Deferred.make<void>()
        const order: Array<number> = []
        const fibers = yield* Effect.forEach([0, 1, 2, 3, 4, 5], (n) =>
          Effect.fork(
            executor.submit(
              Effect.zipRight(
                Deferred.await(gate),
                Effect.sync(() => order.push(n))
              )
            )
          )
        )
        yield* settle
        expect(yield* executor.stats).toMatchObject({ inFlight: 1, admitting: 1, queued: 2, waitingForRoom: 2 })
        yield* Deferred.succeed(gate, undefined)
        yield* Effect.forEach(fibers, Fiber.join)
        expect(order).toEqual([0, 1, 2, 3, 4, 5])
        expect(yield* executor.stats).toMatchObject({ waitingForRoom: 0, queued: 0, completed: 6 })
      })
    )

    it.scoped("a caller interrupted while waiting for room gives its turn to the next", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "room-cancel", concurrency: 1, queueCapacity: 1 })
        const gate = yield* Deferred.make<void>()
        const running = yield* Effect.fork(executor.submit(Deferred.await(gate)))
        yield* settle
        const admitting = yield* Effect.fork(executor.submit(Deferred.await(gate)))
        const queued = yield* Effect.fork(executor.submit(Deferred.await(gate)))
        yield* settle
        const waitingA = yield* Effect.fork(executor.submit(Effect.succeed("a")))
        const waitingB = yield* Effect.fork(executor.submit(Effect.succeed("b")))
        yield* settle
        expect((yield* executor.stats).waitingForRoom).toBe(2)
        yield* Fiber.interrupt(waitingA)
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Fiber.join(waitingB)).toBe("b")
        yield* Fiber.join(running)
        yield* Fiber.join(admitting)
        yield* Fiber.join(queued)
        expect(yield* executor.stats).toMatchObject({ queued: 0, waitingForRoom: 0, completed: 4, cancelled: 1 })
      })
    )
  })

  describe("rate admission", () => {
    it.scoped("admits through the limits and holds no permit while waiting for tokens", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({
          name: "admission",
          concurrency: 1,
          limits: { requests: { limit: 10, interval: "1 second", capacity: 1 } }
        })
        const starts: Array<number> = []
        const fiber = yield* Effect.fork(
          executor.submitAll(
            Array.from({ length: 4 }, () =>
              Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => starts.push(t)))
            )
          )
        )
        yield* TestClock.adjust("50 millis")
        // The second request is waiting for its token: it holds no concurrency permit.
        expect(yield* executor.stats).toMatchObject({ admitting: 1, inFlight: 0, availablePermits: 1 })
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
        expect(starts).toEqual([0, 100, 200, 300])
      })
    )

    it.scoped("charges the request's cost to the key it names", () =>
      Effect.gen(function* () {
        const limiter = yield* RateLimiter.make({
          name: "shared",
          limits: { requests: { limit: 10, interval: "1 second" }, tokens: { limit: 1000, interval: "1 second" } }
        }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
        const executor = yield* Executor.make({ name: "costs", concurrency: 2, rateLimiter: limiter })
        yield* executor.submit(Effect.void, { cost: { tokens: 300 }, key: "tenant-a" })
        const a = yield* limiter.state({ key: "tenant-a" })
        const b = yield* limiter.state({ key: "tenant-b" })
        expect(a.map((bucket) => [bucket.name, bucket.available])).toEqual([
          ["requests", 9],
          ["tokens", 700]
        ])
        expect(b.map((bucket) => bucket.available)).toEqual([10, 1000])
      })
    )

    it.scoped("fails a cost no limit can pay at once, with the limit named", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({
          name: "too-big",
          concurrency: 1,
          limits: { tokens: { limit: 1000, interval: "1 minute" } }
        })
        const error = yield* Effect.flip(executor.submit(Effect.void, { cost: { tokens: 5000 } }))
        expect(error).toMatchObject({ _tag: "RateLimiterError", reason: "CostExceedsCapacity", limit: "tokens" })
        expect(yield* Clock.currentTimeMillis).toBe(0)
        expect(yield* executor.stats).toMatchObject({ failed: 1, availablePermits: 1, admitting: 0 })
      })
    )
  })

  describe("cancellation", () => {
    it.scoped("interrupting a queued caller removes its request and frees its slot", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "cancel-queued", concurrency: 1, queueCapacity: 1 })
        const events = yield* executor.subscribe
        const gate = yield* Deferred.make<void>()
        const ran: Array<string> = []
        const running = yield* Effect.fork(executor.submit(Deferred.await(gate)))
        yield* settle
        const admitting = yield* Effect.fork(executor.submit(Effect.sync(() => ran.push("admitting"))))
        yield* settle
        const queued = yield* Effect.fork(executor.submit(Effect.sync(() => ran.push("cancelled one"))))
        yield* settle
        expect(yield* executor.stats).toMatchObject({ queued: 1, admitting: 1 })
        yield* Fiber.interrupt(queued)
        expect(yield* executor.stats).toMatchObject({ queued: 0, cancelled: 1 })
        // The slot is free again: this one fits without waiting.
        const next = yield* Effect.fork(executor.submit(Effect.sync(() => ran.push("next"))))
        yield* settle
        expect((yield* executor.stats).waitingForRoom).toBe(0)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(running)
        yield* Fiber.join(admitting)
        yield* Fiber.join(next)
        expect(ran).toEqual(["admitting", "next"])
        const cancelledEvents = yield* eventsOf(events, 3)
        expect(cancelledEvents.map((event) => event.status)).toEqual(["PENDING", "QUEUED", "CANCELLED"])
      })
    )

    it.scoped("interrupting a running caller interrupts the work and returns the permit", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "cancel-running", concurrency: 1 })
        const released = yield* Ref.make(false)
        const work = Effect.acquireUseRelease(
          Effect.void,
          () => Effect.never,
          () => Ref.set(released, true)
        )
        const caller = yield* Effect.fork(executor.submit(work))
        yield* settle
        expect(yield* executor.stats).toMatchObject({ inFlight: 1, availablePermits: 0 })
        yield* Fiber.interrupt(caller)
        expect(yield* Ref.get(released)).toBe(true)
        expect(yield* executor.stats).toMatchObject({ inFlight: 0, availablePermits: 1, cancelled: 1 })
        expect(yield* executor.submit(Effect.succeed("after"))).toBe("after")
      })
    )

    it.scoped("interrupting a caller waiting for tokens refunds its reservation", () =>
      Effect.gen(function* () {
        const limiter = yield* RateLimiter.make({
          limits: { requests: { limit: 10, interval: "1 second", capacity: 1 } }
        }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
        const executor = yield* Executor.make({ name: "cancel-admitting", concurrency: 4, rateLimiter: limiter })
        const starts: Array<string> = []
        const record = (label: string) =>
          Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => starts.push(`${label}@${t}`)))
        yield* executor.submit(record("first"))
        const waiting = yield* Effect.fork(executor.submit(record("cancelled")))
        yield* TestClock.adjust("10 millis")
        expect((yield* executor.stats).admitting).toBe(1)
        yield* Fiber.interrupt(waiting)
        expect(yield* executor.stats).toMatchObject({ admitting: 0, cancelled: 1 })
        // Its token went back: the next request gets the slot the cancelled one had (t = 100).
        const third = yield* Effect.fork(executor.submit(record("third")))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(third)
        expect(starts).toEqual(["first@0", "third@100"])
      })
    )
  })

  describe("events", () => {
    it.scoped("a success goes PENDING → QUEUED → PROCESSING → CALLING → COMPLETED, with Clock timestamps", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({
          name: "events",
          concurrency: 1,
          limits: { requests: { limit: 1, interval: "1 second" } }
        })
        const events = yield* executor.subscribe
        yield* executor.submit(Effect.void)
        const fiber = yield* Effect.fork(executor.submit(Effect.sleep("250 millis"), { cost: 1, key: "default" }))
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(fiber)
        const second = yield* eventsOf(events, 2)
        expect(second.map((event) => event.status)).toEqual(["PENDING", "QUEUED", "PROCESSING", "CALLING", "COMPLETED"])
        const last = second[second.length - 1]!
        // Admitted when the bucket allows (1 s) plus the sliding log's margin (1 in any 1 s + 5 ms).
        expect(last.timestamps).toEqual({ PENDING: 0, QUEUED: 0, PROCESSING: 0, CALLING: 1005, COMPLETED: 1255 })
        expect(last).toMatchObject({ executor: "events", key: "default", attempts: 1, cost: 1, priority: 0 })
        expect(last.error).toBeUndefined()
      })
    )

    it.scoped("a failure and a timeout end FAILED with the error", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "failures", concurrency: 2 })
        const events = yield* executor.subscribe
        yield* Effect.flip(executor.submit(Effect.fail("boom")))
        const timedOut = yield* Effect.fork(executor.submit(Effect.never, { timeout: "3 seconds" }))
        yield* TestClock.adjust("3 seconds")
        yield* Effect.flip(Fiber.join(timedOut))
        const failure = yield* Effect.map(Queue.takeAll(events), (all) => Array.from(all))
        const byId = (id: number) => failure.filter((event) => event.id === id)
        expect(byId(1).map((event) => event.status)).toEqual(["PENDING", "QUEUED", "PROCESSING", "CALLING", "FAILED"])
        expect(byId(1).at(-1)?.error).toBe("boom")
        const timeoutEnd = byId(2).at(-1)!
        expect(timeoutEnd.status).toBe("FAILED")
        expect(timeoutEnd.error).toMatchObject({ _tag: "ExecutorError", reason: "AttemptTimeout" })
        expect(timeoutEnd.timestamps.FAILED! - timeoutEnd.timestamps.CALLING!).toBe(3000)
      })
    )

    it.scoped("a cancelled running request ends CANCELLED at the moment of interruption", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "cancel-events", concurrency: 1 })
        const events = yield* executor.subscribe
        const caller = yield* Effect.fork(executor.submit(Effect.never))
        yield* TestClock.adjust("700 millis")
        yield* Fiber.interrupt(caller)
        const all = yield* eventsOf(events, 1)
        expect(all.map((event) => event.status)).toEqual(["PENDING", "QUEUED", "PROCESSING", "CALLING", "CANCELLED"])
        expect(all.at(-1)?.timestamps.CANCELLED).toBe(700)
      })
    )

    it.scoped("events is a Stream of the same records", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "stream", concurrency: 1 })
        const collected = yield* Effect.fork(executor.events.pipe(Stream.take(5), Stream.runCollect))
        yield* settle
        yield* executor.submit(Effect.void)
        const events = Array.from(yield* Fiber.join(collected))
        expect(events.map((event) => event.status)).toEqual(["PENDING", "QUEUED", "PROCESSING", "CALLING", "COMPLETED"])
      })
    )
  })

  describe("metrics", () => {
    it.scoped("counts outcomes and reports gauges tagged by executor name", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "metrics-test", concurrency: 2 })
        yield* executor.submit(Effect.void)
        yield* executor.submit(Effect.void)
        yield* Effect.flip(executor.submit(Effect.fail("x")))
        const tagged = <A>(metric: Metric.Metric<any, any, A>, status?: string) => {
          const byExecutor = Metric.tagged(metric, "executor", "metrics-test")
          return Metric.value(status === undefined ? byExecutor : Metric.tagged(byExecutor, "status", status))
        }
        expect((yield* tagged(Executor.metrics.outcomes, "COMPLETED")).count).toBe(2)
        expect((yield* tagged(Executor.metrics.outcomes, "FAILED")).count).toBe(1)
        expect((yield* tagged(Executor.metrics.inFlight)).value).toBe(0)
        expect((yield* tagged(Executor.metrics.queueDepth)).value).toBe(0)
        expect((yield* tagged(Executor.metrics.callDuration)).count).toBe(3)
        expect((yield* tagged(Executor.metrics.admissionWait)).count).toBe(3)
      })
    )
  })

  describe("submitAll", () => {
    it.scoped("answers every exit in input order", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "batch", concurrency: 3 })
        const exits = yield* executor
          .submitAll([
            Effect.succeed(1),
            Effect.fail("two"),
            { effect: Effect.succeed(3), priority: 1 },
            Effect.delay(Effect.succeed(4), "1 millis")
          ])
          .pipe(
            Effect.fork,
            Effect.tap(() => TestClock.adjust("1 millis")),
            Effect.flatMap(Fiber.join)
          )
        expect(exits.map((exit) => (Exit.isSuccess(exit) ? exit.value : Exit.isFailure(exit) ? "failed" : ""))).toEqual(
          [1, "failed", 3, 4]
        )
        expect(exits[1]).toEqual(Exit.fail("two"))
      })
    )

    it.scoped("pulls from the iterable only while the queue has room", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "batch-backpressure", concurrency: 2, queueCapacity: 10 })
        const gate = yield* Deferred.make<void>()
        let pulled = 0
        function* tasks() {
          for (let i = 0; i < 100; i++) {
            pulled++
            yield Deferred.await(gate)
          }
        }
        const fiber = yield* Effect.fork(executor.submitAll(tasks()))
        yield* settle
        // The batch filled the queue (10), then 2 started and 1 is admitted, waiting for a permit.
        // It is woken again only once the queue has drained to half (5), to refill in bulk.
        expect(pulled).toBe(10)
        expect(yield* executor.stats).toMatchObject({ queued: 7, inFlight: 2, admitting: 1, waitingForRoom: 1 })
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Fiber.join(fiber)
        expect(exits.length).toBe(100)
        expect(exits.every(Exit.isSuccess)).toBe(true)
        expect(pulled).toBe(100)
      })
    )

    it.scoped("a submit waiting for room behind a batch takes the first slot that frees, not the batch's refill", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({
          name: "batch-shared-room",
          concurrency: 1,
          queueCapacity: 10,
          shutdownTimeout: "0 millis"
        })
        const starts: Array<string> = []
        const task = (name: string) =>
          Effect.zipRight(
            Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(`${name}@${now}`))),
            Effect.sleep("1 second")
          )
        const batch = yield* Effect.fork(executor.submitAll(Array.from({ length: 30 }, (_, i) => task(`b${i}`))))
        yield* settle
        // The batch filled the queue (10); b0 started and b1 is admitted, waiting for the permit: two slots are
        // free, and the batch waits for the queue to drain to half before it refills. Submits do not wait behind
        // it: two take the free slots at once, and a third, finding none, waits in line behind the batch.
        const urgent = yield* Effect.forEach(["u1", "u2", "u3"], (name) =>
          Effect.zipLeft(Effect.fork(executor.submit(task(name), { priority: 10 })), settle)
        )
        expect(yield* executor.stats).toMatchObject({ queued: 10, admitting: 1, inFlight: 1, waitingForRoom: 2 })
        // At 1 s b1 starts, and u1 (the best queued) leaves the queue: the slot it frees goes to u3, not to the
        // batch (still above half), so u3 is queued with its priority and runs before the batch's rest.
        yield* TestClock.adjust("1 second")
        expect(yield* executor.stats).toMatchObject({ queued: 10, admitting: 1, inFlight: 1, waitingForRoom: 1 })
        yield* TestClock.adjust("3 seconds")
        expect(starts).toEqual(["b0@0", "b1@1000", "u1@2000", "u2@3000", "u3@4000"])
        yield* TestClock.adjust("30 seconds")
        yield* Fiber.joinAll(urgent)
        const exits = yield* Fiber.join(batch)
        expect(exits.every(Exit.isSuccess)).toBe(true)
        expect(starts.length).toBe(33)
      })
    )

    it.scoped("interrupting the batch cancels what is left and leaves the executor idle", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "batch-cancel", concurrency: 2, queueCapacity: 5 })
        const fiber = yield* Effect.fork(executor.submitAll(Array.from({ length: 50 }, () => Effect.sleep("1 second"))))
        yield* TestClock.adjust("2500 millis")
        yield* Fiber.interrupt(fiber)
        const stats = yield* executor.stats
        expect(stats).toMatchObject({ queued: 0, inFlight: 0, admitting: 0, availablePermits: 2, waitingForRoom: 0 })
        expect(stats.completed).toBe(4)
        expect(stats.cancelled).toBeGreaterThan(0)
      })
    )
    it.scoped("runs its requests in the caller's runtime: services, Clock and the caller's span as parent", () =>
      Effect.gen(function* () {
        class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
        const executor = yield* Executor.make({ name: "batch-runtime", concurrency: 2 })
        yield* TestClock.adjust("42 millis")
        const task = Effect.gen(function* () {
          const span = yield* Effect.orDie(Effect.currentSpan)
          const parent = Option.getOrUndefined(span.parent)
          return {
            greeting: yield* Greeting,
            now: yield* Clock.currentTimeMillis,
            span: span.name,
            parent: parent?._tag === "Span" ? parent.name : undefined
          }
        })
        const exits = yield* executor
          .submitAll([task, task, task])
          .pipe(Effect.withSpan("caller"), Effect.provideService(Greeting, "hello"))
        for (const exit of exits) {
          expect(exit).toEqual(
            Exit.succeed({ greeting: "hello", now: 42, span: "sluice.executor.request", parent: "caller" })
          )
        }
      })
    )

    it.scoped("each request starts from the caller's FiberRefs, and what it forked ends with it", () =>
      Effect.gen(function* () {
        // One permit: the requests run one after the other, the first two on the same worker.
        const executor = yield* Executor.make({ name: "batch-isolation", concurrency: 1 })
        const ref = yield* FiberRef.make("initial")
        const seen: Array<string> = []
        const leftBehind = yield* Deferred.make<void>()
        const setsTheRef = Effect.gen(function* () {
          seen.push(yield* FiberRef.get(ref))
          yield* FiberRef.set(ref, "set by a request")
        })
        const readsTheRef = Effect.gen(function* () {
          seen.push(yield* FiberRef.get(ref))
        })
        const forks = Effect.gen(function* () {
          // Forked and left running: the end of the request interrupts it.
          const started = yield* Deferred.make<void>()
          yield* Effect.fork(
            Effect.zipRight(
              Deferred.succeed(started, undefined),
              Effect.onInterrupt(Effect.never, () => Deferred.succeed(leftBehind, undefined))
            )
          )
          yield* Deferred.await(started)
        })
        const exits = yield* executor
          .submitAll([setsTheRef, readsTheRef, forks, readsTheRef])
          .pipe(Effect.locally(ref, "from the caller"))
        expect(exits.every(Exit.isSuccess)).toBe(true)
        expect(seen).toEqual(["from the caller", "from the caller", "from the caller"])
        // Would never complete if the fiber it forked were left running.
        yield* Deferred.await(leftBehind)
        expect(yield* executor.stats).toMatchObject({ inFlight: 0, completed: 4 })
      })
    )

    it.scoped("a request that times out or dies ends alone: the next ones run", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "batch-timeout", concurrency: 1 })
        const fiber = yield* Effect.fork(
          executor.submitAll([
            { effect: Effect.never, timeout: "1 second" },
            Effect.die("defect"),
            Effect.interrupt,
            Effect.succeed("after")
          ])
        )
        yield* TestClock.adjust("1 second")
        const exits = yield* Fiber.join(fiber)
        expect(Exit.isFailure(exits[0]!) && Cause.failureOption(exits[0].cause)).toEqual(
          Option.some(
            new Executor.ExecutorError({
              executor: "batch-timeout",
              reason: "AttemptTimeout",
              requestId: 1,
              timeoutMillis: 1000
            })
          )
        )
        expect(exits[1]).toEqual(Exit.die("defect"))
        expect(Exit.isInterrupted(exits[2]!)).toBe(true)
        expect(exits[3]).toEqual(Exit.succeed("after"))
        expect(yield* executor.stats).toMatchObject({ inFlight: 0, completed: 1, failed: 2, cancelled: 1 })
      })
    )

    it.scoped("one priority order across submit and submitAll, also for work arriving while a batch runs", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "batch-priority", concurrency: 1 })
        const gate = yield* Deferred.make<void>()
        const order: Array<string> = []
        const record = (label: string) => Effect.sync(() => order.push(label))
        const blocker = yield* Effect.fork(executor.submit(Deferred.await(gate)))
        yield* settle
        const lateArrival = yield* Deferred.make<Fiber.RuntimeFiber<number, Executor.SubmitError>>()
        const batch = yield* Effect.fork(
          executor.submitAll([
            { effect: record("batch-0"), priority: 0 },
            { effect: record("batch-2"), priority: 2 },
            {
              // While the batch runs, a higher priority single request arrives. It goes
              // before the rest of the batch, except the one already out of the queue
              // waiting for the permit.
              effect: Effect.gen(function* () {
                yield* record("batch-0b")
                const late = yield* Effect.forkDaemon(executor.submit(record("late-9"), { priority: 9 }))
                yield* Deferred.succeed(lateArrival, late)
                // Until it is queued (behind it: batch-0d; batch-0c waits for the permit).
                while ((yield* executor.stats).queued < 2) yield* Effect.yieldNow()
              }),
              priority: 0
            },
            { effect: record("batch-0c"), priority: 0 },
            { effect: record("batch-0d"), priority: 0 }
          ])
        )
        const single = yield* Effect.fork(executor.submit(record("single-1"), { priority: 1 }))
        yield* settle
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(blocker)
        const exits = yield* Fiber.join(batch)
        yield* Fiber.join(single)
        yield* Fiber.join(yield* Deferred.await(lateArrival))
        expect(exits.every(Exit.isSuccess)).toBe(true)
        expect(order).toEqual(["batch-2", "single-1", "batch-0", "batch-0b", "batch-0c", "late-9", "batch-0d"])
      })
    )

    it.scoped("interrupting the caller of the request waiting for a permit lets the next one take its place", () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "cancel-head", concurrency: 1 })
        const gate = yield* Deferred.make<void>()
        const ran: Array<string> = []
        const running = yield* Effect.fork(executor.submit(Deferred.await(gate)))
        yield* settle
        const head = yield* Effect.fork(executor.submit(Effect.sync(() => ran.push("head"))))
        yield* settle
        const batch = yield* Effect.fork(executor.submitAll([Effect.sync(() => ran.push("next"))]))
        yield* settle
        expect(yield* executor.stats).toMatchObject({ queued: 1, admitting: 1, inFlight: 1 })
        yield* Fiber.interrupt(head)
        yield* settle
        expect(yield* executor.stats).toMatchObject({ queued: 0, admitting: 1, inFlight: 1, cancelled: 1 })
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(running)
        expect((yield* Fiber.join(batch)).every(Exit.isSuccess)).toBe(true)
        expect(ran).toEqual(["next"])
      })
    )
  })

  describe("shutdown", () => {
    it.effect("closing the scope drains queued and running work before the deadline", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const executor = yield* Executor.make({ name: "drain", concurrency: 1, shutdownTimeout: "10 seconds" }).pipe(
          Scope.extend(scope)
        )
        const log: Array<string> = []
        const callers = yield* Effect.forEach(["a", "b", "c"], (label) =>
          Effect.fork(executor.submit(timedTask(log, label, "1 second")))
        )
        yield* settle
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* settle
        // Intake has stopped.
        const refused = yield* Effect.flip(executor.submit(Effect.void))
        expect(refused).toMatchObject({ _tag: "ExecutorError", reason: "NotAccepting" })
        yield* TestClock.adjust("3 seconds")
        yield* Fiber.join(closing)
        expect(yield* Effect.forEach(callers, Fiber.join)).toEqual(["a", "b", "c"])
        expect(log).toEqual(["a@0", "b@1000", "c@2000"])
        expect(yield* executor.shutdown()).toEqual({ executor: "drain", unfinishedAtStart: 3, abandoned: [] })
      })
    )

    it.effect("at the deadline it abandons the rest and reports which", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const executor = yield* Executor.make({ name: "deadline", concurrency: 1 }).pipe(Scope.extend(scope))
        const log: Array<string> = []
        const { released, task } = yield* releasingTasks(log)
        const callers = yield* Effect.forEach(["a", "b", "c"], (label) => Effect.fork(executor.submit(task(label))))
        yield* settle
        const shutdown = yield* Effect.fork(executor.shutdown("1500 millis"))
        yield* TestClock.adjust("1500 millis")
        const report = yield* Fiber.join(shutdown)
        expect(report).toEqual({ executor: "deadline", unfinishedAtStart: 3, abandoned: [2, 3] })
        expect(yield* Fiber.join(callers[0]!)).toBe("a")
        const abandoned = yield* Effect.flip(Fiber.join(callers[1]!))
        expect(abandoned).toMatchObject({ _tag: "ExecutorError", reason: "Abandoned", requestId: 2 })
        expect(yield* Effect.flip(Fiber.join(callers[2]!))).toMatchObject({ reason: "Abandoned", requestId: 3 })
        // The running one was interrupted (its finalizer ran); the queued one never started.
        expect(log).toEqual(["a@0", "b@1000"])
        expect(yield* Ref.get(released)).toBe(2)
        expect(yield* executor.stats).toMatchObject({ queued: 0, inFlight: 0, completed: 1, cancelled: 2 })
        yield* Scope.close(scope, Exit.void)
      })
    )
  })

  describe("shutdown of a batch", () => {
    it.effect("at the deadline the batch's running and queued requests are abandoned, and its workers end", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const executor = yield* Executor.make({ name: "batch-deadline", concurrency: 1 }).pipe(Scope.extend(scope))
        const log: Array<string> = []
        const { released, task } = yield* releasingTasks(log)
        const batch = yield* Effect.fork(executor.submitAll(["a", "b", "c"].map(task)))
        yield* settle
        const shutdown = yield* Effect.fork(executor.shutdown("1500 millis"))
        yield* TestClock.adjust("1500 millis")
        expect(yield* Fiber.join(shutdown)).toEqual({
          executor: "batch-deadline",
          unfinishedAtStart: 3,
          abandoned: [2, 3]
        })
        const exits = yield* Fiber.join(batch)
        expect(exits[0]).toEqual(Exit.succeed("a"))
        for (const [exit, requestId] of [
          [exits[1]!, 2],
          [exits[2]!, 3]
        ] as const) {
          expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(
            Option.some(new Executor.ExecutorError({ executor: "batch-deadline", reason: "Abandoned", requestId }))
          )
        }
        // The running one was interrupted (its finalizer ran); the queued one never started.
        expect(log).toEqual(["a@0", "b@1000"])
        expect(yield* Ref.get(released)).toBe(2)
        expect(yield* executor.stats).toMatchObject({ queued: 0, inFlight: 0, completed: 1, cancelled: 2 })
        yield* Scope.close(scope, Exit.void)
      })
    )
  })

  describe("options", () => {
    it.effect("bad values fail at construction, naming the field", () =>
      Effect.gen(function* () {
        const make = (options: unknown) => Effect.flip(Effect.scoped(Executor.make(options as Executor.Options)))
        const concurrency = yield* make({ name: "x", concurrency: -1 })
        expect(concurrency).toBeInstanceOf(InvalidOptionsError)
        expect(concurrency.message).toContain('["concurrency"]')
        const whenFull = yield* make({ name: "x", concurrency: 1, whenFull: "drop" })
        expect(whenFull.message).toContain('["whenFull"]')
        const timeout = yield* make({ name: "x", concurrency: 1, timeout: "forever" })
        expect(timeout.message).toContain('["timeout"]')
        const limits = yield* make({
          name: "x",
          concurrency: 1,
          limits: { requests: { limit: 0, interval: "1 second" } }
        })
        expect(limits.message).toContain("limits")
        expect(limits.message).toContain("limit")
        const typo = yield* make({ name: "x", concurency: 1 })
        expect(typo.message).toContain("concurrency")
      })
    )

    it.effect("layerConfig reads the options through Config and validates them", () =>
      Effect.gen(function* () {
        const layer = Executor.layerConfig({ name: Config.string("NAME"), concurrency: Config.integer("CONCURRENCY") })
        const withEnv = (env: Record<string, string>) =>
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        const stats = yield* Effect.flatMap(Executor.Executor, (executor) => executor.stats).pipe(
          Effect.provide(layer),
          withEnv({ NAME: "from-env", CONCURRENCY: "3" })
        )
        expect(stats.availablePermits).toBe(3)
        const invalid = yield* Effect.flip(
          Effect.provide(Executor.Executor, layer).pipe(withEnv({ NAME: "from-env", CONCURRENCY: "0" }))
        )
        expect(invalid).toBeInstanceOf(InvalidOptionsError)
        expect(invalid.message).toContain('["concurrency"]')
        const missing = yield* Effect.flip(Effect.provide(Executor.Executor, layer).pipe(withEnv({ NAME: "x" })))
        expect(String(missing)).toContain("CONCURRENCY")
      })
    )

    it.effect("a bad layer fails when the layer is built", () =>
      Effect.gen(function* () {
        const layer = Executor.layer({ name: "", concurrency: 1 })
        const error = yield* Effect.flip(Layer.build(layer).pipe(Effect.scoped))
        expect(error.message).toContain('["name"]')
      })
    )
  })
})
