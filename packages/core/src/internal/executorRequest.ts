/**
 * A request as the Executor holds it: a small mutable record (a queued
 * request is this and nothing more), with the helpers both of the Executor's
 * paths share: its span, its timeout (the attempt's own, or what is left of
 * its deadline) and the errors of both, and its attempt log.
 */
import type * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as Runtime from "effect/Runtime"
import type * as RateLimiter from "../RateLimiter.js"
import type { AttemptRecord, RequestStatus } from "../RequestEvent.js"
import type * as AttemptTimer from "./attemptTimer.js"
import type * as BatchWorkers from "./batchWorkers.js"
import { RequestTimeoutError } from "./executorError.js"
import type { KeySettings } from "./executorResilience.js"

/** A request as the executor holds it: a small mutable record. */
export class Request {
  status: RequestStatus = "PENDING"
  attempts = 0
  reservation: RateLimiter.Reservation | undefined = undefined
  /** The fiber the request runs on once started: its own, or its batch worker's. */
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /** The batch worker running the request, if it runs on one. */
  worker: BatchWorkers.Worker<Request> | undefined = undefined
  /** Completed to cut short a wait for admission when the request is cancelled. */
  cancelSignal: Deferred.Deferred<void> | undefined = undefined
  abandoned = false
  /** Its deadline ran out; it ends FAILED with a deadline error. */
  expired = false
  /** Started on the resilient path and between attempts (waiting out a delay, or queued and admitted again). */
  betweenAttempts = false
  /** Set while a resilient request waits in the queue again: `start` completes it with a permit held. */
  resume: Deferred.Deferred<void, unknown> | undefined = undefined
  /** Each finished attempt (kept only on the resilient path). */
  attemptLog: Array<AttemptRecord> | undefined = undefined
  error: unknown = undefined
  /** When the request entered each status it has been through (undefined: not yet; no number boxed before then). */
  queuedAt: number | undefined = undefined
  processingAt: number | undefined = undefined
  callingAt: number | undefined = undefined
  /** When it reached its terminal status. */
  endedAt: number | undefined = undefined
  /** Its permit's slot in the executor's table of running requests, while it holds one. */
  slot = -1
  /** The error an attempt past its timeout fails with, if the submitter gave one (else a `RequestTimeoutError`). */
  onTimeout: (() => unknown) | undefined = undefined
  /** The executor's timer watching the fiber its attempt runs on (`attemptTimer.ts`), while it runs. */
  timeoutWatch: AttemptTimer.Watch | undefined = undefined

  constructor(
    readonly id: number,
    readonly key: string,
    readonly priority: number,
    readonly cost: RateLimiter.Cost | undefined,
    readonly timeoutMillis: number | undefined,
    /** When its total time runs out (ms on the Clock), if it has a deadline. */
    readonly deadlineAt: number | undefined,
    readonly settings: KeySettings,
    readonly effect: Effect.Effect<unknown, unknown, any>,
    readonly runtime: Runtime.Runtime<any>,
    readonly onExit: (request: Request, exit: Exit.Exit<unknown, unknown>) => void,
    /** The request's batch, whose workers run it (undefined for a single submit). */
    readonly batch: BatchWorkers.Batch<Request, any> | undefined,
    /** The request's place in its batch (0 for a single submit). */
    readonly index: number,
    readonly pendingAt: number
  ) {}

  /** The timestamps of the statuses it has been through, as events carry them. */
  timestamps(): Partial<Record<RequestStatus, number>> {
    const timestamps: Partial<Record<RequestStatus, number>> = { PENDING: this.pendingAt }
    if (this.queuedAt !== undefined) timestamps.QUEUED = this.queuedAt
    if (this.processingAt !== undefined) timestamps.PROCESSING = this.processingAt
    if (this.callingAt !== undefined) timestamps.CALLING = this.callingAt
    if (this.endedAt !== undefined) timestamps[this.status] = this.endedAt
    return timestamps
  }
}

/**
 * A single submit's answer: what a `Deferred` gives its waiters, without its
 * weight (a `Deferred` copies a prototype into every instance). A waiter
 * interrupted meanwhile needs no removal: the fiber's own resume callback
 * ignores a second call, and completion drops every waiter.
 */
export class Answer<A, E> {
  private exit: Exit.Exit<A, E> | undefined = undefined
  private waiters: Array<(exit: Exit.Exit<A, E>) => void> | undefined = undefined

  complete(exit: Exit.Exit<A, E>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    const waiters = this.waiters
    this.waiters = undefined
    if (waiters !== undefined) for (const waiter of waiters) waiter(exit)
  }

  /** Waits for the answer (at once if it is there). */
  readonly await: Effect.Effect<A, E> = Effect.async<A, E>((resume) => {
    if (this.exit !== undefined) resume(this.exit)
    else (this.waiters ??= []).push(resume)
  })
}

/** The deadline's error: the request's whole time ran out (not retried). */
export const deadlineError = (executor: string, request: Request) =>
  new RequestTimeoutError({
    executor,
    requestId: request.id,
    timeoutMillis: request.deadlineAt! - request.pendingAt,
    kind: "Deadline"
  })

/** The error of an attempt that ran past the request's own timeout. */
export const attemptTimeoutError = (executor: string, request: Request): unknown =>
  request.onTimeout === undefined
    ? new RequestTimeoutError({ executor, requestId: request.id, timeoutMillis: request.timeoutMillis! })
    : request.onTimeout()

/**
 * The effect under its timeout: the request's own, or what is left of its
 * deadline if that is sooner (then the error is the deadline's).
 */
export const withTimeout = (
  executor: string,
  now: number,
  request: Request,
  effect: Effect.Effect<unknown, unknown, any>
): Effect.Effect<unknown, unknown, any> => {
  const attemptMillis = request.timeoutMillis
  const leftMillis = request.deadlineAt === undefined ? undefined : request.deadlineAt - now
  if (attemptMillis === undefined && leftMillis === undefined) return effect
  const byDeadline = leftMillis !== undefined && (attemptMillis === undefined || leftMillis < attemptMillis)
  return Effect.timeoutFail(effect, {
    duration: Duration.millis(Math.max(0, byDeadline ? leftMillis! : attemptMillis!)),
    onTimeout: () => (byDeadline ? deadlineError(executor, request) : attemptTimeoutError(executor, request))
  })
}

/** The request's span, `sluice.executor.request`. */
export const inSpan = (executor: string, request: Request, effect: Effect.Effect<unknown, unknown, any>) =>
  Effect.withSpan(effect, "sluice.executor.request", {
    kind: "client",
    attributes: {
      "sluice.executor": executor,
      "sluice.request.id": request.id,
      "sluice.request.key": request.key,
      "sluice.request.priority": request.priority
    }
  })

export const logAttempt = (request: Request, record: AttemptRecord) => {
  request.attemptLog ??= []
  request.attemptLog.push(record)
}

/** Amends the last attempt's record with what followed it. */
export const amendLastAttempt = (request: Request, amendment: Partial<AttemptRecord>) => {
  const log = request.attemptLog
  if (log === undefined || log.length === 0) return
  log[log.length - 1] = { ...log[log.length - 1]!, ...amendment }
}
