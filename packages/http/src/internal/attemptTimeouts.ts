/**
 * The per-attempt timeouts of a plain ApiClient (built with `executor: false`,
 * or a call with a timeout of zero), watched by one timer per client instead
 * of a race per call. A client with an executor hands each attempt's timeout
 * to the executor instead (`onTimeout`), whose own timer interrupts the fiber
 * the attempt already runs on: no fiber per attempt at all.
 *
 * An attempt runs in a child fiber watched by the client's `AttemptTimer`
 * (from `@sluice/core`, on the client's `Clock`); the caller waits for the
 * child's exit. When the timer interrupted the child, the caller fails with
 * the timeout's error. What it answers is what `Effect.timeoutFail` answers:
 * the attempt's own exit if it ended first (its FiberRefs inherited on
 * success), else the timeout's error once the attempt has been interrupted
 * and its finalizers have run; interrupting the caller interrupts the attempt
 * and waits for it.
 *
 * Effect gave us `Effect.timeoutFail`, which races two fibers (the effect and
 * a sleep) and arms a timer for every call; core's `AttemptTimer` gives the
 * shared watcher. This module adds the child fiber and the reading of its
 * exit. A call whose fiber runs on another `Clock` than the client's (a test
 * clock provided after the client was built), with a timeout no timer can
 * hold, or on a clock that went back, takes `Effect.timeoutFail`.
 */
import { AttemptTimer } from "@sluice/core"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"

export interface AttemptTimeouts {
  /** `Effect.timeoutFail(self, { duration: millis, onTimeout })`, watched by the client's timer. */
  readonly timeoutFail: <A, E, R, E1>(
    self: Effect.Effect<A, E, R>,
    millis: number,
    onTimeout: () => E1
  ) => Effect.Effect<A, E | E1, R>
}

export const make: Effect.Effect<AttemptTimeouts, never, Scope.Scope> = Effect.gen(function* () {
  const clock = yield* Effect.clock
  const timer = yield* AttemptTimer.make

  const timeoutFail = <A, E, R, E1>(
    self: Effect.Effect<A, E, R>,
    millis: number,
    onTimeout: () => E1
  ): Effect.Effect<A, E | E1, R> =>
    Effect.clockWith((current) => {
      const duration = Duration.millis(millis)
      if (current !== clock) return Effect.timeoutFail(self, { duration, onTimeout })
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.fork(restore(self)), (fiber) => {
          const watch = timer.watch(fiber, millis)
          if (watch === undefined) {
            // Not watchable (a timeout no timer holds, a clock that went back): the wait for the child races
            // a sleep instead, and a child that did not end in time (or whose caller left) is interrupted.
            return restore(Effect.timeoutFail(Fiber.join(fiber), { duration, onTimeout })).pipe(
              Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Fiber.interrupt(fiber)))
            )
          }
          // Waits uninterruptibly, as `timeoutFail` does: interrupting the caller interrupts its child.
          return Effect.flatMap(Fiber.await(fiber), (exit): Effect.Effect<A, E | E1> => {
            const expired = timer.unwatch(watch)
            if (Exit.isSuccess(exit)) return Effect.as(fiber.inheritAll, exit.value)
            if (expired && Cause.isInterruptedOnly(exit.cause)) return Effect.fail(onTimeout())
            return Effect.failCause(exit.cause)
          })
        })
      )
    })

  return { timeoutFail }
})
