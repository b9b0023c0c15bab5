import { describe, expect, it } from "@effect/vitest"
import { RateLimiter, RateLimiterStore } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import type * as MetricState from "effect/MetricState"
import * as RedisStore from "../src/RedisStore.js"
import { testStore } from "./utils/redis.js"
import { redisServer } from "./utils/redisServer.js"

/** Polls until `holds`, within a generous bound (an event awaited, not a time measured). */
const eventually = <A, E>(what: string, check: Effect.Effect<A, E>, holds: (a: A) => boolean) =>
  Effect.gen(function* () {
    const start = performance.now()
    for (;;) {
      const value = yield* check
      if (holds(value)) return value
      if (performance.now() - start > 30_000) return yield* Effect.dieMessage(`timed out waiting until ${what}`)
      yield* Effect.sleep("25 millis")
    }
  })

/** Fails the test instead of hanging: every call under an outage must end well within this. */
const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(effect, { duration: "10 seconds", onTimeout: () => new Error("a store call hung") })

const switchesTo = (to: string) =>
  Effect.map(
    Metric.value(Metric.tagged(RedisStore.metrics.switches, "to", to)),
    (state: MetricState.MetricState.Counter<number>) => state.count
  )

/** A store on a redis-server of the test's own, a limiter over it, and the warnings and infos it logs. */
const setup = (onUnavailable: RedisStore.OnUnavailable) =>
  Effect.gen(function* () {
    const server = yield* redisServer
    const { store } = yield* testStore(
      { onUnavailable, breaker: { failures: 2, openDuration: "200 millis" } },
      server.url,
      { deadline: "50 millis" }
    )
    const limiter = yield* RateLimiter.make({
      name: "outage",
      limits: { requests: { limit: 100, interval: "1 minute" } }
    }).pipe(Effect.provideService(RateLimiterStore.RateLimiterStore, store))
    return { server, store, limiter }
  })

/** Runs `body` with every log message collected. */
const withLogs = <A, E, R>(body: (logs: Array<string>) => Effect.Effect<A, E, R>) => {
  const logs: Array<string> = []
  const collect = Logger.make(({ logLevel, message }) => {
    logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return Effect.provide(body(logs), Logger.replace(Logger.defaultLogger, collect))
}

/** Redis comes back: the store finds it again (a half-open probe), logs it, and runs on Redis. */
const recovers = (setupResult: Effect.Effect.Success<ReturnType<typeof setup>>, logs: Array<string>) =>
  Effect.gen(function* () {
    const { server, store, limiter } = setupResult
    yield* server.start
    yield* eventually(
      "the store runs on Redis again",
      Effect.zipRight(Effect.either(bounded(limiter.tryAcquire())), store.snapshot),
      (snapshot) => snapshot.backend === "redis"
    )
    const snapshot = yield* store.snapshot
    expect(snapshot.switches).toBe(2)
    expect(logs.some((line) => line.startsWith("INFO") && line.includes("back to Redis"))).toBe(true)
    // Normal operation: admissions are counted in Redis again.
    const reservation = yield* bounded(limiter.acquire())
    expect(reservation.receipts[0]).not.toBeNull()
  })

describe("RedisStore when Redis is down", () => {
  it.scopedLive("failClosed: a typed store error that says Redis is unavailable, never a rate limit", () =>
    withLogs((logs) =>
      Effect.gen(function* () {
        const context = yield* setup("failClosed")
        const { server, store, limiter } = context
        const before = yield* switchesTo("failClosed")
        yield* bounded(limiter.acquire())
        yield* server.stop
        const error = yield* Effect.flip(bounded(limiter.acquire()))
        expect(error).toBeInstanceOf(RateLimiter.RateLimiterError)
        const limiterError = error as RateLimiter.RateLimiterError
        expect(limiterError.reason).toBe("StoreFailure")
        // The outage policy handles it (failClosed: it fails at once); a retry policy does not add attempts.
        expect(limiterError.retryable).toBe(false)
        expect(limiterError.message).toContain("Redis rate-limiter store is unavailable")
        expect(limiterError.message).toContain("failClosed")
        // With the breaker open, calls fail at once without asking Redis.
        yield* Effect.flip(bounded(limiter.acquire()))
        const trips = (yield* store.snapshot).roundTrips
        const refused = yield* Effect.flip(bounded(limiter.acquire()))
        expect((refused as RateLimiter.RateLimiterError).message).toContain("BreakerOpen")
        expect((yield* store.snapshot).roundTrips).toBe(trips)
        const down = yield* store.snapshot
        expect(down).toMatchObject({ backend: "failClosed", switches: 1, breaker: "OPEN" })
        expect(yield* switchesTo("failClosed")).toBe(before + 1)
        expect(logs.some((line) => line.startsWith("WARN") && line.includes("now failClosed"))).toBe(true)
        yield* recovers(context, logs)
      })
    )
  )

  it.scopedLive("failOpen: everything is admitted while Redis is down", () =>
    withLogs((logs) =>
      Effect.gen(function* () {
        const context = yield* setup("failOpen")
        const { server, store, limiter } = context
        yield* server.stop
        // 150 admissions on a limit of 100 per minute: nothing holds them back.
        for (let i = 0; i < 150; i++) yield* bounded(limiter.acquire())
        expect(yield* store.snapshot).toMatchObject({ backend: "failOpen", switches: 1 })
        yield* recovers(context, logs)
      })
    )
  )

  it.scopedLive("degrade: a local limiter holding the configured share (1/N) of the limit", () =>
    withLogs((logs) =>
      Effect.gen(function* () {
        const context = yield* setup({ degrade: { share: 0.5 } })
        const { server, store, limiter } = context
        yield* server.stop
        // Half of 100 per minute: 50 now, then about one every 1.2 s.
        for (let i = 0; i < 50; i++) {
          expect((yield* bounded(limiter.tryAcquire()))._tag).toBe("Admitted")
        }
        const refused = yield* bounded(limiter.tryAcquire())
        expect(refused._tag).toBe("Delayed")
        expect(yield* store.snapshot).toMatchObject({ backend: "degraded", switches: 1 })
        yield* recovers(context, logs)
      })
    )
  )

  it.scopedLive("a Redis that does not answer costs one deadline per call, then nothing once the breaker opens", () =>
    Effect.gen(function* () {
      const { server, store, limiter } = yield* setup("failClosed")
      yield* bounded(limiter.acquire())
      // Redis holds every command for 3 s: the calls must end by their deadline (50 ms), not by its answer.
      yield* server.command("CLIENT", "PAUSE", "3000", "ALL")
      const first = yield* Effect.flip(bounded(limiter.acquire()))
      expect((first as RateLimiter.RateLimiterError).message).toContain("(Deadline)")
      expect((yield* store.snapshot).lastFailure).toContain("Command timed out")
      yield* Effect.flip(bounded(limiter.acquire()))
      const trips = (yield* store.snapshot).roundTrips
      const third = yield* Effect.flip(bounded(limiter.acquire()))
      expect((third as RateLimiter.RateLimiterError).message).toContain("BreakerOpen")
      expect((yield* store.snapshot).roundTrips).toBe(trips)
      // The pause ends: a half-open probe finds Redis again.
      yield* eventually(
        "the store runs on Redis again",
        Effect.zipRight(Effect.either(bounded(limiter.tryAcquire())), store.snapshot),
        (snapshot) => snapshot.backend === "redis"
      )
    })
  )
})
