/**
 * A pool of local provider instances (worker processes, SDK clients,
 * connections) between `min` and `max`, for a provider that is a resource of
 * its own rather than a remote endpoint: a Router provider whose Executor
 * runs each call as `pool.use((instance) => ...)`.
 *
 * What Effect gave us: `Pool.makeWithTTL` — the instances themselves, each
 * acquired in a `Scope` of its own and released by closing it; growth with
 * load (a caller waiting with every instance busy makes the pool acquire
 * another, up to `max`); shrinking by `timeToLive`; `Pool.invalidate` (an
 * invalidated instance is released as soon as no caller holds it, and the
 * pool acquires a replacement to stay at its target size); and release of
 * every instance when the pool's scope closes (after the callers holding one
 * return it). Also `Semaphore`, `Schedule` (the health-check loop), `Metric`
 * and `Clock`.
 *
 * What this module adds:
 *
 * - **Health checks**: every `healthCheckInterval`, each instance no caller
 *   holds is checked (under `healthCheckTimeout`), holding it exclusively
 *   meanwhile; one that fails (an error, a defect or the timeout) is
 *   invalidated and so replaced. A busy instance is skipped that round: a
 *   call is using it. A caller handed an instance that is being checked
 *   waits for the check, and takes another instance if it failed.
 * - **Instance-fatal failures**: a `use` whose failure `isFatal` (by default:
 *   a defect, i.e. `Effect.die`, an exception or a crash) invalidates the
 *   instance it used. The failure itself still goes to the caller: whether to
 *   try again (and where) is the Executor's and the Router's business. An
 *   interrupted `use` hands the instance back as it is.
 * - **Typed errors**: an acquisition that fails reaches the caller that was
 *   waiting for it as `ProviderPoolError` `AcquireFailed` (the next caller
 *   makes the pool try again); a `use` after the pool's scope closed, or
 *   still waiting when it closed, fails with `Closed` (never an interruption
 *   the caller did not ask for).
 * - **Observability**: `snapshot` (instances live, in use, waiting callers,
 *   starts, stops, invalidations by reason, restarts) and Metrics tagged `pool`.
 *
 * Time to live, as `Pool.makeWithTTL` does it (read in `effect/src/internal/pool.ts`):
 *
 * - `"usage"` (the default here, as in Effect): a loop wakes every
 *   `timeToLive` from the pool's creation and releases the instances above
 *   what is in use at that moment (never below `min`), oldest first. An
 *   instance above `min` is so stopped between 0 and `timeToLive` after the
 *   load falls, and the `min` instances live until they fail. Growth, by
 *   contrast, is immediate.
 * - `"creation"`: each instance is released `timeToLive` after it started,
 *   busy or not (once its caller returns it), and replaced while the pool is
 *   below its target: a maximum lifetime, for workers that degrade or leak
 *   with age; the pool shrinks to `min` as the old instances expire.
 *
 * A restart is counted when the pool starts an instance after an
 * invalidation not yet made good; with no load and the pool at or above
 * `min`, an invalidated instance is not replaced.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { InvalidOptionsError } from "./InvalidOptions.js"
import * as internal from "./internal/providerPool.js"

/**
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

export {
  /**
   * The pool's one error, refined by `reason`: `AcquireFailed` (starting an
   * instance failed; `cause` holds the acquisition's error) or `Closed` (the
   * pool's scope has closed).
   *
   * @since 0.1.0
   * @category errors
   */
  ProviderPoolError,
  /**
   * The pool's one error, refined by `reason`: `AcquireFailed` (starting an
   * instance failed; `cause` holds the acquisition's error) or `Closed` (the
   * pool's scope has closed).
   *
   * @since 0.1.0
   * @category errors
   */
  ProviderPoolErrorReason
} from "./internal/providerPool.js"

/**
 * The pool's Effect `Metric`s, tagged `pool`: `sluice_pool_instances`,
 * `sluice_pool_in_use`, `sluice_pool_waiting` (gauges),
 * `sluice_pool_starts_total`, `sluice_pool_stops_total`,
 * `sluice_pool_acquire_failures_total`, `sluice_pool_invalidations_total`
 * (also tagged `reason`) and `sluice_pool_restarts_total`.
 *
 * @since 0.1.0
 * @category metrics
 */
export * as metrics from "./internal/providerPoolMetrics.js"

/**
 * Why an instance was invalidated: its health check failed, a `use` of it
 * failed in a way `isFatal` calls fatal, or `invalidate` was called.
 *
 * @since 0.1.0
 * @category models
 */
export type InvalidationReason = "HealthCheck" | "Fatal" | "Manual"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<A, E, R> {
  /** Names the pool in errors, snapshots and metrics. */
  readonly name: string
  /**
   * Starts one instance. It runs in a `Scope` of the instance's own: what it
   * registers there (`Effect.acquireRelease`) stops the instance when the
   * pool releases it.
   */
  readonly acquire: Effect.Effect<A, E, R>
  /** Instances kept even when idle. A whole number, 0 or more. */
  readonly min: number
  /** Instances at most. A whole number, at least `min` and at least 1. */
  readonly max: number
  /** See the module's comment: how long an instance above `min` may stay idle, or live at all. */
  readonly timeToLive: Duration.DurationInput
  /** Default `"usage"`. */
  readonly timeToLiveStrategy?: "usage" | "creation" | undefined
  /** Callers one instance serves at once. Default 1. */
  readonly concurrency?: number | undefined
  /**
   * The share (0–1] of the instances' capacity in use above which the pool
   * grows. Default 1: it grows only when every instance is busy and a caller waits.
   */
  readonly targetUtilization?: number | undefined
  /** Checks an idle instance; a failure (or a defect, or the timeout) invalidates it. None by default. */
  readonly healthCheck?: ((instance: A) => Effect.Effect<unknown, unknown>) | undefined
  /** Between two rounds of checks. Default 30 s. */
  readonly healthCheckInterval?: Duration.DurationInput | undefined
  /** One check's longest run before it counts as failed. Default 5 s. */
  readonly healthCheckTimeout?: Duration.DurationInput | undefined
  /** Whether a failed `use` leaves its instance unfit (it is then invalidated). Default: the cause holds a defect. */
  readonly isFatal?: ((cause: Cause.Cause<unknown>) => boolean) | undefined
}

/**
 * One instance, now (`at` times: ms on the Clock).
 *
 * @since 0.1.0
 * @category models
 */
export interface InstanceSnapshot {
  /** 1 for the first instance the pool started, 2 for the next, … */
  readonly id: number
  readonly startedAt: number
  /** Callers holding it now. */
  readonly users: number
  /** `failed`: invalidated, released once no caller holds it. */
  readonly state: "live" | "checking" | "failed"
  readonly lastCheckedAt: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly pool: string
  readonly min: number
  readonly max: number
  /** Instances started and not yet released (failed ones included until they are). */
  readonly size: number
  /** Callers holding an instance. */
  readonly inUse: number
  /** Callers waiting for one. */
  readonly waiting: number
  /** Instances started so far. */
  readonly starts: number
  /** Instances released so far. */
  readonly stops: number
  /** Acquisitions that failed. */
  readonly acquireFailures: number
  readonly invalidations: Readonly<Record<InvalidationReason, number>>
  /** Instances started to make good an invalidation. */
  readonly restarts: number
  readonly instances: ReadonlyArray<InstanceSnapshot>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ProviderPool<A> {
  readonly [TypeId]: TypeId
  readonly name: string
  /**
   * Borrows an instance for `f`, waiting for one (the pool grows while
   * below `max`); the instance goes back when `f` ends, however it ends.
   */
  readonly use: <B, E2, R2>(
    f: (instance: A) => Effect.Effect<B, E2, R2>
  ) => Effect.Effect<B, E2 | internal.ProviderPoolError, R2>
  /** Marks an instance unfit: it is released once no caller holds it, and replaced. */
  readonly invalidate: (instance: A) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isProviderPool: (u: unknown) => u is ProviderPool<unknown> = internal.isProviderPool

/**
 * Builds a pool in the current scope: `min` instances are started at once,
 * in the background; closing the scope stops the health checks, fails
 * waiting callers with `Closed`, waits for the callers holding an instance,
 * and releases every instance. Bad options fail with an
 * `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <A, E, R>(
  options: Options<A, E, R>
) => Effect.Effect<ProviderPool<A>, InvalidOptionsError, Scope.Scope | R> = internal.make
