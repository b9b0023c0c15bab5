import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as TestClock from "effect/TestClock"
import * as AttemptTimeouts from "../src/internal/attemptTimeouts.js"

/** Forks `effect`, then moves the clock by `millis` a millisecond at a time until it ends. */
const settleWithin = <A, E>(effect: Effect.Effect<A, E>, millis: number) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(Effect.exit(effect))
    for (let i = 0; i < millis && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("1 millis")
    return yield* Fiber.join(fiber)
  })

describe("AttemptTimeouts (the ApiClient's per-attempt timeouts)", () => {
  it.scoped("an attempt that ends in time answers its own exit; one that does not is interrupted, then times out", () =>
    Effect.gen(function* () {
      const timeouts = yield* AttemptTimeouts.make
      const fast = timeouts.timeoutFail(Effect.as(Effect.sleep("40 millis"), "fast"), 50, () => "timeout")
      expect(yield* settleWithin(fast, 100)).toEqual(Exit.succeed("fast"))
      const failing = timeouts.timeoutFail(
        Effect.zipRight(Effect.sleep("10 millis"), Effect.fail("boom")),
        50,
        () => "timeout"
      )
      expect(yield* settleWithin(failing, 100)).toEqual(Exit.fail("boom"))

      const finalized: Array<number> = []
      const slow = timeouts.timeoutFail(
        Effect.onInterrupt(Effect.never, () => Effect.sync(() => finalized.push(1))),
        50,
        () => "timeout"
      )
      const fiber = yield* Effect.fork(Effect.exit(slow))
      yield* TestClock.adjust("49 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      // As with `Effect.timeoutFail`: the attempt's finalizers have run when the timeout answers.
      expect(yield* Fiber.join(fiber)).toEqual(Exit.fail("timeout"))
      expect(finalized).toEqual([1])
    })
  )

  it.scoped("deadlines of different lengths each fire on time, whatever order they were taken in", () =>
    Effect.gen(function* () {
      const timeouts = yield* AttemptTimeouts.make
      const endedAt: Record<string, number> = {}
      const watched = (name: string, millis: number) =>
        Effect.fork(
          Effect.zipRight(
            Effect.exit(timeouts.timeoutFail(Effect.never, millis, () => name)),
            Effect.flatMap(TestClock.currentTimeMillis, (at) => Effect.sync(() => (endedAt[name] = at)))
          )
        )
      const fibers = [yield* watched("long", 300), yield* watched("short", 100), yield* watched("middle", 200)]
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("10 millis")
      yield* Fiber.joinAll(fibers)
      expect(endedAt).toEqual({ short: 100, middle: 200, long: 300 })
      // And a new one after all of them, with the timer dropped in between.
      const late = yield* Effect.fork(Effect.exit(timeouts.timeoutFail(Effect.never, 100, () => "late")))
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(late)).toEqual(Exit.fail("late"))
    })
  )

  it.scoped("interrupting the caller interrupts the attempt and waits for it; its timer goes with it", () =>
    Effect.gen(function* () {
      const timeouts = yield* AttemptTimeouts.make
      const started = yield* Deferred.make<void>()
      const released: Array<string> = []
      const attempt = Effect.onInterrupt(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never), () =>
        Effect.zipRight(
          Effect.sleep("5 millis"),
          Effect.sync(() => released.push("released"))
        )
      )
      const caller = yield* Effect.fork(timeouts.timeoutFail(attempt, 1_000, () => "timeout"))
      yield* Deferred.await(started)
      const interrupted = yield* Effect.fork(Fiber.interrupt(caller))
      yield* TestClock.adjust("5 millis")
      const exit = yield* Fiber.join(interrupted)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(released).toEqual(["released"])
      // Nothing fires for it later.
      yield* TestClock.adjust("2 seconds")
      expect(released).toEqual(["released"])
    })
  )

  it.scoped("an attempt's FiberRefs come back to the caller on success, as with Effect.timeoutFail", () =>
    Effect.gen(function* () {
      const timeouts = yield* AttemptTimeouts.make
      const ref = yield* FiberRef.make(0)
      yield* timeouts.timeoutFail(FiberRef.set(ref, 7), 1_000, () => "timeout")
      expect(yield* FiberRef.get(ref)).toBe(7)
    })
  )

  it.scoped("a caller on another clock than the client's falls back to Effect.timeoutFail on its own clock", () =>
    Effect.gen(function* () {
      const testClock = yield* Effect.clock
      // Reads the same time, but its timer never fires: only the caller's own clock can end the attempt.
      const clientClock: Clock.Clock = {
        [Clock.ClockTypeId]: Clock.ClockTypeId,
        unsafeCurrentTimeMillis: () => testClock.unsafeCurrentTimeMillis(),
        currentTimeMillis: testClock.currentTimeMillis,
        unsafeCurrentTimeNanos: () => testClock.unsafeCurrentTimeNanos(),
        currentTimeNanos: testClock.currentTimeNanos,
        sleep: () => Effect.never
      }
      const timeouts = yield* Effect.withClock(AttemptTimeouts.make, clientClock)
      const fiber = yield* Effect.fork(Effect.exit(timeouts.timeoutFail(Effect.never, 50, () => "timeout")))
      yield* TestClock.adjust("50 millis")
      expect(yield* Fiber.join(fiber)).toEqual(Exit.fail("timeout"))
    })
  )
})
