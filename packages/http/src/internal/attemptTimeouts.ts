/**
 * The per-attempt timeouts of a plain ApiClient (built with `executor: false`,
 * or a call with a timeout of zero), watched by one timer fiber per client
 * instead of a race per call. A client with an executor hands each attempt's
 * timeout to the executor instead (`onTimeout`), whose own timer interrupts
 * the fiber the attempt already runs on: no fiber per attempt at all.
 *
 * An attempt runs in a child fiber and registers its deadline (on the
 * client's `Clock`); the caller waits for the child's exit. The timer fiber
 * sleeps until the soonest deadline; when one has passed it interrupts that
 * attempt's fiber (as the caller would), and the caller, seeing the
 * interruption it asked for, fails with the timeout's error. What it answers
 * is what `Effect.timeoutFail` answers: the attempt's own exit if it ended
 * first (its FiberRefs inherited on success), else the timeout's error once
 * the attempt has been interrupted and its finalizers have run; interrupting
 * the caller interrupts the attempt and waits for it.
 *
 * Deadlines are kept by timeout length, one `Set` each in the order they
 * were taken: on a clock that never goes back, a lane's first deadline is its
 * soonest, so registering, finding the soonest and removing are O(1) per
 * distinct timeout length. The timer fiber is woken only when a deadline
 * comes sooner than the one it sleeps for, or when nothing is left to watch
 * (then it drops its timer, so that an idle client holds no timer).
 *
 * Effect gave us `Effect.timeoutFail`, `Clock`, `Fiber` and interruption;
 * `timeoutFail` races two fibers (the effect and a sleep) and arms a timer
 * for every call, which costs about as much as the rest of a call to a fast
 * server. This module adds the shared watcher: one fiber per call, no timer
 * per call. A call whose fiber runs on another `Clock` than the client's (a
 * test clock provided after the client was built), with a timeout no timer
 * can hold, or on a clock that went back, takes `Effect.timeoutFail`.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"

/** Longer than a JS timer can hold: left to `Effect.timeoutFail`, whose clock decides. */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

interface Lane {
  readonly millis: number
  /** In the order they were registered, which is deadline order. */
  readonly watches: Set<Watch>
  /** The latest deadline registered (a deadline before it means the clock went back). */
  last: number
}

interface Watch {
  readonly lane: Lane
  readonly deadline: number
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  /** The caller, as whom the attempt is interrupted. */
  readonly caller: FiberId.FiberId
  /** Set by the timer fiber when it interrupted the attempt. */
  expired: boolean
}

export interface AttemptTimeouts {
  /** `Effect.timeoutFail(self, { duration: millis, onTimeout })`, watched by the client's timer fiber. */
  readonly timeoutFail: <A, E, R, E1>(
    self: Effect.Effect<A, E, R>,
    millis: number,
    onTimeout: () => E1
  ) => Effect.Effect<A, E | E1, R>
}

export const make: Effect.Effect<AttemptTimeouts, never, Scope.Scope> = Effect.gen(function* () {
  const clock = yield* Effect.clock
  const lanes = new Map<number, Lane>()
  let watched = 0
  /** When the timer fiber looks next (Infinity: it waits for a watch). */
  let alarmAt = Number.POSITIVE_INFINITY
  /** Completed to make the timer fiber look again now. */
  let wakeUp: Deferred.Deferred<void> | undefined

  const wake = () => {
    const signal = wakeUp
    if (signal === undefined) return
    wakeUp = undefined
    alarmAt = Number.NEGATIVE_INFINITY // looking now: no other watch needs to wake it
    Deferred.unsafeDone(signal, Exit.void)
  }

  const remove = (watch: Watch) => {
    const lane = watch.lane
    if (!lane.watches.delete(watch)) return false
    watched--
    if (lane.watches.size === 0) lanes.delete(lane.millis)
    return true
  }

  /** Interrupts the attempts whose deadline has passed, then sleeps until the soonest left (or a wake-up). */
  const look = Effect.suspend(() => {
    const now = clock.unsafeCurrentTimeMillis()
    let soonest = Number.POSITIVE_INFINITY
    for (const lane of lanes.values()) {
      for (const watch of lane.watches) {
        if (watch.deadline > now) {
          if (watch.deadline < soonest) soonest = watch.deadline
          break
        }
        remove(watch)
        watch.expired = true
        watch.fiber.unsafeInterruptAsFork(watch.caller)
      }
    }
    const signal = Deferred.unsafeMake<void>(FiberId.none)
    wakeUp = signal
    alarmAt = soonest
    return soonest === Number.POSITIVE_INFINITY
      ? Deferred.await(signal)
      : // Whole milliseconds (a timer's resolution), so that it wakes at or after the deadline: a clock
        // with fractional times can land a hair before it, and a sleep of nothing would look again at once.
        Effect.raceFirst(Deferred.await(signal), Effect.sleep(Duration.millis(Math.ceil(soonest - now))))
  })
  yield* Effect.forkScoped(Effect.forever(look))

  const timeoutFail = <A, E, R, E1>(
    self: Effect.Effect<A, E, R>,
    millis: number,
    onTimeout: () => E1
  ): Effect.Effect<A, E | E1, R> =>
    Effect.clockWith((current) => {
      const fallback = () => Effect.timeoutFail(self, { duration: Duration.millis(millis), onTimeout })
      if (current !== clock || !(millis >= 0 && millis <= MAX_TIMER_MILLIS)) return fallback()
      const deadline = clock.unsafeCurrentTimeMillis() + millis
      const known = lanes.get(millis)
      if (known !== undefined && deadline < known.last) return fallback()
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.fork(restore(self)), (fiber) =>
          Effect.fiberIdWith((caller) => {
            let lane = lanes.get(millis)
            if (lane === undefined) {
              lane = { millis, watches: new Set(), last: deadline }
              lanes.set(millis, lane)
            }
            lane.last = Math.max(lane.last, deadline)
            const watch: Watch = { lane, deadline, fiber, caller, expired: false }
            lane.watches.add(watch)
            watched++
            if (deadline < alarmAt) wake()
            // Waits uninterruptibly, as `timeoutFail` does: interrupting the caller interrupts its child.
            return Effect.flatMap(Fiber.await(fiber), (exit): Effect.Effect<A, E | E1> => {
              if (remove(watch) && watched === 0 && alarmAt !== Number.POSITIVE_INFINITY) wake()
              if (Exit.isSuccess(exit)) return Effect.as(fiber.inheritAll, exit.value)
              if (watch.expired && Cause.isInterruptedOnly(exit.cause)) return Effect.fail(onTimeout())
              return Effect.failCause(exit.cause)
            })
          })
        )
      )
    })

  return { timeoutFail }
})
