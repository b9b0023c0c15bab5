/**
 * Waiting for events in tests that mix real I/O with the TestClock. Every wait
 * is bounded in real time (generous, for a loaded 2-core machine) and fails
 * naming what it waited for; none proves that something did not happen by
 * letting time pass.
 *
 * Effect gave us `TestClock`, `TestServices.provideLive` (real time inside a
 * test) and `Effect.timeout`; this module adds the bounded waits with a
 * message, shared by every package's tests.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"

/**
 * How long a test waits in real time for an event before it fails.
 *
 * @since 0.1.0
 * @category constants
 */
export const EVENT_TIMEOUT: Duration.DurationInput = "30 seconds"

const realMillis = TestServices.provideLive(Clock.currentTimeMillis)

const timedOut = (what: string, within: Duration.DurationInput) =>
  Effect.dieMessage(`timed out after ${Duration.toMillis(within)} ms (real time) waiting until ${what}`)

/**
 * Polls `check` every 2 ms of real time until it holds.
 *
 * @since 0.1.0
 * @category combinators
 */
export const eventually = (
  what: string,
  check: Effect.Effect<boolean> | (() => boolean),
  within: Duration.DurationInput = EVENT_TIMEOUT
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const holds = typeof check === "function" ? Effect.sync(check) : check
    const deadline = (yield* realMillis) + Duration.toMillis(within)
    while (!(yield* holds)) {
      if ((yield* realMillis) > deadline) return yield* timedOut(what, within)
      yield* TestServices.provideLive(Effect.sleep("2 millis"))
    }
  })

/**
 * Waits (in real time, bounded) for `effect`, which completes on an event.
 *
 * @since 0.1.0
 * @category combinators
 */
export const awaitEvent = <A, E>(
  what: string,
  effect: Effect.Effect<A, E>,
  within: Duration.DurationInput = EVENT_TIMEOUT
): Effect.Effect<A, E> =>
  Effect.flatten(
    Effect.raceFirst(
      Effect.exit(effect),
      Effect.zipRight(TestServices.provideLive(Effect.sleep(within)), timedOut(what, within))
    )
  )

/**
 * Waits (in real time, bounded) for `deferred` to complete.
 *
 * @since 0.1.0
 * @category combinators
 */
export const awaitDeferred = <A, E>(
  what: string,
  deferred: Deferred.Deferred<A, E>,
  within: Duration.DurationInput = EVENT_TIMEOUT
): Effect.Effect<A, E> => awaitEvent(what, Deferred.await(deferred), within)

/**
 * Waits (in real time, bounded) for `fiber` to end, and answers as it ended.
 *
 * @since 0.1.0
 * @category combinators
 */
export const awaitFiber = <A, E>(
  what: string,
  fiber: Fiber.Fiber<A, E>,
  within: Duration.DurationInput = EVENT_TIMEOUT
): Effect.Effect<A, E> => awaitEvent(what, Fiber.join(fiber), within)

/**
 * Waits until some fiber sleeps on the TestClock until exactly `wakeAt` (TestClock millis).
 *
 * @since 0.1.0
 * @category combinators
 */
export const awaitSleeperAt = (what: string, wakeAt: number, within: Duration.DurationInput = EVENT_TIMEOUT) =>
  eventually(
    what,
    Effect.map(TestClock.sleeps(), (sleeps) => Chunk.toReadonlyArray(sleeps).includes(wakeAt)),
    within
  )
