/**
 * Breakers of one name sharing their transitions through a CircuitBreakerStore
 * (the memory store: two breakers in one test stand for two processes), under
 * TestClock. A notice reaches the other breaker through its notice fiber; the
 * tests wait for it on that breaker's transitions, never by sleeping.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as CircuitBreakerStore from "../src/CircuitBreakerStore.js"
import * as Executor from "../src/Executor.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"

const boom = Effect.fail("boom" as const)
const ok = Effect.succeed("ok" as const)

const options = (store: CircuitBreakerStore.CircuitBreakerStoreShape): CircuitBreaker.Options => ({
  name: "shared",
  policy: { kind: "consecutive", failures: 2 },
  openDuration: "10 seconds",
  store
})

/**
 * Two breakers ("processes") of one name on one store, each with its transitions subscribed and
 * the default key in use (a breaker follows the notices of the keys it holds).
 */
const twoBreakers = (store: CircuitBreakerStore.CircuitBreakerStoreShape) =>
  Effect.gen(function* () {
    const a = yield* CircuitBreaker.make(options(store))
    const b = yield* CircuitBreaker.make(options(store))
    yield* a.state()
    yield* b.state()
    return { a, b, aSeen: yield* a.subscribe, bSeen: yield* b.subscribe }
  })

const trip = (breaker: CircuitBreaker.CircuitBreakerShape) =>
  Effect.zipRight(Effect.exit(breaker.protect(boom)), Effect.exit(breaker.protect(boom)))

/** A store whose calls fail while `down` is set (a Redis outage), the memory store otherwise. */
const flakyStore = Effect.gen(function* () {
  const memory = yield* CircuitBreakerStore.makeMemory
  const down = yield* Ref.make(false)
  const calls = yield* Ref.make(0)
  const guard = <A>(operation: string, call: Effect.Effect<A, CircuitBreakerStore.CircuitBreakerStoreError>) =>
    Effect.zipRight(
      Ref.update(calls, (n) => n + 1),
      Effect.flatMap(Ref.get(down), (isDown) =>
        isDown
          ? Effect.fail(
              new CircuitBreakerStore.CircuitBreakerStoreError({ reason: "Unavailable", operation, detail: "down" })
            )
          : call
      )
    )
  const store: CircuitBreakerStore.CircuitBreakerStoreShape = {
    ...memory,
    get: (target) => guard("get", memory.get(target)),
    open: (request) => guard("open", memory.open(request)),
    acquireProbe: (request) => guard("acquireProbe", memory.acquireProbe(request)),
    settleProbe: (request) => guard("settleProbe", memory.settleProbe(request)),
    isolate: (target) => guard("isolate", memory.isolate(target)),
    reset: (target) => guard("reset", memory.reset(target))
  }
  return { store, memory, down, calls }
})

describe("CircuitBreaker with a shared store", () => {
  it.scoped("one breaker trips: the other is OPEN (a shared transition) with the same deadline", () =>
    Effect.gen(function* () {
      const store = yield* CircuitBreakerStore.makeMemory
      const { a, b, bSeen } = yield* twoBreakers(store)
      yield* trip(a)
      const learned = yield* Queue.take(bSeen)
      expect(learned).toMatchObject({ from: "CLOSED", to: "OPEN", reason: "Tripped", shared: true })
      expect(learned.trip).toMatchObject({ reason: "Tripped", failures: 2, failure: "boom" })
      const refused = yield* Effect.flip(b.protect(ok))
      expect(refused).toMatchObject({ state: "OPEN", retryAfterMillis: 10_000 })
      yield* TestClock.adjust("9999 millis")
      expect(yield* b.state()).toBe("OPEN")
      yield* TestClock.adjust("1 millis")
      expect(yield* b.state()).toBe("HALF_OPEN")
    })
  )

  it.scoped("a breaker that first uses a key after another opened it reads it from the store", () =>
    Effect.gen(function* () {
      const store = yield* CircuitBreakerStore.makeMemory
      const a = yield* CircuitBreaker.make(options(store))
      yield* trip(a)
      yield* TestClock.adjust("3 seconds")
      const late = yield* CircuitBreaker.make(options(store))
      expect(yield* Effect.flip(late.protect(ok))).toMatchObject({ state: "OPEN", retryAfterMillis: 7_000 })
      // `check` (the Executor's look before admission) refuses too, on a fresh key of a third breaker.
      const third = yield* CircuitBreaker.make(options(store))
      expect(yield* Effect.flip(third.check())).toMatchObject({ state: "OPEN" })
    })
  )

  it.scoped("deadlines only move later: a shorter open elsewhere keeps the deadline, a longer one extends it", () =>
    Effect.gen(function* () {
      const store = yield* CircuitBreakerStore.makeMemory
      const { a, b, bSeen } = yield* twoBreakers(store)
      yield* trip(a)
      yield* Queue.take(bSeen)
      yield* TestClock.adjust("5 seconds")
      const trip1 = (yield* b.inspect()).trip!
      // Another process opens it for 1 s (its deadline 6 s: earlier): nothing moves.
      yield* store.open({
        breaker: "shared",
        key: "default",
        now: 5_000,
        openFor: 1_000,
        trip: trip1,
        generation: null
      })
      // ... then for 20 s (deadline 25 s): both breakers extend, without a new transition (their notice
      // fibers run while the clock moves).
      yield* store.open({
        breaker: "shared",
        key: "default",
        now: 5_000,
        openFor: 20_000,
        trip: trip1,
        generation: null
      })
      yield* TestClock.adjust("5 seconds")
      expect(yield* b.inspect()).toMatchObject({ state: "OPEN", retryAfterMillis: 15_000 })
      expect(yield* a.inspect()).toMatchObject({ state: "OPEN", retryAfterMillis: 15_000 })
      expect(Option.isNone(yield* Queue.poll(bSeen))).toBe(true)
    })
  )

  it.scoped("half-open lets one probe through across breakers; an interrupted probe gives its slot back", () =>
    Effect.gen(function* () {
      const store = yield* CircuitBreakerStore.makeMemory
      const { a, b, bSeen } = yield* twoBreakers(store)
      yield* trip(a)
      yield* Queue.take(bSeen)
      yield* TestClock.adjust("10 seconds")
      const started = yield* Deferred.make<void>()
      const probe = yield* Effect.fork(a.protect(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
      yield* Deferred.await(started)
      // B's own slots are free, but the store's one slot is A's.
      expect(yield* Effect.flip(b.protect(ok))).toMatchObject({ state: "HALF_OPEN", reason: "HalfOpenFull" })
      expect(yield* store.get({ breaker: "shared", key: "default", now: 10_000 })).toMatchObject({ probes: 1 })
      yield* Fiber.interrupt(probe)
      expect(yield* store.get({ breaker: "shared", key: "default", now: 10_000 })).toMatchObject({ probes: 0 })
      // B's probe now goes, succeeds, and closes it for both.
      expect(yield* b.protect(ok)).toBe("ok")
      expect(yield* b.state()).toBe("CLOSED")
      expect(yield* Queue.take(yield* a.subscribe)).toMatchObject({ to: "CLOSED", shared: true })
      expect(yield* a.state()).toBe("CLOSED")
    })
  )

  it.scoped("a probe that fails re-opens it for every breaker", () =>
    Effect.gen(function* () {
      const store = yield* CircuitBreakerStore.makeMemory
      const { a, b, aSeen, bSeen } = yield* twoBreakers(store)
      yield* trip(a)
      yield* Queue.take(bSeen)
      yield* TestClock.adjust("10 seconds")
      expect(yield* a.state()).toBe("HALF_OPEN")
      yield* Queue.takeAll(aSeen)
      yield* Effect.exit(b.protect(boom))
      expect(yield* b.inspect()).toMatchObject({ state: "OPEN", retryAfterMillis: 10_000 })
      expect(yield* Queue.take(aSeen)).toMatchObject({ from: "HALF_OPEN", to: "OPEN", shared: true })
      expect(yield* a.inspect()).toMatchObject({ state: "OPEN", retryAfterMillis: 10_000 })
      expect((yield* a.inspect()).trip).toMatchObject({ reason: "ProbeFailed" })
    })
  )

  it.scoped("isolate in one isolates the other; reset in the other closes both", () =>
    Effect.gen(function* () {
      const store = yield* CircuitBreakerStore.makeMemory
      const { a, b, aSeen, bSeen } = yield* twoBreakers(store)
      yield* a.isolate()
      expect(yield* Queue.take(bSeen)).toMatchObject({ to: "ISOLATED", shared: true })
      expect(yield* Effect.flip(b.protect(ok))).toMatchObject({ state: "ISOLATED" })
      yield* Queue.takeAll(aSeen)
      yield* b.reset()
      expect(yield* Queue.take(aSeen)).toMatchObject({ from: "ISOLATED", to: "CLOSED", reason: "Reset", shared: true })
      expect(yield* a.protect(ok)).toBe("ok")
    })
  )

  it.scoped("the store not answering: the breaker decides alone, then follows the store again", () =>
    Effect.gen(function* () {
      const { store, down } = yield* flakyStore
      const { a, b } = yield* twoBreakers(store)
      yield* Ref.set(down, true)
      // A trips while the store is down: A is OPEN on its own, B never hears of it.
      yield* trip(a)
      expect(yield* a.state()).toBe("OPEN")
      expect(yield* b.protect(ok)).toBe("ok")
      yield* Ref.set(down, false)
      // The store answers again. A's local open lasts its time; then its probe asks the store, which says
      // CLOSED (nobody opened it there): A follows the store and lets the call through.
      yield* TestClock.adjust("9 seconds")
      expect(yield* a.state()).toBe("OPEN")
      yield* TestClock.adjust("1 second")
      expect(yield* a.protect(ok)).toBe("ok")
      expect(yield* a.state()).toBe("CLOSED")
      // Shared again: A trips, B learns it.
      const bSeen = yield* b.subscribe
      yield* trip(a)
      expect(yield* Queue.take(bSeen)).toMatchObject({ to: "OPEN", shared: true })
    })
  )

  it.scoped("a probe slot taken with the store down is local; every call still ends (nothing waits on the store)", () =>
    Effect.gen(function* () {
      const { store, down, calls } = yield* flakyStore
      const { a } = yield* twoBreakers(store)
      yield* trip(a)
      yield* TestClock.adjust("10 seconds")
      yield* Ref.set(down, true)
      const before = yield* Ref.get(calls)
      const exit = yield* Effect.exit(a.protect(ok))
      expect(exit).toEqual(Exit.succeed("ok"))
      expect(yield* Ref.get(calls)).toBeGreaterThan(before)
      expect(yield* a.state()).toBe("CLOSED")
    })
  )

  it.scoped("after a lost subscription (Resync) a breaker reads its keys again and catches up", () =>
    Effect.gen(function* () {
      const memory = yield* CircuitBreakerStore.makeMemory
      // A's store: the memory store, whose notices A stops hearing while `deaf` (a dropped subscription).
      const deaf = yield* Ref.make(false)
      const heard = yield* PubSub.unbounded<CircuitBreakerStore.Notice>()
      const source = yield* memory.notices
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.flatMap(Queue.take(source), (notice) =>
            Effect.flatMap(Ref.get(deaf), (isDeaf) => (isDeaf ? Effect.void : PubSub.publish(heard, notice)))
          )
        )
      )
      const a = yield* CircuitBreaker.make(options({ ...memory, notices: PubSub.subscribe(heard) }))
      const b = yield* CircuitBreaker.make(options(memory))
      yield* a.state()
      yield* b.state()
      const aSeen = yield* a.subscribe
      yield* Ref.set(deaf, true)
      yield* trip(b)
      yield* TestClock.adjust("1 second")
      expect(yield* a.state()).toBe("CLOSED")
      // The subscription is back: the store says so, and A reads its key.
      yield* Ref.set(deaf, false)
      yield* PubSub.publish(heard, { _tag: "Resync" })
      expect(yield* Queue.take(aSeen)).toMatchObject({ from: "CLOSED", to: "OPEN", shared: true })
      expect(yield* a.inspect()).toMatchObject({ state: "OPEN", retryAfterMillis: 9_000 })
    })
  )

  it.scoped("an Executor's breaker given the store shares it: B's executor refuses without calling", () =>
    Effect.gen(function* () {
      const store = yield* CircuitBreakerStore.makeMemory
      const breaker = { policy: { kind: "consecutive", failures: 2 }, openDuration: "10 seconds", store } as const
      const a = yield* Executor.make({ name: "a", concurrency: 1, breaker })
      const b = yield* Executor.make({ name: "b", concurrency: 1, breaker: { ...breaker, name: "a" } })
      yield* Effect.exit(a.submit(boom))
      yield* Effect.exit(a.submit(boom))
      let called = false
      const refused = yield* Effect.exit(b.submit(Effect.sync(() => (called = true))))
      expect(called).toBe(false)
      expect(refused).toEqual(Exit.fail(expect.any(CircuitBreaker.CircuitOpenError)))
      if (Exit.isFailure(refused) && refused.cause._tag === "Fail") {
        expect(refused.cause.error).toMatchObject({ breaker: "a", state: "OPEN", retryAfterMillis: 10_000 })
      }
    }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
  )
})
