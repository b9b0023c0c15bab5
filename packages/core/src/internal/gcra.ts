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
 * log of its admissions (a sliding log, one entry per admission, with its real
 * time and the date it was charged at) and never lets more than a GCRA bucket
 * could (`capacity + limit - 1` units) into one window:
 *
 * - the schedule: a round of admissions is dated no earlier than one
 *   `interval + windowMargin` after the round before it was dated. On time,
 *   that is all the log does, and the margin is all a saturated bucket gives
 *   up (at most `windowMargin` per interval);
 * - real time: no window of `interval + windowMargin / 2` sees more. An
 *   admission waits in real time until the one it follows has left that
 *   window, but is dated by the schedule, as if that one had been on time.
 *
 * So the margin is room twice over: half for the moment between an admission
 * and the start of the work it admits (a scheduler turn), which a window of
 * real starts also sees; half for timers that fire late, which then cost the
 * next round nothing. A late burst of catch-up admissions is repeated a window
 * later at about the same real times (the log holds it there), and the
 * schedule goes on undisturbed.
 *
 * A pause longer than that (a garbage collection, the process descheduled)
 * between an admission and its start would still crowd one more start into a
 * window. So a caller that knows when the admitted work began (the Executor)
 * says so (`began`): the log then counts that admission from its start, and
 * the admissions a window later wait for it.
 *
 * Everything that leaves a bucket is a plain value a network store can keep
 * too: a receipt names its log entry by number (`admission`, the bucket's
 * running count of admissions; the log holds consecutive numbers, so an entry
 * is found by subtraction) and its bucket by `generation`, never by reference.
 *
 * Times are milliseconds with a fraction, read from the Clock's nanosecond
 * time (`clockMillis`). Refill is computed from elapsed time; nothing ticks. A take is charged at a
 * time `at` no later than now. A caller that slept until its due time charges
 * at the time it was due by the schedule even if its timer fired late, so late
 * timers never lose refill and a backlog is paced at the configured rate.
 */
import type * as Clock from "effect/Clock"
import { Ring } from "./ring.js"

/** The static description of one bucket. */
export interface BucketSpec {
  readonly name: string
  readonly capacity: number
  /** Milliseconds of refill per unit of cost. */
  readonly emission: number
  /** The limit's interval (ms). */
  readonly interval: number
  /** How much later than one interval a round is scheduled (ms); real admissions keep to half of it. */
  readonly windowMargin: number
  /** The most any window of `interval` may hold: `capacity + limit - 1`. */
  readonly windowLimit: number
}

/** One real admission, for the sliding log (its cost shrinks when it is refunded). */
interface Admission {
  /** Its number in the bucket: one more than the admission before it. */
  readonly id: number
  /** When it was admitted (real time), or when the work it admitted began (`began`). */
  time: number
  /** The time its charge was dated (at most `time`). */
  readonly chargedAt: number
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
  /** Real admissions in the last window, oldest first (consecutive ids), and their total. */
  readonly log: Ring<Admission>
  logged: number
  /** How many admissions the bucket has taken: the id of the last one. */
  admissions: number
  /** The schedule's window (interval + margin): the log keeps admissions this long. */
  readonly window: number
}

/**
 * What a refund (and `began`) needs to know about one charge: plain numbers,
 * so that it survives a trip through JSON or a Redis script.
 */
export interface Receipt {
  /** The bucket's `tat` right after the charge (in the store's time). */
  readonly paidUntil: number
  /** The bucket's running total of refunded `tat` (ms) at the charge. */
  readonly credited: number
  /** Which life of the bucket took the charge: a bucket evicted and made again has another. */
  readonly generation: number
  /** The charge's entry in the sliding log: the bucket's admission number (1, 2, 3, ...). */
  readonly admission: number
}

/** Float slack: one nanosecond, the resolution of Effect's Duration (and so of every sleep). */
const EPSILON = 1e-6

/**
 * Slack when comparing a due time with now: two nanoseconds, since the
 * Clock's nanosecond reading is whole nanoseconds (a TestClock at a fractional
 * millisecond reads up to one early) and the sum below adds float error.
 */
const DUE_SLACK = 2e-6

const NANOS_PER_MILLI = BigInt(1_000_000)

/**
 * Now, in milliseconds with a fractional part, from the Clock's nanosecond
 * reading: a monotonic, sub-millisecond time in the live Clock (process.hrtime),
 * where `currentTimeMillis` is the wall clock in whole milliseconds (it can be
 * stepped or slewed, and rounds every admission down by up to 1 ms). Under the
 * TestClock both readings agree.
 */
export const clockMillis = (clock: Clock.Clock): number => {
  const nanos = clock.unsafeCurrentTimeNanos()
  return Number(nanos / NANOS_PER_MILLI) + Number(nanos % NANOS_PER_MILLI) / 1e6
}

let generations = 0

export const fresh = (spec: BucketSpec): BucketState => ({
  window: spec.interval + spec.windowMargin,
  tat: Number.NEGATIVE_INFINITY,
  blockedUntil: 0,
  credited: 0,
  generation: ++generations,
  log: new Ring(),
  logged: 0,
  admissions: 0
})

/** Where the log holds admission `id` (-1 if it has left the log, or was never taken here). */
const indexOf = (state: BucketState, id: number): number => {
  const first = state.log.first()
  if (first === undefined) return -1
  const index = id - first.id
  return state.log.at(index)?.id === id ? index : -1
}

/** Forgets admissions that have left the window ending now. */
const forget = (state: BucketState, now: number): void => {
  for (let first = state.log.first(); first !== undefined; first = state.log.first()) {
    if (first.time + state.window > now) return
    state.log.shift()
    state.logged -= first.cost
  }
  if (state.log.length === 0) state.logged = 0
}

/** The admission that must leave the window before `cost` fits in it (undefined if it fits now). */
const blockingAdmission = (spec: BucketSpec, state: BucketState, cost: number, now: number): Admission | undefined => {
  forget(state, now)
  let excess = state.logged + cost - spec.windowLimit
  if (excess <= EPSILON) return undefined
  for (let index = 0; index < state.log.length; index++) {
    const admission = state.log.at(index)!
    excess -= admission.cost
    if (excess <= EPSILON) return admission
  }
  return undefined
}

/** Units available at `now` (may be negative after an over-charge). */
export const level = (spec: BucketSpec, state: BucketState, now: number): number =>
  spec.capacity - Math.max(0, state.tat - now) / spec.emission

/**
 * When a bucket can take `cost`: `dueAt`, the earliest real time the sliding
 * log lets it in, and `chargeAt`, the time its charge is dated by the
 * schedule (never after `dueAt`; either may be in the past).
 */
export interface Readiness {
  chargeAt: number
  dueAt: number
}

/** Folds this bucket's readiness for `cost` into `into` (the latest of every bucket's wins). */
export const readyAt = (spec: BucketSpec, state: BucketState, cost: number, now: number, into: Readiness): void => {
  const byLevel = Math.max(state.blockedUntil, state.tat - (spec.capacity - cost) * spec.emission)
  if (byLevel > into.chargeAt) into.chargeAt = byLevel
  if (byLevel > into.dueAt) into.dueAt = byLevel
  const blocking = blockingAdmission(spec, state, cost, now)
  if (blocking === undefined) return
  // The schedule: one window (interval + margin) after the blocking admission's date, as if it had been on
  // time. Real time: until it has left the shorter window (interval + half the margin), which a late timer
  // can reach after the schedule without pushing the next window later.
  const scheduled = blocking.chargedAt + state.window
  if (scheduled > into.chargeAt) into.chargeAt = scheduled
  const left = blocking.time + state.window - spec.windowMargin / 2
  if (left > into.dueAt) into.dueAt = left
  if (into.chargeAt > into.dueAt) into.dueAt = into.chargeAt
}

/** Float slack when comparing a due time with now. */
export const isDue = (at: number, now: number): boolean => at - now < DUE_SLACK

/** Nanoseconds to wait until `at`, rounded up so that waking is never early by a fraction. */
export const nanosUntil = (at: number, now: number): bigint => BigInt(Math.max(0, Math.ceil((at - now) * 1e6)))

/** Whole milliseconds to wait until `at`, never one more because of float error. */
export const millisUntil = (at: number, now: number): number => Math.max(0, Math.ceil(at - now - EPSILON))

/**
 * Charges `cost` dated at `at` (at or after its `chargeAt`, at or before now)
 * and answers its receipt. The sliding log records the real time, `now`, and `at`.
 */
export const take = (spec: BucketSpec, state: BucketState, cost: number, at: number, now: number): Receipt => {
  state.tat = Math.max(state.tat, at) + cost * spec.emission
  const id = ++state.admissions
  state.log.push({ id, time: now, chargedAt: at, cost })
  state.logged += cost
  return { paidUntil: state.tat, credited: state.credited, generation: state.generation, admission: id }
}

/**
 * The work the charge behind `receipt` admitted began at `now`: its entry in
 * the sliding log (found by its number) counts from then, so the admissions
 * that must wait a window after it wait from its real start. Never later than
 * the entry after it: the log stays in order. An entry already forgotten, or
 * a bucket evicted since, is left alone.
 */
export const began = (state: BucketState, receipt: Receipt, now: number): void => {
  if (receipt.generation !== state.generation) return
  const index = indexOf(state, receipt.admission)
  if (index < 0) return
  const admission = state.log.at(index)!
  if (now <= admission.time) return
  const next = state.log.at(index + 1)
  admission.time = next === undefined ? now : Math.max(admission.time, Math.min(now, next.time))
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
  forget(state, now)
  const index = indexOf(state, receipt.admission)
  const admission = index < 0 ? undefined : state.log.at(index)!
  if (admission !== undefined && admission.cost > 0) {
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
 * `level(now) <= remaining`. An exhausted server (`remaining <= 0`) blocks
 * the bucket until room comes back there. Its reset time says when its
 * window is empty again (OpenAI's "resets to its initial state"), which for
 * a window the last request filled is a whole window away; room comes back
 * as soon as its oldest request leaves. The sliding log holds the requests
 * the server counted (of this bucket's), so the block lasts until the oldest
 * of them has left a window: the earlier of that and the reset. With nothing
 * in the log (the server counted others' requests), the reset.
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
    forget(state, now)
    const oldest = state.log.first()
    const reset = now + resetAfter
    state.blockedUntil = Math.max(
      state.blockedUntil,
      oldest === undefined ? reset : Math.min(reset, oldest.time + state.window)
    )
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
