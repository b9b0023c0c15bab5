/**
 * The report's time series under TestClock: one sample a second, what each
 * interval saw (requests, retries, faults, 429s, latency, tokens), what was
 * waiting and being sent, requests per executor, the breaker's transitions;
 * and the page rendered from them (self-contained, the data embedded).
 */
import { describe, expect, it } from "@effect/vitest"
import type { CircuitBreaker, RequestEvent } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import * as ReportPage from "../src/internal/reportPage.js"
import * as RunSeries from "../src/internal/runSeries.js"
import * as RunStats from "../src/RunStats.js"

const event = (
  fields: Partial<RequestEvent.RequestEvent> & Pick<RequestEvent.RequestEvent, "id" | "status">
): RequestEvent.RequestEvent => ({
  executor: "a",
  key: "default",
  priority: 0,
  cost: undefined,
  timestamps: {},
  attempts: 0,
  ...fields
})

describe("RunSeries", () => {
  it.scoped("samples every second what each interval saw", () =>
    Effect.gen(function* () {
      const stats = yield* RunStats.make({ rpm: 600, tpm: 60_000 })
      const series = yield* RunSeries.make(stats)
      const transitions = yield* Queue.unbounded<CircuitBreaker.Transition>()
      yield* series.watchBreaker({ subscribe: Effect.succeed(transitions) })
      yield* TestClock.adjust(0)

      // Second 0-1: request 1 sent twice (a 503, then success), request 2 waits, request 3 on executor b is sent.
      yield* series.stats.requestEvents([
        event({ id: 1, status: "CALLING", attempts: 1 }),
        event({ id: 2, status: "QUEUED" }),
        event({ id: 3, executor: "b", status: "CALLING", attempts: 1 }),
        event({
          id: 1,
          status: "COMPLETED",
          attempts: 2,
          attemptLog: [
            { attempt: 1, startedAt: 0, endedAt: 100, outcome: "failure", error: { reason: "ServerError" } },
            { attempt: 2, startedAt: 200, endedAt: 500, outcome: "success" }
          ]
        })
      ])
      yield* series.stats.rateLimited
      yield* series.stats.tokensUsed({ promptTokens: 10, completionTokens: 5, chargedTokens: 40 })
      yield* series.stats.lineFinished("succeeded")
      yield* Queue.offer(transitions, {
        breaker: "provider",
        key: "default",
        from: "CLOSED",
        to: "OPEN",
        at: 700,
        reason: "Tripped"
      } as CircuitBreaker.Transition)
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")

      const recorded = yield* series.finish
      const s = recorded.series
      expect(s.t).toEqual([0, 1, 2, 2])
      expect(s.requests).toEqual([0, 3, 0, 0])
      expect(s.retries).toEqual([0, 1, 0, 0])
      expect(s.rateLimited).toEqual([0, 1, 0, 0])
      expect(s.faults).toEqual([0, 1, 0, 0])
      expect(s.tokens).toEqual([0, 40, 0, 0])
      expect(s.p50).toEqual([null, 100, null, null])
      expect(s.p99).toEqual([null, 300, null, null])
      expect(s.waiting).toEqual([0, 1, 1, 1])
      expect(s.sending).toEqual([0, 1, 1, 1])
      expect(s.succeeded).toEqual([0, 1, 1, 1])
      expect(s.rpmLimit).toEqual([600, 600, 600, 600])
      expect(s.requestsBy).toEqual({ a: [0, 2, 0, 0], b: [0, 1, 0, 0] })
      expect(s.breakers).toEqual({ provider: [0, 2, 2, 2] })
      expect(recorded.transitions).toEqual([{ breaker: "provider", from: "CLOSED", to: "OPEN", at: 0.7 }])
      expect(recorded.totals).toMatchObject({
        requests: 3,
        retries: 1,
        rateLimited: 1,
        faultsByKind: { ServerError: 1 },
        succeeded: 1,
        elapsedMillis: 2000
      })

      const page = ReportPage.render(
        recorded,
        { title: "sluice run", details: [["input", "<in>.jsonl"]] },
        { script: "window.uPlot = function () {} /* </script> */", stylesheet: ".u{}" }
      )
      expect(page).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!github)/)
      expect(page).toContain("&lt;in&gt;.jsonl")
      // The inlined script cannot end its element early.
      expect(page).toContain("/* <\\/script> */")
      const data = JSON.parse(page.match(/<script id="sluice-data" type="application\/json">(.*?)<\/script>/s)![1]!)
      expect(data.series.requests).toEqual([0, 3, 0, 0])
    })
  )
})
