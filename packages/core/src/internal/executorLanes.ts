/**
 * Per-key lanes and dispatch. Each key waits in a lane of its own (a
 * priority queue, FIFO within a priority). A lane's admission fiber takes its
 * head out (PROCESSING) and asks the key's breaker and the rate limiter to
 * admit it, holding no concurrency permit; a lane whose limits cannot pay yet
 * holds only its own requests. Once admitted, the head takes a permit if one
 * is free and starts at once, on the lane's turn (so it starts when the
 * limiter admitted it); if none is free it waits, admitted, on the list of
 * heads waiting for a permit, and its lane waits with it (at most one request
 * per lane holds a reservation without a permit). A permit given back goes to
 * the best waiting head: highest priority first, then the one admitted
 * first, so lanes of equal priority take turns.
 *
 * Effect gave us `FiberSet` (the lanes' fibers, interrupted with the
 * executor's scope) and interruption (a request cancelled while its lane
 * admits it: the lane's fiber is interrupted, and the limiter's acquire leaves
 * having paid nothing). This module adds the lanes and the permits: Effect's
 * `Semaphore` serves its waiters first come, first served, and takes a
 * suspension to hand a permit on, where the heads waiting here are served by
 * priority across lanes, and a permit given back starts the next head in the
 * same step. So the permits are a count with that list of waiting heads.
 * The limit can change at run time (`setConcurrency`) as `Semaphore.resize`
 * does: lowered, it takes no permit back (running attempts finish, and no
 * head starts until fewer than the new limit run); raised, the waiting heads
 * start at once.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as RateLimiter from "../RateLimiter.js"
import * as Admission from "./executorAdmission.js"
import { Answer, type Request, type Ticket } from "./executorRequest.js"
import { PriorityQueue } from "./priorityQueue.js"

/** What the Executor lends its lanes. */
export interface Host {
  readonly now: () => number
  readonly limiter: RateLimiter.RateLimiterShape | undefined
  /** How many attempts may hold a permit at once, to begin with (see `setConcurrency`). */
  readonly concurrency: number
  /** At most this many attempts of one key hold a permit at once (undefined: no cap of its own). */
  readonly keyConcurrency: number | undefined
  /** Forks a background fiber in the executor's scope. */
  readonly fork: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
  readonly publish: (request: Request) => void
  /** A request left its lane's queue (its queue slot is free). */
  readonly dequeued: (request: Request) => void
  /**
   * Hands a request its ticket: a grant (it holds a permit, its reservations
   * are on it) or a refusal. `onTurn`: on its lane's fiber, which may run it
   * at once; otherwise inside someone else's step, which must not.
   */
  readonly deliver: (request: Request, ticket: Ticket, onTurn: boolean) => void
}

/** A lane's verdict on its head: admitted, with what it paid, or refused before it was sent. */
type Admitted =
  | { readonly _tag: "Admitted"; readonly reservations: ReadonlyArray<RateLimiter.Reservation> }
  | { readonly _tag: "Refused"; readonly error: unknown }

const NO_RESERVATIONS: ReadonlyArray<RateLimiter.Reservation> = []
const ADMITTED_FREE: Admitted = { _tag: "Admitted", reservations: NO_RESERVATIONS }

/** The lane's next turn, after `wait` if there is one. */
const thenAgain = (wait: Effect.Effect<void> | undefined, again: Effect.Effect<void>) =>
  wait === undefined ? again : Effect.zipRight(wait, again)

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
  /** `admitting` waits for a permit: the lane's fiber waits on this until it has one or has left. */
  handOff: Answer<void, never> | undefined
  /** When the lane's last admission was charged (its next head may date its charge back to it). */
  lastChargedAt: number | undefined
  /** Attempts of this key holding a permit. */
  running: number
  /** Completed when an attempt of this key gives its permit back (a capped lane waits on it). */
  permitFreed: Answer<void, never> | undefined
  /** Its fiber waits here for new work while the lane is empty and the key still has attempts running. */
  parked: Answer<void, never> | undefined
}

export const make = (host: Host) => {
  const lanes = new Map<string, Lane>()
  /** Heads admitted and waiting for a permit, best first (their status is PROCESSING). */
  const waiting = new PriorityQueue<Request>((request) => request.awaitingPermit)
  let waitingCount = 0
  /** The limit in force: `setConcurrency` changes it at run time. */
  let limit = host.concurrency
  /** Attempts holding a permit; above `limit` for a while after the limit was lowered. */
  let held = 0
  const hasFreePermit = () => held < limit
  let queuedTotal = 0
  let admittingTotal = 0

  const laneOf = (key: string): Lane => {
    let lane = lanes.get(key)
    if (lane === undefined) {
      lane = {
        key,
        queue: new PriorityQueue((request) => request.inLane),
        queued: 0,
        admitter: undefined,
        generation: 0,
        admitting: undefined,
        handOff: undefined,
        lastChargedAt: undefined,
        running: 0,
        permitFreed: undefined,
        parked: undefined
      }
      lanes.set(key, lane)
    }
    return lane
  }

  const dropIfIdle = (lane: Lane) => {
    if (lane.running === 0 && lane.admitter === undefined && lane.queued === 0 && lanes.get(lane.key) === lane) {
      lanes.delete(lane.key)
    }
  }

  /** The lane lets go of its head (started, refused or cancelled): it may take its next one. */
  const endTurn = (lane: Lane, request: Request) => {
    if (lane.admitting !== request) return
    lane.admitting = undefined
    admittingTotal--
    const handOff = lane.handOff
    lane.handOff = undefined
    handOff?.complete(Exit.void)
  }

  /** Gives `request` a permit and its grant. */
  const start = (lane: Lane, request: Request, onTurn: boolean) => {
    request.awaitingPermit = false
    held++
    lane.running++
    request.holdsPermit = true
    endTurn(lane, request)
    host.deliver(request, GRANTED, onTurn)
  }

  /** A started attempt gives its permit back: the best waiting head starts (not at once: we are in its step). */
  const releasePermit = (request: Request) => {
    if (!request.holdsPermit) return
    request.holdsPermit = false
    held--
    const lane = laneOf(request.key)
    lane.running--
    const freed = lane.permitFreed
    lane.permitFreed = undefined
    freed?.complete(Exit.void)
    if (lane.running === 0) unpark(lane)
    dropIfIdle(lane)
    startWaiting()
  }

  /** Starts the best waiting heads while permits are free (not at once: we are in someone else's step). */
  const startWaiting = () => {
    while (hasFreePermit() && waitingCount > 0) {
      const next = waiting.pop()
      if (next === undefined) break
      waitingCount--
      start(laneOf(next.key), next, false)
    }
  }

  /**
   * Changes the limit at run time. Lowered below the attempts holding a
   * permit, it takes none back: those run to their end, and no attempt
   * starts until fewer than the new limit hold one. Raised, it starts the
   * heads waiting for a permit at once, best first.
   */
  const setConcurrency = (concurrency: number) => {
    limit = concurrency
    startWaiting()
  }

  // ---- a lane's admission fiber ---------------------------------------------

  /**
   * What admits `request` for its next attempt: its breaker, then every limit
   * at once (answering what it paid). With neither there is nothing to wait
   * for: undefined, and the lane goes on in the same step.
   */
  const admission = (
    lane: Lane,
    request: Request
  ): Effect.Effect<ReadonlyArray<RateLimiter.Reservation>, unknown> | undefined => {
    const breaker = request.settings.breaker
    const limiter = host.limiter
    if (limiter === undefined) {
      return breaker === undefined ? undefined : Effect.as(breaker.check(request.key), NO_RESERVATIONS)
    }
    // A head that was already queued when the lane last charged may date its charge back to that charge: a
    // pause between two admissions (a late timer, a busy process) then costs the backlog no rate.
    const waitingSince =
      lane.lastChargedAt !== undefined && (request.queuedAt ?? Number.POSITIVE_INFINITY) <= lane.lastChargedAt
        ? lane.lastChargedAt
        : undefined
    const acquire = Admission.admit(limiter, request.cost, {
      key: request.key,
      installments: request.installments,
      waitingSince
    })
    return breaker === undefined ? acquire : Effect.zipRight(breaker.check(request.key), acquire)
  }

  /**
   * After the head's admission: start it (undefined: the lane goes on), or
   * wait on the list for a permit (the lane waits with it), or give back what
   * a head cancelled meanwhile was admitted with.
   */
  const afterAdmission = (lane: Lane, request: Request, admitted: Admitted): Effect.Effect<void> | undefined => {
    if (lane.admitting !== request) {
      // Cancelled meanwhile (its canceller refunded what it held then; this came later).
      return admitted._tag === "Admitted" && admitted.reservations.length > 0 && host.limiter !== undefined
        ? Admission.refundAll(host.limiter, admitted.reservations)
        : undefined
    }
    if (admitted._tag === "Refused") {
      endTurn(lane, request)
      host.deliver(request, { _tag: "Refused", error: admitted.error }, true)
      return undefined
    }
    request.reservations = admitted.reservations
    if (hasFreePermit() && waitingCount === 0) {
      start(lane, request, true)
      return undefined
    }
    const handOff = new Answer<void, never>()
    lane.handOff = handOff
    request.awaitingPermit = true
    waiting.push(request)
    waitingCount++
    return handOff.await
  }

  /** Takes the lane's head out of its queue (PROCESSING), or answers undefined when the lane is empty. */
  const takeHead = (lane: Lane): Request | undefined => {
    const request = lane.queue.pop()
    if (request === undefined) return undefined
    request.inLane = false
    lane.queued--
    queuedTotal--
    lane.admitting = request
    admittingTotal++
    request.status = "PROCESSING"
    request.processingAt = host.now()
    host.publish(request)
    host.dequeued(request)
    return request
  }

  /** With a cap per key: waits until fewer than the cap of the key's attempts hold a permit. */
  const keyRoom = (lane: Lane): Effect.Effect<void> | undefined => {
    const cap = host.keyConcurrency
    if (cap === undefined || lane.running < cap) return undefined
    const freed = new Answer<void, never>()
    lane.permitFreed = freed
    return freed.await
  }

  /**
   * The lane's loop: one head after another until the lane is empty (or it
   * was replaced). A turn that has nothing to wait for (no admission to wait
   * out, a permit free) goes straight on to the next head.
   */
  const admitLoop = (lane: Lane, generation: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      const again = Effect.suspend(() => admitLoop(lane, generation))
      for (let turns = 0; lane.generation === generation; turns++) {
        // A long stretch of turns with nothing to wait for lets other fibers run now and then.
        if (turns === TURNS_PER_STRETCH) return Effect.zipRight(Effect.yieldNow(), again)
        const room = keyRoom(lane)
        if (room !== undefined) return Effect.zipRight(room, again)
        const request = takeHead(lane)
        if (request === undefined) {
          if (lane.running > 0) {
            // The key is busy: more work is likely soon, so the fiber waits for it rather than end and be
            // forked again (it ends once the key has nothing running and nothing queued).
            const parked = new Answer<void, never>()
            lane.parked = parked
            return Effect.zipRight(parked.await, again)
          }
          lane.admitter = undefined
          lane.lastChargedAt = undefined
          dropIfIdle(lane)
          return Effect.void
        }
        const acquiring = admission(lane, request)
        if (acquiring !== undefined) {
          // The verdict is read in one step: refused before it was sent, or admitted with what it paid.
          return Effect.matchEffect(acquiring, {
            onFailure: (error) => thenAgain(afterAdmission(lane, request, { _tag: "Refused", error }), again),
            onSuccess: (reservations) => {
              if (reservations.length > 0) lane.lastChargedAt = reservations[reservations.length - 1]!.at
              return thenAgain(afterAdmission(lane, request, { _tag: "Admitted", reservations }), again)
            }
          })
        }
        const wait = afterAdmission(lane, request, ADMITTED_FREE)
        if (wait !== undefined) return Effect.zipRight(wait, again)
      }
      return Effect.void
    })

  /** Wakes the lane's parked fiber, if it is parked. */
  const unpark = (lane: Lane) => {
    const parked = lane.parked
    if (parked === undefined) return
    lane.parked = undefined
    parked.complete(Exit.void)
  }

  const ensureAdmitter = (lane: Lane) => {
    // From the scheduler's next turn, as a woken dispatcher would: callers arriving together are ordered by
    // priority before the lane takes its head.
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
    request.inLane = true
    lane.queue.push(request)
    lane.queued++
    queuedTotal++
    host.publish(request)
    if (lane.parked !== undefined) unpark(lane)
    else ensureAdmitter(lane)
  }

  /**
   * Takes a request that is leaving (cancelled, expired, abandoned) out of
   * its lane or the list of heads waiting for a permit, and answers the
   * reservations it held there (for the caller to refund). Its status must
   * still be the one it left from.
   */
  const remove = (request: Request): ReadonlyArray<RateLimiter.Reservation> => {
    const lane = lanes.get(request.key)
    if (lane === undefined) return []
    if (request.inLane) {
      request.inLane = false
      lane.queued--
      queuedTotal--
      lane.queue.compact(lane.queued)
      return []
    }
    if (lane.admitting !== request) return []
    const held = request.reservations ?? []
    request.reservations = undefined
    if (request.awaitingPermit) {
      // Admitted, waiting for a permit: it leaves the list (lazily), and its lane goes on.
      request.awaitingPermit = false
      waitingCount--
      endTurn(lane, request)
      return held
    }
    // Its lane is admitting it: interrupt the admission (the limiter's acquire leaves having paid nothing),
    // and start the lane again for the requests behind it.
    lane.admitter?.unsafeInterruptAsFork(FiberId.none)
    lane.admitter = undefined
    lane.generation++
    lane.admitting = undefined
    admittingTotal--
    if (lane.queued > 0) ensureAdmitter(lane)
    return held
  }

  return {
    push,
    remove,
    releasePermit,
    setConcurrency,
    /** Live counts, kept as they change (no walk over the lanes). */
    counts: () => ({ queued: queuedTotal, admitting: admittingTotal, inFlight: held, concurrency: limit }),
    queued: () => queuedTotal,
    inFlight: () => held,
    byKey: () => {
      const byKey: Record<string, { queued: number; admitting: number; inFlight: number }> = {}
      for (const lane of lanes.values()) {
        byKey[lane.key] = {
          queued: lane.queued,
          admitting: lane.admitting === undefined ? 0 : 1,
          inFlight: lane.running
        }
      }
      return byKey
    }
  }
}

const GRANTED: Ticket = { _tag: "Granted" }

/** Turns a lane takes in one go when none of them has to wait. */
const TURNS_PER_STRETCH = 256
