/**
 * Per-key lanes: a key whose limits cannot pay yet holds only its own
 * requests; keys of equal priority share the permits in turn; a key can be
 * capped below the executor's concurrency. All under TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"
import * as Executor from "../src/Executor.js"

/** Starts a task that records `label@time` when it begins, then takes `millis`. */
const recorder =
  (log: Array<string>) =>
  (label: string, millis = 0) =>
    Effect.zipRight(
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => log.push(`${label}@${now}`))),
      Effect.sleep(millis)
    )

/** Counts the fibers started under it. */
class CountingSupervisor extends Supervisor.AbstractSupervisor<number> {
  started = 0
  value = Effect.sync(() => this.started)
  override onStart() {
    this.started++
  }
}

describe("Executor lanes", () => {
  it.scoped("a key out of quota holds only its own requests: tenant B starts at once behind five of tenant A", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const record = recorder(log)
      const executor = yield* Executor.make({
        name: "lanes",
        concurrency: 4,
        limits: { requests: { limit: 1, interval: "1 second" } }
      })
      const fibers: Array<Fiber.RuntimeFiber<void, unknown>> = []
      for (let i = 0; i < 5; i++) fibers.push(yield* Effect.fork(executor.submit(record(`a${i}`), { key: "tenant-a" })))
      fibers.push(yield* Effect.fork(executor.submit(record("b0"), { key: "tenant-b" })))
      yield* TestClock.adjust("5 seconds")
      yield* Effect.forEach(fibers, Fiber.join)
      // Each key has its own bucket (1 per second, with the sliding log's 5 ms margin per round).
      expect(log.filter((entry) => entry.startsWith("a"))).toEqual(["a0@0", "a1@1005", "a2@2010", "a3@3015", "a4@4020"])
      expect(log).toContain("b0@0")
    })
  )

  it.scoped("stats count per key", () =>
    Effect.gen(function* () {
      const executor = yield* Executor.make({
        name: "per-key-stats",
        concurrency: 4,
        limits: { requests: { limit: 1, interval: "1 second" } }
      })
      const gate = yield* Deferred.make<void>()
      for (let i = 0; i < 3; i++) yield* Effect.fork(executor.submit(Deferred.await(gate), { key: "a" }))
      yield* Effect.fork(executor.submit(Deferred.await(gate), { key: "b" }))
      yield* TestClock.adjust(0)
      // a: one running, one being admitted (waiting for its second), one queued; b: one running.
      expect((yield* executor.stats).byKey).toEqual({
        a: { queued: 1, admitting: 1, inFlight: 1 },
        b: { queued: 0, admitting: 0, inFlight: 1 }
      })
      yield* Deferred.succeed(gate, undefined)
      yield* TestClock.adjust("3 seconds")
      expect((yield* executor.stats).byKey).toEqual({})
    })
  )

  it.scoped("two keys saturating the permits take turns", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const record = recorder(log)
      const executor = yield* Executor.make({ name: "fair", concurrency: 1 })
      const fibers: Array<Fiber.RuntimeFiber<void, unknown>> = []
      for (let i = 0; i < 5; i++) fibers.push(yield* Effect.fork(executor.submit(record(`a${i}`, 100), { key: "a" })))
      for (let i = 0; i < 5; i++) fibers.push(yield* Effect.fork(executor.submit(record(`b${i}`, 100), { key: "b" })))
      yield* TestClock.adjust("2 seconds")
      yield* Effect.forEach(fibers, Fiber.join)
      const keys = log.map((entry) => entry[0]).join("")
      // All five of A were queued first: a0 runs, a1 was admitted before b0; from then on the lanes alternate, each
      // with one request admitted at a time.
      expect(keys).toBe("aababababb")
    })
  )

  it.scoped("two keys saturated on their own limits each keep their own rate", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const record = recorder(log)
      const executor = yield* Executor.make({
        name: "fair-limits",
        concurrency: 8,
        limits: { requests: { limit: 2, interval: "1 second", capacity: 1 } }
      })
      const fibers: Array<Fiber.RuntimeFiber<void, unknown>> = []
      for (let i = 0; i < 6; i++) fibers.push(yield* Effect.fork(executor.submit(record(`a${i}`), { key: "a" })))
      for (let i = 0; i < 6; i++) fibers.push(yield* Effect.fork(executor.submit(record(`b${i}`), { key: "b" })))
      yield* TestClock.adjust("2400 millis")
      const startsOf = (key: string) => log.filter((entry) => entry.startsWith(key)).length
      // 2 per second each, the first at once: five in 2.4 s for both keys.
      expect([startsOf("a"), startsOf("b")]).toEqual([5, 5])
      yield* TestClock.adjust("1 second")
      yield* Effect.forEach(fibers, Fiber.join)
    })
  )

  it.scoped("priority orders requests across lanes that can go", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const record = recorder(log)
      const executor = yield* Executor.make({ name: "cross-priority", concurrency: 1 })
      const gate = yield* Deferred.make<void>()
      const blocker = yield* Effect.fork(executor.submit(Deferred.await(gate), { key: "x" }))
      yield* TestClock.adjust(0)
      const low = yield* Effect.fork(executor.submit(record("low"), { key: "a", priority: 0 }))
      const high = yield* Effect.fork(executor.submit(record("high"), { key: "b", priority: 5 }))
      yield* TestClock.adjust(0)
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach([blocker, low, high], Fiber.join)
      expect(log.map((entry) => entry.split("@")[0])).toEqual(["high", "low"])
    })
  )

  it.scoped("keyConcurrency caps one key while others use the rest", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const record = recorder(log)
      const executor = yield* Executor.make({ name: "capped", concurrency: 4, keyConcurrency: 2 })
      const fibers: Array<Fiber.RuntimeFiber<void, unknown>> = []
      for (let i = 0; i < 4; i++) fibers.push(yield* Effect.fork(executor.submit(record(`a${i}`, 1000), { key: "a" })))
      fibers.push(yield* Effect.fork(executor.submit(record("b0", 1000), { key: "b" })))
      yield* TestClock.adjust(0)
      expect((yield* executor.stats).byKey["a"]).toMatchObject({ inFlight: 2 })
      yield* TestClock.adjust("3 seconds")
      yield* Effect.forEach(fibers, Fiber.join)
      expect(log.sort()).toEqual(["a0@0", "a1@0", "a2@1000", "a3@1000", "b0@0"])
    })
  )

  it.effect("keyConcurrency is validated", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Effect.scoped(Executor.make({ name: "bad", concurrency: 2, keyConcurrency: 0 })))
      expect(error.message).toContain("keyConcurrency")
    })
  )

  it.scoped("a busy key's lane keeps its one fiber: requests arriving one by one fork no lane fiber each", () =>
    Effect.gen(function* () {
      const supervisor = new CountingSupervisor()
      // The executor's own fibers (its lanes, timers) are forked in the runtime it was made in.
      const executor = yield* Effect.supervised(Executor.make({ name: "parked", concurrency: 4 }), supervisor)
      const gate = yield* Deferred.make<void>()
      const blocker = yield* Effect.fork(executor.submit(Deferred.await(gate), { key: "busy" }))
      yield* TestClock.adjust(0)
      const before = supervisor.started
      const forked = yield* Effect.gen(function* () {
        for (let i = 0; i < 20; i++) yield* executor.submit(Effect.void, { key: "busy" })
        return supervisor.started - before
      }).pipe(Effect.ensuring(Deferred.succeed(gate, undefined)))
      // With the key still running something, its lane's fiber waits for the next request instead of ending
      // (ending and forking again would start 20 fibers here).
      expect(forked).toBe(0)
      yield* Fiber.join(blocker)
    })
  )
})
