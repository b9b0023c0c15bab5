/**
 * How a started request runs: on a fiber of its own, forked in its caller's
 * runtime when it first starts, running its attempts. An attempt's timeout
 * is the executor's timer interrupting that very fiber (no fiber per
 * attempt); the fiber then only unwinds, and if the retry policy goes on, it
 * goes on from the cut-off attempt on the request's next fiber (`successor`),
 * with the same loop, span and record.
 *
 *   [breaker admits a probe → CALLING → the work under its timeout → the
 *   attempt's reservations settled → the breaker hears the outcome → the
 *   permit back] → the retry policy's decision → (its delay, holding
 *   nothing) → back into its lane, admitted again like any request → …
 *
 * The retry loop is `Retry`'s own (`retry.ts`, `makeLoop`); an attempt refused
 * before it was sent (an open breaker, a cost no limit can pay) is decided on
 * by the policy without counting as an attempt. Each attempt is logged on the
 * request when it runs with a retry policy, a breaker or a deadline. Whatever
 * it holds when it is interrupted (a permit, unspent reservations, a probe
 * slot) is given back as its fiber exits; the Executor ends it from its
 * fiber's observer. A request with nothing to do after its one attempt (no
 * retry policy, no breaker, no settlement) runs it bare, with no region of
 * its own: that observer also books the attempt (its duration, its record).
 *
 * Effect gave us `Schedule` (through `Retry`),
 * `Deferred` (a retry's wait for its next ticket) and interruption regions;
 * this module adds the attempt itself and its settlement.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as RuntimeFlags from "effect/RuntimeFlags"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as RateLimiter from "../RateLimiter.js"
import type { AttemptRecord } from "../RequestEvent.js"
import * as Admission from "./executorAdmission.js"
import { ExecutorError } from "./executorError.js"
import type { makeMetrics } from "./executorMetrics.js"
import {
  amendLastAttempt,
  attemptLimit,
  limitError,
  logAttempt,
  makeSpan,
  type Request,
  type Ticket
} from "./executorRequest.js"
import type { ExecutorTimer } from "./executorTimer.js"
import * as RetryInternal from "./retry.js"

/** What the Executor lends this module. */
export interface Host {
  readonly executor: string
  readonly now: () => number
  readonly spans: boolean
  readonly limiter: RateLimiter.RateLimiterShape | undefined
  readonly metrics: ReturnType<typeof makeMetrics>
  readonly timer: ExecutorTimer
  readonly publish: (request: Request) => void
  readonly releasePermit: (request: Request) => void
  /** Puts a started request back into its lane (above capacity: it already had its place). */
  readonly requeue: (request: Request) => void
  readonly retrying: (delta: 1 | -1) => void
}

const isInterruption = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): AttemptRecord["outcome"] => {
  if (Exit.isSuccess(exit)) return "success"
  if (Cause.isInterruptedOnly(exit.cause)) return "interrupted"
  const error = Cause.failureOption(exit.cause)
  if (Option.isSome(error) && error.value instanceof ExecutorError) {
    return error.value.reason === "AttemptTimeout" || error.value.reason === "Deadline" ? "timeout" : "failure"
  }
  return "failure"
}

const recordOf = (
  attempt: number,
  startedAt: number,
  endedAt: number,
  exit: Exit.Exit<unknown, unknown>,
  outcome: AttemptRecord["outcome"]
): AttemptRecord => {
  const record: { -readonly [K in keyof AttemptRecord]: AttemptRecord[K] } = { attempt, startedAt, endedAt, outcome }
  if (Exit.isFailure(exit) && outcome !== "interrupted") {
    record.error = Option.getOrElse(Cause.failureOption(exit.cause), () => Cause.squash(exit.cause))
  }
  return record
}

export const make = (host: Host) => {
  const { now } = host

  /** Gives back what the request holds for an attempt it will not make: its reservations and permit. */
  const giveBack = (request: Request): Effect.Effect<void> =>
    Effect.suspend(() => {
      const held = request.reservations
      request.reservations = undefined
      const refund =
        held === undefined || held.length === 0 || host.limiter === undefined
          ? Effect.void
          : Admission.refundAll(host.limiter, held)
      host.releasePermit(request)
      return refund
    })

  /**
   * The attempt under its time limit (`attemptLimit`): the executor's timer
   * interrupts this very fiber when the limit is up (no fiber of the
   * attempt's own: forking one per attempt cost about a quarter of an HTTP
   * call's client CPU); `closeWatch` reads that interruption as the
   * attempt's timeout, and the request goes on from there on a new fiber.
   */
  const timed = (
    request: Request,
    startedAt: number,
    effect: Effect.Effect<unknown, unknown, any>
  ): Effect.Effect<unknown, unknown, any> => {
    const limit = attemptLimit(request, startedAt)
    if (limit === undefined) return effect
    return Effect.withFiberRuntime((fiber) => {
      request.watch = host.timer.watch(fiber, limit.millis)
      request.watchByDeadline = limit.byDeadline
      return effect
    })
  }

  /**
   * The attempt ended: its watch stops. If the timer had cut it off, its
   * fiber is interrupted for good: an interruption reads as the timeout's
   * error, and the exit as read is kept on the request (`cutOff`) for the
   * fiber's observer, which carries the request on.
   */
  const closeWatch = (request: Request, exit: Exit.Exit<unknown, unknown>): Exit.Exit<unknown, unknown> => {
    const watch = request.watch
    if (watch === undefined) return exit
    request.watch = undefined
    if (!host.timer.unwatch(watch)) return exit
    const read = isInterruption(exit) ? Exit.fail(limitError(host.executor, request, request.watchByDeadline)) : exit
    request.cutOff = read
    return read
  }

  /** After a retry's delay: back into its lane, until the lanes hand it its next ticket. */
  const readmit = (request: Request): Effect.Effect<Ticket> =>
    Effect.suspend(() => {
      const resume = Deferred.unsafeMake<Ticket>(FiberId.none)
      request.resume = resume
      host.requeue(request)
      return Deferred.await(resume)
    })

  const leaveRetryWait = (request: Request) => {
    if (!request.betweenAttempts) return
    request.betweenAttempts = false
    host.retrying(-1)
  }

  /**
   * One attempt with a granted ticket (reservations on the request, a permit
   * held): the breaker admits a probe or refuses (then the reservations go
   * back), the work runs under its timeout, the reservations are settled and
   * the breaker hears the outcome. The permit goes back whatever happens.
   * Fails with the attempt's error. Its first step, uninterruptible, takes
   * what the ticket granted.
   */
  const attemptOnce = (request: Request, attempt: number): Effect.Effect<unknown, unknown, any> =>
    Effect.uninterruptibleMask((restore) => {
      const breaker = request.settings.breaker
      if (breaker === undefined) return call(request, attempt, restore, undefined)
      return Effect.flatMap(Effect.either(breaker.admit(request.key)), (admitted) => {
        if (admitted._tag === "Right") return call(request, attempt, restore, admitted.right)
        const at = now()
        logAttempt(request, { attempt, startedAt: at, endedAt: at, outcome: "rejected", error: admitted.left })
        return Effect.zipRight(giveBack(request), Effect.fail(admitted.left))
      })
    })

  const call = (
    request: Request,
    attempt: number,
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
    probe: CircuitBreaker.Permit | undefined
  ): Effect.Effect<unknown, unknown, any> => {
    const reservations = request.reservations
    request.reservations = undefined
    const startedAt = now()
    request.status = "CALLING"
    request.callingAt = startedAt
    request.attempts = attempt
    host.metrics.admissionWait.unsafeUpdate(startedAt - request.processingAt!, [])
    host.publish(request)
    const limiter = host.limiter
    const paid = limiter !== undefined && reservations !== undefined && reservations.length > 0
    // Interruptible whatever its caller's region was (so that a timeout, a deadline or shutdown can cut it);
    // `restore` already makes it so when the caller's runtime was interruptible.
    const work = RuntimeFlags.interruption(request.runtime.runtimeFlags)
      ? request.effect
      : Effect.interruptible(request.effect)
    const limited = timed(
      request,
      startedAt,
      paid ? Effect.zipRight(Admission.began(limiter, reservations), work) : work
    )
    /**
     * What follows the attempt, whatever its exit (run uninterruptibly): its
     * exit, once settled and heard; or, cut off by its timer, the fiber's
     * interruption, so that nothing more runs on it (the observer goes on).
     */
    const after = (ended: Exit.Exit<unknown, unknown>): Effect.Effect<unknown, unknown> => {
      const exit = closeWatch(request, ended)
      const settled =
        paid && request.settle !== undefined ? Admission.settle(limiter, reservations, request.settle(exit)) : undefined
      const heard =
        probe === undefined
          ? undefined
          : request.settings.breaker!.release(probe, isInterruption(exit) ? "interrupted" : exit)
      const done = () => {
        host.releasePermit(request)
        const endedAt = now()
        host.metrics.callDuration.unsafeUpdate(endedAt - startedAt, [])
        if (request.logsAttempts) logAttempt(request, recordOf(attempt, startedAt, endedAt, exit, outcomeOf(exit)))
        return request.cutOff === undefined ? exit : Effect.interrupt
      }
      if (settled === undefined && heard === undefined) return done()
      return Effect.flatMap(
        settled === undefined ? heard! : heard === undefined ? settled : Effect.zipRight(settled, heard),
        done
      )
    }
    return Effect.matchCauseEffect(restore(limited), {
      onFailure: (cause) => after(Exit.failCause(cause)),
      onSuccess: (value) => after(Exit.succeed(value))
    })
  }

  /**
   * The one attempt of a request with nothing to do after it: no retry policy
   * to decide, no breaker to tell, no settlement. It needs no region of its
   * own: its first step takes what the ticket granted (an interruption before
   * that step leaves it all to its fiber's observer), and what follows the
   * attempt (its permit back, its duration and record) is done by its fiber's
   * end (`ended`), which comes whatever stops it.
   */
  const bare = (request: Request): Effect.Effect<unknown, unknown, any> =>
    Effect.suspend(() => {
      const reservations = request.reservations
      request.reservations = undefined
      const startedAt = now()
      request.status = "CALLING"
      request.callingAt = startedAt
      request.attempts = 1
      request.callOpen = true
      host.metrics.admissionWait.unsafeUpdate(startedAt - request.processingAt!, [])
      host.publish(request)
      const limiter = host.limiter
      const work = RuntimeFlags.interruption(request.runtime.runtimeFlags)
        ? request.effect
        : Effect.interruptible(request.effect)
      return timed(
        request,
        startedAt,
        limiter !== undefined && reservations !== undefined && reservations.length > 0
          ? Effect.zipRight(Admission.began(limiter, reservations), work)
          : work
      )
    })

  /** A ticket refused before the attempt was sent (an open breaker, a cost no limit can pay). */
  const refuse = (request: Request, attempt: number, error: unknown): Effect.Effect<never, unknown> => {
    if (request.logsAttempts) {
      const at = now()
      logAttempt(request, { attempt, startedAt: at, endedAt: at, outcome: "rejected", error })
    }
    return Effect.fail(error)
  }

  /**
   * On one of the request's fibers: in its span (spans on: made on its first
   * fiber, ended by the Executor with the request), giving back, as the
   * fiber ends, what takes an Effect to give back (a retry's ticket may
   * leave reservations on it at any step; its end is its fiber's observer's).
   */
  const onFiber = (
    request: Request,
    effect: Effect.Effect<unknown, unknown, any>,
    gives: boolean
  ): Effect.Effect<unknown, unknown, any> => {
    const held = gives && host.limiter !== undefined ? Effect.onExit(effect, () => giveBack(request)) : effect
    if (!host.spans) return held
    if (request.span !== undefined) return Effect.withParentSpan(held, request.span)
    return Effect.flatMap(makeSpan(host.executor, request), (span) => {
      request.span = span
      return Effect.withParentSpan(held, span)
    })
  }

  /**
   * The request's life from its first ticket, on its first fiber: its
   * attempts under its retry policy (if it has one), then its end. Each
   * attempt after the first waits in its lane for a new ticket. Without a
   * policy it is one attempt, whose first step takes what the ticket
   * granted: an interruption before that step finds nothing to give back
   * here (its fiber's observer gives back what it was granted). An attempt
   * cut off by its timer ends the fiber; the retry loop goes on from it on
   * the next (`successor`).
   */
  const program = (request: Request, first: Ticket): Effect.Effect<unknown, unknown, any> => {
    const policy = request.settings.retry
    if (policy === undefined) {
      const single =
        first._tag === "Refused"
          ? refuse(request, 1, first.error)
          : request.settings.breaker === undefined && request.settle === undefined
            ? bare(request)
            : attemptOnce(request, 1)
      return onFiber(request, single, false)
    }
    let firstTicket: Ticket | undefined = first
    let refused = false
    const attempt = (n: number): Effect.Effect<unknown, unknown, any> => {
      const ticket: Effect.Effect<Ticket> = firstTicket === undefined ? readmit(request) : Effect.succeed(firstTicket)
      firstTicket = undefined
      return Effect.flatMap(ticket, (granted) => {
        leaveRetryWait(request)
        refused = false
        if (granted._tag === "Refused") {
          refused = true
          return refuse(request, n, granted.error)
        }
        return Effect.tapError(attemptOnce(request, n), () => {
          refused = request.attemptLog?.at(-1)?.outcome === "rejected"
          return Effect.void
        })
      })
    }
    const loop = RetryInternal.makeLoop(policy, attempt, {
      deadlineAt: request.deadlineAt,
      refused: () => refused,
      onDecision: (decision) => {
        if (decision._tag === "GiveUp") {
          amendLastAttempt(request, { gaveUp: decision.reason })
          return
        }
        amendLastAttempt(request, { retryDelayMillis: decision.delayMillis })
        host.retrying(1)
        request.betweenAttempts = true
        request.status = "PROCESSING"
        request.processingAt = now()
        host.publish(request)
      }
    })
    request.loop = loop
    return onFiber(request, loop.run, true)
  }

  /**
   * Its fiber ended: it is no longer between attempts nor waiting for a
   * ticket; a bare attempt is booked. Answers the fiber's exit as the
   * request's: an attempt cut off by its timer reads as what `closeWatch`
   * made of it.
   */
  const ended = (request: Request, exit: Exit.Exit<unknown, unknown>): Exit.Exit<unknown, unknown> => {
    leaveRetryWait(request)
    request.resume = undefined
    if (request.callOpen) {
      // A bare attempt's end (see `bare`): its permit goes back with the fiber, as for every request.
      request.callOpen = false
      const read = closeWatch(request, exit)
      const startedAt = request.callingAt!
      const endedAt = now()
      host.metrics.callDuration.unsafeUpdate(endedAt - startedAt, [])
      if (request.logsAttempts) logAttempt(request, recordOf(1, startedAt, endedAt, read, outcomeOf(read)))
    }
    const cut = request.cutOff
    return cut !== undefined && isInterruption(exit) ? cut : exit
  }

  /**
   * What runs on the request's next fiber, when its timer cut off an attempt
   * that its retry loop decides on (the loop goes on from the cut-off
   * attempt's error); otherwise undefined, and the request ends.
   */
  const successor = (request: Request): Effect.Effect<unknown, unknown, any> | undefined => {
    const cut = request.cutOff
    request.cutOff = undefined
    if (cut === undefined || request.loop === undefined || Exit.isSuccess(cut)) return undefined
    const error = Cause.failureOption(cut.cause)
    if (Option.isNone(error)) return undefined
    return onFiber(request, request.loop.resume(error.value), true)
  }

  return { program, ended, successor }
}
