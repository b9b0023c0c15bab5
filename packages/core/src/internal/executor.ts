/**
 * The Executor's machinery. Requests wait in one priority queue (single
 * submits and batches alike, so priority order holds across both). The head
 * request leaves the queue (PROCESSING), is admitted by the rate limiter if
 * there is one (holding no permit), takes one of `concurrency` permits and
 * starts (CALLING) in its caller's runtime, so the caller's services, Clock and
 * span parent apply. Queued requests are plain records.
 *
 * Two drivers move the head:
 * - without a rate limiter there is no dispatcher fiber: `pump` starts requests
 *   synchronously while permits last and keeps the next one out of the queue,
 *   waiting for a permit, as a dispatcher would. A finishing request pumps at
 *   once (no fiber hop, no race, no Effect per request); new work pumps on the
 *   scheduler's next turn, so that callers arriving together are ordered by
 *   priority first and a burst of pushes costs one pass. A single submit that
 *   finds nothing ahead of it (an empty queue, nobody admitting or waiting for
 *   room, a permit free) has no one to be ordered against: it goes through the
 *   queue and starts on its caller's turn (`startAtOnce`), its fiber running at
 *   once up to its first suspension;
 * - with a rate limiter one dispatcher fiber admits one request at a time in
 *   priority order (admission is an Effect that may sleep), then waits on one
 *   signal for a permit, new work or a cancellation.
 * Permits are a plain counter (`inFlight < concurrency`) with a slot table of
 * running requests: every start and every finish happens in the executor's own
 * synchronous bookkeeping, where a `Semaphore` would add a suspension per
 * request and hand a permit to a waiter before `inFlight` drops.
 *
 * How a started request runs:
 * - a single `submit`: in a fiber of its own, forked in the caller's runtime,
 *   which is its attempt: the request finishes when that fiber ends (an
 *   observer, no Effect around the work), and with spans off its attempt
 *   timeout is watched by the executor's timer (`attemptTimer.ts`), which
 *   interrupts that fiber, instead of a race of two more fibers per call;
 * - a request of a batch (`submitAll`) without a rate limiter: inline on one
 *   of the batch's worker fibers (`batchWorkers.ts`: at most `concurrency`,
 *   forked lazily in the batch caller's runtime, parked when idle), so a batch
 *   costs no fiber per request. Each request starts from the caller's
 *   FiberRefs, and what it forked and left running is interrupted when it ends;
 * - with a rate limiter, every request in a fiber of its own (as a single
 *   submit's), started at once by the dispatcher, so that it starts when it was
 *   admitted (a hand-over to a parked worker would add a scheduler turn of
 *   jitter to the rate). As its last step before the work (and each
 *   retry's), it tells the limiter the work begins (`RateLimiter.began`), so
 *   the limiter's window of real time counts the start, however long the
 *   process paused since the admission.
 *
 * Events are published only while someone subscribes; the event record is
 * built from the request's timestamp fields only then.
 *
 * A request with a retry policy, a breaker or a deadline takes the resilient
 * path (`executorResilient.ts`): always a fiber of its own, which admits each
 * attempt through the breaker, runs it under its timeout, tells the breaker
 * the outcome and asks the retry policy what follows. Between attempts it
 * holds no permit: it waits out the delay, then goes back into the priority
 * queue (above the capacity: it already had its place) to be admitted again
 * like any request (breaker check, limits, permit), and its fiber resumes when
 * `start` hands it a permit. The request record itself is `executorRequest.ts`.
 *
 * A request whose retry policy is all that applies (`retryOnly`: no breaker,
 * no deadline, no retry budget), on an executor with spans off, runs its
 * first attempt on the plain path instead: most first attempts succeed, and
 * then it costs what a plain request costs. `finish` logs that attempt as the
 * resilient path would; a failed one goes on to the resilient path in a fiber
 * of its own (forked then, holding no permit), whose retry policy decides what
 * follows. With spans on it takes the resilient path from the start, so that
 * one span covers all its attempts.
 *
 * Every way a request can leave undoes what it held at that moment:
 * - QUEUED: its queue slot is freed (and a caller waiting for room woken);
 * - PROCESSING: its rate reservation is refunded (it holds no permit yet);
 * - CALLING: its fiber (or its worker, which then retires) is interrupted,
 *   which returns the permit;
 * - a resilient request anywhere after its start (between attempts, queued
 *   again, admitted again): its fiber is interrupted, and the fiber's exit
 *   gives back its permit, an unspent reservation and its probe slot.
 */
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scheduler from "effect/Scheduler"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Executor from "../Executor.js"
import * as InvalidOptions from "../InvalidOptions.js"
import type * as RateLimiter from "../RateLimiter.js"
import * as RateLimiterStore from "../RateLimiterStore.js"
import type { RequestEvent } from "../RequestEvent.js"
import * as AttemptTimer from "./attemptTimer.js"
import * as BatchWorkers from "./batchWorkers.js"
import { CircuitOpenError } from "./circuitBreakerError.js"
import * as EventHub from "./eventHub.js"
import { ExecutorShutdownError, QueueFullError } from "./executorError.js"
import { makeMetrics } from "./executorMetrics.js"
import {
  Answer,
  attemptTimeoutError,
  deadlineError as deadlineErrorOf,
  inSpan,
  logAttempt,
  Request,
  withTimeout
} from "./executorRequest.js"
import { makeResolver } from "./executorResilience.js"
import * as ResilientPath from "./executorResilient.js"
import { PriorityQueue } from "./priorityQueue.js"
import * as RateLimiterInternal from "./rateLimiter.js"

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
const isPositiveSchema = Schema.is(InvalidOptions.PositiveDuration)
/** `PositiveDuration`, with milliseconds (what a client passes per call) checked without the Schema. */
const isPositiveDuration = (input: unknown) => (typeof input === "number" ? input > 0 : isPositiveSchema(input))

const DEFAULT_QUEUE_CAPACITY = 10_000
const DEFAULT_SHUTDOWN_TIMEOUT = Duration.seconds(30)
const DEFAULT_EVENT_BUFFER = 1024

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
    const scheduler = yield* Effect.withFiberRuntime<Scheduler.Scheduler>((fiber) =>
      Effect.succeed(fiber.currentScheduler)
    )
    const now = () => clock.unsafeCurrentTimeMillis()
    const metrics = makeMetrics(name)
    const events = yield* EventHub.make<RequestEvent>(decoded.eventBufferSize ?? DEFAULT_EVENT_BUFFER)
    // Before the shutdown finalizer: the timer outlives the drain.
    const attemptTimer = yield* AttemptTimer.make

    const queue = new PriorityQueue<Request>(isRequestLive)
    let queued = 0
    /** Started and not yet finished: the permits in use. */
    let inFlight = 0
    /** Resilient requests started and not yet finished (they may hold no permit between attempts). */
    const resilient = new Set<Request>()
    /** Of those, how many are between attempts. */
    let retrying = 0
    /** The request out of the queue, being admitted or waiting for a permit. */
    let admitting: Request | undefined
    /** Running requests by permit slot, and the free slots: no hashing per start and finish. */
    const running: Array<Request | undefined> = new Array(concurrency).fill(undefined)
    const freeSlots: Array<number> = Array.from({ length: concurrency }, (_, slot) => concurrency - 1 - slot)
    const roomWaiters: Array<RoomWaiter> = []
    /** Slots promised to woken room waiters that have not enqueued yet. */
    let promisedSlots = 0
    let completed = 0
    let failed = 0
    let cancelled = 0
    let nextId = 0
    let accepting = true
    /** The dispatcher (with a limiter) waits on this for work, a permit, or a cancellation. */
    let dispatcherSignal: Deferred.Deferred<void> | undefined
    let idle: Deferred.Deferred<void> | undefined
    let report: Deferred.Deferred<Executor.ShutdownReport> | undefined

    // ---- events and gauges --------------------------------------------------

    const snapshot = (request: Request): RequestEvent => {
      const event: { -readonly [K in keyof RequestEvent]: RequestEvent[K] } = {
        id: request.id,
        executor: name,
        key: request.key,
        priority: request.priority,
        cost: request.cost,
        status: request.status,
        timestamps: request.timestamps(),
        attempts: request.attempts
      }
      if (request.error !== undefined) event.error = request.error
      if (request.attemptLog !== undefined) event.attemptLog = [...request.attemptLog]
      return event
    }

    /** The event record is built only while someone subscribes. */
    const publish = (request: Request) => {
      if (events.observed()) events.offer(snapshot(request))
    }

    let reportedQueued = -1
    let reportedInFlight = -1
    const unreported = { COMPLETED: 0, FAILED: 0, CANCELLED: 0 }
    /**
     * Brings the gauges and the outcome counter up to date. Called at the end
     * of every synchronous step that moves requests (a single-threaded runtime
     * cannot read them in between), so a burst of a thousand pushes writes the
     * gauge once, and a burst of finishes adds to the counter once.
     */
    const reportMetrics = () => {
      if (unreported.COMPLETED > 0) {
        metrics.outcome("COMPLETED", unreported.COMPLETED)
        unreported.COMPLETED = 0
      }
      if (unreported.FAILED > 0) {
        metrics.outcome("FAILED", unreported.FAILED)
        unreported.FAILED = 0
      }
      if (unreported.CANCELLED > 0) {
        metrics.outcome("CANCELLED", unreported.CANCELLED)
        unreported.CANCELLED = 0
      }
      if (queued !== reportedQueued) {
        reportedQueued = queued
        metrics.queueDepth.unsafeUpdate(queued, [])
      }
      if (inFlight !== reportedInFlight) {
        reportedInFlight = inFlight
        metrics.inFlight.unsafeUpdate(inFlight, [])
      }
    }

    // ---- bookkeeping --------------------------------------------------------

    const checkIdle = () => {
      if (
        idle !== undefined &&
        queued === 0 &&
        admitting === undefined &&
        inFlight === 0 &&
        resilient.size === 0 &&
        promisedSlots === 0
      ) {
        Deferred.unsafeDone(idle, Exit.void)
      }
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

    /** Puts a request in the queue. The caller then calls `kick` (once per burst). */
    const push = (request: Request, at: number) => {
      request.status = "QUEUED"
      request.queuedAt = at
      queue.push(request)
      queued++
      publish(request)
    }

    /** Ends a request. The caller reports the metrics (`reportMetrics`, or `kick`) once its step is done. */
    const settle = (
      request: Request,
      status: "COMPLETED" | "FAILED" | "CANCELLED",
      exit: Exit.Exit<unknown, unknown>,
      at: number = now()
    ) => {
      request.status = status
      request.endedAt = at
      if (status === "COMPLETED") completed++
      else if (status === "FAILED") failed++
      else cancelled++
      unreported[status]++
      publish(request)
      request.onExit(request, exit)
      checkIdle()
    }

    const abandonedError = (request: Request) =>
      new ExecutorShutdownError({ executor: name, reason: "Abandoned", requestId: request.id })

    // ---- running ------------------------------------------------------------

    /**
     * Tells the limiter the admitted work begins (`RateLimiter.began`), as the last step before it: its
     * sliding window then counts this request from its real start, whatever paused the process since the
     * admission. A store failure here costs the request nothing.
     */
    const beginning = (
      reservation: RateLimiter.Reservation | undefined,
      effect: Effect.Effect<unknown, unknown, any>
    ) =>
      limiter === undefined || reservation === undefined
        ? effect
        : Effect.zipRight(Effect.ignore(RateLimiterInternal.began(limiter, reservation)), effect)

    /** The request's work: interruptible whatever the caller's region was, so timeouts and cancellation reach it. */
    const work = (request: Request, admitted?: RateLimiter.Reservation): Effect.Effect<unknown, unknown, any> => {
      let effect = beginning(admitted, Effect.interruptible(request.effect))
      if (request.timeoutMillis !== undefined) effect = withTimeout(name, now(), request, effect)
      return spans ? inSpan(name, request, effect) : effect
    }

    /** Gives back a started request's permit (once). The caller kicks the head afterwards. */
    const freePermit = (request: Request) => {
      if (request.slot < 0) return
      inFlight--
      running[request.slot] = undefined
      freeSlots.push(request.slot)
      request.slot = -1
    }

    /**
     * Attempt 1 of a `retryOnly` request, run on the plain path, ended: it is
     * logged, and a failure goes on to the resilient path, in a fiber of its
     * own, holding no permit while its retry policy decides (true: handed over).
     */
    const endFirstAttempt = (request: Request, exit: Exit.Exit<unknown, unknown>): boolean => {
      const at = now()
      resilientPath.logPlainAttempt(request, exit, at)
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause) || request.abandoned) return false
      freePermit(request)
      metrics.callDuration.unsafeUpdate(at - request.callingAt!, [])
      request.worker = undefined
      resilient.add(request)
      request.fiber = Runtime.runFork(request.runtime)(
        resilientPath.program(request, { _tag: "FirstAttemptFailed", exit }),
        { immediate: false }
      )
      kick("now", at)
      return true
    }

    /** A started request ended: its permit is free again. */
    const finish = (request: Request, attemptExit: Exit.Exit<unknown, unknown>) => {
      let exit = attemptExit
      const watch = request.timeoutWatch
      if (watch !== undefined) {
        // Interrupted by the executor's timer (and not otherwise ended): the attempt timed out.
        request.timeoutWatch = undefined
        if (attemptTimer.unwatch(watch) && Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) {
          exit = Exit.fail(attemptTimeoutError(name, request))
        }
      }
      if (request.settings.retryOnly && request.slot >= 0 && !resilient.has(request)) {
        if (endFirstAttempt(request, exit)) return
      }
      const plain = request.slot >= 0 && !resilient.has(request)
      freePermit(request)
      resilient.delete(request)
      request.worker = undefined
      const at = now()
      if (plain) metrics.callDuration.unsafeUpdate(at - request.callingAt!, [])
      if (request.abandoned) {
        settle(request, "CANCELLED", Exit.fail(abandonedError(request)), at)
      } else if (request.expired) {
        settle(request, "FAILED", Exit.fail(deadlineError(request)), at)
      } else if (Exit.isSuccess(exit)) {
        settle(request, "COMPLETED", exit, at)
      } else if (Cause.isInterruptedOnly(exit.cause)) {
        request.error = "interrupted"
        settle(request, "CANCELLED", exit, at)
      } else {
        request.error = Option.getOrElse(Cause.failureOption(exit.cause), () => Cause.squash(exit.cause))
        settle(request, "FAILED", exit, at)
      }
      kick("now", at)
    }

    const batchHooks: BatchWorkers.BatchHooks<Request, any> = { work, finished: finish }

    /**
     * The work of a request on a fiber of its own, which is its attempt: the executor's timer watches its
     * timeout and interrupts this very fiber (`finish` reads that as the timeout), unless spans are on (the
     * span would end interrupted, not failed), it has a deadline, its Clock is not the executor's, or the
     * timer cannot hold it; then `work` races it. The fiber is the request's before anything else runs, so
     * that a cancellation finds it even while it runs at once inside `start`.
     */
    const ownFiberWork = (request: Request, admitted?: RateLimiter.Reservation): Effect.Effect<unknown, unknown, any> =>
      Effect.withFiberRuntime((fiber) => {
        request.fiber ??= fiber
        const millis = request.timeoutMillis
        if (millis === undefined || spans || request.deadlineAt !== undefined) return work(request, admitted)
        return Effect.clockWith((current) => {
          if (current === clock) request.timeoutWatch = attemptTimer.watch(fiber, millis)
          return request.timeoutWatch === undefined
            ? work(request, admitted)
            : beginning(admitted, Effect.interruptible(request.effect))
        })
      })

    /**
     * Runs a single submit (or any request with a limiter) in a fiber of its own, forked in the caller's
     * runtime, and finishes it when the fiber ends (an observer: no Effect wrapped around the work).
     * `immediate`: the fiber runs at once, up to its first suspension. `admitted`: the limiter's reservation,
     * told when the work begins.
     */
    const runOnOwnFiber = (request: Request, immediate: boolean, admitted?: RateLimiter.Reservation) => {
      const fiber = Runtime.runFork(request.runtime)(ownFiberWork(request, admitted), { immediate })
      request.fiber ??= fiber
      fiber.addObserver((exit) => finish(request, exit))
    }

    const deadlineError = (request: Request) => deadlineErrorOf(name, request)

    const resilientPath = ResilientPath.make({
      executor: name,
      now,
      spans,
      metrics,
      publish,
      releasePermit: (request) => {
        if (request.slot < 0) return
        freePermit(request)
        kick("now")
      },
      refund: (request) => refund(request),
      beginning,
      requeue: (request) => {
        push(request, now())
        kick("next turn")
      },
      finish: (request, exit) => finish(request, exit),
      retrying: (delta) => {
        retrying += delta
      }
    })

    /**
     * Takes a permit for the admitting request and starts it. `atOnce`: called by the request's own caller
     * (`startAtOnce`), not inside the executor's bookkeeping, so a plain start may run its fiber at once.
     */
    const start = (request: Request, at: number, atOnce = false) => {
      const admitted = request.reservation
      admitting = undefined
      inFlight++
      request.slot = freeSlots.pop()!
      running[request.slot] = request
      if (!request.settings.plain) {
        const resume = request.resume
        if (resume !== undefined) {
          // A retry admitted again: its fiber goes on, holding the permit.
          request.resume = undefined
          Deferred.unsafeDone(resume, Exit.void)
          return
        }
        if (!request.settings.retryOnly || spans) {
          resilient.add(request)
          // Begins its attempt (CALLING) once its breaker lets it through.
          request.fiber = Runtime.runFork(request.runtime)(resilientPath.program(request), { immediate: false })
          return
        }
        // Its retry policy alone: attempt 1 runs as a plain request (`finish` hands a failed one over).
        request.reservation = undefined // spent by this attempt
      }
      request.status = "CALLING"
      request.callingAt = at
      request.attempts = 1
      metrics.admissionWait.unsafeUpdate(at - request.processingAt!, [])
      publish(request)
      if (limiter !== undefined) {
        // Started at once, inside the dispatcher, so that it starts when the limiter admitted it: a hop to a
        // parked worker would add a scheduler turn of jitter to every start. A rate-bound batch has few
        // requests running; a fiber each costs it nothing.
        runOnOwnFiber(request, true, admitted)
        return
      }
      const worker = request.batch?.offer(request)
      if (worker !== undefined) {
        request.worker = worker
        request.fiber = worker.fiber
      } else {
        // Not at once unless its caller starts it: else we are inside the executor's bookkeeping, maybe
        // inside another request's exit.
        runOnOwnFiber(request, atOnce)
      }
    }

    /**
     * A single submit that finds nothing ahead of it (no limiter, an empty queue, nobody admitting or
     * waiting for room, a permit free) goes through the queue and starts on its caller's turn, as the next
     * pump would have started it, without waiting for that pump (true: started).
     */
    const startAtOnce = (request: Request): boolean => {
      if (
        limiter !== undefined ||
        !accepting ||
        queued > 0 ||
        admitting !== undefined ||
        inFlight >= concurrency ||
        !hasRoom()
      ) {
        return false
      }
      const at = request.pendingAt
      push(request, at)
      popHead(at)
      start(request, at, true)
      reportMetrics()
      return true
    }

    /** Takes the head of the queue out: it is now the admitting request. */
    const popHead = (at: number): Request | undefined => {
      const request = queue.pop()
      if (request === undefined) return undefined
      queued--
      admitting = request
      request.status = "PROCESSING"
      request.processingAt = at
      publish(request)
      return request
    }

    /**
     * Without a limiter: starts requests in priority order while permits last,
     * and keeps the next one out of the queue as the admitting request (it is
     * waiting for a permit), as the dispatcher would.
     */
    const pump = (now_?: number) => {
      let at = now_
      let popped = false
      while (true) {
        let request = admitting
        if (request === undefined) {
          at ??= now()
          request = popHead(at)
          if (request === undefined) break
          popped = true
          if (request.deadlineAt !== undefined && at >= request.deadlineAt) {
            request.expired = true
            refuse(request, deadlineError(request))
            continue
          }
        }
        if (inFlight >= concurrency) break
        start(request, (at ??= now()))
      }
      if (popped) wakeRoomWaiter()
      reportMetrics()
    }

    const signalDispatcher = () => {
      const signal = dispatcherSignal
      if (signal === undefined) return
      dispatcherSignal = undefined
      Deferred.unsafeDone(signal, Exit.void)
    }

    let pumpScheduled = false
    const scheduledPump = () => {
      pumpScheduled = false
      pump()
    }

    /**
     * After anything that may let the head move. A freed permit moves it at
     * once; new work moves it on the scheduler's next turn, as a woken
     * dispatcher would, so that callers arriving together are ordered by
     * priority before the head is taken (and a burst costs one pass).
     */
    const kick = (soon: "now" | "next turn", at?: number) => {
      if (limiter !== undefined) {
        signalDispatcher()
        reportMetrics()
      } else if (soon === "now") {
        pump(at)
      } else {
        if (!pumpScheduled) {
          pumpScheduled = true
          scheduler.scheduleTask(scheduledPump, 0)
        }
        reportMetrics()
      }
    }

    // ---- intake -------------------------------------------------------------

    const notAccepting = () => new ExecutorShutdownError({ executor: name, reason: "NotAccepting" })

    const hasRoom = () => roomWaiters.length === 0 && queued + promisedSlots < queueCapacity

    const addRoomWaiter = (bulk: boolean): RoomWaiter => {
      const waiter: RoomWaiter = { deferred: Deferred.unsafeMake(FiberId.none), bulk, active: true, woken: false }
      roomWaiters.push(waiter)
      return waiter
    }

    /** Waits for a promised slot; a waiter interrupted after being woken passes its slot on. */
    const awaitRoom = (waiter: RoomWaiter) =>
      Effect.onInterrupt(Deferred.await(waiter.deferred), () =>
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

    const enqueue = (request: Request): Effect.Effect<void, QueueFullError | ExecutorShutdownError> =>
      Effect.suspend((): Effect.Effect<void, QueueFullError | ExecutorShutdownError> => {
        if (!accepting) return Effect.fail(notAccepting())
        if (hasRoom()) {
          push(request, now())
          kick("next turn")
          return Effect.void
        }
        if (whenFull === "fail") return Effect.fail(new QueueFullError({ executor: name, queueCapacity }))
        return Effect.zipRight(
          Effect.suspend(() => awaitRoom(addRoomWaiter(false))),
          Effect.sync(() => {
            promisedSlots--
            push(request, now())
            kick("next turn")
          })
        )
      })

    const newRequest = (
      effect: Effect.Effect<unknown, unknown, any>,
      options: Executor.SubmitOptions | undefined,
      runtime: Runtime.Runtime<any>,
      onExit: (request: Request, exit: Exit.Exit<unknown, unknown>) => void,
      batch: BatchWorkers.Batch<Request, any> | undefined,
      index: number,
      at: number
    ) => {
      const key = options?.key ?? RateLimiterInternal.DEFAULT_KEY
      const settings = settingsFor(key)
      const deadlineMillis = options?.deadline === undefined ? settings.deadlineMillis : toMillis(options.deadline)
      const request = new Request(
        ++nextId,
        key,
        options?.priority ?? 0,
        options?.cost,
        options?.timeout === undefined ? settings.timeoutMillis : toMillis(options.timeout),
        deadlineMillis === undefined ? undefined : at + deadlineMillis,
        deadlineMillis === undefined ? settings : { ...settings, plain: false, retryOnly: false },
        effect,
        runtime,
        onExit,
        batch,
        index,
        at
      )
      if (options?.onTimeout !== undefined) request.onTimeout = options.onTimeout
      return request
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
      if (options.deadline !== undefined && !isPositiveDuration(options.deadline)) {
        return new InvalidOptions.InvalidOptionsError({
          component: `Executor "${name}" submit`,
          issues: `["deadline"] Expected a duration above zero, actual ${String(options.deadline)}`
        })
      }
      if (options.timeout !== undefined && !isPositiveDuration(options.timeout)) {
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
        if (resilient.has(request)) return cancelStarted(request)
        switch (request.status) {
          case "PENDING": {
            end()
            reportMetrics()
            return Effect.void
          }
          case "QUEUED": {
            queued--
            queue.compact(queued)
            end()
            wakeRoomWaiter()
            reportMetrics()
            return Effect.void
          }
          case "PROCESSING": {
            if (request.cancelSignal !== undefined) Deferred.unsafeDone(request.cancelSignal, Exit.void)
            if (admitting === request) admitting = undefined
            end()
            // The next request may take its place.
            kick("next turn")
            return refund(request)
          }
          case "CALLING": {
            if (request.worker !== undefined) return request.worker.stop()
            return request.fiber === undefined ? Effect.void : Effect.asVoid(Fiber.interrupt(request.fiber))
          }
          default:
            return Effect.void
        }
      })

    /**
     * A started resilient request ends through its fiber's exit. First it
     * leaves the queue or the admission it may be in again, so that nothing
     * starts it meanwhile (an admitted reservation is refunded by the exit).
     */
    const cancelStarted = (request: Request): Effect.Effect<void> => {
      if (request.status === "QUEUED") {
        queued--
        queue.compact(queued)
        wakeRoomWaiter()
      } else if (request.status === "PROCESSING" && admitting === request) {
        if (request.cancelSignal !== undefined) Deferred.unsafeDone(request.cancelSignal, Exit.void)
        admitting = undefined
        kick("next turn")
      }
      // Not live in the queue, not startable by the dispatcher; `finish` sets the real end.
      if (request.status === "QUEUED" || request.status === "PROCESSING") request.status = "CANCELLED"
      reportMetrics()
      return request.fiber === undefined ? Effect.void : Effect.asVoid(Fiber.interrupt(request.fiber))
    }

    /** Ends a dequeued request before it starts: refused by its breaker, its limits or its deadline. */
    const refuse = (request: Request, error: unknown) => {
      admitting = undefined
      request.error = error
      const resume = request.resume
      if (resume !== undefined) {
        // A retry admitted again: its fiber ends it.
        request.resume = undefined
        Deferred.unsafeDone(resume, Exit.fail(error))
        return
      }
      if (request.settings.retry !== undefined && error instanceof CircuitOpenError && !request.expired) {
        // Refused by an open breaker before its first attempt, having paid nothing: its retry policy decides
        // whether it waits for the breaker (as it would between attempts) or ends here.
        request.error = undefined
        resilient.add(request)
        request.fiber = Runtime.runFork(request.runtime)(
          resilientPath.program(request, { _tag: "RefusedAtFirst", refusal: error }),
          { immediate: false }
        )
        return
      }
      if (!request.settings.plain) {
        const at = now()
        logAttempt(request, { attempt: 1, startedAt: at, endedAt: at, outcome: "rejected", error })
      }
      settle(request, "FAILED", Exit.fail(error))
    }

    // ---- dispatch with a rate limiter ----------------------------------------

    /** Waits for `wait`, or answers `onCancel` sooner if the request is cancelled meanwhile. */
    const unlessCancelled = <A, E>(request: Request, wait: Effect.Effect<A, E>, onCancel: A) => {
      request.cancelSignal ??= Deferred.unsafeMake(FiberId.none)
      return Effect.raceFirst(wait, Effect.as(Deferred.await(request.cancelSignal), onCancel))
    }

    /**
     * The dispatcher's last admission while it goes straight on to the next request (forgotten as soon as
     * it waits for work or a permit). A request already queued when it was made has waited behind it, as a
     * caller in the limiter's own line would have: its charge may be dated back to it (`waitingSince`), so a
     * late timer or a busy process between two admissions does not cost a backlog its rate.
     */
    let lastAdmission: { readonly key: string; readonly at: number; readonly madeAt: number } | undefined

    const waitForSignal = Effect.suspend(() => {
      lastAdmission = undefined
      dispatcherSignal ??= Deferred.unsafeMake(FiberId.none)
      return Deferred.await(dispatcherSignal)
    })

    /** Starts the admitted request once a permit is free (a finish or its cancellation wakes the dispatcher). */
    const takePermitAndStart = (request: Request): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (request.status !== "PROCESSING") {
          if (admitting === request) admitting = undefined
          checkIdle()
          return refund(request)
        }
        if (inFlight >= concurrency) return Effect.zipRight(waitForSignal, takePermitAndStart(request))
        start(request, now())
        reportMetrics()
        return Effect.void
      })

    const STARTED = 0
    const ADMITTED = 1
    const CANCELLED = 2

    const admit = (limiter: RateLimiter.RateLimiterShape, request: Request): Effect.Effect<void> => {
      if (request.deadlineAt !== undefined && now() >= request.deadlineAt) {
        request.expired = true
        refuse(request, deadlineError(request))
        reportMetrics()
        return Effect.void
      }
      const previous = lastAdmission
      const waitingSince =
        previous !== undefined &&
        previous.key === request.key &&
        request.queuedAt !== undefined &&
        request.queuedAt <= previous.madeAt
          ? previous.at
          : undefined
      const acquiring = RateLimiterInternal.acquireWaiting(limiter, request.cost, { key: request.key, waitingSince })
      const acquire = Effect.map(acquiring, (reservation) => {
        request.reservation = reservation
        lastAdmission = { key: request.key, at: reservation.at, madeAt: now() }
        // A plain request with a permit free starts right here, where it was admitted: going back to the
        // dispatcher first (out of the race below) puts a scheduler turn between admission and start.
        if (request.settings.plain && request.status === "PROCESSING" && inFlight < concurrency) {
          start(request, now())
          reportMetrics()
          return STARTED
        }
        return ADMITTED
      })
      // An open breaker refuses before the limits are asked: a refused request costs no tokens.
      const breaker = request.settings.breaker
      const admission = breaker === undefined ? acquire : Effect.zipRight(breaker.check(request.key), acquire)
      return Effect.matchEffect(unlessCancelled(request, admission, CANCELLED), {
        onFailure: (error) => {
          refuse(request, error)
          reportMetrics()
          return Effect.void
        },
        onSuccess: (admitted) => (admitted === STARTED ? Effect.void : takePermitAndStart(request))
      })
    }

    const dispatchOne = (limiter: RateLimiter.RateLimiterShape): Effect.Effect<void> =>
      Effect.suspend(() => {
        const request = popHead(now())
        if (request === undefined) return waitForSignal
        wakeRoomWaiter()
        reportMetrics()
        return admit(limiter, request)
      })

    // A plain loop: `Effect.forever` would yield to the scheduler after every request.
    const dispatchLoop = (limiter: RateLimiter.RateLimiterShape): Effect.Effect<never> =>
      Effect.flatMap(dispatchOne(limiter), () => dispatchLoop(limiter))
    const dispatcher = limiter === undefined ? undefined : yield* Effect.forkScoped(dispatchLoop(limiter))

    // ---- shutdown -----------------------------------------------------------

    const abandonRest = (unfinishedAtStart: number): Effect.Effect<Executor.ShutdownReport> =>
      Effect.suspend(() => {
        const abandoned: Array<number> = []
        const victims: Array<Request> = queue.drain()
        if (admitting !== undefined) victims.push(admitting)
        for (const request of running) if (request !== undefined) victims.push(request)
        for (const request of resilient) victims.push(request)
        const unique = [...new Set(victims)]
        victims.length = 0
        victims.push(...unique)
        for (const request of victims) abandoned.push(request.id)
        return Effect.forEach(victims, (request) => cancel(request, "shutdown"), {
          concurrency: "unbounded",
          discard: true
        }).pipe(
          Effect.zipRight(dispatcher === undefined ? Effect.void : Fiber.interrupt(dispatcher)),
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
        const unfinished = new Set<Request>(resilient)
        if (admitting !== undefined) unfinished.add(admitting)
        for (const request of running) if (request !== undefined) unfinished.add(request)
        const unfinishedAtStart = unfinished.size + queued - [...unfinished].filter((r) => r.status === "QUEUED").length
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
      submitOptions?: Executor.SubmitOptions<E>
    ): Effect.Effect<A, E | Executor.ExecutorError, R> =>
      // The runtime is captured first: it carries the caller's flags, and the work must stay interruptible.
      // Then uninterruptible from the request's creation until its cancellation is in place.
      Effect.flatMap(Effect.runtime<R>(), (runtime) =>
        Effect.uninterruptibleMask((restore) => {
          const invalid = invalidSubmit(submitOptions)
          if (invalid !== undefined) return Effect.fail(invalid)
          if (!accepting) return Effect.fail(notAccepting())
          const answered = new Answer<A, E | Executor.ExecutorError>()
          const request = newRequest(
            effect,
            submitOptions,
            runtime,
            (_, exit) => answered.complete(exit as Exit.Exit<A, E>),
            undefined,
            0,
            now()
          )
          publish(request)
          const answer = answered.await
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
          if (startAtOnce(request)) return restore(bounded).pipe(Effect.onInterrupt(() => cancel(request, "caller")))
          // A refused request (queue full, or shutdown while waiting for room) ends FAILED.
          const enqueued = Effect.catchAll(enqueue(request), (error) =>
            Effect.sync(() => {
              request.error = error
              settle(request, "FAILED", Exit.fail(error))
              reportMetrics()
            })
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
          const batch = new BatchWorkers.Batch<Request, R>(runtime, concurrency, batchHooks)
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
            kick("next turn")
            if (pending === 0) Deferred.unsafeDone(done, Exit.void)
            return Deferred.await(done)
          }

          const fill = (useSlot: boolean): Effect.Effect<void> =>
            Effect.suspend(() => {
              let slotPromised = useSlot
              while (true) {
                if (!slotPromised && !hasRoom() && accepting) {
                  // Wait in line first, then let the head move: what it frees goes to the line.
                  const waiter = addRoomWaiter(true)
                  kick("next turn")
                  return Effect.matchEffect(awaitRoom(waiter), {
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
                const at = now()
                const request = newRequest(effect, taskOptions, runtime, onExit, batch, position, at)
                pending++
                outstanding[position] = request
                if (slotPromised) {
                  promisedSlots--
                  slotPromised = false
                }
                push(request, at)
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
            Effect.ensuring(Effect.sync(() => batch.close())),
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
      events: events.stream,
      subscribe: events.subscribe,
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
  options?: Executor.SubmitOptions<E>
): Effect.Effect<A, E | Executor.ExecutorError, R | I> =>
  Effect.flatMap(tag, (executor) => executor.submit(effect, options))
