/**
 * Outlier ejection under TestClock, in Envoy's model: consecutive failures
 * and a failure rate over a minimum volume eject; the n-th ejection lasts
 * base × n (capped, with jitter); at most a share of the pool is ejected at
 * once, exactly for small pools; below the panic threshold every provider
 * takes traffic. Only the provider's own failures count: a 429 and the
 * caller's 4xx never eject.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Executor from "../src/Executor.js"
import * as Router from "../src/Router.js"
import { type Behaviour, provider, scripted, whereItWent } from "./utils/routerHelpers.js"

const stateOf = (router: Router.RouterShape) =>
  Effect.map(router.snapshot, (snapshot) => Object.fromEntries(snapshot.providers.map((p) => [p.name, p.state])))

const ejectionOf = (router: Router.RouterShape, name: string) =>
  Effect.map(router.snapshot, (snapshot) => snapshot.providers.find((p) => p.name === name)!.ejection)

const providers = (...names: Array<string>) => Effect.forEach(names, (name) => provider(name))

describe("Router outlier ejection", () => {
  it.scoped("consecutive server errors eject a provider for the base time; it returns when the time is up", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "eject",
        strategy: "roundRobin",
        providers: yield* providers("a", "b"),
        ejection: {
          consecutiveFailures: 2,
          baseEjectionTime: "10 seconds",
          maxEjectionPercent: 100,
          panicThreshold: 0
        },
        maxAttempts: 1
      })
      const events = yield* router.subscribe
      const behaviour: Record<string, Behaviour> = { a: "ServerError" }
      const log: Array<string> = []
      const call = scripted(behaviour, log)
      // a fails twice (its turns in round robin), b answers.
      for (let i = 0; i < 4; i++) yield* Effect.either(router.submit(call))
      expect(log).toEqual(["a", "b", "a", "b"])
      expect(yield* ejectionOf(router, "a")).toEqual({ reason: "ConsecutiveFailures", until: 10_000 })
      const ejected = Chunk.toArray(yield* Queue.takeAll(events)).filter((event) => event._tag === "Ejected")
      expect(ejected).toEqual([
        {
          _tag: "Ejected",
          router: "eject",
          at: 0,
          provider: "a",
          reason: "ConsecutiveFailures",
          until: 10_000,
          ejections: 1
        }
      ])
      // Ejected: every call goes to b.
      log.length = 0
      for (let i = 0; i < 3; i++) yield* router.submit(call)
      expect(log).toEqual(["b", "b", "b"])
      behaviour.a = "ok"
      yield* TestClock.adjust(10_000)
      log.length = 0
      for (let i = 0; i < 4; i++) yield* router.submit(call)
      expect(log.filter((name) => name === "a")).toHaveLength(2)
      expect(yield* stateOf(router)).toEqual({ a: "active", b: "active" })
      const returned = Chunk.toArray(yield* Queue.takeAll(events)).filter((event) => event._tag === "Returned")
      expect(returned).toEqual([
        { _tag: "Returned", router: "eject", at: 10_000, provider: "a", reason: "EjectionEnded" }
      ])
    })
  )

  it.scoped("each ejection lasts longer (base × n), up to the maximum", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "growing",
        providers: yield* providers("a", "b"),
        strategy: "roundRobin",
        ejection: {
          consecutiveFailures: 1,
          baseEjectionTime: "10 seconds",
          maxEjectionTime: "25 seconds",
          maxEjectionPercent: 100,
          panicThreshold: 0
        },
        maxAttempts: 1
      })
      const log: Array<string> = []
      const call = scripted({ a: "ServerError" }, log)
      /** Calls until a has failed once more, and answers how long its ejection is from now. */
      const ejectA = Effect.gen(function* () {
        while ((yield* ejectionOf(router, "a")) === undefined) yield* Effect.either(router.submit(call))
        const until = (yield* ejectionOf(router, "a"))!.until
        const now = yield* TestClock.currentTimeMillis
        yield* TestClock.setTime(until)
        return until - now
      })
      expect(yield* ejectA).toBe(10_000)
      expect(yield* ejectA).toBe(20_000)
      expect(yield* ejectA).toBe(25_000)
      const snapshot = yield* router.snapshot
      expect(snapshot.providers.find((p) => p.name === "a")!.ejections).toBe(3)
    })
  )

  it.scoped("jitter adds up to its bound to each ejection, never more", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "jitter",
        providers: yield* providers("a", "b"),
        strategy: "roundRobin",
        ejection: {
          consecutiveFailures: 1,
          baseEjectionTime: "10 seconds",
          maxEjectionTime: "10 seconds",
          jitter: "1 second",
          maxEjectionPercent: 100,
          panicThreshold: 0
        },
        maxAttempts: 1
      })
      const call = scripted({ a: "ServerError" }, [])
      const lengths: Array<number> = []
      for (let i = 0; i < 20; i++) {
        while ((yield* ejectionOf(router, "a")) === undefined) yield* Effect.either(router.submit(call))
        const until = (yield* ejectionOf(router, "a"))!.until
        lengths.push(until - (yield* TestClock.currentTimeMillis))
        yield* TestClock.setTime(until)
      }
      for (const length of lengths) {
        expect(length).toBeGreaterThanOrEqual(10_000)
        expect(length).toBeLessThanOrEqual(11_000)
      }
      // Jitter spreads them: twenty draws from 1,001 values are not all equal.
      expect(new Set(lengths).size).toBeGreaterThan(1)
    })
  )

  it.scoped("the ejection count decays while a provider stays healthy", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "decay",
        providers: yield* providers("a", "b"),
        strategy: "roundRobin",
        ejection: {
          consecutiveFailures: 1,
          baseEjectionTime: "10 seconds",
          maxEjectionPercent: 100,
          panicThreshold: 0
        },
        maxAttempts: 1
      })
      const behaviour: Record<string, Behaviour> = { a: "ServerError" }
      const call = scripted(behaviour, [])
      yield* Effect.either(router.submit(call))
      expect(yield* ejectionOf(router, "a")).toEqual({ reason: "ConsecutiveFailures", until: 10_000 })
      // Back at 10 s, healthy for two base times: the next ejection is the first again.
      yield* TestClock.setTime(30_000)
      yield* Effect.either(router.submit(call))
      yield* Effect.either(router.submit(call))
      expect(yield* ejectionOf(router, "a")).toEqual({ reason: "ConsecutiveFailures", until: 40_000 })
    })
  )

  it.scoped("a failure rate over the minimum volume ejects, and not before the volume", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "rate",
        providers: yield* providers("a", "b"),
        strategy: "roundRobin",
        ejection: {
          consecutiveFailures: 100,
          failureRate: 0.5,
          minimumVolume: 4,
          window: 10,
          maxEjectionPercent: 100,
          panicThreshold: 0
        },
        maxAttempts: 1
      })
      const behaviour: Record<string, Behaviour> = {}
      const call = scripted(behaviour, [])
      // a: ok, fail, ok, fail → 2 of 4 failed = 50 % at the minimum volume.
      const outcomes: Array<Behaviour> = ["ok", "ServerError", "ok", "ServerError"]
      for (const [index, outcome] of outcomes.entries()) {
        behaviour.a = outcome
        yield* Effect.either(router.submit(call)) // a
        yield* router.submit(call) // b
        if (index < 3) expect(yield* ejectionOf(router, "a")).toBeUndefined()
      }
      expect(yield* ejectionOf(router, "a")).toEqual({ reason: "FailureRate", until: 30_000 })
    })
  )

  it.scoped("at most maxEjectionPercent of the pool is ejected at once, rounded down, even in a small pool", () =>
    Effect.gen(function* () {
      const settings = { consecutiveFailures: 1, maxEjectionPercent: 50, panicThreshold: 0 }
      // Three providers at 50 %: one may be ejected, not two.
      const three = yield* Router.make({
        name: "share",
        strategy: "roundRobin",
        providers: yield* providers("a", "b", "c"),
        ejection: settings,
        maxAttempts: 1
      })
      const events = yield* three.subscribe
      const call = scripted({ a: "ServerError", b: "ServerError" }, [])
      for (let i = 0; i < 3; i++) yield* Effect.either(three.submit(call))
      expect(yield* stateOf(three)).toEqual({ a: "ejected", b: "active", c: "active" })
      const spared = Chunk.toArray(yield* Queue.takeAll(events)).filter((event) => event._tag === "EjectionSpared")
      expect(spared).toEqual([
        {
          _tag: "EjectionSpared",
          router: "share",
          at: 0,
          provider: "b",
          reason: "ConsecutiveFailures",
          ejected: 1,
          allowed: 1
        }
      ])
      // Two providers at 40 %: 0.8 rounds down to none, so neither is ever ejected.
      const two = yield* Router.make({
        name: "small",
        strategy: "roundRobin",
        providers: yield* providers("a", "b"),
        ejection: { ...settings, maxEjectionPercent: 40 },
        maxAttempts: 1
      })
      for (let i = 0; i < 6; i++) yield* Effect.either(two.submit(scripted({ a: "ServerError" }, [])))
      expect(yield* stateOf(two)).toEqual({ a: "active", b: "active" })
    })
  )

  it.scoped("below the panic threshold of healthy providers, the router routes to all of them", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "panic",
        strategy: "roundRobin",
        providers: yield* providers("a", "b", "c"),
        ejection: { consecutiveFailures: 1, maxEjectionPercent: 100, panicThreshold: 0.5 },
        maxAttempts: 1
      })
      const behaviour: Record<string, Behaviour> = { a: "ServerError" }
      const log: Array<string> = []
      const call = scripted(behaviour, log)
      yield* Effect.either(router.submit(call)) // a: ejected; 2 of 3 healthy, no panic
      expect((yield* router.snapshot).panic).toBe(false)
      log.length = 0
      for (let i = 0; i < 4; i++) yield* Effect.either(router.submit(call))
      expect(log).not.toContain("a")
      behaviour.b = "ServerError"
      while ((yield* stateOf(router)).b !== "ejected") yield* Effect.either(router.submit(call))
      // One of three healthy is below one half: panic, and the ejected take traffic again.
      expect((yield* router.snapshot).panic).toBe(true)
      behaviour.a = "ok"
      behaviour.b = "ok"
      log.length = 0
      for (let i = 0; i < 6; i++) yield* router.submit(call)
      expect(new Set(log)).toEqual(new Set(["a", "b", "c"]))
    })
  )

  it.scoped("an attempt timeout counts toward ejection; a refusal by the provider's own breaker does not", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ name: "closed-shop", policy: { kind: "consecutive", failures: 5 } })
      yield* breaker.isolate()
      const router = yield* Router.make({
        name: "executor-errors",
        strategy: "roundRobin",
        providers: [
          { name: "slow", executor: yield* Executor.make({ name: "slow", concurrency: 4, timeout: "1 second" }) },
          { name: "refusing", executor: yield* Executor.make({ name: "refusing", concurrency: 4, breaker }) },
          yield* provider("fine")
        ],
        ejection: { consecutiveFailures: 1, maxEjectionPercent: 100, panicThreshold: 0 }
      })
      const events = yield* router.subscribe
      const log: Array<string> = []
      const call = (route: Router.Route) =>
        Effect.suspend(() => {
          log.push(route.provider)
          return route.provider === "slow" ? Effect.as(Effect.sleep("5 seconds"), route.provider) : whereItWent(route)
        })
      const first = yield* Effect.fork(router.submit(call))
      yield* TestClock.adjust("1 second")
      // slow timed out → the next provider; the refusing one never runs the call (its breaker is isolated).
      expect(yield* Fiber.join(first)).toBe("fine")
      expect(log).toEqual(["slow", "fine"])
      expect(yield* stateOf(router)).toEqual({ slow: "ejected", refusing: "active", fine: "active" })
      log.length = 0
      expect(yield* router.submit(call)).toBe("fine")
      const fallbacks = Chunk.toArray(yield* Queue.takeAll(events)).flatMap((event) =>
        event._tag === "Fallback" ? [[event.provider, event.signal]] : []
      )
      expect(fallbacks).toEqual([
        ["slow", "Unavailable"],
        ["refusing", "Refused"]
      ])
      const snapshot = yield* router.snapshot
      expect(snapshot.providers.find((p) => p.name === "refusing")!.consecutiveFailures).toBe(0)
    })
  )

  it.scoped("429s and the caller's own 4xx never eject", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "signals",
        strategy: "roundRobin",
        providers: yield* providers("a", "b"),
        ejection: { consecutiveFailures: 1, maxEjectionPercent: 100, panicThreshold: 0 },
        maxAttempts: 1
      })
      const behaviour: Record<string, Behaviour> = { a: "ClientError", b: "ClientError" }
      for (let i = 0; i < 4; i++) yield* Effect.either(router.submit(scripted(behaviour, [])))
      behaviour.a = "RateLimited"
      behaviour.b = "RateLimited"
      for (let i = 0; i < 4; i++) yield* Effect.either(router.submit(scripted(behaviour, [])))
      const snapshot = yield* router.snapshot
      expect(snapshot.providers.map((p) => [p.name, p.state, p.consecutiveFailures])).toEqual([
        ["a", "active", 0],
        ["b", "active", 0]
      ])
    })
  )
})
