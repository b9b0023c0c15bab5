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
}

/** Float slack, so that `0.1 * 3` style rounding never costs a millisecond. */
const EPSILON = 1e-7

export const fresh = (): BucketState => ({ tat: Number.NEGATIVE_INFINITY, blockedUntil: 0 })

/** Units available at `now` (may be negative after an over-charge). */
export const level = (spec: BucketSpec, state: BucketState, now: number): number =>
  spec.capacity - Math.max(0, state.tat - now) / spec.emission

/** The earliest time at which this bucket holds `cost` (may be in the past). */
export const readyAt = (spec: BucketSpec, state: BucketState, cost: number): number =>
  Math.max(state.blockedUntil, state.tat - (spec.capacity - cost) * spec.emission)

/** Float slack when comparing a due time with now. */
export const isDue = (at: number, now: number): boolean => at - now < EPSILON

/** Charges `cost` at time `at` (at or after `readyAt`, at or before now). */
export const take = (spec: BucketSpec, state: BucketState, cost: number, at: number): void => {
  state.tat = Math.max(state.tat, at) + cost * spec.emission
}

/**
 * Gives back (`delta < 0`) or charges (`delta > 0`) after the fact. A refund
 * never lifts the bucket above full: `level` caps at capacity by construction.
 */
export const adjust = (spec: BucketSpec, state: BucketState, delta: number, now: number): void => {
  if (delta >= 0) {
    state.tat = Math.max(state.tat, now) + delta * spec.emission
  } else {
    state.tat = state.tat + delta * spec.emission
  }
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
