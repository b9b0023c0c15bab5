/**
 * The rate-limited executor: per-key lanes in front of rate and token
 * admission, a concurrency limit, a circuit breaker, a per-attempt timeout,
 * a deadline and retries, with a `RequestEvent` for every status change.
 *
 * Order of work for each request:
 *   its key's lane (priority, FIFO within a priority) → [ breaker check →
 *   the whole cost on every limit at once (holding no permit) → a
 *   concurrency permit (priority order across lanes) → breaker admission →
 *   timeout → call → settle the attempt's reservations ] → outcome + events,
 * with retry around the bracket (`Retry`'s loop): every attempt is admitted
 * again through its lane and the limits, and holds no permit while it waits
 * out its delay. The Executor is the one owner of admission: a caller states
 * the whole `cost` and how to `settle` it after each attempt; nothing above it
 * reserves on a limiter.
 *
 * Lanes: each key waits in a lane of its own, so a key whose limits cannot
 * pay yet holds only its own requests; lanes of equal priority take permits
 * in turn (round robin). Concurrency is global, with an optional cap per key
 * (`keyConcurrency`); `setConcurrency` changes the global limit at run time
 * (lowered, running work finishes and nothing new starts until below it;
 * raised, waiting work starts at once), as adaptive concurrency needs.
 *
 * What Effect gave us: fibers and `Runtime` (a request runs in its caller's
 * runtime), `Semaphore` (the permits), `FiberSet` (the executor's own fibers),
 * `Deferred`, `PubSub`/`Stream` (events), `Metric`, spans, `Scope` (shutdown),
 * `Clock`, `Schedule` (through `Retry`), `Effect.timeoutFail`. What this
 * module adds: the lanes and their priority queues (Effect's `Queue` has no
 * priorities), a permit count served by priority across lanes and resizable
 * like `Semaphore.resize`, admission on several limits at once with installments and
 * settlement, cancellation that undoes whatever a request held at the moment
 * it was interrupted, a drain-then-abandon shutdown, and a batch path
 * (`submitAll`) in which a queued request is a small record, not a fiber.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Options as CircuitBreakerOptions, CircuitBreakerShape, CircuitOpenError } from "./CircuitBreaker.js"
import type { InvalidOptionsError } from "./InvalidOptions.js"
import * as internal from "./internal/executor.js"
import type { ExecutorError } from "./internal/executorError.js"
import type { Cost, LimitOptions, RateLimiterError, RateLimiterShape } from "./RateLimiter.js"
import type { RequestEvent, RequestId } from "./RequestEvent.js"
import type { Options as RetryOptions } from "./Retry.js"

export {
  /**
   * The Executor's own error, refined by `reason`: `QueueFull` (the queue was
   * full and `whenFull` is `"fail"`; retryable), `NotAccepting` (submitted after
   * shutdown began), `Abandoned` (still unfinished at the drain deadline),
   * `AttemptTimeout` (one attempt ran longer than its timeout; retryable),
   * `Deadline` (the request's whole time ran out; final).
   *
   * @since 0.1.0
   * @category errors
   */
  ExecutorError,
  /**
   * The Executor's own error, refined by `reason`: `QueueFull` (the queue was
   * full and `whenFull` is `"fail"`; retryable), `NotAccepting` (submitted after
   * shutdown began), `Abandoned` (still unfinished at the drain deadline),
   * `AttemptTimeout` (one attempt ran longer than its timeout; retryable),
   * `Deadline` (the request's whole time ran out; final).
   *
   * @since 0.1.0
   * @category errors
   */
  ExecutorErrorReason
} from "./internal/executorError.js"

/**
 * The executor's Effect `Metric`s, each tagged `executor=<name>`:
 * `sluice_executor_queue_depth`, `sluice_executor_in_flight` and
 * `sluice_executor_concurrency` (the limit in force) (gauges),
 * `sluice_executor_admission_wait_ms` and `sluice_executor_call_duration_ms`
 * (histograms), `sluice_executor_requests_total` (counter, tagged `status`).
 *
 * @since 0.1.0
 * @category metrics
 */
export * as metrics from "./internal/executorMetrics.js"

/**
 * Every error `submit` can add to a request's own errors: the Executor's, a
 * cost no limit can pay (`RateLimiterError`), an open breaker
 * (`CircuitOpenError`), bad submit options (`InvalidOptionsError`).
 *
 * @since 0.1.0
 * @category errors
 */
export type SubmitError = ExecutorError | RateLimiterError | CircuitOpenError | InvalidOptionsError

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the executor in metrics, spans, events and errors. */
  readonly name: string
  /** How many requests may run at once, over all keys. */
  readonly concurrency: number
  /** How many requests of one key may run at once. None by default (only `concurrency`). */
  readonly keyConcurrency?: number | undefined
  /** How many requests may wait in the queue. Default 10,000. */
  readonly queueCapacity?: number | undefined
  /** What `submit` does when the queue is full: wait for room (default), or fail with `QueueFullError`. */
  readonly whenFull?: "suspend" | "fail" | undefined
  /** Rate limits every request is admitted through (a RateLimiter over the store in context, or memory). */
  readonly limits?: Readonly<Record<string, LimitOptions>> | undefined
  /** Or an existing limiter to share (instead of `limits`). */
  readonly rateLimiter?: RateLimiterShape | undefined
  /** How long each attempt may run (`ExecutorError` `AttemptTimeout`, retryable); none by default. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * How long a request may take in all, from submission: queue, admission,
   * every attempt and every retry delay (`ExecutorError` `Deadline`, not
   * retryable). None by default.
   */
  readonly deadline?: Duration.DurationInput | undefined
  /** Retries failed attempts; each attempt is re-admitted through the limits. None by default (one attempt). */
  readonly retry?: RetryOptions | undefined
  /** A circuit breaker keyed by the request's key: options for one the executor builds, or a shared one. */
  readonly breaker?: BreakerSetting | undefined
  /** Per-key overrides of `retry`, `breaker`, `timeout` and `deadline`, field by field. */
  readonly keys?: Readonly<Record<string, KeySettings>> | undefined
  /** How long closing the scope waits for queued and running work before abandoning it. Default 30 s. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** Events kept per slow subscriber before the oldest are dropped. Default 1,024. */
  readonly eventBufferSize?: number | undefined
  /** Run each request in a span (`sluice.executor.request`). Default true. */
  readonly spans?: boolean | undefined
}

/**
 * A circuit breaker for an executor: the options of one it builds (named
 * after the executor unless named), or an existing breaker to share.
 *
 * @since 0.1.0
 * @category models
 */
export type BreakerSetting =
  | (Omit<CircuitBreakerOptions, "name"> & { readonly name?: string | undefined })
  | CircuitBreakerShape

/**
 * What one key overrides of the executor's resilience settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeySettings {
  readonly retry?: RetryOptions | undefined
  readonly breaker?: BreakerSetting | undefined
  readonly timeout?: Duration.DurationInput | undefined
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * How one attempt's reservations are settled once the attempt has ended:
 * `Reconcile` to what it really used (limits the actual does not name keep
 * what was reserved), `Refund` (nothing was sent: it all goes back), or `Keep`
 * (it was sent; what was reserved stays spent).
 *
 * @since 0.1.0
 * @category models
 */
export type Settlement =
  | { readonly _tag: "Reconcile"; readonly actual: Cost }
  | { readonly _tag: "Refund" }
  | { readonly _tag: "Keep" }

/**
 * @since 0.1.0
 * @category constructors
 */
export const Settlement = {
  reconcile: (actual: Cost): Settlement => ({ _tag: "Reconcile", actual }),
  refund: { _tag: "Refund" } as Settlement,
  keep: { _tag: "Keep" } as Settlement
} as const

/**
 * @since 0.1.0
 * @category models
 */
export interface SubmitOptions<E = unknown, A = unknown> {
  /**
   * The request's whole cost on every limit (see `RateLimiter.Cost`), reserved
   * at once for each attempt. Default 1 on every limit.
   */
  readonly cost?: Cost | undefined
  /**
   * How each attempt's reservation is settled once the attempt ended, from
   * its exit (for a model call: reconcile to the `usage` it reports; refund
   * when nothing was sent). Default: keep. An attempt that never began is
   * refunded whatever this says.
   */
  readonly settle?: ((exit: Exit.Exit<A, E>) => Settlement) | undefined
  /**
   * A cost above a limit's capacity is paid in installments of the capacity,
   * each waited for in turn (refunded whole if the request leaves before its
   * attempt begins), instead of failing with `CostExceedsCapacity`. Default false.
   */
  readonly installments?: boolean | undefined
  /** Higher runs first; FIFO within a priority. Default 0. */
  readonly priority?: number | undefined
  /** Overrides the per-attempt timeout for this request. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The error an attempt that runs past its timeout fails with, one of the
   * effect's own (as `Effect.timeoutFail`'s `onTimeout`). Default an
   * `ExecutorError` `AttemptTimeout`. A deadline's error stays the deadline's.
   */
  readonly onTimeout?: (() => E) | undefined
  /** Overrides the total deadline for this request (queue, admission, attempts and retry delays). */
  readonly deadline?: Duration.DurationInput | undefined
  /** Which lane, rate-limit key, breaker key and settings apply. Default `"default"`. */
  readonly key?: string | undefined
}

/**
 * One item of a batch: an effect, or an effect with its submit options.
 *
 * @since 0.1.0
 * @category models
 */
export type Task<A, E, R> = Effect.Effect<A, E, R> | (SubmitOptions<E, A> & { readonly effect: Effect.Effect<A, E, R> })

/**
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Waiting in the lanes. */
  readonly queued: number
  /** Out of their lanes' queues, being admitted or waiting for a permit (at most one per key). */
  readonly admitting: number
  /** Running now (holding a concurrency permit). */
  readonly inFlight: number
  /** Started, between attempts: waiting out a retry delay or re-admission. */
  readonly retrying: number
  /** How many requests may run at once: the limit in force (see `setConcurrency`). */
  readonly concurrency: number
  /** Concurrency permits not held (0 while more run than a lowered limit allows). */
  readonly availablePermits: number
  /** Callers (or batches) waiting for room in a full queue. */
  readonly waitingForRoom: number
  readonly completed: number
  /** Ended in failure: the effect failed or timed out, or the request was refused (queue full, shutting down). */
  readonly failed: number
  readonly cancelled: number
  /** Per key with work now: waiting in its lane, being admitted, and running. */
  readonly byKey: Readonly<Record<string, KeyStats>>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface KeyStats {
  readonly queued: number
  readonly admitting: number
  readonly inFlight: number
}

/**
 * What shutdown did: how many requests were still unfinished when it began,
 * and which of them it had to abandon at the deadline.
 *
 * @since 0.1.0
 * @category models
 */
export interface ShutdownReport {
  readonly executor: string
  readonly unfinishedAtStart: number
  readonly abandoned: ReadonlyArray<RequestId>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ExecutorShape {
  readonly name: string
  /** Runs `effect` through the queue, admission and concurrency limit; answers with its result. */
  readonly submit: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: SubmitOptions<E, A>
  ) => Effect.Effect<A, E | SubmitError, R>
  /**
   * The batch path: pulls tasks from the iterable only while the queue has
   * room (a queued task is a small record, not a fiber) and answers with every
   * task's `Exit`, in input order. Interrupting it cancels what is left. Each
   * task runs as a single submit's does, in the caller's runtime.
   */
  readonly submitAll: <A, E, R>(
    tasks: Iterable<Task<A, E, R>>
  ) => Effect.Effect<Array<Exit.Exit<A, E | SubmitError>>, never, R>
  /**
   * Changes how many requests may run at once, over all keys, from now on.
   * Lowered below what runs now, it interrupts nothing: running requests
   * finish, and none starts until fewer than the new limit run. Raised,
   * requests waiting for a permit start at once. Fails with an
   * `InvalidOptionsError` unless the limit is a whole number of at least 1.
   */
  readonly setConcurrency: (concurrency: number) => Effect.Effect<void, InvalidOptionsError>
  readonly stats: Effect.Effect<Stats>
  /** Every request's events, from subscription on. Slow subscribers lose the oldest. */
  readonly events: Stream.Stream<RequestEvent>
  /** Like `events`, as a queue that is subscribed once this effect returns. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<RequestEvent>, never, Scope.Scope>
  /**
   * Stops intake, waits up to `deadline` (default: the `shutdownTimeout`) for
   * queued and running work, then abandons the rest. Closing the executor's
   * scope does this too. Idempotent: a second call answers the first report.
   */
  readonly shutdown: (deadline?: Duration.DurationInput) => Effect.Effect<ShutdownReport>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Executor extends Context.Tag("@sluice/core/Executor")<Executor, ExecutorShape>() {}

/**
 * Builds an executor in the current scope; closing the scope shuts it down.
 * Bad options fail with an `InvalidOptionsError` that names the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<ExecutorShape, InvalidOptionsError, Scope.Scope> = internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Executor, InvalidOptionsError> =>
  Layer.scoped(Executor, make(options))

/**
 * Options as read from `Config` (a shared `rateLimiter` is not a config value).
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigOptions = Omit<Options, "rateLimiter">

/**
 * Reads the options through `Config` (e.g. the environment), then validates
 * them like {@link layer}:
 *
 * ```ts
 * Executor.layerConfig({
 *   name: Config.succeed("openai"),
 *   concurrency: Config.integer("SLUICE_CONCURRENCY").pipe(Config.withDefault(8)),
 *   queueCapacity: Config.integer("SLUICE_QUEUE_CAPACITY").pipe(Config.withDefault(10_000))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<ConfigOptions>
): Layer.Layer<Executor, ConfigError.ConfigError | InvalidOptionsError> =>
  Layer.scoped(Executor, Effect.flatMap(Config.unwrap(config), make))

/**
 * Runs `effect` on the executor in context.
 *
 * @since 0.1.0
 * @category combinators
 */
export const submit = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: SubmitOptions<E, A>
): Effect.Effect<A, E | SubmitError, R | Executor> => internal.submitWith(Executor, effect, options)
