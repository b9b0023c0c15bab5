/**
 * The Executor's one timer, for attempt timeouts and deadlines alike: a
 * watcher per executor that, when a watch's time is up, interrupts the fiber
 * an attempt runs on (the request's own: no fiber per attempt) or runs the
 * watch's action (a request's deadline while it waits: no fiber per request).
 * The attempt reads an interruption it did not ask for as its timeout, after
 * the attempt's finalizers have run, as `Effect.timeoutFail` would answer;
 * the request goes on from it on a new fiber (`executorAttempt.ts`).
 *
 * Effect gave us `Effect.timeoutFail`, `Clock` and interruption. But
 * `timeoutFail` races the effect against a sleep, forking and arming a timer
 * for every call, which costs about as much as the rest of an Executor's
 * call (measured with `bench/profileSubmit.ts`: ~45 µs of CPU per call
 * against ~30 µs for the whole submit). This module adds the shared watcher:
 * deadlines in a binary heap, one timer (a `Clock` sleep, so `TestClock`
 * drives it) for the soonest live one; a watch that ends first is dropped
 * from the top lazily, so with steady traffic under a constant timeout the
 * watcher wakes about once per timeout length, not once per call. Times are
 * the Clock's monotonic reading (`clockMillis`), so a deadline never moves.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import { clockMillis } from "./gcra.js"

/** One watch: what to do when its time is up. */
export interface Watch {
  readonly deadline: number
  /** Undefined once it ran or was unwatched. */
  action: (() => void) | undefined
  /** Set when the watcher ran its action. */
  expired: boolean
}

export interface ExecutorTimer {
  /** Interrupts `fiber` once `millis` have passed on the Clock, unless it is unwatched first. */
  readonly watch: (fiber: Fiber.RuntimeFiber<unknown, unknown>, millis: number) => Watch
  /**
   * Runs `action` once `millis` have passed on the Clock, unless it is
   * unwatched first. It runs inside the watcher's step: it must not block
   * (fork what has to wait).
   */
  readonly after: (millis: number, action: () => void) => Watch
  /** Stops watching (the fiber ended); true when the watcher had run its action. */
  readonly unwatch: (watch: Watch) => boolean
}

/** A JS timer holds at most this long; a longer wait is slept in steps. */
const MAX_SLEEP_MILLIS = 2 ** 31 - 1

export const make: Effect.Effect<ExecutorTimer, never, Scope.Scope> = Effect.gen(function* () {
  const clock = yield* Effect.clock
  /** A binary min-heap by deadline; unwatched entries stay until they reach the top (or a compaction). */
  let heap: Array<Watch> = []
  let live = 0
  /** When the watcher looks next (Infinity: it waits for a watch). */
  let alarmAt = Number.POSITIVE_INFINITY
  let wakeUp: Deferred.Deferred<void> | undefined

  const up = (index: number) => {
    const item = heap[index]!
    while (index > 0) {
      const parent = (index - 1) >> 1
      if (heap[parent]!.deadline <= item.deadline) break
      heap[index] = heap[parent]!
      index = parent
    }
    heap[index] = item
  }

  const down = (index: number) => {
    const item = heap[index]!
    const length = heap.length
    while (true) {
      let child = 2 * index + 1
      if (child >= length) break
      if (child + 1 < length && heap[child + 1]!.deadline < heap[child]!.deadline) child++
      if (heap[child]!.deadline >= item.deadline) break
      heap[index] = heap[child]!
      index = child
    }
    heap[index] = item
  }

  const pop = () => {
    const last = heap.pop()!
    if (heap.length > 0) {
      heap[0] = last
      down(0)
    }
  }

  /** Drops unwatched entries once they outnumber the live ones (and a floor). */
  const compact = () => {
    if (heap.length < 1024 || heap.length < 2 * live) return
    heap = heap.filter((watch) => watch.action !== undefined)
    for (let index = (heap.length >> 1) - 1; index >= 0; index--) down(index)
  }

  const wake = () => {
    const signal = wakeUp
    if (signal === undefined) return
    wakeUp = undefined
    alarmAt = Number.NEGATIVE_INFINITY
    Deferred.unsafeDone(signal, Exit.void)
  }

  /** Runs the watches whose time has passed, then sleeps until the soonest live one (or a wake-up). */
  const look = Effect.suspend(() => {
    const now = clockMillis(clock)
    while (heap.length > 0) {
      const top = heap[0]!
      const action = top.action
      if (action !== undefined && top.deadline > now) break
      pop()
      if (action === undefined) continue
      top.action = undefined
      live--
      top.expired = true
      action()
    }
    const soonest = heap.length === 0 ? Number.POSITIVE_INFINITY : heap[0]!.deadline
    const signal = Deferred.unsafeMake<void>(FiberId.none)
    wakeUp = signal
    alarmAt = soonest
    if (soonest === Number.POSITIVE_INFINITY) return Deferred.await(signal)
    // Whole milliseconds, rounded up, so that it wakes at or after the deadline (never a sleep of nothing).
    const millis = Math.min(MAX_SLEEP_MILLIS, Math.max(1, Math.ceil(soonest - now)))
    return Effect.raceFirst(Deferred.await(signal), Effect.sleep(Duration.millis(millis)))
  })
  yield* Effect.forkScoped(Effect.forever(look))

  const after = (millis: number, action: () => void): Watch => {
    const entry: Watch = { deadline: clockMillis(clock) + millis, action, expired: false }
    heap.push(entry)
    up(heap.length - 1)
    live++
    if (entry.deadline < alarmAt) wake()
    return entry
  }

  const watch = (fiber: Fiber.RuntimeFiber<unknown, unknown>, millis: number): Watch =>
    after(millis, () => fiber.unsafeInterruptAsFork(FiberId.none))

  const unwatch = (entry: Watch): boolean => {
    if (entry.action !== undefined) {
      entry.action = undefined
      live--
      compact()
    }
    return entry.expired
  }

  return { watch, after, unwatch }
})
