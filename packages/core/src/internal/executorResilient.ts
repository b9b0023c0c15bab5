/**
 * The Executor's resilient path, for requests with a retry policy, a breaker
 * or a deadline. Such a request runs in a fiber of its own and attempts until
 * one succeeds or the retry policy gives up (a request with a retry policy
 * alone runs its first attempt on the plain path, logged by `logPlainAttempt`,
 * and comes here only once that attempt failed: `program` then starts from
 * the policy's decision):
 *
 *   [breaker admits → attempt under its timeout → breaker hears the outcome]
 *   → the policy's decision → (delay, holding no permit) → back into the
 *   priority queue, admitted again like any request → next attempt.
 *
 * Each attempt is logged on the request (outcome, delay, why it gave up), so
 * its events tell the whole story. Whatever the request holds when it is
 * interrupted (a permit, an unspent reservation, a probe slot) is given back
 * by the fiber's exit. The executor's bookkeeping stays in `executor.ts`; it
 * lends this path a few operations (`Host`).
 *
 * Effect gave us `Schedule` (through Retry's decider), `Deferred` (a retry's
 * wait for its permit) and interruption regions; this module adds the
 * attempt loop.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as RateLimiter from "../RateLimiter.js"
import type { AttemptRecord } from "../RequestEvent.js"
import type * as Retry from "../Retry.js"
import { RequestTimeoutError } from "./executorError.js"
import type { makeMetrics } from "./executorMetrics.js"
import { amendLastAttempt, inSpan, logAttempt, type Request, withTimeout } from "./executorRequest.js"
import * as RetryInternal from "./retry.js"

/** What the executor lends this path. */
export interface Host {
  readonly executor: string
  readonly now: () => number
  readonly spans: boolean
  readonly metrics: ReturnType<typeof makeMetrics>
  readonly publish: (request: Request) => void
  /** Gives back the request's permit, if it holds one, and lets the next request start. */
  readonly releasePermit: (request: Request) => void
  /** Gives back an unspent reservation. */
  readonly refund: (request: Request) => Effect.Effect<void>
  /** `effect`, preceded by telling the limiter that the work `reservation` admitted begins. */
  readonly beginning: (
    reservation: RateLimiter.Reservation | undefined,
    effect: Effect.Effect<unknown, unknown, any>
  ) => Effect.Effect<unknown, unknown, any>
  /** Puts the request back into the priority queue (above capacity: it already had its place). */
  readonly requeue: (request: Request) => void
  /** The request ended: the executor's own bookkeeping and its answer. */
  readonly finish: (request: Request, exit: Exit.Exit<unknown, unknown>) => void
  /** Counts requests between attempts. */
  readonly retrying: (delta: 1 | -1) => void
}

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): AttemptRecord["outcome"] => {
  if (Exit.isSuccess(exit)) return "success"
  if (Cause.isInterruptedOnly(exit.cause)) return "interrupted"
  const error = Cause.failureOption(exit.cause)
  return Option.isSome(error) && error.value instanceof RequestTimeoutError ? "timeout" : "failure"
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

/** Where the resilient path takes a request up (attempt 1 when not given). */
export type Entry =
  /** Refused by an open breaker before its first attempt: the retry policy decides whether it waits for the breaker. */
  | { readonly _tag: "RefusedAtFirst"; readonly refusal: unknown }
  /** Attempt 1 ran on the plain path (a `retryOnly` request), failed, and was logged: the retry policy decides what follows. */
  | { readonly _tag: "FirstAttemptFailed"; readonly exit: Exit.Exit<unknown, unknown> }

export const make = (host: Host) => {
  const { now } = host

  const beginAttempt = (request: Request, attempt: number) => {
    const at = now()
    request.status = "CALLING"
    request.callingAt = at
    request.attempts = attempt
    host.metrics.admissionWait.unsafeUpdate(at - request.processingAt!, [])
    host.publish(request)
  }

  const enterRetryWait = (request: Request) => {
    host.retrying(1)
    request.betweenAttempts = true
    request.status = "PROCESSING"
    request.processingAt = now()
    host.publish(request)
  }

  const leaveRetryWait = (request: Request) => {
    if (!request.betweenAttempts) return
    request.betweenAttempts = false
    host.retrying(-1)
  }

  /**
   * One attempt, holding a permit and (with limits) a reservation: the
   * breaker lets it through or refuses it (then its tokens go back), the call
   * runs under its timeout and the breaker hears the outcome. The permit is
   * returned whatever happens.
   */
  const attemptOnce = (request: Request, attempt: number): Effect.Effect<Exit.Exit<unknown, unknown>, never, any> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const breaker = request.settings.breaker
        let breakerPermit: CircuitBreaker.Permit | undefined
        if (breaker !== undefined) {
          const admitted = yield* Effect.either(breaker.admit(request.key))
          if (Either.isLeft(admitted)) {
            yield* host.refund(request)
            host.releasePermit(request)
            const at = now()
            logAttempt(request, { attempt, startedAt: at, endedAt: at, outcome: "rejected", error: admitted.left })
            return Exit.fail(admitted.left)
          }
          breakerPermit = admitted.right
        }
        const admitted = request.reservation
        request.reservation = undefined // spent by this attempt
        beginAttempt(request, attempt)
        const startedAt = request.callingAt!
        const call = withTimeout(
          host.executor,
          now(),
          request,
          host.beginning(admitted, Effect.interruptible(request.effect))
        )
        const exit = yield* Effect.exit(restore(call))
        const outcome = outcomeOf(exit)
        if (breakerPermit !== undefined) {
          yield* breaker!.release(breakerPermit, outcome === "interrupted" ? "interrupted" : exit)
        }
        host.releasePermit(request)
        const endedAt = now()
        host.metrics.callDuration.unsafeUpdate(endedAt - startedAt, [])
        logAttempt(request, recordOf(attempt, startedAt, endedAt, exit, outcome))
        return exit
      })
    )

  /**
   * Logs attempt 1 of a `retryOnly` request, which ran on the plain path
   * (started CALLING at `request.callingAt`), as `attemptOnce` logs an attempt.
   */
  const logPlainAttempt = (request: Request, exit: Exit.Exit<unknown, unknown>, endedAt: number) => {
    logAttempt(request, recordOf(1, request.callingAt!, endedAt, exit, outcomeOf(exit)))
  }

  /**
   * After the retry delay: back into the priority queue; resumes once the
   * executor's `start` hands it a permit, or fails with what refused it.
   */
  const readmit = (request: Request): Effect.Effect<void, unknown> =>
    Effect.suspend(() => {
      const resume = Deferred.unsafeMake<void, unknown>(FiberId.none)
      request.resume = resume
      host.requeue(request)
      return Deferred.await(resume)
    })

  /**
   * The request's whole life after its first admission, or after its first
   * refusal by an open breaker (then it starts by asking the retry policy
   * whether to wait for the breaker), or after its first attempt failed on
   * the plain path (then it starts by asking the policy what follows; the
   * policy's elapsed time counts from that attempt's start).
   */
  const program = (request: Request, entry?: Entry): Effect.Effect<unknown, unknown, any> => {
    const policy = request.settings.retry
    const startedAt = entry?._tag === "FirstAttemptFailed" ? request.callingAt! : now()
    const decide = policy === undefined ? undefined : RetryInternal.makeDecider(policy, startedAt, request.deadlineAt)
    const giveUp = (exit: Exit.Exit<unknown, unknown>, reason: Retry.GiveUpReason) => {
      amendLastAttempt(request, { gaveUp: reason })
      return exit
    }

    /**
     * Waits out `delayMillis` holding nothing, then goes back into the queue.
     * A refusal there (an open breaker, the limits, the deadline) made no
     * call: it is logged as rejected and the policy decides again, without
     * counting an attempt; a refusal it will not retry ends the request.
     */
    const waitAndReadmit = (
      attempt: number,
      delayMillis: number
    ): Effect.Effect<Exit.Exit<unknown, unknown>, never, any> => {
      enterRetryWait(request)
      return Effect.zipRight(Effect.sleep(Duration.millis(delayMillis)), readmit(request)).pipe(
        Effect.matchEffect({
          onFailure: (refusal) => afterRefusal(attempt, refusal),
          onSuccess: () => {
            leaveRetryWait(request)
            return attemptFrom(attempt + 1)
          }
        })
      )
    }

    const afterRefusal = (
      attempt: number,
      refusal: unknown
    ): Effect.Effect<Exit.Exit<unknown, unknown>, never, any> => {
      leaveRetryWait(request)
      const at = now()
      logAttempt(request, { attempt: attempt + 1, startedAt: at, endedAt: at, outcome: "rejected", error: refusal })
      const exit: Exit.Exit<unknown, unknown> = Exit.fail(refusal)
      if (decide === undefined) return Effect.succeed(exit)
      return Effect.flatMap(decide(refusal, attempt, now()), (decision) => {
        if (decision._tag === "GiveUp") return Effect.succeed(giveUp(exit, decision.reason))
        amendLastAttempt(request, { retryDelayMillis: decision.delayMillis })
        return waitAndReadmit(attempt, decision.delayMillis)
      })
    }

    /** After attempt `attempt` ended with `exit` (logged): done, or the policy's decision. */
    const afterAttempt = (
      attempt: number,
      exit: Exit.Exit<unknown, unknown>
    ): Effect.Effect<Exit.Exit<unknown, unknown>, never, any> => {
      if (Exit.isSuccess(exit) || decide === undefined || Cause.isInterruptedOnly(exit.cause)) {
        return Effect.succeed(exit)
      }
      const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
      if (error === undefined) return Effect.succeed(giveUp(exit, "NotRetryable")) // a defect
      return Effect.flatMap(decide(error, attempt, now()), (decision) => {
        if (decision._tag === "GiveUp") return Effect.succeed(giveUp(exit, decision.reason))
        amendLastAttempt(request, { retryDelayMillis: decision.delayMillis })
        return waitAndReadmit(attempt, decision.delayMillis)
      })
    }

    const attemptFrom = (attempt: number): Effect.Effect<Exit.Exit<unknown, unknown>, never, any> =>
      Effect.flatMap(attemptOnce(request, attempt), (exit) => afterAttempt(attempt, exit))
    const first =
      entry === undefined
        ? attemptFrom(1)
        : entry._tag === "RefusedAtFirst"
          ? afterRefusal(0, entry.refusal)
          : Effect.suspend(() => afterAttempt(1, entry.exit))
    const attempts = Effect.flatten(
      policy?.budget === undefined ? first : Effect.zipRight(policy.budget.recordRequest, first)
    )
    return Effect.onExit(host.spans ? inSpan(host.executor, request, attempts) : attempts, (exit) =>
      Effect.suspend(() => {
        leaveRetryWait(request) // if interrupted between attempts
        request.resume = undefined
        return Effect.zipRight(
          host.refund(request),
          Effect.sync(() => host.finish(request, exit))
        )
      })
    )
  }

  return { program, logPlainAttempt }
}
