/**
 * Small and learned limits, in virtual time: the sender over an in-memory server that counts requests over
 * a sliding window as the MockProvider does (a log of admitted requests; a request over the limit is
 * refused 429 with `retry-after-ms`; every answer reports `x-ratelimit-*` with OpenAI's meaning of the
 * reset, the time until the window is empty, and the window in `RateLimit-Policy`), answering after a
 * latency of 0 to 150 ms that varies from request to request.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as TestHttpClient from "@sluice/testing/TestHttpClient"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as HttpSend from "../src/HttpSend.js"
import type * as Runner from "../src/Runner.js"
import * as RunStats from "../src/RunStats.js"
import { CHAT_ANSWER } from "./utils/answers.js"

/** Virtual time, but a few thousand real steps of the whole stack: room for a machine running two suites at once. */
const BUSY_MACHINE_TIMEOUT = 180_000

const line = (n: number): Runner.BatchLine => ({
  customId: `line-${n}`,
  method: "POST",
  url: "/v1/chat/completions",
  body: { model: "m", messages: [{ role: "user", content: `line ${n}` }], max_tokens: 8 },
  lineNumber: n
})

/** The in-memory server: `limit` requests per `windowMillis`, over a sliding window. */
const slidingWindowServer = (limit: number, windowMillis: number) => {
  const window: Array<number> = []
  const served: Array<{ readonly at: number; readonly line: number }> = []
  let refused = 0
  let requests = 0
  const handler: TestHttpClient.Handler = (request) =>
    Effect.gen(function* () {
      // 0 to 150 ms, a different latency for each request (a fixed sequence: every run sees the same).
      yield* Effect.sleep(((requests++ * 37) % 16) * 10)
      const now = yield* Clock.currentTimeMillis
      while (window.length > 0 && window[0]! <= now - windowMillis) window.shift()
      if (window.length >= limit) {
        refused++
        return {
          status: 429,
          headers: { "retry-after-ms": String(window[0]! + windowMillis - now) },
          body: { error: { message: "Rate limit reached for requests", type: "requests" } }
        }
      }
      window.push(now)
      const content = (request.body as { messages: Array<{ content: string }> }).messages[0]!.content
      served.push({ at: now, line: Number(content.split(" ")[1]) })
      return {
        status: 200,
        headers: {
          "x-ratelimit-limit-requests": String(limit),
          "x-ratelimit-remaining-requests": String(limit - window.length),
          // OpenAI's reset: until the limit is back to its initial state (the window empty).
          "x-ratelimit-reset-requests": MockProvider.formatResetDuration(
            window[window.length - 1]! + windowMillis - now
          ),
          "ratelimit-policy": `"requests";q=${limit};w=${windowMillis / 1000}`
        },
        body: CHAT_ANSWER
      }
    })
  return { handler, served, refused: () => refused }
}

/** The sender over `server`, as `sluice run` builds it (16 lines at a time by default). */
const sender = (server: ReturnType<typeof slidingWindowServer>, options: Omit<HttpSend.Options, "baseUrl">) =>
  Effect.gen(function* () {
    const stats = yield* RunStats.make()
    return yield* HttpSend.make({ baseUrl: "https://api.example.com/v1", ...options }).pipe(
      Effect.provideService(RunStats.RunStats, stats),
      Effect.provideService(HttpClient.HttpClient, TestHttpClient.make(server.handler))
    )
  })

/** Sends lines 1 to `lines`, 16 at a time in input order (as the runner does); answers when the last ended (to the step). */
const sendAll = (send: HttpSend.Sender, lines: number, step: Duration.DurationInput = "100 millis") =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const fiber = yield* Effect.fork(
      Effect.forEach(
        Array.from({ length: lines }, (_, i) => i + 1),
        (n) => send(line(n)),
        { concurrency: 16 }
      )
    )
    // Virtual time, a step (100 ms) at a time, for at most an hour of it. (A fiber woken by a timer may take its next
    // steps at a later timer's time within the step: the sends run up to a few tens of ms late, as on a busy
    // machine.)
    const end = start + 3_600_000
    while (fiber.unsafePoll() === null && (yield* Clock.currentTimeMillis) < end) yield* TestClock.adjust(step)
    const results = yield* Fiber.join(fiber)
    return { elapsedMillis: (yield* Clock.currentTimeMillis) - start, results }
  })

describe("small limits", () => {
  it.scoped(
    "3 requests a minute: 7 lines in about 2 minutes (one every 20.4 s), none refused",
    () =>
      Effect.gen(function* () {
        const server = slidingWindowServer(3, 60_000)
        const send = yield* sender(server, { rpm: 3, learnLimits: false })
        const { elapsedMillis, results } = yield* sendAll(send, 7, "1 second")
        expect(results.map((result) => result.attempts)).toEqual([1, 1, 1, 1, 1, 1, 1])
        expect(server.refused()).toBe(0)
        // Three a window, each window 2% (1.2 s) longer than the server's: the last goes at 122.4 s, not at
        // 180 s (a bound of ⌊3 × 0.98⌋ = 2 a minute), nor a window later (waiting for the window to empty).
        expect(server.served.map((entry) => entry.line)).toEqual([1, 2, 3, 4, 5, 6, 7])
        expect(elapsedMillis).toBeGreaterThanOrEqual(122_400)
        expect(elapsedMillis).toBeLessThanOrEqual(124_000)
      }),
    BUSY_MACHINE_TIMEOUT
  )

  it.scoped(
    "10 requests per 5 s: 60 lines in about 30 s, none refused",
    () =>
      Effect.gen(function* () {
        const server = slidingWindowServer(10, 5_000)
        const send = yield* sender(server, { rpm: 10, window: "5 seconds", learnLimits: false })
        const { elapsedMillis } = yield* sendAll(send, 60)
        expect(server.served).toHaveLength(60)
        expect(server.refused()).toBe(0)
        // Ten per 5.1 s: the sixtieth goes at 5 × 5.1 + 4.5 = 30 s on time (32 s with the late steps above). A
        // server that reports its window full (remaining 0, reset when it is empty) holds the run only until
        // the oldest request has left its window, not until the window is empty (55 s).
        expect(elapsedMillis).toBeLessThanOrEqual(33_000)
      }),
    BUSY_MACHINE_TIMEOUT
  )

  it.scoped(
    "learned from the first answer's headers: the lines that waited for it go in input order",
    () =>
      Effect.gen(function* () {
        const server = slidingWindowServer(10, 5_000)
        const send = yield* sender(server, {})
        const { elapsedMillis } = yield* sendAll(send, 40)
        expect(server.refused()).toBe(0)
        // Line 1 alone; lines 2 to 16 wait for its answer, then go first come, first served: 2, 3, ... 16, 17.
        expect(server.served.map((entry) => entry.line)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
        expect(elapsedMillis).toBeLessThanOrEqual(22_000)
      }),
    BUSY_MACHINE_TIMEOUT
  )
})
