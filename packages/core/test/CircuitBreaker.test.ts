import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { InvalidOptionsError } from "../src/InvalidOptions.js"

const settle = TestClock.adjust(0)
const ok = Effect.succeed("ok" as const)
const boom = Effect.fail("boom" as const)

/** Every transition seen so far, as "FROM>TO@ms". */
const drain = (queue: Queue.Dequeue<CircuitBreaker.Transition>) =>
  Effect.map(Queue.takeAll(queue), (chunk) =>
    Chunk.toReadonlyArray(chunk).map((transition) => `${transition.from}>${transition.to}@${transition.at}`)
  )

describe("CircuitBreaker", () => {
  describe("consecutive failures", () => {
    it.scoped("opens after N in a row, half-opens after the open duration, closes on a good probe", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "consecutive",
          policy: { kind: "consecutive", failures: 3 },
          openDuration: "10 seconds"
        })
        const transitions = yield* breaker.subscribe
        const states: Array<CircuitBreaker.State> = []
        const step = (effect: Effect.Effect<unknown, unknown>) =>
          Effect.zipRight(
            Effect.exit(breaker.protect(effect)),
            Effect.tap(breaker.state(), (s) => states.push(s))
          )

        yield* step(boom)
        yield* step(boom)
        yield* step(ok) // a success breaks the run
        yield* step(boom)
        yield* step(boom)
        yield* step(boom)
        expect(states).toEqual(["CLOSED", "CLOSED", "CLOSED", "CLOSED", "CLOSED", "OPEN"])

        let ran = false
        const refused = yield* Effect.flip(breaker.protect(Effect.sync(() => (ran = true))))
        expect(ran).toBe(false)
        expect(refused).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
        expect(refused).toMatchObject({ state: "OPEN", retryAfterMillis: 10_000, retryable: false })
        expect(Duration.toMillis((refused as CircuitBreaker.CircuitOpenError).retryAfter)).toBe(10_000)

        yield* TestClock.adjust("4 seconds")
        expect(yield* breaker.inspect()).toMatchObject({ state: "OPEN", retryAfterMillis: 6_000 })
        yield* TestClock.adjust("6 seconds")
        expect(yield* breaker.state()).toBe("HALF_OPEN")
        expect(yield* breaker.protect(ok)).toBe("ok")
        expect(yield* breaker.state()).toBe("CLOSED")
        expect(yield* drain(transitions)).toEqual(["CLOSED>OPEN@0", "OPEN>HALF_OPEN@10000", "HALF_OPEN>CLOSED@10000"])
      })
    )

    it.scoped("a failed probe re-opens it for another open duration", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "reopen",
          policy: { kind: "consecutive", failures: 1 },
          openDuration: "1 second"
        })
        const transitions = yield* breaker.subscribe
        yield* Effect.exit(breaker.protect(boom))
        yield* TestClock.adjust("1 second")
        yield* Effect.exit(breaker.protect(boom))
        expect(yield* breaker.inspect()).toMatchObject({ state: "OPEN", retryAfterMillis: 1000 })
        expect(yield* drain(transitions)).toEqual(["CLOSED>OPEN@0", "OPEN>HALF_OPEN@1000", "HALF_OPEN>OPEN@1000"])
      })
    )
  })

  describe("count-based window", () => {
    it.scoped("trips on the failure rate once the minimum number of calls is reached", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "count",
          policy: { kind: "count", size: 4, failureRate: 0.5, minimumCalls: 4 }
        })
        const states: Array<CircuitBreaker.State> = []
        for (const effect of [boom, boom, ok, ok, ok, boom, ok, boom]) {
          yield* Effect.exit(breaker.protect(effect))
          states.push(yield* breaker.state())
        }
        // 2 of 3 fail, but fewer than 4 calls: no verdict. At 4 calls: 2/4 = 50% → trips.
        expect(states).toEqual(["CLOSED", "CLOSED", "CLOSED", "OPEN", "OPEN", "OPEN", "OPEN", "OPEN"])
      })
    )

    it.scoped("only the last `size` calls count", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "count-slide",
          policy: { kind: "count", size: 4, failureRate: 0.75 }
        })
        for (const effect of [boom, boom, ok, ok, ok, boom, boom]) yield* Effect.exit(breaker.protect(effect))
        // Window is [ok, ok, boom, boom]: 50% < 75%; the two early failures slid out.
        expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", calls: 4, failures: 2 })
        yield* Effect.exit(breaker.protect(boom))
        expect(yield* breaker.state()).toBe("OPEN")
      })
    )
  })

  describe("time-based window", () => {
    it.scoped("counts only the calls of the last window", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "time",
          policy: { kind: "time", window: "10 seconds", buckets: 10, failureRate: 0.5, minimumCalls: 4 }
        })
        yield* Effect.exit(breaker.protect(boom))
        yield* Effect.exit(breaker.protect(boom))
        yield* Effect.exit(breaker.protect(boom))
        yield* TestClock.adjust("10 seconds") // the three failures age out
        expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", calls: 0 })
        for (const effect of [ok, ok, ok, boom]) yield* Effect.exit(breaker.protect(effect))
        expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", calls: 4, failures: 1 })
        yield* TestClock.adjust("5 seconds")
        yield* Effect.exit(breaker.protect(boom))
        expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", calls: 5, failures: 2 })
        yield* Effect.exit(breaker.protect(boom))
        // 3 of 6 within the window.
        expect(yield* breaker.state()).toBe("OPEN")
      })
    )
  })

  describe("slow calls", () => {
    it.scoped("trips on the slow-call rate, even when every call succeeds", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "slow",
          policy: { kind: "count", size: 4, failureRate: 1 },
          slowCall: { threshold: "2 seconds", rate: 0.5 }
        })
        const slow = Effect.as(Effect.sleep("2 seconds"), "slow")
        const states: Array<CircuitBreaker.State> = []
        for (const effect of [ok, slow, ok, slow]) {
          const fiber = yield* Effect.fork(breaker.protect(effect))
          yield* TestClock.adjust("2 seconds")
          yield* Fiber.join(fiber)
          states.push(yield* breaker.state())
        }
        expect(states).toEqual(["CLOSED", "CLOSED", "CLOSED", "OPEN"])
      })
    )

    it.scoped("a slow call counts as bad in a consecutive run", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "slow-run",
          policy: { kind: "consecutive", failures: 2 },
          slowCall: { threshold: "1 second" }
        })
        const fiber = yield* Effect.fork(breaker.protect(Effect.sleep("1 second")))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
        expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", calls: 1, slowCalls: 1 })
        yield* Effect.exit(breaker.protect(boom))
        expect(yield* breaker.state()).toBe("OPEN")
      })
    )
  })

  describe("half-open", () => {
    const openBreaker = (halfOpenProbes: number) =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "probes",
          policy: { kind: "consecutive", failures: 1 },
          openDuration: "1 second",
          halfOpenProbes
        })
        yield* Effect.exit(breaker.protect(boom))
        yield* TestClock.adjust("1 second")
        return breaker
      })

    it.scoped("admits exactly N probes and refuses the rest; all N succeeding closes it", () =>
      Effect.gen(function* () {
        const breaker = yield* openBreaker(2)
        const gate = yield* Deferred.make<void>()
        let started = 0
        const probe = Effect.zipRight(
          Effect.sync(() => started++),
          Effect.as(Deferred.await(gate), "ok")
        )
        const fibers = yield* Effect.forEach([1, 2, 3, 4], () => Effect.fork(Effect.exit(breaker.protect(probe))))
        yield* settle
        expect(started).toBe(2)
        expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 2 })
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Effect.forEach(fibers, Fiber.join)
        expect(exits.filter(Exit.isSuccess)).toHaveLength(2)
        const refusals = exits.filter(Exit.isFailure).map((exit) => Exit.causeOption(exit))
        expect(refusals).toHaveLength(2)
        for (const exit of exits.filter(Exit.isFailure)) {
          expect(exit).toEqual(
            Exit.fail(
              new CircuitBreaker.CircuitOpenError({
                breaker: "probes",
                key: "default",
                state: "HALF_OPEN",
                // The open duration (1 s): sooner than the earliest probe reaches the 1-minute halfOpenTimeout.
                retryAfterMillis: 1000,
                trip: {
                  reason: "Tripped",
                  at: 0,
                  failure: "boom",
                  calls: 1,
                  failures: 1,
                  slowCalls: 0,
                  failureRate: 1,
                  slowCallRate: 0
                }
              })
            )
          )
        }
        expect(yield* breaker.state()).toBe("CLOSED")
      })
    )

    it.scoped("stays half-open until every probe has succeeded", () =>
      Effect.gen(function* () {
        const breaker = yield* openBreaker(2)
        yield* breaker.protect(ok)
        expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 0 })
        yield* breaker.protect(ok)
        expect(yield* breaker.state()).toBe("CLOSED")
      })
    )

    it.scoped("an interrupted probe frees its slot: the breaker is not stuck half-open", () =>
      Effect.gen(function* () {
        const breaker = yield* openBreaker(1)
        const hung = yield* Effect.fork(breaker.protect(Effect.never))
        yield* settle
        expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 1 })
        expect(yield* Effect.flip(breaker.protect(ok))).toMatchObject({ state: "HALF_OPEN" })
        yield* Fiber.interrupt(hung)
        expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 0, inFlight: 0 })
        expect(yield* breaker.protect(ok)).toBe("ok")
        expect(yield* breaker.state()).toBe("CLOSED")
      })
    )

    it.scoped("a probe cut off by a timeout outside the breaker frees its slot too", () =>
      Effect.gen(function* () {
        const breaker = yield* openBreaker(1)
        const fiber = yield* Effect.fork(Effect.exit(Effect.timeout(breaker.protect(Effect.never), "5 seconds")))
        yield* TestClock.adjust("5 seconds")
        expect(Exit.isFailure(yield* Fiber.join(fiber))).toBe(true)
        expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 0 })
        expect(yield* breaker.protect(ok)).toBe("ok")
        expect(yield* breaker.state()).toBe("CLOSED")
      })
    )

    it.scoped("a probe that times out inside the breaker is a failure: it re-opens", () =>
      Effect.gen(function* () {
        const breaker = yield* openBreaker(1)
        const fiber = yield* Effect.fork(Effect.exit(breaker.protect(Effect.timeout(Effect.never, "5 seconds"))))
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(fiber)
        expect(yield* breaker.inspect()).toMatchObject({ state: "OPEN", probesInFlight: 0, inFlight: 0 })
      })
    )
  })

  it.scoped("the open duration grows by its Schedule on each re-open, and starts over once closed", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "growing",
        policy: { kind: "consecutive", failures: 1 },
        openDuration: Schedule.exponential("1 second")
      })
      const openFor = Effect.map(breaker.inspect(), (snapshot) => snapshot.retryAfterMillis)
      const failProbe = Effect.gen(function* () {
        const wait = (yield* openFor)!
        yield* TestClock.adjust(wait)
        yield* Effect.exit(breaker.protect(boom))
        return wait
      })
      yield* Effect.exit(breaker.protect(boom))
      const waits = [yield* failProbe, yield* failProbe, yield* failProbe]
      expect(waits).toEqual([1000, 2000, 4000])
      expect(yield* openFor).toBe(8000)
      yield* TestClock.adjust("8 seconds")
      yield* breaker.protect(ok)
      expect(yield* breaker.state()).toBe("CLOSED")
      yield* Effect.exit(breaker.protect(boom))
      expect(yield* openFor).toBe(1000)
    })
  )

  it.scoped("classify decides what counts: an ignored failure neither trips nor resets the run", () =>
    Effect.gen(function* () {
      class BadRequest {
        readonly _tag = "BadRequest"
      }
      const breaker = yield* CircuitBreaker.make({
        name: "classify",
        policy: { kind: "consecutive", failures: 2 },
        classify: (exit) =>
          Exit.isSuccess(exit)
            ? "success"
            : exit.cause._tag === "Fail" && exit.cause.error instanceof BadRequest
              ? "ignore"
              : "failure"
      })
      yield* Effect.exit(breaker.protect(boom))
      for (let i = 0; i < 5; i++) yield* Effect.exit(breaker.protect(Effect.fail(new BadRequest())))
      expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", calls: 1 })
      yield* Effect.exit(breaker.protect(boom))
      expect(yield* breaker.state()).toBe("OPEN")
    })
  )

  it.scoped("a defect counts as a failure; an interruption does not", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "defects", policy: { kind: "consecutive", failures: 2 } })
      yield* Effect.exit(breaker.protect(Effect.die("bug")))
      const fiber = yield* Effect.fork(breaker.protect(Effect.never))
      yield* settle
      yield* Fiber.interrupt(fiber)
      expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", calls: 1, inFlight: 0 })
      yield* Effect.exit(breaker.protect(Effect.die("bug")))
      expect(yield* breaker.state()).toBe("OPEN")
    })
  )

  it.scoped("a call admitted before a reset does not vote after it", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "generation", policy: { kind: "consecutive", failures: 1 } })
      const gate = yield* Deferred.make<void>()
      const late = yield* Effect.fork(Effect.exit(breaker.protect(Effect.zipRight(Deferred.await(gate), boom))))
      yield* settle
      yield* breaker.isolate()
      yield* breaker.reset()
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(late)
      expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", calls: 0, inFlight: 0 })
    })
  )

  it.scoped("isolate refuses everything until reset", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "manual", policy: { kind: "consecutive", failures: 5 } })
      const transitions = yield* breaker.subscribe
      yield* breaker.isolate()
      yield* TestClock.adjust("1 hour")
      const refused = yield* Effect.flip(breaker.protect(ok))
      expect(refused).toMatchObject({ state: "ISOLATED", retryAfterMillis: Number.POSITIVE_INFINITY })
      expect(Duration.isFinite((refused as CircuitBreaker.CircuitOpenError).retryAfter)).toBe(false)
      yield* breaker.reset()
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* drain(transitions)).toEqual(["CLOSED>ISOLATED@0", "ISOLATED>CLOSED@3600000"])
    })
  )

  describe("keys", () => {
    it.scoped("each key has its own breaker", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ name: "keyed", policy: { kind: "consecutive", failures: 1 } })
        yield* Effect.exit(breaker.protect(boom, { key: "east" }))
        expect(yield* breaker.state("east")).toBe("OPEN")
        expect(yield* breaker.protect(ok, { key: "west" })).toBe("ok")
        expect(yield* Effect.flip(breaker.protect(ok, { key: "east" }))).toMatchObject({ key: "east", state: "OPEN" })
      })
    )

    it.scoped("idle CLOSED keys are evicted; an OPEN key is kept", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "evict",
          policy: { kind: "consecutive", failures: 1 },
          openDuration: "1 hour",
          idleTimeout: "1 minute"
        })
        yield* breaker.protect(ok, { key: "a" })
        yield* breaker.protect(ok, { key: "b" })
        yield* Effect.exit(breaker.protect(boom, { key: "c" }))
        expect(yield* breaker.size).toBe(3)
        yield* TestClock.adjust("30 seconds")
        yield* breaker.protect(ok, { key: "b" })
        yield* TestClock.adjust("30 seconds") // the sweeper runs: a idle 60 s, b 30 s
        expect(yield* breaker.size).toBe(2)
        yield* TestClock.adjust("1 minute")
        expect(yield* breaker.size).toBe(1) // b now idle too; c is OPEN and kept
        expect(yield* breaker.state("c")).toBe("OPEN")
      })
    )

    it.scoped("a CLOSED call outliving its key's eviction still gives its verdict", () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({
          name: "outlive",
          policy: { kind: "consecutive", failures: 1 },
          idleTimeout: "1 minute"
        })
        const long = yield* Effect.fork(
          Effect.exit(breaker.protect(Effect.zipRight(Effect.sleep("3 minutes"), boom), { key: "slow" }))
        )
        yield* TestClock.adjust("2 minutes")
        // A CLOSED breaker lends nothing to a running call, so the idle key was forgotten …
        expect(yield* breaker.size).toBe(0)
        yield* TestClock.adjust("1 minute")
        yield* Fiber.join(long)
        // … and its breaker comes back with the failure recorded.
        expect(yield* breaker.state("slow")).toBe("OPEN")
      })
    )
  })

  it.scoped("exposes state, rejections and transitions as metrics", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "metered", policy: { kind: "consecutive", failures: 1 } })
      const labels = { breaker: "metered", key: "default" }
      const state = CircuitBreaker.metrics.stateGauge.pipe(
        Metric.tagged("breaker", labels.breaker),
        Metric.tagged("key", labels.key)
      )
      const rejected = CircuitBreaker.metrics.rejections.pipe(
        Metric.tagged("breaker", labels.breaker),
        Metric.tagged("key", labels.key)
      )
      const opened = CircuitBreaker.metrics.transitions.pipe(
        Metric.tagged("breaker", labels.breaker),
        Metric.tagged("key", labels.key),
        Metric.tagged("from", "CLOSED"),
        Metric.tagged("to", "OPEN")
      )
      yield* Effect.exit(breaker.protect(boom))
      yield* Effect.exit(breaker.protect(ok))
      yield* Effect.exit(breaker.protect(ok))
      expect((yield* Metric.value(state)).value).toBe(2)
      expect((yield* Metric.value(rejected)).count).toBe(2)
      expect((yield* Metric.value(opened)).count).toBe(1)
    })
  )

  it.effect("bad options fail at construction, naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Effect.scoped(
          CircuitBreaker.make({
            name: "bad",
            policy: { kind: "count", size: 0, failureRate: 1.5 },
            halfOpenProbes: -1
          })
        )
      )
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.message).toContain('["policy","size"]')
      expect(error.message).toContain('["policy","failureRate"]')
      expect(error.message).toContain('["halfOpenProbes"]')
    })
  )
})

describe("CircuitBreaker.check", () => {
  it.scoped("refuses as admit would, without taking a probe slot", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "check",
        policy: { kind: "consecutive", failures: 1 },
        openDuration: "1 second"
      })
      yield* breaker.check()
      yield* Effect.exit(breaker.protect(boom))
      expect(yield* Effect.flip(breaker.check())).toMatchObject({ state: "OPEN", retryAfterMillis: 1000 })
      yield* TestClock.adjust("1 second")
      yield* breaker.check()
      yield* breaker.check()
      expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 0 })
      const permit = yield* breaker.admit()
      expect(yield* Effect.flip(breaker.check())).toMatchObject({ state: "HALF_OPEN" })
      yield* breaker.release(permit, Exit.void)
      yield* breaker.release(permit, Exit.fail("ignored: already released"))
      expect(yield* breaker.state()).toBe("CLOSED")
    })
  )
})
