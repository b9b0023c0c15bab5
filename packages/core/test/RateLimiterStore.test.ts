import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { available, makeLimiterOn } from "./utils/limiterHelpers.js"

const TEN_PER_SECOND = { requests: { limit: 10, interval: "1 second" } } as const

/** 10 per second, burst 10: 100 ms per unit. */
const REQUESTS: RateLimiterStore.BucketSpec = {
  name: "requests",
  capacity: 10,
  emission: 100,
  interval: 1000,
  windowMargin: 1,
  windowLimit: 19
}
/** 1,000 per second: 1 ms per unit. */
const TOKENS: RateLimiterStore.BucketSpec = {
  name: "tokens",
  capacity: 1000,
  emission: 1,
  interval: 1000,
  windowMargin: 1,
  windowLimit: 1999
}
const BOTH = [REQUESTS, TOKENS]

const request = (
  key: string,
  costs: ReadonlyArray<number>,
  now: number,
  mode: RateLimiterStore.ReserveMode
): RateLimiterStore.ReserveRequest => ({ key, buckets: BOTH, costs, now, notBefore: now, mode })

const snapshot = (store: RateLimiterStore.RateLimiterStoreShape, key: string, now: number) =>
  Effect.map(store.inspect(key, BOTH, now), (buckets) => Object.fromEntries(buckets.map((b) => [b.name, b.available])))

describe("RateLimiterStore (memory)", () => {
  describe("reserve", () => {
    it.scoped("ifDue charges every bucket at once when all of them hold their cost now", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        const first = yield* store.reserve(request("k", [1, 900], 0, "ifDue"))
        expect(first).toMatchObject({ at: 0, charged: true })
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 9, tokens: 100 })
      })
    )

    it.scoped("ifDue charges nothing when one bucket is short, and answers when all of them will hold it", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        yield* store.reserve(request("k", [1, 900], 0, "ifDue"))
        const short = yield* store.reserve(request("k", [1, 300], 0, "ifDue"))
        // 100 tokens left: 200 more refill in 200 ms. The requests bucket is not charged either.
        expect(short).toEqual({ at: 200, charged: false })
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 9, tokens: 100 })
        const later = yield* store.reserve(request("k", [1, 300], 200, "ifDue"))
        expect(later).toMatchObject({ at: 200, charged: true })
        // At 200 ms: the first request has refilled, the second was charged at 200 ms.
        expect(yield* snapshot(store, "k", 200)).toEqual({ requests: 9, tokens: 0 })
      })
    )

    it.scoped("peek never charges", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        expect(yield* store.reserve(request("k", [1, 600], 0, "peek"))).toEqual({ at: 0, charged: false })
        expect(yield* store.reserve(request("k", [1, 600], 0, "ifDue"))).toMatchObject({ at: 0, charged: true })
        expect(yield* store.reserve(request("k", [1, 600], 50, "peek"))).toEqual({ at: 200, charged: false })
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 9, tokens: 400 })
      })
    )

    it.scoped(
      "a charge is dated at notBefore when the buckets were ready by then (a late timer keeps its refill)",
      () =>
        Effect.gen(function* () {
          const store = yield* RateLimiterStore.makeMemory()
          const one: RateLimiterStore.BucketSpec = {
            name: "one",
            capacity: 1,
            emission: 100,
            interval: 100,
            windowMargin: 1,
            windowLimit: 1
          }
          const reserve = (key: string, now: number, notBefore: number) =>
            store.reserve({ key, buckets: [one], costs: [1], now, notBefore, mode: "ifDue" })
          expect(yield* reserve("late", 0, 0)).toMatchObject({ at: 0, charged: true })
          expect(yield* reserve("prompt", 0, 0)).toMatchObject({ at: 0, charged: true })
          // Both were due again at 100 ms; "late" looks at 150 ms saying it was due at 100.
          expect(yield* reserve("late", 150, 100)).toMatchObject({ at: 100, charged: true })
          expect(yield* reserve("prompt", 150, 150)).toMatchObject({ at: 150, charged: true })
          const [late] = yield* store.inspect("late", [one], 150)
          const [prompt] = yield* store.inspect("prompt", [one], 150)
          expect(late!.available).toBe(0.5)
          expect(prompt!.available).toBe(0)
        })
    )

    it.scoped("a zero cost neither charges nor delays its bucket", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        yield* store.reserve(request("k", [0, 1000], 0, "ifDue"))
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 0 })
        expect(yield* store.reserve(request("k", [1, 0], 0, "ifDue"))).toMatchObject({ at: 0, charged: true })
      })
    )
  })

  describe("charge, refund, sync, block, inspect", () => {
    it.scoped("refund gives back at most the charge behind the receipt; charge runs into debt", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        const { receipts } = yield* store.reserve(request("k", [4, 500], 0, "ifDue"))
        expect(yield* store.refund("k", BOTH, [2, 200], receipts!, 0)).toEqual([2, 200])
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 8, tokens: 700 })
        // Only what is left of that charge (2 and 300) can come back, however much is asked.
        expect(yield* store.refund("k", BOTH, [50, 5000], receipts!, 0)).toEqual([2, 300])
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 1000 })
        yield* store.charge("k", BOTH, [15, 1500], 0)
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: -5, tokens: -500 })
        expect(yield* snapshot(store, "k", 1500)).toEqual({ requests: 10, tokens: 1000 })
      })
    )

    it.scoped("a refund after the charge has refilled gives back only the unrefilled part", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        const { receipts } = yield* store.reserve(request("k", [4, 500], 2000, "ifDue"))
        // At 2,400 ms the 4 requests have refilled (100 ms each); 100 of the 500 tokens have not.
        expect(yield* store.refund("k", BOTH, [4, 500], receipts!, 2400)).toEqual([0, 100])
        expect(yield* snapshot(store, "k", 2400)).toEqual({ requests: 10, tokens: 1000 })
      })
    )

    it.scoped("a receipt from before the key was evicted gives back nothing", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        const { receipts } = yield* store.reserve(request("k", [4, 500], 0, "ifDue"))
        expect(yield* store.sweep).toBe(0)
        // Refilled at 500 ms; idle once its admissions have left the sliding window (1 s + its 1 ms margin).
        yield* TestClock.adjust("1001 millis")
        expect(yield* store.sweep).toBe(1)
        yield* store.reserve(request("k", [10, 1000], 1001, "ifDue"))
        expect(yield* store.refund("k", BOTH, [4, 500], receipts!, 1001)).toEqual([0, 0])
        expect(yield* snapshot(store, "k", 1001)).toEqual({ requests: 0, tokens: 0 })
      })
    )

    it.scoped("sync lowers to remaining, never raises, and blocks until resetAfter when exhausted", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        yield* store.sync("k", TOKENS, 250, undefined, 0)
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 250 })
        yield* store.sync("k", TOKENS, 900, undefined, 0)
        expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 250 })
        yield* store.sync("k", REQUESTS, 0, 30_000, 0)
        const buckets = yield* store.inspect("k", BOTH, 0)
        expect(buckets.map((b) => b.blockedUntil)).toEqual([30_000, 0])
        const blocked = yield* store.reserve(request("k", [1, 1], 0, "ifDue"))
        expect(blocked).toEqual({ at: 30_000, charged: false })
      })
    )

    it.scoped("block holds every bucket of the key until the given time", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        yield* store.block("k", BOTH, 2000)
        yield* store.block("k", BOTH, 1000) // never shortens a block
        expect((yield* store.inspect("k", BOTH, 0)).map((b) => b.blockedUntil)).toEqual([2000, 2000])
        expect(yield* store.reserve(request("k", [1, 1], 0, "ifDue"))).toEqual({ at: 2000, charged: false })
        expect(yield* store.reserve(request("k", [1, 1], 2000, "ifDue"))).toMatchObject({ at: 2000, charged: true })
        expect(yield* store.reserve(request("other", [1, 1], 0, "ifDue"))).toMatchObject({ at: 0, charged: true })
      })
    )

    it.scoped("inspect of an unknown key reports full buckets and creates no state", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        expect(yield* store.inspect("nobody", BOTH, 0)).toEqual([
          { name: "requests", capacity: 10, available: 10, blockedUntil: 0 },
          { name: "tokens", capacity: 1000, available: 1000, blockedUntil: 0 }
        ])
        expect(yield* store.size).toBe(0)
      })
    )
  })

  describe("began", () => {
    /** 10 per second, burst 1, no margin: at most 10 admissions in any 1 s of real time. */
    const ONE: RateLimiterStore.BucketSpec = {
      name: "one",
      capacity: 1,
      emission: 100,
      interval: 1000,
      windowMargin: 0,
      windowLimit: 10
    }
    /** Ten admissions on schedule (0, 100, ... 900 ms); their receipts. */
    const tenAdmissions = (store: RateLimiterStore.RateLimiterStoreShape) =>
      Effect.forEach(
        Array.from({ length: 10 }, (_, k) => k * 100),
        (now) =>
          Effect.map(
            store.reserve({ key: "k", buckets: [ONE], costs: [1], now, notBefore: now, mode: "ifDue" }),
            (result) => result.receipts!
          )
      )
    const eleventhDue = (store: RateLimiterStore.RateLimiterStoreShape) =>
      Effect.map(
        store.reserve({ key: "k", buckets: [ONE], costs: [1], now: 950, notBefore: 950, mode: "peek" }),
        (result) => result.at
      )

    it.scoped("counts an admission in the sliding log from the start it reports", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        const receipts = yield* tenAdmissions(store)
        expect(yield* eleventhDue(store)).toBe(1000)
        // The first admission's work began at 50 ms: the 11th waits until that start has left the window.
        yield* store.began("k", [ONE], receipts[0]!, 50)
        expect(yield* eleventhDue(store)).toBe(1050)
        // A report earlier than what the log holds moves nothing back.
        yield* store.began("k", [ONE], receipts[0]!, 20)
        expect(yield* eleventhDue(store)).toBe(1050)
      })
    )

    it.scoped("never moves an admission past the one after it (the log stays in order)", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        const receipts = yield* tenAdmissions(store)
        yield* store.began("k", [ONE], receipts[0]!, 450)
        // Held at the second admission's time (100 ms), not 450 ms.
        expect(yield* eleventhDue(store)).toBe(1100)
      })
    )
  })

  describe("idle-key eviction", () => {
    it.scoped("after the sweep interval, a refilled key is gone; a key in debt or blocked is kept", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory({ sweepInterval: "10 seconds" })
        const limiter = yield* makeLimiterOn(store, { limits: TEN_PER_SECOND })
        yield* limiter.acquire(5, { key: "refilled" })
        yield* limiter.penalize("60 seconds", { key: "blocked" })
        const debt = yield* limiter.acquire(1, { key: "debt" })
        yield* limiter.reconcile(debt, 1000) // 999 units of debt: paid off at 100 s
        expect(yield* store.size).toBe(3)

        yield* TestClock.adjust("9999 millis")
        expect(yield* store.size).toBe(3) // no sweep yet
        yield* TestClock.adjust("1 millis")
        expect(yield* store.size).toBe(2)
        expect(yield* limiter.state({ key: "blocked" })).toEqual([
          { name: "requests", capacity: 10, available: 10, blockedUntil: 60_000 }
        ])
        expect((yield* available(limiter, { key: "debt" })).requests).toBe(-890)

        yield* TestClock.adjust("50 seconds") // the sweep at 60 s: the block ended at 60 s
        expect(yield* store.size).toBe(1)
        yield* TestClock.adjust("30 seconds") // 90 s: still in debt
        expect(yield* store.size).toBe(1)
        yield* TestClock.adjust("10 seconds") // 100 s: paid off
        expect(yield* store.size).toBe(0)
        // An evicted key is a fresh one.
        expect((yield* available(limiter, { key: "debt" })).requests).toBe(10)
        expect((yield* limiter.tryAcquire(10, { key: "debt" }))._tag).toBe("Admitted")
      })
    )

    it.scoped("a key whose waiter is due later is kept until what it paid has refilled", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory({ sweepInterval: "500 millis" })
        const limiter = yield* makeLimiterOn(store, { limits: { requests: { limit: 1, interval: "1 second" } } })
        yield* limiter.acquire()
        // Due at 1 s by refill; the sliding log (1 in any 1 s + the 5 ms margin) makes it 1,005 ms.
        const waiter = yield* Effect.fork(limiter.acquire())
        yield* TestClock.adjust("500 millis")
        expect(yield* store.size).toBe(1)
        yield* TestClock.adjust("505 millis")
        expect((yield* Fiber.join(waiter)).at).toBe(1005)
        // Refilled at 2,005 ms, out of the window at 2,010: the sweeps at 1.5 s and 2 s keep it.
        yield* TestClock.adjust("995 millis")
        expect(yield* store.size).toBe(1)
        yield* TestClock.adjust("500 millis")
        expect(yield* store.size).toBe(0)
      })
    )

    it.scoped("sweep evicts idle keys now and answers how many went", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        yield* store.reserve(request("a", [1, 1], 0, "ifDue"))
        yield* store.reserve(request("b", [10, 1000], 0, "ifDue"))
        // A peek leaves nothing to keep (the key may exist but is idle).
        yield* store.reserve(request("c", [1, 1], 0, "peek"))
        yield* TestClock.adjust("100 millis")
        // "c" only: "a" refilled at 100 ms, but its admission is in the sliding window until 1,001 ms.
        expect(yield* store.sweep).toBe(1)
        expect(yield* store.size).toBe(2)
        yield* TestClock.adjust("900 millis")
        expect(yield* store.sweep).toBe(0)
        yield* TestClock.adjust("1 millis")
        expect(yield* store.sweep).toBe(2)
        expect(yield* store.size).toBe(0)
      })
    )

    it.scoped("the default sweep interval is one minute", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory()
        yield* store.reserve(request("a", [1, 1], 0, "ifDue"))
        yield* TestClock.adjust("59999 millis")
        expect(yield* store.size).toBe(1)
        yield* TestClock.adjust("1 millis")
        expect(yield* store.size).toBe(0)
      })
    )

    it.effect("layerMemory sweeps on its interval too", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.RateLimiterStore
        const limiter = yield* RateLimiter.RateLimiter
        yield* limiter.acquire(1, { key: "a" })
        yield* limiter.acquire(1, { key: "b" })
        expect(yield* store.size).toBe(2)
        yield* TestClock.adjust("5 seconds")
        expect(yield* store.size).toBe(0)
      }).pipe(
        Effect.provide(
          RateLimiter.layer({ limits: TEN_PER_SECOND }).pipe(
            Layer.provideMerge(RateLimiterStore.layerMemory({ sweepInterval: "5 seconds" }))
          )
        )
      )
    )

    it.scoped("the sweeper stops with its scope", () =>
      Effect.gen(function* () {
        const store = yield* RateLimiterStore.makeMemory({ sweepInterval: "1 second" }).pipe(Effect.scoped)
        yield* store.reserve(request("a", [1, 1], 0, "ifDue"))
        yield* TestClock.adjust("5 seconds")
        expect(yield* store.size).toBe(1)
        expect(yield* store.sweep).toBe(1)
      })
    )
  })
})
