/**
 * The Executor's intake: a bounded number of queue slots, and what `submit`
 * does when they are all taken: wait for room (`"suspend"`, in arrival
 * order) or fail at once (`"fail"`, `QueueFull`). A slot is held by a new
 * request from the moment it is queued until it first leaves its lane's queue
 * (or is cancelled there); a retry queued again already had its place and
 * takes none. A batch waits in the same line, but is woken only once the
 * queue has drained to half, then refills in bulk; a submit does not wait
 * behind a batch for that: it takes the first slot that frees, so that its
 * priority counts while a large batch runs.
 *
 * Effect gave us `Deferred` (a waiter's wake-up) and interruption (a waiter
 * interrupted after it was promised a slot passes the slot on); this module
 * adds the line of waiters and the promised slots.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { ExecutorError } from "./executorError.js"

interface RoomWaiter {
  readonly deferred: Deferred.Deferred<void, ExecutorError>
  readonly bulk: boolean
  /** False once its waiter was interrupted. */
  active: boolean
  /** True once it was promised a slot. */
  woken: boolean
}

export const make = (executor: string, capacity: number, whenFull: "suspend" | "fail") => {
  const waiters: Array<RoomWaiter> = []
  let held = 0
  /** Slots promised to woken waiters that have not queued their request yet. */
  let promised = 0
  /** Submits (not batches) in the line, neither woken nor interrupted. */
  let singles = 0
  const lowWater = Math.floor(capacity / 2)
  const room = () => held + promised < capacity

  /** Wakes waiters in line order while there is room; a batch above the low water mark lets those behind it pass. */
  const wake = () => {
    let i = 0
    while (i < waiters.length && room()) {
      const waiter = waiters[i]!
      if (!waiter.active) {
        waiters.splice(i, 1)
        continue
      }
      if (waiter.bulk && held + promised > lowWater) {
        if (singles === 0) return
        i++
        continue
      }
      waiters.splice(i, 1)
      if (!waiter.bulk) singles--
      promised++
      waiter.woken = true
      Deferred.unsafeDone(waiter.deferred, Exit.void)
    }
  }

  /** Room for a submit: a batch waiting to refill in bulk does not hold it up. */
  const hasRoom = () => singles === 0 && room()

  /** Waits for a promised slot; a waiter interrupted after being woken passes its slot on. */
  const waitForRoom = (bulk: boolean): Effect.Effect<void, ExecutorError> =>
    Effect.suspend(() => {
      const waiter: RoomWaiter = { deferred: Deferred.unsafeMake(FiberId.none), bulk, active: true, woken: false }
      waiters.push(waiter)
      if (!bulk) singles++
      return Effect.onInterrupt(Deferred.await(waiter.deferred), () =>
        Effect.sync(() => {
          if (!waiter.active) return
          waiter.active = false
          if (waiter.woken) {
            promised--
            wake()
          } else if (!bulk) singles--
        })
      )
    })

  return {
    hasRoom,
    /** Room for a batch: it also waits behind everyone already in line. */
    hasRoomForBatch: () => waiters.length === 0 && room(),
    /**
     * A slot for one new request: at once if there is room, else per
     * `whenFull`. Once it answers, the caller must `take` (or `unpromise`) it
     * in the same step.
     */
    reserve: (): Effect.Effect<void, ExecutorError> => {
      if (hasRoom()) return Effect.void
      if (whenFull === "fail") {
        return Effect.fail(new ExecutorError({ executor, reason: "QueueFull", queueCapacity: capacity }))
      }
      return Effect.map(waitForRoom(false), () => {
        promised--
      })
    },
    waitForRoom,
    /** A promised slot (from `waitForRoom`) that will not be used. */
    unpromise: () => {
      promised--
      wake()
    },
    /** Turns a promised slot into a held one. */
    takePromised: () => {
      promised--
      held++
    },
    take: () => {
      held++
    },
    release: () => {
      held--
      wake()
    },
    /** Stops intake: every waiter fails with `NotAccepting`. */
    close: () => {
      singles = 0
      for (const waiter of waiters.splice(0)) {
        if (waiter.active) {
          waiter.active = false
          Deferred.unsafeDone(waiter.deferred, Exit.fail(new ExecutorError({ executor, reason: "NotAccepting" })))
        }
      }
    },
    busy: () => promised > 0,
    waitingForRoom: () => waiters.filter((waiter) => waiter.active).length
  }
}
