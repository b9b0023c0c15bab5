/**
 * How a started request runs: one fiber per request, forked in its caller's
 * runtime when it first starts, running every attempt of it.
 *
 *   [breaker admits a probe → CALLING → the work under its timeout → the
 *   attempt's reservations settled → the breaker hears the outcome → the
 *   permit back] → the retry policy's decision → (its delay, holding
 *   nothing) → back into its lane, admitted again like any request → …
 *
 * The retry loop is `Retry`'s own (`retry.ts`, `loop`); an attempt refused
 * before it was sent (an open breaker, a cost no limit can pay) is decided on
 * by the policy without counting as an attempt. Each attempt is logged on the
 * request when it runs with a retry policy, a breaker or a deadline. Whatever
 * it holds when it is interrupted (a permit, unspent reservations, a probe
 * slot) is given back as its fiber exits.
 *
 * Effect gave us `Schedule` (through `Retry`), `Effect.timeoutFail`,
 * `Deferred` (a retry's wait for its next ticket) and interruption regions;
 * this module adds the attempt itself and its settlement.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as RateLimiter from "../RateLimiter.js"
import type { AttemptRecord } from "../RequestEvent.js"
import * as Admission from "./executorAdmission.js"
import { ExecutorError } from "./executorError.js"
import type { makeMetrics } from "./executorMetrics.js"
import { amendLastAttempt, inSpan, logAttempt, type Request, type Ticket, withTimeout } from "./executorRequest.js"
import * as RetryInternal from "./retry.js"

/** What the Executor lends this module. */
export interface Host {
  readonly executor: string
  readonly now: () => number
  readonly spans: boolean
  readonly limiter: RateLimiter.RateLimiterShape | undefined
  readonly metrics: ReturnType<typeof makeMetrics>
  readonly publish: (request: Request) => void
  readonly releasePermit: (request: Request) => Effect.Effect<void>
  /** Puts a started request back into its lane (above capacity: it already had its place). */
  readonly requeue: (request: Request) => void
  readonly retrying: (delta: 1 | -1) => void
  /** The request ended (its exit is final): the Executor's bookkeeping and its caller's answer. */
  readonly finish: (request: Request, exit: Exit.Exit<unknown, unknown>) => void
}

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
      return Effect.zipRight(refund, host.releasePermit(request))
    })

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
   */
  const attemptOnce = (request: Request, attempt: number): Effect.Effect<Exit.Exit<unknown, unknown>, never, any> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const log = request.logsAttempts
        const breaker = request.settings.breaker
        let probe: CircuitBreaker.Permit | undefined
        if (breaker !== undefined) {
          const admitted = yield* Effect.either(breaker.admit(request.key))
          if (admitted._tag === "Left") {
            yield* giveBack(request)
            const at = now()
            logAttempt(request, { attempt, startedAt: at, endedAt: at, outcome: "rejected", error: admitted.left })
            return Exit.fail(admitted.left)
          }
          probe = admitted.right
        }
        const reservations = request.reservations ?? []
        request.reservations = undefined
        const startedAt = now()
        request.status = "CALLING"
        request.callingAt = startedAt
        request.attempts = attempt
        host.metrics.admissionWait.unsafeUpdate(startedAt - request.processingAt!, [])
        host.publish(request)
        const limiter = host.limiter
        const work = Effect.interruptible(request.effect)
        const call = withTimeout(
          host.executor,
          startedAt,
          request,
          limiter === undefined || reservations.length === 0
            ? work
            : Effect.zipRight(Admission.began(limiter, reservations), work)
        )
        const exit = yield* Effect.exit(restore(call))
        const outcome = outcomeOf(exit)
        if (limiter !== undefined && reservations.length > 0 && request.settle !== undefined) {
          yield* Admission.settle(limiter, reservations, request.settle(exit))
        }
        if (probe !== undefined) yield* breaker!.release(probe, outcome === "interrupted" ? "interrupted" : exit)
        yield* host.releasePermit(request)
        const endedAt = now()
        host.metrics.callDuration.unsafeUpdate(endedAt - startedAt, [])
        if (log) logAttempt(request, recordOf(attempt, startedAt, endedAt, exit, outcome))
        return exit
      })
    )

  /**
   * The request's whole life from its first ticket: its attempts under its
   * retry policy (if it has one), in its span (if spans are on); then its
   * end. Each attempt after the first waits in its lane for a new ticket.
   */
  const program = (request: Request, first: Ticket): Effect.Effect<unknown, unknown, any> => {
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
          const at = now()
          if (request.logsAttempts) {
            logAttempt(request, { attempt: n, startedAt: at, endedAt: at, outcome: "rejected", error: granted.error })
          }
          return Effect.fail(granted.error)
        }
        return Effect.flatMap(attemptOnce(request, n), (exit) => {
          if (Exit.isFailure(exit) && request.attemptLog?.at(-1)?.outcome === "rejected") refused = true
          return exit
        })
      })
    }
    const policy = request.settings.retry
    const attempts =
      policy === undefined
        ? attempt(1)
        : RetryInternal.loop(policy, attempt, {
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
    return Effect.onExit(host.spans ? inSpan(host.executor, request, attempts) : attempts, (exit) =>
      Effect.zipRight(
        Effect.suspend(() => {
          leaveRetryWait(request) // if it ended between attempts
          request.resume = undefined
          return giveBack(request)
        }),
        Effect.sync(() => host.finish(request, exit))
      )
    )
  }

  return { program }
}
