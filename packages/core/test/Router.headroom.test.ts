/**
 * The `headroom` strategy under TestClock: power of two choices on the share
 * of quota left in each provider's domains. Nothing refills (the clock stands
 * still), so every call's charge moves the headroom the next pick sees.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import type * as RateLimiter from "../src/RateLimiter.js"
import * as Router from "../src/Router.js"
import { domainLimiter, provider, whereItWent } from "./utils/routerHelpers.js"

/** Providers `p0…` each in a domain of its own (`d0…`, `capacity` requests a minute); `spent[i]` already taken. */
const providersWithQuota = (spent: ReadonlyArray<number>, capacity: number) =>
  Effect.gen(function* () {
    const domains: Record<string, Router.DomainOptions> = {}
    const providers: Array<Router.ProviderOptions> = []
    const limiters: Array<RateLimiter.RateLimiterShape> = []
    for (let i = 0; i < spent.length; i++) {
      const limiter = yield* domainLimiter(capacity, "1 minute")
      if (spent[i]! > 0) yield* limiter.acquire(spent[i]!, { key: `d${i}` })
      domains[`d${i}`] = { limiter }
      providers.push(yield* provider(`p${i}`, { domains: [`d${i}`], limiter }))
      limiters.push(limiter)
    }
    return { domains, providers, limiters }
  })

const count = (names: ReadonlyArray<string>) => {
  const counts: Record<string, number> = {}
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1
  return counts
}

describe("Router headroom strategy", () => {
  it.scoped("prefers the provider with more quota left, then alternates once the two are level", () =>
    Effect.gen(function* () {
      // p0 has 10 of 100 left, p1 all 100.
      const { domains, providers } = yield* providersWithQuota([90, 0], 100)
      const router = yield* Router.make({ name: "headroom", strategy: "headroom", domains, providers })
      const calls = (n: number) => Effect.forEach(Array.from({ length: n }), () => router.submit(whereItWent))
      // Each call takes one from p1's domain: p1 keeps more left for 90 calls.
      expect(count(yield* calls(90))).toEqual({ p1: 90 })
      // Level at 10 each: whichever takes one has less, so the next goes to the other.
      const level = yield* calls(10)
      expect(count(level)).toEqual({ p0: 5, p1: 5 })
      for (let i = 0; i < level.length; i += 2) expect(level[i]).not.toBe(level[i + 1])
    })
  )

  it.scoped(
    "among many providers two choices send most calls to those with more left, and reads stay two per pick",
    () =>
      Effect.gen(function* () {
        // Half of 16 providers have 20 % left, half all of it; 1,000 a minute each, so 400 calls barely move them.
        const spent = Array.from({ length: 16 }, (_, i) => (i < 8 ? 800 : 0))
        const { domains, limiters, providers } = yield* providersWithQuota(spent, 1_000)
        let reads = 0
        const counted = Object.fromEntries(
          Object.keys(domains).map((name, i) => [
            name,
            {
              limiter: {
                ...limiters[i]!,
                state: (options?: RateLimiter.KeyOptions) => {
                  reads++
                  return limiters[i]!.state(options)
                }
              }
            }
          ])
        )
        const router = yield* Router.make({ name: "many", strategy: "headroom", domains: counted, providers })
        const names = yield* Effect.forEach(Array.from({ length: 400 }), () => router.submit(whereItWent)).pipe(
          Effect.withRandom(Random.make("headroom"))
        )
        const toFull = names.filter((name) => Number(name.slice(1)) >= 8).length
        // A low provider wins only when both drawn are low: 8/16 × 7/15 ≈ 23 % of picks.
        expect(toFull / names.length).toBeGreaterThan(0.68)
        expect(toFull / names.length).toBeLessThan(0.86)
        expect(reads).toBe(2 * names.length)
      })
  )

  it.scoped("a provider in no quota domain counts as full", () =>
    Effect.gen(function* () {
      const { domains, providers } = yield* providersWithQuota([1], 100)
      const router = yield* Router.make({
        name: "own-quota",
        strategy: "headroom",
        domains,
        providers: [...providers, yield* provider("free")]
      })
      expect(count(yield* Effect.forEach(Array.from({ length: 5 }), () => router.submit(whereItWent)))).toEqual({
        free: 5
      })
    })
  )
})
