/**
 * The Executor's attempt timeouts for requests that run on a fiber of their
 * own: one timer fiber per executor watches every such fiber's deadline and
 * interrupts the fiber when it passes. The request's fiber is its attempt, so
 * interrupting it ends exactly that attempt; the executor then reads the
 * interruption it did not ask for as the attempt's timeout (`unwatch` tells
 * it whether the timer fired) and answers the timeout's error, as
 * `Effect.timeoutFail` would once the attempt had been interrupted and its
 * finalizers had run.
 *
 * Deadlines are kept by timeout length, one `Set` each in the order they
 * were taken: on a clock that never goes back, a lane's first deadline is its
 * soonest, so watching, finding the soonest and unwatching are O(1) per
 * distinct timeout length. The timer fiber is woken only when a deadline
 * comes sooner than the one it sleeps for, or when nothing is left to watch
 * (then it drops its timer, so that an idle executor holds no timer).
 *
 * Effect gave us `Effect.timeoutFail`, `Clock`, `Fiber` and interruption;
 * `timeoutFail` forks the effect into a child fiber, races it against a sleep
 * and arms a timer for every call, which costs about as much as the rest of a
 * call to a fast server. This module adds the shared watcher: no fiber and no
 * timer per call. A timeout no timer can hold, or a clock that went back,
 * is not watched (`watch` answers undefined): the caller then takes
 * `Effect.timeoutFail`.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"

/** Longer than a JS timer can hold: left to `Effect.timeoutFail`, whose clock decides. */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

interface Lane {
  readonly millis: number
  /** In the order they were taken, which is deadline order. */
  readonly watches: Set<Watch>
  /** The latest deadline taken (a deadline before it means the clock went back). */
  last: number
}

/** One watched fiber. */
export interface Watch {
  readonly lane: Lane
  readonly deadline: number
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  /** Set by the timer fiber when it interrupted the fiber. */
  expired: boolean
}

export interface AttemptTimer {
  /**
   * Interrupts `fiber` once `millis` have passed on the executor's clock,
   * unless it is unwatched first. Undefined: not watched (a timeout no timer
   * can hold, or the clock went back); use `Effect.timeoutFail` instead.
   */
  readonly watch: (fiber: Fiber.RuntimeFiber<unknown, unknown>, millis: number) => Watch | undefined
  /** Stops watching (the fiber ended); true when the timer had interrupted it. */
  readonly unwatch: (watch: Watch) => boolean
}

export const make: Effect.Effect<AttemptTimer, never, Scope.Scope> = Effect.gen(function* () {
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

  /** Interrupts the fibers whose deadline has passed, then sleeps until the soonest left (or a wake-up). */
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
        watch.fiber.unsafeInterruptAsFork(FiberId.none)
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

  const watch = (fiber: Fiber.RuntimeFiber<unknown, unknown>, millis: number): Watch | undefined => {
    if (!(millis >= 0 && millis <= MAX_TIMER_MILLIS)) return undefined
    const deadline = clock.unsafeCurrentTimeMillis() + millis
    let lane = lanes.get(millis)
    if (lane !== undefined && deadline < lane.last) return undefined
    if (lane === undefined) {
      lane = { millis, watches: new Set(), last: deadline }
      lanes.set(millis, lane)
    }
    lane.last = deadline
    const watch: Watch = { lane, deadline, fiber, expired: false }
    lane.watches.add(watch)
    watched++
    if (deadline < alarmAt) wake()
    return watch
  }

  const unwatch = (watch: Watch): boolean => {
    if (remove(watch) && watched === 0 && alarmAt !== Number.POSITIVE_INFINITY) wake()
    return watch.expired
  }

  return { watch, unwatch }
})
