import { describe, expect, it } from "@effect/vitest"
import * as RateLimitHeaders from "../src/RateLimitHeaders.js"

const NOW = Date.parse("2024-09-04T21:37:00Z")

describe("RateLimitHeaders.parse", () => {
  it("reads OpenAI's x-ratelimit-* headers (sample from an API response)", () => {
    const info = RateLimitHeaders.parse(
      {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s"
      },
      NOW
    )
    expect(info.limits).toEqual([
      { name: "requests", limit: 60, remaining: 59, resetAfterMillis: 1000 },
      { name: "tokens", limit: 150000, remaining: 149984, resetAfterMillis: 360_000 }
    ])
    expect(info.problems).toEqual([])
    expect(info.retryAfterMillis).toBeUndefined()
  })

  it("answers nothing for headers that say nothing about rate limits, and still reads each kind alone", () => {
    const plain = { "content-type": "application/json", "content-length": "362", connection: "keep-alive" }
    expect(RateLimitHeaders.parse(plain, NOW)).toEqual({ limits: [], problems: [] })
    expect(RateLimitHeaders.parse({ ...plain, "retry-after-ms": "250" }, NOW).retryAfterMillis).toBe(250)
    expect(RateLimitHeaders.parse({ ...plain, "x-should-retry": "false" }, NOW).shouldRetry).toBe(false)
    expect(RateLimitHeaders.parse({ ...plain, ratelimit: "limit=10, remaining=0, reset=5" }, NOW).limits).toEqual([
      { name: "default", limit: 10, remaining: 0, resetAfterMillis: 5000 }
    ])
    expect(RateLimitHeaders.parse({ ...plain, "ratelimit-remaining": "3" }, NOW).limits).toEqual([
      { name: "default", remaining: 3 }
    ])
    expect(RateLimitHeaders.parse({ ...plain, "anthropic-ratelimit-tokens-remaining": "7" }, NOW).limits).toEqual([
      { name: "tokens", remaining: 7 }
    ])
    expect(RateLimitHeaders.parse({ ...plain, "x-ratelimit-remaining-requests": "nope" }, NOW).problems).toEqual([
      { header: "x-ratelimit-remaining-requests", value: "nope" }
    ])
  })

  it("reads every OpenAI reset shape", () => {
    expect(RateLimitHeaders.parseDurationMillis("12ms")).toBe(12)
    expect(RateLimitHeaders.parseDurationMillis("8.64s")).toBeCloseTo(8640, 6)
    expect(RateLimitHeaders.parseDurationMillis("6m0s")).toBe(360_000)
    expect(RateLimitHeaders.parseDurationMillis("1h2m3.5s")).toBe(3_723_500)
    expect(RateLimitHeaders.parseDurationMillis("2")).toBe(2000)
    expect(RateLimitHeaders.parseDurationMillis("")).toBeUndefined()
    expect(RateLimitHeaders.parseDurationMillis("soon")).toBeUndefined()
    expect(RateLimitHeaders.parseDurationMillis("1s garbage")).toBeUndefined()
  })

  it("reads Anthropic's anthropic-ratelimit-* headers with RFC 3339 resets (sample from an API response)", () => {
    const info = RateLimitHeaders.parse(
      {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2024-09-04T21:37:01Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "38000",
        "anthropic-ratelimit-tokens-reset": "2024-09-04T21:37:36Z",
        "anthropic-ratelimit-input-tokens-limit": "30000",
        "anthropic-ratelimit-input-tokens-remaining": "29000",
        "anthropic-ratelimit-input-tokens-reset": "2024-09-04T21:37:02.500Z",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "8000",
        "anthropic-ratelimit-output-tokens-reset": "2024-09-04T21:36:00Z",
        "retry-after": "12"
      },
      NOW
    )
    expect(info.limits).toEqual([
      { name: "requests", limit: 50, remaining: 49, resetAfterMillis: 1000 },
      { name: "tokens", limit: 40000, remaining: 38000, resetAfterMillis: 36_000 },
      { name: "input-tokens", limit: 30000, remaining: 29000, resetAfterMillis: 2500 },
      // A reset already past reads as 0.
      { name: "output-tokens", limit: 8000, remaining: 8000, resetAfterMillis: 0 }
    ])
    expect(info.retryAfterMillis).toBe(12_000)
  })

  it("reads retry-after as seconds or an HTTP date, and retry-after-ms over both", () => {
    expect(RateLimitHeaders.parse({ "retry-after": "2.5" }, NOW).retryAfterMillis).toBe(2500)
    expect(RateLimitHeaders.parse({ "retry-after": "Wed, 04 Sep 2024 21:37:30 GMT" }, NOW).retryAfterMillis).toBe(
      30_000
    )
    expect(RateLimitHeaders.parse({ "retry-after": "Wed, 04 Sep 2024 21:00:00 GMT" }, NOW).retryAfterMillis).toBe(0)
    expect(RateLimitHeaders.parse({ "retry-after-ms": "150", "retry-after": "1" }, NOW).retryAfterMillis).toBe(150)
  })

  it("reads the IETF structured RateLimit and RateLimit-Policy fields", () => {
    const info = RateLimitHeaders.parse(
      {
        "ratelimit-policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
        ratelimit: '"burst";r=50;t=30'
      },
      NOW
    )
    expect(info.limits).toEqual([
      { name: "burst", limit: 100, remaining: 50, resetAfterMillis: 30_000, windowMillis: 60_000 },
      { name: "daily", limit: 1000, windowMillis: 86_400_000 }
    ])
    expect(info.problems).toEqual([])
  })

  it("reads the older IETF forms: one RateLimit field, and three separate headers", () => {
    expect(
      RateLimitHeaders.parse({ ratelimit: "limit=10, remaining=1, reset=7", "ratelimit-policy": "10;w=1" }, NOW).limits
    ).toEqual([{ name: "default", limit: 10, remaining: 1, resetAfterMillis: 7000, windowMillis: 1000 }])
    expect(
      RateLimitHeaders.parse(
        { "ratelimit-limit": "100, 100;w=60", "ratelimit-remaining": "0", "ratelimit-reset": "58" },
        NOW
      ).limits
    ).toEqual([{ name: "default", limit: 100, remaining: 0, resetAfterMillis: 58_000 }])
  })

  it("reads x-should-retry", () => {
    expect(RateLimitHeaders.parse({ "x-should-retry": "true" }, NOW).shouldRetry).toBe(true)
    expect(RateLimitHeaders.parse({ "x-should-retry": "false" }, NOW).shouldRetry).toBe(false)
    expect(RateLimitHeaders.parse({}, NOW).shouldRetry).toBeUndefined()
  })

  it("reports hostile or broken values and ignores them, never throwing", () => {
    const info = RateLimitHeaders.parse(
      {
        "x-ratelimit-remaining-requests": "-5",
        "x-ratelimit-reset-tokens": "forever",
        "anthropic-ratelimit-tokens-reset": "tomorrow",
        "retry-after": "Infinity",
        ratelimit: "}}{{",
        "x-should-retry": "maybe",
        "x-ratelimit-limit-requests": "9".repeat(400)
      },
      NOW
    )
    expect(info.retryAfterMillis).toBeUndefined()
    expect(info.shouldRetry).toBeUndefined()
    expect(info.problems.map((problem) => problem.header).sort()).toEqual([
      "anthropic-ratelimit-tokens-reset",
      "ratelimit",
      "retry-after",
      "x-ratelimit-limit-requests",
      "x-ratelimit-remaining-requests",
      "x-ratelimit-reset-tokens",
      "x-should-retry"
    ])
    // A number too large to hold is unreadable too; reported values are cut to 100 characters.
    expect(info.limits).toEqual([])
    expect(info.problems.every((problem) => problem.value.length <= 100)).toBe(true)
  })
})
