/**
 * Fallback by the failure's reason, under TestClock: rate limited → another
 * quota domain; unavailable → the next tier; context too long → a provider
 * with a larger declared window, checked before the hop; content filtered →
 * the configured chain; the caller's own error → no fallback. Hops are
 * bounded by `maxAttempts` and the router-wide retry budget. And drain:
 * in-flight work finishes, no new work arrives.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import type * as RateLimiter from "../src/RateLimiter.js"
import * as Router from "../src/Router.js"
import { domainLimiter, provider, scripted, twoOrgs, Upstream, whereItWent } from "./utils/routerHelpers.js"

describe("Router fallback by reason", () => {
  it.scoped("rate limited → a provider of another domain, though a sibling is next in turn", () =>
    Effect.gen(function* () {
      const { router } = yield* twoOrgs("429")
      const log: Array<string> = []
      expect(yield* router.submit(scripted({ a1: "RateLimited" }, log))).toBe("b1")
      expect(log).toEqual(["a1", "b1"])
    })
  )

  it.scoped("unavailable → the next tier, before another provider of the same tier", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "tiers",
        strategy: "roundRobin",
        providers: [
          yield* provider("primary1", { tier: 0 }),
          yield* provider("primary2", { tier: 0 }),
          yield* provider("backup", { tier: 1 })
        ]
      })
      const events = yield* router.subscribe
      const log: Array<string> = []
      expect(yield* router.submit(scripted({ primary1: "ServerError" }, log))).toBe("backup")
      expect(log).toEqual(["primary1", "backup"])
      const fallback = yield* events.take
      expect(fallback).toMatchObject({ _tag: "Fallback", provider: "primary1", signal: "Unavailable", hop: 1 })
      // Tier 1 takes no traffic while tier 0 is well.
      log.length = 0
      for (let i = 0; i < 4; i++) yield* router.submit(scripted({}, log))
      expect(log).not.toContain("backup")
    })
  )

  it.scoped("context too long → a provider with a larger window; the window is checked before the hop", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "context",
        strategy: "roundRobin",
        providers: [
          yield* provider("mid", { contextWindow: 8_000 }),
          yield* provider("small", { contextWindow: 4_000 }),
          yield* provider("large", { contextWindow: 32_000 })
        ]
      })
      const log: Array<string> = []
      expect(yield* router.submit(scripted({ mid: "ContextTooLong" }, log))).toBe("large")
      expect(log).toEqual(["mid", "large"])
      // Too long for the largest: no provider declares more, so there is no hop at all (the smaller one is
      // never sent a call it cannot take) and the call fails with its own error.
      const largestFirst = yield* Router.make({
        name: "largest-first",
        strategy: "roundRobin",
        providers: [
          yield* provider("large", { contextWindow: 32_000 }),
          yield* provider("small", { contextWindow: 4_000 })
        ]
      })
      log.length = 0
      const exit = yield* Effect.exit(largestFirst.submit(scripted({ large: "ContextTooLong" }, log)))
      expect(log).toEqual(["large"])
      expect(exit).toEqual(Exit.fail(new Upstream({ reason: "ContextTooLong", provider: "large" })))
    })
  )

  it.scoped("a call that states its context skips providers with a smaller declared window", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "fits",
        strategy: "roundRobin",
        providers: [
          yield* provider("small", { contextWindow: 4_000 }),
          yield* provider("large", { contextWindow: 32_000 })
        ]
      })
      const log: Array<string> = []
      for (let i = 0; i < 3; i++) yield* router.submit(scripted({}, log), { contextTokens: 10_000 })
      expect(log).toEqual(["large", "large", "large"])
      const exit = yield* Effect.exit(router.submit(scripted({}, log), { contextTokens: 50_000 }))
      expect(exit).toEqual(
        Exit.fail(
          new Router.RouterError({
            router: "fits",
            reason: "ContextWindow",
            contextTokens: 50_000,
            largestWindow: 32_000
          })
        )
      )
    })
  )

  it.scoped("content filtered → the configured chain; with no chain the call fails", () =>
    Effect.gen(function* () {
      const withChain = yield* Router.make({
        name: "filtered",
        strategy: "roundRobin",
        providers: [yield* provider("strict"), yield* provider("other"), yield* provider("lenient")],
        contentFilteredChain: ["lenient"]
      })
      const log: Array<string> = []
      expect(yield* withChain.submit(scripted({ strict: "ContentFiltered" }, log))).toBe("lenient")
      expect(log).toEqual(["strict", "lenient"])
      const without = yield* Router.make({
        name: "unfiltered",
        strategy: "roundRobin",
        providers: [yield* provider("strict"), yield* provider("other")]
      })
      log.length = 0
      const exit = yield* Effect.exit(without.submit(scripted({ strict: "ContentFiltered" }, log)))
      expect(exit).toEqual(Exit.fail(new Upstream({ reason: "ContentFiltered", provider: "strict" })))
      expect(log).toEqual(["strict"])
    })
  )

  it.scoped("the caller's own error is final: no other provider is tried", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "final",
        strategy: "roundRobin",
        providers: [yield* provider("a"), yield* provider("b")]
      })
      const log: Array<string> = []
      const exit = yield* Effect.exit(router.submit(scripted({ a: "ClientError" }, log)))
      expect(exit).toEqual(Exit.fail(new Upstream({ reason: "ClientError", provider: "a" })))
      expect(log).toEqual(["a"])
    })
  )

  it.scoped("hops stop at maxAttempts and when the router-wide retry budget is spent", () =>
    Effect.gen(function* () {
      const everyoneFails = { a: "ServerError", b: "ServerError", c: "ServerError", d: "ServerError" } as const
      const bounded = yield* Router.make({
        name: "bounded",
        strategy: "roundRobin",
        providers: yield* Effect.forEach(["a", "b", "c", "d"], (name) => provider(name)),
        maxAttempts: 2,
        ejection: { maxEjectionPercent: 0 }
      })
      const log: Array<string> = []
      const exit = yield* Effect.exit(bounded.submit(scripted(everyoneFails, log)))
      expect(log).toHaveLength(2)
      expect(new Set(log).size).toBe(2)
      expect(exit).toEqual(Exit.fail(new Upstream({ reason: "ServerError", provider: log[1]! })))
      // A budget of one retry per window: the first call may fall back once, the second not at all.
      const budgeted = yield* Router.make({
        name: "budgeted",
        strategy: "roundRobin",
        providers: yield* Effect.forEach(["a", "b", "c", "d"], (name) => provider(name)),
        retryBudget: { ratio: 0, minRetries: 1 },
        ejection: { maxEjectionPercent: 0 }
      })
      log.length = 0
      yield* Effect.exit(budgeted.submit(scripted({ a: "ServerError", b: "ok", c: "ok", d: "ok" }, log)))
      expect(log).toHaveLength(2)
      log.length = 0
      const spent = yield* Effect.exit(budgeted.submit(scripted(everyoneFails, log)))
      expect(log).toHaveLength(1)
      expect(spent).toEqual(Exit.fail(new Upstream({ reason: "ServerError", provider: log[0]! })))
      const snapshot = yield* budgeted.snapshot
      expect(snapshot.retryBudget).toEqual({ requests: 2, retries: 1, allowance: 1 })
      // Every failed call gave its in-flight count back.
      expect(snapshot.providers.map((p) => p.inFlight)).toEqual([0, 0, 0, 0])
    })
  )
})

describe("Router run-time changes", () => {
  it.scoped("drain lets in-flight work finish and takes no new work; remove forgets the provider", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "drain",
        strategy: "roundRobin",
        providers: [yield* provider("a"), yield* provider("b")]
      })
      const events = yield* router.subscribe
      const latch = yield* Deferred.make<void>()
      const slow = (route: Router.Route) => Effect.zipRight(Deferred.await(latch), whereItWent(route))
      const inFlight = yield* Effect.fork(router.submit(slow)) // goes to a
      yield* TestClock.adjust(0)
      const draining = yield* Effect.fork(router.drain("a"))
      yield* TestClock.adjust(0)
      expect((yield* router.snapshot).providers.map((p) => [p.name, p.state, p.inFlight])).toEqual([
        ["a", "draining", 1],
        ["b", "active", 0]
      ])
      // New work goes elsewhere while a drains.
      const log: Array<string> = []
      for (let i = 0; i < 3; i++) yield* router.submit(scripted({}, log))
      expect(log).toEqual(["b", "b", "b"])
      expect((yield* Fiber.poll(draining))._tag).toBe("None")
      yield* Deferred.succeed(latch, undefined)
      expect(yield* Fiber.join(inFlight)).toBe("a")
      yield* Fiber.join(draining)
      yield* router.remove("a")
      const snapshot = yield* router.snapshot
      expect(snapshot.providers.map((p) => p.name)).toEqual(["b"])
      const changes = []
      while ((yield* events.size) > 0) {
        const event = yield* events.take
        if (event._tag === "ProviderChanged") changes.push([event.provider, event.change, event.generation])
      }
      expect(changes).toEqual([
        ["a", "Draining", 3],
        ["a", "Drained", 3],
        ["a", "Removed", 4]
      ])
      // Generations 1 and 2 added a and b.
      expect(snapshot.generation).toBe(4)
      // Unknown and duplicate names are typed errors.
      expect(yield* Effect.flip(router.drain("a"))).toEqual(
        new Router.RouterError({ router: "drain", reason: "UnknownProvider", provider: "a" })
      )
      const again = yield* provider("b")
      expect(yield* Effect.flip(router.add(again))).toEqual(
        new Router.RouterError({ router: "drain", reason: "DuplicateProvider", provider: "b" })
      )
      expect(yield* router.add(yield* provider("c"))).toBe(5)
      expect(yield* Effect.flip(router.add(yield* provider("d", { domains: ["nowhere"] })))).toEqual(
        new Router.RouterError({ router: "drain", reason: "UnknownDomain", provider: "d", domain: "nowhere" })
      )
    })
  )

  it.scoped("replace sends new work to the new provider at once; the old one finishes what it has", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({ name: "replace", providers: [yield* provider("a")] })
      const latch = yield* Deferred.make<void>()
      const oldCall = yield* Effect.fork(
        router.submit((route) => Effect.zipRight(Deferred.await(latch), whereItWent(route)))
      )
      yield* TestClock.adjust(0)
      const fresh = yield* provider("a")
      const replacing = yield* Effect.fork(router.replace(fresh))
      yield* TestClock.adjust(0)
      // Both are held: the new one under the name, the old one draining its call.
      expect((yield* router.snapshot).providers.map((p) => [p.name, p.state, p.inFlight])).toEqual([
        ["a", "active", 0],
        ["a", "draining", 1]
      ])
      // New work goes to the new provider's executor.
      yield* router.submit(whereItWent)
      yield* router.submit(whereItWent)
      expect((yield* fresh.executor.stats).completed).toBe(2)
      expect((yield* Fiber.poll(replacing))._tag).toBe("None")
      yield* Deferred.succeed(latch, undefined)
      expect(yield* Fiber.join(oldCall)).toBe("a")
      expect(yield* Fiber.join(replacing)).toBe(2)
      expect((yield* router.snapshot).providers.map((p) => [p.name, p.state, p.inFlight])).toEqual([["a", "active", 0]])
      expect((yield* fresh.executor.stats).completed).toBe(2)
    })
  )

  it.scoped("a provider drained between its choice and its dispatch takes nothing: the call chooses again", () =>
    Effect.gen(function* () {
      const real = yield* domainLimiter(1_000, "1 second")
      // The domain's limiter answers when it admits only once the gate opens: the selection waits on it.
      const gate = yield* Deferred.make<void>()
      const gated: RateLimiter.RateLimiterShape = {
        ...real,
        admissibleIn: (cost, options) => Effect.zipRight(Deferred.await(gate), real.admissibleIn(cost, options))
      }
      const router = yield* Router.make({
        name: "raced",
        strategy: "roundRobin",
        domains: { gated: { limiter: gated } },
        providers: [yield* provider("a", { domains: ["gated"], limiter: real }), yield* provider("b")]
      })
      const log: Array<string> = []
      const call = yield* Effect.fork(router.submit(scripted({}, log)))
      yield* TestClock.adjust(0)
      // a was chosen and its quota is being read; a drains meanwhile (nothing in flight: at once).
      yield* router.drain("a")
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(call)).toBe("b")
      expect(log).toEqual(["b"])
      expect((yield* router.snapshot).providers.map((p) => [p.name, p.state, p.inFlight])).toEqual([
        ["a", "draining", 0],
        ["b", "active", 0]
      ])
    })
  )

  it.scoped("with every provider gone the call fails with NoProvider, never hangs", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({ name: "empty", providers: [yield* provider("a")] })
      yield* router.remove("a")
      expect(yield* Effect.flip(router.submit(whereItWent))).toEqual(
        new Router.RouterError({ router: "empty", reason: "NoProvider" })
      )
    })
  )
})
