/**
 * What a CLOSED circuit breaker remembers of recent calls, one kind per
 * policy, each deciding when the breaker trips:
 * - `consecutive`: N bad calls in a row;
 * - `count`: the last `size` calls, failure or slow-call rate at or above a
 *   threshold once at least `minimumCalls` were seen;
 * - `time`: the calls of the last `window`, kept in a ring of buckets (a call
 *   ages out within one bucket's width), with the same rates.
 * "Bad" in a row means failed or slow; the rates count failures and slow calls
 * separately (as Resilience4j does), tripping on either.
 */

export interface Outcome {
  readonly failure: boolean
  readonly slow: boolean
}

export interface WindowCounts {
  readonly calls: number
  readonly failures: number
  readonly slowCalls: number
}

export interface OutcomeWindow {
  /** Records one call; true if the breaker should trip now. */
  readonly record: (outcome: Outcome, now: number) => boolean
  readonly counts: (now: number) => WindowCounts
  readonly clear: () => void
}

export interface RateThresholds {
  readonly failureRate: number
  /** Slow-call rate that trips, if slow calls are tracked. */
  readonly slowCallRate: number | undefined
  readonly minimumCalls: number
}

const tripsOnRates = (calls: number, failures: number, slowCalls: number, thresholds: RateThresholds): boolean => {
  if (calls < thresholds.minimumCalls || calls === 0) return false
  if (failures / calls >= thresholds.failureRate) return true
  return thresholds.slowCallRate !== undefined && slowCalls / calls >= thresholds.slowCallRate
}

export const consecutive = (threshold: number): OutcomeWindow => {
  let bad = 0
  let failures = 0
  let slowCalls = 0
  return {
    record: (outcome) => {
      if (outcome.failure || outcome.slow) {
        bad++
        if (outcome.failure) failures++
        if (outcome.slow) slowCalls++
      } else {
        bad = 0
        failures = 0
        slowCalls = 0
      }
      return bad >= threshold
    },
    counts: () => ({ calls: bad, failures, slowCalls }),
    clear: () => {
      bad = 0
      failures = 0
      slowCalls = 0
    }
  }
}

export const countBased = (size: number, thresholds: RateThresholds): OutcomeWindow => {
  const ring = new Array<number>(size).fill(0) // bit 1: failure, bit 2: slow
  let next = 0
  let calls = 0
  let failures = 0
  let slowCalls = 0
  const counts = () => ({ calls, failures, slowCalls })
  return {
    record: (outcome) => {
      const wasFull = calls === size
      if (wasFull) {
        const old = ring[next]!
        if (old & 1) failures--
        if (old & 2) slowCalls--
      } else {
        calls++
      }
      ring[next] = (outcome.failure ? 1 : 0) | (outcome.slow ? 2 : 0)
      if (outcome.failure) failures++
      if (outcome.slow) slowCalls++
      next = next + 1 === size ? 0 : next + 1
      // A good call into a full window can only lower the rates: nothing new to trip on.
      if (wasFull && !outcome.failure && !outcome.slow) return false
      return tripsOnRates(calls, failures, slowCalls, thresholds)
    },
    counts,
    clear: () => {
      ring.fill(0)
      next = 0
      calls = 0
      failures = 0
      slowCalls = 0
    }
  }
}

export const timeBased = (windowMillis: number, buckets: number, thresholds: RateThresholds): OutcomeWindow => {
  const width = windowMillis / buckets
  const calls = new Array<number>(buckets).fill(0)
  const failures = new Array<number>(buckets).fill(0)
  const slowCalls = new Array<number>(buckets).fill(0)
  let newest = Number.NEGATIVE_INFINITY

  const slotOf = (index: number) => ((index % buckets) + buckets) % buckets
  const advance = (now: number): number => {
    const current = Math.floor(now / width)
    if (current > newest) {
      const stale = Math.min(buckets, current - newest)
      for (let i = 0; i < stale; i++) {
        const slot = slotOf(current - i)
        calls[slot] = 0
        failures[slot] = 0
        slowCalls[slot] = 0
      }
      newest = current
    }
    return slotOf(newest)
  }
  const counts = (now: number): WindowCounts => {
    advance(now)
    let c = 0
    let f = 0
    let s = 0
    for (let i = 0; i < buckets; i++) {
      c += calls[i]!
      f += failures[i]!
      s += slowCalls[i]!
    }
    return { calls: c, failures: f, slowCalls: s }
  }
  return {
    record: (outcome, now) => {
      const slot = advance(now)
      calls[slot]!++
      if (outcome.failure) failures[slot]!++
      if (outcome.slow) slowCalls[slot]!++
      const { calls: c, failures: f, slowCalls: sc } = counts(now)
      return tripsOnRates(c, f, sc, thresholds)
    },
    counts,
    clear: () => {
      calls.fill(0)
      failures.fill(0)
      slowCalls.fill(0)
    }
  }
}
