/**
 * The limits a run goes by: read from each header dialect, the tighter of the
 * flags' and the server's, and the bucket that never lets a window of the
 * server's see more than its limit.
 */
import { describe, expect, it } from "@effect/vitest"
import * as RateLimitHeaders from "@sluice/http/RateLimitHeaders"
import * as fc from "fast-check"
import * as LearnedLimits from "../src/internal/learnedLimits.js"

const NOW = Date.parse("2026-11-30T12:00:00Z")

describe("LearnedLimits.fromHeaders", () => {
  it("OpenAI's headers: per minute, since they name no window", () => {
    const info = RateLimitHeaders.parse(
      {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-limit-tokens": "90000",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-remaining-tokens": "89000",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-reset-tokens": "666ms"
      },
      NOW
    )
    expect(LearnedLimits.fromHeaders(info)).toEqual({
      requests: { limit: 500, windowMillis: 60_000 },
      tokens: { limit: 90_000, windowMillis: 60_000 }
    })
  })

  it("a RateLimit-Policy beside them names the window", () => {
    const info = RateLimitHeaders.parse(
      {
        "x-ratelimit-limit-requests": "1000",
        "x-ratelimit-limit-tokens": "220000",
        "ratelimit-policy": '"requests";q=1000;w=10, "tokens";q=220000;w=10'
      },
      NOW
    )
    expect(LearnedLimits.fromHeaders(info)).toEqual({
      requests: { limit: 1000, windowMillis: 10_000 },
      tokens: { limit: 220_000, windowMillis: 10_000 }
    })
  })

  it("Anthropic's: the tighter of the token limits it reports; output tokens are not the run's token limit", () => {
    const info = RateLimitHeaders.parse(
      {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-limit": "30000",
        "anthropic-ratelimit-output-tokens-limit": "8000"
      },
      NOW
    )
    expect(LearnedLimits.fromHeaders(info)).toEqual({
      requests: { limit: 50, windowMillis: 60_000 },
      tokens: { limit: 30_000, windowMillis: 60_000 }
    })
  })

  it("no headers, or unreadable ones, teach nothing", () => {
    expect(LearnedLimits.fromHeaders(RateLimitHeaders.parse({}, NOW))).toEqual({})
    const hostile = RateLimitHeaders.parse(
      { "x-ratelimit-limit-requests": "lots", "x-ratelimit-limit-tokens": "0" },
      NOW
    )
    expect(LearnedLimits.fromHeaders(hostile)).toEqual({})
    // A window of 0 s is no window: per minute, as if unsaid.
    const noWindow = RateLimitHeaders.parse({ "ratelimit-policy": '"tokens";q=5000;w=0' }, NOW)
    expect(LearnedLimits.fromHeaders(noWindow)).toEqual({ tokens: { limit: 5000, windowMillis: 60_000 } })
  })
})

describe("LearnedLimits.combine", () => {
  it("each limit the tighter by rate, whatever the windows; a missing one takes the other", () => {
    const combined = LearnedLimits.combine(
      { requests: { limit: 1_000, windowMillis: 60_000 }, tokens: { limit: 50, windowMillis: 60_000 } },
      { requests: { limit: 2, windowMillis: 1_000 }, tokens: { limit: 100_000, windowMillis: 60_000 } }
    )
    // 2 a second is 120 a minute: tighter than 1,000 a minute.
    expect(combined).toEqual({
      requests: { limit: 2, windowMillis: 1_000 },
      tokens: { limit: 50, windowMillis: 60_000 }
    })
    expect(LearnedLimits.combine({}, { tokens: { limit: 9, windowMillis: 10_000 } })).toEqual({
      requests: undefined,
      tokens: { limit: 9, windowMillis: 10_000 }
    })
    expect(LearnedLimits.perMinute({ limit: 2, windowMillis: 1_000 })).toBe(120)
    expect(LearnedLimits.perMinute(undefined)).toBeUndefined()
  })
})

describe("LearnedLimits.bucket", () => {
  it("holds the burst and refills to the bound: 90,000 a minute at 2% and 2% → 1,800 held, 86,401 a minute", () => {
    // The headroom in whole units: 1,800 kept in every window (and the limiter's own 5 ms margin).
    expect(LearnedLimits.bucket({ limit: 90_000, windowMillis: 60_000 }, 0.02, 0.02)).toEqual({
      limit: 86_401,
      interval: 60_000,
      capacity: 1_800,
      windowMargin: 5
    })
    // No headroom: every window may take the whole limit.
    expect(LearnedLimits.bucket({ limit: 90_000, windowMillis: 60_000 }, 0.02, 0)).toEqual({
      limit: 88_201,
      interval: 60_000,
      capacity: 1_800,
      windowMargin: 5
    })
    // A limit of 1 holds 1 and refills 1: the limiter's sliding log keeps it to 1 a window, 2% longer.
    expect(LearnedLimits.bucket({ limit: 1, windowMillis: 60_000 }, 0.02, 0.02)).toEqual({
      limit: 1,
      interval: 60_000,
      capacity: 1,
      windowMargin: 1_200
    })
  })

  it("a small limit keeps its headroom in time, not in whole requests: 3 a minute stays 3 per 61.2 s", () => {
    // Between the two: 60 a minute keeps 1 (1.67%) in units, the other 0.33% (200 ms) in time.
    expect(LearnedLimits.bucket({ limit: 60, windowMillis: 60_000 }, 0.02, 0.02)).toEqual({
      limit: 59,
      interval: 60_000,
      capacity: 1,
      windowMargin: expect.closeTo(200, 6)
    })
    // ⌊3 × 0.98⌋ would leave 2 a minute: a third of the limit lost to a 2% headroom.
    expect(LearnedLimits.bucket({ limit: 3, windowMillis: 60_000 }, 0.02, 0.02)).toEqual({
      limit: 3,
      interval: 60_000,
      capacity: 1,
      windowMargin: 1_200
    })
    expect(LearnedLimits.bucket({ limit: 10, windowMillis: 5_000 }, 0.02, 0.02)).toEqual({
      limit: 10,
      interval: 5_000,
      capacity: 1,
      windowMargin: 100
    })
  })

  it("property: capacity + refill − 1 (what the limiter admits in a window at most) stays within the bound", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.double({ min: 0.0001, max: 0.9999, noNaN: true }),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        (limit, burst, headroom) => {
          const bucket = LearnedLimits.bucket({ limit, windowMillis: 60_000 }, burst, headroom)
          expect(bucket.capacity).toBeGreaterThanOrEqual(1)
          expect(bucket.limit).toBeGreaterThanOrEqual(1)
          const admitted = bucket.capacity! + bucket.limit - 1
          expect(admitted).toBeLessThanOrEqual(limit)
          // The headroom's whole units are kept wherever the limit is large enough to keep them and hold the burst.
          if (limit - Math.floor(limit * headroom) >= bucket.capacity!) {
            expect(admitted).toBeLessThanOrEqual(limit - Math.floor(limit * headroom))
          }
          // The rest in time: units and time together keep the whole headroom (time at least the limiter's 5 ms).
          const inUnits = Math.floor(limit * headroom) / limit
          expect(bucket.windowMargin).toBeCloseTo(Math.max(5, 60_000 * (headroom - inUnits)), 6)
        }
      )
    )
  })
})
