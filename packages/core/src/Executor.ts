/**
 * The rate-limited executor: a bounded priority queue in front of rate and
 * token admission, a concurrency limit, a circuit breaker, a per-attempt
 * timeout and retries, with a `RequestEvent` for every status change.
 *
 * Order of work for each request:
 *   priority queue → [ breaker check → rate + token admission (holding no
 *   permit) → concurrency permit → breaker admission → timeout → call ]
 *   → outcome + events,
 * with retry around the bracket: every attempt is re-admitted through the
 * limits (a retry goes back into the priority queue), so a retry pays for its
 * tokens like any call, and holds no permit while it waits out its delay.
 * The reasons for the order:
 * - admission before the permit, so a permit is never held by a request that
 *   is only waiting for tokens;
 * - the breaker is checked before admission (a request it refuses costs no
 *   rate or tokens) and admits after the permit (a probe slot is never held
 *   by a call still waiting for a permit; refused there, the tokens go back);
 * - the timeout inside the breaker, so a timed-out attempt counts against the
 *   dependency, and inside retry, so it is per attempt; the `deadline` bounds
 *   the whole (queue, attempts and delays) and is never retried.
 *
 * What Effect gave us: fibers and `Runtime` (a request runs in its caller's
 * runtime), `Deferred` (a caller's answer), `PubSub`/`Stream` (events),
 * `Metric`, spans, `Scope` (shutdown), `Clock`, `Schedule` (retry delays).
 * What this module adds: the priority queue itself (Effect's `Queue` has no
 * priorities); permits counted in the executor's own synchronous bookkeeping
 * (a freed permit starts the next request at once, with no fiber hop; a
 * dispatcher fiber admits one request at a time in priority order when there
 * is a rate limiter); cancellation that undoes whatever a request held at the
 * moment it was interrupted; a drain-then-abandon shutdown; a batch path
 * (`submitAll`) in which a queued request is a small record, not a waiting
 * fiber, and (without a rate limiter) started requests run on at most
 * `concurrency` worker fibers of the batch, not a fiber each; and per-key
 * resilience settings (`retry`, `breaker`, `timeout`, `deadline`, overridden
 * per key by `keys`), whose requests run in a fiber of their own; with spans
 * off, a request whose only setting is `retry` (no breaker, no deadline, no
 * retry budget) runs its first attempt like a request without settings, and
 * moves to a fiber of its own only if that attempt fails (its events and
 * attempt log are the same either way).
 *
 * Dispatch is single-file: while the head request waits for its tokens,
 * requests behind it wait too, whatever their key (a per-key lane is not
 * implemented; give independent providers their own Executor, as the Router does).
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
import type { ExecutorShutdownError, QueueFullError, RequestTimeoutError } from "./internal/executorError.js"
import type { Cost, LimitOptions, RateLimiterError, RateLimiterShape } from "./RateLimiter.js"
import type { RequestEvent, RequestId } from "./RequestEvent.js"
import type { Options as RetryOptions } from "./Retry.js"

/**
 * `QueueFullError`: the queue was full and `whenFull` is `"fail"`.
 * `ExecutorShutdownError`: submitted after shutdown began (`NotAccepting`), or
 * still unfinished at the drain deadline (`Abandoned`).
 * `RequestTimeoutError`: the request ran longer than its timeout.
 * Also `RateLimiterError` (a cost no limit can pay) and `InvalidOptionsError`
 * (a bad `priority` or `timeout` in the submit options).
 *
 * @since 0.1.0
 * @category errors
 */
export { ExecutorShutdownError, QueueFullError, RequestTimeoutError } from "./internal/executorError.js"

/**
 * The executor's Effect `Metric`s, each tagged `executor=<name>`:
 * `sluice_executor_queue_depth` and `sluice_executor_in_flight` (gauges),
 * `sluice_executor_admission_wait_ms` and `sluice_executor_call_duration_ms`
 * (histograms), `sluice_executor_requests_total` (counter, tagged `status`).
 *
 * @since 0.1.0
 * @category metrics
 */
export * as metrics from "./internal/executorMetrics.js"

/**
 * Every error the Executor itself can add to a request's own errors.
 *
 * @since 0.1.0
 * @category errors
 */
export type ExecutorError =
  | QueueFullError
  | ExecutorShutdownError
  | RequestTimeoutError
  | RateLimiterError
  | CircuitOpenError
  | InvalidOptionsError

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the executor in metrics, spans, events and errors. */
  readonly name: string
  /** How many requests may run at once. */
  readonly concurrency: number
  /** How many requests may wait in the queue. Default 10,000. */
  readonly queueCapacity?: number | undefined
  /** What `submit` does when the queue is full: wait for room (default), or fail with `QueueFullError`. */
  readonly whenFull?: "suspend" | "fail" | undefined
  /** Rate limits every request is admitted through (a RateLimiter over the store in context, or memory). */
  readonly limits?: Readonly<Record<string, LimitOptions>> | undefined
  /** Or an existing limiter to share (instead of `limits`). */
  readonly rateLimiter?: RateLimiterShape | undefined
  /** How long each attempt may run (`RequestTimeoutError`, retryable); none by default. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * How long a request may take in all, from submission: queue, admission,
   * every attempt and every retry delay (`RequestTimeoutError` of kind
   * `"Deadline"`, not retryable). None by default.
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
 * @since 0.1.0
 * @category models
 */
export interface SubmitOptions<E = unknown> {
  /** What the request costs on the rate limits; see `RateLimiter.Cost`. Default 1 on every limit. */
  readonly cost?: Cost | undefined
  /** Higher runs first; FIFO within a priority. Default 0. */
  readonly priority?: number | undefined
  /** Overrides the per-attempt timeout for this request. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The error an attempt that runs past its timeout fails with, one of the
   * effect's own (as `Effect.timeoutFail`'s `onTimeout`). Default a
   * `RequestTimeoutError`. A deadline's error stays the deadline's.
   */
  readonly onTimeout?: (() => E) | undefined
  /** Overrides the total deadline for this request (enforced while it waits in the queue only for `submit`). */
  readonly deadline?: Duration.DurationInput | undefined
  /** Which rate-limit key to charge. Default `"default"`. */
  readonly key?: string | undefined
}

/**
 * One item of a batch: an effect, or an effect with its submit options.
 *
 * @since 0.1.0
 * @category models
 */
export type Task<A, E, R> = Effect.Effect<A, E, R> | (SubmitOptions<E> & { readonly effect: Effect.Effect<A, E, R> })

/**
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Waiting in the priority queue. */
  readonly queued: number
  /** Dequeued and waiting for admission or a permit (0 or 1: dispatch is single-file). */
  readonly admitting: number
  /** Running now (holding a concurrency permit). */
  readonly inFlight: number
  /** Started, between attempts: waiting out a retry delay or re-admission. */
  readonly retrying: number
  /** Concurrency permits not held. */
  readonly availablePermits: number
  /** Callers (or batches) waiting for room in a full queue. */
  readonly waitingForRoom: number
  readonly completed: number
  /** Ended in failure: the effect failed or timed out, or the request was refused (queue full, shutting down). */
  readonly failed: number
  readonly cancelled: number
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
    options?: SubmitOptions<E>
  ) => Effect.Effect<A, E | ExecutorError, R>
  /**
   * The batch path: pulls tasks from the iterable only while the queue has
   * room (a queued task is a small record, not a fiber) and answers with every
   * task's `Exit`, in input order. Interrupting it cancels what is left.
   *
   * Started tasks run in the caller's runtime. Without a rate limiter they run
   * on the batch's own worker fibers (at most `concurrency`), one task after
   * another per worker: each task starts from the caller's FiberRefs, and
   * fibers a task forks and leaves running are interrupted when it ends, as if
   * it had a fiber of its own. Only fiber identity tells them apart: tasks run
   * by one worker share its `FiberId` (and a `Supervisor` sees the worker, not
   * each task). With a rate limiter each task gets a fiber of its own, started
   * the moment it is admitted.
   */
  readonly submitAll: <A, E, R>(
    tasks: Iterable<Task<A, E, R>>
  ) => Effect.Effect<Array<Exit.Exit<A, E | ExecutorError>>, never, R>
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
  options?: SubmitOptions<E>
): Effect.Effect<A, E | ExecutorError, R | Executor> => internal.submitWith(Executor, effect, options)
