/**
 * `sluice run --providers` in virtual time: the Router over two in-memory providers, each enforcing its own
 * token limit over a sliding window (as the MockProvider does: 429 with `retry-after-ms` over the limit;
 * every answer reports `x-ratelimit-*` and `RateLimit-Policy`), answering after 0 to 150 ms.
 *
 * The issue's end-to-end scenario (the same as `bench/routerE2e.ts`, which runs it in real time against two
 * MockProviders): 2,000 lines, limits learned from the headers; once learned the two together are held at
 * ≥ 95% of the sum of their limits, with no 429 after the first window; then one provider fails (503) for
 * 20 s: no line fails, the other carries the traffic at its own limit, and the failed one comes back.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as TestHttpClient from "@sluice/testing/TestHttpClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import type * as Providers from "../src/internal/providers.js"
import * as RouterSend from "../src/internal/routerSend.js"
import { RunError } from "../src/internal/runError.js"
import type * as Runner from "../src/Runner.js"
import * as RunStats from "../src/RunStats.js"

const BUSY_MACHINE_TIMEOUT = 300_000
const WINDOW = 60_000
/** Each line is charged 100 tokens (prompt 20 + max_tokens 80), as the server counts them. */
const CHARGED = 100

const line = (n: number): Runner.BatchLine => ({
  customId: `line-${n}`,
  method: "POST",
  url: "/v1/chat/completions",
  // 80 characters: 20 prompt tokens by the server's count (4 characters a token).
  body: { model: "m", messages: [{ role: "user", content: `${`line ${n} `.padEnd(80, "x")}` }], max_tokens: 80 },
  lineNumber: n
})

/** One provider: `tokens` per minute over a sliding window; 503 to everything while `down()`. */
const tokenServer = (tokens: number, down: (now: number) => boolean) => {
  const window: Array<{ readonly at: number; readonly tokens: number }> = []
  const served: Array<{ readonly at: number; readonly tokens: number }> = []
  const refused: Array<number> = []
  let requests = 0
  const handler = (request: TestHttpClient.TestRequest) =>
    Effect.gen(function* () {
      yield* Effect.sleep(((requests++ * 37) % 16) * 10)
      const now = yield* Clock.currentTimeMillis
      if (down(now)) return { status: 503, body: { error: { message: "down", type: "server_error" } } }
      while (window.length > 0 && window[0]!.at <= now - WINDOW) window.shift()
      const body = request.body as { messages: Array<{ content: string }>; max_tokens: number }
      const prompt = MockProvider.estimateTokens(body.messages[0]!.content)
      const charge = prompt + body.max_tokens
      const used = window.reduce((sum, entry) => sum + entry.tokens, 0)
      const headers = (remaining: number) => ({
        "x-ratelimit-limit-tokens": String(tokens),
        "x-ratelimit-remaining-tokens": String(Math.max(0, remaining)),
        "x-ratelimit-reset-tokens": MockProvider.formatResetDuration(
          window.length === 0 ? 0 : window[window.length - 1]!.at + WINDOW - now
        ),
        "ratelimit-policy": `"tokens";q=${tokens};w=${WINDOW / 1000}`
      })
      if (used + charge > tokens) {
        refused.push(now)
        return {
          status: 429,
          headers: { ...headers(tokens - used), "retry-after-ms": String(window[0]!.at + WINDOW - now) },
          body: { error: { message: "Rate limit reached for tokens", type: "tokens" } }
        }
      }
      window.push({ at: now, tokens: charge })
      served.push({ at: now, tokens: charge })
      return {
        status: 200,
        headers: headers(tokens - used - charge),
        body: {
          id: "chatcmpl-1",
          object: "chat.completion",
          created: 0,
          model: "m",
          choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
          usage: { prompt_tokens: prompt, completion_tokens: 2, total_tokens: prompt + 2 }
        }
      }
    })
  const tokensIn = (from: number, to: number) =>
    served.filter((entry) => entry.at >= from && entry.at < to).reduce((sum, entry) => sum + entry.tokens, 0)
  return { handler, served, refused, tokensIn }
}

const provider = (name: string, host: string): Providers.Provider => ({
  name,
  baseUrl: `https://${host}/v1`,
  apiKey: undefined
})

describe("sluice run --providers (virtual time)", () => {
  it.scoped(
    "two providers, separate token limits, 2,000 lines: ≥ 95% of the sum once learned, no 429 after the first window; one down for 20 s: no failed line, the other carries the traffic, the first comes back",
    () =>
      Effect.gen(function* () {
        const start = yield* Clock.currentTimeMillis
        const outage = { from: start + 120_000, to: start + 140_000 }
        const a = tokenServer(30_000, () => false)
        const b = tokenServer(20_000, (now) => now >= outage.from && now < outage.to)
        const http = TestHttpClient.make((request) =>
          request.url.host === "a.example.com" ? a.handler(request) : b.handler(request)
        )
        const stats = yield* RunStats.make()
        const send = yield* RouterSend.make({
          providers: [provider("a", "a.example.com"), provider("b", "b.example.com")],
          maxOutage: "5 minutes",
          shared: { concurrency: 16, maxAttempts: 3, timeout: "10 seconds" }
        }).pipe(Effect.provideService(RunStats.RunStats, stats), Effect.provideService(HttpClient.HttpClient, http))

        const lines = 2_000
        const fiber = yield* Effect.fork(
          Effect.forEach(
            Array.from({ length: lines }, (_, i) => i + 1),
            (n) => Effect.either(send(line(n))),
            { concurrency: 64 }
          )
        )
        const end = start + 3_600_000
        while (fiber.unsafePoll() === null && (yield* Clock.currentTimeMillis) < end) {
          yield* TestClock.adjust("100 millis")
        }
        const results = yield* Fiber.join(fiber)
        const finishedAt = yield* Clock.currentTimeMillis

        // No failed line, none repeated: each line served once, by one provider.
        expect(results.flatMap((result) => (result._tag === "Left" ? [JSON.stringify(result.left)] : []))).toEqual([])
        expect(a.served.length + b.served.length).toBe(lines)

        // Once learned (the second window, before the outage): at least 95% of the sum of the two limits.
        const sum = 30_000 + 20_000
        const steady = a.tokensIn(start + 60_000, start + 120_000) + b.tokensIn(start + 60_000, start + 120_000)
        expect(steady / sum).toBeGreaterThanOrEqual(0.95)
        expect(steady).toBeLessThanOrEqual(sum)
        // No 429 after the first window.
        expect([...a.refused, ...b.refused].filter((at) => at >= start + WINDOW)).toEqual([])

        // The outage: b serves nothing; a carries the traffic at its own limit (≥ 90% of it, pro rata).
        expect(b.tokensIn(outage.from, outage.to)).toBe(0)
        expect(a.tokensIn(outage.from, outage.to)).toBeGreaterThanOrEqual(0.9 * 30_000 * (20_000 / WINDOW))
        // b comes back after its ejection (30 s), and serves again before the run ends.
        expect(finishedAt).toBeGreaterThan(outage.to + 30_000)
        expect(b.tokensIn(outage.to, finishedAt + 1)).toBeGreaterThan(0)

        // Per provider, as the summary and the report show them.
        const progress = yield* stats.snapshot
        const [pa, pb] = progress.providers!
        expect(pa).toMatchObject({ name: "a", served: a.served.length, failed: 0 })
        expect(pb).toMatchObject({ name: "b", served: b.served.length, failed: 0, state: "active" })
        // Its failures moved lines to a (its breaker refusing them, or the Router ejecting it).
        expect(pb!.movedAway).toBeGreaterThan(0)
        expect(pa!.movedAway).toBe(0)
        expect(pa!.limits.tpm).toBe(30_000)
        expect(pb!.limits.tpm).toBe(20_000)
        expect(progress.limits.tpm).toBe(sum)
        expect(CHARGED * lines).toBe(a.tokensIn(0, finishedAt + 1) + b.tokensIn(0, finishedAt + 1))
      }),
    BUSY_MACHINE_TIMEOUT
  )

  it.scoped(
    "every provider down: the run pauses (an outage on the progress), no line fails; it goes on when one answers",
    () =>
      Effect.gen(function* () {
        const start = yield* Clock.currentTimeMillis
        const down = (now: number) => now >= start + 5_000 && now < start + 15_000
        const a = tokenServer(1_000_000, down)
        const b = tokenServer(1_000_000, down)
        const http = TestHttpClient.make((request) =>
          request.url.host === "a.example.com" ? a.handler(request) : b.handler(request)
        )
        const stats = yield* RunStats.make()
        const send = yield* RouterSend.make({
          providers: [provider("a", "a.example.com"), provider("b", "b.example.com")],
          maxOutage: "5 minutes",
          shared: { concurrency: 4, maxAttempts: 2, timeout: "10 seconds" }
        }).pipe(Effect.provideService(RunStats.RunStats, stats), Effect.provideService(HttpClient.HttpClient, http))
        // Lines one after another, 8 at a time, paced by a line every 200 ms: they span the outage.
        const lines = 100
        const fiber = yield* Effect.fork(
          Effect.forEach(
            Array.from({ length: lines }, (_, i) => i + 1),
            (n) => Effect.zipRight(Effect.sleep(n * 200), Effect.either(send(line(n)))),
            { concurrency: 8 }
          )
        )
        let outageSeen = false
        while (fiber.unsafePoll() === null && (yield* Clock.currentTimeMillis) < start + 600_000) {
          yield* TestClock.adjust("100 millis")
          if ((yield* stats.snapshot).outage !== undefined) outageSeen = true
        }
        const results = yield* Fiber.join(fiber)
        expect(results.filter((result) => result._tag === "Left")).toEqual([])
        expect(outageSeen).toBe(true)
        expect((yield* stats.snapshot).outage).toBeUndefined()
        // Served once each: nothing lost, nothing repeated; none while both were down.
        expect(a.served.length + b.served.length).toBe(lines)
        expect([...a.served, ...b.served].filter((entry) => down(entry.at))).toEqual([])
        expect([...a.served, ...b.served].some((entry) => entry.at >= start + 15_000)).toBe(true)
      }),
    BUSY_MACHINE_TIMEOUT
  )

  it.scoped(
    "two providers in one domain with a shared token limit: together they never exceed it, and go at ≥ 90% of it",
    () =>
      Effect.gen(function* () {
        const start = yield* Clock.currentTimeMillis
        // One organisation's quota, enforced by the server across both deployments.
        const org = tokenServer(10_000, () => false)
        const hosts: Array<string> = []
        const http = TestHttpClient.make((request) => {
          hosts.push(request.url.host)
          return org.handler(request)
        })
        const stats = yield* RunStats.make()
        const send = yield* RouterSend.make({
          providers: [
            { ...provider("east", "east.example.com"), domain: "org" },
            { ...provider("west", "west.example.com"), domain: "org" }
          ],
          domains: { org: { tpm: 10_000 } },
          strategy: "roundRobin",
          maxOutage: "5 minutes",
          shared: { concurrency: 16, maxAttempts: 3, timeout: "10 seconds" }
        }).pipe(Effect.provideService(RunStats.RunStats, stats), Effect.provideService(HttpClient.HttpClient, http))
        const lines = 300
        const fiber = yield* Effect.fork(
          Effect.forEach(
            Array.from({ length: lines }, (_, i) => i + 1),
            (n) => Effect.either(send(line(n))),
            { concurrency: 32 }
          )
        )
        while (fiber.unsafePoll() === null && (yield* Clock.currentTimeMillis) < start + 3_600_000) {
          yield* TestClock.adjust("100 millis")
        }
        const results = yield* Fiber.join(fiber)
        expect(results.filter((result) => result._tag === "Left")).toEqual([])
        expect(org.served.length).toBe(lines)
        // Both members served, and the server never refused one: they paced as one.
        expect(new Set(hosts)).toEqual(new Set(["east.example.com", "west.example.com"]))
        expect(org.refused).toEqual([])
        // Every window of a minute: within the shared limit together.
        for (const entry of org.served) {
          expect(org.tokensIn(entry.at - WINDOW + 1, entry.at + 1)).toBeLessThanOrEqual(10_000)
        }
        // And near it (a full minute, the first excepted): the shared limit is the pace, not a tenth of it.
        expect(org.tokensIn(start + WINDOW, start + 2 * WINDOW)).toBeGreaterThanOrEqual(0.9 * 10_000)
        // The run's limits count the domain once; each member shows the domain's.
        const progress = yield* stats.snapshot
        expect(progress.limits.tpm).toBe(10_000)
        expect(progress.providers!.map((member) => [member.name, member.domain, member.limits.tpm])).toEqual([
          ["east", "org", 10_000],
          ["west", "org", 10_000]
        ])
      }),
    BUSY_MACHINE_TIMEOUT
  )

  it.scoped("a 429 with Retry-After on one member of a domain holds back the other member too", () =>
    Effect.gen(function* () {
      const start = yield* Clock.currentTimeMillis
      const requests: Array<{ readonly host: string; readonly at: number }> = []
      const ok = {
        status: 200,
        body: {
          id: "chatcmpl-1",
          object: "chat.completion",
          created: 0,
          model: "m",
          choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
          usage: { prompt_tokens: 20, completion_tokens: 2, total_tokens: 22 }
        }
      }
      const http = TestHttpClient.make((request) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          requests.push({ host: request.url.host, at: now - start })
          // east's first answer: the organisation is over its quota for 20 s.
          return request.url.host === "east.example.com" &&
            requests.filter((r) => r.host === request.url.host).length === 1
            ? {
                status: 429,
                headers: { "retry-after": "20" },
                body: { error: { message: "Rate limit reached for requests", type: "requests" } }
              }
            : ok
        })
      )
      const stats = yield* RunStats.make()
      const send = yield* RouterSend.make({
        providers: [
          { ...provider("east", "east.example.com"), domain: "org" },
          { ...provider("west", "west.example.com"), domain: "org" }
        ],
        domains: { org: { rpm: 1_000 } },
        strategy: "roundRobin",
        maxOutage: "5 minutes",
        shared: { concurrency: 4, maxAttempts: 3, timeout: "10 seconds" }
      }).pipe(Effect.provideService(RunStats.RunStats, stats), Effect.provideService(HttpClient.HttpClient, http))
      const first = yield* Effect.fork(send(line(1)))
      yield* TestClock.adjust("1 second")
      // The next line goes to west (round robin), and waits for the domain as east's retry does.
      const second = yield* Effect.fork(send(line(2)))
      yield* TestClock.adjust("18 seconds")
      const before = [...requests]
      yield* TestClock.adjust("2 seconds")
      // Both lines done before anything is asserted (a failed assertion must not leave them waiting).
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      expect(before).toEqual([{ host: "east.example.com", at: 0 }])
      expect(
        requests
          .slice(1)
          .map((request) => request.host)
          .sort()
      ).toEqual(["east.example.com", "west.example.com"])
      for (const request of requests.slice(1)) expect(request.at).toBeGreaterThanOrEqual(20_000)
    })
  )

  it("reads a line's failure as the Router's signal", () => {
    const failed = (fields: Partial<ConstructorParameters<typeof RunError>[0]>) =>
      new RunError({ reason: "SendFailed", detail: "x", ...fields })
    expect(RouterSend.classify(failed({ errorKind: "RateLimited", failureClass: "own" }))._tag).toBe("RateLimited")
    expect(RouterSend.classify(failed({ errorKind: "ServerError", failureClass: "systemic" }))._tag).toBe("Unavailable")
    expect(RouterSend.classify(failed({ errorKind: "ProviderUnavailable", failureClass: "refused" }))._tag).toBe(
      "Refused"
    )
    expect(RouterSend.classify(failed({ errorKind: "ContextTooLong", failureClass: "own" }))._tag).toBe(
      "ContextTooLong"
    )
    expect(RouterSend.classify(failed({ errorKind: "InvalidRequest", failureClass: "own" }))._tag).toBe("Final")
    expect(RouterSend.classify(new RunError({ reason: "AuthenticationFailed", detail: "x" }))._tag).toBe("Final")
  })

  it("a line refused where it could go while others are answered waits, for up to maxOutage; its own failure fails", () => {
    const failed = (fields: Partial<ConstructorParameters<typeof RunError>[0]>) =>
      new RunError({ reason: "SendFailed", detail: "x", ...fields })
    const refused = failed({ errorKind: "ProviderUnavailable", failureClass: "refused" })
    const serverError = failed({ errorKind: "ServerError", failureClass: "systemic" })
    const own = failed({ errorKind: "InvalidRequest", failureClass: "own" })
    const maxOutage = 300_000
    // Refused (an open breaker: nothing sent) while another provider served lines: it waits and goes again...
    expect(RouterSend.afterFailure(refused, true, 0, maxOutage)).toBe("Wait")
    expect(RouterSend.afterFailure(refused, true, maxOutage - 1, maxOutage)).toBe("Wait")
    // ... for no longer than the run waits out an outage.
    expect(RouterSend.afterFailure(refused, true, maxOutage, maxOutage)).toBe("Fail")
    // A provider's failure (sent, and failed) while others answered is the line's.
    expect(RouterSend.afterFailure(serverError, true, 0, maxOutage)).toBe("Fail")
    // Nobody answered anyone meanwhile: every provider is down, an outage.
    expect(RouterSend.afterFailure(refused, false, 0, maxOutage)).toBe("Outage")
    expect(RouterSend.afterFailure(serverError, false, 0, maxOutage)).toBe("Outage")
    // The line's own failure fails it, whatever the others do.
    expect(RouterSend.afterFailure(own, true, 0, maxOutage)).toBe("Fail")
    expect(RouterSend.afterFailure(own, false, 0, maxOutage)).toBe("Fail")
  })
})
