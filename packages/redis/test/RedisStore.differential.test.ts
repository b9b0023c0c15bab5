import { describe, expect, it } from "@effect/vitest"
import { RateLimiterStore } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { makeRaw } from "../src/internal/redisStore.js"
import * as RedisClient from "../src/RedisClient.js"
import { redisUrl, testStore } from "./utils/redis.js"

/**
 * The Redis store's script is a port of the memory store's arithmetic: over long random sequences of every operation,
 * with sliding logs far longer than the part the hash keeps (so entries go to the chunk list and come back,
 * refunds and `began` reach entries in every part), both must answer exactly alike. Generations are the only
 * numbers that may differ (each store numbers its buckets' lives its own way), so they are compared by the
 * order in which they first appear. The script is called as the store calls it, without what the store adds
 * around it (blocks it knows answered without a round trip, the outage policy).
 */

type Bucket = RateLimiterStore.BucketSpec
type Receipt = RateLimiterStore.Receipt

/** 50 per second, burst 50, window margin 5 ms: up to 99 admissions in a window's log. */
const FAST: Bucket = { name: "fast", capacity: 50, emission: 20, interval: 1000, windowMargin: 5, windowLimit: 99 }
/** Tokens beside it: 3,000 per second. */
const WIDE: Bucket = {
  name: "wide",
  capacity: 3000,
  emission: 1 / 3,
  interval: 1000,
  windowMargin: 5,
  windowLimit: 5999
}
const BUCKETS = [FAST, WIDE]

/** A seeded generator (a linear congruential one): the same sequence on every run. */
const random = (seed: number) => {
  let state = seed >>> 0
  return (below: number): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state % below
  }
}

/**
 * Generations replaced by the order of their first appearance, per bucket (Redis numbers a life by its
 * time, which the buckets of one call share; the memory store by a counter); -0 is 0, as JSON has it.
 */
const normalizer = () => {
  const seen = BUCKETS.map(() => new Map<number, number>())
  const plain = (value: unknown, bucket: number): unknown => {
    if (Array.isArray(value))
      return value.map((item, index) => plain(item, value.length === BUCKETS.length ? index : bucket))
    if (value !== null && typeof value === "object") {
      const out: Record<string, unknown> = {}
      for (const [key, field] of Object.entries(value)) {
        if (key === "generation" && typeof field === "number") {
          const lives = seen[bucket]!
          if (!lives.has(field)) lives.set(field, lives.size)
          out[key] = `life ${lives.get(field)}`
        } else out[key] = plain(field, bucket)
      }
      return out
    }
    return typeof value === "number" ? value + 0 : value
  }
  return (value: unknown) => plain(value, 0)
}

const sequence = (seed: number, operations: number) =>
  Effect.gen(function* () {
    const { prefix } = yield* testStore()
    const client = yield* Effect.orDie(RedisClient.make({ url: Redacted.make(redisUrl), deadline: "5 seconds" }))
    const raw = makeRaw(client.redis, {
      prefix,
      time: "caller",
      expiryMargin: 3_600_000,
      holdGrace: 1000,
      fairness: true,
      holder: "differential"
    })
    // The raw calls fail with the store's plain Failure, not a RateLimiterStoreError: any failure fails the test.
    const redis = {
      ...raw,
      reserve: (request: RateLimiterStore.ReserveRequest) => Effect.map(raw.reserve(request), ({ result }) => result),
      sync: (...args: Parameters<typeof raw.sync>) => Effect.asVoid(raw.sync(...args))
    } as unknown as RateLimiterStore.RateLimiterStoreShape
    const memory = yield* RateLimiterStore.makeMemory({ sweepInterval: "1 hour" })
    const normalizeRedis = normalizer()
    const normalizeMemory = normalizer()
    const next = random(seed)
    const receipts: { redis: Array<ReadonlyArray<Receipt | null>>; memory: Array<ReadonlyArray<Receipt | null>> } = {
      redis: [],
      memory: []
    }
    let now = 0
    const both = <A>(what: string, run: (store: RateLimiterStore.RateLimiterStoreShape) => Effect.Effect<A, unknown>) =>
      Effect.gen(function* () {
        const fromRedis = yield* run(redis)
        const fromMemory = yield* run(memory)
        expect(normalizeRedis(fromRedis), `${what} at ${now} (seed ${seed})`).toEqual(normalizeMemory(fromMemory))
        return { fromRedis, fromMemory }
      })
    for (let step = 0; step < operations; step++) {
      now += next(4) === 0 ? next(400) : next(25)
      const key = `k${next(2)}`
      const kind = next(20)
      const pick = () => next(receipts.redis.length)
      if (kind < 12) {
        const costs = [next(3), next(4) === 0 ? 0 : next(150)]
        const notBefore = now - next(40)
        const mode = kind === 11 ? "peek" : "ifDue"
        const { fromRedis, fromMemory } = yield* both(`reserve ${costs} ${mode}`, (store) =>
          store.reserve({ key, buckets: BUCKETS, costs, now, notBefore, mode })
        )
        if (fromRedis.charged && fromMemory.charged) {
          receipts.redis.push(fromRedis.receipts!)
          receipts.memory.push(fromMemory.receipts!)
        }
      } else if (kind < 15 && receipts.redis.length > 0) {
        const at = pick()
        const amounts = [next(3), next(200)]
        yield* both(`refund ${amounts} of #${at}`, (store) =>
          store.refund(key, BUCKETS, amounts, (store === redis ? receipts.redis : receipts.memory)[at]!, now)
        )
      } else if (kind < 18 && receipts.redis.length > 0) {
        const at = pick()
        yield* both(`began #${at}`, (store) =>
          store.began(key, BUCKETS, (store === redis ? receipts.redis : receipts.memory)[at]!, now)
        )
      } else if (kind === 18) {
        const amounts = [next(2), next(100)]
        yield* both(`charge ${amounts}`, (store) => store.charge(key, BUCKETS, amounts, now))
      } else if (next(3) === 0) {
        const remaining = next(5) - 2
        const resetAfter = next(2) === 0 ? undefined : 500
        yield* both(`sync ${remaining} ${resetAfter}`, (store) => store.sync(key, FAST, remaining, resetAfter, now))
      } else {
        const until = now + next(300)
        yield* both(`block until ${until}`, (store) => store.block(key, BUCKETS, until, now))
      }
      if (step % 25 === 0) yield* both("inspect", (store) => store.inspect(key, BUCKETS, now))
    }
  })

describe("RedisStore beside the memory store", () => {
  for (const seed of [1, 2, 3, 4]) {
    it.scopedLive(`answers exactly as the memory store over 500 random operations (seed ${seed})`, () =>
      sequence(seed, 500)
    )
  }
})
