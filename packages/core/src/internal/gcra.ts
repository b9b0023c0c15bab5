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
 * Dating a charge back keeps the rate exact, but the *real* starts of a late
 * caller and the one after it then fall close together, and a window of real
 * time can see one more than the bucket allows. So each bucket also keeps a
 * log of its real admissions over the last interval (a sliding log, one entry
 * per admission) and never admits more than a GCRA bucket could in any window
 * of one interval: `capacity + limit - 1` units. The window is one clock tick
 * (1 ms) longer than the interval, because the clock counts whole milliseconds.
 * On time, the log never binds; it only stops the bunching.
 *
 * Refill is computed from elapsed time; nothing ticks. A take is charged at a
 * time `at` no later than now. A caller that slept until its due time charges
 * at that due time even if its timer fired late, so late timers never lose
 * refill and a backlog is paced at exactly the configured rate.
 */
import { Ring } from "./ring.js"

/** The static description of one bucket. */
export interface BucketSpec {
  readonly name: string
  readonly capacity: number
  /** Milliseconds of refill per unit of cost. */
  readonly emission: number
  /** The limit's interval (ms): the sliding log's window is this plus one tick. */
  readonly interval: number
  /** The most any window of `interval` may hold: `capacity + limit - 1`. */
  readonly windowLimit: number
}

/** One real admission, for the sliding log (its cost shrinks when it is refunded). */
interface Admission {
  readonly time: number
  cost: number
}

/** The mutable state of one bucket. A fresh (full) bucket has `tat = -Infinity`. */
export interface BucketState {
  tat: number
  blockedUntil: number
  /** Milliseconds of `tat` given back by refunds, in total. */
  credited: number
  /** Tells this bucket from an earlier one under the same name that was evicted. */
  readonly generation: number
  /** Real admissions in the last window, oldest first, and their total. */
  readonly log: Ring<Admission>
  logged: number
  /** The limit's interval, kept so that an idle bucket can be told from its state alone. */
  readonly interval: number
}

/** What a refund needs to know about one charge. */
export interface Receipt {
  readonly paidUntil: number
  readonly credited: number
  readonly generation: number
  /** The charge's entry in the sliding log (opaque; a store keeps what it needs here). */
  readonly admission?: unknown
}

/** Float slack: one nanosecond, the resolution of Effect's Duration (and so of every sleep). */
const EPSILON = 1e-6

let generations = 0

export const fresh = (interval: number): BucketState => ({
  interval,
  tat: Number.NEGATIVE_INFINITY,
  blockedUntil: 0,
  credited: 0,
  generation: ++generations,
  log: new Ring(),
  logged: 0
})

/** The clock counts whole milliseconds: the window is one tick longer than the interval. */
const TICK = 1

/** Forgets admissions that have left the window ending now. */
const forget = (state: BucketState, now: number): void => {
  for (let first = state.log.first(); first !== undefined; first = state.log.first()) {
    if (first.time + state.interval + TICK > now) return
    state.log.shift()
    state.logged -= first.cost
  }
  if (state.log.length === 0) state.logged = 0
}

/** The earliest time the sliding log lets `cost` in (now if it fits). */
const logReadyAt = (spec: BucketSpec, state: BucketState, cost: number, now: number): number => {
  forget(state, now)
  let excess = state.logged + cost - spec.windowLimit
  if (excess <= EPSILON) return now
  for (const admission of state.log.toArray()) {
    excess -= admission.cost
    if (excess <= EPSILON) return admission.time + spec.interval + TICK
  }
  return now
}

/** Units available at `now` (may be negative after an over-charge). */
export const level = (spec: BucketSpec, state: BucketState, now: number): number =>
  spec.capacity - Math.max(0, state.tat - now) / spec.emission

/** The earliest time at which this bucket holds `cost` (may be in the past), the sliding log allowing. */
export const readyAt = (spec: BucketSpec, state: BucketState, cost: number, now: number): number => {
  const byLevel = Math.max(state.blockedUntil, state.tat - (spec.capacity - cost) * spec.emission)
  const byLog = logReadyAt(spec, state, cost, now)
  return byLog > now ? Math.max(byLevel, byLog) : byLevel
}

/** Float slack when comparing a due time with now. */
export const isDue = (at: number, now: number): boolean => at - now < EPSILON

/** Nanoseconds to wait until `at`, rounded up so that waking is never early by a fraction. */
export const nanosUntil = (at: number, now: number): bigint => BigInt(Math.max(0, Math.ceil((at - now) * 1e6)))

/** Whole milliseconds to wait until `at`, never one more because of float error. */
export const millisUntil = (at: number, now: number): number => Math.max(0, Math.ceil(at - now - EPSILON))

/**
 * Charges `cost` at time `at` (at or after `readyAt`, at or before now) and
 * answers its receipt. The sliding log records the real time, `now`.
 */
export const take = (spec: BucketSpec, state: BucketState, cost: number, at: number, now: number): Receipt => {
  state.tat = Math.max(state.tat, at) + cost * spec.emission
  const admission: Admission = { time: now, cost }
  state.log.push(admission)
  state.logged += cost
  return { paidUntil: state.tat, credited: state.credited, generation: state.generation, admission }
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
  // The call used less than it was charged: so much less went through in its window.
  const admission = receipt.admission as Admission | undefined
  forget(state, now)
  if (admission !== undefined && admission.cost > 0 && admission.time + state.interval + TICK > now) {
    const unused = Math.min(amount, admission.cost)
    admission.cost -= unused
    state.logged -= unused
  }
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
export const isIdle = (state: BucketState, now: number): boolean => {
  forget(state, now)
  return state.tat <= now && state.blockedUntil <= now && state.log.length === 0
}
