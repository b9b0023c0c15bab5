/**
 * Active health checks, under TestClock: a passing probe returns an ejected
 * provider early; the interval is shorter while failing and longer while
 * healthy; failing probes eject a provider no call reaches; a probe that
 * outlasts its timeout fails; probes stop with the provider and the router.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Router from "../src/Router.js"
import { type Behaviour, provider, scripted } from "./utils/routerHelpers.js"

/** A probe whose verdict the test sets, recording when each run began (ms on the Clock). */
const scriptedProbe = () => {
  const state = { passing: true, runs: [] as Array<number>, running: 0 }
  const probe = Effect.gen(function* () {
    state.runs.push(yield* Clock.currentTimeMillis)
    if (!state.passing) return yield* Effect.fail("probe failed" as const)
  })
  return { state, probe }
}

const stateOf = (router: Router.RouterShape, name: string) =>
  Effect.map(router.snapshot, (snapshot) => snapshot.providers.find((p) => p.name === name)!)

const tagged = <T extends Router.RouterEvent["_tag"]>(events: Queue.Dequeue<Router.RouterEvent>, tag: T) =>
  Effect.map(Queue.takeAll(events), (all) =>
    Chunk.toArray(all).filter((event): event is Extract<Router.RouterEvent, { _tag: T }> => event._tag === tag)
  )

describe("Router active health checks", () => {
  it.scoped("a passing probe returns a provider", () =>
    Effect.gen(function* () {
      const { state, probe } = scriptedProbe()
      const router = yield* Router.make({
        name: "probe-return",
        strategy: "roundRobin",
        providers: [
          yield* provider("a", {
            healthCheck: { probe, healthyInterval: "30 seconds", failingInterval: "5 seconds" }
          }),
          yield* provider("b")
        ],
        ejection: {
          consecutiveFailures: 2,
          baseEjectionTime: "60 seconds",
          maxEjectionPercent: 100,
          panicThreshold: 0
        },
        maxAttempts: 1
      })
      const events = yield* router.subscribe
      const behaviour: Record<string, Behaviour> = { a: "ServerError" }
      const log: Array<string> = []
      const call = scripted(behaviour, log)
      yield* TestClock.adjust("1 second")
      for (let i = 0; i < 4; i++) yield* Effect.either(router.submit(call))
      expect(yield* stateOf(router, "a")).toMatchObject({
        state: "ejected",
        ejection: { reason: "ConsecutiveFailures", until: 61_000 }
      })
      behaviour.a = "ok"

      // The ejection cut the healthy wait short: the next probe comes 5 s later, passes, and a is back.
      yield* TestClock.adjust("4999 millis")
      expect((yield* stateOf(router, "a")).state).toBe("ejected")
      yield* TestClock.adjust("1 milli")
      expect(state.runs).toEqual([6_000])
      expect(yield* stateOf(router, "a")).toMatchObject({
        state: "active",
        ejection: undefined,
        consecutiveFailures: 0,
        healthCheck: { passing: true, consecutiveFailures: 0, lastProbeAt: 6_000 }
      })
      expect(yield* tagged(events, "Returned")).toEqual([
        { _tag: "Returned", router: "probe-return", at: 6_000, provider: "a", reason: "Probe" }
      ])
      log.length = 0
      for (let i = 0; i < 4; i++) yield* router.submit(call)
      expect(log).toEqual(["a", "b", "a", "b"])
    })
  )

  it.scoped("the interval is shorter while failing and longer while healthy", () =>
    Effect.gen(function* () {
      const { state, probe } = scriptedProbe()
      const router = yield* Router.make({
        name: "probe-interval",
        providers: [
          yield* provider("a", {
            healthCheck: { probe, healthyInterval: "30 seconds", failingInterval: "5 seconds" }
          }),
          yield* provider("b")
        ],
        // Probe failures alone do not eject here: the interval follows the probe's verdict.
        ejection: { consecutiveFailures: 1_000 }
      })
      yield* TestClock.adjust("60 seconds")
      expect(state.runs).toEqual([30_000, 60_000])
      state.passing = false
      yield* TestClock.adjust("40 seconds")
      expect(state.runs).toEqual([30_000, 60_000, 90_000, 95_000, 100_000])
      expect((yield* stateOf(router, "a")).healthCheck).toEqual({
        passing: false,
        consecutiveFailures: 3,
        lastProbeAt: 100_000
      })
      state.passing = true
      yield* TestClock.adjust("40 seconds")
      expect(state.runs).toEqual([30_000, 60_000, 90_000, 95_000, 100_000, 105_000, 135_000])
    })
  )

  it.scoped("failing probes count toward ejection: a dead provider no call reaches is ejected", () =>
    Effect.gen(function* () {
      const { state, probe } = scriptedProbe()
      state.passing = false
      const router = yield* Router.make({
        name: "probe-eject",
        providers: [
          yield* provider("a", {
            healthCheck: { probe, healthyInterval: "30 seconds", failingInterval: "5 seconds" }
          }),
          yield* provider("b")
        ],
        ejection: { consecutiveFailures: 3, baseEjectionTime: "60 seconds", maxEjectionPercent: 100 }
      })
      const events = yield* router.subscribe
      yield* TestClock.adjust("39 seconds")
      expect((yield* stateOf(router, "a")).state).toBe("active")
      yield* TestClock.adjust("1 second")
      expect(state.runs).toEqual([30_000, 35_000, 40_000])
      expect(yield* stateOf(router, "a")).toMatchObject({
        state: "ejected",
        ejection: { reason: "ConsecutiveFailures", until: 100_000 }
      })
      expect((yield* tagged(events, "Probed")).map((event) => event.passed)).toEqual([false, false, false])
      const probes = (outcome: string) =>
        Metric.taggedWithLabels(Router.metrics.probes, [
          MetricLabel.make("router", "probe-eject"),
          MetricLabel.make("provider", "a"),
          MetricLabel.make("domain", ""),
          MetricLabel.make("outcome", outcome)
        ])
      expect((yield* Metric.value(probes("failed"))).count).toBe(3)
      expect((yield* Metric.value(probes("passed"))).count).toBe(0)
    })
  )

  it.scoped("a probe that outlasts its timeout fails, and is interrupted", () =>
    Effect.gen(function* () {
      let interrupted = 0
      const hanging = Effect.onInterrupt(Effect.never, () =>
        Effect.sync(() => {
          interrupted++
        })
      )
      const router = yield* Router.make({
        name: "probe-timeout",
        providers: [
          yield* provider("a", {
            healthCheck: {
              probe: hanging,
              healthyInterval: "10 seconds",
              failingInterval: "5 seconds",
              timeout: "2 seconds"
            }
          })
        ]
      })
      yield* TestClock.adjust("11 seconds")
      expect((yield* stateOf(router, "a")).healthCheck).toEqual({
        passing: undefined,
        consecutiveFailures: 0,
        lastProbeAt: undefined
      })
      yield* TestClock.adjust("1 second")
      expect((yield* stateOf(router, "a")).healthCheck).toEqual({
        passing: false,
        consecutiveFailures: 1,
        lastProbeAt: 12_000
      })
      expect(interrupted).toBe(1)
    })
  )

  it.scoped("probes stop when the provider is removed or replaced, and when the router's scope closes", () =>
    Effect.gen(function* () {
      const removed = scriptedProbe()
      const old = scriptedProbe()
      const replacement = scriptedProbe()
      const closed = scriptedProbe()
      const check = (probe: typeof removed.probe) => ({ probe, healthyInterval: "10 seconds" as const })
      const router = yield* Router.make({
        name: "probe-stop",
        providers: [
          yield* provider("gone", { healthCheck: check(removed.probe) }),
          yield* provider("swapped", { healthCheck: check(old.probe) })
        ]
      })
      const scope = yield* Scope.make()
      yield* Router.make({
        name: "probe-closed",
        providers: [yield* provider("c", { healthCheck: check(closed.probe) })]
      }).pipe(Scope.extend(scope))

      yield* TestClock.adjust("10 seconds")
      expect([removed.state.runs, old.state.runs, closed.state.runs]).toEqual([[10_000], [10_000], [10_000]])

      yield* router.remove("gone")
      yield* router.replace(yield* provider("swapped", { healthCheck: check(replacement.probe) }))
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("30 seconds")
      expect(removed.state.runs).toEqual([10_000])
      expect(old.state.runs).toEqual([10_000])
      expect(closed.state.runs).toEqual([10_000])
      // The replacement probes on its own schedule, from when it took the old one's place.
      expect(replacement.state.runs).toEqual([20_000, 30_000, 40_000])
    })
  )

  it.scoped("bad health-check options fail with an InvalidOptionsError naming the field", () =>
    Effect.gen(function* () {
      const a = yield* provider("a")
      const notAnEffect = yield* Effect.flip(
        Router.make({ name: "bad", providers: [{ ...a, healthCheck: { probe: "GET /v1/models" as never } }] })
      )
      expect(notAnEffect.message).toContain('["providers",0,"healthCheck","probe"] Expected an Effect')
      const zeroInterval = yield* Effect.flip(
        Router.make({ name: "bad", providers: [{ ...a, healthCheck: { probe: Effect.void, healthyInterval: 0 } }] })
      )
      expect(zeroInterval.message).toContain('["providers",0,"healthCheck","healthyInterval"]')
    })
  )
})
