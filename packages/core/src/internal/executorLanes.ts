/**
 * Per-key lanes and dispatch. Each key waits in a lane of its own (a
 * priority queue, FIFO within a priority). A lane's admission fiber takes its
 * head out (PROCESSING), asks the key's breaker and the rate limiter to admit
 * it, holding no concurrency permit, and puts it on the ready list; a lane
 * whose limits cannot pay yet holds only its own requests. One starter fiber
 * hands concurrency permits (a `Semaphore`) to the ready list in priority
 * order, oldest first within a priority, so lanes of equal priority are
 * served in the order they were admitted: round robin, since each lane has at
 * most one request admitted and not yet started.
 *
 * Effect gave us `Semaphore` (the permits, global and per key), `FiberSet`
 * (the background fibers, interrupted with the executor's scope), `Deferred`
 * (wake-ups) and interruption (a request cancelled while its lane admits it:
 * the lane's fiber is interrupted, and the limiter's acquire leaves having
 * paid nothing). This module adds the lanes themselves and the hand-over from
 * admission to permit.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as RateLimiter from "../RateLimiter.js"
import * as Admission from "./executorAdmission.js"
import type { Request, Ticket } from "./executorRequest.js"
import { PriorityQueue } from "./priorityQueue.js"

/** What the Executor lends its lanes. */
export interface Host {
  readonly now: () => number
  readonly limiter: RateLimiter.RateLimiterShape | undefined
  readonly concurrency: number
  /** At most this many attempts of one key run at once (undefined: no cap of its own). */
  readonly keyConcurrency: number | undefined
  /** Forks a background fiber in the executor's scope. */
  readonly fork: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
  readonly publish: (request: Request) => void
  /** A request left its lane's queue (its queue slot is free). */
  readonly dequeued: (request: Request) => void
  /** Hands a request its ticket: a grant (with a permit held) or a refusal. */
  readonly deliver: (request: Request, ticket: Ticket) => void
}

/** A lane's verdict on its head: admitted, with what it paid, or refused before it was sent. */
type Admitted =
  | { readonly _tag: "Admitted"; readonly reservations: ReadonlyArray<RateLimiter.Reservation> }
  | { readonly _tag: "Refused"; readonly error: unknown }

interface Lane {
  readonly key: string
  readonly queue: PriorityQueue<Request>
  /** Live requests in `queue`. */
  queued: number
  /** Its admission fiber, while the lane has work. */
  admitter: Fiber.RuntimeFiber<void> | undefined
  /** Which admission fiber is the lane's own: one that was replaced stops at its next turn. */
  generation: number
  /** The request out of the queue: being admitted, or admitted and waiting for a permit. */
  admitting: Request | undefined
  /** Completed once `admitting` has started or left. */
  handOff: Deferred.Deferred<void> | undefined
  /** When the lane's last admission was charged (its next head may date its charge back to it). */
  lastChargedAt: number | undefined
  /** `admitting` is admitted and on the ready list, waiting for a permit. */
  onReadyList: boolean
  /** Attempts of this key holding a permit. */
  running: number
  /** Completed when an attempt of this key gives its permit back (a capped lane waits on it). */
  permitFreed: Deferred.Deferred<void> | undefined
}

export const make = (host: Host) => {
  const lanes = new Map<string, Lane>()
  const permits = Effect.unsafeMakeSemaphore(host.concurrency)
  const ready = new PriorityQueue<Request>((request) => request.isLive && request.status === "PROCESSING")
  /** Requests on the ready list (admitted, waiting for a permit). */
  let readyCount = 0
  let inFlight = 0
  let starter: Fiber.RuntimeFiber<void> | undefined
  let readySignal: Deferred.Deferred<void> | undefined

  const laneOf = (key: string): Lane => {
    let lane = lanes.get(key)
    if (lane === undefined) {
      lane = {
        key,
        queue: new PriorityQueue((request) => request.isLive && request.status === "QUEUED"),
        queued: 0,
        admitter: undefined,
        generation: 0,
        admitting: undefined,
        handOff: undefined,
        lastChargedAt: undefined,
        onReadyList: false,
        running: 0,
        permitFreed: undefined
      }
      lanes.set(key, lane)
    }
    return lane
  }

  // ---- the starter: permits to the ready list -------------------------------

  const signalReady = () => {
    const signal = readySignal
    if (signal === undefined) return
    readySignal = undefined
    Deferred.unsafeDone(signal, Exit.void)
  }

  /** Waits for a ready request, takes a permit, and starts the best ready request (if one is still there). */
  const startNext: Effect.Effect<void> = Effect.suspend(() => {
    if (readyCount === 0) {
      const signal = Deferred.unsafeMake<void>(FiberId.none)
      readySignal = signal
      return Deferred.await(signal)
    }
    return Effect.flatMap(permits.take(1), () => {
      const request = ready.pop()
      if (request === undefined) return permits.release(1)
      readyCount--
      const lane = laneOf(request.key)
      inFlight++
      lane.running++
      request.holdsPermit = true
      endHandOff(lane, request)
      host.deliver(request, { _tag: "Granted" })
      return Effect.void
    })
  })

  const ensureStarter = () => {
    if (starter === undefined) starter = host.fork(Effect.forever(startNext))
  }

  /** A started attempt gave its permit back. */
  const releasePermit = (request: Request): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (!request.holdsPermit) return Effect.void
      request.holdsPermit = false
      inFlight--
      const lane = laneOf(request.key)
      lane.running--
      const freed = lane.permitFreed
      lane.permitFreed = undefined
      if (freed !== undefined) Deferred.unsafeDone(freed, Exit.void)
      if (lane.running === 0 && lane.admitter === undefined && lane.queued === 0) lanes.delete(lane.key)
      return Effect.asVoid(permits.release(1))
    })

  // ---- a lane's admission fiber ---------------------------------------------

  const endHandOff = (lane: Lane, request: Request) => {
    if (lane.admitting !== request) return
    lane.admitting = undefined
    lane.onReadyList = false
    const handOff = lane.handOff
    lane.handOff = undefined
    if (handOff !== undefined) Deferred.unsafeDone(handOff, Exit.void)
  }

  /** Admits `request` for its next attempt: its breaker, then every limit at once. */
  const admit = (lane: Lane, request: Request): Effect.Effect<Admitted> => {
    const breaker = request.settings.breaker
    const check = breaker === undefined ? Effect.void : breaker.check(request.key)
    const limiter = host.limiter
    if (limiter === undefined) {
      return Effect.match(check, {
        onFailure: (error): Admitted => ({ _tag: "Refused", error }),
        onSuccess: (): Admitted => ({ _tag: "Admitted", reservations: [] })
      })
    }
    // A head that was already queued when the lane last charged may date its charge back to that charge: a
    // pause between two admissions (a late timer, a busy process) then costs the backlog no rate.
    const waitingSince =
      lane.lastChargedAt !== undefined && (request.queuedAt ?? Number.POSITIVE_INFINITY) <= lane.lastChargedAt
        ? lane.lastChargedAt
        : undefined
    return Effect.zipRight(
      check,
      Admission.admit(limiter, request.cost, {
        key: request.key,
        installments: request.installments,
        waitingSince
      })
    ).pipe(
      Effect.match({
        onFailure: (error): Admitted => ({ _tag: "Refused", error }),
        onSuccess: (reservations): Admitted => {
          const last = reservations[reservations.length - 1]
          lane.lastChargedAt = last?.at
          return { _tag: "Admitted", reservations }
        }
      })
    )
  }

  /** One turn of a lane: its head admitted and handed to the starter (true), or the lane is empty (false). */
  const turn = (lane: Lane): Effect.Effect<boolean> =>
    Effect.suspend(() => {
      const request = lane.queue.pop()
      if (request === undefined) {
        lane.admitter = undefined
        lane.lastChargedAt = undefined
        if (lane.running === 0) lanes.delete(lane.key)
        return Effect.succeed(false)
      }
      lane.queued--
      lane.admitting = request
      request.status = "PROCESSING"
      request.processingAt = host.now()
      host.publish(request)
      host.dequeued(request)
      const handOff = Deferred.unsafeMake<void>(FiberId.none)
      lane.handOff = handOff
      return Effect.flatMap(admit(lane, request), (ticket) => {
        if (lane.admitting !== request) {
          // Cancelled meanwhile (its canceller refunds what it held).
          if (ticket._tag === "Admitted" && host.limiter !== undefined) {
            return Effect.as(Admission.refundAll(host.limiter, ticket.reservations), true)
          }
          return Effect.succeed(true)
        }
        if (ticket._tag === "Refused") {
          endHandOff(lane, request)
          host.deliver(request, ticket)
          return Effect.succeed(true)
        }
        request.reservations = ticket.reservations
        lane.onReadyList = true
        ready.push(request)
        readyCount++
        signalReady()
        return Effect.as(Deferred.await(handOff), true)
      })
    })

  /** With a cap per key: waits until fewer than the cap of the key's attempts hold a permit. */
  const keyRoom = (lane: Lane): Effect.Effect<void> =>
    Effect.suspend(() => {
      const cap = host.keyConcurrency
      if (cap === undefined || lane.running < cap) return Effect.void
      const freed = Deferred.unsafeMake<void>(FiberId.none)
      lane.permitFreed = freed
      return Effect.zipRight(Deferred.await(freed), keyRoom(lane))
    })

  /** The lane's loop, one turn after another until it is empty, or until it was replaced. */
  const admitLoop = (lane: Lane, generation: number): Effect.Effect<void> =>
    Effect.suspend(() =>
      lane.generation !== generation
        ? Effect.void
        : Effect.flatMap(Effect.zipRight(keyRoom(lane), turn(lane)), (went) =>
            went ? admitLoop(lane, generation) : Effect.void
          )
    )

  const ensureAdmitter = (lane: Lane) => {
    // From the scheduler's next turn, as a woken dispatcher would: callers arriving together are
    // ordered by priority before the lane takes its head.
    if (lane.admitter === undefined) {
      lane.admitter = host.fork(Effect.zipRight(Effect.yieldNow(), admitLoop(lane, ++lane.generation)))
    }
  }

  // ---- what the Executor calls -----------------------------------------------

  /** Puts a request into its lane (QUEUED). */
  const push = (request: Request) => {
    const lane = laneOf(request.key)
    request.status = "QUEUED"
    request.queuedAt = host.now()
    lane.queue.push(request)
    lane.queued++
    host.publish(request)
    ensureStarter()
    ensureAdmitter(lane)
  }

  /**
   * Takes a request that is leaving (cancelled, expired, abandoned) out of
   * its lane or the ready list, and answers the reservations it held (to be
   * refunded by the caller). Its status must still be the one it left from.
   */
  const remove = (request: Request): ReadonlyArray<RateLimiter.Reservation> => {
    const lane = lanes.get(request.key)
    if (lane === undefined) return []
    if (request.status === "QUEUED") {
      lane.queued--
      lane.queue.compact(lane.queued)
      return []
    }
    if (lane.admitting !== request) return []
    const held = request.reservations ?? []
    request.reservations = undefined
    if (lane.onReadyList) {
      readyCount--
      endHandOff(lane, request)
      return held
    }
    // Its lane is admitting it: interrupt the admission (the limiter's acquire leaves having paid nothing),
    // and start the lane again for the requests behind it.
    lane.admitter?.unsafeInterruptAsFork(FiberId.none)
    lane.admitter = undefined
    lane.generation++
    lane.admitting = undefined
    lane.handOff = undefined
    if (lane.queued > 0) ensureAdmitter(lane)
    return held
  }

  return {
    push,
    remove,
    releasePermit,
    stats: () => {
      let queued = 0
      let admitting = 0
      const byKey: Record<string, { queued: number; admitting: number; inFlight: number }> = {}
      for (const lane of lanes.values()) {
        queued += lane.queued
        if (lane.admitting !== undefined) admitting++
        byKey[lane.key] = {
          queued: lane.queued,
          admitting: lane.admitting === undefined ? 0 : 1,
          inFlight: lane.running
        }
      }
      return { queued, admitting, inFlight, byKey }
    },
    /** Every request still in a lane or on the ready list (for shutdown). */
    waiting: (): Array<Request> => {
      const all: Array<Request> = []
      for (const lane of lanes.values()) {
        if (lane.admitting !== undefined) all.push(lane.admitting)
        all.push(...lane.queue.drain())
      }
      return all
    }
  }
}
