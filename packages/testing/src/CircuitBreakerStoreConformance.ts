/**
 * The CircuitBreakerStore contract as a test suite that any store runs: the
 * memory store of `@sluice/core`, the Redis store of `@sluice/redis`.
 *
 * ```ts
 * import { CircuitBreakerStore } from "@sluice/core"
 * import * as CircuitBreakerStoreConformance from "@sluice/testing/CircuitBreakerStoreConformance"
 *
 * CircuitBreakerStoreConformance.suite("memory", { store: CircuitBreakerStore.makeMemory })
 * ```
 *
 * Each test builds a fresh store and talks to it through the
 * `CircuitBreakerStoreShape` interface only, every time passed explicitly as
 * `now` (the suite never reads a clock; a Redis store runs on the caller's
 * clock for it), and every argument and answer through `JSON` (so a store
 * that passes speaks plain values). It checks what `CircuitBreakerStore.ts`
 * promises: OPEN with its deadline, HALF_OPEN once it passed, deadlines that
 * only move later, generations that only go up, probe slots as leases
 * (granted up to `probes`, given back, freed when the lease ends), closing
 * after `probes` successes, a probe's verdict only in its own half-open,
 * ISOLATED holding, and a notice per change, none for a call that changed
 * nothing. Notices are awaited with a bounded timeout (live) or must already
 * be there (a synchronous store); "none" is proven by the next notice being
 * the next change, never by waiting. A `Resync` may come at any time and is
 * passed over.
 *
 * Not re-exported from `@sluice/testing`'s index (it imports `vitest`).
 *
 * @since 0.1.0
 */
import { describe, expect, it } from "@effect/vitest"
import type { CircuitBreaker, CircuitBreakerStore } from "@sluice/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

type Store = CircuitBreakerStore.CircuitBreakerStoreShape

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<E> {
  /** Builds a fresh, empty store; once per test. */
  readonly store: Effect.Effect<Store, E, Scope.Scope>
  /** Runs on the live Clock (a store whose client times out through it), awaiting notices up to 10 s. */
  readonly live?: boolean | undefined
}

const overJson = <A>(value: A, what: string): A => {
  const back = JSON.parse(JSON.stringify(value)) as A
  expect(back, `${what} is plain JSON`).toStrictEqual(value)
  return back
}

const wire =
  <I, A, E>(what: string, call: (input: I) => Effect.Effect<A, E>) =>
  (input: I): Effect.Effect<A, E> =>
    Effect.map(call(overJson(input, `${what}'s request`)), (answer) => overJson(answer, `the answer of ${what}`))

const overTheWire = (store: Store): Store => ({
  ...store,
  get: wire("get", store.get),
  open: wire("open", store.open),
  acquireProbe: wire("acquireProbe", store.acquireProbe),
  settleProbe: wire("settleProbe", store.settleProbe),
  isolate: wire("isolate", store.isolate),
  reset: wire("reset", store.reset)
})

const T0 = 1_000_000
const BREAKER = "conformance"

/**
 * A trip as a breaker records it.
 *
 * @since 0.1.0
 * @category constants
 */
export const TRIP: CircuitBreaker.Trip = {
  reason: "Tripped",
  at: T0,
  failure: "ServerError (Unavailable): 503",
  calls: 5,
  failures: 5,
  slowCalls: 0,
  failureRate: 1,
  slowCallRate: 0
}

const target = (now: number, key = "k") => ({ breaker: BREAKER, key, now })
const openAt = (now: number, openFor: number, generation: number | null = null, key = "k") => ({
  ...target(now, key),
  openFor,
  trip: { ...TRIP, at: now },
  generation
})
const probe = (now: number, holder: string, probes = 1, lease = 10_000) => ({
  ...target(now),
  holder,
  probes,
  lease
})
const settle = (now: number, holder: string, generation: number, outcome: "success" | "released", probes = 1) => ({
  ...target(now),
  holder,
  generation,
  outcome,
  probes
})

/**
 * Registers the conformance tests for one store under `describe(name)`.
 *
 * @since 0.1.0
 * @category running
 */
export const suite = <E>(name: string, options: Options<E>): void => {
  const setup = Effect.map(options.store, overTheWire)
  const test = options.live === true ? it.scopedLive : it.scoped
  /** The next notice: awaited (live, bounded) or already there (a synchronous store). */
  const anyNotice = (queue: Queue.Dequeue<CircuitBreakerStore.Notice>) =>
    options.live === true
      ? Effect.timeoutFail(Queue.take(queue), {
          duration: Duration.seconds(10),
          onTimeout: () => new Error("no notice within 10 s")
        })
      : Effect.flatMap(Queue.poll(queue), (notice) =>
          Option.isSome(notice) ? Effect.succeed(notice.value) : Effect.fail(new Error("no notice published"))
        )
  /** The next change; a `Resync` may come at any time (a subscription made or made again) and is passed over. */
  const nextNotice = (
    queue: Queue.Dequeue<CircuitBreakerStore.Notice>
  ): Effect.Effect<CircuitBreakerStore.Notice, Error> =>
    Effect.flatMap(anyNotice(queue), (notice) =>
      notice._tag === "Resync" ? nextNotice(queue) : Effect.succeed(notice)
    )

  describe(`CircuitBreakerStore conformance: ${name}`, () => {
    test("an unknown key is CLOSED, with no probes and no trip", () =>
      Effect.gen(function* () {
        const store = yield* setup
        const shared = yield* store.get(target(T0))
        expect(shared).toMatchObject({ state: "CLOSED", openRemaining: 0, probes: 0, successes: 0, trip: null })
      }))

    test("open: OPEN until now + openFor, with the trip, in a higher generation", () =>
      Effect.gen(function* () {
        const store = yield* setup
        const before = yield* store.get(target(T0))
        const opened = yield* store.open(openAt(T0, 5_000))
        expect(opened).toMatchObject({ state: "OPEN", openRemaining: 5_000, openedFor: 5_000, trip: { ...TRIP } })
        expect(opened.generation).toBeGreaterThan(before.generation)
        expect(yield* store.get(target(T0 + 1_000))).toMatchObject({ state: "OPEN", openRemaining: 4_000 })
      }))

    test("deadlines only move later: an earlier one keeps the later, a later one extends it", () =>
      Effect.gen(function* () {
        const store = yield* setup
        const first = yield* store.open(openAt(T0, 10_000))
        // Asked at T0 + 100 for 1 s: its deadline (T0 + 1,100) is earlier; the key stays open until T0 + 10,000.
        const shorter = yield* store.open(openAt(T0 + 100, 1_000))
        expect(shorter).toMatchObject({ state: "OPEN", openRemaining: 9_900, generation: first.generation })
        const longer = yield* store.open(openAt(T0 + 200, 20_000))
        expect(longer).toMatchObject({ state: "OPEN", openRemaining: 20_000, openedFor: 20_000 })
        expect(longer.generation).toBeGreaterThan(first.generation)
      }))

    test("OPEN past its deadline is HALF_OPEN, the trip kept", () =>
      Effect.gen(function* () {
        const store = yield* setup
        const opened = yield* store.open(openAt(T0, 5_000))
        expect(yield* store.get(target(T0 + 4_999))).toMatchObject({ state: "OPEN", openRemaining: 1 })
        const half = yield* store.get(target(T0 + 5_000))
        expect(half).toMatchObject({ state: "HALF_OPEN", openRemaining: 0, generation: opened.generation })
        expect(half.trip).toEqual(TRIP)
      }))

    test("no probe slot while CLOSED or OPEN", () =>
      Effect.gen(function* () {
        const store = yield* setup
        expect(yield* store.acquireProbe(probe(T0, "a"))).toMatchObject({ granted: false, shared: { state: "CLOSED" } })
        yield* store.open(openAt(T0, 5_000))
        expect(yield* store.acquireProbe(probe(T0 + 1, "a"))).toMatchObject({
          granted: false,
          shared: { state: "OPEN" }
        })
      }))

    test("half-open grants `probes` slots and refuses the next; a released slot is granted again", () =>
      Effect.gen(function* () {
        const store = yield* setup
        yield* store.open(openAt(T0, 1_000))
        const at = T0 + 1_000
        const a = yield* store.acquireProbe(probe(at, "a", 2))
        const b = yield* store.acquireProbe(probe(at, "b", 2))
        const c = yield* store.acquireProbe(probe(at, "c", 2))
        expect([a.granted, b.granted, c.granted]).toEqual([true, true, false])
        expect(c.shared).toMatchObject({ state: "HALF_OPEN", probes: 2 })
        const released = yield* store.settleProbe(settle(at + 1, "a", a.shared.generation, "released", 2))
        expect(released).toMatchObject({ state: "HALF_OPEN", probes: 1, successes: 0 })
        expect((yield* store.acquireProbe(probe(at + 2, "c", 2))).granted).toBe(true)
      }))

    test("a slot whose lease ended is free again (its holder went away)", () =>
      Effect.gen(function* () {
        const store = yield* setup
        yield* store.open(openAt(T0, 1_000))
        const at = T0 + 1_000
        expect((yield* store.acquireProbe(probe(at, "a", 1, 3_000))).granted).toBe(true)
        expect((yield* store.acquireProbe(probe(at + 2_999, "b"))).granted).toBe(false)
        const later = yield* store.acquireProbe(probe(at + 3_000, "b"))
        expect(later).toMatchObject({ granted: true, shared: { state: "HALF_OPEN", probes: 1 } })
      }))

    test("`probes` successes close it, in a higher generation; fewer do not", () =>
      Effect.gen(function* () {
        const store = yield* setup
        yield* store.open(openAt(T0, 1_000))
        const at = T0 + 1_000
        const a = yield* store.acquireProbe(probe(at, "a", 2))
        yield* store.acquireProbe(probe(at, "b", 2))
        const one = yield* store.settleProbe(settle(at + 10, "a", a.shared.generation, "success", 2))
        expect(one).toMatchObject({ state: "HALF_OPEN", successes: 1, probes: 1 })
        const two = yield* store.settleProbe(settle(at + 20, "b", a.shared.generation, "success", 2))
        expect(two).toMatchObject({ state: "CLOSED", trip: null, probes: 0 })
        expect(two.generation).toBeGreaterThan(a.shared.generation)
        expect((yield* store.get(target(at + 30))).state).toBe("CLOSED")
      }))

    test("a probe's verdict counts only in its own half-open", () =>
      Effect.gen(function* () {
        const store = yield* setup
        yield* store.open(openAt(T0, 1_000))
        const at = T0 + 1_000
        const a = yield* store.acquireProbe(probe(at, "a"))
        const halfOpen = a.shared.generation
        // A probe of this half-open fails: re-opened, for its open duration from now, in a new generation.
        const reopened = yield* store.open(openAt(at + 5, 2_000, halfOpen))
        expect(reopened).toMatchObject({ state: "OPEN", openRemaining: 2_000 })
        expect(reopened.generation).toBeGreaterThan(halfOpen)
        // A late verdict of the old half-open changes nothing: neither a failure nor a success.
        expect(yield* store.open(openAt(at + 3_005, 60_000, halfOpen))).toMatchObject({
          state: "HALF_OPEN",
          generation: reopened.generation
        })
        expect(yield* store.settleProbe(settle(at + 3_005, "a", halfOpen, "success"))).toMatchObject({
          state: "HALF_OPEN",
          generation: reopened.generation
        })
      }))

    test("a settle from a holder without a slot changes nothing", () =>
      Effect.gen(function* () {
        const store = yield* setup
        yield* store.open(openAt(T0, 1_000))
        const at = T0 + 1_000
        const a = yield* store.acquireProbe(probe(at, "a"))
        const stranger = yield* store.settleProbe(settle(at + 1, "z", a.shared.generation, "success"))
        expect(stranger).toMatchObject({ state: "HALF_OPEN", probes: 1, successes: 0 })
      }))

    test("ISOLATED holds against open and probes; reset closes it", () =>
      Effect.gen(function* () {
        const store = yield* setup
        yield* store.open(openAt(T0, 1_000))
        const isolated = yield* store.isolate(target(T0 + 1))
        expect(isolated).toMatchObject({ state: "ISOLATED", trip: null, openRemaining: 0 })
        expect(yield* store.open(openAt(T0 + 2, 5_000))).toMatchObject({ state: "ISOLATED" })
        expect((yield* store.acquireProbe(probe(T0 + 10_000, "a"))).granted).toBe(false)
        expect(yield* store.get(target(T0 + 60_000))).toMatchObject({ state: "ISOLATED" })
        const reset = yield* store.reset(target(T0 + 60_001))
        expect(reset.state).toBe("CLOSED")
        expect(reset.generation).toBeGreaterThan(isolated.generation)
      }))

    test("breakers and keys are separate", () =>
      Effect.gen(function* () {
        const store = yield* setup
        yield* store.open(openAt(T0, 1_000, null, "a"))
        expect((yield* store.get(target(T0, "b"))).state).toBe("CLOSED")
        expect((yield* store.get({ breaker: "another", key: "a", now: T0 })).state).toBe("CLOSED")
      }))

    test("every change is published with its state; a call that changed nothing publishes nothing", () =>
      Effect.gen(function* () {
        const raw = yield* options.store
        const notices = yield* raw.notices
        const store = overTheWire(raw)
        const opened = yield* store.open(openAt(T0, 5_000))
        const first = yield* nextNotice(notices)
        expect(first).toMatchObject({ _tag: "Change", breaker: BREAKER, key: "k", shared: { state: "OPEN" } })
        if (first._tag === "Change") {
          expect(first.shared.generation).toBe(opened.generation)
          // Remaining from the moment it was published: at most the open duration.
          expect(first.shared.openRemaining).toBeGreaterThan(0)
          expect(first.shared.openRemaining).toBeLessThanOrEqual(5_000)
          expect(first.shared.trip).toEqual(TRIP)
        }
        // These change nothing: an earlier deadline, a refused probe, a get.
        yield* store.open(openAt(T0 + 1, 1_000))
        yield* store.acquireProbe(probe(T0 + 2, "a"))
        yield* store.get(target(T0 + 3))
        // So the next notice is the next change.
        const isolated = yield* store.isolate(target(T0 + 4))
        const second = yield* nextNotice(notices)
        expect(second).toMatchObject({ _tag: "Change", shared: { state: "ISOLATED", generation: isolated.generation } })
        yield* store.reset(target(T0 + 5))
        expect(yield* nextNotice(notices)).toMatchObject({ _tag: "Change", shared: { state: "CLOSED" } })
      }))
  })
}
