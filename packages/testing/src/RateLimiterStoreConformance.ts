/**
 * The RateLimiterStore contract as a test suite that any store runs: the
 * memory store in this repository, the Redis store in `@sluice/redis`.
 *
 * ```ts
 * // a test file of the store's package
 * import { RateLimiterStore } from "@sluice/core"
 * import * as RateLimiterStoreConformance from "@sluice/testing/RateLimiterStoreConformance"
 *
 * RateLimiterStoreConformance.suite("memory", { store: RateLimiterStore.makeMemory() })
 * ```
 *
 * `suite` registers `@effect/vitest` tests (so it is called at the top level
 * of a test file, and `vitest` and `@effect/vitest` are the caller's dev
 * dependencies). Each test builds a fresh store, talks to it through the
 * `RateLimiterStoreShape` interface only, with buckets, costs and receipts
 * written out by hand and every time passed explicitly as `now` (the suite
 * never reads a clock), and checks what `RateLimiterStore.ts` promises:
 * all-or-nothing `reserve` over several buckets, `notBefore` dating and the
 * schedule's `chargeAt`, `charge`, `refund` (never more than has not refilled,
 * and the sliding log shrinks with it), `began` by admission number, `sync`,
 * `block`, `inspect`, `size`, and what eviction may and may not drop.
 *
 * Every argument reaches the store, and every answer reaches the test, through
 * `JSON.stringify` and `JSON.parse`, and must come back strictly equal: so a
 * store that passes speaks only in plain values (no `undefined` in arrays, no
 * infinities, no objects whose identity matters), and can be a network store.
 *
 * This module is not re-exported from `@sluice/testing`'s index: it imports
 * `vitest`, which must not load where the index does (the CLI's demo, the
 * benchmark bundle). Import it from `@sluice/testing/RateLimiterStoreConformance`.
 *
 * @since 0.1.0
 */
import { describe, expect, it } from "@effect/vitest"
import { RateLimiterStore } from "@sluice/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"

type Store = RateLimiterStore.RateLimiterStoreShape

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<S extends Store, E> {
  /** Builds a fresh, empty store; once per test. A scoped Effect, or a Layer that provides the store's Tag. */
  readonly store: Effect.Effect<S, E, Scope.Scope> | Layer.Layer<RateLimiterStore.RateLimiterStore, E>
  /**
   * Evicts every key that is idle at `now`, as the store would by itself
   * (the memory store: move its Clock to `now` and `sweep`). Without it the
   * eviction tests are not registered (a store whose keys expire on a
   * server's clock cannot be told to), and the rest still run.
   */
  readonly evictIdle?: ((store: S, now: number) => Effect.Effect<unknown, E>) | undefined
  /**
   * Runs the tests on the live Clock rather than the TestClock, for a store
   * whose client sleeps or times out through the Clock (a TestClock never
   * moves by itself). The suite passes every time explicitly either way.
   */
  readonly live?: boolean | undefined
}

// ---- the wire: every value the store sees or answers goes through JSON ------

/** `value` after a trip through JSON, which must give back exactly `value`. */
const overJson = <A>(value: A, what: string): A => {
  if (value === undefined) return value
  const back = JSON.parse(JSON.stringify(value)) as A
  expect(back, `${what} is plain JSON`).toStrictEqual(value)
  return back
}

const answered = <A, E>(operation: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.map(effect, (answer) => overJson(answer, `the answer of ${operation}`))

/** `store`, with every argument and answer passed through JSON. */
const overTheWire = (store: Store): Store => ({
  reserve: (request) => answered("reserve", store.reserve(overJson(request, "reserve's request"))),
  charge: (key, buckets, amounts, now) =>
    answered(
      "charge",
      store.charge(key, overJson(buckets, "charge's buckets"), overJson(amounts, "charge's amounts"), now)
    ),
  refund: (key, buckets, amounts, receipts, now) =>
    answered(
      "refund",
      store.refund(
        key,
        overJson(buckets, "refund's buckets"),
        overJson(amounts, "refund's amounts"),
        overJson(receipts, "refund's receipts"),
        now
      )
    ),
  began: (key, buckets, receipts, now) =>
    answered(
      "began",
      store.began(key, overJson(buckets, "began's buckets"), overJson(receipts, "began's receipts"), now)
    ),
  sync: (key, bucket, remaining, resetAfter, now) =>
    answered("sync", store.sync(key, overJson(bucket, "sync's bucket"), remaining, resetAfter, now)),
  block: (key, buckets, until, now) =>
    answered("block", store.block(key, overJson(buckets, "block's buckets"), until, now)),
  inspect: (key, buckets, now) => answered("inspect", store.inspect(key, overJson(buckets, "inspect's buckets"), now)),
  size: answered("size", store.size)
})

// ---- the buckets and helpers the tests share -----------------------------------

/**
 * The buckets the suite uses, for a store's own tests beside it: 10 per second, burst 10 (100 ms per unit).
 *
 * @since 0.1.0
 * @category constants
 */
export const REQUESTS: RateLimiterStore.BucketSpec = {
  name: "requests",
  capacity: 10,
  emission: 100,
  interval: 1000,
  windowMargin: 1,
  windowLimit: 19
}
/**
 * 1,000 per second: 1 ms per unit.
 *
 * @since 0.1.0
 * @category constants
 */
export const TOKENS: RateLimiterStore.BucketSpec = {
  name: "tokens",
  capacity: 1000,
  emission: 1,
  interval: 1000,
  windowMargin: 1,
  windowLimit: 1999
}
/** 100 per minute: 600 ms per unit. */
const DAILY: RateLimiterStore.BucketSpec = {
  name: "daily",
  capacity: 100,
  emission: 600,
  interval: 60_000,
  windowMargin: 1,
  windowLimit: 199
}
const BOTH = [REQUESTS, TOKENS]

/** 10 per second, burst 1, no margin: at most 10 admissions in any 1 s of real time. */
const ONE: RateLimiterStore.BucketSpec = {
  name: "one",
  capacity: 1,
  emission: 100,
  interval: 1000,
  windowMargin: 0,
  windowLimit: 10
}

const request = (
  key: string,
  costs: ReadonlyArray<number>,
  now: number,
  mode: RateLimiterStore.ReserveMode
): RateLimiterStore.ReserveRequest => ({ key, buckets: BOTH, costs, now, notBefore: now, mode })

/** Units available per bucket of BOTH, by name. */
const snapshot = (store: Store, key: string, now: number) =>
  Effect.map(store.inspect(key, BOTH, now), (buckets) => Object.fromEntries(buckets.map((b) => [b.name, b.available])))

/** Ten admissions of ONE on schedule (0, 100, ... 900 ms); their receipts. */
const tenAdmissions = (store: Store) =>
  Effect.forEach(
    Array.from({ length: 10 }, (_, k) => k * 100),
    (now) =>
      Effect.map(
        store.reserve({ key: "k", buckets: [ONE], costs: [1], now, notBefore: now, mode: "ifDue" }),
        (result) => result.receipts!
      )
  )

/** When an eleventh admission of ONE, asked for at 950 ms, is due. */
const eleventhDue = (store: Store) =>
  Effect.map(
    store.reserve({ key: "k", buckets: [ONE], costs: [1], now: 950, notBefore: 950, mode: "peek" }),
    (result) => result.at
  )

/**
 * Registers the conformance tests for one store under `describe(name)`.
 *
 * @since 0.1.0
 * @category running
 */
export const suite = <S extends Store, E>(name: string, options: Options<S, E>): void => {
  const { store: build } = options
  // A Layer provides the Tag's shape: `S` is then that shape (`evictIdle` gets what the Layer built).
  const raw = (
    Layer.isLayer(build) ? Effect.map(Layer.build(build), Context.get(RateLimiterStore.RateLimiterStore)) : build
  ) as Effect.Effect<S, E, Scope.Scope>
  /** The store under test, over the wire, and its eviction (if it can be told to evict). */
  const setup = Effect.map(raw, (store) => ({
    store: overTheWire(store),
    evictIdle: (now: number) => (options.evictIdle === undefined ? Effect.void : options.evictIdle(store, now))
  }))
  const test = options.live === true ? it.scopedLive : it.scoped

  describe(`RateLimiterStore conformance: ${name}`, () => {
    describe("reserve", () => {
      test("ifDue charges every bucket at once when all of them hold their cost now", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const first = yield* store.reserve(request("k", [1, 900], 0, "ifDue"))
          expect(first).toMatchObject({ at: 0, charged: true })
          expect(first.receipts).toHaveLength(2)
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 9, tokens: 100 })
        }))

      test("ifDue charges nothing when one bucket is short, and answers when all of them will hold it", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          yield* store.reserve(request("k", [1, 900], 0, "ifDue"))
          const short = yield* store.reserve(request("k", [1, 300], 0, "ifDue"))
          // 100 tokens left: 200 more refill in 200 ms. The requests bucket is not charged either.
          expect(short).toEqual({ at: 200, charged: false })
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 9, tokens: 100 })
          const later = yield* store.reserve(request("k", [1, 300], 200, "ifDue"))
          expect(later).toMatchObject({ at: 200, charged: true })
          // At 200 ms: the first request has refilled, the second was charged at 200 ms.
          expect(yield* snapshot(store, "k", 200)).toEqual({ requests: 9, tokens: 0 })
        }))

      test("all or nothing over three buckets: one blocked bucket holds back the other two", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const three = [REQUESTS, TOKENS, DAILY]
          yield* store.sync("k", DAILY, 0, 3000, 0)
          const held = yield* store.reserve({
            key: "k",
            buckets: three,
            costs: [1, 10, 1],
            now: 0,
            notBefore: 0,
            mode: "ifDue"
          })
          // Synced to nothing left: blocked until 3 s, and refilled one unit by 600 ms (due at the later).
          expect(held).toEqual({ at: 3000, charged: false })
          expect((yield* store.inspect("k", three, 0)).map((b) => b.available)).toEqual([10, 1000, 0])
          const paid = yield* store.reserve({
            key: "k",
            buckets: three,
            costs: [1, 10, 1],
            now: 3000,
            notBefore: 3000,
            mode: "ifDue"
          })
          expect(paid).toMatchObject({ at: 3000, charged: true })
          expect((yield* store.inspect("k", three, 3000)).map((b) => b.available)).toEqual([9, 990, 4])
        }))

      test("peek never charges", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          expect(yield* store.reserve(request("k", [1, 600], 0, "peek"))).toEqual({ at: 0, charged: false })
          expect(yield* store.reserve(request("k", [1, 600], 0, "ifDue"))).toMatchObject({ at: 0, charged: true })
          expect(yield* store.reserve(request("k", [1, 600], 50, "peek"))).toEqual({ at: 200, charged: false })
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 9, tokens: 400 })
        }))

      test("a charge is dated at notBefore when the buckets were ready by then (a late timer keeps its refill)", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
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
        }))

      test("held back only by the sliding log, a charge is dated by the schedule (chargeAt)", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const reserve = (now: number, notBefore: number, mode: RateLimiterStore.ReserveMode) =>
            store.reserve({ key: "k", buckets: [ONE], costs: [1], now, notBefore, mode })
          // The first admission is late: made at 50 ms, dated at 0 (when it was due). Nine more on time.
          expect(yield* reserve(50, 0, "ifDue")).toMatchObject({ at: 0, charged: true })
          for (let now = 100; now <= 900; now += 100) {
            expect(yield* reserve(now, now, "ifDue")).toMatchObject({ at: now, charged: true })
          }
          // The eleventh waits in real time until the first has left the window (50 + 1,000 ms), but is
          // dated a window after the first's date: the schedule goes on as if it had been on time.
          expect(yield* reserve(950, 950, "peek")).toEqual({ at: 1050, chargeAt: 1000, charged: false })
          expect(yield* reserve(1050, 1000, "ifDue")).toMatchObject({ at: 1000, charged: true })
        }))

      test("a zero cost neither charges nor delays its bucket, and has no receipt (null)", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const tokensOnly = yield* store.reserve(request("k", [0, 1000], 0, "ifDue"))
          expect(tokensOnly.receipts![0]).toBeNull()
          expect(tokensOnly.receipts![1]).not.toBeNull()
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 0 })
          expect(yield* store.reserve(request("k", [1, 0], 0, "ifDue"))).toMatchObject({ at: 0, charged: true })
        }))
    })

    describe("charge and refund", () => {
      test("refund gives back at most the charge behind the receipt; charge runs into debt", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const { receipts } = yield* store.reserve(request("k", [4, 500], 0, "ifDue"))
          expect(yield* store.refund("k", BOTH, [2, 200], receipts!, 0)).toEqual([2, 200])
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 8, tokens: 700 })
          // Only what is left of that charge (2 and 300) can come back, however much is asked.
          expect(yield* store.refund("k", BOTH, [50, 5000], receipts!, 0)).toEqual([2, 300])
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 1000 })
          yield* store.charge("k", BOTH, [15, 1500], 0)
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: -5, tokens: -500 })
          expect(yield* snapshot(store, "k", 1500)).toEqual({ requests: 10, tokens: 1000 })
        }))

      test("a refund after the charge has refilled gives back only the unrefilled part", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const { receipts } = yield* store.reserve(request("k", [4, 500], 2000, "ifDue"))
          // At 2,400 ms the 4 requests have refilled (100 ms each); 100 of the 500 tokens have not.
          expect(yield* store.refund("k", BOTH, [4, 500], receipts!, 2400)).toEqual([0, 100])
          expect(yield* snapshot(store, "k", 2400)).toEqual({ requests: 10, tokens: 1000 })
        }))

      test("a refund takes the unused part out of the sliding window too", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          /** 5 per second, burst 5, no margin: at most 9 units in any 1 s. */
          const five: RateLimiterStore.BucketSpec = {
            name: "five",
            capacity: 5,
            emission: 200,
            interval: 1000,
            windowMargin: 0,
            windowLimit: 9
          }
          const reserve = (cost: number, now: number, mode: RateLimiterStore.ReserveMode) =>
            store.reserve({ key: "k", buckets: [five], costs: [cost], now, notBefore: now, mode })
          const { receipts } = yield* reserve(5, 0, "ifDue")
          expect(yield* store.refund("k", [five], [5], receipts!, 0)).toEqual([5])
          expect(yield* reserve(5, 0, "ifDue")).toMatchObject({ at: 0, charged: true })
          // 4 units refilled by 800 ms, and the window holds 5 + 4 = 9: the refunded 5 no longer count.
          expect(yield* reserve(4, 800, "peek")).toEqual({ at: 800, charged: false })
        }))

      test("a missing (null) receipt gives back nothing", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          yield* store.reserve(request("k", [4, 500], 0, "ifDue"))
          expect(yield* store.refund("k", BOTH, [4, 500], [null, null], 0)).toEqual([0, 0])
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 6, tokens: 500 })
        }))
    })

    describe("began", () => {
      test("counts an admission in the sliding log from the start it reports, found by its number", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const receipts = yield* tenAdmissions(store)
          expect(receipts.map((receipt) => receipt[0]!.admission)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
          expect(yield* eleventhDue(store)).toBe(1000)
          // The first admission's work began at 50 ms: the 11th waits until that start has left the window.
          yield* store.began("k", [ONE], receipts[0]!, 50)
          expect(yield* eleventhDue(store)).toBe(1050)
          // A report earlier than what the log holds moves nothing back.
          yield* store.began("k", [ONE], receipts[0]!, 20)
          expect(yield* eleventhDue(store)).toBe(1050)
        }))

      test("never moves an admission past the one after it (the log stays in order)", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const receipts = yield* tenAdmissions(store)
          yield* store.began("k", [ONE], receipts[0]!, 450)
          // Held at the second admission's time (100 ms), not 450 ms.
          expect(yield* eleventhDue(store)).toBe(1100)
        }))

      test("a receipt written out by hand finds its admission; a null one, or one of another generation, nothing", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const receipts = yield* tenAdmissions(store)
          const first = receipts[0]![0]!
          yield* store.began("k", [ONE], [null], 50)
          yield* store.began("k", [ONE], [{ ...first, generation: first.generation + 0.5 }], 50)
          expect(yield* eleventhDue(store)).toBe(1000)
          const byHand: RateLimiterStore.Receipt = {
            paidUntil: first.paidUntil,
            credited: first.credited,
            generation: first.generation,
            admission: 1
          }
          yield* store.began("k", [ONE], [byHand], 50)
          expect(yield* eleventhDue(store)).toBe(1050)
        }))
    })

    describe("sync, block, inspect, size", () => {
      test("sync lowers to remaining, never raises, and blocks until resetAfter when exhausted", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          yield* store.sync("k", TOKENS, 250, undefined, 0)
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 250 })
          yield* store.sync("k", TOKENS, 900, undefined, 0)
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 250 })
          yield* store.sync("k", REQUESTS, 0, 30_000, 0)
          const buckets = yield* store.inspect("k", BOTH, 0)
          expect(buckets.map((b) => b.blockedUntil)).toEqual([30_000, 0])
          const blocked = yield* store.reserve(request("k", [1, 1], 0, "ifDue"))
          expect(blocked).toEqual({ at: 30_000, charged: false })
        }))

      test("sync with nothing remaining after admissions of its own blocks until the oldest leaves the window", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          // ONE: 10 a second, one at a time; admitted at 0, 100, ..., 900 ms. The server, full, says its window
          // is empty a second after the last (1,900 ms); room comes back when the first leaves, at 1,000 ms.
          for (let at = 0; at < 1000; at += 100) {
            const admitted = yield* store.reserve({
              key: "k",
              buckets: [ONE],
              costs: [1],
              now: at,
              notBefore: at,
              mode: "ifDue"
            })
            expect(admitted.charged).toBe(true)
          }
          yield* store.sync("k", ONE, 0, 1000, 900)
          expect((yield* store.inspect("k", [ONE], 900)).map((b) => b.blockedUntil)).toEqual([1000])
          // With nothing in its log (the server counted others' requests), the reset.
          yield* store.sync("other", ONE, 0, 1000, 900)
          expect((yield* store.inspect("other", [ONE], 900)).map((b) => b.blockedUntil)).toEqual([1900])
        }))

      test("block holds every bucket of the key until the given time, and never shortens a block", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          yield* store.block("k", BOTH, 2000, 0)
          yield* store.block("k", BOTH, 1000, 0)
          expect((yield* store.inspect("k", BOTH, 0)).map((b) => b.blockedUntil)).toEqual([2000, 2000])
          expect(yield* store.reserve(request("k", [1, 1], 0, "ifDue"))).toEqual({ at: 2000, charged: false })
          expect(yield* store.reserve(request("k", [1, 1], 2000, "ifDue"))).toMatchObject({ at: 2000, charged: true })
          expect(yield* store.reserve(request("other", [1, 1], 0, "ifDue"))).toMatchObject({ at: 0, charged: true })
        }))

      test("inspect of an unknown key reports full buckets and creates no state", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          expect(yield* store.inspect("nobody", BOTH, 0)).toEqual([
            { name: "requests", capacity: 10, available: 10, blockedUntil: 0 },
            { name: "tokens", capacity: 1000, available: 1000, blockedUntil: 0 }
          ])
          expect(yield* store.size).toBe(0)
        }))

      test("size counts the keys that hold state", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          expect(yield* store.size).toBe(0)
          yield* store.reserve(request("a", [1, 1], 0, "ifDue"))
          yield* store.charge("b", BOTH, [1, 1], 0)
          yield* store.block("c", BOTH, 1000, 0)
          yield* store.inspect("d", BOTH, 0)
          expect(yield* store.size).toBe(3)
        }))
    })

    // Only for a store that can be told to evict (a server that expires keys on its own clock cannot).
    if (options.evictIdle !== undefined) {
      describe("eviction", () => {
        test("drops idle keys; keeps a key in debt, blocked, or with admissions in its window", () =>
          Effect.gen(function* () {
            const { store, evictIdle } = yield* setup
            yield* store.reserve(request("idle", [1, 1], 0, "ifDue"))
            yield* store.charge("debt", BOTH, [15, 0], 0)
            yield* store.block("blocked", BOTH, 5000, 0)
            yield* store.reserve(request("logged", [1, 1], 900, "ifDue"))
            // A peek leaves nothing to keep.
            yield* store.reserve(request("peeked", [1, 1], 0, "peek"))
            // At 1,100 ms: "idle" refilled at 100 ms and its admission left the window (1 s + 1 ms) at 1,001.
            yield* evictIdle(1100)
            expect(yield* store.size).toBe(3)
            expect(yield* snapshot(store, "debt", 1100)).toEqual({ requests: 6, tokens: 1000 })
            expect((yield* store.inspect("blocked", BOTH, 1100)).map((b) => b.blockedUntil)).toEqual([5000, 5000])
            // Debt paid at 1,500 ms, "logged" out of its window at 1,901, the block over at 5,000.
            yield* evictIdle(4999)
            expect(yield* store.size).toBe(1)
            yield* evictIdle(5000)
            expect(yield* store.size).toBe(0)
          }))

        test("a receipt from before the key was evicted gives back nothing", () =>
          Effect.gen(function* () {
            const { store, evictIdle } = yield* setup
            const { receipts } = yield* store.reserve(request("k", [4, 500], 0, "ifDue"))
            yield* evictIdle(0)
            expect(yield* store.size).toBe(1)
            // Refilled at 500 ms; idle once its admissions have left the sliding window (1 s + its 1 ms margin).
            yield* evictIdle(1001)
            expect(yield* store.size).toBe(0)
            yield* store.reserve(request("k", [10, 1000], 1001, "ifDue"))
            expect(yield* store.refund("k", BOTH, [4, 500], receipts!, 1001)).toEqual([0, 0])
            expect(yield* snapshot(store, "k", 1001)).toEqual({ requests: 0, tokens: 0 })
          }))
      })
    }

    describe("plain values", () => {
      test("receipts are plain finite numbers; answers and arguments survive JSON (as every test checks)", () =>
        Effect.gen(function* () {
          const { store } = yield* setup
          const { receipts } = yield* store.reserve(request("k", [1, 10], 0, "ifDue"))
          for (const receipt of receipts!) {
            expect(Object.keys(receipt!).sort()).toEqual(["admission", "credited", "generation", "paidUntil"])
            for (const value of Object.values(receipt!)) expect(Number.isFinite(value)).toBe(true)
          }
          const text = JSON.stringify(receipts)
          expect(yield* store.refund("k", BOTH, [1, 10], JSON.parse(text), 0)).toEqual([1, 10])
          expect(yield* snapshot(store, "k", 0)).toEqual({ requests: 10, tokens: 1000 })
        }))
    })
  })
}
