/**
 * RunStats' counters: plain mutable numbers behind `Effect.sync` (every
 * update is one synchronous step, so fibers cannot interleave inside one),
 * with time read from `Clock`.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as RunStats from "../RunStats.js"
import * as RateWindow from "./rateWindow.js"

export const make = (initialLimits: RunStats.Limits = {}): Effect.Effect<RunStats.RunStatsShape> =>
  Effect.gen(function* () {
    let limits = initialLimits
    const clock = yield* Effect.clock
    const start = clock.unsafeCurrentTimeMillis()
    const requestWindow = RateWindow.make(start)
    const tokenWindow = RateWindow.make(start)
    /** Lines finished by this run's own sends: the pace the ETA goes by. */
    const lineWindow = RateWindow.make(start)
    const counts = {
      total: undefined as number | undefined,
      succeeded: 0,
      failed: 0,
      skipped: 0,
      malformed: 0,
      inFlight: 0,
      requests: 0,
      rateLimited: 0,
      retries: 0,
      promptTokens: 0,
      completionTokens: 0
    }
    const now = () => clock.unsafeCurrentTimeMillis()
    return {
      requestSent: Effect.sync(() => {
        counts.requests++
        requestWindow.add(now(), 1)
      }),
      rateLimited: Effect.sync(() => {
        counts.rateLimited++
      }),
      retried: Effect.sync(() => {
        counts.retries++
      }),
      tokensUsed: (usage) =>
        Effect.sync(() => {
          counts.promptTokens += usage.promptTokens
          counts.completionTokens += usage.completionTokens
          tokenWindow.add(now(), usage.chargedTokens ?? usage.promptTokens + usage.completionTokens)
        }),
      lineStarted: Effect.sync(() => {
        counts.inFlight++
      }),
      lineFinished: (outcome) =>
        Effect.sync(() => {
          counts.inFlight--
          if (outcome === "abandoned") return
          counts[outcome]++
          lineWindow.add(now(), 1)
        }),
      lineSettled: (outcome) =>
        Effect.sync(() => {
          counts[outcome]++
        }),
      setTotal: (total) =>
        Effect.sync(() => {
          counts.total = total
        }),
      setLimits: (next) =>
        Effect.sync(() => {
          limits = next
        }),
      snapshot: Effect.map(Clock.currentTimeMillis, (time): RunStats.Progress => {
        const done = counts.succeeded + counts.failed + counts.skipped + counts.malformed
        const pace = lineWindow.perMinute(time)
        const remaining = counts.total === undefined ? undefined : Math.max(0, counts.total - done)
        return {
          total: counts.total,
          done,
          succeeded: counts.succeeded,
          failed: counts.failed,
          skipped: counts.skipped,
          malformed: counts.malformed,
          inFlight: counts.inFlight,
          requests: counts.requests,
          rateLimited: counts.rateLimited,
          retries: counts.retries,
          promptTokens: counts.promptTokens,
          completionTokens: counts.completionTokens,
          requestsPerMinute: requestWindow.inLastMinute(time),
          tokensPerMinute: tokenWindow.inLastMinute(time),
          limits,
          elapsedMillis: time - start,
          etaMillis:
            remaining === undefined
              ? undefined
              : remaining === 0
                ? 0
                : pace > 0
                  ? (remaining / pace) * 60_000
                  : undefined
        }
      })
    } satisfies RunStats.RunStatsShape
  })
