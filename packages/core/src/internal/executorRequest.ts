/**
 * A request as the Executor holds it: a small mutable record (a queued
 * request is this and nothing more; it gets a fiber only when it first
 * starts), with what every part of the Executor shares about it: its event
 * snapshot, its timeout (the attempt's own, or what is left of its deadline),
 * the errors of both, its span and its attempt log. The executor's list of
 * unfinished requests (`Unfinished`) is threaded through the records.
 */
import type * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as Runtime from "effect/Runtime"
import type * as Tracer from "effect/Tracer"
import type * as RateLimiter from "../RateLimiter.js"
import type { AttemptRecord, RequestEvent, RequestStatus } from "../RequestEvent.js"
import { ExecutorError } from "./executorError.js"
import type { KeySettings } from "./executorResilience.js"
import type * as ExecutorTimer from "./executorTimer.js"

/** How one attempt's reservation is settled once the attempt ended. */
export type Settlement =
  | { readonly _tag: "Reconcile"; readonly actual: RateLimiter.Cost }
  | { readonly _tag: "Refund" }
  | { readonly _tag: "Keep" }

/**
 * What the lanes hand a request for one attempt: admission (its reservations,
 * more than one when paid in installments, are on the request, and it holds a
 * concurrency permit); or why
 * it was refused before it was sent (an open breaker, a cost no limit can pay).
 */
export type Ticket = { readonly _tag: "Granted" } | { readonly _tag: "Refused"; readonly error: unknown }

export class Request {
  status: RequestStatus = "PENDING"
  attempts = 0
  /** Admitted for the next attempt and not yet spent by it (refunded if it never starts). */
  reservations: ReadonlyArray<RateLimiter.Reservation> | undefined = undefined
  /** Holds a concurrency permit. */
  holdsPermit = false
  /** Waits in its lane's queue. */
  inLane = false
  /** Admitted, on the list of heads waiting for a permit. */
  awaitingPermit = false
  /** The fiber its attempts run on, from its first start to its end. */
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /** Set while a started request waits in its lane again (a retry): the lanes complete it with its ticket. */
  resume: Deferred.Deferred<Ticket> | undefined = undefined
  /** Its deadline's watch by the executor's timer, while it has one. */
  deadlineWatch: ExecutorTimer.Watch | undefined = undefined
  /** It holds one of the queue's slots (a new request, until it first leaves its lane's queue). */
  holdsSlot = false
  /** Shutdown abandoned it: it ends CANCELLED with `Abandoned`. */
  abandoned = false
  /** Its deadline ran out: it ends FAILED with `Deadline`. */
  expired = false
  /** Started, and between attempts (waiting out a delay, or in its lane again). */
  betweenAttempts = false
  /** Its one attempt runs with nothing to do after it: its fiber's end books it (see `executorAttempt.ts`, `bare`). */
  callOpen = false
  /** The running attempt's watch by the executor's timer, while it has a time limit. */
  watch: ExecutorTimer.Watch | undefined = undefined
  /** The running attempt's limit is what is left of its deadline. */
  watchByDeadline = false
  /**
   * Its timer interrupted its fiber to cut off an attempt: the attempt's exit
   * as read (the timeout's error, or what it ended with just then). The
   * fiber only unwinds; its observer carries the request on from here.
   */
  cutOff: Exit.Exit<unknown, unknown> | undefined = undefined
  /** Its caller interrupted it. */
  cancelled = false
  /** Its retry loop, which goes on from a cut-off attempt on a new fiber. */
  loop: { readonly resume: (error: unknown) => Effect.Effect<unknown, unknown, any> } | undefined = undefined
  /** Its span (spans on), from its first start to its end. */
  span: Tracer.Span | undefined = undefined
  attemptLog: Array<AttemptRecord> | undefined = undefined
  error: unknown = undefined
  queuedAt: number | undefined = undefined
  processingAt: number | undefined = undefined
  callingAt: number | undefined = undefined
  endedAt: number | undefined = undefined
  /** Its neighbours on the executor's list of unfinished requests (`Unfinished`). */
  previousUnfinished: Request | undefined = undefined
  nextUnfinished: Request | undefined = undefined

  constructor(
    readonly id: number,
    readonly key: string,
    readonly priority: number,
    readonly cost: RateLimiter.Cost | undefined,
    readonly timeoutMillis: number | undefined,
    /** When its whole time runs out (ms on the Clock), if it has a deadline. */
    readonly deadlineAt: number | undefined,
    readonly settings: KeySettings,
    readonly effect: Effect.Effect<unknown, unknown, any>,
    readonly runtime: Runtime.Runtime<any>,
    /** Told the request's final exit, once. */
    readonly onExit: (request: Request, exit: Exit.Exit<unknown, unknown>) => void,
    readonly settle: ((exit: Exit.Exit<unknown, unknown>) => Settlement) | undefined,
    /** A cost above a limit's capacity is paid in installments of the capacity instead of failing. */
    readonly installments: boolean,
    readonly onTimeout: (() => unknown) | undefined,
    /** Its attempts are logged on its events (it has a retry policy, a breaker or a deadline). */
    readonly logsAttempts: boolean,
    /** The request's place in its batch (0 for a single submit). */
    readonly index: number,
    readonly pendingAt: number
  ) {}

  get isLive(): boolean {
    return this.status !== "COMPLETED" && this.status !== "FAILED" && this.status !== "CANCELLED"
  }

  /** The timestamps of the statuses it has been through, as events carry them. */
  timestamps(): Partial<Record<RequestStatus, number>> {
    const timestamps: Partial<Record<RequestStatus, number>> = { PENDING: this.pendingAt }
    if (this.queuedAt !== undefined) timestamps.QUEUED = this.queuedAt
    if (this.processingAt !== undefined) timestamps.PROCESSING = this.processingAt
    if (this.callingAt !== undefined) timestamps.CALLING = this.callingAt
    if (this.endedAt !== undefined) timestamps[this.status] = this.endedAt
    return timestamps
  }

  snapshot(executor: string): RequestEvent {
    const event: { -readonly [K in keyof RequestEvent]: RequestEvent[K] } = {
      id: this.id,
      executor,
      key: this.key,
      priority: this.priority,
      cost: this.cost,
      status: this.status,
      timestamps: this.timestamps(),
      attempts: this.attempts
    }
    if (this.error !== undefined) event.error = this.error
    if (this.attemptLog !== undefined) event.attemptLog = [...this.attemptLog]
    return event
  }
}

/**
 * The requests submitted and not yet ended, in the order they were
 * submitted: a list threaded through the requests themselves, so that
 * adding and removing one allocates nothing and rehashes no table (a
 * `Set` of a batch's hundred thousand queued requests did both).
 */
export class Unfinished {
  private first: Request | undefined = undefined
  private last: Request | undefined = undefined
  size = 0

  add(request: Request): void {
    request.previousUnfinished = this.last
    request.nextUnfinished = undefined
    if (this.last === undefined) this.first = request
    else this.last.nextUnfinished = request
    this.last = request
    this.size++
  }

  /** Takes out a request that is on the list. */
  remove(request: Request): void {
    const previous = request.previousUnfinished
    const next = request.nextUnfinished
    if (previous === undefined) this.first = next
    else previous.nextUnfinished = next
    if (next === undefined) this.last = previous
    else next.previousUnfinished = previous
    request.previousUnfinished = undefined
    request.nextUnfinished = undefined
    this.size--
  }

  toArray(): Array<Request> {
    const requests: Array<Request> = []
    for (let request = this.first; request !== undefined; request = request.nextUnfinished) requests.push(request)
    return requests
  }
}

/**
 * A caller's answer: what a `Deferred` gives its waiters, without its weight
 * (a `Deferred` copies a prototype into every instance). A waiter interrupted
 * meanwhile needs no removal: its resume callback ignores a second call.
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

  readonly await: Effect.Effect<A, E> = Effect.async<A, E>((resume) => {
    if (this.exit !== undefined) resume(this.exit)
    else (this.waiters ??= []).push(resume)
  })
}

export const deadlineError = (executor: string, request: Request) =>
  new ExecutorError({
    executor,
    reason: "Deadline",
    requestId: request.id,
    timeoutMillis: request.deadlineAt! - request.pendingAt
  })

export const abandonedError = (executor: string, request: Request) =>
  new ExecutorError({ executor, reason: "Abandoned", requestId: request.id })

const attemptTimeoutError = (executor: string, request: Request): unknown =>
  request.onTimeout === undefined
    ? new ExecutorError({
        executor,
        reason: "AttemptTimeout",
        requestId: request.id,
        timeoutMillis: request.timeoutMillis!
      })
    : request.onTimeout()

/** An attempt's time limit: the request's own timeout, or what is left of its deadline if that is sooner. */
export interface AttemptLimit {
  readonly millis: number
  /** The deadline ends it first: it fails with the deadline's error, not the attempt timeout's. */
  readonly byDeadline: boolean
}

/** The time limit of an attempt that starts at `now`, if it has one. */
export const attemptLimit = (request: Request, now: number): AttemptLimit | undefined => {
  const attemptMillis = request.timeoutMillis
  const leftMillis = request.deadlineAt === undefined ? undefined : request.deadlineAt - now
  if (attemptMillis === undefined && leftMillis === undefined) return undefined
  const byDeadline = leftMillis !== undefined && (attemptMillis === undefined || leftMillis < attemptMillis)
  return { millis: Math.max(0, byDeadline ? leftMillis! : attemptMillis!), byDeadline }
}

/** The error of an attempt cut off by its time limit. */
export const limitError = (executor: string, request: Request, byDeadline: boolean): unknown =>
  byDeadline ? deadlineError(executor, request) : attemptTimeoutError(executor, request)

/**
 * The request's span, `sluice.executor.request`, around all its attempts on
 * whatever fibers they run (`executorAttempt.ts`): made when it first
 * starts, the parent of its work's spans, ended by the Executor with its
 * final exit.
 */
export const makeSpan = (executor: string, request: Request): Effect.Effect<Tracer.Span> =>
  Effect.makeSpan("sluice.executor.request", {
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
