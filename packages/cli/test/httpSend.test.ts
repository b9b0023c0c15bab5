import * as HttpClient from "@effect/platform/HttpClient"
import { describe, expect, it } from "@effect/vitest"
import type { RequestEvent } from "@sluice/core"
import * as NodeHttpPool from "@sluice/http-node/NodeHttpPool"
import * as MockProvider from "@sluice/testing/MockProvider"
import { awaitEvent, eventually } from "@sluice/testing/TestEvents"
import * as TestHttpClient from "@sluice/testing/TestHttpClient"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberStatus from "effect/FiberStatus"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import * as HttpSend from "../src/HttpSend.js"
import * as internal from "../src/internal/httpSend.js"
import type * as Runner from "../src/Runner.js"
import * as RunStats from "../src/RunStats.js"
import { CHAT_ANSWER } from "./utils/answers.js"

/**
 * Lets real I/O happen: a little real time, and virtual time moved by a second, until `fiber` ends
 * (bounded in real time, failing with a message).
 */
const untilDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.gen(function* () {
    yield* eventually(
      "the sends end (moving the TestClock a second at a time)",
      Effect.gen(function* () {
        if (fiber.unsafePoll() !== null) return true
        yield* TestServices.provideLive(Effect.sleep("2 millis"))
        yield* TestClock.adjust("1 second")
        return fiber.unsafePoll() !== null
      })
    )
    return yield* Fiber.join(fiber)
  })

const line = (
  id: string,
  lineNumber: number,
  body: unknown = { model: "mock-1", messages: [{ role: "user", content: `hi ${id}` }], max_tokens: 8 }
): Runner.BatchLine => ({
  customId: id,
  method: "POST",
  url: "/v1/chat/completions",
  body,
  lineNumber
})

const setup = (provider: MockProvider.Options, send: Omit<HttpSend.Options, "baseUrl">) =>
  Effect.gen(function* () {
    const mock = yield* MockProvider.make(provider)
    const stats = yield* RunStats.make()
    const context = yield* Layer.build(NodeHttpPool.layer())
    const sendLine = yield* HttpSend.make({ baseUrl: mock.baseUrl, ...send }).pipe(
      Effect.provideService(RunStats.RunStats, stats),
      Effect.provide(context)
    )
    return { mock, stats, send: sendLine }
  })

describe("HttpSend", () => {
  it.scoped("counts each line's attempts, and feeds requests, 429s and retries to RunStats", () =>
    Effect.gen(function* () {
      const { mock, send, stats } = yield* setup(
        { rpm: 1, apiKeys: ["sk-unit"] },
        { apiKey: Redacted.make("sk-unit"), learnLimits: false }
      )
      const fiber = yield* Effect.fork(Effect.all([send(line("a", 1)), send(line("b", 2))], { concurrency: 2 }))
      const [first, second] = yield* untilDone(fiber)
      expect([first.attempts, second.attempts].sort()).toEqual([1, 2])
      expect(first.response).toMatchObject({ object: "chat.completion" })
      expect(first.usage).toEqual({
        promptTokens: expect.any(Number),
        completionTokens: expect.any(Number),
        chargedTokens: first.usage!.promptTokens + 8
      })
      const counters = yield* mock.counters
      expect(counters).toMatchObject({ total: 3, served: 2, rateLimited: 1 })
      expect(yield* stats.snapshot).toMatchObject({ requests: 3, rateLimited: 1, retries: 1 })
    })
  )

  it.scoped("learns the server's limits from the first answer: the next line waits out the window, no 429", () =>
    Effect.gen(function* () {
      const { mock, send, stats } = yield* setup({ rpm: 1, tpm: 10_000 }, {})
      const fiber = yield* Effect.fork(Effect.all([send(line("a", 1)), send(line("b", 2))], { concurrency: 2 }))
      const [first, second] = yield* untilDone(fiber)
      expect([first.attempts, second.attempts]).toEqual([1, 1])
      expect(yield* mock.counters).toMatchObject({ total: 2, served: 2, rateLimited: 0 })
      // The first answer said "1 a minute, 0 remaining": the second went when the window let it.
      const [early, late] = yield* mock.log
      expect(late!.time - early!.time).toBeGreaterThanOrEqual(60_000)
      expect((yield* stats.snapshot).limits).toEqual({ rpm: 1, tpm: 10_000 })
    })
  )

  it.scoped("goes by the tighter of the flags and the server, the server's window included", () =>
    Effect.gen(function* () {
      const { mock, send, stats } = yield* setup(
        { rpm: 2, tpm: 1_000_000, window: "10 seconds" },
        { rpm: 1_000, tpm: 600 }
      )
      // The flags' limits until the first answer; then 2 per 10 s (12 a minute) and the flags' 600 tokens.
      expect((yield* stats.snapshot).limits).toEqual({ rpm: 1_000, tpm: 600 })
      const fiber = yield* Effect.fork(
        Effect.all(
          ["a", "b", "c", "d"].map((id, i) => send(line(id, i + 1))),
          { concurrency: 4 }
        )
      )
      const results = yield* untilDone(fiber)
      expect(results.map((result) => result.attempts)).toEqual([1, 1, 1, 1])
      expect((yield* stats.snapshot).limits).toEqual({ rpm: 12, tpm: 600 })
      expect(yield* mock.counters).toMatchObject({ served: 4, rateLimited: 0 })
      const times = (yield* mock.log).map((entry) => entry.time)
      // No 10 s window of the server's held more than 2.
      for (const time of times) {
        expect(times.filter((other) => other >= time && other < time + 10_000).length).toBeLessThanOrEqual(2)
      }
    })
  )

  it.scoped("a first answer that does not come holds the other lines back only for learnWait", () =>
    Effect.gen(function* () {
      const { mock, send, stats } = yield* setup(
        { rpm: 100, faults: { hang: 1 } },
        { learnWait: "5 seconds", timeout: "1 minute", maxAttempts: 1 }
      )
      const start = yield* Clock.currentTimeMillis
      const probe = yield* Effect.fork(Effect.either(send(line("a", 1))))
      yield* awaitEvent("the first line reaches the server", mock.awaitRequests(1))
      yield* mock.setFaults({})
      const next = yield* Effect.fork(send(line("b", 2)))
      // The event: the second line is parked (its fiber suspended) while the wait for the first answer sleeps
      // until start + learnWait. A second line that went anyway would show as a second request sent.
      const heldBack = (what: string) =>
        eventually(
          what,
          Effect.gen(function* () {
            if ((yield* stats.snapshot).requests > 1) return true
            const parked = FiberStatus.isSuspended(yield* Fiber.status(next))
            const waiting = Chunk.toReadonlyArray(yield* TestClock.sleeps()).includes(start + 5_000)
            return parked && waiting
          })
        )
      yield* heldBack("the second line waits for the first answer")
      expect((yield* stats.snapshot).requests).toBe(1)
      expect((yield* mock.counters).total).toBe(1)
      yield* TestClock.adjust("4 seconds")
      yield* heldBack("the second line still waits, 4 s on")
      expect((yield* stats.snapshot).requests).toBe(1)
      expect((yield* mock.counters).total).toBe(1)
      const answered = yield* untilDone(next)
      expect(answered.attempts).toBe(1)
      // The hanging first line is still the first line's own business: it times out on its own.
      expect(probe.unsafePoll()).toBe(null)
      const hung = yield* untilDone(probe)
      expect(hung._tag).toBe("Left")
    })
  )

  it.scoped("an answer that reports no limit (a proxy's 502) teaches nothing: the first line's retry does", () =>
    Effect.gen(function* () {
      const sent: Array<{ readonly at: number; readonly content: string }> = []
      const answer = CHAT_ANSWER
      const stats = yield* RunStats.make()
      const send = yield* HttpSend.make({ baseUrl: "http://127.0.0.1:9/v1", maxAttempts: 3 }).pipe(
        Effect.provideService(RunStats.RunStats, stats),
        Effect.provideService(
          HttpClient.HttpClient,
          TestHttpClient.make((request) =>
            Effect.map(TestClock.currentTimeMillis, (at) => {
              sent.push({ at, content: JSON.stringify(request.body) })
              return sent.length === 1
                ? { status: 502, body: "<html>Bad Gateway</html>" }
                : {
                    status: 200,
                    headers: {
                      "x-ratelimit-limit-requests": "1",
                      "x-ratelimit-remaining-requests": "0",
                      "x-ratelimit-reset-requests": "1m0s"
                    },
                    body: answer
                  }
            })
          )
        )
      )
      const fiber = yield* Effect.fork(Effect.all([send(line("a", 1)), send(line("b", 2))], { concurrency: 2 }))
      const results = yield* untilDone(fiber)
      expect(results.map((result) => result.attempts)).toEqual([2, 1])
      // The 502 and its retry were line a's; line b waited out the minute the retry's answer reported.
      expect(sent).toHaveLength(3)
      expect(sent[2]!.content).toContain("hi b")
      expect(sent[2]!.at - sent[1]!.at).toBeGreaterThanOrEqual(60_000)
      expect((yield* stats.snapshot).limits).toMatchObject({ rpm: 1 })
    })
  )

  it.scoped(
    "RunStats counts a retried line from the client's events: two attempts, one retry, waiting between them, nothing left",
    () =>
      Effect.gen(function* () {
        let calls = 0
        const stats = yield* RunStats.make()
        const send = yield* HttpSend.make({
          baseUrl: "http://127.0.0.1:9/v1",
          maxAttempts: 3,
          learnLimits: false
        }).pipe(
          Effect.provideService(RunStats.RunStats, stats),
          Effect.provideService(
            HttpClient.HttpClient,
            TestHttpClient.make(() =>
              ++calls === 1 ? { status: 503, body: "busy" } : { status: 200, body: CHAT_ANSWER }
            )
          )
        )
        const fiber = yield* Effect.fork(send(line("a", 1)))
        // While it waits out its retry's delay, it is the one request waiting (none is being sent), with its
        // first attempt made.
        yield* eventually(
          "the first attempt was answered 503",
          Effect.map(stats.snapshot, (progress) => progress.requests === 1 && progress.inFlight === 0)
        )
        expect(yield* stats.snapshot).toMatchObject({ inFlight: 0, waiting: 1, requests: 1, retries: 0 })
        const result = yield* untilDone(fiber)
        expect(result.attempts).toBe(2)
        expect(calls).toBe(2)
        expect(yield* stats.snapshot).toMatchObject({ inFlight: 0, requests: 2, retries: 1, rateLimited: 0 })
      })
  )

  it.effect("refuses a burst and a headroom that leave nothing to refill, naming both", () =>
    Effect.gen(function* () {
      const stats = yield* RunStats.make()
      const exit = yield* Effect.exit(
        Effect.scoped(
          HttpSend.make({ baseUrl: "http://127.0.0.1:9/v1", tpm: 90_000, burst: 0.5, headroom: 0.5 }).pipe(
            Effect.provideService(RunStats.RunStats, stats),
            Effect.provideService(
              HttpClient.HttpClient,
              TestHttpClient.make(() => ({ status: 200, body: {} }))
            )
          )
        )
      )
      expect(exit._tag).toBe("Failure")
      const message = exit._tag === "Failure" ? String(Cause.squash(exit.cause)) : ""
      expect(message).toContain('["burst"] and ["headroom"]')
      expect(message).toContain("actual 0.5 and 0.5")
    })
  )

  it.scoped("a final failure is a RunError SendFailed with the error's kind and the attempts made", () =>
    Effect.gen(function* () {
      const { send, stats } = yield* setup({ faults: { serviceUnavailable503: 1 } }, { maxAttempts: 3 })
      const fiber = yield* Effect.fork(Effect.flip(send(line("a", 1))))
      const failure = yield* untilDone(fiber)
      // The Model's verdict on a 503: the provider is unavailable.
      expect(failure).toMatchObject({
        _tag: "RunError",
        reason: "SendFailed",
        errorKind: "ProviderUnavailable",
        attempts: 3
      })
      expect(failure.message).toContain("ProviderUnavailable after 3 attempts")
      expect(yield* stats.snapshot).toMatchObject({ requests: 3, retries: 2, rateLimited: 0 })
    })
  )

  it.scoped("the request leaves as the line says: body, path under the base URL, the key; no private header", () =>
    Effect.gen(function* () {
      const seen: Array<TestHttpClient.TestRequest> = []
      const stats = yield* RunStats.make()
      const send = yield* HttpSend.make({ baseUrl: "http://127.0.0.1:9/v1", apiKey: Redacted.make("sk-unit") }).pipe(
        Effect.provideService(RunStats.RunStats, stats),
        Effect.provideService(
          HttpClient.HttpClient,
          TestHttpClient.make((request) => {
            seen.push(request)
            return { status: 200, body: answer }
          })
        )
      )
      const answer = CHAT_ANSWER
      const body = { model: "m", messages: [{ role: "user", content: "hi" }] }
      const result = yield* send(line("a", 1, body))
      expect(result).toMatchObject({ response: answer, attempts: 1, usage: { promptTokens: 4, completionTokens: 2 } })
      expect(seen).toHaveLength(1)
      expect(seen[0]!.method).toBe("POST")
      expect(seen[0]!.url.pathname).toBe("/v1/chat/completions")
      expect(seen[0]!.body).toEqual(body)
      expect(seen[0]!.headers.authorization).toBe("Bearer sk-unit")
      expect(Object.keys(seen[0]!.headers).filter((name) => name.startsWith("x-sluice"))).toEqual([])
    })
  )

  it("what the provider counted, per endpoint, when the output is charged at its maximum", () => {
    const answer = { usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 } }
    const chat = { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 100 }
    const chatLine = (body: unknown) => ({ url: "/v1/chat/completions", body })
    expect(internal.usageOf(chatLine(chat), answer, "maximum")).toEqual({
      promptTokens: 12,
      completionTokens: 5,
      chargedTokens: 112
    })
    expect(internal.usageOf(chatLine(chat), answer, "used")).toEqual({ promptTokens: 12, completionTokens: 5 })
    // n choices, each up to max_tokens.
    expect(internal.usageOf(chatLine({ ...chat, n: 3 }), answer, "maximum")).toMatchObject({ chargedTokens: 312 })
    // No maximum asked for: what was used.
    expect(internal.usageOf(chatLine({ ...chat, max_tokens: undefined }), answer, "maximum")).toEqual({
      promptTokens: 12,
      completionTokens: 5
    })
    // Completions: max_tokens (16 unless named) for each choice of each prompt.
    const completions = (body: unknown) => ({ url: "/v1/completions", body })
    expect(internal.usageOf(completions({ model: "m", prompt: "x" }), answer, "maximum")).toMatchObject({
      chargedTokens: 12 + 16
    })
    expect(
      internal.usageOf(completions({ model: "m", prompt: ["x", "y"], max_tokens: 9, n: 2 }), answer, "maximum")
    ).toMatchObject({ chargedTokens: 12 + 9 * 2 * 2 })
    // Embeddings have no output, whatever the answer says.
    expect(internal.usageOf({ url: "/v1/embeddings", body: { model: "m", input: "x" } }, answer, "maximum")).toEqual({
      promptTokens: 12,
      completionTokens: 0
    })
    expect(internal.usageOf(chatLine(chat), { usage: "none" }, "maximum")).toBeUndefined()
  })

  it.scoped("a body the Model cannot take fails its line as InvalidRequest, sent nowhere, naming where, not what", () =>
    Effect.gen(function* () {
      const { mock, send, stats } = yield* setup({}, { learnLimits: false, maxAttempts: 3 })
      const secret = "sk-in-the-body-0123456789"
      const fiber = yield* Effect.fork(Effect.flip(send(line("bad", 1, { model: "mock-1", messages: secret }))))
      const failure = yield* untilDone(fiber)
      expect(failure).toMatchObject({
        _tag: "RunError",
        reason: "SendFailed",
        errorKind: "InvalidRequest",
        label: "invalid request body",
        retryable: false
      })
      expect(failure.detail).toContain(`["messages"]`)
      expect(JSON.stringify(failure)).not.toContain(secret)
      expect(yield* mock.log).toEqual([])
      expect(yield* stats.snapshot).toMatchObject({ requests: 0, retries: 0 })
    })
  )

  it.scoped("each endpoint's line through the Model against the MockProvider: its answer, status and request id", () =>
    Effect.gen(function* () {
      const { mock, send } = yield* setup({ tpm: 100_000 }, { learnLimits: false, tpm: 100_000 })
      const lines: Array<Runner.BatchLine> = [
        line("chat", 1),
        {
          customId: "embed",
          method: "POST",
          url: "/v1/embeddings",
          body: { model: "mock-embedding", input: ["a", "b"] },
          lineNumber: 2
        },
        {
          customId: "complete",
          method: "POST",
          url: "/v1/completions",
          body: { model: "mock-1", prompt: "Once upon a time", max_tokens: 5 },
          lineNumber: 3
        }
      ]
      const fiber = yield* Effect.fork(Effect.all(lines.map(send), { concurrency: 1 }))
      const [chat, embed, complete] = yield* untilDone(fiber)
      for (const result of [chat!, embed!, complete!]) {
        expect(result.statusCode).toBe(200)
        expect(result.requestId).toMatch(/^req_mock_/)
      }
      expect(chat!.response).toMatchObject({ object: "chat.completion" })
      expect(embed!.response).toMatchObject({ object: "list", data: [{ index: 0 }, { index: 1 }] })
      expect(embed!.usage).toEqual({ promptTokens: 2, completionTokens: 0 })
      expect(complete!.response).toMatchObject({ object: "text_completion", choices: [{ index: 0 }] })
      const log = yield* mock.log
      expect(log.map((entry) => entry.path)).toEqual(["/v1/chat/completions", "/v1/embeddings", "/v1/completions"])
      // What the server charged the completion (its prompt and max_tokens) is what the run reconciles to.
      expect(complete!.usage!.chargedTokens).toBe(log[2]!.chargedTokens)
    })
  )
})

let nextRequest = 0

/** The events of one request: `attempts` calls, each after a wait in its lane, then its end. */
const requestEvents = (
  at: number,
  attempts = 1,
  end: RequestEvent.RequestStatus = "COMPLETED"
): Array<RequestEvent.RequestEvent> => {
  const base = { id: ++nextRequest, executor: "test", key: "default", priority: 0, cost: { tokens: 10 } }
  const events: Array<RequestEvent.RequestEvent> = [
    { ...base, status: "PENDING", timestamps: { PENDING: at }, attempts: 0 }
  ]
  for (let attempt = 1; attempt <= attempts; attempt++) {
    events.push({ ...base, status: "PROCESSING", timestamps: { PENDING: at, PROCESSING: at }, attempts: attempt - 1 })
    events.push({ ...base, status: "CALLING", timestamps: { PENDING: at, CALLING: at }, attempts: attempt })
  }
  events.push({ ...base, status: end, timestamps: { PENDING: at, [end]: at }, attempts })
  return events
}

/** One request put on the wire once, as its Executor's events tell it. */
const requestMade = (stats: RunStats.RunStatsShape) =>
  Effect.flatMap(Clock.currentTimeMillis, (at) => stats.requestEvents(requestEvents(at)))

describe("RunStats", () => {
  it.effect("counts requests, retries and requests in flight from the Executor's events, once each", () =>
    Effect.gen(function* () {
      const stats = yield* RunStats.make()
      const retried = requestEvents(0, 2)
      // Up to the second call: one request in flight, two attempts, one of them a retry.
      yield* stats.requestEvents(retried.slice(0, -1))
      expect(yield* stats.snapshot).toMatchObject({ inFlight: 1, requests: 2, retries: 1 })
      // Its end, and the same events again (as two readers might hand them in): nothing counted twice.
      yield* stats.requestEvents(retried)
      expect(yield* stats.snapshot).toMatchObject({ inFlight: 0, requests: 2, retries: 1 })
      // A subscriber that lost a request's earlier events still counts its attempts from its last one.
      const failed = requestEvents(0, 3, "FAILED")
      yield* stats.requestEvents(failed.slice(-1))
      expect(yield* stats.snapshot).toMatchObject({ inFlight: 0, requests: 5, retries: 3 })
      // A request cancelled before it was sent: no request.
      yield* stats.requestEvents(requestEvents(0, 0, "CANCELLED"))
      expect(yield* stats.snapshot).toMatchObject({ inFlight: 0, requests: 5, retries: 3 })
    })
  )

  it.effect(
    "counts over the last minute against the limits (never extrapolated), and an ETA by the binding limit",
    () =>
      Effect.gen(function* () {
        const stats = yield* RunStats.make({ rpm: 600, tpm: 6000 })
        yield* stats.setTotal(100)
        for (let second = 0; second < 30; second++) {
          yield* requestMade(stats)
          yield* stats.tokensUsed({ promptTokens: 7, completionTokens: 3 })
          yield* stats.lineFinished("succeeded")
          yield* TestClock.adjust("1 second")
        }
        yield* stats.lineSettled("skipped")
        yield* stats.lineSettled("malformed")
        const early = yield* stats.snapshot
        expect(early).toMatchObject({
          total: 100,
          done: 32,
          succeeded: 30,
          skipped: 1,
          malformed: 1,
          inFlight: 0,
          requests: 30,
          // 30 s into the run: what the provider's minute window holds so far, not 30 s scaled up to a minute.
          requestsPerMinute: 30,
          tokensPerMinute: 300,
          limits: { rpm: 600, tpm: 6000 },
          elapsedMillis: 30_000
        })
        // 68 lines left of one request and 10 tokens each, at 600 requests and 6,000 tokens a minute: both limits
        // bind alike at 6.8 s. Not the pace of the first 30 s (a line a second: 68 s), which the limits don't set.
        expect(early.etaMillis).toBe(6_800)
        // The count against the token limit is what the provider charged, when the sender says.
        yield* stats.tokensUsed({ promptTokens: 7, completionTokens: 3, chargedTokens: 400 })
        expect((yield* stats.snapshot).tokensPerMinute).toBe(300 + 400)
        // 40 s on (at 70 s), the window holds seconds 11 to 70: what came before has left it.
        for (let second = 0; second < 40; second++) {
          yield* requestMade(stats)
          yield* TestClock.adjust("1 second")
        }
        const later = yield* stats.snapshot
        expect(later.requestsPerMinute).toBe(19 + 40) // seconds 11-29, then 30-69
        expect(later.tokensPerMinute).toBe(19 * 10 + 400)
        yield* TestClock.adjust("2 minutes")
        const idle = yield* stats.snapshot
        expect(idle.requestsPerMinute).toBe(0)
        expect(idle.etaMillis).toBeUndefined()
      })
  )

  describe("with maxOutage", () => {
    it.scoped("a line waits out an outage instead of failing, and succeeds once the provider is back", () =>
      Effect.gen(function* () {
        const { mock, stats, send } = yield* setup(
          { faults: { serviceUnavailable503: 1 } },
          { maxAttempts: 2, learnLimits: false, maxOutage: "10 minutes" }
        )
        const fiber = yield* Effect.fork(send(line("a", 1)))
        // Past its two attempts, still waiting: moved on by the clock until the provider has refused it more.
        yield* eventually(
          "the provider refused the line four times",
          Effect.gen(function* () {
            yield* TestServices.provideLive(Effect.sleep("2 millis"))
            yield* TestClock.adjust("1 second")
            return (yield* mock.counters).faults.serviceUnavailable503 >= 4
          })
        )
        expect(fiber.unsafePoll()).toBeNull()
        expect((yield* stats.snapshot).outage).toMatchObject({ lastFailure: "server error (503)" })
        yield* mock.setFaults({})
        const result = yield* untilDone(fiber)
        expect(result.attempts).toBeGreaterThanOrEqual(5)
        expect((yield* stats.snapshot).outage).toBeUndefined()
      })
    )

    it.scoped("an outage longer than maxOutage fails the line ProviderUnavailable and completes halted", () =>
      Effect.gen(function* () {
        const { send } = yield* setup(
          { faults: { serviceUnavailable503: 1 } },
          { maxAttempts: 2, learnLimits: false, maxOutage: "5 seconds" }
        )
        const fiber = yield* Effect.fork(Effect.flip(send(line("a", 1))))
        const failure = yield* untilDone(fiber)
        expect(failure).toMatchObject({ _tag: "RunError", reason: "ProviderUnavailable" })
        expect(failure.message).toContain("longer than the outage allowed (--max-outage 5s)")
        expect(failure.message).toContain("it has not answered for")
        expect(failure.message).toContain("when the provider is back")
        expect(failure.message).toContain("server error (503)")
        expect(yield* send.halted).toBe(failure)
      })
    )

    it.scoped("a refused key fails AuthenticationFailed at once (no retry) and completes halted", () =>
      Effect.gen(function* () {
        const { mock, send } = yield* setup(
          { apiKeys: ["sk-good"] },
          { apiKey: Redacted.make("sk-bad"), maxAttempts: 3, learnLimits: false, maxOutage: "1 minute" }
        )
        const failure = yield* untilDone(yield* Effect.fork(Effect.flip(send(line("a", 1)))))
        expect(failure).toMatchObject({ _tag: "RunError", reason: "AuthenticationFailed", status: 401 })
        expect(failure.message).toContain("Authentication failed (401)")
        expect(failure.message).not.toContain("sk-bad")
        expect((yield* mock.counters).unauthorized).toBe(1)
        expect(yield* send.halted).toBe(failure)
      })
    )
  })
})
