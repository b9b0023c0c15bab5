/**
 * The Executor owns admission: a request's whole cost is reserved on every
 * limit at once for each attempt, and each attempt's reservation is settled
 * afterwards as the submitter says (reconcile to the real usage, refund when
 * nothing was sent, keep when it was sent). A cost above a bucket's capacity
 * may be paid in installments. All under TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Executor from "../src/Executor.js"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", { sent: Schema.Boolean }) {
  get retryable() {
    return true
  }
}

/** Requests and tokens are plain counters within a test (one token per 1,000 hours). */
const makeLimiter = (tokens: number) =>
  RateLimiter.make({
    limits: {
      requests: { limit: 1, interval: "1000 hours", capacity: 100 },
      tokens: { limit: 1, interval: "1000 hours", capacity: tokens }
    }
  }).pipe(Effect.provide(RateLimiterStore.layerMemory()))

const available = (limiter: RateLimiter.RateLimiterShape, limit: string) =>
  Effect.map(limiter.state(), (buckets) => Math.round(buckets.find((bucket) => bucket.name === limit)!.available))

/** A settle that reads what the attempt says it used. */
const byOutcome = (exit: Exit.Exit<number, Flaky>): Executor.Settlement =>
  Exit.isSuccess(exit)
    ? Executor.Settlement.reconcile({ tokens: exit.value })
    : Exit.isFailure(exit) && exit.cause._tag === "Fail" && !exit.cause.error.sent
      ? Executor.Settlement.refund
      : Executor.Settlement.keep

describe("Executor cost and settle", () => {
  it.scoped("reconciles an attempt to what it used", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter(100)
      const executor = yield* Executor.make({ name: "reconcile", concurrency: 1, rateLimiter: limiter })
      yield* executor.submit(Effect.succeed(25), { cost: { tokens: 40 }, settle: byOutcome })
      expect(yield* available(limiter, "tokens")).toBe(75)
      // Limits the actual does not name keep what was reserved: one request.
      expect(yield* available(limiter, "requests")).toBe(99)
    })
  )

  it.scoped("refunds an attempt that sent nothing, keeps one that was sent, and keeps by default", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter(100)
      const executor = yield* Executor.make({ name: "refund-keep", concurrency: 1, rateLimiter: limiter })
      yield* Effect.flip(
        executor.submit(Effect.fail(new Flaky({ sent: false })), { cost: { tokens: 30 }, settle: byOutcome })
      )
      expect(yield* available(limiter, "tokens")).toBe(100)
      yield* Effect.flip(
        executor.submit(Effect.fail(new Flaky({ sent: true })), { cost: { tokens: 30 }, settle: byOutcome })
      )
      expect(yield* available(limiter, "tokens")).toBe(70)
      yield* Effect.flip(executor.submit(Effect.fail(new Flaky({ sent: false })), { cost: { tokens: 20 } }))
      expect(yield* available(limiter, "tokens")).toBe(50)
    })
  )

  it.scoped("each attempt of a retried request is admitted and settled on its own", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter(100)
      const executor = yield* Executor.make({
        name: "retried",
        concurrency: 1,
        rateLimiter: limiter,
        retry: { maxAttempts: 3, base: "100 millis", jitter: "none" }
      })
      const seen: Array<number> = []
      let attempt = 0
      const call = Effect.suspend(() => {
        attempt++
        return Effect.flatMap(Effect.orDie(available(limiter, "tokens")), (tokens) => {
          seen.push(tokens)
          if (attempt === 1) return Effect.fail(new Flaky({ sent: false }))
          if (attempt === 2) return Effect.fail(new Flaky({ sent: true }))
          return Effect.succeed(5)
        })
      })
      const fiber = yield* Effect.fork(executor.submit(call, { cost: { tokens: 10 }, settle: byOutcome }))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe(5)
      // Each attempt paid 10 as it began; the first was refunded, the second kept, the third reconciled to 5.
      expect(seen).toEqual([90, 90, 80])
      expect(yield* available(limiter, "tokens")).toBe(85)
      // Requests too: the refunded attempt gave its request back.
      expect(yield* available(limiter, "requests")).toBe(98)
    })
  )

  it.scoped("a cost above a bucket's capacity pays in installments, or fails at once without them", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        limits: { tokens: { limit: 100, interval: "1 second", windowMargin: 0 } }
      }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      const executor = yield* Executor.make({ name: "installments", concurrency: 1, rateLimiter: limiter })
      const refused = yield* Effect.flip(executor.submit(Effect.void, { cost: 250 }))
      expect(refused).toMatchObject({ _tag: "RateLimiterError", reason: "CostExceedsCapacity", capacity: 100 })
      const startedAt = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.succeed(now))
      const fiber = yield* Effect.fork(executor.submit(startedAt, { cost: 250, installments: true }))
      yield* TestClock.adjust("2 seconds")
      // 100 at once, 100 a second later, the last 50 half a second after that.
      expect(yield* Fiber.join(fiber)).toBe(1500)
    })
  )

  it.scoped("a request interrupted between installments gets everything it paid back", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({
        limits: { tokens: { limit: 100, interval: "1 second" } }
      }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      // The bucket caps a refund at its capacity, so its level cannot tell one installment given back from
      // two: the limiter the executor uses records what it is given back.
      const refunded: Array<number> = []
      const recording: RateLimiter.RateLimiterShape = {
        ...limiter,
        refund: (reservation) =>
          Effect.zipRight(
            Effect.sync(() => refunded.push(reservation.costs.tokens!)),
            limiter.refund(reservation)
          )
      }
      const executor = yield* Executor.make({
        name: "installments-cancelled",
        concurrency: 1,
        rateLimiter: recording
      })
      const fiber = yield* Effect.fork(executor.submit(Effect.void, { cost: 250, installments: true }))
      yield* TestClock.adjust("1200 millis")
      // Two installments paid: without a refund the bucket would hold 20.
      expect(yield* available(limiter, "tokens")).toBe(20)
      expect(refunded).toEqual([])
      yield* Fiber.interrupt(fiber)
      expect(refunded).toEqual([100, 100])
      expect(yield* available(limiter, "tokens")).toBe(100)
      expect(yield* executor.stats).toMatchObject({ queued: 0, admitting: 0, inFlight: 0, cancelled: 1 })
    })
  )
})
