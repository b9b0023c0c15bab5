/**
 * What a request costs the Executor, counted in Effect steps (each effect a
 * fiber evaluates, as a `Supervisor` sees it with op supervision on) and in
 * fibers started. Deterministic, under TestClock: the counts are the same on
 * every run of one Effect version. They guard the normal path's economy: a
 * submit with room in the queue is one suspension of its caller; a request
 * without a retry policy is its one attempt (no retry loop, no finalizer of
 * its own), and with no breaker and no settlement a bare one (no region of
 * its own: its fiber's end books it); the limiter hands its reservation over
 * in the acquire's own region; an attempt under a timeout runs on the
 * request's own fiber, which the executor's timer watches (a fiber per
 * attempt made three per request), and the same timer keeps a request's
 * deadline (a sleeping fiber per deadline made three too). Each of those undone costs more steps
 * than the budget's margin, or a fiber.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as RuntimeFlagsPatch from "effect/RuntimeFlagsPatch"
import * as Supervisor from "effect/Supervisor"
import * as Executor from "../src/Executor.js"

/** Counts the effects evaluated and the fibers started under it. */
class CountingSupervisor extends Supervisor.AbstractSupervisor<void> {
  steps = 0
  started = 0
  value = Effect.void
  override onEffect() {
    this.steps++
  }
  override onStart() {
    this.started++
  }
}

const REQUESTS = 100

/**
 * Steps and fibers per request of `REQUESTS` submits one after another (after one to warm up). Each finds
 * its lane idle, so its lane's fiber starts anew: two fibers per request, its own and its lane's.
 */
const costPerRequest = (options: Executor.Options, submitOptions?: Executor.SubmitOptions) =>
  Effect.gen(function* () {
    const supervisor = new CountingSupervisor()
    const program = Effect.gen(function* () {
      const executor = yield* Executor.make(options)
      yield* executor.submit(Effect.void, submitOptions)
      const steps = supervisor.steps
      const started = supervisor.started
      for (let i = 0; i < REQUESTS; i++) yield* executor.submit(Effect.void, submitOptions)
      return {
        steps: (supervisor.steps - steps) / REQUESTS,
        fibers: (supervisor.started - started) / REQUESTS
      }
    })
    return yield* Effect.supervised(
      Effect.withRuntimeFlagsPatch(program, RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)),
      supervisor
    )
  })

describe("Executor cost per request", () => {
  it.scoped("a plain submit: its fiber, its lane's, and a bounded number of steps", () =>
    Effect.gen(function* () {
      const cost = yield* costPerRequest({ name: "cost-plain", concurrency: 4, spans: false })
      expect(cost.fibers).toBe(2)
      expect(cost.steps).toBeLessThanOrEqual(PLAIN_STEPS)
    })
  )

  it.scoped("a submit charged on two limits: its fiber, its lane's, and a bounded number of steps", () =>
    Effect.gen(function* () {
      const cost = yield* costPerRequest(
        {
          name: "cost-limits",
          concurrency: 4,
          spans: false,
          limits: {
            requests: { limit: 10_000, interval: "1 minute" },
            tokens: { limit: 1_000_000, interval: "1 minute" }
          }
        },
        { cost: { tokens: 10 } }
      )
      expect(cost.fibers).toBe(2)
      expect(cost.steps).toBeLessThanOrEqual(LIMITED_STEPS)
    })
  )

  it.scoped(
    "a submit under a timeout with a retry policy: still its fiber and its lane's (the timer watches its own)",
    () =>
      Effect.gen(function* () {
        // As the ApiClient builds its executor: a retry policy, and every attempt under a timeout. An attempt on a
        // fiber of its own (for the timer to interrupt) would make it three per request.
        const cost = yield* costPerRequest({
          name: "cost-timeout",
          concurrency: 4,
          spans: false,
          timeout: "30 seconds",
          retry: { maxAttempts: 3, base: "500 millis" }
        })
        expect(cost.fibers).toBe(2)
        expect(cost.steps).toBeLessThanOrEqual(TIMED_RETRY_STEPS)
      })
  )

  it.scoped("a submit with a deadline: still its fiber and its lane's (the timer keeps the deadline)", () =>
    Effect.gen(function* () {
      // A deadline that sleeps on a fiber of its own until it runs out would make it three per request.
      const cost = yield* costPerRequest(
        { name: "cost-deadline", concurrency: 4, spans: false },
        { deadline: "1 minute" }
      )
      expect(cost.fibers).toBe(2)
      expect(cost.steps).toBeLessThanOrEqual(DEADLINE_STEPS)
    })
  )
})

/**
 * The budgets: measured 22, 43, 56 and 23 steps with effect 3.22.4 (the path before these economies took 45 and
 * 89 for the first two), plus a margin of a few steps for Effect's own changes. A new Effect version that moves them is a
 * reason to look again, not to raise them blindly.
 */
const PLAIN_STEPS = 25
const LIMITED_STEPS = 45
const TIMED_RETRY_STEPS = 60
const DEADLINE_STEPS = 26
