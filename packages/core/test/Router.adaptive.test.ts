/**
 * Adaptive concurrency (AIMD) on a provider's Executor, under TestClock:
 * back-pressure cuts the limit once per burst, successes at the limit grow it
 * back to the ceiling, latency comes from successful attempts only, and the
 * ceiling follows the request rate × that latency.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Executor from "../src/Executor.js"
import * as Router from "../src/Router.js"
import { fail } from "./utils/routerHelpers.js"

/** An upstream answer with a status, as `ApiError` carries one. */
class Answered extends Schema.TaggedError<Answered>()("Answered", {
  reason: Schema.Literal("ServerError", "Timeout"),
  status: Schema.optional(Schema.Number)
}) {}

const executorOf = (name: string, concurrency: number, timeout?: number) =>
  Effect.orDie(Executor.make({ name, concurrency, spans: false, shutdownTimeout: 0, timeout }))

/** A router over one adaptive provider `p` (no fallback: each call is one attempt). */
const adaptiveRouter = (
  name: string,
  executor: Executor.ExecutorShape,
  adaptiveConcurrency: Router.AdaptiveConcurrencyOptions
) =>
  Router.make({
    name,
    providers: [{ name: "p", executor, adaptiveConcurrency }],
    maxAttempts: 1,
    ejection: { consecutiveFailures: 1_000 }
  })

const limitOf = (router: Router.RouterShape) =>
  Effect.map(router.snapshot, (snapshot) => snapshot.providers[0]!.concurrency!)

const changes = (events: Queue.Dequeue<Router.RouterEvent>) =>
  Effect.map(Queue.takeAll(events), (all) =>
    Chunk.toArray(all).flatMap((event) =>
      event._tag === "ConcurrencyChanged" ? [`${event.from}→${event.to} ${event.reason}`] : []
    )
  )

/** `n` calls at once, each running `work`; answers once all have ended. */
const burst = <E>(router: Router.RouterShape, n: number, work: Effect.Effect<string, E>) =>
  Effect.fork(
    Effect.forEach(Array.from({ length: n }), () => Effect.either(router.submit(() => work)), {
      concurrency: "unbounded"
    })
  )

describe("Router adaptive concurrency", () => {
  it.scoped("AIMD cuts on 429s and grows back", () =>
    Effect.gen(function* () {
      const executor = yield* executorOf("aimd", 8)
      const router = yield* adaptiveRouter("aimd", executor, { floor: 1, ceiling: 10, decrease: 0.5 })
      const events = yield* router.subscribe
      expect(yield* limitOf(router)).toEqual({ limit: 8, floor: 1, ceiling: 10, latencyMillis: undefined })

      // One call at a time never takes the last permit: the limit stays.
      for (let i = 0; i < 5; i++) {
        const one = yield* burst(router, 1, Effect.as(Effect.sleep("100 millis"), "ok"))
        yield* TestClock.adjust("100 millis")
        yield* Fiber.join(one)
      }
      expect((yield* limitOf(router)).limit).toBe(8)

      // Eight 429s from one moment: one cut, by half.
      const first = yield* burst(router, 8, Effect.zipRight(Effect.sleep("10 millis"), fail("RateLimited", "p")))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(first)
      expect((yield* limitOf(router)).limit).toBe(4)
      expect((yield* executor.stats).concurrency).toBe(4)
      // A second burst, started after the cut: one more cut.
      const second = yield* burst(router, 4, Effect.zipRight(Effect.sleep("10 millis"), fail("RateLimited", "p")))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(second)
      expect((yield* limitOf(router)).limit).toBe(2)
      expect(yield* changes(events)).toEqual(["8→4 RateLimited", "4→2 RateLimited"])

      // Demand above the limit: each success that took the last permit adds one, up to the ceiling.
      const load = yield* burst(router, 60, Effect.as(Effect.sleep("100 millis"), "ok"))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(load)
      expect((yield* limitOf(router)).limit).toBe(10)
      expect((yield* executor.stats).concurrency).toBe(10)
      expect(yield* changes(events)).toEqual([
        "2→3 Saturated",
        "3→4 Saturated",
        "4→5 Saturated",
        "5→6 Saturated",
        "6→7 Saturated",
        "7→8 Saturated",
        "8→9 Saturated",
        "9→10 Saturated"
      ])
    })
  )

  it.scoped("never below the floor; the limit in force is the executor's", () =>
    Effect.gen(function* () {
      const executor = yield* executorOf("floor", 4)
      const router = yield* adaptiveRouter("floor", executor, { floor: 3, decrease: 0.1 })
      const calls = yield* burst(router, 4, fail("RateLimited", "p"))
      yield* TestClock.adjust(0)
      yield* Fiber.join(calls)
      expect(yield* limitOf(router)).toMatchObject({ limit: 3, floor: 3 })
      expect((yield* executor.stats).concurrency).toBe(3)
    })
  )

  it.scoped("503, 529 and timeouts cut (the attempt's own and the Executor's); a 500 and the caller's 4xx do not", () =>
    Effect.gen(function* () {
      const executor = yield* executorOf("signals", 64, 1_000)
      const router = yield* adaptiveRouter("signals", executor, { floor: 1, decrease: 0.5 })
      const events = yield* router.subscribe
      const once = <E>(work: Effect.Effect<string, E>) =>
        Effect.gen(function* () {
          const call = yield* burst(router, 1, work)
          yield* TestClock.adjust("2 seconds")
          yield* Fiber.join(call)
        })
      yield* once(new Answered({ reason: "ServerError", status: 500 }))
      yield* once(fail("ClientError", "p"))
      expect((yield* limitOf(router)).limit).toBe(64)
      yield* once(new Answered({ reason: "ServerError", status: 503 }))
      yield* once(new Answered({ reason: "ServerError", status: 529 }))
      yield* once(new Answered({ reason: "Timeout" }))
      // Runs past the Executor's 1 s timeout: the call ends with its AttemptTimeout.
      yield* once(Effect.as(Effect.sleep("5 seconds"), "late"))
      expect(yield* changes(events)).toEqual(["64→32 Overloaded", "32→16 Overloaded", "16→8 Timeout", "8→4 Timeout"])
    })
  )

  it.scoped(
    "latency comes from successful attempts only, not their wait in the queue; the ceiling is rate × latency",
    () =>
      Effect.gen(function* () {
        const executor = yield* executorOf("derived", 20)
        const router = yield* adaptiveRouter("derived", executor, {
          floor: 1,
          requestLimit: { limit: 10, interval: "1 second" }
        })
        const events = yield* router.subscribe
        // Until a success says how long the work takes, the ceiling is where it started.
        expect(yield* limitOf(router)).toEqual({ limit: 20, floor: 1, ceiling: 20, latencyMillis: undefined })

        // 500 ms attempts at 10 requests a second: 5 can run (Little's law); the limit comes down to it.
        const first = yield* burst(router, 1, Effect.as(Effect.sleep("500 millis"), "ok"))
        yield* TestClock.adjust("500 millis")
        yield* Fiber.join(first)
        expect(yield* limitOf(router)).toEqual({ limit: 5, floor: 1, ceiling: 5, latencyMillis: 500 })
        expect(yield* changes(events)).toEqual(["20→5 Ceiling"])

        // A 429 after 3 s and a 500 after 3 s are no latency samples (the 429 also cuts: 5 → 2).
        const failing = yield* burst(router, 1, Effect.zipRight(Effect.sleep("3 seconds"), fail("RateLimited", "p")))
        const broken = yield* burst(router, 1, Effect.zipRight(Effect.sleep("3 seconds"), fail("ServerError", "p")))
        yield* TestClock.adjust("3 seconds")
        yield* Fiber.join(failing)
        yield* Fiber.join(broken)
        expect(yield* limitOf(router)).toEqual({ limit: 2, floor: 1, ceiling: 5, latencyMillis: 500 })

        // Four 500 ms calls through 2 permits: the last two wait 500 ms for one, and still measure 500 ms.
        const queued = yield* burst(router, 4, Effect.as(Effect.sleep("500 millis"), "ok"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(queued)
        expect((yield* limitOf(router)).latencyMillis).toBe(500)
      })
  )

  it.scoped("the limit is a gauge, sluice_router_concurrency_limit, tagged by router and provider", () =>
    Effect.gen(function* () {
      const executor = yield* executorOf("gauge", 6)
      const router = yield* adaptiveRouter("gauge-router", executor, { floor: 1, decrease: 0.5 })
      const gauge = Metric.taggedWithLabels(Router.metrics.concurrencyLimit, [
        MetricLabel.make("router", "gauge-router"),
        MetricLabel.make("provider", "p"),
        MetricLabel.make("domain", "")
      ])
      expect((yield* Metric.value(gauge)).value).toBe(6)
      const call = yield* burst(router, 1, fail("RateLimited", "p"))
      yield* TestClock.adjust(0)
      yield* Fiber.join(call)
      expect((yield* Metric.value(gauge)).value).toBe(3)
    })
  )

  it.scoped("a provider without it keeps its executor's concurrency and shows none", () =>
    Effect.gen(function* () {
      const executor = yield* executorOf("plain", 4)
      const router = yield* Router.make({ name: "plain", providers: [{ name: "p", executor }], maxAttempts: 1 })
      const calls = yield* burst(router, 4, fail("RateLimited", "p"))
      yield* TestClock.adjust(0)
      yield* Fiber.join(calls)
      expect((yield* router.snapshot).providers[0]!.concurrency).toBeUndefined()
      expect((yield* executor.stats).concurrency).toBe(4)
    })
  )

  it.scoped("bad adaptive options fail with an InvalidOptionsError naming the field", () =>
    Effect.gen(function* () {
      const executor = yield* executorOf("bad", 4)
      const badFactor = yield* Effect.flip(adaptiveRouter("bad", executor, { decrease: 1 }))
      expect(badFactor.message).toContain('["providers",0,"adaptiveConcurrency","decrease"] Expected a factor below 1')
      const badCeiling = yield* Effect.flip(adaptiveRouter("bad", executor, { floor: 4, ceiling: 2 }))
      expect(badCeiling.message).toContain('["providers",0,"adaptiveConcurrency","ceiling"]')
    })
  )
})
