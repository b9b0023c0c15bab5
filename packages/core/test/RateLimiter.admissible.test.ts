/**
 * `admissibleIn`: when a cost could be admitted on a key, charging nothing.
 * Examples under TestClock (a spent bucket, callers already in line, blocks,
 * several limits, the typed errors), and properties over random limiters and
 * histories: the query changes no state, and the answer is exact (a caller
 * that waits that long is admitted at once; one that waits a microsecond less
 * is not).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as fc from "fast-check"
import type * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { withHangGuard } from "./utils/hangGuard.js"
import { makeLimiter, makeLimiterOn, settle, timedAcquire } from "./utils/limiterHelpers.js"

const millisOf = (duration: Duration.Duration) => Duration.toMillis(duration)

/** 1 per 100 ms, a burst of `capacity`, no sliding-log margin. */
const tenPerSecond = (capacity = 10) =>
  makeLimiter({ limits: { requests: { limit: 10, interval: "1 second", capacity, windowMargin: 0 } } })

describe("RateLimiter.admissibleIn", () => {
  it.effect("a fresh key admits now; a spent bucket answers its refill, and waiting that long admits at once", () =>
    Effect.gen(function* () {
      const limiter = yield* tenPerSecond()
      expect(millisOf(yield* limiter.admissibleIn(10))).toBe(0)
      yield* limiter.acquire(10)
      expect(millisOf(yield* limiter.admissibleIn())).toBe(100)
      expect(millisOf(yield* limiter.admissibleIn(3))).toBe(300)
      yield* TestClock.adjust(299)
      expect(millisOf(yield* limiter.admissibleIn(3))).toBe(1)
      yield* TestClock.adjust(1)
      const result = yield* limiter.tryAcquire(3)
      expect(result._tag === "Admitted" && result.reservation.waited).toBe(0)
    })
  )

  it.effect("charges nothing: asking any number of times leaves every bucket as it was", () =>
    Effect.gen(function* () {
      const limiter = yield* tenPerSecond()
      yield* limiter.acquire(4)
      const before = yield* limiter.state()
      for (let i = 0; i < 20; i++) expect(millisOf(yield* limiter.admissibleIn(7))).toBe(100)
      expect(yield* limiter.state()).toEqual(before)
      // The six left are still there to take at once.
      expect((yield* limiter.tryAcquire(6))._tag).toBe("Admitted")
    })
  )

  it.effect("counts the callers already waiting in the key's line: the answer comes after theirs", () =>
    Effect.gen(function* () {
      const limiter = yield* tenPerSecond(1)
      yield* limiter.acquire(1)
      // Two callers wait: due at 100 and 200 ms.
      const waiting = yield* Effect.forEach([1, 2], () => Effect.fork(timedAcquire(limiter, 1)))
      yield* settle
      expect(millisOf(yield* limiter.admissibleIn(1))).toBe(300)
      // Another key has no line: its own bucket answers.
      expect(millisOf(yield* limiter.admissibleIn(1, { key: "other" }))).toBe(0)
      const mine = yield* Effect.fork(timedAcquire(limiter, 1))
      yield* TestClock.adjust(300)
      expect((yield* Effect.forEach(waiting, Fiber.join)).map((timed) => timed.time)).toEqual([100, 200])
      expect((yield* Fiber.join(mine)).time).toBe(300)
    })
  )

  it.effect("counts blocks: a penalty holds every cost but a free one; sync to nothing holds until the reset", () =>
    Effect.gen(function* () {
      const limiter = yield* tenPerSecond()
      yield* limiter.penalize("2 seconds")
      expect(millisOf(yield* limiter.admissibleIn(1))).toBe(2_000)
      expect(millisOf(yield* limiter.admissibleIn(0))).toBe(0)
      const synced = yield* tenPerSecond()
      yield* synced.sync("requests", { remaining: 0, resetAfter: "700 millis" }, { key: "k" })
      expect(millisOf(yield* synced.admissibleIn(1, { key: "k" }))).toBe(700)
    })
  )

  it.effect("with several limits the one that admits last decides", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter({
        limits: {
          requests: { limit: 10, interval: "1 second", windowMargin: 0 },
          tokens: { limit: 1_000, interval: "1 second", windowMargin: 0 }
        }
      })
      yield* limiter.acquire({ tokens: 1_000 })
      // 1 request is there now; 500 tokens take 500 ms to come back.
      expect(millisOf(yield* limiter.admissibleIn({ tokens: 500 }))).toBe(500)
      expect(millisOf(yield* limiter.admissibleIn({ requests: 1, tokens: 0 }))).toBe(0)
    })
  )

  it.effect("fails as acquire does: a cost above capacity, an unknown limit, a negative cost", () =>
    Effect.gen(function* () {
      const limiter = yield* tenPerSecond()
      const above = yield* Effect.flip(limiter.admissibleIn(11))
      expect([above.reason, above.limit, above.cost, above.capacity]).toEqual([
        "CostExceedsCapacity",
        "requests",
        11,
        10
      ])
      const unknown = yield* Effect.flip(limiter.admissibleIn({ tokens: 1 }))
      expect([unknown.reason, unknown.limit]).toEqual(["UnknownLimit", "tokens"])
      const negative = yield* Effect.flip(limiter.admissibleIn(-1))
      expect(negative.reason).toBe("InvalidCost")
    })
  )
})

// ---- properties -------------------------------------------------------------------

interface LimitSpec {
  readonly limit: number
  /** Whole milliseconds per unit. */
  readonly emission: number
  readonly capacity: number
  readonly windowMargin: number
}

interface History {
  readonly limits: ReadonlyArray<LimitSpec>
  /** Earlier acquisitions: when (ms from 0) and what, per limit. */
  readonly acquisitions: ReadonlyArray<{ readonly at: number; readonly costs: ReadonlyArray<number> }>
  /** A penalty before the question, if any (ms). */
  readonly penalty: number | undefined
  /** When the question is asked (ms). */
  readonly askAt: number
  readonly cost: ReadonlyArray<number>
}

const nameOf = (index: number) => `l${index}`
const record = (costs: ReadonlyArray<number>) => Object.fromEntries(costs.map((cost, i) => [nameOf(i), cost]))

const historyArbitrary = (options: { readonly maxLimits: number; readonly margins: boolean }) =>
  fc
    .array(
      fc.record({
        limit: fc.integer({ min: 1, max: 8 }),
        emission: fc.integer({ min: 1, max: 60 }),
        capacity: fc.integer({ min: 1, max: 12 }),
        windowMargin: options.margins ? fc.integer({ min: 0, max: 6 }) : fc.constant(0)
      }),
      { minLength: 1, maxLength: options.maxLimits }
    )
    .chain((limits) =>
      fc.record({
        limits: fc.constant(limits),
        acquisitions: fc.array(
          fc.record({
            at: fc.integer({ min: 0, max: 400 }),
            costs: fc.tuple(...limits.map((spec) => fc.integer({ min: 0, max: spec.capacity })))
          }),
          { maxLength: 10 }
        ),
        penalty: fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
        askAt: fc.integer({ min: 0, max: 600 }),
        cost: fc.tuple(...limits.map((spec) => fc.integer({ min: 0, max: spec.capacity })))
      })
    )

const limiterOn = (store: RateLimiterStore.RateLimiterStoreShape, limits: ReadonlyArray<LimitSpec>) =>
  Effect.orDie(
    makeLimiterOn(store, {
      name: "admissible",
      limits: Object.fromEntries(
        limits.map((spec, i) => [
          nameOf(i),
          {
            limit: spec.limit,
            interval: Duration.millis(spec.limit * spec.emission),
            capacity: spec.capacity,
            windowMargin: Duration.millis(spec.windowMargin)
          }
        ])
      )
    })
  )

/** Forks every earlier acquisition at its time (and the penalty), then moves the clock to `askAt`. */
const replay = (limiter: RateLimiter.RateLimiterShape, history: History) =>
  Effect.gen(function* () {
    const fibers = yield* Effect.forEach(history.acquisitions, (acquisition) =>
      Effect.fork(Effect.zipRight(Effect.sleep(acquisition.at), limiter.acquire(record(acquisition.costs))))
    )
    if (history.penalty !== undefined) yield* limiter.penalize(history.penalty)
    yield* TestClock.adjust(history.askAt)
    return fibers
  })

/** Time enough (ms) for every earlier acquisition to be served: each cost's refill, twice, past the last arrival. */
const horizonOf = (history: History) => {
  let horizon = 1_000 + (history.penalty ?? 0)
  for (const acquisition of history.acquisitions) {
    acquisition.costs.forEach((cost, i) => {
      const spec = history.limits[i]!
      horizon += 2 * (cost * spec.emission + spec.windowMargin)
    })
  }
  return horizon
}

const check = (program: (history: History) => Effect.Effect<void, unknown, Scope.Scope>) => (history: History) =>
  withHangGuard(
    Effect.runPromise(program(history).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))),
    "an acquisition was never served"
  )

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 100)

describe("RateLimiter.admissibleIn (properties)", () => {
  it("charges nothing, and is exact: admitted at once after the answer, not a microsecond before", async () => {
    await fc.assert(
      fc.asyncProperty(
        historyArbitrary({ maxLimits: 2, margins: true }),
        check((history) =>
          Effect.gen(function* () {
            const store = yield* RateLimiterStore.makeMemory({ sweepInterval: "1000 hours" })
            const limiter = yield* limiterOn(store, history.limits)
            const earlier = yield* replay(limiter, history)
            // Let every earlier caller through first: nobody waits in line when the question is asked.
            yield* TestClock.adjust(horizonOf(history))
            yield* Effect.forEach(earlier, Fiber.join)
            const before = yield* limiter.state()
            const answer = millisOf(yield* limiter.admissibleIn(record(history.cost)))
            const again = millisOf(yield* limiter.admissibleIn(record(history.cost)))
            expect(yield* limiter.state()).toEqual(before)
            expect(again).toBe(answer)
            if (answer >= 0.001) {
              yield* TestClock.adjust(Duration.millis(answer - 0.001))
              expect((yield* limiter.tryAcquire(record(history.cost)))._tag).toBe("Delayed")
              yield* TestClock.adjust(Duration.millis(0.001))
            }
            const result = yield* limiter.tryAcquire(record(history.cost))
            expect(result._tag).toBe("Admitted")
          })
        )
      ),
      { numRuns: NUM_RUNS }
    )
  }, 120_000)

  it("with callers in line (one limit): a caller that joins now is admitted exactly when answered, and nothing was charged", async () => {
    await fc.assert(
      fc.asyncProperty(
        historyArbitrary({ maxLimits: 1, margins: false }).map((history) => ({ ...history, penalty: undefined })),
        check((history) =>
          Effect.gen(function* () {
            const store = yield* RateLimiterStore.makeMemory({ sweepInterval: "1000 hours" })
            const limiter = yield* limiterOn(store, history.limits)
            const earlier = yield* replay(limiter, history)
            const before = yield* limiter.state()
            const answer = millisOf(yield* limiter.admissibleIn(record(history.cost)))
            expect(yield* limiter.state()).toEqual(before)
            const askedAt = yield* Clock.currentTimeMillis
            const mine = yield* Effect.fork(timedAcquire(limiter, record(history.cost)))
            if (answer >= 1) {
              yield* TestClock.adjust(answer - 1)
              expect((yield* Fiber.poll(mine))._tag).toBe("None")
              yield* TestClock.adjust(1)
            } else {
              yield* settle
            }
            expect((yield* Fiber.poll(mine))._tag).toBe("Some")
            expect((yield* Fiber.join(mine)).time).toBe(askedAt + answer)
            yield* TestClock.adjust(horizonOf(history))
            yield* Effect.forEach(earlier, Fiber.join)
          })
        )
      ),
      { numRuns: NUM_RUNS }
    )
  }, 120_000)
})
