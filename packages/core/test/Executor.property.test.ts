import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as fc from "fast-check"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Executor from "../src/Executor.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { isTerminal, type RequestEvent } from "../src/RequestEvent.js"
import { withHangGuard } from "./utils/hangGuard.js"

/**
 * Random callers, random outcomes, random interruptions at random moments
 * (while queued, waiting for room, waiting for tokens, waiting for a permit,
 * running). Afterwards nothing may be held: no queue slot, no permit, no
 * admission, and the token bucket (which does not refill within the test) has
 * paid exactly for the requests that started, no more.
 */

const taskArbitrary = fc.record({
  durationMillis: fc.integer({ min: 0, max: 400 }),
  tokens: fc.integer({ min: 1, max: 5 }),
  priority: fc.integer({ min: 0, max: 3 }),
  fails: fc.boolean(),
  submitAtMillis: fc.integer({ min: 0, max: 300 }),
  interruptAtMillis: fc.option(fc.integer({ min: 0, max: 1500 }), { nil: undefined }),
  /** Which lane: each key has its own buckets and its own lane. */
  key: fc.constantFrom("a", "b", "c")
})

const scenarioArbitrary = fc.record({
  concurrency: fc.integer({ min: 1, max: 4 }),
  queueCapacity: fc.integer({ min: 1, max: 6 }),
  whenFull: fc.constantFrom("suspend" as const, "fail" as const),
  requestsPerSecond: fc.integer({ min: 2, max: 20 }),
  burst: fc.integer({ min: 1, max: 3 }),
  /** Spans off: an attempt timeout is watched by the executor's timer, which interrupts the request's fiber. */
  spans: fc.boolean(),
  timeoutMillis: fc.option(fc.integer({ min: 50, max: 500 }), { nil: undefined }),
  keyConcurrency: fc.option(fc.integer({ min: 1, max: 2 }), { nil: undefined }),
  tasks: fc.array(taskArbitrary, { minLength: 1, maxLength: 16 })
})

type Scenario = typeof scenarioArbitrary extends fc.Arbitrary<infer A> ? A : never

const TOKEN_CAPACITY = 1_000

/**
 * A scenario that once hung: the limiter admits at fractional milliseconds, so
 * an attempt's deadline was fractional and the clock landed a hair before it;
 * the executor's timer slept for nothing and looked again, forever.
 */
const FRACTIONAL_TIMES: Scenario = {
  concurrency: 2,
  queueCapacity: 5,
  whenFull: "suspend",
  requestsPerSecond: 9,
  burst: 1,
  spans: false,
  timeoutMillis: 213,
  keyConcurrency: undefined,
  tasks: [
    {
      durationMillis: 400,
      tokens: 1,
      priority: 3,
      fails: true,
      submitAtMillis: 129,
      interruptAtMillis: 1469,
      key: "a"
    },
    {
      durationMillis: 264,
      tokens: 1,
      priority: 3,
      fails: false,
      submitAtMillis: 237,
      interruptAtMillis: undefined,
      key: "a"
    },
    { durationMillis: 240, tokens: 4, priority: 3, fails: true, submitAtMillis: 51, interruptAtMillis: 357, key: "a" },
    {
      durationMillis: 233,
      tokens: 5,
      priority: 1,
      fails: false,
      submitAtMillis: 89,
      interruptAtMillis: 1343,
      key: "a"
    },
    {
      durationMillis: 299,
      tokens: 5,
      priority: 1,
      fails: false,
      submitAtMillis: 199,
      interruptAtMillis: 978,
      key: "a"
    },
    { durationMillis: 211, tokens: 3, priority: 3, fails: false, submitAtMillis: 95, interruptAtMillis: 416, key: "a" },
    { durationMillis: 390, tokens: 5, priority: 0, fails: false, submitAtMillis: 64, interruptAtMillis: 158, key: "a" },
    { durationMillis: 286, tokens: 2, priority: 0, fails: true, submitAtMillis: 15, interruptAtMillis: 965, key: "a" }
  ]
}

/** The most requests of one key that were CALLING at once, from the events (in order). */
const maxPerKey = (events: ReadonlyArray<RequestEvent>) => {
  const running = new Map<string, number>()
  const calling = new Set<number>()
  let most = 0
  for (const event of events) {
    const wasCalling = calling.has(event.id)
    const isCalling = event.status === "CALLING"
    if (isCalling === wasCalling) continue
    const now = (running.get(event.key) ?? 0) + (isCalling ? 1 : -1)
    running.set(event.key, now)
    if (isCalling) calling.add(event.id)
    else calling.delete(event.id)
    most = Math.max(most, now)
  }
  return most
}

/** Nothing queued, admitted, running, retrying or waiting for room: every permit is free. Answers the stats. */
const expectIdle = (executor: Executor.ExecutorShape, concurrency: number) =>
  Effect.map(executor.stats, (stats) => {
    expect(stats).toMatchObject({
      queued: 0,
      admitting: 0,
      inFlight: 0,
      retrying: 0,
      waitingForRoom: 0,
      availablePermits: concurrency
    })
    return stats
  })

/**
 * No queue slot is held: the queue takes exactly `queueCapacity` requests
 * again. Every permit is taken by a request that waits on a gate (each on a
 * key of its own, so that a per-key cap does not hold them back), then
 * requests are submitted on one more key: its lane takes the first out to
 * wait for a permit, and of `queueCapacity + 1` more, exactly `queueCapacity`
 * stay queued (a slot still held would leave fewer), the last waiting for
 * room or refused.
 * Then every caller is interrupted, and nothing may be held again.
 */
const expectQueueTakesCapacity = (executor: Executor.ExecutorShape, concurrency: number, queueCapacity: number) =>
  Effect.gen(function* () {
    const gate = Effect.never
    const holders = yield* Effect.forEach(
      Array.from({ length: concurrency }, (_, i) => i),
      (i) =>
        // Its own timeout: the scenario's would cut it off. One at a time: each leaves the queue (a slot) before
        // the next comes, so that a queue of one slot refuses none.
        Effect.zipLeft(
          Effect.fork(executor.submit(gate, { key: `holder-${i}`, cost: { tokens: 0 }, timeout: "1 hour" })),
          TestClock.adjust(0)
        )
    )
    // The holders are admitted at the scenario's request rate (at least 2 a second, a burst of at least 1).
    yield* TestClock.adjust("3 seconds")
    expect(yield* executor.stats).toMatchObject({ inFlight: concurrency })
    const probe = Effect.fork(Effect.exit(executor.submit(Effect.void, { key: "probe", cost: { tokens: 0 } })))
    // The first is taken out of its lane, to wait for a permit (its lane waits with it)...
    const head = yield* probe
    yield* TestClock.adjust(0)
    expect(yield* executor.stats).toMatchObject({ inFlight: concurrency, queued: 0, admitting: 1 })
    // ...so the queue keeps the next ones: as many as it has slots.
    const probes = yield* Effect.forEach(Array.from({ length: queueCapacity + 1 }), () => probe)
    yield* TestClock.adjust(0)
    expect(yield* executor.stats).toMatchObject({ inFlight: concurrency, queued: queueCapacity, admitting: 1 })
    probes.push(head)
    yield* Fiber.interruptAll([...probes, ...holders])
    yield* expectIdle(executor, concurrency)
  })

/** Every request in `ids` reached exactly one terminal status, and no other request did. */
const expectEndedOnce = (events: ReadonlyArray<RequestEvent>, ids: ReadonlySet<number>) => {
  const terminal = new Map<number, number>()
  for (const event of events) {
    if (isTerminal(event.status)) terminal.set(event.id, (terminal.get(event.id) ?? 0) + 1)
  }
  expect([...terminal.keys()].sort()).toEqual([...ids].sort())
  expect([...terminal.values()].every((count) => count === 1)).toBe(true)
}

const runScenario = (scenario: Scenario) =>
  Effect.gen(function* () {
    const limiter = yield* RateLimiter.make({
      limits: {
        requests: { limit: scenario.requestsPerSecond, interval: "1 second", capacity: scenario.burst },
        // Refills one token per 1,000 hours: within the test it is a plain counter.
        tokens: { limit: 1, interval: "1000 hours", capacity: TOKEN_CAPACITY }
      }
    }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
    const executor = yield* Executor.make({
      name: "property",
      concurrency: scenario.concurrency,
      queueCapacity: scenario.queueCapacity,
      whenFull: scenario.whenFull,
      rateLimiter: limiter,
      spans: scenario.spans,
      timeout: scenario.timeoutMillis,
      keyConcurrency: scenario.keyConcurrency
    })
    const events = yield* executor.subscribe

    const callers = yield* Effect.forEach(scenario.tasks, (task) =>
      Effect.gen(function* () {
        const work = Effect.zipRight(
          Effect.sleep(task.durationMillis),
          task.fails ? Effect.fail("failed" as const) : Effect.succeed("ok" as const)
        )
        const caller = yield* Effect.fork(
          Effect.delay(
            executor.submit(work, { cost: { tokens: task.tokens }, priority: task.priority, key: task.key }),
            task.submitAtMillis
          )
        )
        if (task.interruptAtMillis !== undefined) {
          yield* Effect.fork(Effect.delay(Fiber.interrupt(caller), task.interruptAtMillis))
        }
        return caller
      })
    )

    yield* TestClock.adjust("1 minute")
    yield* Effect.forEach(callers, Fiber.await)

    const stats = yield* expectIdle(executor, scenario.concurrency)

    const all = Array.from(yield* Queue.takeAll(events))
    // A caller interrupted before it submitted never made a request.
    const submitted = new Set(all.filter((event) => event.status === "PENDING").map((event) => event.id))
    expect(stats.completed + stats.failed + stats.cancelled).toBe(submitted.size)
    const started = new Map<number, { key: string; tokens: number }>()
    for (const event of all) {
      if (event.status === "CALLING") {
        started.set(event.id, { key: event.key, tokens: (event.cost as { tokens: number }).tokens })
      }
    }
    expectEndedOnce(all, submitted)

    // Tokens, per key (each key is its own lane and buckets): charged for started requests only; every
    // other reservation was refunded.
    for (const key of ["a", "b", "c"]) {
      const paid = [...started.values()]
        .filter((request) => request.key === key)
        .reduce((sum, request) => sum + request.tokens, 0)
      const buckets = yield* limiter.state({ key })
      const tokens = buckets.find((bucket) => bucket.name === "tokens")!
      expect(Math.round(tokens.available)).toBe(TOKEN_CAPACITY - paid)
    }
    // And no key ever ran more than its cap.
    if (scenario.keyConcurrency !== undefined) expect(maxPerKey(all)).toBeLessThanOrEqual(scenario.keyConcurrency)
    yield* expectQueueTakesCapacity(executor, scenario.concurrency, scenario.queueCapacity)
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

/**
 * Without a rate limiter a lane admits its head at once, and only permits
 * (and the per-key cap) hold requests back. Random single submits and
 * batches sharing the queue and the lanes, random outcomes, random
 * interruptions of their callers, with or without an attempt timeout and
 * spans (with spans off a single submit's timeout is the executor timer's,
 * which interrupts the request's own fiber): concurrency is never exceeded,
 * every request ends exactly once, and nothing is held afterwards.
 */

const workArbitrary = fc.record({
  durationMillis: fc.integer({ min: 0, max: 400 }),
  priority: fc.integer({ min: 0, max: 3 }),
  fails: fc.boolean()
})

const callerArbitrary = fc.record({
  /** One task: a single submit; more: a batch. */
  tasks: fc.array(workArbitrary, { minLength: 1, maxLength: 4 }),
  batch: fc.boolean(),
  submitAtMillis: fc.integer({ min: 0, max: 300 }),
  interruptAtMillis: fc.option(fc.integer({ min: 0, max: 1500 }), { nil: undefined }),
  /** Which lane: each key has its own buckets and its own lane. */
  key: fc.constantFrom("a", "b", "c")
})

const unlimitedScenarioArbitrary = fc.record({
  concurrency: fc.integer({ min: 1, max: 4 }),
  queueCapacity: fc.integer({ min: 1, max: 6 }),
  whenFull: fc.constantFrom("suspend" as const, "fail" as const),
  /** Spans off: a single submit's attempt timeout is watched by the executor's timer, not raced. */
  spans: fc.boolean(),
  timeoutMillis: fc.option(fc.integer({ min: 50, max: 500 }), { nil: undefined }),
  keyConcurrency: fc.option(fc.integer({ min: 1, max: 2 }), { nil: undefined }),
  callers: fc.array(callerArbitrary, { minLength: 1, maxLength: 8 })
})

type UnlimitedScenario = typeof unlimitedScenarioArbitrary extends fc.Arbitrary<infer A> ? A : never

const runUnlimitedScenario = (scenario: UnlimitedScenario) =>
  Effect.gen(function* () {
    const executor = yield* Executor.make({
      name: "property-unlimited",
      concurrency: scenario.concurrency,
      queueCapacity: scenario.queueCapacity,
      whenFull: scenario.whenFull,
      spans: scenario.spans,
      timeout: scenario.timeoutMillis,
      keyConcurrency: scenario.keyConcurrency
    })
    const events = yield* executor.subscribe
    let running = 0
    let maxRunning = 0
    const work = (task: UnlimitedScenario["callers"][number]["tasks"][number]) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          running++
          maxRunning = Math.max(maxRunning, running)
        }),
        () =>
          Effect.zipRight(
            Effect.sleep(task.durationMillis),
            task.fails ? Effect.fail("failed" as const) : Effect.succeed("ok" as const)
          ),
        () =>
          Effect.sync(() => {
            running--
          })
      )

    const callers = yield* Effect.forEach(scenario.callers, (caller) =>
      Effect.gen(function* () {
        const call: Effect.Effect<ReadonlyArray<Exit.Exit<unknown, unknown>>> =
          caller.batch || caller.tasks.length > 1
            ? executor.submitAll(
                caller.tasks.map((task) => ({ effect: work(task), priority: task.priority, key: caller.key }))
              )
            : Effect.map(
                Effect.exit(
                  executor.submit(work(caller.tasks[0]!), { priority: caller.tasks[0]!.priority, key: caller.key })
                ),
                (exit) => [exit]
              )
        const fiber = yield* Effect.fork(Effect.delay(call, caller.submitAtMillis))
        if (caller.interruptAtMillis !== undefined) {
          yield* Effect.fork(Effect.delay(Fiber.interrupt(fiber), caller.interruptAtMillis))
        }
        return fiber
      })
    )

    yield* TestClock.adjust("1 minute")
    const outcomes = yield* Effect.forEach(callers, Fiber.await)

    expect(maxRunning).toBeLessThanOrEqual(scenario.concurrency)
    expect(running).toBe(0)
    const stats = yield* expectIdle(executor, scenario.concurrency)

    const all = Array.from(yield* Queue.takeAll(events))
    if (scenario.keyConcurrency !== undefined) expect(maxPerKey(all)).toBeLessThanOrEqual(scenario.keyConcurrency)
    const requests = new Set(all.map((event) => event.id))
    // Every request ended exactly once, and the counts agree.
    expectEndedOnce(all, requests)
    expect(stats.completed + stats.failed + stats.cancelled).toBe(requests.size)
    // A batch that was not interrupted answers one exit per task.
    scenario.callers.forEach((caller, index) => {
      const outcome = outcomes[index]!
      if (Exit.isSuccess(outcome)) {
        expect(outcome.value.length).toBe(caller.tasks.length)
      }
    })
    yield* expectQueueTakesCapacity(executor, scenario.concurrency, scenario.queueCapacity)
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

describe("Executor properties", () => {
  it("random interruptions of random callers leave no permit, token or queue slot held", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, (scenario) =>
        withHangGuard(Effect.runPromise(runScenario(scenario)), "something is still held")
      ),
      { numRuns: 100, examples: [[FRACTIONAL_TIMES]] }
    )
  }, 240_000)

  it("without a limiter, random submits and batches under random interruptions never exceed concurrency and leave nothing held", async () => {
    await fc.assert(
      fc.asyncProperty(unlimitedScenarioArbitrary, (scenario) =>
        withHangGuard(Effect.runPromise(runUnlimitedScenario(scenario)), "something is still held")
      ),
      { numRuns: 100 }
    )
  }, 240_000)
})

/**
 * The same, with retries, a shared circuit breaker and per-attempt timeouts:
 * each attempt's outcome is drawn at random (success, failure, a hang cut by
 * the timeout), callers are interrupted at random moments (queued, admitted,
 * running, between attempts), over three keys (each its own lane, buckets
 * and circuit). Afterwards no permit, token or probe slot is held on any key,
 * and each key's circuit still lets a call through once its open time is up.
 */
const attemptOutcome = fc.constantFrom("ok" as const, "fail" as const, "hang" as const)

const resilientTask = fc.record({
  durationMillis: fc.integer({ min: 0, max: 200 }),
  tokens: fc.integer({ min: 1, max: 5 }),
  outcomes: fc.array(attemptOutcome, { minLength: 1, maxLength: 4 }),
  submitAtMillis: fc.integer({ min: 0, max: 300 }),
  interruptAtMillis: fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
  /** Which lane: each key has its own lane, buckets and circuit. */
  key: fc.constantFrom("a", "b", "c")
})

const KEYS = ["a", "b", "c"] as const

const resilientScenario = fc.record({
  concurrency: fc.integer({ min: 1, max: 2 }),
  requestsPerSecond: fc.integer({ min: 5, max: 50 }),
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  baseMillis: fc.integer({ min: 1, max: 200 }),
  failures: fc.integer({ min: 1, max: 3 }),
  openMillis: fc.integer({ min: 50, max: 500 }),
  halfOpenProbes: fc.integer({ min: 1, max: 2 }),
  timeoutMillis: fc.integer({ min: 50, max: 300 }),
  /** With or without a limiter: a lane's admission waits on it, or on nothing but the breaker. */
  withLimiter: fc.boolean(),
  tasks: fc.array(resilientTask, { minLength: 1, maxLength: 16 })
})

type ResilientScenario = typeof resilientScenario extends fc.Arbitrary<infer A> ? A : never

class Transient {
  readonly _tag = "Transient"
  readonly retryable = true
}

const runResilientScenario = (scenario: ResilientScenario) =>
  Effect.gen(function* () {
    const limiter = yield* RateLimiter.make({
      limits: {
        requests: { limit: scenario.requestsPerSecond, interval: "1 second", capacity: 2 },
        tokens: { limit: 1, interval: "1000 hours", capacity: TOKEN_CAPACITY }
      }
    }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
    const breaker = yield* CircuitBreaker.make({
      name: "property",
      policy: { kind: "consecutive", failures: scenario.failures },
      openDuration: scenario.openMillis,
      halfOpenProbes: scenario.halfOpenProbes
    })
    const executor = yield* Executor.make({
      name: "resilient-property",
      concurrency: scenario.concurrency,
      rateLimiter: scenario.withLimiter ? limiter : undefined,
      breaker,
      timeout: scenario.timeoutMillis,
      retry: { maxAttempts: scenario.maxAttempts, base: scenario.baseMillis, jitter: "none" }
    })
    const events = yield* executor.subscribe

    const callers = yield* Effect.forEach(scenario.tasks, (task) =>
      Effect.gen(function* () {
        let attempt = 0
        const work = Effect.suspend(() => {
          const outcome = task.outcomes[Math.min(attempt++, task.outcomes.length - 1)]!
          return Effect.zipRight(
            Effect.sleep(task.durationMillis),
            outcome === "ok" ? Effect.succeed("ok") : outcome === "fail" ? Effect.fail(new Transient()) : Effect.never
          )
        })
        const caller = yield* Effect.fork(
          Effect.delay(executor.submit(work, { cost: { tokens: task.tokens }, key: task.key }), task.submitAtMillis)
        )
        if (task.interruptAtMillis !== undefined) {
          yield* Effect.fork(Effect.delay(Fiber.interrupt(caller), task.interruptAtMillis))
        }
        return caller
      })
    )

    yield* TestClock.adjust("1 minute")
    yield* Effect.forEach(callers, Fiber.await)

    yield* expectIdle(executor, scenario.concurrency)
    for (const key of KEYS) {
      expect(yield* breaker.inspect(key)).toMatchObject({ inFlight: 0, probesInFlight: 0 })
    }

    const all = Array.from(yield* Queue.takeAll(events))
    const submitted = new Set(all.filter((event) => event.status === "PENDING").map((event) => event.id))
    const paid = new Map<string, number>()
    for (const event of all) {
      // Every attempt that was sent paid its tokens; every other reservation went back.
      if (event.status === "CALLING") {
        paid.set(event.key, (paid.get(event.key) ?? 0) + (event.cost as { tokens: number }).tokens)
      }
    }
    expectEndedOnce(all, submitted)
    for (const key of KEYS) {
      const tokens = (yield* limiter.state({ key })).find((bucket) => bucket.name === "tokens")!
      expect(Math.round(tokens.available)).toBe(TOKEN_CAPACITY - (scenario.withLimiter ? (paid.get(key) ?? 0) : 0))
    }

    // Not stuck: once any open time is up, a good call on each key goes through and its circuit ends CLOSED.
    yield* TestClock.adjust(scenario.openMillis)
    for (const key of KEYS) {
      for (let i = 0; i < scenario.halfOpenProbes; i++) {
        const fiber = yield* Effect.fork(executor.submit(Effect.succeed("fine"), { cost: { tokens: 0 }, key }))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fiber)).toBe("fine")
      }
      expect(yield* breaker.state(key)).toBe("CLOSED")
    }
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

describe("Executor properties with retry and breaker", () => {
  it("random outcomes and interruptions leave no permit, token or probe slot held", async () => {
    await fc.assert(
      fc.asyncProperty(resilientScenario, (scenario) =>
        withHangGuard(Effect.runPromise(runResilientScenario(scenario)), "something is still held")
      ),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 100) }
    )
  }, 240_000)
})
