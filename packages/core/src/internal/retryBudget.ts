/**
 * A retry budget in the manner of Envoy and Finagle: retries may be at most a
 * share of the requests seen recently, plus a small minimum allowance, so that
 * when a dependency fails every request does not turn into several.
 *
 * "Recently" is a sliding window of `window`, kept as a ring of ten buckets
 * (so a count ages out within a tenth of the window), read from `Clock`.
 * Effect has no such thing; `Schedule` decides how a single call retries,
 * never how many retries the whole process may send.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

const BUCKETS = 10

export interface BudgetState {
  /** First attempts seen in the window. */
  readonly requests: number
  /** Retries sent in the window. */
  readonly retries: number
  /** Retries the window allows: `max(minRetries, floor(ratio × requests))`. */
  readonly allowance: number
}

export interface RetryBudgetShape {
  /** Counts a first attempt. */
  readonly recordRequest: Effect.Effect<void>
  /** Takes one retry from the budget if it allows one; false if it is spent. */
  readonly tryRetry: Effect.Effect<boolean>
  readonly state: Effect.Effect<BudgetState>
}

export interface BudgetOptions {
  readonly ratio: number
  readonly minRetries: number
  readonly windowMillis: number
}

export const make = (options: BudgetOptions): RetryBudgetShape => {
  const bucketMillis = options.windowMillis / BUCKETS
  const requests = new Array<number>(BUCKETS).fill(0)
  const retries = new Array<number>(BUCKETS).fill(0)
  /** The index (since time 0) of the newest bucket written. */
  let newest = Number.NEGATIVE_INFINITY

  /** Ages out buckets older than the window and answers the current bucket's slot. */
  const advance = (now: number): number => {
    const current = Math.floor(now / bucketMillis)
    if (current > newest) {
      const stale = Math.min(BUCKETS, current - newest)
      for (let i = 1; i <= stale; i++) {
        const slot = (((current - stale + i) % BUCKETS) + BUCKETS) % BUCKETS
        requests[slot] = 0
        retries[slot] = 0
      }
      newest = current
    }
    return ((newest % BUCKETS) + BUCKETS) % BUCKETS
  }

  const totals = (): BudgetState => {
    let requestCount = 0
    let retryCount = 0
    for (let i = 0; i < BUCKETS; i++) {
      requestCount += requests[i]!
      retryCount += retries[i]!
    }
    const allowance = Math.max(options.minRetries, Math.floor(options.ratio * requestCount))
    return { requests: requestCount, retries: retryCount, allowance }
  }

  return {
    recordRequest: Effect.map(Clock.currentTimeMillis, (now) => {
      requests[advance(now)]!++
    }),
    tryRetry: Effect.map(Clock.currentTimeMillis, (now) => {
      const slot = advance(now)
      const { retries: spent, allowance } = totals()
      if (spent >= allowance) return false
      retries[slot]!++
      return true
    }),
    state: Effect.map(Clock.currentTimeMillis, (now) => {
      advance(now)
      return totals()
    })
  }
}
