/**
 * The RateLimiter's machinery: option decoding, cost resolution, and the line
 * of waiters per key. Only the head of a line waits for the buckets (one
 * timer per key, however many callers wait); the others wait for their turn,
 * and the line (a Ring) hands it on in constant time. A caller that finds
 * anyone waiting on its key queues behind them, whatever it takes (one FIFO
 * line per key: a large cost is never starved by small ones).
 * Nothing is charged until the store finds every bucket able to pay, so an
 * interrupted waiter has nothing to give back. The line keeps what everyone in
 * it will take (`pendingCosts`), so `admissibleIn` and a delayed `tryAcquire`
 * are one `peek` of the store for the line's costs plus the caller's. Time is the Clock's nanosecond
 * reading in fractional milliseconds (`Gcra.clockMillis`).
 *
 * A charge is dated by the schedule, not by the moment a fiber got to it:
 * a head that slept dates it at the time the store said it was due; a waiter
 * promoted when the head before it was charged, at that charge (not after
 * one that left unpaid); a caller that says it waited behind an earlier
 * admission (`waitingSince`, the Executor's dispatcher, through
 * `acquireWaiting`), at that one. So late timers and busy hand-overs cost a
 * backlog no rate. The bucket arithmetic and the sliding log that bounds the
 * catch-up are in `gcra.ts`; bucket state lives in the RateLimiterStore.
 *
 * What only the Executor needs (`acquireWaiting`, `began`) is not on the
 * public `RateLimiterShape`: a limiter made here keeps it under a
 * module-private symbol, as a property that is not enumerable (a wrapper that
 * spreads a limiter's fields does not take it along, nor the `TypeId` on the
 * prototype). For any other limiter the two functions fall back to `acquire`
 * and to nothing.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import { hasProperty } from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as InvalidOptions from "../InvalidOptions.js"
import type * as RateLimiter from "../RateLimiter.js"
import {
  type BucketSpec,
  RateLimiterStore,
  type RateLimiterStoreError,
  type ReserveResult
} from "../RateLimiterStore.js"
import * as Gcra from "./gcra.js"
import { RateLimiterError } from "./rateLimiterError.js"
import { Ring } from "./ring.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("@sluice/core/RateLimiter")

/** @internal */
export const isRateLimiter = (u: unknown): u is RateLimiter.RateLimiterShape => hasProperty(u, TypeId)

/** What the Executor's two functions below ask of a limiter made by `make`. */
interface ExecutorCapabilities {
  readonly acquireWaiting: (
    cost: RateLimiter.Cost | undefined,
    key: string | undefined,
    waitingSince: number | undefined
  ) => Effect.Effect<RateLimiter.Reservation, RateLimiterError>
  /** A store failure is ignored: the sliding log then counts the admission from when it was charged. */
  readonly began: (reservation: RateLimiter.Reservation) => Effect.Effect<void>
}

/** Module-private: nothing outside this file can read a limiter's capabilities. */
const Capabilities: unique symbol = Symbol("@sluice/core/RateLimiter/ExecutorCapabilities")

const LimiterProto = { [TypeId]: TypeId }

const capabilitiesOf = (limiter: RateLimiter.RateLimiterShape): ExecutorCapabilities | undefined =>
  (limiter as { readonly [Capabilities]?: ExecutorCapabilities })[Capabilities]

/** @internal For the Executor: `acquire` whose charge may be dated back to `waitingSince` (documented on `acquireWaiting` in `make`). */
export const acquireWaiting = (
  limiter: RateLimiter.RateLimiterShape,
  cost: RateLimiter.Cost | undefined,
  options: { readonly key?: string | undefined; readonly waitingSince?: number | undefined }
): Effect.Effect<RateLimiter.Reservation, RateLimiterError> => {
  const capabilities = capabilitiesOf(limiter)
  return capabilities === undefined
    ? limiter.acquire(cost, { key: options.key })
    : capabilities.acquireWaiting(cost, options.key, options.waitingSince)
}

/** @internal For the Executor: the work `reservation` admitted begins now (documented on `began` in `make`). */
export const began = (
  limiter: RateLimiter.RateLimiterShape,
  reservation: RateLimiter.Reservation
): Effect.Effect<void> => {
  const capabilities = capabilitiesOf(limiter)
  return capabilities === undefined ? Effect.void : capabilities.began(reservation)
}

interface Waiter {
  readonly costs: ReadonlyArray<number>
  /** Completed when this waiter becomes the head of its line. */
  readonly turn: Deferred.Deferred<void>
  /** False once it was admitted or interrupted. */
  active: boolean
}

interface Line {
  head: Waiter | undefined
  readonly waiting: Ring<Waiter>
  /** Completed to make the head look again before its timer fires. */
  wake: Deferred.Deferred<void> | undefined
  /** What everyone in line (the head included) will take, per bucket. */
  readonly pendingCosts: Array<number>
  /** Waiters interrupted while still in `waiting`. */
  departed: number
  /** When the last head was charged: the next head has waited since before then. */
  lastChargedAt: number | undefined
}

type Restore = <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>

const LimitOptionsSchema = Schema.Struct({
  limit: InvalidOptions.PositiveNumber,
  interval: InvalidOptions.PositiveDuration,
  capacity: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveNumber)),
  windowMargin: Schema.optional(Schema.UndefinedOr(InvalidOptions.NonNegativeDuration))
})

const OptionsSchema = Schema.Struct({
  name: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyTrimmedString)),
  limits: Schema.Record({ key: Schema.NonEmptyTrimmedString, value: LimitOptionsSchema }).pipe(
    Schema.filter((limits) => Object.keys(limits).length > 0 || "Expected at least one limit")
  )
})

/** @internal */
export const decodeOptions = InvalidOptions.decode("RateLimiter", OptionsSchema)

let anonymousLimiters = 0

/** @internal */
export const DEFAULT_KEY = "default"

/** The sliding window's margin over the interval when a limit names none. */
export const DEFAULT_WINDOW_MARGIN = Duration.millis(5)

/** Turns decoded limit options into bucket specs, in configuration order. */
export const bucketSpecs = (limits: Readonly<Record<string, RateLimiter.LimitOptions>>): ReadonlyArray<BucketSpec> =>
  Object.entries(limits).map(([name, options]) => {
    const capacity = options.capacity ?? options.limit
    const interval = Duration.toMillis(Duration.decode(options.interval))
    const windowMargin = Duration.toMillis(Duration.decode(options.windowMargin ?? DEFAULT_WINDOW_MARGIN))
    return {
      name,
      capacity,
      emission: interval / options.limit,
      interval,
      windowMargin,
      windowLimit: capacity + options.limit - 1
    }
  })

export const make = (
  options: RateLimiter.Options
): Effect.Effect<RateLimiter.RateLimiterShape, InvalidOptions.InvalidOptionsError, RateLimiterStore> =>
  Effect.gen(function* () {
    const decoded = yield* decodeOptions(options)
    const store = yield* RateLimiterStore
    const clock = yield* Effect.clock
    const name = decoded.name ?? `limiter-${++anonymousLimiters}`
    const buckets = bucketSpecs(decoded.limits)
    const limitNames = buckets.map((bucket) => bucket.name)
    const indexOf = new Map(limitNames.map((limit, index) => [limit, index]))
    const now = () => Gcra.clockMillis(clock)
    const storeKey = (key: string) => `${name}:${key}`

    const fail = (
      reason: RateLimiterError["reason"],
      key: string,
      fields: { limit?: string; cost?: number; capacity?: number; detail?: string }
    ) => new RateLimiterError({ reason, limiter: name, key, ...fields })

    const unknownLimit = (key: string, limit: string) =>
      fail("UnknownLimit", key, { limit, detail: `limits ${limitNames.map((n) => `"${n}"`).join(", ")}` })

    const storeFailure = (key: string) => (error: RateLimiterStoreError) =>
      fail("StoreFailure", key, { detail: `${error.operation}: ${error.message}` })

    /** One cost per bucket, validated; or the error that names what is wrong. */
    const resolveCost = (cost: RateLimiter.Cost | undefined, key: string): Array<number> | RateLimiterError => {
      const costs: Array<number> = new Array(buckets.length).fill(1)
      if (typeof cost === "number") {
        costs.fill(cost)
      } else if (cost !== undefined) {
        for (const limit in cost) {
          const index = indexOf.get(limit)
          if (index === undefined) {
            return unknownLimit(key, limit)
          }
          costs[index] = cost[limit]!
        }
      }
      for (let i = 0; i < buckets.length; i++) {
        const bucket = buckets[i]!
        const value = costs[i]!
        if (!Number.isFinite(value) || value < 0) {
          return fail("InvalidCost", key, { limit: bucket.name, cost: value })
        }
        if (value > bucket.capacity) {
          return fail("CostExceedsCapacity", key, { limit: bucket.name, cost: value, capacity: bucket.capacity })
        }
      }
      return costs
    }

    const costRecord = (costs: ReadonlyArray<number>): Record<string, number> => {
      const record: Record<string, number> = {}
      for (let i = 0; i < buckets.length; i++) record[limitNames[i]!] = costs[i]!
      return record
    }

    /**
     * The store's reserve, asked now: built only where it runs at once (inside a step that is running,
     * as every caller here does), so it reads the time as it builds, without a suspension of its own.
     */
    const reserve = (mode: "ifDue" | "peek", key: string, costs: ReadonlyArray<number>, notBefore: number) => {
      const at = now()
      // `catchAll`, not `mapError`: an answer passes through with no step of its own.
      return Effect.catchAll(
        store.reserve({ key: storeKey(key), buckets, costs, now: at, notBefore: Math.min(notBefore, at), mode }),
        (error) => Effect.fail(storeFailure(key)(error))
      )
    }

    const reservation = (
      key: string,
      costs: ReadonlyArray<number>,
      result: ReserveResult,
      requestedAt: number
    ): RateLimiter.Reservation => ({
      key,
      costs: costRecord(costs),
      at: result.at,
      waited: Math.max(0, result.at - requestedAt),
      receipts: result.receipts ?? []
    })

    // ---- giving back and charging after the fact ----------------------------

    const refundAmounts = (reservation: RateLimiter.Reservation, amounts: ReadonlyArray<number>) =>
      Effect.suspend(() =>
        store.refund(storeKey(reservation.key), buckets, amounts, reservation.receipts, now()).pipe(
          Effect.mapError(storeFailure(reservation.key)),
          Effect.tap((given) => {
            if (given.some((amount) => amount > 0)) wakeHead(reservation.key)
          }),
          Effect.asVoid
        )
      )

    const refund = (reservation: RateLimiter.Reservation) =>
      refundAmounts(
        reservation,
        limitNames.map((limit) => reservation.costs[limit] ?? 0)
      )

    /**
     * Hands a fresh reservation to the caller; one interrupted at that very moment gives it back. Called
     * inside the acquire's uninterruptible region, whose `restore` is the one interruption point: the
     * handler runs uninterruptibly, as `Effect.onInterrupt` would run it, without a region of its own
     * (`catchAllCause`: the reservation passes through with no step of its own).
     */
    const deliver = (restore: Restore, reservation: RateLimiter.Reservation) =>
      Effect.catchAllCause(restore(Effect.succeed(reservation)), (cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.zipRight(Effect.ignore(refund(reservation)), Effect.failCause(cause))
          : Effect.failCause(cause)
      )

    // ---- the line of waiters, one per key ------------------------------------

    const lines = new Map<string, Line>()

    const addCosts = (line: Line, costs: ReadonlyArray<number>, sign: 1 | -1) => {
      for (let i = 0; i < costs.length; i++) line.pendingCosts[i]! += sign * costs[i]!
    }

    /** Takes a waiter out of its line; if it was the head, hands the turn on or closes the line. */
    const leave = (key: string, line: Line, waiter: Waiter) => {
      if (!waiter.active) return
      waiter.active = false
      addCosts(line, waiter.costs, -1)
      if (line.head !== waiter) {
        // Interrupted while waiting for its turn: drop it now if such leftovers pile up.
        if (++line.departed > 32 && line.departed * 2 > line.waiting.length) {
          line.waiting.filter((other) => other.active)
          line.departed = 0
        }
        return
      }
      for (let next = line.waiting.shift(); next !== undefined; next = line.waiting.shift()) {
        if (!next.active) {
          line.departed--
          continue
        }
        line.head = next
        Deferred.unsafeDone(next.turn, Exit.void)
        return
      }
      line.head = undefined
      if (lines.get(key) === line) lines.delete(key)
    }

    /** Tells the head of a key's line to look again (tokens came back). */
    const wakeHead = (key: string) => {
      const line = lines.get(key)
      if (line?.wake !== undefined) Deferred.unsafeDone(line.wake, Exit.void)
    }

    /**
     * The head's loop: sleep until due (or until woken by a refund), then try
     * to pay. Runs uninterruptibly but for its waits (`restore`), so a charge
     * is never lost between the store and the caller. `notBefore` is the
     * earliest time its charge may be dated. Having slept the whole wait, that
     * is the time the store said the charge would be dated (the schedule), not
     * the moment the timer fired, so late timers do not move the schedule; nor
     * does the sliding log when the admission it waits for was itself late.
     * Woken by a refund, it is now (what came back was not there before).
     */
    const payAsHead = (
      restore: Restore,
      key: string,
      line: Line,
      costs: ReadonlyArray<number>,
      requestedAt: number,
      notBefore: number
    ): Effect.Effect<RateLimiter.Reservation, RateLimiterError> =>
      Effect.flatMap(reserve("ifDue", key, costs, notBefore), (result) => {
        if (result.charged) {
          line.lastChargedAt = result.at
          return deliver(restore, reservation(key, costs, result, requestedAt))
        }
        const due = result.at
        const wake = Deferred.unsafeMake<void>(FiberId.none)
        line.wake = wake
        // The time left, to the nanosecond (Duration's resolution), rounded up: whole milliseconds
        // would make the head late by design. A real timer that fires early only means one more look.
        const sleep = Effect.as(Effect.sleep(Duration.nanos(Gcra.nanosUntil(due, now()))), true)
        return Effect.flatMap(restore(Effect.raceFirst(sleep, Effect.as(Deferred.await(wake), false))), (slept) =>
          payAsHead(restore, key, line, costs, requestedAt, slept ? (result.chargeAt ?? due) : now())
        )
      })

    const waitInLine = (
      restore: Restore,
      key: string,
      costs: ReadonlyArray<number>,
      requestedAt: number,
      waitingSince: number
    ) =>
      Effect.suspend(() => {
        const waiter: Waiter = { costs, turn: Deferred.unsafeMake(FiberId.none), active: true }
        let line = lines.get(key)
        let myTurn: Effect.Effect<void> = Effect.void
        const promoted = line !== undefined
        if (line === undefined) {
          line = {
            head: waiter,
            waiting: new Ring(),
            wake: undefined,
            pendingCosts: costs.map(() => 0),
            departed: 0,
            lastChargedAt: undefined
          }
          lines.set(key, line)
        } else {
          line.waiting.push(waiter)
          myTurn = restore(Deferred.await(waiter.turn))
        }
        addCosts(line, costs, 1)
        const joined = line
        // A waiter promoted to head has waited since before the last charge: its own charge may be
        // dated back that far (the schedule, not the moment its turn came), so a busy event loop
        // at the hand-over costs the backlog no rate. The sliding log still bounds real starts.
        const notBefore = () =>
          !promoted
            ? waitingSince
            : joined.lastChargedAt === undefined
              ? now()
              : Math.max(waitingSince, joined.lastChargedAt)
        return Effect.zipRight(
          myTurn,
          Effect.suspend(() => payAsHead(restore, key, joined, costs, requestedAt, notBefore()))
        ).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              // A head that leaves unpaid (interrupted) hands on no schedule: the next was held up by it, not by
              // the buckets, and dating it back would credit refill that a full bucket never had.
              if (Exit.isFailure(exit) && joined.head === waiter) joined.lastChargedAt = undefined
              leave(key, joined, waiter)
            })
          )
        )
      })

    /**
     * `acquire`, for a caller that queues its own requests and hands them over one at a time (the
     * Executor's dispatcher) with `since`: the `at` of the admission just before on the same key, when
     * this request was already waiting then and was asked for straight after it. Its charge may then be
     * dated back that far, as for a caller promoted in the limiter's own line, so a pause between two
     * admissions (a late timer, a busy process) does not cost the backlog its rate; the sliding log still
     * bounds the catch-up. Later than now, or absent, it is now.
     */
    const acquireWaiting = (
      cost: RateLimiter.Cost | undefined,
      keyOption: string | undefined,
      since: number | undefined
    ) =>
      Effect.uninterruptibleMask((restore) => {
        const key = keyOption ?? DEFAULT_KEY
        const costs = resolveCost(cost, key)
        if (costs instanceof RateLimiterError) return Effect.fail(costs)
        const requestedAt = now()
        // The earliest time the charge may be dated: now, or the admission this caller waited behind.
        const waitingSince = Math.min(since ?? requestedAt, requestedAt)
        // Anyone waiting on the key is ahead of this caller: it queues behind them.
        if (lines.has(key)) return waitInLine(restore, key, costs, requestedAt, waitingSince)
        return Effect.flatMap(reserve("ifDue", key, costs, waitingSince), (result) =>
          result.charged
            ? deliver(restore, reservation(key, costs, result, requestedAt))
            : waitInLine(restore, key, costs, requestedAt, waitingSince)
        )
      })

    /**
     * When `costs` could be paid on `key` after everyone already in its line (their costs counted as one
     * charge, head included), asked of the store at `requestedAt` without charging.
     */
    const peekBehindLine = (key: string, costs: ReadonlyArray<number>, requestedAt: number) => {
      const line = lines.get(key)
      const asked = line === undefined ? costs : costs.map((value, index) => value + line.pendingCosts[index]!)
      return store.reserve({
        key: storeKey(key),
        buckets,
        costs: asked,
        now: requestedAt,
        notBefore: requestedAt,
        mode: "peek"
      })
    }

    const admissibleIn = (cost?: RateLimiter.Cost, keyOptions?: RateLimiter.KeyOptions) =>
      Effect.suspend(() => {
        const key = keyOptions?.key ?? DEFAULT_KEY
        const costs = resolveCost(cost, key)
        if (costs instanceof RateLimiterError) return Effect.fail(costs)
        const requestedAt = now()
        return Effect.mapBoth(peekBehindLine(key, costs, requestedAt), {
          onFailure: storeFailure(key),
          // To the nanosecond (Duration's resolution), rounded up: a caller that sleeps this long is not early.
          onSuccess: (result) => Duration.nanos(Gcra.nanosUntil(result.at, requestedAt))
        })
      })

    const tryAcquire = (cost?: RateLimiter.Cost, keyOptions?: RateLimiter.KeyOptions) =>
      Effect.suspend(() => {
        const key = keyOptions?.key ?? DEFAULT_KEY
        const costs = resolveCost(cost, key)
        if (costs instanceof RateLimiterError) return Effect.fail(costs)
        const requestedAt = now()
        const line = lines.get(key)
        if (line === undefined) {
          return Effect.map(
            reserve("ifDue", key, costs, requestedAt),
            (result): RateLimiter.TryAcquireResult =>
              result.charged
                ? { _tag: "Admitted", reservation: reservation(key, costs, result, requestedAt) }
                : { _tag: "Delayed", retryAfter: Duration.millis(Gcra.millisUntil(result.at, requestedAt)) }
          )
        }
        // Someone is waiting: this caller would be served after everyone in line.
        return Effect.mapBoth(peekBehindLine(key, costs, requestedAt), {
          onFailure: storeFailure(key),
          onSuccess: (result): RateLimiter.TryAcquireResult => ({
            _tag: "Delayed",
            retryAfter: Duration.millis(Math.max(1, Gcra.millisUntil(result.at, requestedAt)))
          })
        })
      })

    /**
     * The difference per limit between what was used and what was reserved.
     * Limits the record does not name keep what was reserved; a value above
     * capacity is allowed (the server may report more than was estimated, and
     * the debt is paid off by later refill).
     */
    const reconcileDeltas = (reservation: RateLimiter.Reservation, actual: RateLimiter.Cost) => {
      const deltas: Array<number> = new Array(buckets.length).fill(0)
      const entries: Array<[string, number]> =
        typeof actual === "number" ? limitNames.map((limit) => [limit, actual]) : Object.entries(actual)
      for (const [limit, used] of entries) {
        const index = indexOf.get(limit)
        if (index === undefined) return unknownLimit(reservation.key, limit)
        if (!Number.isFinite(used) || used < 0) return fail("InvalidCost", reservation.key, { limit, cost: used })
        deltas[index] = used - (reservation.costs[limit] ?? 0)
      }
      return deltas
    }

    const reconcile = (reservation: RateLimiter.Reservation, actual: RateLimiter.Cost) =>
      Effect.suspend(() => {
        const deltas = reconcileDeltas(reservation, actual)
        if (deltas instanceof RateLimiterError) return Effect.fail(deltas)
        const extra = deltas.map((delta) => Math.max(0, delta))
        const unused = deltas.map((delta) => Math.max(0, -delta))
        const charge = extra.some((amount) => amount > 0)
          ? store
              .charge(storeKey(reservation.key), buckets, extra, now())
              .pipe(Effect.mapError(storeFailure(reservation.key)))
          : Effect.void
        const give = unused.some((amount) => amount > 0) ? refundAmounts(reservation, unused) : Effect.void
        return Effect.zipRight(charge, give)
      })

    /**
     * The work `reservation` admitted begins now. The limit's sliding window of real time then counts
     * this admission from now, so a pause between the admission and the call (a garbage collection, a
     * busy process) cannot crowd one more call into a window: the admissions a window later wait for it.
     * Without it the window counts admissions, and `windowMargin` is the only room for such a pause.
     * The Executor calls it as each attempt begins.
     */
    const began = (reservation: RateLimiter.Reservation) =>
      // Built as the work begins (the Executor builds it in the step that starts the attempt): the time is now.
      Effect.ignore(store.began(storeKey(reservation.key), buckets, reservation.receipts, now()))

    /** A duration from an untyped caller: decoded, or the error that says it is not one. */
    const durationMillis = (input: unknown, key: string, what: string): number | RateLimiterError => {
      const decoded = Duration.decodeUnknown(input)
      if (Option.isNone(decoded) || Duration.toMillis(decoded.value) < 0) {
        return fail("InvalidDuration", key, { detail: `${what} ${String(input)}` })
      }
      return Duration.toMillis(decoded.value)
    }

    const sync = (limit: string, info: RateLimiter.SyncInfo, keyOptions?: RateLimiter.KeyOptions) =>
      Effect.suspend(() => {
        const key = keyOptions?.key ?? DEFAULT_KEY
        const index = indexOf.get(limit)
        if (index === undefined) return Effect.fail(unknownLimit(key, limit))
        if (!Number.isFinite(info.remaining)) {
          return Effect.fail(fail("InvalidCost", key, { limit, cost: info.remaining }))
        }
        const resetAfter =
          info.resetAfter === undefined ? undefined : durationMillis(info.resetAfter, key, "resetAfter")
        if (resetAfter instanceof RateLimiterError) return Effect.fail(resetAfter)
        return store
          .sync(storeKey(key), buckets[index]!, info.remaining, resetAfter, now())
          .pipe(Effect.mapError(storeFailure(key)))
      })

    const penalize = (duration: Duration.DurationInput, keyOptions?: RateLimiter.KeyOptions) =>
      Effect.suspend(() => {
        const key = keyOptions?.key ?? DEFAULT_KEY
        const millis = durationMillis(duration, key, "penalty")
        if (millis instanceof RateLimiterError) return Effect.fail(millis)
        const at = now()
        return store.block(storeKey(key), buckets, at + millis, at).pipe(Effect.mapError(storeFailure(key)))
      })

    const state = (keyOptions?: RateLimiter.KeyOptions) =>
      Effect.suspend(() => {
        const key = keyOptions?.key ?? DEFAULT_KEY
        return store.inspect(storeKey(key), buckets, now()).pipe(Effect.mapError(storeFailure(key)))
      })

    const limiter: RateLimiter.RateLimiterShape = Object.assign(Object.create(LimiterProto), {
      name,
      limitNames,
      acquire: (cost?: RateLimiter.Cost, keyOptions?: RateLimiter.KeyOptions) =>
        acquireWaiting(cost, keyOptions?.key, undefined),
      tryAcquire,
      admissibleIn,
      refund,
      reconcile,
      sync,
      penalize,
      state
    } satisfies RateLimiter.RateLimiterShape)
    const capabilities: ExecutorCapabilities = { acquireWaiting, began }
    Object.defineProperty(limiter, Capabilities, { value: capabilities })
    return limiter
  })
