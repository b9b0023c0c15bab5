/**
 * The ProviderPool under TestClock: it grows with load up to max and no
 * further, shrinks to min at the first time-to-live tick after the load
 * falls ("usage") or recycles instances by age ("creation"); a failed health
 * check releases the instance and starts another; a caller handed an
 * instance under check waits for it and takes another when it failed; a
 * defect in a use is fatal to the instance, a typed failure is not; a failed
 * start reaches the waiting caller as `AcquireFailed`; a closed pool says
 * `Closed`, after the callers holding instances returned them; behind the
 * Router, a call whose instance broke falls back to the other provider.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Executor from "../src/Executor.js"
import * as ProviderPool from "../src/ProviderPool.js"
import * as Router from "../src/Router.js"

/** A fake worker: it knows whether it is still running, healthy, and how many callers it serves. */
interface Worker {
  readonly id: number
  alive: boolean
  healthy: boolean
  busy: number
}

/** Starts workers that take `startup` to start; counts starts and stops on its own, apart from the pool. */
const workers = (startup: Duration.DurationInput = "1 second", failFirst = 0) => {
  const all: Array<Worker> = []
  let attempts = 0
  const counts = { started: 0, stopped: 0, maxBusy: 0 }
  const acquire = Effect.zipRight(
    Effect.sleep(startup),
    Effect.suspend(() =>
      ++attempts <= failFirst
        ? Effect.fail(new Error(`worker ${attempts} did not start`))
        : Effect.acquireRelease(
            Effect.sync(() => {
              const worker: Worker = { id: all.length + 1, alive: true, healthy: true, busy: 0 }
              all.push(worker)
              counts.started++
              return worker
            }),
            (worker) =>
              Effect.sync(() => {
                worker.alive = false
                counts.stopped++
              })
          )
    )
  )
  /** A call that keeps the worker busy for `millis`, checking it is alive and not shared. */
  const work = (worker: Worker, millis: number) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        if (!worker.alive) throw new Error(`worker ${worker.id} used after it stopped`)
        worker.busy++
        counts.maxBusy = Math.max(counts.maxBusy, worker.busy)
      }),
      () => Effect.as(Effect.sleep(millis), worker.id),
      () => Effect.sync(() => worker.busy--)
    )
  return { all, counts, acquire, work }
}

const healthCheck = (worker: Worker) => (worker.healthy ? Effect.void : Effect.fail("unhealthy"))

class Broken extends Schema.TaggedError<Broken>()("Broken", {}) {}

describe("ProviderPool", () => {
  it.scoped("grows with load up to max and no further; each instance serves one caller at a time", () =>
    Effect.gen(function* () {
      const w = workers()
      const pool = yield* ProviderPool.make({
        name: "grow",
        acquire: w.acquire,
        min: 1,
        max: 4,
        timeToLive: "10 seconds"
      })
      yield* TestClock.adjust("1 second")
      expect((yield* pool.snapshot).size).toBe(1)
      const calls = yield* Effect.forEach(Array.from({ length: 6 }), () =>
        Effect.fork(pool.use((worker) => w.work(worker, 2_000)))
      )
      yield* Effect.yieldNow()
      const loaded = yield* pool.snapshot
      expect([loaded.size, loaded.inUse, loaded.waiting]).toEqual([1, 1, 5])
      // Three more start at once (1 s each): the pool is at max.
      yield* TestClock.adjust("1 second")
      const grown = yield* pool.snapshot
      expect([grown.size, grown.inUse, grown.waiting]).toEqual([4, 4, 2])
      yield* TestClock.adjust("4 seconds")
      const served = yield* Effect.forEach(calls, Fiber.join)
      expect(new Set(served)).toEqual(new Set([1, 2, 3, 4]))
      expect(w.counts.started).toBe(4)
      expect(w.counts.maxBusy).toBe(1)
      expect((yield* pool.snapshot).starts).toBe(4)
    })
  )

  it.scoped('"usage": the instances above min are released at the first TTL tick after the load falls', () =>
    Effect.gen(function* () {
      const w = workers()
      const pool = yield* ProviderPool.make({
        name: "shrink",
        acquire: w.acquire,
        min: 1,
        max: 4,
        timeToLive: "10 seconds"
      })
      yield* TestClock.adjust("1 second")
      const calls = yield* Effect.forEach(Array.from({ length: 4 }), () =>
        Effect.fork(pool.use((worker) => w.work(worker, 2_000)))
      )
      yield* TestClock.adjust("3 seconds")
      yield* Effect.forEach(calls, Fiber.join)
      // Idle since 4 s; the tick comes every 10 s from the pool's start.
      yield* TestClock.adjust(5_999)
      expect((yield* pool.snapshot).size).toBe(4)
      expect(w.counts.stopped).toBe(0)
      yield* TestClock.adjust(1)
      const shrunk = yield* pool.snapshot
      expect([shrunk.size, shrunk.stops, shrunk.invalidations]).toEqual([1, 3, { HealthCheck: 0, Fatal: 0, Manual: 0 }])
      expect(w.counts.stopped).toBe(3)
      // min stays, however long it idles.
      yield* TestClock.adjust("1 minute")
      expect((yield* pool.snapshot).size).toBe(1)
      expect(w.all.filter((worker) => worker.alive)).toHaveLength(1)
    })
  )

  it.scoped('"creation": each instance is replaced timeToLive after it started', () =>
    Effect.gen(function* () {
      const w = workers(0)
      const pool = yield* ProviderPool.make({
        name: "lifetime",
        acquire: w.acquire,
        min: 1,
        max: 1,
        timeToLive: "1 minute",
        timeToLiveStrategy: "creation"
      })
      yield* TestClock.adjust(59_999)
      expect(w.all.map((worker) => worker.alive)).toEqual([true])
      yield* TestClock.adjust(1)
      expect(w.all.map((worker) => worker.alive)).toEqual([false, true])
      expect(yield* pool.use((worker) => Effect.succeed(worker.id))).toBe(2)
      // Expiry is not an invalidation: no restart counted.
      expect((yield* pool.snapshot).restarts).toBe(0)
    })
  )

  it.scoped("a failed health check releases the instance and starts another in its place", () =>
    Effect.gen(function* () {
      const w = workers()
      const pool = yield* ProviderPool.make({
        name: "health",
        acquire: w.acquire,
        min: 2,
        max: 2,
        timeToLive: "1 hour",
        healthCheck,
        healthCheckInterval: "10 seconds"
      })
      yield* TestClock.adjust("1 second")
      w.all[0]!.healthy = false
      yield* TestClock.adjust(8_999)
      expect((yield* pool.snapshot).invalidations.HealthCheck).toBe(0)
      // The check at 10 s finds worker 1 unhealthy: it is stopped at once, worker 3 starts (1 s).
      yield* TestClock.adjust(1)
      const failed = yield* pool.snapshot
      expect(failed.invalidations.HealthCheck).toBe(1)
      expect(failed.instances.map((instance) => instance.id)).toEqual([2])
      expect(w.all[0]!.alive).toBe(false)
      yield* TestClock.adjust("1 second")
      const restarted = yield* pool.snapshot
      expect(restarted.instances.map((instance) => instance.id)).toEqual([2, 3])
      expect([restarted.restarts, restarted.starts, restarted.stops]).toEqual([1, 3, 1])
      expect(restarted.instances.every((instance) => instance.lastCheckedAt === 10_000 || instance.id === 3)).toBe(true)
      // Calls go to the healthy ones only.
      const used = yield* Effect.all(
        Array.from({ length: 4 }, () => pool.use((worker) => w.work(worker, 100))),
        { concurrency: "unbounded" }
      ).pipe(Effect.fork)
      yield* TestClock.adjust("1 second")
      expect(new Set(yield* Fiber.join(used))).toEqual(new Set([2, 3]))
    })
  )

  it.scoped(
    "a busy instance is not checked; a caller handed one under check waits, and takes another when it fails",
    () =>
      Effect.gen(function* () {
        const w = workers()
        const pool = yield* ProviderPool.make({
          name: "race",
          acquire: w.acquire,
          min: 1,
          max: 1,
          timeToLive: "1 hour",
          // The check takes 2 s, then answers.
          healthCheck: (worker) => Effect.zipRight(Effect.sleep("2 seconds"), healthCheck(worker)),
          healthCheckInterval: "10 seconds"
        })
        yield* TestClock.adjust("1 second")
        w.all[0]!.healthy = false
        // Busy across the check at 10 s: not checked.
        const busy = yield* Effect.fork(pool.use((worker) => w.work(worker, 9_500)))
        yield* TestClock.adjust(9_500)
        expect(yield* Fiber.join(busy)).toBe(1)
        expect((yield* pool.snapshot).instances[0]!.lastCheckedAt).toBeUndefined()
        // The check at 20 s runs until 22 s; a caller comes at 21 s, waits for it, then for worker 2 (1 s).
        yield* TestClock.adjust(10_000)
        expect((yield* pool.snapshot).instances[0]!.state).toBe("checking")
        yield* TestClock.adjust(500)
        const caller = yield* Effect.fork(
          Effect.zip(
            pool.use((worker) => w.work(worker, 0)),
            TestClock.currentTimeMillis
          )
        )
        yield* TestClock.adjust(1_000)
        expect(caller.unsafePoll()).toBeNull()
        yield* TestClock.adjust(1_000)
        expect(yield* Fiber.join(caller)).toEqual([2, 23_000])
        expect(w.counts.maxBusy).toBe(1)
        expect((yield* pool.snapshot).restarts).toBe(1)
      })
  )

  it.scoped("a defect in a use is fatal to its instance; a typed failure is not; isFatal decides otherwise", () =>
    Effect.gen(function* () {
      const w = workers(0)
      const pool = yield* ProviderPool.make({ name: "fatal", acquire: w.acquire, min: 1, max: 1, timeToLive: "1 hour" })
      yield* Effect.yieldNow()
      const failed = yield* Effect.exit(pool.use(() => Effect.fail(new Broken())))
      expect(failed).toEqual(Exit.fail(new Broken()))
      expect(w.all.map((worker) => worker.alive)).toEqual([true])
      const died = yield* Effect.exit(pool.use(() => Effect.die("crashed")))
      expect(died).toEqual(Exit.die("crashed"))
      expect(w.all.map((worker) => worker.alive)).toEqual([false])
      expect(yield* pool.use((worker) => Effect.succeed(worker.id))).toBe(2)
      expect((yield* pool.snapshot).invalidations).toEqual({ HealthCheck: 0, Fatal: 1, Manual: 0 })

      const strict = workers(0)
      const typed = yield* ProviderPool.make({
        name: "typed",
        acquire: strict.acquire,
        min: 1,
        max: 1,
        timeToLive: "1 hour",
        isFatal: (cause) =>
          Cause.failureOption(cause).pipe((error) => error._tag === "Some" && error.value instanceof Broken)
      })
      yield* Effect.exit(typed.use(() => Effect.fail(new Broken())))
      expect(strict.all.map((worker) => worker.alive)).toEqual([false])
      expect((yield* typed.snapshot).invalidations.Fatal).toBe(1)
    })
  )

  it.scoped("invalidate by hand: released once its caller returns it, and replaced", () =>
    Effect.gen(function* () {
      const w = workers(0)
      const pool = yield* ProviderPool.make({
        name: "manual",
        acquire: w.acquire,
        min: 1,
        max: 1,
        timeToLive: "1 hour"
      })
      const holding = yield* Effect.fork(
        pool.use((worker) => Effect.zipRight(pool.invalidate(worker), w.work(worker, 1_000)))
      )
      yield* TestClock.adjust(999)
      expect(w.all.map((worker) => worker.alive)).toEqual([true])
      yield* TestClock.adjust(1)
      expect(yield* Fiber.join(holding)).toBe(1)
      expect(w.all.map((worker) => worker.alive)).toEqual([false, true])
      expect((yield* pool.snapshot).invalidations.Manual).toBe(1)
    })
  )

  it.scoped(
    "a failed start reaches the waiting caller as AcquireFailed; the next caller makes the pool try again",
    () =>
      Effect.gen(function* () {
        const w = workers(0, 1)
        const pool = yield* ProviderPool.make({
          name: "flaky",
          acquire: w.acquire,
          min: 0,
          max: 2,
          timeToLive: "1 hour"
        })
        const first = yield* Effect.flip(pool.use((worker) => Effect.succeed(worker.id)))
        expect(first.reason).toBe("AcquireFailed")
        expect(first.message).toBe('Provider pool "flaky" could not start an instance: worker 1 did not start')
        expect(first.retryable).toBe(true)
        expect(yield* pool.use((worker) => Effect.succeed(worker.id))).toBe(1)
        expect((yield* pool.snapshot).acquireFailures).toBe(1)
      })
  )

  it.effect("closing: waiting callers get Closed, holders finish first, every instance is released", () =>
    Effect.gen(function* () {
      const w = workers()
      const scope = yield* Scope.make()
      const pool = yield* ProviderPool.make({
        name: "closing",
        acquire: w.acquire,
        min: 1,
        max: 1,
        timeToLive: "1 hour"
      }).pipe(Scope.extend(scope))
      yield* TestClock.adjust("1 second")
      const holder = yield* Effect.fork(pool.use((worker) => w.work(worker, 5_000)))
      const waiter = yield* Effect.fork(pool.use((worker) => w.work(worker, 5_000)))
      yield* Effect.yieldNow()
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      const refused = yield* Effect.flip(Fiber.join(waiter))
      expect(refused).toEqual(new ProviderPool.ProviderPoolError({ pool: "closing", reason: "Closed" }))
      expect(w.counts.stopped).toBe(0)
      yield* TestClock.adjust("5 seconds")
      expect(yield* Fiber.join(holder)).toBe(1)
      yield* Fiber.join(closing)
      expect(w.counts).toMatchObject({ started: 1, stopped: 1 })
      const late = yield* Effect.flip(pool.use((worker) => Effect.succeed(worker.id)))
      expect(late.message).toBe('Provider pool "closing" is closed: its scope has ended')
    })
  )

  it.scoped(
    "behind the Router: each provider's Executor runs calls that use its pool; a fatal failure falls back",
    () =>
      Effect.gen(function* () {
        const local = { a: workers(0), b: workers(0) }
        const isFatal = (cause: Cause.Cause<unknown>) =>
          Option.exists(Cause.failureOption(cause), (error) => error instanceof Broken)
        const pools = {
          a: yield* ProviderPool.make({
            name: "a",
            acquire: local.a.acquire,
            min: 1,
            max: 2,
            timeToLive: "1 hour",
            isFatal
          }),
          b: yield* ProviderPool.make({
            name: "b",
            acquire: local.b.acquire,
            min: 1,
            max: 2,
            timeToLive: "1 hour",
            isFatal
          })
        }
        const provider = (name: "a" | "b") =>
          Effect.map(Executor.make({ name, concurrency: 2 }), (executor) => ({ name, executor }))
        const router = yield* Router.make({
          name: "local",
          strategy: "roundRobin",
          providers: [yield* provider("a"), yield* provider("b")]
        })
        let crashes = 1
        const call = router.submit((route) => {
          const name = route.provider as "a" | "b"
          return pools[name].use((worker) =>
            crashes-- > 0
              ? Effect.fail(new Broken())
              : Effect.map(local[name].work(worker, 100), (id) => `${name}:${id}`)
          )
        })
        const first = yield* Effect.fork(call)
        yield* TestClock.adjust(100)
        // a's worker broke under the call: the Router sent it to b; pool a replaced its worker.
        expect(yield* Fiber.join(first)).toBe("b:1")
        expect(local.a.all.map((worker) => worker.alive)).toEqual([false, true])
        const a = yield* pools.a.snapshot
        expect([a.invalidations.Fatal, a.restarts]).toEqual([1, 1])
        const next = yield* Effect.fork(Effect.all([call, call], { concurrency: "unbounded" }))
        yield* TestClock.adjust(100)
        expect(new Set(yield* Fiber.join(next))).toEqual(new Set(["a:2", "b:1"]))
      })
  )

  it.scoped("bad options fail with an InvalidOptionsError naming the field", () =>
    Effect.gen(function* () {
      const bounds = yield* Effect.flip(
        ProviderPool.make({ name: "bad", acquire: Effect.succeed(1), min: 3, max: 2, timeToLive: "1 minute" })
      )
      expect(bounds.message).toBe('ProviderPool options are invalid: ["max"] Expected at least min (3), actual 2')
      const ttl = yield* Effect.flip(
        ProviderPool.make({ name: "bad", acquire: Effect.succeed(1), min: 0, max: 2, timeToLive: 0 })
      )
      expect(ttl.message).toContain('["timeToLive"] Expected a duration above zero')
    })
  )
})
