/**
 * Affinity by key under TestClock: a key's calls stay on one provider (a
 * prompt cache per provider sees every call after a key's first as a hit),
 * keys move minimally when providers come and go, the load bound spills a
 * hot key to the next providers on the ring, and the strategy takes over
 * when the key's home is ejected or out of quota.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import * as Router from "../src/Router.js"
import { domainLimiter, fail, provider, whereItWent } from "./utils/routerHelpers.js"

const names = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `p${from + i}`)

const makeRouter = (providers: ReadonlyArray<string>, extra: Partial<Router.Options> = {}) =>
  Effect.gen(function* () {
    return yield* Router.make({
      name: "affinity",
      affinity: {},
      providers: yield* Effect.forEach(providers, (name) => provider(name)),
      ...extra
    })
  })

/** Where each key's call goes now (one call per key, one after another). */
const homes = (router: Router.RouterShape, keys: ReadonlyArray<string>) =>
  Effect.forEach(keys, (key) => router.submit(whereItWent, { affinityKey: key }))

const keys = (n: number) => Array.from({ length: n }, (_, i) => `session-${i}`)

describe("Router affinity", () => {
  it.scoped(
    "a key's calls stay on one provider: a prompt cache per provider hits on every call after a key's first",
    () =>
      Effect.gen(function* () {
        // 100 keys, 10 calls each, in a shuffled order, over 16 providers.
        const order = yield* Random.shuffle(keys(100).flatMap((key) => Array.from({ length: 10 }, () => key))).pipe(
          Effect.withRandom(Random.make("order"))
        )
        const hitRate = (router: Router.RouterShape) =>
          Effect.gen(function* () {
            const cached = new Map<string, Set<string>>()
            const placed = new Map<string, Set<string>>()
            let hits = 0
            for (const key of order) {
              const at = yield* router.submit(whereItWent, { affinityKey: key })
              const cache = cached.get(at) ?? new Set()
              if (cache.has(key)) hits++
              cache.add(key)
              cached.set(at, cache)
              placed.set(key, (placed.get(key) ?? new Set()).add(at))
            }
            return { rate: hits / order.length, providersPerKey: Math.max(...[...placed.values()].map((s) => s.size)) }
          })
        const sticky = yield* hitRate(yield* makeRouter(names(16)))
        // Every call but each key's first is a hit: 900 of 1,000.
        expect(sticky).toEqual({ rate: 0.9, providersPerKey: 1 })
        // The same calls on a router without affinity (its keys are ignored) scatter each key over providers.
        const scattered = yield* hitRate(yield* makeRouter(names(16), { affinity: undefined }))
        expect(scattered.rate).toBeLessThan(0.5)
        expect(scattered.providersPerKey).toBeGreaterThan(1)
      })
  )

  it.scoped("adding a provider moves only the keys it takes (about 1/n); removing one moves only its keys", () =>
    Effect.gen(function* () {
      const router = yield* makeRouter(names(10))
      const all = keys(2_000)
      const before = yield* homes(router, all)
      yield* router.add(yield* provider("p10"))
      const afterAdd = yield* homes(router, all)
      const moved = all.filter((_, i) => afterAdd[i] !== before[i])
      // Every key that moved went to the new provider, and about 1/11 of them moved.
      expect(new Set(moved.map((key) => afterAdd[all.indexOf(key)]))).toEqual(new Set(["p10"]))
      expect(moved.length / all.length).toBeGreaterThan(0.05)
      expect(moved.length / all.length).toBeLessThan(0.14)
      yield* router.remove("p3")
      const afterRemove = yield* homes(router, all)
      for (let i = 0; i < all.length; i++) {
        // A key stays where it was unless its home was the provider removed.
        if (afterAdd[i] !== "p3") expect(afterRemove[i]).toBe(afterAdd[i])
        else expect(afterRemove[i]).not.toBe("p3")
      }
      expect(afterAdd.filter((home) => home === "p3").length).toBeGreaterThan(0)
    })
  )

  it.scoped("a hot key fills its home up to ⌈loadFactor × average⌉, then spills to the next on the ring", () =>
    Effect.gen(function* () {
      const router = yield* makeRouter(names(4), { affinity: { loadFactor: 1.25 } })
      const home = yield* router.submit(whereItWent, { affinityKey: "hot" })
      const latch = yield* Deferred.make<void>()
      const held = (route: Router.Route) => Effect.as(Deferred.await(latch), route.provider)
      const fibers: Array<Fiber.RuntimeFiber<string, unknown>> = []
      const inFlight = Effect.map(router.snapshot, (snapshot) =>
        Object.fromEntries(snapshot.providers.map((p) => [p.name, p.inFlight]))
      )
      for (let call = 0; call < 40; call++) {
        fibers.push(yield* Effect.fork(router.submit(held, { affinityKey: "hot" })))
        yield* TestClock.adjust(0)
        // After each call, no provider holds more than the bound of that moment.
        const bound = Math.ceil((1.25 * (call + 1)) / 4)
        for (const load of Object.values(yield* inFlight)) expect(load).toBeLessThanOrEqual(bound)
      }
      const loads = yield* inFlight
      // The home is full to the bound (⌈1.25 × 40 / 4⌉ = 13); the rest spilled, none above it.
      expect(loads[home]).toBe(13)
      expect(Object.values(loads).reduce((a, b) => a + b, 0)).toBe(40)
      expect(Object.values(loads).filter((load) => load > 0).length).toBe(4)
      yield* Deferred.succeed(latch, undefined)
      yield* Effect.forEach(fibers, Fiber.join)
      // With the load gone, the key is home again.
      expect(yield* router.submit(whereItWent, { affinityKey: "hot" })).toBe(home)
    })
  )

  it.scoped("the home ejected: the strategy chooses meanwhile; back home once it returns", () =>
    Effect.gen(function* () {
      const router = yield* makeRouter(names(4), {
        ejection: { consecutiveFailures: 1, baseEjectionTime: "10 seconds", maxEjectionPercent: 50 }
      })
      const home = yield* router.submit(whereItWent, { affinityKey: "k" })
      const failingAtHome = (route: Router.Route) =>
        route.provider === home ? fail("ServerError", route.provider) : whereItWent(route)
      // The 5xx ejects the home; the call falls back to another provider.
      const fallback = yield* router.submit(failingAtHome, { affinityKey: "k" })
      expect(fallback).not.toBe(home)
      const meanwhile = yield* Effect.forEach(Array.from({ length: 20 }), () =>
        router.submit(whereItWent, { affinityKey: "k" })
      )
      expect(meanwhile).not.toContain(home)
      yield* TestClock.adjust("10 seconds")
      expect(yield* router.submit(whereItWent, { affinityKey: "k" })).toBe(home)
    })
  )

  it.scoped("the home's quota cannot admit now: another provider serves at once instead of waiting", () =>
    Effect.gen(function* () {
      // Each provider in a domain of its own: one request per 10 s.
      const domains: Record<string, Router.DomainOptions> = {}
      const providers: Array<Router.ProviderOptions> = []
      for (const name of names(3)) {
        const limiter = yield* domainLimiter(1, "10 seconds")
        domains[`org-${name}`] = { limiter }
        providers.push(yield* provider(name, { domains: [`org-${name}`], limiter }))
      }
      const router = yield* Router.make({ name: "quota", affinity: {}, domains, providers })
      const home = yield* router.submit(whereItWent, { affinityKey: "k" })
      // The home's one request is spent: the next call goes elsewhere, now (the clock has not moved).
      const elsewhere = yield* router.submit(whereItWent, { affinityKey: "k" })
      expect(elsewhere).not.toBe(home)
      yield* TestClock.adjust("10 seconds")
      expect(yield* router.submit(whereItWent, { affinityKey: "k" })).toBe(home)
    })
  )

  it.scoped("a drained home gives its keys to the next on the ring; options are checked", () =>
    Effect.gen(function* () {
      const router = yield* makeRouter(names(5))
      const home = yield* router.submit(whereItWent, { affinityKey: "k" })
      yield* router.drain(home)
      const next = yield* router.submit(whereItWent, { affinityKey: "k" })
      expect(next).not.toBe(home)
      // Consistent: the key stays on its new home.
      expect(yield* homes(router, ["k", "k", "k"])).toEqual([next, next, next])
      const bad = yield* Effect.flip(Router.make({ name: "bad", affinity: { loadFactor: 1, virtualNodes: 0 } }))
      expect(bad.message).toContain('["affinity","virtualNodes"] Expected a whole number above zero')
      expect(bad.message).toContain('["affinity","loadFactor"] Expected a number above 1')
    })
  )
})
