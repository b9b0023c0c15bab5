/**
 * The Executor's machinery. One dispatcher fiber takes the highest-priority
 * request, waits for its rate and token admission (holding no permit), takes a
 * concurrency permit from a `Semaphore` and starts the request in its caller's
 * runtime (so the caller's services, Clock and span parent apply). Queued
 * requests are plain records: only running requests have fibers.
 *
 * A request with no retry, breaker or deadline takes the plain path: one
 * attempt under its timeout. Otherwise its fiber runs the resilient path:
 * breaker admission, the attempt, the breaker's verdict, then the retry
 * policy's decision; a retry waits out its delay holding nothing, and is
 * re-admitted (breaker check, limits, permit) from its own fiber.
 *
 * Every way a request can leave undoes what it held at that moment:
 * - QUEUED: its queue slot is freed (and a caller waiting for room woken);
 * - PROCESSING before it started: its rate reservation is refunded, its permit (if taken) returned;
 * - started (CALLING, or between attempts): its fiber is interrupted, and the
 *   fiber's exit gives back its permit, an unspent reservation and its probe slot.
 */
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as Executor from "../Executor.js"
import * as InvalidOptions from "../InvalidOptions.js"
import type * as RateLimiter from "../RateLimiter.js"
import * as RateLimiterStore from "../RateLimiterStore.js"
import { type AttemptRecord, isTerminal, type RequestEvent, type RequestStatus } from "../RequestEvent.js"
import type * as Retry from "../Retry.js"
import { ExecutorShutdownError, QueueFullError, RequestTimeoutError } from "./executorError.js"
import { makeMetrics } from "./executorMetrics.js"
import { type KeySettings, makeResolver } from "./executorResilience.js"
import { PriorityQueue } from "./priorityQueue.js"
import * as RateLimiterInternal from "./rateLimiter.js"
import * as RetryInternal from "./retry.js"

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  concurrency: InvalidOptions.PositiveInt,
  queueCapacity: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  whenFull: Schema.optional(Schema.UndefinedOr(Schema.Literal("suspend", "fail"))),
  limits: Schema.optional(Schema.UndefinedOr(Schema.Unknown)),
  rateLimiter: Schema.optional(Schema.UndefinedOr(Schema.Object)),
  timeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  deadline: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  retry: Schema.optional(Schema.UndefinedOr(Schema.Object)),
  breaker: Schema.optional(Schema.UndefinedOr(Schema.Object)),
  keys: Schema.optional(
    Schema.UndefinedOr(
      Schema.Record({
        key: Schema.String,
        value: Schema.Struct({
          retry: Schema.optional(Schema.UndefinedOr(Schema.Object)),
          breaker: Schema.optional(Schema.UndefinedOr(Schema.Object)),
          timeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
          deadline: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration))
        })
      })
    )
  ),
  shutdownTimeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.NonNegativeDuration)),
  eventBufferSize: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  spans: Schema.optional(Schema.UndefinedOr(Schema.Boolean))
}).pipe(
  Schema.filter(
    (options) =>
      options.limits === undefined ||
      options.rateLimiter === undefined || {
        path: ["limits"],
        message: "Give either limits or rateLimiter, not both"
      }
  )
)

const decodeOptions = InvalidOptions.decode("Executor", OptionsSchema)

const DEFAULT_QUEUE_CAPACITY = 10_000
const DEFAULT_SHUTDOWN_TIMEOUT = Duration.seconds(30)
const DEFAULT_EVENT_BUFFER = 1024

/** A request as the executor holds it: a small mutable record. */
class Request {
  status: RequestStatus = "PENDING"
  attempts = 0
  reservation: RateLimiter.Reservation | undefined = undefined
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /** Completed to cut short a wait for admission or a permit when the request is cancelled. */
  cancelSignal: Deferred.Deferred<void> | undefined = undefined
  abandoned = false
  /** Its deadline ran out; it ends FAILED with a deadline error. */
  expired = false
  /** Holds one of the executor's concurrency permits now. */
  holdsPermit = false
  /** Started, and between attempts (waiting out a retry delay or re-admission). */
  betweenAttempts = false
  /** Each finished attempt (kept only on the resilient path). */
  attemptLog: Array<AttemptRecord> | undefined = undefined
  error: unknown = undefined
  /** When the request entered each status it has been through. */
  readonly timestamps: Partial<Record<RequestStatus, number>>

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
    /** The request's place in its batch (0 for a single submit). */
    readonly index: number,
    now: number
  ) {
    this.timestamps = { PENDING: now }
  }

  enter(status: RequestStatus, now: number): void {
    this.status = status
    this.timestamps[status] = now
  }
}

interface RoomWaiter {
  readonly deferred: Deferred.Deferred<void, ExecutorShutdownError>
  /** A batch: woken only once the queue has drained to half, then refills in bulk. */
  readonly bulk: boolean
  /** False once its waiter was interrupted. */
  active: boolean
  /** True once it was promised a slot. */
  woken: boolean
}

const isRequestLive = (request: Request) => request.status === "QUEUED"

const toMillis = (input: Duration.DurationInput | undefined): number | undefined =>
  input === undefined ? undefined : Duration.toMillis(Duration.decode(input))

export const make = (
  options: Executor.Options
): Effect.Effect<Executor.ExecutorShape, InvalidOptions.InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function* () {
    const decoded = yield* decodeOptions(options)
    const name = decoded.name
    const concurrency = decoded.concurrency
    const queueCapacity = decoded.queueCapacity ?? DEFAULT_QUEUE_CAPACITY
    const whenFull = decoded.whenFull ?? "suspend"
    const settingsFor = yield* makeResolver(name, options)
    const shutdownTimeout = decoded.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT
    const spans = decoded.spans ?? true
    const limiter = options.rateLimiter ?? (yield* makeLimiter(name, options.limits))

    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const semaphore = yield* Effect.makeSemaphore(concurrency)
    const metrics = makeMetrics(name)
    const pubsub = yield* PubSub.sliding<RequestEvent>(decoded.eventBufferSize ?? DEFAULT_EVENT_BUFFER)
    let subscribers = 0

    const queue = new PriorityQueue<Request>(isRequestLive)
    let queued = 0
    let inFlight = 0
    let retrying = 0
    let admitting: Request | undefined
    const running = new Set<Request>()
    const roomWaiters: Array<RoomWaiter> = []
    /** Slots promised to woken room waiters that have not enqueued yet. */
    let promisedSlots = 0
    let completed = 0
    let failed = 0
    let cancelled = 0
    let nextId = 0
    let accepting = true
    let workAvailable: Deferred.Deferred<void> | undefined
    let idle: Deferred.Deferred<void> | undefined
    let report: Deferred.Deferred<Executor.ShutdownReport> | undefined

    // ---- events -------------------------------------------------------------

    const snapshot = (request: Request): RequestEvent => {
      const event: { -readonly [K in keyof RequestEvent]: RequestEvent[K] } = {
        id: request.id,
        executor: name,
        key: request.key,
        priority: request.priority,
        cost: request.cost,
        status: request.status,
        timestamps: { ...request.timestamps },
        attempts: request.attempts
      }
      if (request.error !== undefined) event.error = request.error
      if (request.attemptLog !== undefined) event.attemptLog = [...request.attemptLog]
      return event
    }

    const publish = (request: Request) => {
      if (subscribers > 0) pubsub.unsafeOffer(snapshot(request))
    }

    const subscribe = Effect.acquireRelease(
      Effect.sync(() => {
        subscribers++
      }),
      () =>
        Effect.sync(() => {
          subscribers--
        })
    ).pipe(Effect.zipRight(PubSub.subscribe(pubsub)))

    // ---- bookkeeping --------------------------------------------------------

    const checkIdle = () => {
      if (idle !== undefined && queued === 0 && admitting === undefined && running.size === 0 && promisedSlots === 0) {
        Deferred.unsafeDone(idle, Exit.void)
      }
    }

    const setQueued = (value: number) => {
      queued = value
      metrics.queueDepth.unsafeUpdate(queued, [])
    }

    const lowWater = Math.floor(queueCapacity / 2)

    /** Hands a freed queue slot to the first caller still waiting for room. */
    const wakeRoomWaiter = () => {
      while (roomWaiters.length > 0 && queued + promisedSlots < queueCapacity) {
        const waiter = roomWaiters[0]!
        if (waiter.active && waiter.bulk && queued + promisedSlots > lowWater) return
        roomWaiters.shift()
        if (!waiter.active) continue
        promisedSlots++
        waiter.woken = true
        Deferred.unsafeDone(waiter.deferred, Exit.void)
      }
    }

    const push = (request: Request) => {
      request.enter("QUEUED", now())
      queue.push(request)
      setQueued(queued + 1)
      publish(request)
      if (workAvailable !== undefined) {
        const signal = workAvailable
        workAvailable = undefined
        Deferred.unsafeDone(signal, Exit.void)
      }
    }

    const settle = (
      request: Request,
      status: "COMPLETED" | "FAILED" | "CANCELLED",
      exit: Exit.Exit<unknown, unknown>
    ) => {
      request.enter(status, now())
      if (status === "COMPLETED") completed++
      else if (status === "FAILED") failed++
      else cancelled++
      metrics.outcome(status)
      publish(request)
      request.onExit(request, exit)
      checkIdle()
    }

    const abandonedError = (request: Request) =>
      new ExecutorShutdownError({ executor: name, reason: "Abandoned", requestId: request.id })

    // ---- intake -------------------------------------------------------------

    const notAccepting = () => new ExecutorShutdownError({ executor: name, reason: "NotAccepting" })

    const hasRoom = () => roomWaiters.length === 0 && queued + promisedSlots < queueCapacity

    /** Waits for a promised slot; a waiter interrupted after being woken passes its slot on. */
    const waitForRoom = (bulk: boolean) =>
      Effect.suspend(() => {
        const waiter: RoomWaiter = { deferred: Deferred.unsafeMake(FiberId.none), bulk, active: true, woken: false }
        roomWaiters.push(waiter)
        return Effect.onInterrupt(Deferred.await(waiter.deferred), () =>
          Effect.sync(() => {
            waiter.active = false
            if (waiter.woken) {
              // It had been promised a slot already: give the slot back.
              promisedSlots--
              wakeRoomWaiter()
              checkIdle()
            }
          })
        )
      })

    const enqueue = (request: Request): Effect.Effect<void, QueueFullError | ExecutorShutdownError> =>
      Effect.suspend((): Effect.Effect<void, QueueFullError | ExecutorShutdownError> => {
        if (!accepting) return Effect.fail(notAccepting())
        if (hasRoom()) {
          push(request)
          return Effect.void
        }
        if (whenFull === "fail") return Effect.fail(new QueueFullError({ executor: name, queueCapacity }))
        return Effect.zipRight(
          waitForRoom(false),
          Effect.sync(() => {
            promisedSlots--
            push(request)
          })
        )
      })

    const newRequest = (
      effect: Effect.Effect<unknown, unknown, any>,
      options: Executor.SubmitOptions | undefined,
      runtime: Runtime.Runtime<any>,
      onExit: (request: Request, exit: Exit.Exit<unknown, unknown>) => void,
      index: number
    ) => {
      const key = options?.key ?? RateLimiterInternal.DEFAULT_KEY
      const settings = settingsFor(key)
      const at = now()
      const deadlineMillis = options?.deadline === undefined ? settings.deadlineMillis : toMillis(options.deadline)
      return new Request(
        ++nextId,
        key,
        options?.priority ?? 0,
        options?.cost,
        options?.timeout === undefined ? settings.timeoutMillis : toMillis(options.timeout),
        deadlineMillis === undefined ? undefined : at + deadlineMillis,
        deadlineMillis === undefined || settings.plain ? settings : { ...settings, plain: false },
        effect,
        runtime,
        onExit,
        index,
        at
      )
    }

    const invalidSubmit = (
      options: Executor.SubmitOptions | undefined
    ): InvalidOptions.InvalidOptionsError | undefined => {
      if (options === undefined) return undefined
      if (options.priority !== undefined && !Number.isFinite(options.priority)) {
        return new InvalidOptions.InvalidOptionsError({
          component: `Executor "${name}" submit`,
          issues: `["priority"] Expected a finite number, actual ${options.priority}`
        })
      }
      if (options.deadline !== undefined && !Schema.is(InvalidOptions.PositiveDuration)(options.deadline)) {
        return new InvalidOptions.InvalidOptionsError({
          component: `Executor "${name}" submit`,
          issues: `["deadline"] Expected a duration above zero, actual ${String(options.deadline)}`
        })
      }
      if (options.timeout !== undefined && !Schema.is(InvalidOptions.PositiveDuration)(options.timeout)) {
        return new InvalidOptions.InvalidOptionsError({
          component: `Executor "${name}" submit`,
          issues: `["timeout"] Expected a duration above zero, actual ${String(options.timeout)}`
        })
      }
      return undefined
    }

    // ---- cancellation -------------------------------------------------------

    /** Gives back the tokens of a request admitted but never started. */
    const refund = (request: Request): Effect.Effect<void> => {
      const reservation = request.reservation
      if (reservation === undefined || limiter === undefined) return Effect.void
      request.reservation = undefined
      return Effect.ignore(limiter.refund(reservation))
    }

    const deadlineError = (request: Request) =>
      new RequestTimeoutError({
        executor: name,
        requestId: request.id,
        timeoutMillis: request.deadlineAt! - request.timestamps.PENDING!,
        kind: "Deadline"
      })

    /**
     * Ends a request that has not finished: its caller was interrupted, the
     * executor is abandoning it, or its deadline ran out (which ends it FAILED).
     */
    const cancel = (request: Request, cause: "caller" | "shutdown" | "deadline"): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (cause === "shutdown") {
          request.abandoned = true
          request.error = abandonedError(request)
        } else if (cause === "deadline") {
          request.expired = true
          request.error = deadlineError(request)
        }
        const end = () => {
          if (cause === "caller") settle(request, "CANCELLED", Exit.interrupt(FiberId.none))
          else if (cause === "shutdown") settle(request, "CANCELLED", Exit.fail(abandonedError(request)))
          else settle(request, "FAILED", Exit.fail(deadlineError(request)))
        }
        // A started request (running, or between attempts) ends through its fiber's exit.
        if (request.fiber !== undefined) {
          return isTerminal(request.status) ? Effect.void : Effect.asVoid(Fiber.interrupt(request.fiber))
        }
        switch (request.status) {
          case "PENDING": {
            end()
            return Effect.void
          }
          case "QUEUED": {
            setQueued(queued - 1)
            queue.compact(queued)
            end()
            wakeRoomWaiter()
            return Effect.void
          }
          case "PROCESSING": {
            if (request.cancelSignal !== undefined) Deferred.unsafeDone(request.cancelSignal, Exit.void)
            if (admitting === request) admitting = undefined
            end()
            return refund(request)
          }
          default:
            return Effect.void
        }
      })

    // ---- permits ------------------------------------------------------------

    const holdPermit = (request: Request) => {
      request.holdsPermit = true
      inFlight++
      metrics.inFlight.unsafeUpdate(inFlight, [])
    }

    const releasePermit = (request: Request): Effect.Effect<void> => {
      if (!request.holdsPermit) return Effect.void
      request.holdsPermit = false
      inFlight--
      metrics.inFlight.unsafeUpdate(inFlight, [])
      return semaphore.release(1)
    }

    // ---- dispatch -----------------------------------------------------------

    const finish = (request: Request, exit: Exit.Exit<unknown, unknown>) => {
      running.delete(request)
      if (request.abandoned) {
        settle(request, "CANCELLED", Exit.fail(abandonedError(request)))
      } else if (request.expired) {
        settle(request, "FAILED", Exit.fail(deadlineError(request)))
      } else if (Exit.isSuccess(exit)) {
        settle(request, "COMPLETED", exit)
      } else if (Cause.isInterruptedOnly(exit.cause)) {
        request.error = "interrupted"
        settle(request, "CANCELLED", exit)
      } else {
        request.error = Option.getOrElse(Cause.failureOption(exit.cause), () => Cause.squash(exit.cause))
        settle(request, "FAILED", exit)
      }
    }

    /** The effect under its timeout: the request's own, or what is left of its deadline if that is sooner. */
    const withTimeout = (request: Request, effect: Effect.Effect<unknown, unknown, any>) => {
      const attemptMillis = request.timeoutMillis
      const leftMillis = request.deadlineAt === undefined ? undefined : request.deadlineAt - now()
      if (attemptMillis === undefined && leftMillis === undefined) return effect
      const byDeadline = leftMillis !== undefined && (attemptMillis === undefined || leftMillis < attemptMillis)
      return Effect.timeoutFail(effect, {
        duration: Duration.millis(Math.max(0, byDeadline ? leftMillis! : attemptMillis!)),
        onTimeout: () =>
          byDeadline
            ? deadlineError(request)
            : new RequestTimeoutError({ executor: name, requestId: request.id, timeoutMillis: attemptMillis! })
      })
    }

    const inSpan = (request: Request, effect: Effect.Effect<unknown, unknown, any>) =>
      spans
        ? Effect.withSpan(effect, "sluice.executor.request", {
            kind: "client",
            attributes: {
              "sluice.executor": name,
              "sluice.request.id": request.id,
              "sluice.request.key": request.key,
              "sluice.request.priority": request.priority
            }
          })
        : effect

    /** One attempt, no retry, no breaker: the fast path. */
    const plainProgram = (request: Request): Effect.Effect<unknown, unknown, any> =>
      // The work is interruptible whatever the caller's region was: timeouts and cancellation must reach it.
      Effect.onExit(inSpan(request, withTimeout(request, Effect.interruptible(request.effect))), (exit) =>
        Effect.zipRight(
          releasePermit(request),
          Effect.sync(() => {
            metrics.callDuration.unsafeUpdate(now() - request.timestamps.CALLING!, [])
            finish(request, exit)
          })
        )
      )

    const leaveRetryWait = (request: Request) => {
      if (!request.betweenAttempts) return
      request.betweenAttempts = false
      retrying--
    }

    const beginAttempt = (request: Request, attempt: number) => {
      const startedAt = now()
      request.enter("CALLING", startedAt)
      request.attempts = attempt
      metrics.admissionWait.unsafeUpdate(startedAt - request.timestamps.PROCESSING!, [])
      publish(request)
    }

    const logAttempt = (request: Request, record: AttemptRecord) => {
      request.attemptLog ??= []
      request.attemptLog.push(record)
    }

    const outcomeOf = (exit: Exit.Exit<unknown, unknown>): AttemptRecord["outcome"] => {
      if (Exit.isSuccess(exit)) return "success"
      if (Cause.isInterruptedOnly(exit.cause)) return "interrupted"
      const error = Cause.failureOption(exit.cause)
      return Option.isSome(error) && error.value instanceof RequestTimeoutError ? "timeout" : "failure"
    }

    /**
     * One attempt on the resilient path, holding a permit and (with limits) a
     * reservation: the breaker lets it through or refuses it (then its tokens
     * go back), then the call runs under its timeout and the breaker hears the
     * outcome. The permit is returned whatever happens.
     */
    const attemptOnce = (request: Request, attempt: number): Effect.Effect<Exit.Exit<unknown, unknown>, never, any> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const breaker = request.settings.breaker
          let breakerPermit: CircuitBreaker.Permit | undefined
          if (breaker !== undefined) {
            const admitted = yield* Effect.either(breaker.admit(request.key))
            if (Either.isLeft(admitted)) {
              yield* refund(request)
              yield* releasePermit(request)
              const at = now()
              logAttempt(request, { attempt, startedAt: at, endedAt: at, outcome: "rejected", error: admitted.left })
              return Exit.fail(admitted.left)
            }
            breakerPermit = admitted.right
          }
          request.reservation = undefined // spent by this attempt
          beginAttempt(request, attempt)
          const startedAt = request.timestamps.CALLING!
          const exit = yield* Effect.exit(restore(withTimeout(request, Effect.interruptible(request.effect))))
          const outcome = outcomeOf(exit)
          if (breakerPermit !== undefined) {
            yield* breaker!.release(breakerPermit, outcome === "interrupted" ? "interrupted" : exit)
          }
          yield* releasePermit(request)
          const endedAt = now()
          metrics.callDuration.unsafeUpdate(endedAt - startedAt, [])
          const record: { -readonly [K in keyof AttemptRecord]: AttemptRecord[K] } = {
            attempt,
            startedAt,
            endedAt,
            outcome
          }
          if (Exit.isFailure(exit) && outcome !== "interrupted") {
            record.error = Option.getOrElse(Cause.failureOption(exit.cause), () => Cause.squash(exit.cause))
          }
          logAttempt(request, record)
          return exit
        })
      )

    /**
     * Admits a retry as the dispatcher admitted the first attempt, but from the
     * request's own fiber: the breaker is checked first (a refused retry costs
     * no tokens), then the limits, then a permit.
     */
    const readmit = (request: Request): Effect.Effect<void, unknown> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const breaker = request.settings.breaker
          if (breaker !== undefined) yield* breaker.check(request.key)
          if (limiter !== undefined) {
            request.reservation = yield* restore(limiter.acquire(request.cost, { key: request.key }))
          }
          yield* restore(semaphore.take(1))
          holdPermit(request)
          leaveRetryWait(request)
        })
      )

    /**
     * The resilient path: attempts until one succeeds or the retry policy
     * gives up. Between attempts the request holds no permit and shows as
     * PROCESSING; the wait and the re-admission are interruptible, and
     * whatever is held at an interruption is given back on exit.
     */
    const resilientProgram = (request: Request): Effect.Effect<unknown, unknown, any> => {
      const policy = request.settings.retry
      const decide = policy === undefined ? undefined : RetryInternal.makeDecider(policy, now(), request.deadlineAt)
      const giveUp = (exit: Exit.Exit<unknown, unknown>, reason?: Retry.GiveUpReason) => {
        const last = request.attemptLog?.[request.attemptLog.length - 1]
        if (reason !== undefined && last !== undefined)
          request.attemptLog![request.attemptLog!.length - 1] = { ...last, gaveUp: reason }
        return exit
      }
      const attemptFrom = (attempt: number): Effect.Effect<Exit.Exit<unknown, unknown>, never, any> =>
        Effect.flatMap(attemptOnce(request, attempt), (exit) => {
          if (Exit.isSuccess(exit) || decide === undefined || Cause.isInterruptedOnly(exit.cause)) {
            return Effect.succeed(exit)
          }
          const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
          if (error === undefined) return Effect.succeed(giveUp(exit, "NotRetryable")) // a defect
          return Effect.flatMap(decide(error, attempt, now()), (decision) => {
            if (decision._tag === "GiveUp") return Effect.succeed(giveUp(exit, decision.reason))
            const last = request.attemptLog![request.attemptLog!.length - 1]!
            request.attemptLog![request.attemptLog!.length - 1] = { ...last, retryDelayMillis: decision.delayMillis }
            retrying++
            request.betweenAttempts = true
            request.enter("PROCESSING", now())
            publish(request)
            return Effect.zipRight(Effect.sleep(Duration.millis(decision.delayMillis)), readmit(request)).pipe(
              Effect.matchEffect({
                onFailure: (refusal) =>
                  Effect.sync(() => {
                    leaveRetryWait(request)
                    const at = now()
                    logAttempt(request, {
                      attempt: attempt + 1,
                      startedAt: at,
                      endedAt: at,
                      outcome: "rejected",
                      error: refusal
                    })
                    return Exit.fail(refusal) as Exit.Exit<unknown, unknown>
                  }),
                onSuccess: () => attemptFrom(attempt + 1)
              })
            )
          })
        })
      const attempts = Effect.flatten(
        policy?.budget === undefined ? attemptFrom(1) : Effect.zipRight(policy.budget.recordRequest, attemptFrom(1))
      )
      return Effect.onExit(inSpan(request, attempts), (exit) =>
        Effect.suspend(() => {
          leaveRetryWait(request) // if interrupted between attempts
          return Effect.zipRight(
            Effect.zipRight(refund(request), releasePermit(request)),
            Effect.sync(() => finish(request, exit))
          )
        })
      )
    }

    const start = (request: Request) => {
      admitting = undefined
      running.add(request)
      holdPermit(request)
      // On the resilient path the attempt begins once the breaker lets it through.
      if (request.settings.plain) beginAttempt(request, 1)
      const program = request.settings.plain ? plainProgram(request) : resilientProgram(request)
      request.fiber = Runtime.runFork(request.runtime)(program)
    }

    /** Waits for `wait`, or answers `onCancel` sooner if the request is cancelled meanwhile. */
    const unlessCancelled = <A, E>(request: Request, wait: Effect.Effect<A, E>, onCancel: A) => {
      request.cancelSignal ??= Deferred.unsafeMake(FiberId.none)
      return Effect.raceFirst(wait, Effect.as(Deferred.await(request.cancelSignal), onCancel))
    }

    const takePermitAndStart = (request: Request): Effect.Effect<void> => {
      if (request.status !== "PROCESSING") {
        admitting = undefined
        checkIdle()
        return refund(request)
      }
      const takePermit = Effect.as(semaphore.take(1), true)
      const permit = inFlight < concurrency ? takePermit : unlessCancelled(request, takePermit, false)
      return Effect.flatMap(permit, (holdsPermit) => {
        if (request.status === "PROCESSING") {
          start(request)
          return Effect.void
        }
        // Cancelled meanwhile: hand back the permit if the race left us holding it, and the tokens.
        admitting = undefined
        checkIdle()
        return Effect.zipRight(holdsPermit ? semaphore.release(1) : Effect.void, refund(request))
      })
    }

    /** Ends a dequeued request before admission: refused by its breaker, its limits, or its deadline. */
    const refuse = (request: Request, error: unknown) => {
      admitting = undefined
      request.error = error
      if (!request.settings.plain) {
        const at = now()
        logAttempt(request, { attempt: 1, startedAt: at, endedAt: at, outcome: "rejected", error })
      }
      settle(request, "FAILED", Exit.fail(error))
      return Effect.void
    }

    const admit = (request: Request): Effect.Effect<void> => {
      if (request.deadlineAt !== undefined && now() >= request.deadlineAt) {
        request.expired = true
        return refuse(request, deadlineError(request))
      }
      const breaker = request.settings.breaker
      const admission =
        limiter === undefined
          ? Effect.succeed(Option.none<RateLimiter.Reservation>())
          : Effect.map(limiter.acquire(request.cost, { key: request.key }), Option.some)
      // An open breaker refuses before the limits are asked: a refused request costs no tokens.
      const checked = breaker === undefined ? admission : Effect.zipRight(breaker.check(request.key), admission)
      if (limiter === undefined && breaker === undefined) return takePermitAndStart(request)
      return Effect.matchEffect(unlessCancelled(request, checked, Option.none()), {
        onFailure: (error) => refuse(request, error),
        onSuccess: (reservation) => {
          if (Option.isSome(reservation)) request.reservation = reservation.value
          return takePermitAndStart(request)
        }
      })
    }

    const waitForWork = Effect.suspend(() => {
      workAvailable ??= Deferred.unsafeMake(FiberId.none)
      return Deferred.await(workAvailable)
    })

    const dispatchOne: Effect.Effect<void> = Effect.suspend(() => {
      const request = queue.pop()
      if (request === undefined) return waitForWork
      setQueued(queued - 1)
      wakeRoomWaiter()
      admitting = request
      request.enter("PROCESSING", now())
      publish(request)
      return admit(request)
    })

    // A plain loop: `Effect.forever` would yield to the scheduler after every request.
    const dispatchLoop: Effect.Effect<never> = Effect.flatMap(dispatchOne, () => dispatchLoop)
    const dispatcher = yield* Effect.forkScoped(dispatchLoop)

    // ---- shutdown -----------------------------------------------------------

    const abandonRest = (unfinishedAtStart: number): Effect.Effect<Executor.ShutdownReport> =>
      Effect.suspend(() => {
        const abandoned: Array<number> = []
        const victims: Array<Request> = queue.drain()
        if (admitting !== undefined) victims.push(admitting)
        for (const request of running) victims.push(request)
        for (const request of victims) abandoned.push(request.id)
        return Effect.forEach(victims, (request) => cancel(request, "shutdown"), {
          concurrency: "unbounded",
          discard: true
        }).pipe(
          Effect.zipRight(Fiber.interrupt(dispatcher)),
          Effect.as({ executor: name, unfinishedAtStart, abandoned: abandoned.sort((a, b) => a - b) }),
          Effect.tap((result) =>
            result.abandoned.length === 0
              ? Effect.void
              : Effect.logWarning(
                  `Executor "${name}" shut down with ${result.abandoned.length} unfinished request(s); they were abandoned`
                ).pipe(Effect.annotateLogs({ executor: name, abandoned: result.abandoned }))
          )
        )
      })

    const shutdown = (deadline?: Duration.DurationInput): Effect.Effect<Executor.ShutdownReport> =>
      Effect.uninterruptibleMask((restore) => {
        if (report !== undefined) return restore(Deferred.await(report))
        const done = Deferred.unsafeMake<Executor.ShutdownReport>(FiberId.none)
        report = done
        accepting = false
        for (const waiter of roomWaiters.splice(0)) {
          if (waiter.active) Deferred.unsafeDone(waiter.deferred, Exit.fail(notAccepting()))
        }
        const unfinishedAtStart = queued + (admitting === undefined ? 0 : 1) + inFlight
        idle = Deferred.unsafeMake(FiberId.none)
        checkIdle()
        const wait = deadline === undefined ? shutdownTimeout : Duration.decode(deadline)
        // The drain wait is interruptible even inside a finalizer, so that the race
        // can stop its loser; abandoning is not.
        return Effect.interruptible(Effect.raceFirst(Deferred.await(idle), Effect.sleep(wait))).pipe(
          Effect.zipRight(abandonRest(unfinishedAtStart)),
          Effect.tap((result) => Deferred.succeed(done, result))
        )
      })

    yield* Effect.addFinalizer(() => shutdown())

    // ---- public -------------------------------------------------------------

    const submit = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      submitOptions?: Executor.SubmitOptions
    ): Effect.Effect<A, E | Executor.ExecutorError, R> =>
      // The runtime is captured first: it carries the caller's flags, and the work must stay interruptible.
      // Then uninterruptible from the request's creation until its cancellation is in place.
      Effect.flatMap(Effect.runtime<R>(), (runtime) =>
        Effect.uninterruptibleMask((restore) => {
          const invalid = invalidSubmit(submitOptions)
          if (invalid !== undefined) return Effect.fail(invalid)
          if (!accepting) return Effect.fail(notAccepting())
          const deferred = Deferred.unsafeMake<A, E | Executor.ExecutorError>(FiberId.none)
          const request = newRequest(
            effect,
            submitOptions,
            runtime,
            (_, exit) => Deferred.unsafeDone(deferred, exit as Exit.Exit<A, E>),
            0
          )
          publish(request)
          // A refused request (queue full, or shutdown while waiting for room) ends FAILED.
          const enqueued = Effect.catchAll(enqueue(request), (error) =>
            Effect.sync(() => {
              request.error = error
              settle(request, "FAILED", Exit.fail(error))
            })
          )
          const answer = Deferred.await(deferred)
          // With a deadline, the caller's own timer ends the request wherever it is (queue included).
          const deadlineAt = request.deadlineAt
          const bounded =
            deadlineAt === undefined
              ? answer
              : Effect.raceFirst(
                  answer,
                  Effect.sleep(Duration.millis(deadlineAt - now())).pipe(
                    Effect.zipRight(cancel(request, "deadline")),
                    Effect.zipRight(answer)
                  )
                )
          return restore(Effect.zipRight(enqueued, bounded)).pipe(Effect.onInterrupt(() => cancel(request, "caller")))
        })
      )

    const submitAll = <A, E, R>(
      tasks: Iterable<Executor.Task<A, E, R>>
    ): Effect.Effect<Array<Exit.Exit<A, E | Executor.ExecutorError>>, never, R> =>
      Effect.flatMap(Effect.runtime<R>(), (runtime) =>
        Effect.suspend(() => {
          const iterator = tasks[Symbol.iterator]()
          const results: Array<Exit.Exit<A, E | Executor.ExecutorError>> = []
          const outstanding: Array<Request | undefined> = []
          const done = Deferred.unsafeMake<void>(FiberId.none)
          let pending = 0
          let exhausted = false
          let index = 0

          const onExit = (request: Request, exit: Exit.Exit<unknown, unknown>) => {
            results[request.index] = exit as Exit.Exit<A, E>
            outstanding[request.index] = undefined
            pending--
            if (exhausted && pending === 0) Deferred.unsafeDone(done, Exit.void)
          }

          const finishIntake = () => {
            exhausted = true
            if (pending === 0) Deferred.unsafeDone(done, Exit.void)
            return Deferred.await(done)
          }

          const fill = (useSlot: boolean): Effect.Effect<void> =>
            Effect.suspend(() => {
              let slotPromised = useSlot
              while (true) {
                if (!slotPromised && !hasRoom() && accepting) {
                  return Effect.matchEffect(waitForRoom(true), {
                    onFailure: () => fill(false),
                    onSuccess: () => fill(true)
                  })
                }
                const next = iterator.next()
                if (next.done === true) {
                  if (slotPromised) {
                    promisedSlots--
                    wakeRoomWaiter()
                    checkIdle()
                  }
                  return finishIntake()
                }
                const position = index++
                const task = next.value
                const isBare = Effect.isEffect(task)
                const effect = isBare ? task : task.effect
                const taskOptions = isBare ? undefined : task
                const invalid = invalidSubmit(taskOptions)
                if (!accepting || invalid !== undefined) {
                  results[position] = Exit.fail(invalid ?? notAccepting())
                  continue
                }
                const request = newRequest(effect, taskOptions, runtime, onExit, position)
                pending++
                outstanding[position] = request
                if (slotPromised) {
                  promisedSlots--
                  slotPromised = false
                }
                push(request)
              }
            })

          return fill(false).pipe(
            Effect.onInterrupt(() =>
              Effect.forEach(
                outstanding.filter((request): request is Request => request !== undefined),
                (request) => cancel(request, "caller"),
                { concurrency: "unbounded", discard: true }
              )
            ),
            Effect.as(results)
          )
        })
      )

    const stats = Effect.sync(
      (): Executor.Stats => ({
        queued,
        admitting: admitting === undefined ? 0 : 1,
        inFlight,
        retrying,
        availablePermits: concurrency - inFlight,
        waitingForRoom: roomWaiters.filter((waiter) => waiter.active).length,
        completed,
        failed,
        cancelled
      })
    )

    return {
      name,
      submit,
      submitAll,
      stats,
      events: Stream.unwrapScoped(Effect.map(subscribe, Stream.fromQueue)),
      subscribe,
      shutdown
    } satisfies Executor.ExecutorShape
  })

/** The limiter an executor builds from its `limits`: over the store in context, or a private memory store. */
const makeLimiter = (name: string, limits: Executor.Options["limits"]) =>
  Effect.gen(function* () {
    if (limits === undefined) return undefined
    const store = yield* Effect.serviceOption(RateLimiterStore.RateLimiterStore)
    const resolved = Option.isSome(store) ? store.value : yield* RateLimiterStore.makeMemory()
    return yield* RateLimiterInternal.make({ name, limits }).pipe(
      Effect.provideService(RateLimiterStore.RateLimiterStore, resolved),
      Effect.mapError(
        (error) =>
          new InvalidOptions.InvalidOptionsError({ component: "Executor", issues: `["limits"] ${error.issues}` })
      )
    )
  })

export const submitWith = <A, E, R, I, S extends Executor.ExecutorShape>(
  tag: Context.Tag<I, S>,
  effect: Effect.Effect<A, E, R>,
  options?: Executor.SubmitOptions
): Effect.Effect<A, E | Executor.ExecutorError, R | I> =>
  Effect.flatMap(tag, (executor) => executor.submit(effect, options))
