import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as fc from "fast-check"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { withHangGuard } from "./utils/hangGuard.js"

/**
 * Random callers against one breaker under TestClock: `protect` calls that
 * succeed, fail or hang, `admit`/`release` pairs that hold their permit for a
 * while and end with an outcome or an interruption, callers interrupted at
 * random moments, and callers that take a permit and never give it back (a
 * lost probe: only `halfOpenTimeout` frees its slot). The clock advances in
 * random steps. Throughout, half-open never has more than `halfOpenProbes`
 * probes running and every transition follows the state machine; once every
 * caller has finished (and a lost probe's time-out has passed) no probe slot
 * is held, only the lost permits are, and the breaker still closes on good calls.
 */

/** Failures weigh most, so that most runs open the breaker and probe it. */
const outcome = fc.oneof(
  { arbitrary: fc.constant("fail" as const), weight: 3 },
  { arbitrary: fc.constant("ok" as const), weight: 2 },
  { arbitrary: fc.constant("hang" as const), weight: 1 }
)

const caller = fc.record({
  kind: fc.oneof(
    { arbitrary: fc.constant("protect" as const), weight: 3 },
    { arbitrary: fc.constant("admit" as const), weight: 2 },
    { arbitrary: fc.constant("lost" as const), weight: 1 }
  ),
  startAtMillis: fc.integer({ min: 0, max: 3000 }),
  holdMillis: fc.integer({ min: 0, max: 1500 }),
  outcome,
  interruptAfterMillis: fc.option(fc.integer({ min: 0, max: 1500 }), { nil: undefined, freq: 2 })
})

const scenario = fc.record({
  failures: fc.integer({ min: 1, max: 3 }),
  openMillis: fc.integer({ min: 50, max: 500 }),
  halfOpenProbes: fc.integer({ min: 1, max: 3 }),
  /** `undefined`: the limit is off (then no caller loses its permit: nothing could free it). */
  halfOpenTimeoutMillis: fc.option(fc.integer({ min: 100, max: 2000 }), { nil: undefined, freq: 5 }),
  steps: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 30 }),
  callers: fc.array(caller, { minLength: 1, maxLength: 25, size: "medium" })
})

type Scenario = typeof scenario extends fc.Arbitrary<infer A> ? A : never

const HORIZON_MILLIS = 6000

const legal: Record<CircuitBreaker.State, ReadonlyArray<CircuitBreaker.State>> = {
  CLOSED: ["OPEN"],
  OPEN: ["HALF_OPEN"],
  HALF_OPEN: ["OPEN", "CLOSED"],
  ISOLATED: ["CLOSED"]
}

const run = (s: Scenario) =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make({
      name: "property",
      policy: { kind: "consecutive", failures: s.failures },
      openDuration: s.openMillis,
      halfOpenProbes: s.halfOpenProbes,
      halfOpenTimeout: s.halfOpenTimeoutMillis ?? Duration.infinity
    })
    const transitions = yield* breaker.subscribe
    let lostPermits = 0

    const fibers = yield* Effect.forEach(s.callers, (c) => {
      const kind = c.kind === "lost" && s.halfOpenTimeoutMillis === undefined ? "admit" : c.kind
      // A hanging call always ends: if nothing else interrupts it, it is interrupted after its hold time.
      const interruptAfter = c.interruptAfterMillis ?? (c.outcome === "hang" ? c.holdMillis : undefined)
      const exitOf = c.outcome === "fail" ? Exit.fail("down") : Exit.void
      const work = Effect.zipRight(
        Effect.sleep(c.holdMillis),
        c.outcome === "ok" ? Effect.void : c.outcome === "fail" ? Effect.fail("down") : Effect.never
      )
      const body: Effect.Effect<unknown, unknown> =
        kind === "protect"
          ? breaker.protect(work)
          : kind === "lost"
            ? Effect.flatMap(breaker.admit(), () => Effect.sync(() => lostPermits++))
            : Effect.acquireUseRelease(
                breaker.admit(),
                () => work,
                (permit, exit) =>
                  breaker.release(
                    permit,
                    Exit.isInterrupted(exit) ? "interrupted" : Exit.isFailure(exit) ? exitOf : exit
                  )
              )
      const timed = interruptAfter === undefined ? body : Effect.timeout(body, interruptAfter)
      return Effect.fork(Effect.delay(Effect.exit(timed), c.startAtMillis))
    })

    // Advance in random steps, checking the probe count after each.
    let elapsed = 0
    for (const step of s.steps) {
      yield* TestClock.adjust(step)
      elapsed += step
      const snapshot = yield* breaker.inspect()
      expect(snapshot.probesInFlight).toBeLessThanOrEqual(s.halfOpenProbes)
      if (snapshot.retryAfterMillis !== undefined) expect(snapshot.retryAfterMillis).toBeGreaterThan(0)
    }
    yield* TestClock.adjust(Math.max(0, HORIZON_MILLIS - elapsed))
    yield* Effect.forEach(fibers, Fiber.join)

    // Every caller has finished; a lost probe is cut off by its time-out.
    yield* TestClock.adjust(s.halfOpenTimeoutMillis ?? 0)
    const after = yield* breaker.inspect()
    expect(after.probesInFlight).toBe(0)
    expect(after.inFlight).toBe(lostPermits)

    // The transitions form one path through the state machine, in time order.
    const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(transitions))
    let state: CircuitBreaker.State = "CLOSED"
    let at = 0
    for (const transition of seen) {
      expect(transition.from).toBe(state)
      expect(legal[transition.from]).toContain(transition.to)
      expect(transition.at).toBeGreaterThanOrEqual(at)
      if (transition.reason === "ProbeTimedOut") expect(s.halfOpenTimeoutMillis).toBeDefined()
      state = transition.to
      at = transition.at
    }

    // Not stuck: once the open time is up, good calls close it.
    yield* TestClock.adjust(s.openMillis)
    for (let i = 0; i < s.halfOpenProbes; i++) yield* breaker.protect(Effect.void)
    expect(yield* breaker.state()).toBe("CLOSED")
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

describe("CircuitBreaker properties", () => {
  it("random admits, releases, interruptions and lost probes never leave a probe slot held", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, (s) => withHangGuard(Effect.runPromise(run(s)), "a caller never finished")),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 100) }
    )
  }, 240_000)
})
