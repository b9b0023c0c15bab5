/**
 * What the Executor does on its rate limiter, in one place: admit a
 * request's whole cost on every limit at once (in installments of a limit's
 * capacity where the request allows it), tell the limiter when the admitted
 * work begins, and settle each attempt's reservations afterwards (reconcile
 * to the real usage, refund, or keep).
 *
 * Effect gave us nothing here beyond `Effect`; the RateLimiter gives
 * all-or-nothing acquisition, refunds and reconciliation. This module adds
 * installments (a cost above a bucket's capacity, paid capacity by capacity,
 * each installment waited for in turn; everything paid goes back if the
 * request is interrupted before its attempt begins) and the spreading of one
 * actual usage over several installments.
 */
import * as Effect from "effect/Effect"
import type * as RateLimiter from "../RateLimiter.js"
import type { Settlement } from "./executorRequest.js"
import * as RateLimiterInternal from "./rateLimiter.js"
import type { RateLimiterError } from "./rateLimiterError.js"

/** The cost as one amount per limit, by name (unnamed limits pay 1, as `RateLimiter.Cost` says). */
const costRecord = (limiter: RateLimiter.RateLimiterShape, cost: RateLimiter.Cost | undefined) => {
  const record: Record<string, number> = {}
  for (const limit of limiter.limitNames) {
    record[limit] = typeof cost === "number" ? cost : (cost?.[limit] ?? 1)
  }
  return record
}

/**
 * Splits a cost into installments: the first pays every limit's share up to
 * its capacity, each later one pays at most a capacity of the limits still
 * owed (and nothing of the others).
 */
const installmentsOf = (
  costs: Record<string, number>,
  capacities: ReadonlyMap<string, number>
): Array<Record<string, number>> => {
  const left = { ...costs }
  const plan: Array<Record<string, number>> = []
  while (plan.length === 0 || Object.values(left).some((amount) => amount > 0)) {
    const piece: Record<string, number> = {}
    for (const limit in left) {
      const capacity = capacities.get(limit) ?? Number.POSITIVE_INFINITY
      piece[limit] = Math.min(left[limit]!, capacity)
      left[limit]! -= piece[limit]!
    }
    plan.push(piece)
  }
  return plan
}

export interface AdmitOptions {
  readonly key: string
  readonly installments: boolean
  /** See `RateLimiter`'s internal `acquireWaiting`: the charge may be dated back to this time. */
  readonly waitingSince?: number | undefined
}

/**
 * Admits `cost` on every limit at once. A cost above a limit's capacity fails
 * with `CostExceedsCapacity`, or with `installments` is paid in installments.
 * Interrupted, it leaves having paid nothing.
 */
export const admit = (
  limiter: RateLimiter.RateLimiterShape,
  cost: RateLimiter.Cost | undefined,
  options: AdmitOptions
): Effect.Effect<ReadonlyArray<RateLimiter.Reservation>, RateLimiterError> => {
  const once = Effect.map(
    RateLimiterInternal.acquireWaiting(limiter, cost, { key: options.key, waitingSince: options.waitingSince }),
    (reservation) => [reservation]
  )
  if (!options.installments) return once
  return Effect.catchIf(
    once,
    (error) => error.reason === "CostExceedsCapacity",
    () => payInInstallments(limiter, cost, options.key)
  )
}

/** Learns each limit's capacity from the limiter (its snapshot), then pays the plan piece by piece. */
const payInInstallments = (
  limiter: RateLimiter.RateLimiterShape,
  cost: RateLimiter.Cost | undefined,
  key: string
): Effect.Effect<ReadonlyArray<RateLimiter.Reservation>, RateLimiterError> =>
  Effect.flatMap(limiter.state({ key }), (buckets) => {
    const capacities = new Map(buckets.map((bucket) => [bucket.name, bucket.capacity]))
    const plan = installmentsOf(costRecord(limiter, cost), capacities)
    const paid: Array<RateLimiter.Reservation> = []
    return Effect.uninterruptibleMask((restore) =>
      Effect.forEach(plan, (piece) => Effect.map(restore(limiter.acquire(piece, { key })), (r) => paid.push(r)), {
        discard: true
      }).pipe(
        Effect.onExit((exit) => (exit._tag === "Success" ? Effect.void : refundAll(limiter, paid))),
        Effect.as(paid)
      )
    )
  })

/** Gives every reservation back whole (a request admitted but never sent). */
export const refundAll = (
  limiter: RateLimiter.RateLimiterShape,
  reservations: ReadonlyArray<RateLimiter.Reservation>
): Effect.Effect<void> =>
  Effect.forEach(reservations, (reservation) => Effect.ignore(limiter.refund(reservation)), { discard: true })

/**
 * Settles one attempt's reservations. `Reconcile` spreads the actual usage
 * over the installments in order (each takes up to what it paid, the last
 * takes the rest, above its share if more was used); `Refund` gives them all
 * back; `Keep` leaves them. A store failure costs the request nothing.
 */
export const settle = (
  limiter: RateLimiter.RateLimiterShape,
  reservations: ReadonlyArray<RateLimiter.Reservation>,
  settlement: Settlement
): Effect.Effect<void> => {
  switch (settlement._tag) {
    case "Keep":
      return Effect.void
    case "Refund":
      return refundAll(limiter, reservations)
    case "Reconcile": {
      // Limits the actual does not name keep what was reserved (as `RateLimiter.reconcile` reads it).
      const left: Record<string, number> = {}
      for (const limit of limiter.limitNames) {
        const actual = settlement.actual
        left[limit] =
          typeof actual === "number"
            ? actual
            : (actual[limit] ?? reservations.reduce((sum, reservation) => sum + (reservation.costs[limit] ?? 0), 0))
      }
      return Effect.forEach(
        reservations,
        (reservation, index) => {
          const last = index === reservations.length - 1
          const share: Record<string, number> = {}
          for (const limit in left) {
            const paid = reservation.costs[limit] ?? 0
            share[limit] = last ? left[limit]! : Math.min(left[limit]!, paid)
            left[limit]! -= share[limit]!
          }
          return Effect.ignore(limiter.reconcile(reservation, share))
        },
        { discard: true }
      )
    }
  }
}

/** The work the reservations admitted begins now (see `RateLimiter`'s internal `began`). */
export const began = (
  limiter: RateLimiter.RateLimiterShape,
  reservations: ReadonlyArray<RateLimiter.Reservation>
): Effect.Effect<void> =>
  reservations.length === 1
    ? RateLimiterInternal.began(limiter, reservations[0]!)
    : Effect.forEach(reservations, (reservation) => RateLimiterInternal.began(limiter, reservation), { discard: true })
