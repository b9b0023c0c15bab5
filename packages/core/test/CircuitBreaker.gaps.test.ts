import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { InvalidOptionsError } from "../src/InvalidOptions.js"

/**
 * The gaps found by running other resilience libraries' documented behaviour
 * against the breaker: a count window that can never trip, a probe that never
 * answers, refusals that do not say what opened the circuit, and a
 * `retryAfter` of 0 during HALF_OPEN.
 */

const settle = TestClock.adjust(0)
const ok = Effect.succeed("ok" as const)
const boom = Effect.fail("boom" as const)

class ServerError extends Schema.TaggedError<ServerError>()("ServerError", {
  reason: Schema.Literal("Unavailable", "Internal"),
  detail: Schema.String,
  apiKey: Schema.Redacted(Schema.String)
}) {
  override get message(): string {
    return `upstream answered 503: ${this.detail}`
  }
}

/** Every transition seen so far, as "FROM>TO@ms:reason". */
const drain = (queue: Queue.Dequeue<CircuitBreaker.Transition>) =>
  Effect.map(Queue.takeAll(queue), (chunk) =>
    Chunk.toReadonlyArray(chunk).map(
      (transition) => `${transition.from}>${transition.to}@${transition.at}:${transition.reason}`
    )
  )

/** A breaker opened at 0 by one failure, HALF_OPEN from 1 s. */
const halfOpen = (options: Partial<CircuitBreaker.Options> = {}) =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make({
      name: "probe",
      policy: { kind: "consecutive", failures: 1 },
      openDuration: "1 second",
      halfOpenTimeout: "10 seconds",
      ...options
    })
    const transitions = yield* breaker.subscribe
    yield* Effect.exit(breaker.protect(boom))
    yield* TestClock.adjust("1 second")
    return { breaker, transitions }
  })

describe("CircuitBreaker options", () => {
  it.effect("a count window whose minimumCalls exceeds its size is refused, naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Effect.scoped(
          CircuitBreaker.make({
            name: "never",
            policy: { kind: "count", size: 10, failureRate: 0.5, minimumCalls: 12 }
          })
        )
      )
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.message).toContain('["policy","minimumCalls"]')
      expect(error.message).toContain("minimumCalls (12) is larger than the window's size (10)")
      expect(error.message).toContain("at most 10")
      // At the size it is fine, and so is a time window (it has no size).
      yield* Effect.scoped(
        CircuitBreaker.make({ name: "full", policy: { kind: "count", size: 10, failureRate: 0.5, minimumCalls: 10 } })
      )
      yield* Effect.scoped(
        CircuitBreaker.make({
          name: "time",
          policy: { kind: "time", window: "10 seconds", failureRate: 0.5, minimumCalls: 50 }
        })
      )
    })
  )

  it.effect("halfOpenTimeout must be a positive duration", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Effect.scoped(
          CircuitBreaker.make({ name: "bad", policy: { kind: "consecutive", failures: 1 }, halfOpenTimeout: 0 })
        )
      )
      expect(error.message).toContain('["halfOpenTimeout"]')
    })
  )
})

describe("CircuitBreaker halfOpenTimeout", () => {
  it.scoped("a probe that never answers re-opens the breaker; its late release changes nothing", () =>
    Effect.gen(function* () {
      const { breaker, transitions } = yield* halfOpen()
      const stuck = yield* breaker.admit() // the probe, admitted at 1 s, never answers
      expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 1 })
      yield* TestClock.adjust("9999 millis")
      expect(yield* breaker.state()).toBe("HALF_OPEN")
      yield* TestClock.adjust("1 millis")
      // Observed by the next look at the key, stamped with when it became due.
      expect(yield* breaker.inspect()).toMatchObject({
        state: "OPEN",
        probesInFlight: 0,
        inFlight: 1, // the stuck caller still holds its permit …
        retryAfterMillis: 1000,
        trip: { reason: "ProbeTimedOut", at: 11_000, calls: 1, failures: 1 }
      })
      expect(yield* drain(transitions)).toEqual([
        "CLOSED>OPEN@0:Tripped",
        "OPEN>HALF_OPEN@1000:OpenDurationElapsed",
        "HALF_OPEN>OPEN@11000:ProbeTimedOut"
      ])
      // … and hands it back late, with a success: it neither counts nor closes the circuit.
      yield* breaker.release(stuck, Exit.void)
      expect(yield* breaker.inspect()).toMatchObject({ state: "OPEN", inFlight: 0, retryAfterMillis: 1000 })
      expect(yield* drain(transitions)).toEqual([])
      // Its slot is free: the next half-open lets a fresh probe through, which closes it.
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* breaker.state()).toBe("CLOSED")
    })
  )

  it.scoped("a stuck probe released during the next half-open does not vote in it", () =>
    Effect.gen(function* () {
      const { breaker } = yield* halfOpen()
      const stuck = yield* breaker.admit()
      yield* TestClock.adjust("11 seconds") // timed out at 11 s, re-opened until 12 s: HALF_OPEN again
      const fresh = yield* breaker.admit()
      yield* breaker.release(stuck, Exit.void)
      expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 1, inFlight: 1 })
      yield* breaker.release(stuck, Exit.fail("twice")) // idempotent
      yield* breaker.release(fresh, Exit.void)
      expect(yield* breaker.inspect()).toMatchObject({ state: "CLOSED", inFlight: 0 })
    })
  )

  it.scoped("a protected probe that hangs is cut off the same way; interrupting it later changes nothing", () =>
    Effect.gen(function* () {
      const { breaker, transitions } = yield* halfOpen()
      const hung = yield* Effect.fork(breaker.protect(Effect.never))
      yield* settle
      expect(yield* Effect.flip(breaker.check())).toMatchObject({ reason: "HalfOpenFull" })
      yield* TestClock.adjust("10 seconds")
      // `check` is a look too: it sees the time-out and refuses as OPEN.
      expect(yield* Effect.flip(breaker.check())).toMatchObject({
        state: "OPEN",
        reason: "Open",
        retryAfterMillis: 1000
      })
      yield* Fiber.interrupt(hung)
      expect(yield* breaker.inspect()).toMatchObject({ state: "OPEN", inFlight: 0, probesInFlight: 0 })
      expect(yield* drain(transitions)).toEqual([
        "CLOSED>OPEN@0:Tripped",
        "OPEN>HALF_OPEN@1000:OpenDurationElapsed",
        "HALF_OPEN>OPEN@11000:ProbeTimedOut"
      ])
    })
  )

  it.scoped("observed late, the time-out and the next half-open are both stamped when they became due", () =>
    Effect.gen(function* () {
      const { breaker, transitions } = yield* halfOpen()
      yield* breaker.admit()
      yield* TestClock.adjust("1 hour")
      expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", probesInFlight: 0 })
      expect(yield* drain(transitions)).toEqual([
        "CLOSED>OPEN@0:Tripped",
        "OPEN>HALF_OPEN@1000:OpenDurationElapsed",
        "HALF_OPEN>OPEN@11000:ProbeTimedOut",
        "OPEN>HALF_OPEN@12000:OpenDurationElapsed"
      ])
    })
  )

  it.scoped("a timed-out probe re-opens for the open-duration schedule's next step", () =>
    Effect.gen(function* () {
      const { breaker } = yield* halfOpen({ openDuration: Schedule.exponential("1 second") })
      yield* breaker.admit()
      yield* TestClock.adjust("10 seconds")
      expect(yield* breaker.inspect()).toMatchObject({ state: "OPEN", retryAfterMillis: 2000 })
    })
  )

  it.scoped("the default is one minute", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "default",
        policy: { kind: "consecutive", failures: 1 },
        openDuration: "1 second"
      })
      yield* Effect.exit(breaker.protect(boom))
      yield* TestClock.adjust("1 second")
      yield* breaker.admit()
      yield* TestClock.adjust("59 seconds")
      expect(yield* breaker.state()).toBe("HALF_OPEN")
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.inspect()).toMatchObject({ state: "OPEN", trip: { reason: "ProbeTimedOut", at: 61_000 } })
    })
  )

  it.scoped("Duration.infinity turns it off: a probe may run for as long as it runs", () =>
    Effect.gen(function* () {
      const { breaker } = yield* halfOpen({ halfOpenTimeout: Duration.infinity })
      const probe = yield* breaker.admit()
      yield* TestClock.adjust("1 hour")
      const refused = yield* Effect.flip(breaker.admit())
      // No time-out to wait for: the open duration last used, never 0.
      expect(refused).toMatchObject({ state: "HALF_OPEN", reason: "HalfOpenFull", retryAfterMillis: 1000 })
      yield* breaker.release(probe, Exit.void)
      expect(yield* breaker.state()).toBe("CLOSED")
    })
  )
})

describe("CircuitBreaker retryAfter while HALF_OPEN", () => {
  it.scoped("is the open duration, but no later than the earliest running probe times out, never 0", () =>
    Effect.gen(function* () {
      const { breaker } = yield* halfOpen({ halfOpenProbes: 2 })
      const first = yield* breaker.admit() // at 1 s: due at 11 s
      yield* TestClock.adjust("3 seconds")
      const second = yield* breaker.admit() // at 4 s: due at 14 s
      // The earliest probe times out at 11 s, 7 s away; a probe usually answers within the open duration (1 s).
      const refused = yield* Effect.flip(breaker.admit())
      expect(refused).toMatchObject({ state: "HALF_OPEN", reason: "HalfOpenFull", retryAfterMillis: 1000 })
      expect(Duration.toMillis(refused.retryAfter)).toBe(1000)
      expect(refused.retryable).toBe(false)
      expect(refused.message).toContain("Retry in 1000 ms")
      expect(yield* Effect.flip(breaker.check())).toMatchObject({ retryAfterMillis: 1000 })
      expect(yield* breaker.inspect()).toMatchObject({ probesInFlight: 2, retryAfterMillis: 1000 })

      yield* TestClock.adjust("2 seconds")
      // The first probe answers: its slot stays spent (both must succeed), the second is now the earliest.
      yield* breaker.release(first, Exit.void)
      expect(yield* Effect.flip(breaker.admit())).toMatchObject({ retryAfterMillis: 1000 })
      yield* TestClock.adjust("7500 millis")
      // 500 ms before the second probe times out: that comes sooner than the open duration.
      expect(yield* Effect.flip(breaker.admit())).toMatchObject({ state: "HALF_OPEN", retryAfterMillis: 500 })
      yield* TestClock.adjust("499 millis")
      expect(yield* Effect.flip(breaker.admit())).toMatchObject({ state: "HALF_OPEN", retryAfterMillis: 1 })
      yield* breaker.release(second, Exit.void)
      expect(yield* breaker.state()).toBe("CLOSED")
    })
  )

  it.scoped("a refusal honoured by waiting retryAfter finds the breaker changed", () =>
    Effect.gen(function* () {
      const { breaker } = yield* halfOpen({ halfOpenTimeout: "2 seconds" })
      yield* breaker.admit()
      yield* TestClock.adjust("1500 millis")
      const refused = yield* Effect.flip(breaker.admit())
      expect(refused.retryAfterMillis).toBe(500)
      yield* TestClock.adjust(refused.retryAfter)
      // The probe timed out: OPEN now, for the open duration, and no longer "half-open, full".
      expect(yield* Effect.flip(breaker.admit())).toMatchObject({ state: "OPEN", retryAfterMillis: 1000 })
    })
  )
})

describe("CircuitBreaker trip", () => {
  it.scoped("the refusal, inspect and the transition say which failure opened it and what the window held", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "api",
        policy: { kind: "count", size: 4, failureRate: 0.5, minimumCalls: 4 },
        openDuration: "30 seconds"
      })
      const transitions = yield* breaker.subscribe
      const unavailable = new ServerError({
        reason: "Unavailable",
        detail: "try later",
        apiKey: Redacted.make("sk-secret-123")
      })
      yield* breaker.protect(ok)
      yield* Effect.exit(breaker.protect(Effect.fail(unavailable)))
      yield* TestClock.adjust("2 seconds")
      yield* breaker.protect(ok)
      yield* Effect.exit(breaker.protect(Effect.fail(unavailable)))
      const trip: CircuitBreaker.Trip = {
        reason: "Tripped",
        at: 2000,
        failure: "ServerError (Unavailable): upstream answered 503: try later",
        calls: 4,
        failures: 2,
        slowCalls: 0,
        failureRate: 0.5,
        slowCallRate: 0
      }
      const refused = yield* Effect.flip(breaker.protect(ok))
      expect(refused).toMatchObject({ state: "OPEN", reason: "Open", retryAfterMillis: 30_000, trip })
      expect(refused.message).toBe(
        'Circuit breaker "api", key "default" is open; the call was refused. It lets a probe through in 30000 ms. ' +
          "It opened at 2000 ms (Tripped) on ServerError (Unavailable): upstream answered 503: try later; " +
          "the window then held 4 call(s): 2 failed (50%), 0 slow (0%)"
      )
      expect(refused.message).not.toContain("sk-secret")
      expect(yield* breaker.inspect()).toMatchObject({ state: "OPEN", calls: 0, trip })
      const opened = Chunk.toReadonlyArray(yield* Queue.takeAll(transitions))
      expect(opened).toMatchObject([{ to: "OPEN", reason: "Tripped", trip }])

      // Still known while HALF_OPEN; gone once the breaker closes.
      yield* TestClock.adjust("30 seconds")
      const probe = yield* breaker.admit()
      expect(yield* Effect.flip(breaker.admit())).toMatchObject({ reason: "HalfOpenFull", trip })
      expect(yield* breaker.inspect()).toMatchObject({ state: "HALF_OPEN", trip })
      yield* breaker.release(probe, Exit.void)
      const closed = yield* breaker.inspect()
      expect(closed.state).toBe("CLOSED")
      expect(closed.trip).toBeUndefined()
    })
  )

  it.scoped("a failed probe's trip counts the probes", () =>
    Effect.gen(function* () {
      const { breaker } = yield* halfOpen({ halfOpenProbes: 2 })
      yield* breaker.protect(ok)
      yield* Effect.exit(breaker.protect(Effect.die(new Error("kaput"))))
      expect(yield* breaker.inspect()).toMatchObject({
        state: "OPEN",
        trip: { reason: "ProbeFailed", at: 1000, failure: "a defect: Error: kaput", calls: 2, failures: 1 }
      })
    })
  )

  it.scoped("a slow call that trips it is described as slow", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        name: "slow",
        policy: { kind: "consecutive", failures: 1 },
        slowCall: { threshold: "2 seconds" }
      })
      const fiber = yield* Effect.fork(breaker.protect(Effect.sleep("3 seconds")))
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(fiber)
      expect(yield* breaker.inspect()).toMatchObject({
        state: "OPEN",
        trip: {
          failure: "a slow call (3000 ms, slow from 2000 ms)",
          calls: 1,
          failures: 0,
          slowCalls: 1,
          slowCallRate: 1
        }
      })
    })
  )

  it.scoped("a failure is described without its other fields: secrets stay out", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "secrets", policy: { kind: "consecutive", failures: 1 } })
      const failureOf = (error: unknown) =>
        Effect.gen(function* () {
          yield* breaker.reset()
          yield* Effect.exit(breaker.protect(Effect.fail(error)))
          const refused = yield* Effect.flip(breaker.protect(ok))
          return { failure: refused.trip?.failure, message: refused.message }
        })
      const redacted = yield* failureOf(Redacted.make("sk-secret-123"))
      expect(redacted.failure).toBe("<redacted>")
      const plain = yield* failureOf({ _tag: "AuthFailed", apiKey: "sk-secret-123", headers: { authorization: "x" } })
      expect(plain.failure).toBe("AuthFailed")
      const untagged = yield* failureOf({ token: "sk-secret-123" })
      expect(untagged.failure).toBe("object")
      const long = yield* failureOf(`line one\n${"x".repeat(500)}`)
      expect(long.failure!.length).toBeLessThanOrEqual(160)
      expect(long.failure).not.toContain("\n")
      for (const { message } of [redacted, plain, untagged]) expect(message).not.toContain("sk-secret")
    })
  )

  it.scoped("ISOLATED refusals carry no trip", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "iso", policy: { kind: "consecutive", failures: 1 } })
      yield* Effect.exit(breaker.protect(boom))
      yield* breaker.isolate()
      const refused = yield* Effect.flip(breaker.protect(ok))
      expect(refused.reason).toBe("Isolated")
      expect(refused.trip).toBeUndefined()
      expect((yield* breaker.inspect()).trip).toBeUndefined()
    })
  )
})
