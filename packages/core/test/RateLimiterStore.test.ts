/**
 * The memory store's own behaviour: its sweeper (interval, scope, `sweep`)
 * and idle-key eviction as a limiter sees it. The store contract itself
 * (every operation, through the interface, over JSON) is the conformance
 * suite in `@sluice/testing` (`RateLimiterStoreConformance`), which runs
 * against the memory store in `packages/testing/test`.
 */
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

describe("RateLimiterStore (memory)", () => {
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
