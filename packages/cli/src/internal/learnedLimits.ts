/**
 * The limits a run goes by: what the flags say, what the server's headers say
 * (`x-ratelimit-limit-*`, `anthropic-ratelimit-*-limit`, IETF `RateLimit-Policy`,
 * read by `@sluice/http`'s `RateLimitHeaders`), and the tighter of the two.
 *
 * A limit is an allowance per window. The headers of OpenAI and Anthropic
 * name no window (their limits are per minute); the IETF policy's `w` does.
 * Two limits over different windows are compared by their rate.
 *
 * How a limit becomes a token bucket that never lets more through in any
 * window than the server allows: the bucket holds `burst` of the allowance
 * and refills at the rest of the bound. The RateLimiter holds real
 * admissions to `capacity + refill − 1` in any window of its own (its sliding
 * log), so a refill of `bound − capacity + 1` keeps each of its windows at or
 * below the bound. The headroom is for timing: a request arrives at the
 * server a little after the limiter admitted it, and not always equally late,
 * so the server's window can hold a little more than ours did. It is kept in
 * whole units where they can carry it, the rest in time, so that a small
 * limit loses no request to rounding:
 * - in units: the bound is the limit less `⌊limit × headroom⌋` (none below
 *   `1 / headroom`);
 * - in time: what of the headroom those units do not keep, as a longer window
 *   (`windowMargin`): two requests one of the limiter's windows apart are a
 *   server's window apart there unless one arrives that much later.
 * A large limit paces at `1 − headroom − burst` of it (96% by default), as
 * before; a small one at `limit` per `(1 + headroom)` windows (3 a minute:
 * one every 20.4 s, not the 2 a minute a bound of `⌊3 × 0.98⌋` would leave).
 */
import type * as EndpointConfig from "@sluice/http/EndpointConfig"
import type * as RateLimitHeaders from "@sluice/http/RateLimitHeaders"

/** An allowance of `limit` per `windowMillis`. */
export interface WindowLimit {
  readonly limit: number
  readonly windowMillis: number
}

export interface Limits {
  readonly requests?: WindowLimit | undefined
  readonly tokens?: WindowLimit | undefined
}

/** OpenAI's and Anthropic's limits are per minute; their headers do not say so. */
export const DEFAULT_WINDOW_MILLIS = 60_000

/** The header dialects' names for the two limits a run keeps. */
const KIND_OF_REPORT: Record<string, keyof Limits> = {
  requests: "requests",
  default: "requests",
  tokens: "tokens",
  "input-tokens": "tokens"
}

/** The run's limit a header dialect's limit name stands for, if any. */
export const limitNameOf = (reportName: string): keyof Limits | undefined => KIND_OF_REPORT[reportName]

/** The limits a server's headers report (an answer without them reports none). */
export const fromHeaders = (info: RateLimitHeaders.RateLimitInfo): Limits => {
  const found: { requests?: WindowLimit; tokens?: WindowLimit } = {}
  for (const report of info.limits) {
    const kind = KIND_OF_REPORT[report.name]
    if (kind === undefined || report.limit === undefined || !(report.limit > 0) || !Number.isFinite(report.limit)) {
      continue
    }
    const window = report.windowMillis
    const reported = {
      limit: report.limit,
      windowMillis: window !== undefined && window > 0 && Number.isFinite(window) ? window : DEFAULT_WINDOW_MILLIS
    }
    found[kind] = tighter(found[kind], reported) ?? reported
  }
  return found
}

/** The limit with the lower rate (either, when one is missing). */
export const tighter = (a: WindowLimit | undefined, b: WindowLimit | undefined): WindowLimit | undefined => {
  if (a === undefined) return b
  if (b === undefined) return a
  return b.limit / b.windowMillis < a.limit / a.windowMillis ? b : a
}

/** Each limit the tighter of the flags' and the server's. */
export const combine = (given: Limits, learned: Limits): Limits => ({
  requests: tighter(given.requests, learned.requests),
  tokens: tighter(given.tokens, learned.tokens)
})

/** A limit as a per-minute figure, for progress lines. */
export const perMinute = (limit: WindowLimit | undefined): number | undefined =>
  limit === undefined ? undefined : Math.round((limit.limit * 60_000) / limit.windowMillis)

/** The RateLimiter's own margin (`RateLimiter.LimitOptions`' `windowMargin` default): a scheduler turn. */
const LIMITER_MARGIN_MILLIS = 5

/**
 * The bucket for a limit: it holds `burst` of the allowance (at least 1), and
 * no window of the limiter's may take more than the limit less `headroom` of
 * it in whole units (at least the capacity): the refill is that bound
 * `− capacity + 1`, since the limiter admits at most `capacity + refill − 1`
 * in one of its windows. The headroom the whole units do not keep lengthens
 * the limiter's window instead. It absorbs the time between an admission
 * here and the request's arrival there, which varies from request to request.
 */
export const bucket = (limit: WindowLimit, burst: number, headroom: number): EndpointConfig.LimitOptions => {
  const capacity = Math.min(limit.limit, Math.max(1, Math.floor(limit.limit * burst)))
  const kept = Math.floor(limit.limit * headroom)
  const bound = Math.max(capacity, limit.limit - kept)
  const inTime = Math.max(0, headroom - kept / limit.limit)
  return {
    limit: bound - capacity + 1,
    interval: limit.windowMillis,
    capacity,
    windowMargin: Math.max(LIMITER_MARGIN_MILLIS, limit.windowMillis * inTime)
  }
}
