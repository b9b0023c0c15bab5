import { describe, expect, it } from "@effect/vitest"
import { InvalidOptionsError } from "@sluice/core/InvalidOptions"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as MockProvider from "../src/MockProvider.js"
import { accepts, ClientLive, chat, send } from "./utils/client.js"

const RESET_FORMAT = /^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$/

const ratelimitHeaders = [
  "x-ratelimit-limit-requests",
  "x-ratelimit-limit-tokens",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-reset-requests",
  "x-ratelimit-reset-tokens"
]

describe("MockProvider", () => {
  describe("answers", () => {
    it.scoped("the same chat request gets the same body; another model gets another answer", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const url = `${provider.baseUrl}/chat/completions`
        const first = yield* send(url, chat("What is a sluice?"))
        const second = yield* send(url, chat("What is a sluice?"))
        const other = yield* send(url, chat("What is a sluice?", { model: "other-model" }))
        expect(first.status).toBe(200)
        expect(first.headers["content-type"]).toContain("application/json")
        expect(second.text).toBe(first.text)
        const body = JSON.parse(first.text)
        expect(body.object).toBe("chat.completion")
        expect(body.model).toBe("mock-model")
        expect(body.choices[0].message.role).toBe("assistant")
        expect(body.choices[0].finish_reason).toBe("stop")
        expect(JSON.parse(other.text).choices[0].message.content).not.toBe(body.choices[0].message.content)
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped(
      "usage: prompt tokens are ~4 characters each, completion tokens the answer's words, capped by max_tokens",
      () =>
        Effect.gen(function* () {
          const provider = yield* MockProvider.make()
          const url = `${provider.baseUrl}/chat/completions`
          const request = {
            model: "mock-model",
            messages: [
              { role: "system", content: "x".repeat(20) },
              { role: "user", content: [{ type: "text", text: "y".repeat(22) }] }
            ]
          }
          const free = JSON.parse((yield* send(url, request)).text)
          expect(free.usage.prompt_tokens).toBe(11) // ⌈42 / 4⌉
          const words = free.choices[0].message.content.replace(/\.$/, "").split(" ")
          expect(free.usage.completion_tokens).toBe(words.length)
          expect(words.length).toBeGreaterThanOrEqual(8)
          expect(words.length).toBeLessThanOrEqual(32)
          expect(free.usage.total_tokens).toBe(11 + words.length)

          const capped = JSON.parse((yield* send(url, { ...request, max_tokens: 3 })).text)
          expect(capped.usage.completion_tokens).toBe(3)
          expect(capped.choices[0].finish_reason).toBe("length")
          expect(capped.choices[0].message.content.split(" ")).toHaveLength(3)
          const newer = JSON.parse((yield* send(url, { ...request, max_completion_tokens: 4 })).text)
          expect(newer.usage.completion_tokens).toBe(4)

          expect(MockProvider.estimateTokens("")).toBe(1)
          expect(MockProvider.estimateTokens("abcde")).toBe(2)
        }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("embeddings: one unit vector of 8 dimensions per input (or `dimensions`), deterministic", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const url = `${provider.baseUrl}/embeddings`
        const answer = yield* send(url, { model: "embed", input: ["sluice", "gate keeper"] })
        expect(answer.status).toBe(200)
        const body = JSON.parse(answer.text)
        expect(body.object).toBe("list")
        expect(body.model).toBe("embed")
        expect(body.data).toHaveLength(2)
        body.data.forEach((item: { object: string; index: number; embedding: Array<number> }, index: number) => {
          expect(item.object).toBe("embedding")
          expect(item.index).toBe(index)
          expect(item.embedding).toHaveLength(8)
          expect(Math.hypot(...item.embedding)).toBeCloseTo(1, 9)
        })
        expect(body.data[0].embedding).not.toEqual(body.data[1].embedding)
        expect(body.usage).toEqual({ prompt_tokens: 2 + 3, total_tokens: 5 })

        const single = JSON.parse((yield* send(url, { model: "embed", input: "sluice", dimensions: 3 })).text)
        expect(single.data).toHaveLength(1)
        expect(single.data[0].embedding).toHaveLength(3)
        const again = JSON.parse((yield* send(url, { model: "embed", input: ["sluice", "gate keeper"] })).text)
        expect(again).toEqual(body)
      }).pipe(Effect.provide(ClientLive))
    )
  })

  describe("the legacy /v1/completions", () => {
    it.scoped("n choices per prompt, capped by max_tokens (16 by default); charged prompt plus max_tokens each", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ tpm: 100_000 })
        const url = `${provider.baseUrl}/completions`
        const answer = yield* send(url, { model: "mock-model", prompt: "x".repeat(20) })
        expect(answer.status).toBe(200)
        expect(answer.headers["x-request-id"]).toMatch(/^req_mock_[0-9a-f]{8}$/)
        const body = JSON.parse(answer.text)
        expect(body).toMatchObject({ object: "text_completion", model: "mock-model" })
        expect(body.choices).toHaveLength(1)
        const words = body.choices[0].text.trim().replace(/\.$/, "").split(" ")
        expect(words.length).toBeGreaterThanOrEqual(8)
        expect(words.length).toBeLessThanOrEqual(16)
        expect(body.usage).toEqual({
          prompt_tokens: 5,
          completion_tokens: words.length,
          total_tokens: 5 + words.length
        })
        expect((yield* send(url, { model: "mock-model", prompt: "x".repeat(20) })).text).toBe(answer.text)

        const several = JSON.parse(
          (yield* send(url, { model: "mock-model", prompt: ["abcd", "efgh"], max_tokens: 2, n: 3 })).text
        )
        expect(several.choices.map((choice: { index: number }) => choice.index)).toEqual([0, 1, 2, 3, 4, 5])
        for (const choice of several.choices) {
          expect(choice.text.trim().split(" ")).toHaveLength(2)
          expect(choice.finish_reason).toBe("length")
        }
        expect(several.usage).toEqual({ prompt_tokens: 1 + 1, completion_tokens: 12, total_tokens: 14 })
        const tokenIds = JSON.parse(
          (yield* send(url, { model: "mock-model", prompt: [[1, 2, 3]], max_tokens: 4 })).text
        )
        expect(tokenIds.usage.prompt_tokens).toBe(3)
        const log = yield* provider.log
        expect(log.map((entry) => [entry.path, entry.chargedTokens])).toEqual([
          ["/v1/completions", 5 + 16],
          ["/v1/completions", 5 + 16],
          ["/v1/completions", 2 + 2 * 3 * 2],
          ["/v1/completions", 3 + 4]
        ])
        // A request ids each answer.
        expect((yield* send(url, { model: "mock-model", prompt: "y" })).headers["x-request-id"]).not.toBe(
          answer.headers["x-request-id"]
        )

        const missing = yield* send(url, { model: "mock-model" })
        expect(missing.status).toBe(400)
        expect(JSON.parse(missing.text).error.message).toContain("prompt")
      }).pipe(Effect.provide(ClientLive))
    )
  })

  describe("what the official SDK sends", () => {
    it.scoped("stream: true answers server-sent chunks, [DONE] last, a usage chunk only when asked", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ rpm: 10 })
        const url = `${provider.baseUrl}/chat/completions`
        const whole = JSON.parse((yield* send(url, chat("stream me", { max_tokens: 5 }))).text)
        const answer = yield* send(url, chat("stream me", { max_tokens: 5, stream: true }))
        expect(answer.status).toBe(200)
        expect(answer.headers["content-type"]).toContain("text/event-stream")
        expect(answer.headers["x-ratelimit-remaining-requests"]).toBe("8")
        const events = answer.text.split("\n\n")
        expect(events.at(-1)).toBe("")
        expect(events.at(-2)).toBe("data: [DONE]")
        const chunks = events.slice(0, -2).map((event) => {
          expect(event.startsWith("data: ")).toBe(true)
          return JSON.parse(event.slice("data: ".length))
        })
        // role, 5 words, finish_reason
        expect(chunks).toHaveLength(1 + 5 + 1)
        expect(chunks[0].choices[0].delta).toEqual({ role: "assistant", content: "" })
        expect(chunks.map((chunk) => chunk.choices[0].delta.content ?? "").join("")).toBe(
          whole.choices[0].message.content
        )
        expect(chunks.at(-1).choices[0]).toEqual({ index: 0, delta: {}, logprobs: null, finish_reason: "length" })
        expect(chunks.every((chunk) => chunk.object === "chat.completion.chunk" && !("usage" in chunk))).toBe(true)

        const withUsage = yield* send(
          url,
          chat("stream me", { max_tokens: 5, stream: true, stream_options: { include_usage: true } })
        )
        const usageChunks = withUsage.text
          .split("\n\n")
          .slice(0, -2)
          .map((event) => JSON.parse(event.slice("data: ".length)))
        expect(usageChunks).toHaveLength(1 + 5 + 1 + 1)
        expect(usageChunks.at(-1)).toMatchObject({ choices: [], usage: whole.usage })
        expect(usageChunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true)
        const log = yield* provider.log
        expect(log.map((entry) => [entry.outcome, entry.chargedTokens])).toEqual([
          ["served", whole.usage.prompt_tokens + 5],
          ["served", whole.usage.prompt_tokens + 5],
          ["served", whole.usage.prompt_tokens + 5]
        ])
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("encoding_format base64: float32 little-endian of the float answer; token arrays as input", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const url = `${provider.baseUrl}/embeddings`
        const floats = JSON.parse((yield* send(url, { model: "e", input: ["a", "b"] })).text)
        const base64 = JSON.parse((yield* send(url, { model: "e", input: ["a", "b"], encoding_format: "base64" })).text)
        expect(base64.usage).toEqual(floats.usage)
        base64.data.forEach((item: { embedding: string }, index: number) => {
          const bytes = Uint8Array.from(atob(item.embedding), (char) => char.charCodeAt(0))
          expect(bytes).toHaveLength(8 * 4)
          const view = new DataView(bytes.buffer)
          const decoded = Array.from({ length: 8 }, (_, i) => view.getFloat32(i * 4, true))
          expect(decoded).toEqual(floats.data[index].embedding.map(Math.fround))
        })

        const tokens = JSON.parse((yield* send(url, { model: "e", input: [1, 2] })).text)
        expect(tokens.data).toHaveLength(1)
        expect(tokens.usage.prompt_tokens).toBe(2)
        const lists = JSON.parse((yield* send(url, { model: "e", input: [[1, 2], [3]] })).text)
        expect(lists.data).toHaveLength(2)
        expect(lists.usage.prompt_tokens).toBe(3)
        expect(lists.data[0].embedding).toEqual(tokens.data[0].embedding)
        // Token ids and the text that looks like them are different inputs.
        const text = JSON.parse((yield* send(url, { model: "e", input: "1,2" })).text)
        expect(text.data[0].embedding).not.toEqual(tokens.data[0].embedding)
        for (const input of [[], [-1], [1.5], [[]], [[1], "a"]]) {
          const refused = yield* send(url, { model: "e", input })
          expect(refused.status, JSON.stringify(input)).toBe(400)
        }
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("GET /v1/models lists the models (auth as any request, never metered); an unlisted id is 404", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ rpm: 1, apiKeys: ["k"] })
        const list = yield* send(`${provider.baseUrl}/models`, undefined, { method: "GET", apiKey: "k" })
        expect(list.status).toBe(200)
        expect(JSON.parse(list.text)).toEqual({
          object: "list",
          data: [
            { id: "mock-model", object: "model", created: 1_704_067_200, owned_by: "sluice" },
            { id: "mock-embedding", object: "model", created: 1_704_067_200, owned_by: "sluice" }
          ]
        })
        const again = yield* send(`${provider.baseUrl}/models`, undefined, { method: "GET", apiKey: "k" })
        expect(again.status).toBe(200) // rpm 1 does not count it
        const one = yield* send(`${provider.baseUrl}/models/mock-model`, undefined, { method: "GET", apiKey: "k" })
        expect(JSON.parse(one.text).id).toBe("mock-model")
        const missing = yield* send(`${provider.baseUrl}/models/gpt-none`, undefined, { method: "GET", apiKey: "k" })
        expect(missing.status).toBe(404)
        expect(JSON.parse(missing.text).error.code).toBe("model_not_found")
        const anonymous = yield* send(`${provider.baseUrl}/models`, undefined, { method: "GET" })
        expect(anonymous.status).toBe(401)
        expect((yield* send(`${provider.baseUrl}/chat/completions`, chat("hi"), { apiKey: "k" })).status).toBe(200)
        expect((yield* provider.log).map((entry) => [entry.path, entry.model, entry.outcome])).toEqual([
          ["/v1/models", undefined, "served"],
          ["/v1/models", undefined, "served"],
          ["/v1/models/mock-model", "mock-model", "served"],
          ["/v1/models/gpt-none", "gpt-none", "notFound"],
          ["/v1/models", undefined, "unauthorized"],
          ["/v1/chat/completions", "mock-model", "served"]
        ])
      }).pipe(Effect.provide(ClientLive))
    )
  })

  describe("limits", () => {
    it.scoped("over rpm: 429 with every rate-limit header, well-formed; successes carry x-ratelimit-* too", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ rpm: 2, tpm: 10_000 })
        const url = `${provider.baseUrl}/chat/completions`
        const first = yield* send(url, chat("hello", { max_tokens: 10 }))
        const second = yield* send(url, chat("hello", { max_tokens: 10 }))
        const third = yield* send(url, chat("hello", { max_tokens: 10 }))
        expect([first.status, second.status, third.status]).toEqual([200, 200, 429])
        for (const answer of [first, second, third]) {
          for (const header of ratelimitHeaders) expect(answer.headers[header], header).toBeDefined()
          expect(answer.headers["x-ratelimit-reset-requests"]).toMatch(RESET_FORMAT)
          expect(answer.headers["x-ratelimit-reset-tokens"]).toMatch(RESET_FORMAT)
        }
        expect(first.headers["x-ratelimit-limit-requests"]).toBe("2")
        expect(first.headers["x-ratelimit-remaining-requests"]).toBe("1")
        expect(second.headers["x-ratelimit-remaining-requests"]).toBe("0")
        // prompt "hello" = 2 tokens, + max_tokens 10 → 12 per request
        expect(first.headers["x-ratelimit-limit-tokens"]).toBe("10000")
        expect(first.headers["x-ratelimit-remaining-tokens"]).toBe("9988")
        expect(second.headers["x-ratelimit-remaining-tokens"]).toBe("9976")
        // The window, which OpenAI's headers leave unsaid, as an IETF policy.
        expect(first.headers["ratelimit-policy"]).toBe('"requests";q=2;w=60, "tokens";q=10000;w=60')

        // TestClock stands at 0: the window empties at 60 s.
        expect(third.headers["retry-after"]).toBe("60")
        expect(third.headers["retry-after-ms"]).toBe("60000")
        expect(third.headers["x-ratelimit-reset-requests"]).toBe("1m0s")
        expect(third.headers["x-ratelimit-reset-tokens"]).toBe("1m0s")
        expect(third.headers["x-ratelimit-remaining-requests"]).toBe("0")
        expect(third.headers["x-ratelimit-remaining-tokens"]).toBe("9976") // a refused request costs nothing
        const error = JSON.parse(third.text).error
        expect(error.type).toBe("rate_limit_exceeded")
        expect(error.code).toBe("requests")
        expect(error.message).toContain("Limit 2")
        expect((yield* provider.counters).rateLimited).toBe(1)
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("over tpm: 429 with code tokens; a request larger than tpm is too large and has no retry-after", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ tpm: 100 })
        const url = `${provider.baseUrl}/chat/completions`
        const request = chat("z".repeat(40), { max_tokens: 40 }) // 10 + 40 = 50 tokens
        const statuses = []
        for (let i = 0; i < 3; i++) statuses.push(yield* send(url, request))
        expect(statuses.map((answer) => answer.status)).toEqual([200, 200, 429])
        expect(statuses[1]!.headers["x-ratelimit-remaining-tokens"]).toBe("0")
        expect(statuses[2]!.headers["x-ratelimit-limit-requests"]).toBeUndefined() // no rpm configured
        expect(statuses[2]!.headers["retry-after-ms"]).toBe("60000")
        expect(JSON.parse(statuses[2]!.text).error.code).toBe("tokens")

        const tooLarge = yield* send(url, chat("z", { max_tokens: 500 }))
        expect(tooLarge.status).toBe(429)
        expect(JSON.parse(tooLarge.text).error.code).toBe("request_too_large")
        expect(tooLarge.headers["retry-after"]).toBeUndefined()

        // Without max_tokens, a request is charged its prompt plus its actual completion.
        yield* provider.reset
        const free = JSON.parse((yield* send(url, chat("z".repeat(40)))).text)
        const log = yield* provider.log
        expect(log[0]!.chargedTokens).toBe(free.usage.total_tokens)
        expect(log[0]!.chargedTokens).toBe(10 + free.usage.completion_tokens)
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("a shorter window: counted over it, and named by RateLimit-Policy (when whole seconds)", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ rpm: 1, window: "10 seconds" })
        const url = `${provider.baseUrl}/chat/completions`
        const first = yield* send(url, chat("tick"))
        expect(first.headers["ratelimit-policy"]).toBe('"requests";q=1;w=10')
        const refused = yield* send(url, chat("tick"))
        expect(refused.status).toBe(429)
        expect(refused.headers["retry-after-ms"]).toBe("10000")
        yield* TestClock.adjust("10 seconds")
        expect((yield* send(url, chat("tick"))).status).toBe(200)
        yield* provider.setLimits({ rpm: 1, window: "1500 millis" })
        expect((yield* send(url, chat("tick"))).headers["ratelimit-policy"]).toBeUndefined()
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("the window slides with the Clock: a request leaves it 60 s after it was admitted", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ rpm: 2 })
        const url = `${provider.baseUrl}/chat/completions`
        const call = send(url, chat("tick"))
        expect((yield* call).status).toBe(200) // t = 0
        yield* TestClock.adjust("20 seconds")
        expect((yield* call).status).toBe(200) // t = 20 s
        const refused = yield* call
        expect(refused.status).toBe(429)
        expect(refused.headers["retry-after-ms"]).toBe("40000") // the first leaves at 60 s
        expect(refused.headers["x-ratelimit-reset-requests"]).toBe("1m0s") // the second leaves at 80 s
        yield* TestClock.adjust("39999 millis")
        expect((yield* call).headers["retry-after-ms"]).toBe("1")
        yield* TestClock.adjust("1 milli") // t = 60 s
        expect((yield* call).status).toBe(200)
        const again = yield* call
        expect(again.status).toBe(429)
        expect(again.headers["retry-after"]).toBe("20")
        expect(again.headers["x-ratelimit-reset-requests"]).toBe("1m0s")
        yield* TestClock.adjust("20 seconds") // t = 80 s: the second left
        const last = yield* call
        expect(last.status).toBe(200)
        expect(last.headers["x-ratelimit-remaining-requests"]).toBe("0")
        expect((yield* provider.log).map((entry) => [entry.time, entry.status])).toEqual([
          [0, 200],
          [20_000, 200],
          [20_000, 429],
          [59_999, 429],
          [60_000, 200],
          [60_000, 429],
          [80_000, 200]
        ])
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("setLimits changes the limits at run time; without limits nothing is counted", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const url = `${provider.baseUrl}/chat/completions`
        expect((yield* send(url, chat("a"))).headers["x-ratelimit-limit-requests"]).toBeUndefined()
        yield* provider.setLimits({ rpm: 2 })
        // The request before had no limit to count against: the window starts now.
        expect((yield* send(url, chat("a"))).headers["x-ratelimit-remaining-requests"]).toBe("1")
        const second = yield* send(url, chat("a"))
        expect(second.headers["x-ratelimit-remaining-requests"]).toBe("0")
        expect((yield* send(url, chat("a"))).status).toBe(429)
        yield* provider.setLimits({})
        expect((yield* send(url, chat("a"))).status).toBe(200)
        const error = yield* Effect.flip(provider.setLimits({ rpm: 0 }))
        expect(error).toBeInstanceOf(InvalidOptionsError)
        expect(error.message).toContain('["rpm"]')
      }).pipe(Effect.provide(ClientLive))
    )
  })

  describe("requests it refuses", () => {
    it.scoped("401 without a key it accepts; setApiKeys expires a key; the key is never logged", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ apiKeys: ["secret-one"] })
        const url = `${provider.baseUrl}/chat/completions`
        const missing = yield* send(url, chat("hi"))
        expect(missing.status).toBe(401)
        expect(JSON.parse(missing.text).error).toMatchObject({ type: "invalid_request_error", code: "invalid_api_key" })
        expect((yield* send(url, chat("hi"), { apiKey: "wrong" })).status).toBe(401)
        expect((yield* send(url, chat("hi"), { apiKey: "secret-one" })).status).toBe(200)

        yield* provider.setApiKeys(["secret-two"]) // the old token expires
        expect((yield* send(url, chat("hi"), { apiKey: "secret-one" })).status).toBe(401)
        expect((yield* send(url, chat("hi"), { apiKey: "secret-two" })).status).toBe(200)
        yield* provider.setApiKeys(undefined)
        expect((yield* send(url, chat("hi"))).status).toBe(200)

        const counters = yield* provider.counters
        expect(counters.unauthorized).toBe(3)
        expect(counters.served).toBe(3)
        const log = JSON.stringify(yield* provider.log)
        expect(log).not.toContain("secret")
        expect(log).not.toContain("wrong")
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("400 for a body that is not JSON, lacks model, messages or input, or has a field of the wrong kind", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const chatUrl = `${provider.baseUrl}/chat/completions`
        const cases = [
          [chatUrl, "{not json", null],
          [chatUrl, { messages: [{ role: "user", content: "hi" }] }, "model"],
          [chatUrl, { model: "m" }, "messages"],
          [chatUrl, { model: "m", messages: [] }, "messages.0"],
          [chatUrl, { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: -1 }, "max_tokens"],
          [chatUrl, chat("hi", { stream: "yes" }), "stream"],
          [`${provider.baseUrl}/embeddings`, { model: "m" }, "input"],
          [`${provider.baseUrl}/embeddings`, { model: "m", input: "x", encoding_format: "int8" }, "encoding_format"]
        ] as const
        for (const [url, body, param] of cases) {
          const answer = yield* send(url, body)
          expect(answer.status, JSON.stringify(body)).toBe(400)
          const error = JSON.parse(answer.text).error
          expect(error.type).toBe("invalid_request_error")
          expect(error.param).toBe(param)
          expect(typeof error.message).toBe("string")
        }
        const counters = yield* provider.counters
        expect(counters.badRequest).toBe(cases.length)
        expect(counters.total).toBe(cases.length)
        expect((yield* provider.log)[1]!.model).toBeUndefined()
        expect((yield* provider.log)[2]!.model).toBe("m")
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("404 for an unknown path or method", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const unknown = yield* send(`${provider.baseUrl}/responses`, chat("hi"))
        expect(unknown.status).toBe(404)
        expect(JSON.parse(unknown.text).error.code).toBe("unknown_url")
        const wrongMethod = yield* send(`${provider.baseUrl}/chat/completions`, undefined, { method: "GET" })
        expect(wrongMethod.status).toBe(404)
        expect((yield* provider.log).map((entry) => [entry.method, entry.path, entry.outcome])).toEqual([
          ["POST", "/v1/responses", "notFound"],
          ["GET", "/v1/chat/completions", "notFound"]
        ])
      }).pipe(Effect.provide(ClientLive))
    )
  })

  describe("log and counters", () => {
    it.scoped("every request is logged once and counted under one outcome; reset empties both", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ rpm: 3, apiKeys: ["k"] })
        const chatUrl = `${provider.baseUrl}/chat/completions`
        yield* send(chatUrl, chat("one", { max_tokens: 5 }), { apiKey: "k" }) // served
        yield* send(`${provider.baseUrl}/embeddings`, { model: "e", input: "abcdefgh" }, { apiKey: "k" }) // served
        yield* send(chatUrl, chat("hi")) // 401
        yield* send(chatUrl, "nope", { apiKey: "k" }) // 400
        yield* send(`${provider.origin}/nowhere`, chat("hi")) // 404
        yield* provider.setFaults({ serverError500: 1 })
        yield* send(chatUrl, chat("two"), { apiKey: "k" }) // fault 500
        yield* provider.setFaults({})
        yield* send(chatUrl, chat("three"), { apiKey: "k" }) // 429 (rpm 3)

        const counters = yield* provider.counters
        expect(counters).toEqual({
          total: 7,
          served: 2,
          rateLimited: 1,
          unauthorized: 1,
          badRequest: 1,
          notFound: 1,
          faults: { serverError500: 1, serviceUnavailable503: 0, reset: 0, hang: 0, malformedJson: 0, slowBody: 0 }
        })
        const log = yield* provider.log
        expect(log.map((entry) => entry.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7])
        expect(log.map((entry) => entry.status)).toEqual([200, 200, 401, 400, 404, 500, 429])
        expect(log.map((entry) => entry.outcome)).toEqual([
          "served",
          "served",
          "unauthorized",
          "badRequest",
          "notFound",
          "fault",
          "rateLimited"
        ])
        expect(log[0]).toMatchObject({
          time: 0,
          method: "POST",
          path: "/v1/chat/completions",
          model: "mock-model",
          promptTokens: 1,
          completionTokens: 5,
          chargedTokens: 6,
          fault: undefined,
          latencyMillis: 0
        })
        expect(log[1]).toMatchObject({ path: "/v1/embeddings", model: "e", promptTokens: 2, completionTokens: 0 })
        expect(log[5]).toMatchObject({ fault: "serverError500", status: 500 })
        expect(log[6]).toMatchObject({ chargedTokens: 0, status: 429 })

        yield* provider.reset
        expect((yield* provider.counters).total).toBe(0)
        expect(yield* provider.log).toEqual([])
        // The window was emptied too: rpm 3 admits again.
        expect((yield* send(chatUrl, chat("four"), { apiKey: "k" })).status).toBe(200)
        expect((yield* provider.log)[0]!.sequence).toBe(1)
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("logCapacity keeps the newest entries", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ logCapacity: 2 })
        for (let i = 0; i < 4; i++) yield* send(`${provider.baseUrl}/chat/completions`, chat(`n${i}`))
        expect((yield* provider.log).map((entry) => entry.sequence)).toEqual([3, 4])
        expect((yield* provider.counters).total).toBe(4)
      }).pipe(Effect.provide(ClientLive))
    )
  })

  describe("options", () => {
    it.effect("bad options fail with InvalidOptionsError naming the field", () =>
      Effect.gen(function* () {
        const cases: Array<[MockProvider.Options, string]> = [
          [{ rpm: -1 }, '["rpm"]'],
          [{ tpm: 1.5 }, '["tpm"]'],
          [{ faults: { hang: 2 } }, '["faults","hang"]'],
          [{ faults: { hang: 0.6, reset: 0.6 } }, '["faults"]'],
          [{ latency: { uniform: { min: 20, max: 10 } } }, '["latency"'],
          [{ slowBody: { chunks: 1 } }, '["slowBody","chunks"]'],
          [{ port: 70_000 }, '["port"]'],
          [{ apiKeys: [""] }, '["apiKeys",0]'],
          [{ rmp: 5 } as MockProvider.Options, '["rmp"]']
        ]
        for (const [options, field] of cases) {
          const error = yield* Effect.flip(Effect.scoped(MockProvider.make(options)))
          expect(error._tag, JSON.stringify(options)).toBe("InvalidOptionsError")
          expect(error.message, JSON.stringify(options)).toContain(field)
        }
      })
    )

    it.scoped("the setters validate like make", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const faults = yield* Effect.flip(provider.setFaults({ reset: -0.1 }))
        expect(faults.message).toContain('["faults","reset"]')
        const latency = yield* Effect.flip(provider.setLatency({ fixed: "soon" as Duration.DurationInput }))
        expect(latency.message).toContain('["latency"')
        const keys = yield* Effect.flip(provider.setApiKeys([""]))
        expect(keys.message).toContain('["apiKeys",0]')
      })
    )
  })

  describe("lifetime", () => {
    it.scoped("the layer provides the service; closing the scope closes the port", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const context = yield* Layer.build(MockProvider.layer()).pipe(Scope.extend(scope))
        const provider = Context.get(context, MockProvider.MockProvider)
        expect(provider.baseUrl).toBe(`http://127.0.0.1:${provider.port}/v1`)
        expect(provider.origin).toBe(`http://127.0.0.1:${provider.port}`)
        expect((yield* send(`${provider.baseUrl}/chat/completions`, chat("hi"))).status).toBe(200)
        expect(yield* accepts(provider.port)).toBe(true)
        yield* Scope.close(scope, Exit.void)
        expect(yield* accepts(provider.port)).toBe(false)
      }).pipe(Effect.provide(ClientLive))
    )

    it.scoped("a port in use fails with a ServeError", () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make()
        const error = yield* Effect.flip(Effect.scoped(MockProvider.make({ port: provider.port })))
        expect(error._tag).toBe("ServeError")
      })
    )
  })
})
