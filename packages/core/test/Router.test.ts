/**
 * The Router's selection under TestClock: the strategies' sequences, power
 * of two choices on exact in-flight counts, the latency EWMA, quota domains
 * (a 429 cools its whole domain and no other; a cooldown only moves later),
 * and admission-aware waiting: when no domain can admit now, the call waits
 * for the earliest admission, bounded by its deadline.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as TestClock from "effect/TestClock"
import * as Router from "../src/Router.js"
import { domainLimiter, fail, provider, twoOrgs, whereItWent } from "./utils/routerHelpers.js"

const sequence = (router: Router.RouterShape, calls: number) =>
  Effect.forEach(Array.from({ length: calls }), () => router.submit(whereItWent))

describe("Router strategies", () => {
  it.scoped("round robin takes each provider in turn", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "rr",
        strategy: "roundRobin",
        providers: [yield* provider("a"), yield* provider("b"), yield* provider("c")]
      })
      expect(yield* sequence(router, 7)).toEqual(["a", "b", "c", "a", "b", "c", "a"])
    })
  )

  it.scoped("smooth weighted round robin spreads the heavy provider out (5, 1, 1 → a a b a c a a)", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "swrr",
        strategy: "weightedRoundRobin",
        providers: [
          yield* provider("a", { weight: 5 }),
          yield* provider("b", { weight: 1 }),
          yield* provider("c", { weight: 1 })
        ]
      })
      const firstRound = yield* sequence(router, 7)
      expect(firstRound).toEqual(["a", "a", "b", "a", "c", "a", "a"])
      // The schedule repeats exactly every sum of weights.
      expect(yield* sequence(router, 7)).toEqual(firstRound)
    })
  )

  it.scoped("power of two choices sends every call to the less loaded provider", () =>
    Effect.gen(function* () {
      const router = yield* Router.make({
        name: "p2c",
        strategy: "leastOutstanding",
        providers: [yield* provider("a"), yield* provider("b")]
      })
      const latches = { a: yield* Deferred.make<void>(), b: yield* Deferred.make<void>() }
      const held = (route: Router.Route) =>
        Effect.as(Deferred.await(latches[route.provider as "a" | "b"]), route.provider)
      const inFlight = Effect.map(router.snapshot, (snapshot) =>
        Object.fromEntries(snapshot.providers.map((p) => [p.name, p.inFlight]))
      )
      const first = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.fork(router.submit(held)))
      yield* TestClock.adjust(0)
      // Each new call went to the one with fewer in flight: an even split.
      expect(yield* inFlight).toEqual({ a: 5, b: 5 })
      yield* Deferred.succeed(latches.a, undefined)
      yield* TestClock.adjust(0)
      expect(yield* inFlight).toEqual({ a: 0, b: 5 })
      latches.a = yield* Deferred.make<void>()
      yield* Effect.forEach(Array.from({ length: 5 }), () => Effect.fork(router.submit(held)))
      yield* TestClock.adjust(0)
      // All five went to the idle provider.
      expect(yield* inFlight).toEqual({ a: 5, b: 5 })
      yield* Deferred.succeed(latches.a, undefined)
      yield* Deferred.succeed(latches.b, undefined)
      const answers = yield* Effect.forEach(first, Fiber.join)
      expect(answers.filter((name) => name === "a")).toHaveLength(5)
      expect(yield* inFlight).toEqual({ a: 0, b: 0 })
    })
  )

  it.scoped("lowest latency follows the EWMA when a provider slows down", () =>
    Effect.gen(function* () {
      const latency: Record<string, number> = { a: 10, b: 50 }
      const router = yield* Router.make({
        name: "ewma",
        strategy: "lowestLatency",
        latencyWeight: 0.5,
        providers: [yield* provider("a"), yield* provider("b")]
      })
      const timed = (route: Router.Route) => Effect.as(Effect.sleep(latency[route.provider]!), route.provider)
      const one = Effect.gen(function* () {
        const fiber = yield* Effect.fork(router.submit(timed))
        yield* TestClock.adjust(1_000)
        return yield* Fiber.join(fiber)
      })
      const seen: Array<string> = []
      // Each is tried once (no sample yet comes first), then the faster one keeps the traffic.
      for (let i = 0; i < 5; i++) seen.push(yield* one)
      expect([...seen.slice(0, 2)].sort()).toEqual(["a", "b"])
      expect(seen.slice(2)).toEqual(["a", "a", "a"])
      const before = yield* router.snapshot
      expect(before.providers.find((p) => p.name === "a")!.latencyMillis).toBe(10)
      expect(before.providers.find((p) => p.name === "b")!.latencyMillis).toBe(50)
      // a slows down to 200 ms: one slow answer lifts its EWMA to 105 > 50, and b takes over.
      latency.a = 200
      expect(yield* one).toBe("a")
      const after = yield* router.snapshot
      expect(after.providers.find((p) => p.name === "a")!.latencyMillis).toBe(105)
      expect([yield* one, yield* one, yield* one]).toEqual(["b", "b", "b"])
    })
  )
})

describe("Router latency per output token", () => {
  it.scoped("with outputTokens the EWMA is per token: a long answer does not make a provider look slow", () =>
    Effect.gen(function* () {
      // a: 200 ms for 100 tokens (2 ms a token); b: 50 ms for 10 tokens (5 ms a token).
      const answers: Record<string, { readonly millis: number; readonly tokens: number }> = {
        a: { millis: 200, tokens: 100 },
        b: { millis: 50, tokens: 10 }
      }
      const router = yield* Router.make({
        name: "per-token",
        strategy: "lowestLatency",
        providers: [yield* provider("a"), yield* provider("b")]
      })
      const call = (route: Router.Route) =>
        Effect.as(Effect.sleep(answers[route.provider]!.millis), {
          provider: route.provider,
          tokens: answers[route.provider]!.tokens
        })
      const one = Effect.gen(function* () {
        const fiber = yield* Effect.fork(router.submit(call, { outputTokens: (answer) => answer.tokens }))
        yield* TestClock.adjust(1_000)
        return (yield* Fiber.join(fiber)).provider
      })
      const seen = [yield* one, yield* one, yield* one, yield* one]
      expect([...seen.slice(0, 2)].sort()).toEqual(["a", "b"])
      expect(seen.slice(2)).toEqual(["a", "a"])
      const snapshot = yield* router.snapshot
      expect(snapshot.providers.map((p) => [p.name, p.latencyMillis])).toEqual([
        ["a", 2],
        ["b", 5]
      ])
    })
  )
})

describe("Router metrics", () => {
  it.scoped("calls, in-flight and cooldowns are counted per provider and domain", () =>
    Effect.gen(function* () {
      const orgA = yield* domainLimiter(1_000, "1 second")
      const orgB = yield* domainLimiter(1_000, "1 second")
      const router = yield* Router.make({
        name: "metered",
        strategy: "roundRobin",
        domains: { orgA: { limiter: orgA }, orgB: { limiter: orgB } },
        providers: [
          yield* provider("a1", { domains: ["orgA"], limiter: orgA }),
          yield* provider("b1", { domains: ["orgB"], limiter: orgB })
        ]
      })
      let first = true
      const call = (route: Router.Route) =>
        Effect.suspend(() => {
          if (route.provider === "a1" && first) {
            first = false
            return fail("RateLimited", "a1", 1_000)
          }
          return whereItWent(route)
        })
      yield* router.submit(call) // a1: 429, then b1
      yield* router.submit(call) // orgA cools down: b1
      const labels = (provider: string, domain: string) => [
        MetricLabel.make("router", "metered"),
        MetricLabel.make("provider", provider),
        MetricLabel.make("domain", domain)
      ]
      const count = (provider: string, domain: string, outcome: string) =>
        Effect.map(
          Metric.value(
            Metric.taggedWithLabels(Router.metrics.calls, [
              ...labels(provider, domain),
              MetricLabel.make("outcome", outcome)
            ])
          ),
          (state) => state.count
        )
      expect(yield* count("a1", "orgA", "RateLimited")).toBe(1)
      expect(yield* count("b1", "orgB", "success")).toBe(2)
      const inFlight = yield* Metric.value(Metric.taggedWithLabels(Router.metrics.inFlight, labels("b1", "orgB")))
      expect(inFlight.value).toBe(0)
      const cooldowns = yield* Metric.value(
        Metric.taggedWithLabels(Router.metrics.domainCooldowns, [
          MetricLabel.make("router", "metered"),
          MetricLabel.make("domain", "orgA")
        ])
      )
      expect(cooldowns.count).toBe(1)
    })
  )
})

describe("Router quota domains", () => {
  it.scoped("a 429 on one member cools its whole domain and not the other; the retry goes to the other domain", () =>
    Effect.gen(function* () {
      const { router, orgA } = yield* twoOrgs("domains")
      const tried: Array<string> = []
      const call = (route: Router.Route) =>
        Effect.suspend(() => {
          tried.push(route.provider)
          return route.provider === "a1" && tried.length === 1 ? fail("RateLimited", "a1", 5_000) : whereItWent(route)
        })
      const events = yield* router.subscribe
      // a1's 429: the next hop skips a2 (same domain, next in turn) for b1.
      expect(yield* router.submit(call)).toBe("b1")
      expect(yield* events.take).toEqual({
        _tag: "DomainCooledDown",
        router: "domains",
        at: 0,
        domain: "orgA",
        provider: "a1",
        until: 5_000
      })
      expect(tried).toEqual(["a1", "b1"])
      const snapshot = yield* router.snapshot
      expect(snapshot.domains).toEqual([
        { name: "orgA", key: "orgA", cooldownUntil: 5_000 },
        { name: "orgB", key: "orgB", cooldownUntil: undefined }
      ])
      // The domain's limiter itself holds every member back for the Retry-After.
      const [bucket] = yield* orgA.state({ key: "orgA" })
      expect(bucket!.blockedUntil).toBe(5_000)
      // While orgA cools down, its members take nothing; orgB serves every call.
      expect(yield* sequence(router, 4)).toEqual(["b1", "b1", "b1", "b1"])
      // 429s feed the domain, never ejection.
      expect((yield* router.snapshot).providers.map((p) => p.state)).toEqual(["active", "active", "active"])
      yield* TestClock.adjust(5_000)
      expect(new Set(yield* sequence(router, 3))).toEqual(new Set(["a1", "a2", "b1"]))
    })
  )

  it.scoped("a cooldown only moves later: a shorter Retry-After after a longer one changes nothing", () =>
    Effect.gen(function* () {
      const { router, orgA } = yield* twoOrgs("later", { maxAttempts: 1 })
      const latch = yield* Deferred.make<void>()
      const call = (route: Router.Route) =>
        Effect.zipRight(
          Deferred.await(latch),
          route.provider === "a1" ? fail("RateLimited", "a1", 10_000) : fail("RateLimited", "a2", 2_000)
        )
      const first = yield* Effect.fork(router.submit(call))
      const second = yield* Effect.fork(router.submit(call))
      yield* TestClock.adjust(0)
      yield* Deferred.succeed(latch, undefined)
      yield* Fiber.await(first)
      yield* Fiber.await(second)
      const snapshot = yield* router.snapshot
      expect(snapshot.domains.find((d) => d.name === "orgA")!.cooldownUntil).toBe(10_000)
      const [bucket] = yield* orgA.state({ key: "orgA" })
      expect(bucket!.blockedUntil).toBe(10_000)
    })
  )

  it.scoped("when every domain is busy the call waits for the earliest admission, not failing", () =>
    Effect.gen(function* () {
      // slow: one request per 10 s; fast: one per 4 s; both spent by the first two calls.
      const slow = yield* domainLimiter(1, "10 seconds")
      const fast = yield* domainLimiter(1, "4 seconds")
      const router = yield* Router.make({
        name: "earliest",
        strategy: "roundRobin",
        domains: { slow: { limiter: slow }, fast: { limiter: fast } },
        providers: [
          yield* provider("s", { domains: ["slow"], limiter: slow }),
          yield* provider("f", { domains: ["fast"], limiter: fast })
        ]
      })
      const stamped = (route: Router.Route) =>
        Effect.map(Clock.currentTimeMillis, (at) => ({ provider: route.provider, at }))
      expect(
        new Set((yield* Effect.all([router.submit(stamped), router.submit(stamped)])).map((r) => r.provider))
      ).toEqual(new Set(["s", "f"]))
      const third = yield* Effect.fork(router.submit(stamped))
      yield* TestClock.adjust(3_999)
      expect((yield* Fiber.poll(third))._tag).toBe("None")
      yield* TestClock.adjust(1)
      expect(yield* Fiber.join(third)).toEqual({ provider: "f", at: 4_000 })
    })
  )

  it.scoped("a deadline before the earliest admission fails at once with NoAdmission", () =>
    Effect.gen(function* () {
      const only = yield* domainLimiter(1, "10 seconds")
      const router = yield* Router.make({
        name: "deadline",
        domains: { only: { limiter: only } },
        providers: [yield* provider("p", { domains: ["only"], limiter: only })]
      })
      yield* router.submit(whereItWent)
      const exit = yield* Effect.exit(router.submit(whereItWent, { deadline: "2 seconds" }))
      expect(exit).toEqual(
        Exit.fail(
          new Router.RouterError({
            router: "deadline",
            reason: "NoAdmission",
            earliestMillis: 10_000,
            deadlineMillis: 2_000
          })
        )
      )
      // Within the deadline it waits instead.
      const waiting = yield* Effect.fork(router.submit(whereItWent, { deadline: "30 seconds" }))
      yield* TestClock.adjust(10_000)
      expect(yield* Fiber.join(waiting)).toBe("p")
    })
  )

  it.scoped("bad options fail with an InvalidOptionsError naming the field", () =>
    Effect.gen(function* () {
      const executor = { name: "x" } as never
      const badWeight = yield* Effect.flip(
        Router.make({ name: "bad", providers: [{ name: "a", executor, weight: 0 }] })
      )
      expect(badWeight.message).toBe(
        'Router options are invalid: ["providers",0,"weight"] Expected a whole number above zero'
      )
      const badNames = yield* Effect.flip(
        Router.make({
          name: "bad",
          providers: [
            { name: "a", executor, domains: ["nowhere"] },
            { name: "a", executor }
          ]
        })
      )
      expect(badNames.message).toContain('["providers",0,"domains",0] Expected a domain declared in domains')
      expect(badNames.message).toContain('["providers",1,"name"] Expected a unique name; "a" is taken')
    })
  )
})
