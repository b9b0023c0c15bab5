/**
 * Helpers shared by the RateLimiter and RateLimiterStore tests: building a
 * limiter over a memory store, timing acquisitions on the TestClock, reading
 * `state()` as a record, and the token-bucket bound used by the properties.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RateLimiterStore from "../../src/RateLimiterStore.js"

/** Lets every runnable fiber run (forked work, wake-ups) without moving the clock. */
export const settle = TestClock.adjust(0)

/** A limiter over a fresh memory store (`RateLimiterStore.layerMemory()`). */
export const makeLimiter = (options: RateLimiter.Options) =>
  RateLimiter.make(options).pipe(Effect.provide(RateLimiterStore.layerMemory()))

/** A limiter over a given store (to share it, or to look at `size` / `sweep`). */
export const makeLimiterOn = (store: RateLimiterStore.RateLimiterStoreShape, options: RateLimiter.Options) =>
  RateLimiter.make(options).pipe(Effect.provideService(RateLimiterStore.RateLimiterStore, store))

export interface Timed {
  /** `Clock.currentTimeMillis` right after `acquire` returned. */
  readonly time: number
  readonly reservation: RateLimiter.Reservation
}

/** `acquire`, answering when (on the Clock) it returned. */
export const timedAcquire = (
  limiter: RateLimiter.RateLimiterShape,
  cost?: RateLimiter.Cost,
  options?: RateLimiter.KeyOptions
): Effect.Effect<Timed, RateLimiter.RateLimiterError> =>
  Effect.flatMap(limiter.acquire(cost, options), (reservation) =>
    Effect.map(Clock.currentTimeMillis, (time) => ({ time, reservation }))
  )

/** `state()` as `{ [limit]: available }`. */
export const available = (limiter: RateLimiter.RateLimiterShape, options?: RateLimiter.KeyOptions) =>
  Effect.map(limiter.state(options), (buckets) => Object.fromEntries(buckets.map((b) => [b.name, b.available])))

/** Moves the TestClock to an absolute time (which must not be in the past). */
export const advanceTo = (millis: number) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => TestClock.adjust(Math.max(0, millis - now)))

/** One admission as one bucket saw it. */
export interface Admission {
  readonly time: number
  readonly cost: number
}

/**
 * The largest excess, over every closed window `[a, b]`, of the cost admitted
 * in it above what a token bucket allows: `capacity + (b - a) / emission`.
 * A correct limiter gives a value `<= 0`. Only windows starting and ending at
 * an admission need checking (they are the tightest).
 */
export const worstWindowExcess = (
  admissions: ReadonlyArray<Admission>,
  capacity: number,
  emission: number
): { readonly excess: number; readonly from: number; readonly to: number } => {
  const sorted = [...admissions].sort((x, y) => x.time - y.time)
  let worst = { excess: Number.NEGATIVE_INFINITY, from: 0, to: 0 }
  for (let i = 0; i < sorted.length; i++) {
    const from = sorted[i]!.time
    // Start at the first admission at this instant so that ties are all counted.
    if (i > 0 && sorted[i - 1]!.time === from) continue
    let sum = 0
    for (let j = i; j < sorted.length; j++) {
      sum += sorted[j]!.cost
      const to = sorted[j]!.time
      if (j + 1 < sorted.length && sorted[j + 1]!.time === to) continue
      const excess = sum - (capacity + (to - from) / emission)
      if (excess > worst.excess) worst = { excess, from, to }
    }
  }
  return worst
}

/**
 * When a token bucket that saw only these admissions (each charged at its
 * time) is full again: the time its backlog drains,
 * `max over L of (time_L + emission * sum of costs admitted at or after time_L)`.
 */
export const fullAgainAt = (admissions: ReadonlyArray<Admission>, emission: number): number => {
  const sorted = [...admissions].filter((a) => a.cost > 0).sort((x, y) => x.time - y.time)
  let result = Number.NEGATIVE_INFINITY
  let suffix = 0
  for (let i = sorted.length - 1; i >= 0; i--) {
    suffix += sorted[i]!.cost
    result = Math.max(result, sorted[i]!.time + emission * suffix)
  }
  return result
}
