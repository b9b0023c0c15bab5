/**
 * The Executor's concurrency changed at run time (`setConcurrency`): lowered,
 * nothing running is interrupted and nothing new starts until fewer than the
 * new limit run; raised, queued work starts at once. And a property: under
 * random limits, submissions and interruptions, no more ever run than the
 * limit in force, and nothing is held afterwards.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as fc from "fast-check"
import * as Executor from "../src/Executor.js"
import { InvalidOptionsError } from "../src/InvalidOptions.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { withHangGuard } from "./utils/hangGuard.js"

/** Lets every runnable fiber run without moving the clock. */
const settle = TestClock.adjust(0)

/** Work that counts itself while it runs, and the counts. */
const counting = () => {
  const state = { running: 0, started: 0, highest: 0 }
  const task = (gate: Deferred.Deferred<void>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        state.running++
        state.started++
        state.highest = Math.max(state.highest, state.running)
      }),
      () => Deferred.await(gate),
      () =>
        Effect.sync(() => {
          state.running--
        })
    )
  return { state, task }
}

describe("Executor concurrency at run time", () => {
  it.scoped("lowered below what runs, it interrupts nothing and admits nothing new until running drops below it", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "lower", concurrency: 4, spans: false, shutdownTimeout: 0 })
      const { state, task } = counting()
      const gates = yield* Effect.forEach(Array.from({ length: 8 }), () => Deferred.make<void>())
      const callers = yield* Effect.forEach(gates, (gate) => Effect.fork(executor.submit(task(gate))))
      yield* settle
      expect(state.running).toBe(4)

      yield* executor.setConcurrency(2)
      yield* settle
      // The four keep running; none of them was interrupted.
      expect(state.running).toBe(4)
      // Of the four waiting, one is its lane's head, out of the queue and waiting for a permit.
      expect(yield* executor.stats).toMatchObject({
        concurrency: 2,
        inFlight: 4,
        availablePermits: 0,
        queued: 3,
        admitting: 1
      })

      // Two end: still two run, which is the new limit, so nothing starts.
      yield* Deferred.succeed(gates[0]!, undefined)
      yield* Deferred.succeed(gates[1]!, undefined)
      yield* settle
      expect(state.running).toBe(2)
      expect(state.started).toBe(4)

      // One more ends: one below the limit, so exactly one starts.
      yield* Deferred.succeed(gates[2]!, undefined)
      yield* settle
      expect(state.running).toBe(2)
      expect(state.started).toBe(5)

      for (const gate of gates) yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(callers, Fiber.join)
      expect(state.started).toBe(8)
      expect(yield* executor.stats).toMatchObject({ completed: 8, cancelled: 0, inFlight: 0, availablePermits: 2 })
    })
  )

  it.scoped("raised, it starts queued work at once", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "raise", concurrency: 1, spans: false, shutdownTimeout: 0 })
      const { state, task } = counting()
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      const labelled = (label: string) =>
        Effect.zipRight(
          Effect.sync(() => order.push(label)),
          task(gate)
        )
      yield* Effect.fork(executor.submit(labelled("first")))
      yield* settle
      yield* Effect.fork(executor.submit(labelled("low"), { priority: 0 }))
      yield* Effect.fork(executor.submit(labelled("high"), { priority: 5 }))
      yield* Effect.fork(executor.submit(labelled("mid"), { priority: 2 }))
      yield* settle
      expect(state.running).toBe(1)

      yield* executor.setConcurrency(3)
      yield* settle
      // No time passed and nothing ended: the raise alone started two more, the best first.
      expect(state.running).toBe(3)
      expect(order).toHaveLength(3)
      expect(yield* executor.stats).toMatchObject({ concurrency: 3, inFlight: 3, availablePermits: 0 })
      yield* Deferred.succeed(gate, undefined)
    })
  )

  it.scoped("raised while heads wait for a rate limit, it gives them permits as they are admitted", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        limits: { requests: { limit: 10, interval: "1 second", capacity: 10, windowMargin: 0 } }
      }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      const executor = yield* Executor.make({
        name: "raise-limited",
        concurrency: 1,
        rateLimiter: limiter,
        shutdownTimeout: 0
      })
      const { state, task } = counting()
      const gate = yield* Deferred.make<void>()
      // Three keys: three lanes, each with its head admitted and (but one) waiting for a permit.
      yield* Effect.forEach(["a", "b", "c"], (key) => Effect.fork(executor.submit(task(gate), { key })))
      yield* settle
      expect(state.running).toBe(1)
      yield* executor.setConcurrency(3)
      yield* settle
      expect(state.running).toBe(3)
      yield* Deferred.succeed(gate, undefined)
    })
  )

  it.scoped(
    "a limit that is not a whole number of at least 1 fails with an InvalidOptionsError and changes nothing",
    () =>
      Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "invalid-limit", concurrency: 2 })
        for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          const error = yield* Effect.flip(executor.setConcurrency(bad))
          expect(error).toBeInstanceOf(InvalidOptionsError)
          expect(error.message).toContain("setConcurrency")
        }
        expect((yield* executor.stats).concurrency).toBe(2)
      })
  )

  it.scoped("the limit in force is a gauge, sluice_executor_concurrency", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "gauge-limit", concurrency: 3 })
      const gauge = Metric.taggedWithLabels(Executor.metrics.concurrency, [MetricLabel.make("executor", "gauge-limit")])
      expect((yield* Metric.value(gauge)).value).toBe(3)
      yield* executor.setConcurrency(7)
      expect((yield* Metric.value(gauge)).value).toBe(7)
    })
  )
})

/**
 * Random limits set at random moments, random submissions (some through a
 * rate limiter's lanes, some not), random outcomes and random interruptions
 * of their callers. A limit lowered below what runs admits nothing until
 * running drops below it, so the bound checked at each start is the lowest
 * limit set since the oldest running attempt started, which is what the
 * check below follows: at every start, running ≤ the limit in force or, if
 * it was lowered, what ran when it was lowered. Afterwards nothing runs,
 * nothing is queued, and every permit of the last limit is free.
 */
const changeArbitrary = fc.record({
  atMillis: fc.integer({ min: 0, max: 800 }),
  limit: fc.integer({ min: 1, max: 5 })
})

const taskArbitrary = fc.record({
  durationMillis: fc.integer({ min: 0, max: 300 }),
  priority: fc.integer({ min: 0, max: 3 }),
  fails: fc.boolean(),
  submitAtMillis: fc.integer({ min: 0, max: 600 }),
  interruptAtMillis: fc.option(fc.integer({ min: 0, max: 1200 }), { nil: undefined }),
  key: fc.constantFrom("a", "b", "c")
})

const scenarioArbitrary = fc.record({
  concurrency: fc.integer({ min: 1, max: 4 }),
  withLimiter: fc.boolean(),
  timeoutMillis: fc.option(fc.integer({ min: 50, max: 300 }), { nil: undefined }),
  changes: fc.array(changeArbitrary, { maxLength: 6 }),
  tasks: fc.array(taskArbitrary, { minLength: 1, maxLength: 16 })
})

type Scenario = typeof scenarioArbitrary extends fc.Arbitrary<infer A> ? A : never

const runScenario = (scenario: Scenario) =>
  Effect.gen(function* () {
    const limiter = scenario.withLimiter
      ? yield* RateLimiter.make({
          limits: { requests: { limit: 20, interval: "1 second", capacity: 3 } }
        }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      : undefined
    const executor = yield* Executor.make({
      name: "concurrency-property",
      concurrency: scenario.concurrency,
      rateLimiter: limiter,
      timeout: scenario.timeoutMillis,
      spans: false
    })
    let limit = scenario.concurrency
    let running = 0
    /** The most that may run now: the limit, or what ran when it was lowered below that, until running drops. */
    let allowed = limit
    const violations: Array<string> = []
    const work = (task: Scenario["tasks"][number]) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          running++
          if (running > allowed) violations.push(`${running} running with ${allowed} allowed (limit ${limit})`)
        }),
        () =>
          Effect.zipRight(
            Effect.sleep(task.durationMillis),
            task.fails ? Effect.fail("failed" as const) : Effect.succeed("ok" as const)
          ),
        () =>
          Effect.sync(() => {
            running--
            allowed = Math.max(limit, Math.min(allowed, running))
          })
      )

    for (const change of scenario.changes) {
      yield* Effect.fork(
        Effect.delay(
          Effect.suspend(() => {
            limit = change.limit
            // Raised: at once; lowered: what runs may finish, nothing more starts.
            allowed = Math.max(limit, Math.min(allowed, running))
            return executor.setConcurrency(change.limit)
          }),
          change.atMillis
        )
      )
    }
    const callers = yield* Effect.forEach(scenario.tasks, (task) =>
      Effect.gen(function* () {
        const caller = yield* Effect.fork(
          Effect.delay(executor.submit(work(task), { priority: task.priority, key: task.key }), task.submitAtMillis)
        )
        if (task.interruptAtMillis !== undefined) {
          yield* Effect.fork(Effect.delay(Fiber.interrupt(caller), task.interruptAtMillis))
        }
        return caller
      })
    )

    yield* TestClock.adjust("1 minute")
    const exits = yield* Effect.forEach(callers, Fiber.await)

    expect(violations).toEqual([])
    expect(running).toBe(0)
    const stats = yield* executor.stats
    expect(stats).toMatchObject({
      queued: 0,
      admitting: 0,
      inFlight: 0,
      retrying: 0,
      concurrency: limit,
      availablePermits: limit
    })
    // A caller left alone answers with its work's own outcome (a lowered limit delays work, never fails it).
    scenario.tasks.forEach((task, index) => {
      if (task.interruptAtMillis !== undefined) return
      const exit = exits[index]!
      if (task.fails) expect(Exit.isFailure(exit)).toBe(true)
      else if (scenario.timeoutMillis === undefined || task.durationMillis < scenario.timeoutMillis) {
        expect(exit).toEqual(Exit.succeed("ok"))
      }
    })
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

describe("Executor concurrency properties", () => {
  it("random limits, submissions and interruptions: never more run than allowed, and no permit leaks", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, (scenario) =>
        withHangGuard(Effect.runPromise(runScenario(scenario)), "a permit or a request is still held")
      ),
      { numRuns: 100 }
    )
  }, 240_000)
})
