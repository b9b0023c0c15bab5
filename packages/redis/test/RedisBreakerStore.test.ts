/**
 * Breakers of one name in two "processes" (each its own RedisClient and
 * RedisBreakerStore, so its own connections and subscription) sharing their
 * state through Redis, on Redis time. Every wait is for an event (a
 * transition, a state) with a generous bound; nothing is proven by sleeping.
 */
import { describe, expect, it } from "@effect/vitest"
import { CircuitBreaker } from "@sluice/core"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import type * as MetricState from "effect/MetricState"
import * as Queue from "effect/Queue"
import * as RedisBreakerStore from "../src/RedisBreakerStore.js"
import { processStore } from "./utils/breakerStore.js"
import { admin, freshPrefix, redisUrl } from "./utils/redis.js"
import { redisServer } from "./utils/redisServer.js"

const boom = Effect.fail("boom" as const)
const ok = Effect.succeed("ok" as const)

/** Polls until `holds`, within a generous bound (an event awaited, not a time measured). */
const eventually = <A, E>(what: string, check: Effect.Effect<A, E>, holds: (a: A) => boolean) =>
  Effect.gen(function* () {
    const start = performance.now()
    for (;;) {
      const value = yield* check
      if (holds(value)) return value
      if (performance.now() - start > 20_000) return yield* Effect.dieMessage(`timed out waiting until ${what}`)
      yield* Effect.sleep("20 millis")
    }
  })

/** Fails the test instead of hanging. */
const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>, what = "a call hung") =>
  Effect.timeoutFail(effect, { duration: "10 seconds", onTimeout: () => new Error(what) })

/** The next transition, within the bound. */
const next = (queue: Queue.Dequeue<CircuitBreaker.Transition>) =>
  bounded(Queue.take(queue), "no transition within 10 s")

const breakerOptions = (
  store: RedisBreakerStore.RedisBreakerStore,
  openDuration: Duration.DurationInput = "30 seconds"
) =>
  ({
    name: "payments",
    policy: { kind: "consecutive", failures: 2 },
    openDuration,
    halfOpenTimeout: "20 seconds",
    store
  }) satisfies CircuitBreaker.Options

/** Two processes' breakers of one name on one Redis prefix, the default key in use by both. */
const twoProcesses = (openDuration?: Duration.DurationInput, url: string = redisUrl, clientOptions = {}) =>
  Effect.gen(function* () {
    const prefix = freshPrefix()
    const storeA = yield* processStore(prefix, {}, url, clientOptions)
    const storeB = yield* processStore(prefix, {}, url, clientOptions)
    const a = yield* CircuitBreaker.make(breakerOptions(storeA, openDuration))
    const b = yield* CircuitBreaker.make(breakerOptions(storeB, openDuration))
    yield* a.state()
    yield* b.state()
    return { prefix, storeA, storeB, a, b, aSeen: yield* a.subscribe, bSeen: yield* b.subscribe }
  })

const trip = (breaker: CircuitBreaker.CircuitBreakerShape) =>
  Effect.zipRight(Effect.exit(breaker.protect(boom)), Effect.exit(breaker.protect(boom)))

const keyOf = (prefix: string) => `${prefix}breaker:{payments:default}`

/** Runs `body` with every log message collected. */
const withLogs = <A, E, R>(body: (logs: Array<string>) => Effect.Effect<A, E, R>) => {
  const logs: Array<string> = []
  const collect = Logger.make(({ logLevel, message }) => {
    logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return Effect.provide(body(logs), Logger.replace(Logger.defaultLogger, collect))
}

const switchesTo = (to: string) =>
  Effect.map(
    Metric.value(Metric.tagged(RedisBreakerStore.metrics.switches, "to", to)),
    (state: MetricState.MetricState.Counter<number>) => state.count
  )

describe("RedisBreakerStore across processes", () => {
  it.scopedLive("one process opens it: the other learns OPEN from the channel, with the deadline", () =>
    Effect.gen(function* () {
      const { a, b, bSeen } = yield* twoProcesses()
      yield* trip(a)
      const learned = yield* next(bSeen)
      expect(learned).toMatchObject({ from: "CLOSED", to: "OPEN", reason: "Tripped", shared: true })
      expect(learned.trip).toMatchObject({ reason: "Tripped", failures: 2, failure: "boom" })
      const refused = yield* Effect.flip(b.protect(ok))
      expect(refused).toMatchObject({ state: "OPEN" })
      // The deadline is the one A set, 30 s, less the time the notice took: more than 25 s left.
      expect(refused.retryAfterMillis).toBeGreaterThan(25_000)
      expect(refused.retryAfterMillis).toBeLessThanOrEqual(30_000)
    })
  )

  it.scopedLive(
    "deadlines only move later: a shorter open keeps the deadline, a longer one extends it everywhere",
    () =>
      Effect.gen(function* () {
        const { a, b, storeB, bSeen } = yield* twoProcesses()
        yield* trip(a)
        yield* next(bSeen)
        const trip1 = (yield* b.inspect()).trip!
        const shorter = yield* storeB.open({
          breaker: "payments",
          key: "default",
          now: 0,
          openFor: 1_000,
          trip: trip1,
          generation: null
        })
        expect(shorter.state).toBe("OPEN")
        expect(shorter.openRemaining).toBeGreaterThan(25_000)
        yield* storeB.open({
          breaker: "payments",
          key: "default",
          now: 0,
          openFor: 120_000,
          trip: trip1,
          generation: null
        })
        // Both processes extend (A from the channel), without a transition.
        yield* eventually(
          "A extends to the later deadline",
          a.inspect(),
          (snapshot) => (snapshot.retryAfterMillis ?? 0) > 100_000
        )
        expect((yield* b.inspect()).retryAfterMillis).toBeGreaterThan(100_000)
        expect(yield* a.state()).toBe("OPEN")
      })
  )

  it.scopedLive("half-open lets one probe through across processes; an interrupted probe gives the slot back", () =>
    Effect.gen(function* () {
      const { a, b, prefix, aSeen, bSeen } = yield* twoProcesses("300 millis")
      const redis = yield* admin()
      yield* trip(a)
      yield* next(bSeen)
      yield* eventually("A is half-open", a.state(), (state) => state === "HALF_OPEN")
      yield* eventually("B is half-open", b.state(), (state) => state === "HALF_OPEN")
      const started = yield* Deferred.make<void>()
      const probe = yield* Effect.fork(a.protect(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
      yield* bounded(Deferred.await(started))
      // B has slots of its own free, but the one slot across processes is A's.
      expect(yield* Effect.flip(b.protect(ok))).toMatchObject({ state: "HALF_OPEN", reason: "HalfOpenFull" })
      const holders = (fields: Record<string, string>) => Object.keys(fields).filter((f) => f.startsWith("h:"))
      expect(holders(yield* Effect.promise(() => redis.hgetall(keyOf(prefix))))).toHaveLength(1)
      yield* Fiber.interrupt(probe)
      expect(holders(yield* Effect.promise(() => redis.hgetall(keyOf(prefix))))).toHaveLength(0)
      yield* Queue.takeAll(aSeen)
      // B's probe goes now, succeeds, closes it for both.
      expect(yield* bounded(b.protect(ok))).toBe("ok")
      expect(yield* b.state()).toBe("CLOSED")
      expect(yield* next(aSeen)).toMatchObject({ from: "HALF_OPEN", to: "CLOSED", shared: true })
      // Closed holds nothing in Redis.
      expect(yield* Effect.promise(() => redis.exists(keyOf(prefix)))).toBe(0)
    })
  )

  it.scopedLive("a probe slot whose holder died frees itself when its lease ends", () =>
    Effect.gen(function* () {
      const { a, b, storeA, bSeen } = yield* twoProcesses("300 millis")
      yield* trip(a)
      yield* next(bSeen)
      yield* eventually("B is half-open", b.state(), (state) => state === "HALF_OPEN")
      // A "process" takes the slot for 1 s and dies (never settles it).
      const taken = yield* storeA.acquireProbe({
        breaker: "payments",
        key: "default",
        now: 0,
        holder: "a-process-that-died",
        probes: 1,
        lease: 1_000
      })
      expect(taken.granted).toBe(true)
      expect(yield* Effect.flip(b.protect(ok))).toMatchObject({ reason: "HalfOpenFull" })
      // Once its lease ends, B's probe goes (and closes it).
      yield* eventually("B's probe goes", Effect.either(b.protect(ok)), (result) => result._tag === "Right")
      expect(yield* b.state()).toBe("CLOSED")
    })
  )

  it.scopedLive("keys are hash-tagged and expire: the deadline and leases plus retention; isolation holds", () =>
    Effect.gen(function* () {
      const { a, b, prefix, bSeen } = yield* twoProcesses()
      const redis = yield* admin()
      yield* trip(a)
      yield* next(bSeen)
      const ttl = yield* Effect.promise(() => redis.pttl(keyOf(prefix)))
      // 30 s open + 10 min retention.
      expect(ttl).toBeGreaterThan(600_000)
      expect(ttl).toBeLessThanOrEqual(630_000)
      yield* b.isolate()
      expect(yield* next(yield* a.subscribe)).toMatchObject({ to: "ISOLATED", shared: true })
      expect(yield* Effect.promise(() => redis.pttl(keyOf(prefix)))).toBe(-1)
      yield* a.reset()
      expect(yield* Effect.promise(() => redis.exists(keyOf(prefix)))).toBe(0)
    })
  )
})

describe("RedisBreakerStore when Redis is down", () => {
  it.scopedLive(
    "each breaker decides alone (logged, counted), nothing waits past the deadline, and sharing resumes when Redis is back",
    () =>
      withLogs((logs) =>
        Effect.gen(function* () {
          const server = yield* redisServer
          const { a, b, storeA, aSeen } = yield* twoProcesses("1 second", server.url, { deadline: "50 millis" })
          const toLocal = yield* switchesTo("local")
          yield* server.stop
          // A trips with Redis gone: every call ends (the store answers within its deadline, or at once).
          const started = performance.now()
          yield* bounded(trip(a))
          expect(performance.now() - started).toBeLessThan(5_000)
          expect(yield* a.state()).toBe("OPEN")
          expect((yield* storeA.snapshot).backend).toBe("local")
          expect(yield* switchesTo("local")).toBeGreaterThan(toLocal)
          expect(logs.some((line) => line.startsWith("WARN") && line.includes("Redis is unavailable"))).toBe(true)
          // B never heard of it: it decides alone too, and lets calls through.
          expect(yield* bounded(b.protect(ok))).toBe("ok")

          // Redis is back (empty, its script cache too: the NOSCRIPT fallback sends the script again).
          yield* server.start
          yield* eventually("A's subscription is back", storeA.snapshot, (snapshot) => snapshot.subscribed)
          // A's local open ends; its probe asks Redis, which holds nothing: A follows it and closes.
          yield* eventually("A lets a call through again", Effect.either(a.protect(ok)), (r) => r._tag === "Right")
          expect(yield* a.state()).toBe("CLOSED")
          expect((yield* storeA.snapshot).backend).toBe("redis")
          expect(logs.some((line) => line.startsWith("INFO") && line.includes("Redis answers again"))).toBe(true)
          // Shared again: B trips, A learns it from the channel.
          yield* Queue.takeAll(aSeen)
          yield* trip(b)
          expect(yield* next(aSeen)).toMatchObject({ to: "OPEN", shared: true })
        })
      )
  )

  it.scopedLive("the URL's password appears in no error, log or snapshot", () =>
    withLogs((logs) =>
      Effect.gen(function* () {
        const server = yield* redisServer
        const password = "s3cret-breaker-pass"
        yield* server.command("CONFIG", "SET", "requirepass", password)
        const url = server.url.replace("redis://", `redis://:${password}@`)
        const { a, storeA } = yield* twoProcesses("1 second", url, { deadline: "50 millis" })
        yield* server.stop
        yield* bounded(trip(a))
        const error = yield* Effect.flip(
          storeA.get({ breaker: "payments", key: "default", now: 0 }).pipe(Effect.repeatN(3))
        )
        const snapshot = yield* storeA.snapshot
        expect(snapshot.backend).toBe("local")
        const seen = [error.message, JSON.stringify(error), JSON.stringify(snapshot), ...logs].join("\n")
        expect(logs.length).toBeGreaterThan(0)
        expect(seen).not.toContain(password)
      })
    )
  )
})
