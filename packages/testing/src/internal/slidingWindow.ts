/**
 * The MockProvider's own limits: requests per minute and tokens per minute,
 * counted over a sliding window of the last 60 s (or a shorter `window`, for
 * benchmarks that must span several windows in little time) (a log of admitted requests,
 * not a bucket), as a pure function of the state, the limits and `now`. The
 * server keeps the state in a `Ref` and reads `now` from `Clock`, so the
 * window moves under `TestClock`.
 *
 * Only admitted requests are logged: a refused request costs nothing.
 */

/** The window every limit is counted over. */
export const WINDOW_MILLIS = 60_000

export interface Limits {
  readonly rpm?: number | undefined
  readonly tpm?: number | undefined
  /** The window the limits are counted over, in milliseconds. Default 60 s ("per minute"). */
  readonly windowMillis?: number | undefined
}

const windowOf = (limits: Limits) => limits.windowMillis ?? WINDOW_MILLIS

export interface Entry {
  readonly at: number
  readonly tokens: number
}

/** Admitted requests still in the window, oldest first. */
export type State = ReadonlyArray<Entry>

export const empty: State = []

/** One limit as the `x-ratelimit-*` headers report it. */
export interface LimitReport {
  readonly limit: number
  readonly remaining: number
  /** Milliseconds until the window holds nothing of this limit (it "resets to its initial state"). */
  readonly resetMillis: number
}

export interface Report {
  readonly requests?: LimitReport | undefined
  readonly tokens?: LimitReport | undefined
}

export type Decision =
  | { readonly _tag: "Admitted"; readonly report: Report }
  | {
      readonly _tag: "Rejected"
      /** Which limit refused: the one that frees up last when both do. */
      readonly limit: "requests" | "tokens"
      /** Milliseconds until the request would fit; undefined when it never can (more tokens than `tpm`). */
      readonly retryAfterMillis: number | undefined
      readonly requested: number
      readonly report: Report
    }

const live = (state: State, limits: Limits, now: number): State => {
  const window = windowOf(limits)
  let first = 0
  while (first < state.length && state[first]!.at <= now - window) first++
  return first === 0 ? state : state.slice(first)
}

const report = (state: State, limits: Limits, now: number): Report => {
  const newest = state.length === 0 ? undefined : state[state.length - 1]!
  const window = windowOf(limits)
  const requestsReset = newest === undefined ? 0 : newest.at + window - now
  let tokensUsed = 0
  let lastWithTokens: Entry | undefined
  for (const entry of state) {
    tokensUsed += entry.tokens
    if (entry.tokens > 0) lastWithTokens = entry
  }
  return {
    requests:
      limits.rpm === undefined
        ? undefined
        : { limit: limits.rpm, remaining: Math.max(0, limits.rpm - state.length), resetMillis: requestsReset },
    tokens:
      limits.tpm === undefined
        ? undefined
        : {
            limit: limits.tpm,
            remaining: Math.max(0, limits.tpm - tokensUsed),
            resetMillis: lastWithTokens === undefined ? 0 : lastWithTokens.at + window - now
          }
  }
}

/** What the window says now, without charging anything. */
export const peek = (state: State, limits: Limits, now: number): Report => report(live(state, limits, now), limits, now)

/**
 * Admits a request of `tokens` at `now` if it fits every limit (and logs it),
 * or refuses it with the time until it would fit. Answers the decision and the next state.
 */
export const admit = (state: State, limits: Limits, now: number, tokens: number): readonly [Decision, State] => {
  // Without limits there is nothing to count: no log grows, no request pays for one.
  if (limits.rpm === undefined && limits.tpm === undefined) return [{ _tag: "Admitted", report: {} }, state]
  const window = windowOf(limits)
  const current = live(state, limits, now)
  let requestsWait: number | undefined
  if (limits.rpm !== undefined && current.length + 1 > limits.rpm) {
    // The oldest `length + 1 - rpm` entries must leave; the last of them is at index `length - rpm`.
    requestsWait = current[current.length - limits.rpm]!.at + window - now
  }
  let tokensWait: number | undefined
  let tokensNever = false
  if (limits.tpm !== undefined) {
    if (tokens > limits.tpm) tokensNever = true
    else {
      let used = current.reduce((total, entry) => total + entry.tokens, 0)
      if (used + tokens > limits.tpm) {
        for (const entry of current) {
          used -= entry.tokens
          if (used + tokens <= limits.tpm) {
            tokensWait = entry.at + window - now
            break
          }
        }
      }
    }
  }
  if (tokensNever) {
    return [
      {
        _tag: "Rejected",
        limit: "tokens",
        retryAfterMillis: undefined,
        requested: tokens,
        report: report(current, limits, now)
      },
      current
    ]
  }
  if (requestsWait !== undefined || tokensWait !== undefined) {
    const byTokens = (tokensWait ?? -1) > (requestsWait ?? -1)
    return [
      {
        _tag: "Rejected",
        limit: byTokens ? "tokens" : "requests",
        retryAfterMillis: Math.max(requestsWait ?? 0, tokensWait ?? 0),
        requested: byTokens ? tokens : 1,
        report: report(current, limits, now)
      },
      current
    ]
  }
  const next = [...current, { at: now, tokens }]
  return [{ _tag: "Admitted", report: report(next, limits, now) }, next]
}

/**
 * OpenAI's duration format for `x-ratelimit-reset-*` (Go's `time.Duration`
 * style): `0s`, `12ms`, `1s`, `1.5s`, `6m0s`, `1h2m3.5s`. Milliseconds are
 * rounded up, so a reset is never reported early.
 */
export const formatDuration = (millis: number): string => {
  const ms = Math.max(0, Math.ceil(millis))
  if (ms === 0) return "0s"
  if (ms < 1000) return `${ms}ms`
  const hours = Math.floor(ms / 3_600_000)
  const minutes = Math.floor((ms % 3_600_000) / 60_000)
  const secondsMs = ms % 60_000
  const seconds = secondsMs % 1000 === 0 ? `${secondsMs / 1000}` : (secondsMs / 1000).toFixed(3).replace(/0+$/, "")
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`
  if (minutes > 0) return `${minutes}m${seconds}s`
  return `${seconds}s`
}
