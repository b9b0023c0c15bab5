/**
 * A per-minute rate over a sliding window of the last 60 s, kept as 60
 * one-second buckets, so a million events cost sixty numbers. Early in a run
 * the rate is taken over the time elapsed so far (at least one second), so
 * the first seconds already read in "per minute".
 */

const BUCKETS = 60
const BUCKET_MILLIS = 1000

export interface RateWindow {
  readonly add: (nowMillis: number, amount: number) => void
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
  return {
    add: (nowMillis, amount) => {
      const index = slot(Math.floor(nowMillis / BUCKET_MILLIS))
      amounts[index]! += amount
    },
    perMinute: (nowMillis) => {
      const current = Math.floor(nowMillis / BUCKET_MILLIS)
      let sum = 0
      for (let index = 0; index < BUCKETS; index++) {
        const second = seconds[index]!
        if (second > current - BUCKETS && second <= current) sum += amounts[index]!
      }
      const span = Math.min(BUCKETS * BUCKET_MILLIS, Math.max(BUCKET_MILLIS, nowMillis - startMillis))
      return (sum * 60_000) / span
    }
  }
}
