import { describe, expect, it } from "@effect/vitest"
import type { RateLimiterStore } from "@sluice/core"
import * as RateLimiterStoreConformance from "@sluice/testing/RateLimiterStoreConformance"
import * as Effect from "effect/Effect"
import { admin, testStore } from "./utils/redis.js"
import { redisServer } from "./utils/redisServer.js"

const { REQUESTS, TOKENS } = RateLimiterStoreConformance

/** REQUESTS with room in its sliding window: only the bucket (and the holds) decide. */
const LOOSE: RateLimiterStore.BucketSpec = { ...REQUESTS, name: "loose", windowMargin: 0, windowLimit: 100 }

const reserve = (
  store: RateLimiterStore.RateLimiterStoreShape,
  key: string,
  buckets: ReadonlyArray<RateLimiterStore.BucketSpec>,
  costs: ReadonlyArray<number>,
  now: number,
  mode: RateLimiterStore.ReserveMode = "ifDue"
) => store.reserve({ key, buckets, costs, now, notBefore: now, mode })

/** 100 per second, burst 100, no margin: only the sliding log's count decides past 100 in a window. */
const LOOSE_100: RateLimiterStore.BucketSpec = {
  name: "loose100",
  capacity: 100,
  emission: 10,
  interval: 1000,
  windowMargin: 0,
  windowLimit: 100
}

/** Polls `check` every 20 ms until it holds; fails after `timeoutMillis` (a generous bound, not a measurement). */
const eventually = <A>(what: string, check: Effect.Effect<A>, holds: (a: A) => boolean, timeoutMillis = 20_000) =>
  Effect.gen(function* () {
    const start = performance.now()
    for (;;) {
      const value = yield* check
      if (holds(value)) return value
      if (performance.now() - start > timeoutMillis) return yield* Effect.dieMessage(`timed out waiting until ${what}`)
      yield* Effect.sleep("20 millis")
    }
  })

describe("RedisStore", () => {
  describe("server time", () => {
    it.scopedLive("processes whose clocks are ten minutes apart share one bucket, each seeing its own clock", () =>
      Effect.gen(function* () {
        const { store: early, prefix } = yield* testStore()
        const { store: late } = yield* testStore({ prefix })
        const lateNow = 10 * 60_000
        // `early` lives at t = 0 and empties the bucket; `late`, ten minutes ahead, finds it empty.
        expect(yield* reserve(early, "k", [REQUESTS], [10], 0)).toMatchObject({ at: 0, charged: true })
        const seen = yield* reserve(late, "k", [REQUESTS], [1], lateNow)
        expect(seen.charged).toBe(false)
        // Due 100 ms after the charge, less the real time that passed since: on late's own clock.
        expect(seen.at - lateNow).toBeGreaterThan(0)
        expect(seen.at - lateNow).toBeLessThanOrEqual(100)
        // Blocks are shifted in and out too: a block set on early's clock ends at the same instant on late's.
        yield* early.block("k", [REQUESTS], 5000, 0)
        const [bucket] = yield* late.inspect("k", [REQUESTS], lateNow)
        expect(bucket!.blockedUntil - lateNow).toBeGreaterThan(4000)
        expect(bucket!.blockedUntil - lateNow).toBeLessThanOrEqual(5000)
      })
    )
  })

  describe("keys", () => {
    it.scopedLive("a call's state lives in one hash under the key's hash tag, which expires once idle again", () =>
      Effect.gen(function* () {
        const { store, prefix } = yield* testStore({ expiryMargin: 0 }, undefined, { deadline: "5 seconds" })
        const redis = yield* admin()
        yield* reserve(store, "user {7}:a", [REQUESTS, TOKENS], [1, 500], 0)
        const keys = yield* Effect.promise(() => redis.keys(`${prefix}*`))
        expect(keys).toEqual([`${prefix}{user%20%7B7%7D%3Aa}`])
        expect((yield* Effect.promise(() => redis.hkeys(keys[0]!))).sort()).toEqual([":exp", "requests", "tokens"])
        const ttl = yield* Effect.promise(() => redis.pttl(keys[0]!))
        // Idle once the admission has left the sliding window (1 s + 1 ms): never more, never forever.
        expect(ttl).toBeGreaterThan(0)
        expect(ttl).toBeLessThanOrEqual(1001)
        yield* eventually(
          "the idle key's state expires",
          Effect.promise(() => redis.keys(`${prefix}*`)),
          (left) => left.length === 0
        )
        expect(yield* store.size).toBe(0)
      })
    )

    it.scopedLive("a long sliding log spills into a list of chunks that expires with its bucket", () =>
      Effect.gen(function* () {
        const { store, prefix } = yield* testStore({ time: "caller", expiryMargin: 0 }, undefined, {
          deadline: "5 seconds"
        })
        const redis = yield* admin()
        // 100 admissions in one window: more than the hash keeps (two chunks of 16), so chunks go to the list.
        for (let i = 0; i < 100; i++) yield* reserve(store, "k", [LOOSE_100], [1], i)
        const list = `${prefix}{k}:loose100`
        expect(yield* Effect.promise(() => redis.llen(list))).toBeGreaterThan(0)
        const listTtl = yield* Effect.promise(() => redis.pttl(list))
        expect(listTtl).toBeGreaterThan(0)
        expect(listTtl).toBeLessThanOrEqual(1100)
        // The log still counts all 100: the 101st is refused until the first leaves the window (1 s after it).
        expect(yield* reserve(store, "k", [LOOSE_100], [1], 100)).toEqual({ at: 1000, charged: false })
        yield* eventually(
          "the idle key's list and hash expire",
          Effect.promise(() => redis.keys(`${prefix}*`)),
          (left) => left.length === 0
        )
      })
    )
  })

  describe("round trips", () => {
    it.scopedLive("one round trip per operation, whatever the number of limits", () =>
      Effect.gen(function* () {
        const { store } = yield* testStore({ time: "caller" })
        const before = (yield* store.snapshot).roundTrips
        yield* reserve(store, "k", [REQUESTS, TOKENS], [1, 10], 0)
        yield* reserve(store, "k", [REQUESTS, TOKENS], [9, 990], 0)
        yield* reserve(store, "k", [REQUESTS, TOKENS], [1, 1], 0)
        expect((yield* store.snapshot).roundTrips - before).toBe(3)
      })
    )

    it.scopedLive("a key known blocked until a time costs no round trip until then", () =>
      Effect.gen(function* () {
        const { store, prefix } = yield* testStore({ time: "caller" })
        yield* store.block("penalized", [REQUESTS, TOKENS], 30_000, 0)
        const before = yield* store.snapshot
        expect(yield* reserve(store, "penalized", [REQUESTS, TOKENS], [1, 1], 10)).toEqual({
          at: 30_000,
          charged: false
        })
        expect(yield* reserve(store, "penalized", [REQUESTS, TOKENS], [1, 1], 20_000)).toEqual({
          at: 30_000,
          charged: false
        })
        const after = yield* store.snapshot
        expect(after.roundTrips).toBe(before.roundTrips)
        expect(after.answeredLocally - before.answeredLocally).toBe(2)
        // A block another process set is learned from the first answer, then known.
        const { store: other } = yield* testStore({ time: "caller", prefix })
        expect(yield* reserve(other, "penalized", [REQUESTS], [1], 0)).toEqual({ at: 30_000, charged: false })
        const learned = (yield* other.snapshot).roundTrips
        expect(yield* reserve(other, "penalized", [REQUESTS], [1], 5)).toEqual({ at: 30_000, charged: false })
        expect((yield* other.snapshot).roundTrips).toBe(learned)
        // Once it ends, the store asks Redis again.
        expect(yield* reserve(other, "penalized", [REQUESTS], [1], 30_000)).toMatchObject({ charged: true })
        expect((yield* other.snapshot).roundTrips).toBe(learned + 1)
      })
    )
  })

  describe("scripts by SHA", () => {
    // On a redis-server of its own: a SCRIPT FLUSH on the shared one would flush the scripts of every other
    // suite running against it (a second test run at the same time).
    it.scopedLive("after SCRIPT FLUSH (a restart, a failover) the store sends the script again and goes on", () =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const { store } = yield* testStore({ time: "caller" }, server.url)
        expect(yield* reserve(store, "k", [REQUESTS], [1], 0)).toMatchObject({ charged: true })
        yield* server.command("SCRIPT", "FLUSH")
        expect(yield* reserve(store, "k", [REQUESTS], [1], 0)).toMatchObject({ charged: true })
        expect(yield* reserve(store, "k", [REQUESTS], [1], 0)).toMatchObject({ charged: true })
        expect((yield* store.inspect("k", [REQUESTS], 0))[0]!.available).toBe(7)
        expect((yield* store.snapshot).backend).toBe("redis")
      })
    )
  })

  describe("fairness across processes", () => {
    it.scopedLive("a large cost waiting in one process is not starved by small ones from another", () =>
      Effect.gen(function* () {
        const { store: small, prefix } = yield* testStore({ time: "caller" })
        const { store: large } = yield* testStore({ time: "caller", prefix })
        expect(yield* reserve(small, "k", [LOOSE], [9], 0)).toMatchObject({ charged: true })
        // The large cost needs all 10: due once 9 have refilled, at 900 ms. It leaves a hold.
        expect(yield* reserve(large, "k", [LOOSE], [10], 0)).toEqual({ at: 900, charged: false })
        // The one unit left is not handed to the other process: it queues behind the hold.
        expect(yield* reserve(small, "k", [LOOSE], [1], 0)).toEqual({ at: 1000, charged: false })
        expect(yield* reserve(small, "k", [LOOSE], [1], 500)).toEqual({ at: 1000, charged: false })
        expect(yield* reserve(large, "k", [LOOSE], [10], 900)).toMatchObject({ at: 900, charged: true })
        expect(yield* reserve(small, "k", [LOOSE], [1], 1000)).toMatchObject({ at: 1000, charged: true })
      })
    )

    it.scopedLive("without fairness the small ones take the refill first (what the holds prevent)", () =>
      Effect.gen(function* () {
        const { store: small, prefix } = yield* testStore({ time: "caller", fairness: false })
        const { store: large } = yield* testStore({ time: "caller", prefix, fairness: false })
        yield* reserve(small, "k", [LOOSE], [9], 0)
        expect(yield* reserve(large, "k", [LOOSE], [10], 0)).toEqual({ at: 900, charged: false })
        expect(yield* reserve(small, "k", [LOOSE], [1], 0)).toMatchObject({ charged: true })
        expect(yield* reserve(large, "k", [LOOSE], [10], 900)).toEqual({ at: 1000, charged: false })
      })
    )

    it.scopedLive("a hold whose holder never comes back is dropped after holdGrace", () =>
      Effect.gen(function* () {
        const { store: small, prefix } = yield* testStore({ time: "caller", holdGrace: 100 })
        const { store: large } = yield* testStore({ time: "caller", prefix, holdGrace: 100 })
        yield* reserve(small, "k", [LOOSE], [9], 0)
        yield* reserve(large, "k", [LOOSE], [10], 0)
        // Held until 900 + 100 ms; at 1,000 ms the holder has not come: the hold no longer counts.
        expect(yield* reserve(small, "k", [LOOSE], [1], 999)).toEqual({ at: 1000, charged: false })
        expect(yield* reserve(small, "k", [LOOSE], [10], 1000)).toMatchObject({ at: 1000, charged: true })
      })
    )
  })
})
