/**
 * The RateLimiter's machinery: option decoding, cost resolution, and the wait
 * between a reservation and its due time (refunded if the waiter is interrupted).
 * The bucket arithmetic is in `gcra.ts`; state lives in the RateLimiterStore.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as InvalidOptions from "../InvalidOptions.js"
import type * as RateLimiter from "../RateLimiter.js"
import { type BucketSpec, RateLimiterStore, type RateLimiterStoreError } from "../RateLimiterStore.js"
import { RateLimiterError } from "./rateLimiterError.js"

const LimitOptionsSchema = Schema.Struct({
  limit: InvalidOptions.PositiveNumber,
  interval: InvalidOptions.PositiveDuration,
  capacity: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveNumber))
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

/** Turns decoded limit options into bucket specs, in configuration order. */
export const bucketSpecs = (limits: Readonly<Record<string, RateLimiter.LimitOptions>>): ReadonlyArray<BucketSpec> =>
  Object.entries(limits).map(([name, options]) => ({
    name,
    capacity: options.capacity ?? options.limit,
    emission: Duration.toMillis(Duration.decode(options.interval)) / options.limit
  }))

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
    const now = () => clock.unsafeCurrentTimeMillis()
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

    const reserveWith = (mode: "schedule" | "ifNow", cost: RateLimiter.Cost | undefined, key: string) => {
      const costs = resolveCost(cost, key)
      if (costs instanceof RateLimiterError) return Effect.fail(costs)
      const requestedAt = now()
      return store.reserve({ key: storeKey(key), buckets, costs, now: requestedAt, mode }).pipe(
        Effect.mapError(storeFailure(key)),
        Effect.map((result) => ({ result, costs, requestedAt }))
      )
    }

    const reserve = (cost?: RateLimiter.Cost, keyOptions?: RateLimiter.KeyOptions) => {
      const key = keyOptions?.key ?? DEFAULT_KEY
      return Effect.map(
        reserveWith("schedule", cost, key),
        ({ result, costs, requestedAt }): RateLimiter.Reservation => ({
          key,
          costs: costRecord(costs),
          at: result.at,
          waited: result.at - requestedAt
        })
      )
    }

    const adjustBy = (reservation: RateLimiter.Reservation, deltas: ReadonlyArray<number>) =>
      store
        .adjust(storeKey(reservation.key), buckets, deltas, now())
        .pipe(Effect.mapError(storeFailure(reservation.key)))

    const cancel = (reservation: RateLimiter.Reservation) =>
      adjustBy(
        reservation,
        limitNames.map((limit) => -(reservation.costs[limit] ?? 0))
      )

    const waitUntilDue = (reservation: RateLimiter.Reservation) => {
      const delay = reservation.at - now()
      return delay <= 0 ? Effect.void : Effect.sleep(Duration.millis(Math.ceil(delay)))
    }

    const acquire = (cost?: RateLimiter.Cost, keyOptions?: RateLimiter.KeyOptions) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(reserve(cost, keyOptions), (reservation) =>
          reservation.waited <= 0
            ? Effect.succeed(reservation)
            : restore(waitUntilDue(reservation)).pipe(
                Effect.onInterrupt(() => Effect.ignore(cancel(reservation))),
                Effect.as(reservation)
              )
        )
      )

    const tryAcquire = (cost?: RateLimiter.Cost, keyOptions?: RateLimiter.KeyOptions) => {
      const key = keyOptions?.key ?? DEFAULT_KEY
      return Effect.map(
        reserveWith("ifNow", cost, key),
        ({ result, costs, requestedAt }): RateLimiter.TryAcquireResult =>
          result.charged
            ? { _tag: "Admitted", reservation: { key, costs: costRecord(costs), at: result.at, waited: 0 } }
            : { _tag: "Delayed", retryAfter: Duration.millis(Math.ceil(result.at - requestedAt)) }
      )
    }

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

    const reconcile = (reservation: RateLimiter.Reservation, actual: RateLimiter.Cost) => {
      const deltas = reconcileDeltas(reservation, actual)
      return deltas instanceof RateLimiterError ? Effect.fail(deltas) : adjustBy(reservation, deltas)
    }

    const sync = (limit: string, info: RateLimiter.SyncInfo, keyOptions?: RateLimiter.KeyOptions) => {
      const key = keyOptions?.key ?? DEFAULT_KEY
      const index = indexOf.get(limit)
      if (index === undefined) {
        return Effect.fail(unknownLimit(key, limit))
      }
      if (!Number.isFinite(info.remaining)) {
        return Effect.fail(fail("InvalidCost", key, { limit, cost: info.remaining }))
      }
      const resetAfter = info.resetAfter === undefined ? undefined : Duration.toMillis(Duration.decode(info.resetAfter))
      return store
        .sync(storeKey(key), buckets[index]!, info.remaining, resetAfter, now())
        .pipe(Effect.mapError(storeFailure(key)))
    }

    const penalize = (duration: Duration.DurationInput, keyOptions?: RateLimiter.KeyOptions) => {
      const key = keyOptions?.key ?? DEFAULT_KEY
      return store
        .block(storeKey(key), buckets, now() + Duration.toMillis(Duration.decode(duration)))
        .pipe(Effect.mapError(storeFailure(key)))
    }

    const state = (keyOptions?: RateLimiter.KeyOptions) => {
      const key = keyOptions?.key ?? DEFAULT_KEY
      return store.inspect(storeKey(key), buckets, now()).pipe(Effect.mapError(storeFailure(key)))
    }

    return {
      name,
      limitNames,
      acquire,
      reserve,
      tryAcquire,
      cancel,
      reconcile,
      sync,
      penalize,
      state
    } satisfies RateLimiter.RateLimiterShape
  })
