/**
 * The ProviderPool's machinery. Effect's `Pool.makeWithTTL` holds the
 * instances (each in a scope of its own), grows, shrinks and replaces them;
 * what is here wraps each instance in a `Handle` (its id, state, users and a
 * lock that a health check takes whole and a caller takes one permit of),
 * borrows through the Pool, runs the health-check loop, invalidates on a
 * failed check or a fatal use, and counts.
 *
 * One way to borrow: take an item from the Pool (in a child of the caller's
 * scope) → take one permit of its lock (a running check finishes first) → if
 * the check failed meanwhile, hand the item back (the Pool releases it, being
 * invalidated) and take another; else run the caller's effect.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Pool from "effect/Pool"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as InvalidOptions from "../InvalidOptions.js"
import type * as ProviderPool from "../ProviderPool.js"
import { makeMetrics } from "./providerPoolMetrics.js"

export const TypeId: typeof ProviderPool.TypeId = Symbol.for("@sluice/core/ProviderPool") as typeof ProviderPool.TypeId

export const isProviderPool = (u: unknown): u is ProviderPool.ProviderPool<unknown> => Predicate.hasProperty(u, TypeId)

/** Why the pool failed a `use`. */
export const ProviderPoolErrorReason = Schema.Literal("AcquireFailed", "Closed")
export type ProviderPoolErrorReason = typeof ProviderPoolErrorReason.Type

export class ProviderPoolError extends Schema.TaggedError<ProviderPoolError>(
  "@sluice/core/ProviderPool/ProviderPoolError"
)("ProviderPoolError", {
  pool: Schema.String,
  reason: ProviderPoolErrorReason,
  /** `AcquireFailed`: the acquisition's error. */
  cause: Schema.optional(Schema.Unknown)
}) {
  override get message(): string {
    if (this.reason === "Closed") return `Provider pool "${this.pool}" is closed: its scope has ended`
    const cause = this.cause
    const said =
      cause instanceof Error
        ? cause.message
        : Predicate.hasProperty(cause, "message") && typeof cause.message === "string"
          ? cause.message
          : String(cause)
    return `Provider pool "${this.pool}" could not start an instance: ${said}`
  }
  /** A failed start may succeed on the next try (the pool tries again for the next caller); a closed pool will not reopen. */
  get retryable(): boolean {
    return this.reason === "AcquireFailed"
  }
}

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  acquire: Schema.declare((u): u is object => Effect.isEffect(u), {
    message: () => "Expected an Effect that starts an instance"
  }),
  min: Schema.NonNegativeInt,
  max: InvalidOptions.PositiveInt,
  timeToLive: InvalidOptions.PositiveDuration,
  timeToLiveStrategy: Schema.optional(Schema.UndefinedOr(Schema.Literal("usage", "creation"))),
  concurrency: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  targetUtilization: Schema.optional(
    Schema.UndefinedOr(
      Schema.Number.pipe(
        Schema.greaterThan(0, { message: () => "Expected a number above 0" }),
        Schema.lessThanOrEqualTo(1, { message: () => "Expected a number no more than 1" })
      )
    )
  ),
  healthCheck: Schema.optional(Schema.UndefinedOr(Schema.declare((u): u is Function => typeof u === "function"))),
  healthCheckInterval: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  healthCheckTimeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  isFatal: Schema.optional(Schema.UndefinedOr(Schema.declare((u): u is Function => typeof u === "function")))
}).pipe(
  Schema.filter((options) =>
    options.max >= options.min
      ? undefined
      : { path: ["max"], message: `Expected at least min (${options.min}), actual ${options.max}` }
  )
)

const decodeOptions = InvalidOptions.decode("ProviderPool", OptionsSchema)

const DEFAULT_HEALTH_CHECK_INTERVAL = Duration.seconds(30)
const DEFAULT_HEALTH_CHECK_TIMEOUT = Duration.seconds(5)

/** One instance, as the pool's items: compared by identity, so `Pool.invalidate` finds exactly it. */
interface Handle<A> {
  readonly id: number
  readonly instance: A
  readonly startedAt: number
  /** `concurrency` permits: a caller takes one, a health check all of them. */
  readonly lock: Effect.Semaphore
  users: number
  checking: boolean
  /** Invalidated: no new caller may use it; released once none holds it. */
  failed: boolean
  lastCheckedAt: number | undefined
}

export const make = <A, E, R>(
  options: ProviderPool.Options<A, E, R>
): Effect.Effect<ProviderPool.ProviderPool<A>, InvalidOptions.InvalidOptionsError, Scope.Scope | R> =>
  Effect.gen(function* () {
    yield* decodeOptions(options)
    const name = options.name
    const concurrency = options.concurrency ?? 1
    const isFatal = options.isFatal ?? Cause.isDie
    const metrics = makeMetrics(name)

    const live = new Set<Handle<A>>()
    let nextId = 1
    let closed = false
    let inUse = 0
    let waiting = 0
    let starts = 0
    let stops = 0
    let acquireFailures = 0
    let restarts = 0
    /** Invalidations not yet made good by a start. */
    let owed = 0
    const invalidations: Record<ProviderPool.InvalidationReason, number> = { HealthCheck: 0, Fatal: 0, Manual: 0 }

    const gauges = Effect.sync(() => {
      metrics.instances.unsafeUpdate(live.size, [])
      metrics.inUse.unsafeUpdate(inUse, [])
      metrics.waiting.unsafeUpdate(waiting, [])
    })

    /**
     * One instance in the scope the Pool gave it. The first finalizer added runs last: the instance's own
     * finalizers (its release) run before it is counted as stopped; the lock is taken whole first, so a
     * health check still running on it ends before it is released.
     */
    const acquireHandle: Effect.Effect<Handle<A>, E, Scope.Scope | R> = Effect.gen(function* () {
      let handle: Handle<A> | undefined
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          if (handle === undefined || !live.delete(handle)) return Effect.void
          stops++
          metrics.stops.unsafeUpdate(1, [])
          return gauges
        })
      )
      const instance = yield* Effect.tapErrorCause(options.acquire, (cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.void
          : Effect.sync(() => {
              acquireFailures++
              metrics.acquireFailures.unsafeUpdate(1, [])
            })
      )
      const lock = yield* Effect.makeSemaphore(concurrency)
      const now = yield* Clock.currentTimeMillis
      const started: Handle<A> = {
        id: nextId++,
        instance,
        startedAt: now,
        lock,
        users: 0,
        checking: false,
        failed: false,
        lastCheckedAt: undefined
      }
      handle = started
      live.add(started)
      starts++
      metrics.starts.unsafeUpdate(1, [])
      if (owed > 0) {
        owed--
        restarts++
        metrics.restarts.unsafeUpdate(1, [])
      }
      yield* gauges
      yield* Effect.addFinalizer(() => lock.take(concurrency))
      return started
    })

    const pool = yield* Pool.makeWithTTL({
      acquire: acquireHandle,
      min: options.min,
      max: options.max,
      concurrency,
      ...(options.targetUtilization === undefined ? {} : { targetUtilization: options.targetUtilization }),
      timeToLive: options.timeToLive,
      timeToLiveStrategy: options.timeToLiveStrategy ?? "usage"
    })
    // Runs before the Pool's shutdown (finalizers run in reverse): a caller arriving from now on is told so.
    yield* Effect.addFinalizer(() => Effect.sync(() => (closed = true)))

    const closedError = new ProviderPoolError({ pool: name, reason: "Closed" })

    const invalidateHandle = (handle: Handle<A>, reason: ProviderPool.InvalidationReason): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (handle.failed || !live.has(handle)) return Effect.void
        handle.failed = true
        invalidations[reason]++
        owed++
        metrics.invalidations[reason].unsafeUpdate(1, [])
        return pool.invalidate(handle)
      })

    /** An item of the Pool, held in `scope`; the Pool interrupts a caller waiting when it shuts down: `Closed`. */
    const take = (scope: Scope.Scope): Effect.Effect<Handle<A>, ProviderPoolError> =>
      Pool.get(pool).pipe(
        Scope.extend(scope),
        Effect.catchAllCause((cause) =>
          closed && Cause.isInterruptedOnly(cause)
            ? Effect.fail(closedError)
            : Option.match(Cause.failureOption(cause), {
                onNone: () => Effect.failCause(cause as Cause.Cause<never>),
                onSome: (error) =>
                  Effect.fail(new ProviderPoolError({ pool: name, reason: "AcquireFailed", cause: error }))
              })
        )
      )

    /** A live instance, held in the current scope with one permit of its lock. */
    const borrow: Effect.Effect<Handle<A>, ProviderPoolError, Scope.Scope> = Effect.gen(function* () {
      const outer = yield* Effect.scope
      while (true) {
        const held = yield* Scope.fork(outer, ExecutionStrategy.sequential)
        const handle = yield* take(held)
        // Taken after the item, so released before it: the instance's release (which takes the whole lock) never waits for us.
        yield* Effect.uninterruptibleMask((restore) =>
          Effect.zipRight(restore(handle.lock.take(1)), Scope.addFinalizer(held, handle.lock.release(1)))
        )
        if (!handle.failed) {
          yield* Effect.acquireRelease(
            Effect.sync(() => {
              handle.users++
              inUse++
            }),
            () =>
              Effect.zipRight(
                Effect.sync(() => {
                  handle.users--
                  inUse--
                }),
                gauges
              )
          ).pipe(Scope.extend(held))
          return handle
        }
        // Its health check failed while we waited for it: hand it back (the Pool releases it) and take another.
        yield* Scope.close(held, Exit.void)
      }
    })

    const waitFor = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) =>
      Effect.acquireUseRelease(
        Effect.zipRight(
          Effect.sync(() => waiting++),
          gauges
        ),
        () => effect,
        () =>
          Effect.zipRight(
            Effect.sync(() => waiting--),
            gauges
          )
      )

    const use = <B, E2, R2>(
      f: (instance: A) => Effect.Effect<B, E2, R2>
    ): Effect.Effect<B, E2 | ProviderPoolError, R2> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(closedError)
        return Effect.scoped(
          Effect.flatMap(waitFor(borrow), (handle) =>
            Effect.flatMap(Effect.exit(f(handle.instance)), (exit) =>
              Exit.isFailure(exit) && isFatal(exit.cause)
                ? Effect.zipRight(invalidateHandle(handle, "Fatal"), exit)
                : exit
            )
          )
        )
      })

    const invalidate = (instance: A): Effect.Effect<void> =>
      Effect.suspend(() => {
        for (const handle of live) {
          if (handle.instance === instance) return invalidateHandle(handle, "Manual")
        }
        return Effect.void
      })

    // ---- health checks ----------------------------------------------------------

    if (options.healthCheck !== undefined) {
      const healthCheck = options.healthCheck
      const timeout = options.healthCheckTimeout ?? DEFAULT_HEALTH_CHECK_TIMEOUT
      /** Checks an instance no caller holds (a busy one is skipped this round); a failed one is invalidated. */
      const checkOne = (handle: Handle<A>) =>
        handle.lock
          .withPermitsIfAvailable(concurrency)(
            Effect.suspend(() => {
              if (handle.failed || !live.has(handle)) return Effect.succeed(true)
              handle.checking = true
              return healthCheck(handle.instance).pipe(
                Effect.timeoutFail({ duration: timeout, onTimeout: () => "timed out" }),
                Effect.exit,
                Effect.flatMap((exit) =>
                  Effect.map(Clock.currentTimeMillis, (now) => {
                    handle.lastCheckedAt = now
                    return Exit.isSuccess(exit)
                  })
                ),
                Effect.ensuring(Effect.sync(() => (handle.checking = false)))
              )
            })
          )
          .pipe(
            // Invalidated outside the lock: the Pool releases an idle item at once, and its release takes the lock.
            Effect.flatMap((healthy) =>
              Option.isSome(healthy) && !healthy.value ? invalidateHandle(handle, "HealthCheck") : Effect.void
            )
          )
      const checkAll = Effect.suspend(() =>
        Effect.forEach([...live], checkOne, { concurrency: "unbounded", discard: true })
      )
      const interval = options.healthCheckInterval ?? DEFAULT_HEALTH_CHECK_INTERVAL
      // The first round one interval after the start, then one interval after each round ends.
      yield* Effect.sleep(interval).pipe(
        Effect.zipRight(Effect.repeat(checkAll, Schedule.spaced(interval))),
        Effect.forkScoped
      )
    }

    const snapshot: Effect.Effect<ProviderPool.Snapshot> = Effect.sync(() => ({
      pool: name,
      min: options.min,
      max: options.max,
      size: live.size,
      inUse,
      waiting,
      starts,
      stops,
      acquireFailures,
      invalidations: { ...invalidations },
      restarts,
      instances: [...live].map((handle) => ({
        id: handle.id,
        startedAt: handle.startedAt,
        users: handle.users,
        state: handle.failed ? "failed" : handle.checking ? "checking" : "live",
        lastCheckedAt: handle.lastCheckedAt
      }))
    }))

    return { [TypeId]: TypeId, name, use, invalidate, snapshot } satisfies ProviderPool.ProviderPool<A>
  })
