/**
 * No instance leaks, whatever happens (property, under TestClock): random
 * pool bounds, time-to-live strategies, slow and failing starts, instances
 * that turn unhealthy, callers that succeed, fail, crash (fatal) or are
 * interrupted at random moments, and the pool's scope closed at a random
 * time. The test counts starts and stops in its own acquire, apart from the
 * pool: at the end every instance started was stopped, no instance ever
 * served more callers at once than `concurrency` nor any caller after it
 * stopped, the pool never held more than `max`, and every caller ended as
 * its script says (its answer, its own failure, `Closed`, `AcquireFailed`,
 * or interrupted only when it was interrupted).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as fc from "fast-check"
import * as ProviderPool from "../src/ProviderPool.js"
import { withHangGuard } from "./utils/hangGuard.js"

const scenarioArbitrary = fc.record({
  min: fc.integer({ min: 0, max: 2 }),
  extra: fc.integer({ min: 0, max: 3 }),
  concurrency: fc.integer({ min: 1, max: 2 }),
  timeToLiveStrategy: fc.constantFrom("usage" as const, "creation" as const),
  timeToLiveMillis: fc.integer({ min: 500, max: 5_000 }),
  startupMillis: fc.integer({ min: 0, max: 800 }),
  /** Which starts (by number from 1) fail. */
  failedStarts: fc.uniqueArray(fc.integer({ min: 1, max: 12 }), { maxLength: 4 }),
  /** Which instances (by number from 1) turn unhealthy, and when. */
  sickness: fc.array(fc.record({ instance: fc.integer({ min: 1, max: 8 }), atMillis: fc.nat(6_000) }), {
    maxLength: 4
  }),
  healthCheckIntervalMillis: fc.integer({ min: 300, max: 3_000 }),
  calls: fc.array(
    fc.record({
      atMillis: fc.nat(6_000),
      durationMillis: fc.nat(1_500),
      outcome: fc.constantFrom("ok" as const, "fail" as const, "crash" as const),
      interruptAtMillis: fc.option(fc.nat(7_000), { nil: undefined })
    }),
    { minLength: 1, maxLength: 20 }
  ),
  closeAtMillis: fc.nat(9_000)
})

type Scenario = typeof scenarioArbitrary extends fc.Arbitrary<infer A> ? A : never

interface Instance {
  readonly id: number
  alive: boolean
  healthy: boolean
  users: number
}

const STEP_MILLIS = 100
const HORIZON_MILLIS = 60_000

const runScenario = (scenario: Scenario) =>
  Effect.gen(function* () {
    const max = Math.max(1, scenario.min + scenario.extra)
    const instances: Array<Instance> = []
    const violations: Array<string> = []
    let attempts = 0
    let started = 0
    let stopped = 0
    const acquire = Effect.zipRight(
      Effect.sleep(scenario.startupMillis),
      Effect.suspend(() => {
        const attempt = ++attempts
        if (scenario.failedStarts.includes(attempt)) return Effect.fail(`start ${attempt} failed`)
        return Effect.acquireRelease(
          Effect.sync(() => {
            const instance: Instance = { id: instances.length + 1, alive: true, healthy: true, users: 0 }
            instances.push(instance)
            started++
            // In service at most max; an instance retired while a caller holds it (expired under "creation",
            // invalidated) runs on beside its replacement until it is handed back.
            const held = instances.filter((other) => other.alive && other.users > 0).length
            if (started - stopped > max + held) {
              violations.push(`${started - stopped} instances running (${held} held), max ${max}`)
            }
            return instance
          }),
          (instance) =>
            Effect.sync(() => {
              if (instance.users > 0) violations.push(`instance ${instance.id} stopped while ${instance.users} used it`)
              instance.alive = false
              stopped++
            })
        )
      })
    )
    const scope = yield* Scope.make()
    const pool = yield* ProviderPool.make({
      name: "property",
      acquire,
      min: scenario.min,
      max,
      concurrency: scenario.concurrency,
      timeToLive: scenario.timeToLiveMillis,
      timeToLiveStrategy: scenario.timeToLiveStrategy,
      healthCheck: (instance) => (instance.healthy ? Effect.void : Effect.fail("unhealthy")),
      healthCheckInterval: scenario.healthCheckIntervalMillis,
      healthCheckTimeout: 1_000
    }).pipe(Scope.extend(scope), Effect.orDie)

    const call = (planned: Scenario["calls"][number], index: number) =>
      pool.use((instance) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            if (!instance.alive) violations.push(`call ${index} got instance ${instance.id} after it stopped`)
            instance.users++
            if (instance.users > scenario.concurrency) {
              violations.push(`instance ${instance.id} served ${instance.users} callers at once`)
            }
          }),
          () =>
            Effect.zipRight(
              Effect.sleep(planned.durationMillis),
              planned.outcome === "ok"
                ? Effect.succeed(index)
                : planned.outcome === "fail"
                  ? Effect.fail(`call ${index} failed`)
                  : Effect.die(`call ${index} crashed`)
            ),
          () => Effect.sync(() => instance.users--)
        )
      )

    const fibers = yield* Effect.forEach(scenario.calls, (planned, index) =>
      Effect.fork(Effect.zipRight(Effect.sleep(planned.atMillis), call(planned, index)))
    )
    yield* Effect.forEach(scenario.calls, (planned, index) =>
      planned.interruptAtMillis === undefined
        ? Effect.void
        : Effect.fork(Effect.zipRight(Effect.sleep(planned.interruptAtMillis), Fiber.interrupt(fibers[index]!)))
    )
    yield* Effect.forEach(scenario.sickness, (sick) =>
      Effect.fork(
        Effect.zipRight(
          Effect.sleep(sick.atMillis),
          Effect.sync(() => {
            const instance = instances[sick.instance - 1]
            if (instance !== undefined) instance.healthy = false
          })
        )
      )
    )
    const closing = yield* Effect.fork(
      Effect.zipRight(Effect.sleep(scenario.closeAtMillis), Scope.close(scope, Exit.void))
    )
    for (let elapsed = 0; elapsed < HORIZON_MILLIS; elapsed += STEP_MILLIS) {
      yield* TestClock.adjust(STEP_MILLIS)
      if (closing.unsafePoll() !== null && fibers.every((fiber) => fiber.unsafePoll() !== null)) break
    }
    yield* Fiber.join(closing)
    const exits = yield* Effect.forEach(fibers, Fiber.await)
    return { exits, started, stopped, violations, snapshot: yield* pool.snapshot }
  }).pipe(Effect.provide(TestContext.TestContext))

describe("ProviderPool (property)", () => {
  it("no instance leaks on success, failure, crash, interruption and close; none is shared or used stopped", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, async (scenario) => {
        const { exits, started, stopped, violations, snapshot } = await withHangGuard(
          Effect.runPromise(runScenario(scenario)),
          "a caller or the pool's close never finished"
        )
        expect(violations).toEqual([])
        expect(stopped).toBe(started)
        expect([snapshot.size, snapshot.inUse, snapshot.waiting]).toEqual([0, 0, 0])
        expect([snapshot.starts, snapshot.stops]).toEqual([started, stopped])
        scenario.calls.forEach((planned, index) => {
          const exit = exits[index]!
          if (Exit.isInterrupted(exit)) {
            expect(planned.interruptAtMillis).toBeDefined()
            return
          }
          if (Exit.isFailure(exit)) {
            const error = Cause.failureOption(exit.cause)
            if (Option.isSome(error) && error.value instanceof ProviderPool.ProviderPoolError) {
              // Refused by the pool: closed, or a start that failed.
              expect(error.value.reason === "Closed" || scenario.failedStarts.length > 0).toBe(true)
              return
            }
            expect(exit).toEqual(
              planned.outcome === "fail" ? Exit.fail(`call ${index} failed`) : Exit.die(`call ${index} crashed`)
            )
            return
          }
          expect(planned.outcome).toBe("ok")
          expect(exit).toEqual(Exit.succeed(index))
        })
      }),
      { numRuns: 40 }
    )
  }, 180_000)
})
