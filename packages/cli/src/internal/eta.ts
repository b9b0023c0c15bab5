/**
 * A run's ETA from what binds it, a pure function of the run's counts.
 *
 * The lines left need requests and tokens: as many requests per line as the
 * requests so far took attempts (retries included), and as many tokens as the
 * provider charged per line so far. Each known limit then gives a time, that
 * demand at the limit's rate; the binding limit is the one that gives the
 * longest. The observed pace is not the measure early on: a run's first
 * seconds (the first line alone while the limits are learned, then the
 * burst) say little about its rate. Once a full minute has gone, the lines
 * done in the last minute bind too when they are fewer (a run held by its
 * concurrency and the provider's latency, or by an outage, rather than by a
 * limit), and a whole minute with none done leaves the ETA unknown. With no
 * limit known, the pace alone (over the time so far, when under a minute).
 */
import type * as RunStats from "../RunStats.js"
import { WINDOW_MILLIS } from "./rateWindow.js"

export interface Counts {
  /** Lines not yet done; undefined while the input is still being counted. */
  readonly remainingLines: number | undefined
  /** Requests put on the wire, retries included. */
  readonly requests: number
  readonly retries: number
  /** Tokens the provider charged, and the lines they were charged for. */
  readonly chargedTokens: number
  readonly linesCharged: number
  readonly limits: RunStats.Limits
  /** Lines this run's sends finished in the last minute (everything so far, early in a run). */
  readonly linesInLastMinute: number
  readonly elapsedMillis: number
}

/** Milliseconds to the end; undefined while there is nothing to go by. */
export const etaMillis = (counts: Counts): number | undefined => {
  const { remainingLines, limits, elapsedMillis } = counts
  if (remainingLines === undefined) return undefined
  if (remainingLines === 0) return 0
  let byLimits: number | undefined
  const bind = (millis: number) => {
    byLimits = Math.max(byLimits ?? 0, millis)
  }
  if (limits.rpm !== undefined && limits.rpm > 0) {
    // Each request's first attempt is not a retry: attempts per request, 1 before any was made.
    const requestsPerLine = counts.requests / Math.max(1, counts.requests - counts.retries)
    bind(((remainingLines * Math.max(1, requestsPerLine)) / limits.rpm) * 60_000)
  }
  if (limits.tpm !== undefined && limits.tpm > 0 && counts.linesCharged > 0) {
    bind(((remainingLines * (counts.chargedTokens / counts.linesCharged)) / limits.tpm) * 60_000)
  }
  const fullMinute = elapsedMillis >= WINDOW_MILLIS
  const pace =
    counts.linesInLastMinute > 0
      ? (remainingLines / counts.linesInLastMinute) * (fullMinute ? WINDOW_MILLIS : Math.max(1000, elapsedMillis))
      : undefined
  // A whole minute with no line done (an outage, a stall): nothing says when it ends.
  if (fullMinute) return pace === undefined ? undefined : Math.max(byLimits ?? 0, pace)
  return byLimits ?? pace
}
