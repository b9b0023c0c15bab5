/**
 * The arithmetic of one token bucket, kept as a GCRA ("generic cell rate
 * algorithm") state: a single number, `tat`, the time at which the bucket would
 * be full again if nothing more were taken. Pure functions over plain numbers
 * (milliseconds), shared by every RateLimiterStore so that the memory store and
 * a Redis Lua script compute exactly the same answers.
 *
 * With `emission` = milliseconds per unit of cost (interval / limit) and
 * `capacity` = the burst size:
 *
 *   level(now)     = capacity - max(0, tat - now) / emission
 *   readyAt(cost)  = max(blockedUntil, tat - (capacity - cost) * emission)
 *   take(cost, at) : tat := max(tat, at) + cost * emission      (at >= readyAt)
 *
 * A refund gives back only what of a charge has not refilled yet. By the time
 * the bucket has refilled past a charge, the refill was handed out (or lost
 * at the capacity), and giving the charge back then would count it twice. So
 * a charge leaves a receipt: the `tat` it reached (`paidUntil`) and the
 * bucket's running total of credits. What is still unrefilled is at least
 * `paidUntil - (credits since) - now`; a refund never gives back more.
 *
 * Refill is computed from elapsed time; nothing ticks. A take is charged at a
 * time `at` no later than now. A caller that slept until its due time charges
 * at that due time even if its timer fired late, so late timers never lose
 * refill and a backlog is paced at exactly the configured rate.
 */

/** The static description of one bucket. */
export interface BucketSpec {
  readonly name: string
  readonly capacity: number
  /** Milliseconds of refill per unit of cost. */
  readonly emission: number
}

/** The mutable state of one bucket. A fresh (full) bucket has `tat = -Infinity`. */
export interface BucketState {
  tat: number
  blockedUntil: number
  /** Milliseconds of `tat` given back by refunds, in total. */
  credited: number
  /** Tells this bucket from an earlier one under the same name that was evicted. */
  readonly generation: number
}

/** What a refund needs to know about one charge. */
export interface Receipt {
  readonly paidUntil: number
  readonly credited: number
  readonly generation: number
}

/** Float slack, so that `0.1 * 3` style rounding never costs a millisecond. */
const EPSILON = 1e-7

let generations = 0

export const fresh = (): BucketState => ({
  tat: Number.NEGATIVE_INFINITY,
  blockedUntil: 0,
  credited: 0,
  generation: ++generations
})

/** Units available at `now` (may be negative after an over-charge). */
export const level = (spec: BucketSpec, state: BucketState, now: number): number =>
  spec.capacity - Math.max(0, state.tat - now) / spec.emission

/** The earliest time at which this bucket holds `cost` (may be in the past). */
export const readyAt = (spec: BucketSpec, state: BucketState, cost: number): number =>
  Math.max(state.blockedUntil, state.tat - (spec.capacity - cost) * spec.emission)

/** Float slack when comparing a due time with now. */
export const isDue = (at: number, now: number): boolean => at - now < EPSILON

/** Whole milliseconds to wait until `at`, never one more because of float error. */
export const millisUntil = (at: number, now: number): number => Math.max(0, Math.ceil(at - now - EPSILON))

/** Charges `cost` at time `at` (at or after `readyAt`, at or before now) and answers its receipt. */
export const take = (spec: BucketSpec, state: BucketState, cost: number, at: number): Receipt => {
  state.tat = Math.max(state.tat, at) + cost * spec.emission
  return { paidUntil: state.tat, credited: state.credited, generation: state.generation }
}

/** Charges `amount` more, now (a reconcile above the estimate). */
export const charge = (spec: BucketSpec, state: BucketState, amount: number, now: number): void => {
  state.tat = Math.max(state.tat, now) + amount * spec.emission
}

/**
 * Gives back up to `amount` of the charge behind `receipt`: only the part that
 * has not refilled yet. Answers how much went back.
 */
export const refund = (spec: BucketSpec, state: BucketState, amount: number, receipt: Receipt, now: number): number => {
  if (receipt.generation !== state.generation) return 0
  const frontier = receipt.paidUntil - (state.credited - receipt.credited)
  const unrefilled = Math.max(0, frontier - now) / spec.emission
  const given = Math.min(amount, unrefilled)
  if (given <= 0) return 0
  state.tat -= given * spec.emission
  state.credited += given * spec.emission
  return given
}

/**
 * Lowers the local view to what the server says is left: afterwards
 * `level(now) <= remaining`. An exhausted server (`remaining <= 0`) with a
 * reset time blocks the bucket until then.
 */
export const sync = (
  spec: BucketSpec,
  state: BucketState,
  remaining: number,
  resetAfter: number | undefined,
  now: number
): void => {
  const tatForRemaining = now + (spec.capacity - Math.max(0, remaining)) * spec.emission
  state.tat = Math.max(state.tat, tatForRemaining)
  if (remaining <= 0 && resetAfter !== undefined) {
    state.blockedUntil = Math.max(state.blockedUntil, now + resetAfter)
  }
}

/** Blocks the bucket entirely until `until`. */
export const block = (state: BucketState, until: number): void => {
  state.blockedUntil = Math.max(state.blockedUntil, until)
}

/** A bucket that is full and unblocked is indistinguishable from a fresh one. */
export const isIdle = (state: BucketState, now: number): boolean => state.tat <= now && state.blockedUntil <= now
