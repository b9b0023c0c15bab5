/**
 * Reads what a server says about its rate limits, in every dialect a model
 * API speaks, into one shape the endpoint's RateLimiter can use:
 * - `retry-after` (seconds, or an HTTP date) and `retry-after-ms`;
 * - OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, whose
 *   resets read like `1s`, `6m0s`, `12ms`, `1h2m3.5s`;
 * - Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
 *   whose resets are RFC 3339 times;
 * - the IETF `RateLimit` / `RateLimit-Policy` fields: the structured form of
 *   the current drafts (`"default";r=50;t=30` and `"default";q=100;w=60`),
 *   the older `limit=100, remaining=50, reset=30` form, and the separate
 *   `RateLimit-Limit` / `-Remaining` / `-Reset` headers;
 * - `x-should-retry: true|false`, the server's own retry verdict.
 *
 * Parsing is total: a value that cannot be read is reported in `problems` and
 * otherwise ignored, so a hostile or broken header never fails a call.
 * Effect and `@effect/platform` have no parser for any of these; this module
 * is that parser, pure and synchronous (the caller passes the current time).
 *
 * @since 0.1.0
 */

/**
 * What a server reported about one limit. `name` is the limit's own name in
 * its dialect: `requests`, `tokens`, `input-tokens`, `output-tokens`, or an
 * IETF policy name.
 *
 * @since 0.1.0
 * @category models
 */
export interface LimitReport {
  readonly name: string
  readonly limit?: number
  readonly remaining?: number
  /** Milliseconds until the limit is full again. */
  readonly resetAfterMillis?: number
  /** The window the limit is counted over (IETF `w`), in milliseconds. */
  readonly windowMillis?: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RateLimitInfo {
  /** Milliseconds to wait before trying again (`retry-after-ms` wins over `retry-after`). */
  readonly retryAfterMillis?: number
  readonly limits: ReadonlyArray<LimitReport>
  /** `x-should-retry`'s verdict, when the server gave one. */
  readonly shouldRetry?: boolean
  /** Headers present but unreadable: reported, then ignored. */
  readonly problems: ReadonlyArray<{ readonly header: string; readonly value: string }>
}

/** Headers as `@effect/platform` holds them: lower-case names. */
type HeaderRecord = Readonly<Record<string, string | undefined>>

const DECIMAL = /^\d+(?:\.\d+)?$/

/**
 * `1s`, `6m0s`, `12ms`, `1h2m3.5s`, `0.5s`; a bare number is seconds. Undefined if unreadable.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseDurationMillis = (value: string): number | undefined => {
  const text = value.trim()
  if (DECIMAL.test(text)) return finite(Number(text) * 1000)
  const unit = /(\d+(?:\.\d+)?)(ms|h|m|s)/y
  let total = 0
  let at = 0
  while (at < text.length) {
    unit.lastIndex = at
    const match = unit.exec(text)
    if (match === null) return undefined
    const amount = Number(match[1])
    total +=
      match[2] === "h"
        ? amount * 3_600_000
        : match[2] === "m"
          ? amount * 60_000
          : match[2] === "s"
            ? amount * 1000
            : amount
    at = unit.lastIndex
  }
  return at === 0 ? undefined : finite(total)
}

/** A count: a non-negative integer (or decimal) and nothing else. */
const parseCount = (value: string): number | undefined => {
  const text = value.trim()
  return DECIMAL.test(text) ? finite(Number(text)) : undefined
}

const finite = (value: number) => (Number.isFinite(value) ? value : undefined)

/** `Retry-After`: delay-seconds or an HTTP date, relative to `now`. */
const parseRetryAfter = (value: string, now: number): number | undefined => {
  const text = value.trim()
  if (DECIMAL.test(text)) return finite(Number(text) * 1000)
  const date = Date.parse(text)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** An RFC 3339 time, as milliseconds after `now` (0 if already past). */
const parseResetTime = (value: string, now: number): number | undefined => {
  const text = value.trim()
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text)) return undefined
  const date = Date.parse(text)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

interface MutableReport {
  name: string
  limit?: number
  remaining?: number
  resetAfterMillis?: number
  windowMillis?: number
}

/** IETF structured field items: `"name";r=50;t=30, "other";r=1` → name → parameters. */
const parseStructured = (value: string): Array<{ name: string; params: Record<string, string> }> | undefined => {
  const items: Array<{ name: string; params: Record<string, string> }> = []
  for (const rawItem of value.split(",")) {
    const parts = rawItem.trim().split(";")
    const head = parts[0]!.trim()
    const quoted = /^"([^"]*)"$/.exec(head)
    const token = /^[A-Za-z*][\w.*:/-]*$/.exec(head)
    if (quoted === null && token === null) return undefined
    const params: Record<string, string> = {}
    for (const param of parts.slice(1)) {
      const [key, val] = param.split("=")
      if (key === undefined || val === undefined) return undefined
      params[key.trim()] = val.trim()
    }
    items.push({ name: quoted?.[1] ?? head, params })
  }
  return items
}

/** The names of every header `parse` reads start so (`ratelimit` covers the IETF fields). */
const RATE_LIMIT_HEADER = /^(?:x-ratelimit-|anthropic-ratelimit-|ratelimit|retry-after|x-should-retry$)/

/** Whether any header is one `parse` reads: most answers carry none, and then there is nothing to look up. */
const hasRateLimitHeader = (headers: HeaderRecord): boolean => {
  for (const name in headers) if (RATE_LIMIT_HEADER.test(name)) return true
  return false
}

/**
 * Reads every rate-limit header in `headers` (lower-case names). `now` is the
 * current time in milliseconds, for headers that give a time rather than a delay.
 * Headers that say nothing about rate limits cost one look at each name.
 *
 * @since 0.1.0
 * @category utils
 */
export const parse = (headers: HeaderRecord, now: number): RateLimitInfo => {
  if (!hasRateLimitHeader(headers)) return { limits: [], problems: [] }
  const problems: Array<{ header: string; value: string }> = []
  const limits = new Map<string, MutableReport>()
  const report = (name: string): MutableReport => {
    let entry = limits.get(name)
    if (entry === undefined) {
      entry = { name }
      limits.set(name, entry)
    }
    return entry
  }
  const read = <A>(header: string, parser: (value: string) => A | undefined): A | undefined => {
    const value = headers[header]
    if (value === undefined) return undefined
    const parsed = parser(value)
    if (parsed === undefined) problems.push({ header, value: value.slice(0, 100) })
    return parsed
  }

  // OpenAI
  for (const name of ["requests", "tokens"]) {
    const limit = read(`x-ratelimit-limit-${name}`, parseCount)
    const remaining = read(`x-ratelimit-remaining-${name}`, parseCount)
    const reset = read(`x-ratelimit-reset-${name}`, parseDurationMillis)
    if (limit !== undefined) report(name).limit = limit
    if (remaining !== undefined) report(name).remaining = remaining
    if (reset !== undefined) report(name).resetAfterMillis = reset
  }

  // Anthropic
  for (const name of ["requests", "tokens", "input-tokens", "output-tokens"]) {
    const limit = read(`anthropic-ratelimit-${name}-limit`, parseCount)
    const remaining = read(`anthropic-ratelimit-${name}-remaining`, parseCount)
    const reset = read(`anthropic-ratelimit-${name}-reset`, (value) => parseResetTime(value, now))
    if (limit !== undefined) report(name).limit = limit
    if (remaining !== undefined) report(name).remaining = remaining
    if (reset !== undefined) report(name).resetAfterMillis = reset
  }

  // IETF
  const policy = headers["ratelimit-policy"]
  const policies = new Map<string, { quota?: number; windowMillis?: number }>()
  if (policy !== undefined) {
    const structured = policy.includes("=") && policy.trim().startsWith('"') ? parseStructured(policy) : undefined
    if (structured !== undefined) {
      for (const item of structured) {
        const quota = item.params.q === undefined ? undefined : parseCount(item.params.q)
        const window = item.params.w === undefined ? undefined : parseCount(item.params.w)
        const entry: { quota?: number; windowMillis?: number } = {}
        if (quota !== undefined) entry.quota = quota
        if (window !== undefined) entry.windowMillis = window * 1000
        policies.set(item.name, entry)
      }
    } else {
      // Older drafts: `100;w=60` (the first item names the quota in force).
      const match = /^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?/.exec(policy)
      if (match === null) problems.push({ header: "ratelimit-policy", value: policy.slice(0, 100) })
      else {
        const entry: { quota?: number; windowMillis?: number } = { quota: Number(match[1]) }
        if (match[2] !== undefined) entry.windowMillis = Number(match[2]) * 1000
        policies.set("default", entry)
      }
    }
  }
  const ietf = headers.ratelimit
  if (ietf !== undefined) {
    if (/\bremaining\s*=/.test(ietf) || /\blimit\s*=/.test(ietf)) {
      // draft-ietf-httpapi-ratelimit-headers-05/06: `limit=100, remaining=50, reset=30`
      const fields = Object.fromEntries(
        ietf.split(",").map((part) => {
          const [key, value] = part.split("=")
          return [key?.trim().toLowerCase() ?? "", value?.trim() ?? ""]
        })
      )
      const entry = report("default")
      const limit = fields.limit === undefined ? undefined : parseCount(fields.limit)
      const remaining = fields.remaining === undefined ? undefined : parseCount(fields.remaining)
      const reset = fields.reset === undefined ? undefined : parseCount(fields.reset)
      if (limit === undefined && remaining === undefined && reset === undefined) {
        problems.push({ header: "ratelimit", value: ietf.slice(0, 100) })
      }
      if (limit !== undefined) entry.limit = limit
      if (remaining !== undefined) entry.remaining = remaining
      if (reset !== undefined) entry.resetAfterMillis = reset * 1000
    } else {
      const structured = parseStructured(ietf)
      if (structured === undefined) problems.push({ header: "ratelimit", value: ietf.slice(0, 100) })
      for (const item of structured ?? []) {
        const entry = report(item.name)
        const remaining = item.params.r === undefined ? undefined : parseCount(item.params.r)
        const reset = item.params.t === undefined ? undefined : parseCount(item.params.t)
        if (remaining !== undefined) entry.remaining = remaining
        if (reset !== undefined) entry.resetAfterMillis = reset * 1000
      }
    }
  }
  for (const [name, entry] of policies) {
    const target = report(name)
    if (entry.quota !== undefined) target.limit = entry.quota
    if (entry.windowMillis !== undefined) target.windowMillis = entry.windowMillis
  }
  // draft-03: three separate headers
  const separateLimit = read("ratelimit-limit", (value) => parseCount(value.split(",")[0]!))
  const separateRemaining = read("ratelimit-remaining", parseCount)
  const separateReset = read("ratelimit-reset", parseCount)
  if (separateLimit !== undefined) report("default").limit = separateLimit
  if (separateRemaining !== undefined) report("default").remaining = separateRemaining
  if (separateReset !== undefined) report("default").resetAfterMillis = separateReset * 1000

  const info: { -readonly [K in keyof RateLimitInfo]: RateLimitInfo[K] } = { limits: [...limits.values()], problems }
  const retryAfterMs = read("retry-after-ms", parseCount)
  const retryAfter = retryAfterMs ?? read("retry-after", (value) => parseRetryAfter(value, now))
  if (retryAfter !== undefined) info.retryAfterMillis = retryAfter
  const shouldRetry = read("x-should-retry", (value) =>
    value.trim() === "true" ? true : value.trim() === "false" ? false : undefined
  )
  if (shouldRetry !== undefined) info.shouldRetry = shouldRetry
  return info
}
