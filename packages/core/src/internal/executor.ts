/**
 * The Executor's assembly: options, the request's life from submission to
 * its end, cancellation, shutdown and stats. The parts, one file each:
 *
 * - intake (`executorIntake.ts`): queue slots and backpressure;
 * - lanes and dispatch (`executorLanes.ts`): a lane per key, admission
 *   holding no permit, permits in priority order across lanes;
 * - admission (`executorAdmission.ts`): the whole cost on every limit at
 *   once, installments, settlement;
 * - attempt (`executorAttempt.ts`): the request's fiber, its attempts under
 *   `Retry`'s loop, breaker and timeout;
 * - the request record and its events (`executorRequest.ts`), metrics
 *   (`executorMetrics.ts`), per-key settings (`executorResilience.ts`).
 *
 * One way to run a request: submitted (PENDING), it waits in its key's lane
 * (QUEUED) as a small record; its lane admits it (PROCESSING); with a permit
 * it starts on a fiber of its own, forked in its caller's runtime (so the
 * caller's services, Clock and span parent apply), which runs its attempts
 * (CALLING; one its timer cut off hands the rest to a next fiber) and ends
 * it (COMPLETED, FAILED, CANCELLED).
 *
 * Every way a request can leave undoes what it held at that moment: a queue
 * slot (freed), an admission in progress (interrupted: the limiter's acquire
 * pays nothing), reservations not yet spent (refunded), a permit and a probe
 * slot (given back as its fiber exits). Its deadline is one timer per request
 * that has one, which ends it wherever it waits; an attempt running at the
 * deadline is cut by its own timeout (the executor's timer, `executorTimer.ts`),
 * which is never later than the deadline.
 */
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Executor from "../Executor.js"
import * as InvalidOptions from "../InvalidOptions.js"
import * as RateLimiterStore from "../RateLimiterStore.js"
import type { RequestEvent } from "../RequestEvent.js"
import * as EventHub from "./eventHub.js"
import * as Admission from "./executorAdmission.js"
import * as Attempt from "./executorAttempt.js"
import { ExecutorError } from "./executorError.js"
import * as Intake from "./executorIntake.js"
import * as Lanes from "./executorLanes.js"
import { makeMetrics } from "./executorMetrics.js"
import { Answer, abandonedError, deadlineError, Request, type Ticket, Unfinished } from "./executorRequest.js"
import { makeResolver } from "./executorResilience.js"
import * as ExecutorTimer from "./executorTimer.js"
import * as RateLimiterInternal from "./rateLimiter.js"

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  concurrency: InvalidOptions.PositiveInt,
  keyConcurrency: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
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
/** A metric update with no tags beyond the metric's own (Effect's hook cache finds it without a lookup). */
const NO_TAGS: ReadonlyArray<never> = []
const AT_ONCE: Runtime.RunForkOptions = { immediate: true }
const LATER: Runtime.RunForkOptions = { immediate: false }

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
    const settingsFor = yield* makeResolver(name, options)
    const shutdownTimeout = decoded.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT
    const spans = decoded.spans ?? true
    const limiter = options.rateLimiter ?? (yield* makeLimiter(name, options.limits))
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const metrics = makeMetrics(name)
    metrics.concurrency.unsafeUpdate(concurrency, [])
    const events = yield* EventHub.make<RequestEvent>(decoded.eventBufferSize ?? DEFAULT_EVENT_BUFFER)
    /** The executor's own fibers (lanes, starter, deadline timers), interrupted with its scope. */
    const fork = yield* FiberSet.makeRuntime<never, void, never>()
    const intake = Intake.make(name, queueCapacity, decoded.whenFull ?? "suspend")
    const timer = yield* ExecutorTimer.make

    /** Every request submitted and not yet ended. */
    const unfinished = new Unfinished()
    let completed = 0
    let failed = 0
    let cancelled = 0
    let retrying = 0
    let nextId = 0
    let accepting = true
    let idle: Deferred.Deferred<void> | undefined
    let report: Deferred.Deferred<Executor.ShutdownReport> | undefined

    const publish = (request: Request) => {
      if (events.observed()) events.offer(request.snapshot(name))
    }

    /** The gauges, brought up to date as a request is queued and as it ends (they are samples). */
    const reportGauges = () => {
      metrics.queueDepth.unsafeUpdate(lanes.queued(), NO_TAGS)
      metrics.inFlight.unsafeUpdate(lanes.inFlight(), NO_TAGS)
    }

    const checkIdle = () => {
      if (idle !== undefined && unfinished.size === 0 && !intake.busy()) Deferred.unsafeDone(idle, Exit.void)
    }

    /** A new request leaves its lane's queue for the first time (or is cancelled there): its slot is free. */
    const freeSlot = (request: Request) => {
      if (!request.holdsSlot) return
      request.holdsSlot = false
      intake.release()
    }

    /** Ends a request with its final exit (once). */
    const end = (request: Request, status: "COMPLETED" | "FAILED" | "CANCELLED", exit: Exit.Exit<unknown, unknown>) => {
      if (!request.isLive) return
      freeSlot(request)
      request.status = status
      request.endedAt = now()
      if (status === "COMPLETED") completed++
      else if (status === "FAILED") failed++
      else cancelled++
      metrics.outcome(status, 1)
      if (request.deadlineWatch !== undefined) {
        timer.unwatch(request.deadlineWatch)
        request.deadlineWatch = undefined
      }
      request.span?.end(clock.unsafeCurrentTimeNanos(), exit)
      unfinished.remove(request)
      publish(request)
      reportGauges()
      request.onExit(request, exit)
      checkIdle()
    }

    /** A started request's fiber ended: its final exit, read in the light of why it may have been stopped. */
    const finish = (request: Request, exit: Exit.Exit<unknown, unknown>) => {
      if (request.abandoned) {
        request.error = abandonedError(name, request)
        end(request, "CANCELLED", Exit.fail(request.error))
      } else if (request.expired) {
        request.error = deadlineError(name, request)
        end(request, "FAILED", Exit.fail(request.error))
      } else if (Exit.isSuccess(exit)) {
        end(request, "COMPLETED", exit)
      } else if (Cause.isInterruptedOnly(exit.cause)) {
        request.error = "interrupted"
        end(request, "CANCELLED", exit)
      } else {
        request.error = Option.getOrElse(Cause.failureOption(exit.cause), () => Cause.squash(exit.cause))
        end(request, "FAILED", exit)
      }
    }

    const attempts = Attempt.make({
      executor: name,
      now,
      spans,
      limiter,
      metrics,
      timer,
      publish,
      releasePermit: (request) => lanes.releasePermit(request),
      requeue: (request) => lanes.push(request),
      retrying: (delta) => {
        retrying += delta
      }
    })

    /**
     * The lanes hand a request its ticket: the first starts its fiber, a later
     * one resumes it. On its lane's turn the fiber runs at once, up to its
     * first suspension, so that the work starts when the limiter admitted it;
     * inside another request's step (a permit given back) it starts on the
     * scheduler's next turn. Its fiber's observer ends it, giving back
     * whatever it still holds (all of it, should the fiber be stopped before
     * it ran at all).
     */
    const deliver = (request: Request, ticket: Ticket, onTurn: boolean) => {
      const resume = request.resume
      if (resume !== undefined) {
        request.resume = undefined
        Deferred.unsafeDone(resume, Exit.succeed(ticket))
        return
      }
      run(request, attempts.program(request, ticket), onTurn ? AT_ONCE : LATER)
    }

    /**
     * Runs one of a started request's fibers: its first, or the next after an
     * attempt its timer cut off (the retry loop goes on there). The fiber's
     * observer ends the request, giving back whatever it still holds.
     */
    const run = (
      request: Request,
      program: Effect.Effect<unknown, unknown, any>,
      scheduler: Runtime.RunForkOptions
    ) => {
      const fiber = Runtime.runFork(request.runtime, program, scheduler)
      request.fiber = fiber
      fiber.addObserver((exit) => {
        if (!request.isLive) return
        lanes.releasePermit(request)
        const read = attempts.ended(request, exit)
        const held = request.reservations
        request.reservations = undefined
        if (held !== undefined && held.length > 0 && limiter !== undefined) fork(Admission.refundAll(limiter, held))
        const next = request.abandoned || request.expired || request.cancelled ? undefined : attempts.successor(request)
        if (next !== undefined) run(request, next, LATER)
        else finish(request, request.cancelled ? exit : read)
      })
    }

    const lanes = Lanes.make({
      now,
      limiter,
      concurrency,
      keyConcurrency: decoded.keyConcurrency,
      fork: (effect) => fork(effect),
      publish,
      dequeued: freeSlot,
      deliver
    })

    // ---- leaving early ------------------------------------------------------

    /**
     * Ends a request that has not finished: its caller was interrupted, the
     * executor abandons it, or its deadline ran out. A started request ends
     * through its fiber (interrupted here); one not started yet leaves its
     * lane and gives back what it held there.
     */
    const cancel = (request: Request, cause: "caller" | "shutdown" | "deadline"): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (!request.isLive) return Effect.void
        if (cause === "shutdown") request.abandoned = true
        if (cause === "deadline") request.expired = true
        if (cause === "caller") request.cancelled = true
        if (request.status === "QUEUED" || request.status === "PROCESSING") freeSlot(request)
        const held = lanes.remove(request)
        const refund = held.length === 0 || limiter === undefined ? Effect.void : Admission.refundAll(limiter, held)
        const fiber = request.fiber
        if (fiber !== undefined) return Effect.zipRight(refund, Effect.asVoid(Fiber.interrupt(fiber)))
        if (cause === "caller") {
          request.error = "interrupted"
          end(request, "CANCELLED", Exit.interrupt(FiberId.none))
        } else finish(request, Exit.interrupt(FiberId.none))
        return refund
      })

    /**
     * The deadline, on the executor's timer: ends the request wherever it
     * waits (a running attempt's own time limit, capped at the deadline, cuts
     * it). Only a deadline that runs out takes a fiber, for the cancellation.
     */
    const watchDeadline = (request: Request) => {
      if (request.deadlineAt === undefined) return
      request.deadlineWatch = timer.after(Math.max(0, request.deadlineAt - now()), () => {
        request.deadlineWatch = undefined
        if (request.status !== "CALLING" && request.isLive) fork(cancel(request, "deadline"))
      })
    }

    // ---- shutdown -----------------------------------------------------------

    const abandonRest = (unfinishedAtStart: number): Effect.Effect<Executor.ShutdownReport> =>
      Effect.suspend(() => {
        const victims = unfinished.toArray()
        const abandoned = victims.map((request) => request.id).sort((a, b) => a - b)
        return Effect.forEach(victims, (request) => cancel(request, "shutdown"), {
          concurrency: "unbounded",
          discard: true
        }).pipe(
          Effect.as({ executor: name, unfinishedAtStart, abandoned }),
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
        intake.close()
        const unfinishedAtStart = unfinished.size
        idle = Deferred.unsafeMake(FiberId.none)
        checkIdle()
        const wait = deadline === undefined ? shutdownTimeout : Duration.decode(deadline)
        // The drain wait is interruptible even inside a finalizer, so that the race can stop its loser;
        // abandoning is not.
        return Effect.interruptible(Effect.raceFirst(Deferred.await(idle), Effect.sleep(wait))).pipe(
          Effect.zipRight(abandonRest(unfinishedAtStart)),
          Effect.tap((result) => Deferred.succeed(done, result))
        )
      })

    // Added after the fiber set: runs before it is closed, so the drain has its lanes.
    yield* Effect.addFinalizer(() => shutdown())

    // ---- intake -------------------------------------------------------------

    const invalidSubmit = (
      options: Executor.SubmitOptions | undefined
    ): InvalidOptions.InvalidOptionsError | undefined => {
      if (options === undefined) return undefined
      const issue = (path: string, expected: string, actual: unknown) =>
        new InvalidOptions.InvalidOptionsError({
          component: `Executor "${name}" submit`,
          issues: `["${path}"] Expected ${expected}, actual ${String(actual)}`
        })
      if (options.priority !== undefined && !Number.isFinite(options.priority)) {
        return issue("priority", "a finite number", options.priority)
      }
      if (options.deadline !== undefined && !isPositiveDuration(options.deadline)) {
        return issue("deadline", "a duration above zero", options.deadline)
      }
      if (options.timeout !== undefined && !isPositiveDuration(options.timeout)) {
        return issue("timeout", "a duration above zero", options.timeout)
      }
      return undefined
    }

    const newRequest = (
      effect: Effect.Effect<unknown, unknown, any>,
      options: Executor.SubmitOptions<any, any> | undefined,
      runtime: Runtime.Runtime<any>,
      onExit: (request: Request, exit: Exit.Exit<unknown, unknown>) => void,
      index: number
    ) => {
      const at = now()
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
        settings,
        effect,
        runtime,
        onExit,
        options?.settle,
        options?.installments ?? false,
        options?.onTimeout,
        settings.resilient || deadlineMillis !== undefined,
        index,
        at
      )
      unfinished.add(request)
      publish(request)
      return request
    }

    /** Queues a new request that has its slot. */
    const admitNew = (request: Request) => {
      request.holdsSlot = true
      watchDeadline(request)
      lanes.push(request)
      reportGauges()
    }

    const notAccepting = () => new ExecutorError({ executor: name, reason: "NotAccepting" })

    /**
     * With room in the queue (the usual case), a submit is one suspension:
     * the request is queued as its caller suspends, its end resumes the
     * caller, and the caller interrupted meanwhile cancels it. Without room,
     * it first waits for a slot (or fails, per `whenFull`).
     */
    const submit = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      submitOptions?: Executor.SubmitOptions<E, A>
    ): Effect.Effect<A, E | Executor.SubmitError, R> =>
      Effect.flatMap(Effect.runtime<R>(), (runtime) => {
        const invalid = invalidSubmit(submitOptions as Executor.SubmitOptions | undefined)
        if (invalid !== undefined) return Effect.fail(invalid)
        if (!accepting) return Effect.fail(notAccepting())
        if (!intake.hasRoom()) return submitWhenFull(effect, submitOptions, runtime)
        // One parameter only: a register that takes the abort signal costs an AbortController per call.
        return Effect.async<A, E | Executor.SubmitError>((resume) => {
          const request = newRequest(effect, submitOptions, runtime, (_, exit) => resume(exit as Exit.Exit<A, E>), 0)
          intake.take()
          admitNew(request)
          return cancel(request, "caller")
        })
      })

    /** A submit that finds the queue full: its request waits for a slot (`"suspend"`) or fails (`"fail"`). */
    const submitWhenFull = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      submitOptions: Executor.SubmitOptions<E, A> | undefined,
      runtime: Runtime.Runtime<R>
    ): Effect.Effect<A, E | Executor.SubmitError, R> =>
      Effect.uninterruptibleMask((restore) => {
        const answer = new Answer<A, E | Executor.SubmitError>()
        const request = newRequest(
          effect,
          submitOptions,
          runtime,
          (_, exit) => answer.complete(exit as Exit.Exit<A, E>),
          0
        )
        const queued = Effect.matchEffect(intake.reserve(), {
          onFailure: (error) =>
            Effect.sync(() => {
              request.error = error
              end(request, "FAILED", Exit.fail(error))
            }),
          onSuccess: () =>
            Effect.sync(() => {
              intake.take()
              admitNew(request)
            })
        })
        return restore(Effect.zipRight(queued, answer.await)).pipe(Effect.onInterrupt(() => cancel(request, "caller")))
      })

    const submitAll = <A, E, R>(
      tasks: Iterable<Executor.Task<A, E, R>>
    ): Effect.Effect<Array<Exit.Exit<A, E | Executor.SubmitError>>, never, R> =>
      Effect.flatMap(Effect.runtime<R>(), (runtime) =>
        Effect.suspend(() => {
          const iterator = tasks[Symbol.iterator]()
          const results: Array<Exit.Exit<A, E | Executor.SubmitError>> = []
          /** Its requests not yet ended (they are found among the executor's unfinished ones by `onExit`). */
          let outstanding = 0
          const done = Deferred.unsafeMake<void>(FiberId.none)
          let exhausted = false
          let index = 0

          const onExit = (request: Request, exit: Exit.Exit<unknown, unknown>) => {
            results[request.index] = exit as Exit.Exit<A, E>
            outstanding--
            if (exhausted && outstanding === 0) Deferred.unsafeDone(done, Exit.void)
          }

          /** Pulls tasks while the queue has room; waits in the intake's line (in bulk) when it has none. */
          const fill = (slotPromised: boolean): Effect.Effect<void> =>
            Effect.suspend(() => {
              let promised = slotPromised
              while (true) {
                if (!promised && !intake.hasRoomForBatch() && accepting) {
                  return Effect.matchEffect(intake.waitForRoom(true), {
                    onFailure: () => fill(false),
                    onSuccess: () => fill(true)
                  })
                }
                const next = iterator.next()
                if (next.done === true) {
                  if (promised) intake.unpromise()
                  exhausted = true
                  if (outstanding === 0) Deferred.unsafeDone(done, Exit.void)
                  checkIdle()
                  return Deferred.await(done)
                }
                const position = index++
                const task = next.value
                const isBare = Effect.isEffect(task)
                const taskOptions = isBare ? undefined : task
                const invalid = invalidSubmit(taskOptions as Executor.SubmitOptions | undefined)
                if (!accepting || invalid !== undefined) {
                  results[position] = Exit.fail(invalid ?? notAccepting())
                  continue
                }
                const request = newRequest(isBare ? task : task.effect, taskOptions, runtime, onExit, position)
                outstanding++
                if (promised) {
                  intake.takePromised()
                  promised = false
                } else intake.take()
                admitNew(request)
              }
            })

          return fill(false).pipe(
            Effect.onInterrupt(() =>
              Effect.forEach(
                unfinished.toArray().filter((request) => request.onExit === onExit),
                (request) => cancel(request, "caller"),
                { concurrency: "unbounded", discard: true }
              )
            ),
            Effect.as(results)
          )
        })
      )

    const stats = Effect.sync((): Executor.Stats => {
      const counts = lanes.counts()
      return {
        queued: counts.queued,
        admitting: counts.admitting,
        inFlight: counts.inFlight,
        retrying,
        concurrency: counts.concurrency,
        availablePermits: Math.max(0, counts.concurrency - counts.inFlight),
        waitingForRoom: intake.waitingForRoom(),
        completed,
        failed,
        cancelled,
        byKey: lanes.byKey()
      }
    })

    const setConcurrency = (limit: number): Effect.Effect<void, InvalidOptions.InvalidOptionsError> =>
      Effect.suspend(() => {
        if (!Number.isSafeInteger(limit) || limit < 1) {
          return Effect.fail(
            new InvalidOptions.InvalidOptionsError({
              component: `Executor "${name}" setConcurrency`,
              issues: `Expected a whole number of at least 1, actual ${String(limit)}`
            })
          )
        }
        lanes.setConcurrency(limit)
        metrics.concurrency.unsafeUpdate(limit, [])
        return Effect.void
      })

    return {
      name,
      submit,
      submitAll,
      setConcurrency,
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
  options?: Executor.SubmitOptions<E, A>
): Effect.Effect<A, E | Executor.SubmitError, R | I> =>
  Effect.flatMap(tag, (executor) => executor.submit(effect, options))
