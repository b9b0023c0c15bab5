/**
 * Events over a sliding window of the last 60 s, kept as 60 one-second
 * buckets, so a million events cost sixty numbers. Two readings:
 * `inLastMinute`, the count a provider's per-minute limit is held to (shown
 * against that limit: it never reads above it unless the window really
 * holds more); and `perMinute`, a pace for estimates, which early in a run
 * is taken over the time elapsed so far (at least one second), so the first
 * seconds already read in "per minute" (a start's burst then reads high).
 */

const BUCKETS = 60
const BUCKET_MILLIS = 1000

export interface RateWindow {
  readonly add: (nowMillis: number, amount: number) => void
  /** Events in the last minute (since the start, early in a run). */
  readonly inLastMinute: (nowMillis: number) => number
  /** Events per minute over the last minute (or since `startMillis`, when less). */
  readonly perMinute: (nowMillis: number) => number
}

export const make = (startMillis: number): RateWindow => {
  const amounts = new Float64Array(BUCKETS)
  const seconds = new Float64Array(BUCKETS).fill(-1)
  const slot = (second: number) => {
    const index = second % BUCKETS
    if (seconds[index] !== second) {
      seconds[index] = second
      amounts[index] = 0
    }
    return index
  }
  const inLastMinute = (nowMillis: number) => {
    const current = Math.floor(nowMillis / BUCKET_MILLIS)
    let sum = 0
    for (let index = 0; index < BUCKETS; index++) {
      const second = seconds[index]!
      if (second > current - BUCKETS && second <= current) sum += amounts[index]!
    }
    return sum
  }
  return {
    add: (nowMillis, amount) => {
      const index = slot(Math.floor(nowMillis / BUCKET_MILLIS))
      amounts[index]! += amount
    },
    inLastMinute,
    perMinute: (nowMillis) => {
      const span = Math.min(BUCKETS * BUCKET_MILLIS, Math.max(BUCKET_MILLIS, nowMillis - startMillis))
      return (inLastMinute(nowMillis) * 60_000) / span
    }
  }
}
