/**
 * The one definition of a run's rate, for the live line and the report
 * alike: what the last minute holds (the window a per-minute limit is
 * counted over), by the second, never extrapolated. Early in a run, that is
 * everything so far: a 4-second run that sent 8% of a minute's allowance
 * reads 8% of the limit, not a minute's pace scaled up from 4 seconds (which
 * the start's burst would push past the limit, though the server refused
 * nothing). It reads above a limit only if some minute really held more.
 *
 * Kept as 60 one-second buckets, so a million events cost sixty numbers;
 * and the busiest minute so far (the most the window held at any moment:
 * the figure the report sets against the limit).
 */

const BUCKETS = 60
const BUCKET_MILLIS = 1000

/** The window the rate is counted over. */
export const WINDOW_MILLIS = BUCKETS * BUCKET_MILLIS

export interface RateWindow {
  readonly add: (nowMillis: number, amount: number) => void
  /** What the last minute holds (what was added since the start, early in a run). */
  readonly inLastMinute: (nowMillis: number) => number
  /** The most the last minute has held at any moment so far. */
  readonly busiestMinute: () => number
}

export const make = (): RateWindow => {
  const amounts = new Float64Array(BUCKETS)
  const seconds = new Float64Array(BUCKETS).fill(-1)
  let busiest = 0
  let latest = Number.NEGATIVE_INFINITY
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
      const second = Math.floor(nowMillis / BUCKET_MILLIS)
      // Dated before the window of the latest addition: no window from now on holds it (and its bucket is reused).
      if (second <= latest - BUCKETS) return
      latest = Math.max(latest, second)
      const index = slot(second)
      amounts[index]! += amount
      // The window only grows when something is added: its most is reached at some addition.
      busiest = Math.max(busiest, inLastMinute(nowMillis))
    },
    inLastMinute,
    busiestMinute: () => busiest
  }
}
