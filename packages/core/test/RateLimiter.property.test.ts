import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as fc from "fast-check"
import type * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { withHangGuard } from "./utils/hangGuard.js"
import {
  type Admission,
  advanceTo,
  fullAgainAt,
  makeLimiterOn,
  timedAcquire,
  worstWindowExcess
} from "./utils/limiterHelpers.js"

/**
 * Random limiters (one or two limits, random rate, interval and burst), random
 * callers (arrival time, cost per limit) and, for some properties, random
 * interruptions at random moments, or a reconcile below the estimate some time
 * after admission (the call used less than it paid for). Every emission interval
 * and cost is a whole number of milliseconds / units, so every due time is an
 * exact millisecond and the bounds below are checked without slack.
 */

interface LimitSpec {
  readonly limit: number
  /** Milliseconds per unit: the interval is `limit * emission`. */
  readonly emission: number
  readonly capacity: number | undefined
}

interface Call {
  readonly arrival: number
  /** One cost per limit, in order. */
  readonly costs: ReadonlyArray<number>
  /** When (ms) the caller is interrupted, if it is; `+ 0.5` keeps it off every due time. */
  readonly interruptAt: number | undefined
  /** How long after admission (ms, `+ 0.5`) the caller reconciles, if it does. */
  readonly reconcileAfter?: number | undefined
  /** What it reports as used, per limit: `floor(cost * share)` (0 is a refund). */
  readonly usedShare?: number | undefined
}

/** What a call really used of each limit. */
const usedCosts = (call: Call): ReadonlyArray<number> =>
  call.reconcileAfter === undefined ? call.costs : call.costs.map((cost) => Math.floor(cost * (call.usedShare ?? 1)))

interface Scenario {
  readonly limits: ReadonlyArray<LimitSpec>
  readonly calls: ReadonlyArray<Call>
}

const LIMITER_NAME = "property"
const STORE_KEY = `${LIMITER_NAME}:default`

const capacityOf = (spec: LimitSpec) => spec.capacity ?? spec.limit
const nameOf = (index: number) => `l${index}`

const limitArbitrary: fc.Arbitrary<LimitSpec> = fc.record({
  limit: fc.integer({ min: 1, max: 10 }),
  emission: fc.integer({ min: 1, max: 100 }),
  capacity: fc.option(fc.integer({ min: 1, max: 15 }), { nil: undefined })
})

const scenarioArbitrary = (options: {
  readonly minLimits: number
  readonly maxLimits: number
  readonly interruptions: boolean
  readonly reconciles?: boolean
}): fc.Arbitrary<Scenario> =>
  fc.array(limitArbitrary, { minLength: options.minLimits, maxLength: options.maxLimits }).chain((limits) =>
    fc.record({
      limits: fc.constant(limits),
      calls: fc.array(
        fc.record({
          arrival: fc.integer({ min: 0, max: 1500 }),
          costs: fc.tuple(...limits.map((spec) => fc.integer({ min: 0, max: capacityOf(spec) }))),
          interruptAt: options.interruptions
            ? fc.option(fc.integer({ min: 0, max: 3000 }), { nil: undefined, freq: 2 })
            : fc.constant(undefined),
          reconcileAfter: options.reconciles
            ? fc.option(fc.integer({ min: 0, max: 1500 }), { nil: undefined, freq: 2 })
            : fc.constant(undefined),
          usedShare: fc.double({ min: 0, max: 1, noNaN: true })
        }),
        { minLength: 1, maxLength: 12 }
      )
    })
  )

const limiterOptions = (scenario: Scenario): RateLimiter.Options => ({
  name: LIMITER_NAME,
  limits: Object.fromEntries(
    scenario.limits.map((spec, i) => [
      nameOf(i),
      { limit: spec.limit, interval: Duration.millis(spec.limit * spec.emission), capacity: spec.capacity }
    ])
  )
})

const costRecord = (call: Call): Record<string, number> =>
  Object.fromEntries(call.costs.map((cost, i) => [nameOf(i), cost]))

interface Outcome {
  readonly call: Call
  readonly exit: Exit.Exit<{ readonly time: number; readonly reservation: RateLimiter.Reservation }, unknown>
}

/**
 * Forks every caller (sleep until arrival, then acquire) and its interrupter,
 * runs the TestClock past the last possible due time, and answers each
 * caller's exit, plus the store and limiter for further checks.
 */
const runScenario = (scenario: Scenario) =>
  Effect.gen(function* () {
    const store = yield* RateLimiterStore.makeMemory({ sweepInterval: "1000 hours" })
    const limiter = yield* makeLimiterOn(store, limiterOptions(scenario))
    const fibers = yield* Effect.forEach(scenario.calls, (call) =>
      Effect.gen(function* () {
        const reconcileAfter = call.reconcileAfter
        const fiber = yield* Effect.fork(
          Effect.zipRight(Effect.sleep(Duration.millis(call.arrival)), timedAcquire(limiter, costRecord(call))).pipe(
            Effect.tap(({ reservation }) =>
              reconcileAfter === undefined
                ? Effect.void
                : Effect.zipRight(
                    Effect.sleep(Duration.millis(reconcileAfter + 0.5)),
                    limiter.reconcile(
                      reservation,
                      Object.fromEntries(usedCosts(call).map((used, i) => [nameOf(i), used]))
                    )
                  )
            )
          )
        )
        if (call.interruptAt !== undefined) {
          yield* Effect.fork(
            Effect.zipRight(Effect.sleep(Duration.millis(call.interruptAt + 0.5)), Fiber.interrupt(fiber))
          )
        }
        return fiber
      })
    )
    // No call waits longer than every cost before it takes to refill; a reconcile comes after that.
    let horizon = 3001
    let longestReconcile = 0
    for (const call of scenario.calls) {
      horizon = Math.max(horizon, call.arrival)
      for (let i = 0; i < call.costs.length; i++) horizon += call.costs[i]! * scenario.limits[i]!.emission
      longestReconcile = Math.max(longestReconcile, (call.reconcileAfter ?? 0) + 1)
    }
    horizon += longestReconcile
    yield* TestClock.adjust(Duration.millis(horizon + 1))
    // The sliding log may add its margin per saturated window beyond that: go on in small steps until
    // every caller is done. One still waiting after ten more seconds of virtual time is a hang.
    for (let extra = 0; extra < 10_000; extra += 10) {
      const polls = yield* Effect.forEach(fibers, Fiber.poll)
      if (polls.every((poll) => poll._tag === "Some")) break
      yield* TestClock.adjust("10 millis")
    }
    const stillWaiting = (yield* Effect.forEach(fibers, Fiber.poll)).filter((poll) => poll._tag === "None").length
    if (stillWaiting > 0) return yield* Effect.die(new Error(`${stillWaiting} caller(s) never served: a hang`))
    const outcomes: Array<Outcome> = []
    for (let i = 0; i < fibers.length; i++) {
      outcomes.push({ call: scenario.calls[i]!, exit: yield* Fiber.await(fibers[i]!) })
    }
    return { store, limiter, outcomes }
  })

/** Admissions per limit: (admission time, cost really used) of every successful call. */
const admissionsByLimit = (scenario: Scenario, outcomes: ReadonlyArray<Outcome>) =>
  scenario.limits.map((_, i) => {
    const admissions: Array<Admission> = []
    for (const { call, exit } of outcomes) {
      if (Exit.isSuccess(exit)) admissions.push({ time: exit.value.time, cost: usedCosts(call)[i]! })
    }
    return admissions
  })

/** No window [a, b] holds more admitted cost than `capacity + (b - a) / emission`, on any limit. */
const expectWithinBucketBound = (scenario: Scenario, outcomes: ReadonlyArray<Outcome>) => {
  admissionsByLimit(scenario, outcomes).forEach((admissions, i) => {
    const spec = scenario.limits[i]!
    const worst = worstWindowExcess(admissions, capacityOf(spec), spec.emission)
    if (worst.excess > 1e-9) {
      expect.fail(
        `limit ${nameOf(i)} (capacity ${capacityOf(spec)}, ${spec.emission} ms/unit) admitted ` +
          `${worst.excess} above its bound in [${worst.from}, ${worst.to}]`
      )
    }
  })
}

const bucketSpecs = (scenario: Scenario): ReadonlyArray<RateLimiterStore.BucketSpec> =>
  scenario.limits.map((spec, i) => ({
    name: nameOf(i),
    capacity: capacityOf(spec),
    emission: spec.emission,
    interval: spec.limit * spec.emission,
    windowMargin: 1,
    windowLimit: capacityOf(spec) + spec.limit - 1
  }))

/**
 * No tokens held. A bucket that saw only the admitted calls is full again at
 * `fullAgainAt`; the limiter's final state, looked at as of that time, must be
 * full too (a reservation that was not refunded would still be draining). Then,
 * on the Clock, `state()` reports every bucket full and the key can be swept.
 */
const expectNothingHeld = (
  scenario: Scenario,
  store: RateLimiterStore.MemoryStore,
  limiter: RateLimiter.RateLimiterShape,
  outcomes: ReadonlyArray<Outcome>
) =>
  Effect.gen(function* () {
    const specs = bucketSpecs(scenario)
    const fullAt = admissionsByLimit(scenario, outcomes).map((admissions, i) =>
      Math.max(0, fullAgainAt(admissions, specs[i]!.emission))
    )
    for (let i = 0; i < specs.length; i++) {
      const [asOfFullAt] = yield* store.inspect(STORE_KEY, [specs[i]!], fullAt[i]!)
      expect({ limit: specs[i]!.name, at: fullAt[i], available: asOfFullAt!.available }).toEqual({
        limit: specs[i]!.name,
        at: fullAt[i],
        available: specs[i]!.capacity
      })
    }
    yield* advanceTo(Math.max(...fullAt))
    for (const bucket of yield* limiter.state()) {
      expect(bucket.available).toBe(bucket.capacity)
      expect(bucket.blockedUntil).toBe(0)
    }
    yield* store.sweep
    expect(yield* store.size).toBe(0)
  })

/** Runs one scenario on a fresh TestContext. */

const check = (program: (scenario: Scenario) => Effect.Effect<void, unknown, Scope.Scope>) => (scenario: Scenario) =>
  withHangGuard(
    Effect.runPromise(program(scenario).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))),
    "a waiter was never served"
  )

/** `PROPERTY_RUNS=2000` to search harder. */
const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 100)
// Generous: alone a run of 100 takes about 6 s, but CI runs it beside the CLI's end-to-end tests (child
// processes) on two cores, where it has taken over a minute. The hang guard still bounds each scenario.
const PROPERTY_TIMEOUT = Math.max(240_000, NUM_RUNS * 2_400)

describe("RateLimiter (properties)", () => {
  it(
    "admitted cost in any window never exceeds capacity + rate × window",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          scenarioArbitrary({ minLimits: 1, maxLimits: 2, interruptions: false }),
          check((scenario) =>
            Effect.gen(function* () {
              const { outcomes } = yield* runScenario(scenario)
              for (const { call, exit } of outcomes) {
                if (!Exit.isSuccess(exit)) return expect.fail(`a call failed: ${String(exit.cause)}`)
                const { reservation, time } = exit.value
                // Admitted exactly at its due time, never before it arrived.
                expect(time).toBe(reservation.at)
                expect(reservation.waited).toBe(reservation.at - call.arrival)
                expect(reservation.at).toBeGreaterThanOrEqual(call.arrival)
              }
              expectWithinBucketBound(scenario, outcomes)
            })
          )
        ),
        { numRuns: NUM_RUNS }
      )
    },
    PROPERTY_TIMEOUT
  )

  // Examples: a waiter short of l1 for 1 s must not hold l0 meanwhile, nor after it is
  // interrupted; a waiter interrupted with another behind it, then a newcomer for a whole bucket.
  it(
    "random interruptions of random waiters leave no tokens held and never break the bucket bound",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          scenarioArbitrary({ minLimits: 1, maxLimits: 2, interruptions: true }),
          check((scenario) =>
            Effect.gen(function* () {
              const { limiter, outcomes, store } = yield* runScenario(scenario)
              for (const { exit } of outcomes) expect(Exit.isSuccess(exit) || Exit.isInterrupted(exit)).toBe(true)
              expectWithinBucketBound(scenario, outcomes)
              yield* expectNothingHeld(scenario, store, limiter, outcomes)
            })
          )
        ),
        {
          numRuns: NUM_RUNS,
          examples: [
            // Found by a run of 1,500: the head waiting for l1 is interrupted at 1,280.5; the call behind it
            // (4 of l0, whose bucket had been full all along) was dated back to the line's last charge
            // (1,280), so the next 1 of l0 went at 1,327: 5 units in 46.5 ms (bound 4 + 46.5 / 47).
            [
              {
                limits: [
                  { limit: 4, emission: 47, capacity: 4 },
                  { limit: 4, emission: 80, capacity: 6 }
                ],
                calls: [
                  { arrival: 1, costs: [0, 1], interruptAt: 1280 },
                  { arrival: 0, costs: [0, 4], interruptAt: undefined },
                  { arrival: 0, costs: [0, 5], interruptAt: undefined },
                  { arrival: 0, costs: [0, 2], interruptAt: undefined },
                  { arrival: 2, costs: [4, 0], interruptAt: undefined },
                  { arrival: 0, costs: [0, 5], interruptAt: undefined },
                  { arrival: 0, costs: [0, 6], interruptAt: undefined },
                  { arrival: 2, costs: [1, 0], interruptAt: undefined }
                ]
              }
            ],
            [
              {
                limits: [
                  { limit: 10, emission: 100, capacity: undefined },
                  { limit: 10, emission: 100, capacity: undefined }
                ],
                calls: [
                  { arrival: 0, costs: [1, 10], interruptAt: undefined },
                  { arrival: 1, costs: [1, 10], interruptAt: 500 }
                ]
              }
            ],
            [
              {
                limits: [{ limit: 10, emission: 100, capacity: undefined }],
                calls: [
                  { arrival: 0, costs: [10], interruptAt: undefined },
                  { arrival: 1, costs: [10], interruptAt: 500 },
                  { arrival: 2, costs: [1], interruptAt: undefined },
                  { arrival: 600, costs: [10], interruptAt: undefined }
                ]
              }
            ]
          ]
        }
      )
    },
    PROPERTY_TIMEOUT
  )

  // Regression (a bug once, in gcra.adjust): a refund or a reconcile below the estimate subtracts the whole
  // difference from `tat`, even the part of the reservation that has already refilled (and
  // so already been handed out again, or dropped at capacity): it is credited twice.
  // The example: 10 at 0, 10 at 1,000 (the first's units refilled by then), the first
  // refunded at 1,500.5 (used 0): the third 10 is admitted at 1,501, 20 units in 501 ms
  // (bound: 15). Random runs find it too (e.g. refunds after a busy period of small calls).
  it(
    "reconciles below the estimate never let used cost exceed capacity + rate × window",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          scenarioArbitrary({ minLimits: 1, maxLimits: 2, interruptions: false, reconciles: true }),
          check((scenario) =>
            Effect.gen(function* () {
              const { outcomes } = yield* runScenario(scenario)
              expectWithinBucketBound(scenario, outcomes)
            })
          )
        ),
        {
          numRuns: NUM_RUNS,
          examples: [
            [
              {
                limits: [{ limit: 10, emission: 100, capacity: undefined }],
                calls: [
                  { arrival: 0, costs: [10], interruptAt: undefined, reconcileAfter: 1500, usedShare: 0 },
                  { arrival: 1000, costs: [10], interruptAt: undefined },
                  { arrival: 1501, costs: [10], interruptAt: undefined }
                ]
              }
            ]
          ]
        }
      )
    },
    PROPERTY_TIMEOUT
  )
})
