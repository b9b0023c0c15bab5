/**
 * The live line and the report agree: one rate (what the last 60 s held, never extrapolated), "in flight"
 * for requests being sent, the breaker and the outage on the line, and an ETA by the binding limit. In
 * virtual time (`TestClock`) and as pure functions.
 */
import { describe, expect, it } from "@effect/vitest"
import type { RequestEvent } from "@sluice/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as DemoReport from "../src/internal/demoReport.js"
import { etaMillis } from "../src/internal/eta.js"
import * as View from "../src/internal/progressView.js"
import * as RunSeries from "../src/internal/runSeries.js"
import type * as Runner from "../src/Runner.js"
import * as RunStats from "../src/RunStats.js"

let nextRequest = 0

/** One request's event at `status`, with `attempts` made so far. */
const event = (
  id: number,
  status: RequestEvent.RequestStatus,
  at: number,
  attempts: number
): RequestEvent.RequestEvent => ({
  id,
  executor: "test",
  key: "default",
  priority: 0,
  cost: { requests: 1 },
  status,
  timestamps: { PENDING: at, [status]: at },
  attempts
})

/** A line sent once and answered, charged `tokens` by the provider. */
const lineDone = (stats: RunStats.RunStatsShape, tokens: number) =>
  Effect.gen(function* () {
    const at = yield* Clock.currentTimeMillis
    const id = ++nextRequest
    yield* stats.requestEvents([event(id, "CALLING", at, 1), event(id, "COMPLETED", at, 1)])
    yield* stats.tokensUsed({ promptTokens: tokens - 10, completionTokens: 5, chargedTokens: tokens })
    yield* stats.lineFinished("succeeded")
  })

describe("the rate: what the last 60 s held", () => {
  it.scoped(
    "a 4-second run reads what it sent (8% of the limit), not a minute's pace (126%); the report says the same",
    () =>
      Effect.gen(function* () {
        const stats = yield* RunStats.make({ rpm: 600, tpm: 60_000 })
        const series = yield* RunSeries.make(stats)
        // A start as the limiter paces it: 2% of the allowance at once (1,200 tokens), then 96% of the limit's
        // rate (960 tokens a second) for 4 s.
        yield* lineDone(series.stats, 1_200)
        for (let second = 1; second <= 4; second++) {
          yield* TestClock.adjust("1 second")
          yield* lineDone(series.stats, 960)
        }
        const live = yield* series.stats.snapshot
        // 5,040 tokens in 4 s: scaled up to a minute that is 75,600 (126% of 60,000), though no window held more
        // than 8.4% of the limit.
        expect(live.tokensPerMinute).toBe(5_040)
        expect(live.requestsPerMinute).toBe(5)
        expect(View.progressLine(live)).toContain("5/600 req, 5.0k/60k tok in the last 60 s")
        // The report: its chart and its figures are the same numbers.
        const recorded = yield* series.finish
        expect(recorded.series.tokensPerMinute.at(-1)).toBe(5_040)
        expect(recorded.totals.busiestTokensPerMinute).toBe(5_040)
        expect(recorded.totals.busiestRequestsPerMinute).toBe(5)
        // And the demo's report, from the same progress.
        const summary = { elapsedMillis: live.elapsedMillis, promptTokens: 0, completionTokens: 0 } as Runner.Summary
        const report = DemoReport.render({
          summary,
          results: [],
          counters: [{ total: 5, served: 5, rateLimited: 0, faults: {} }] as never,
          progress: live,
          transitions: [],
          limits: { rpm: 600, tpm: 60_000 },
          startedAt: 0
        })
        expect(report.tpm).toBe(5_040)
        expect(report.lines.join("\n")).toContain("5,040 / 60,000 (8%)")
      })
  )

  it.effect("past a minute, the busiest minute is the most the window held; the live line shows the last", () =>
    Effect.gen(function* () {
      const stats = yield* RunStats.make({ rpm: 600 })
      // 10 requests a second for 90 s, then 2 a second for 60 s.
      for (let second = 0; second < 150; second++) {
        if (second > 0) yield* TestClock.adjust("1 second")
        for (let request = 0; request < (second < 90 ? 10 : 2); request++) yield* lineDone(stats, 10)
      }
      // At 149 s: seconds 90 to 149.
      const progress = yield* stats.snapshot
      expect(progress.requestsPerMinute).toBe(2 * 60)
      expect(progress.busiestRequestsPerMinute).toBe(600)
    })
  )
})

describe("in flight: requests being sent", () => {
  it.effect("16 being sent and 16 queued or waiting for admission read 16 in flight, 16 queued", () =>
    Effect.gen(function* () {
      const stats = yield* RunStats.make()
      const events: Array<RequestEvent.RequestEvent> = []
      for (let i = 0; i < 32; i++) {
        const id = ++nextRequest
        events.push(event(id, "PENDING", 0, 0))
        if (i < 16) events.push(event(id, "CALLING", 0, 1))
        else events.push(event(id, i % 2 === 0 ? "QUEUED" : "PROCESSING", 0, 0))
      }
      yield* stats.requestEvents(events)
      const progress = yield* stats.snapshot
      expect(progress).toMatchObject({ inFlight: 16, waiting: 16, requests: 16 })
      expect(View.progressLine(progress)).toContain("16 in flight · 16 queued")
    })
  )
})

describe("the breaker and the outage on the live line", () => {
  it.effect("an open breaker and a provider down for 12 s with 40 lines waiting show; closed again, they go", () =>
    Effect.gen(function* () {
      const stats = yield* RunStats.make()
      yield* stats.setBreaker("OPEN")
      yield* stats.setOutage({ since: 0, waiting: 40, lastFailure: "server error (503)" })
      yield* TestClock.adjust("12 seconds")
      const down = View.progressLine(yield* stats.snapshot)
      expect(down).toContain("breaker open")
      expect(down).toContain("provider down 12s, 40 lines waiting")
      yield* stats.setBreaker("HALF_OPEN")
      expect(View.progressLine(yield* stats.snapshot)).toContain("breaker half-open (probing)")
      yield* stats.setBreaker("CLOSED")
      yield* stats.setOutage(undefined)
      const up = View.progressLine(yield* stats.snapshot)
      expect(up).not.toContain("breaker")
      expect(up).not.toContain("provider down")
    })
  )
})

describe("the ETA by the binding limit", () => {
  const base = {
    remainingLines: 600,
    requests: 100,
    retries: 0,
    chargedTokens: 100_000,
    linesCharged: 100,
    limits: { rpm: 600, tpm: 60_000 },
    linesInLastMinute: 100,
    elapsedMillis: 30_000
  }

  it("the tokens bind: 600 lines of 1,000 tokens at 60,000 a minute take 10 minutes, whatever the early pace", () => {
    // By requests it would be 1 minute; by the first 30 s's pace (100 lines), 3 minutes.
    expect(etaMillis(base)).toBe(10 * 60_000)
    // The first line went alone while the limits were learned: a slow start changes nothing.
    expect(etaMillis({ ...base, linesInLastMinute: 1 })).toBe(10 * 60_000)
  })

  it("the requests bind when lines are small, retries included: 2 attempts a request at 600 a minute", () => {
    expect(etaMillis({ ...base, chargedTokens: 1_000, requests: 200, retries: 100 })).toBe(2 * 60_000)
    // Before any answer, a request a line: the requests limit alone.
    expect(etaMillis({ ...base, requests: 0, chargedTokens: 0, linesCharged: 0, linesInLastMinute: 0 })).toBe(60_000)
  })

  it("past a full minute, a pace slower than the limits binds (latency, concurrency); none at all: unknown", () => {
    expect(etaMillis({ ...base, elapsedMillis: 90_000, linesInLastMinute: 30 })).toBe(20 * 60_000)
    expect(etaMillis({ ...base, elapsedMillis: 90_000, linesInLastMinute: 300 })).toBe(10 * 60_000)
    expect(etaMillis({ ...base, elapsedMillis: 90_000, linesInLastMinute: 0 })).toBeUndefined()
  })

  it("with no limit known, the pace so far; with nothing left, 0; with no total yet, unknown", () => {
    expect(etaMillis({ ...base, limits: {} })).toBe(3 * 60_000)
    expect(etaMillis({ ...base, remainingLines: 0 })).toBe(0)
    expect(etaMillis({ ...base, remainingLines: undefined })).toBeUndefined()
  })
})
