/**
 * The official `openai` SDK against a real MockProvider: what the SDK sends
 * by default (base64 embeddings, streamed chat, the model list) is served,
 * and a 429 is retried by the SDK's own retry after the server's `retry-after-ms`.
 * Live clock: the SDK sleeps in real time, so the server's window must move with it.
 */
import { Buffer } from "node:buffer"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import OpenAI from "openai"
import * as MockProvider from "../src/MockProvider.js"

const API_KEY = "sk-mock-sdk"

const sdkFor = (provider: MockProvider.MockProviderShape, maxRetries = 0) =>
  new OpenAI({ apiKey: API_KEY, baseURL: provider.baseUrl, maxRetries, timeout: 20_000 })

const messages = [{ role: "user" as const, content: "What does a sluice do?" }]

const norm = (vector: ReadonlyArray<number>) => Math.hypot(...vector)

/** Float32, little-endian, as OpenAI encodes `encoding_format: "base64"`. */
const decodeFloat32 = (text: string): Array<number> => {
  const bytes = Buffer.from(text, "base64")
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true))
}

describe("MockProvider with the official openai SDK", () => {
  it.scopedLive("chat: a completion with usage, as the SDK types it", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ apiKeys: [API_KEY] })
      const sdk = sdkFor(provider)
      const completion = yield* Effect.promise(() =>
        sdk.chat.completions.create({ model: "mock-model", messages, max_tokens: 50 })
      )
      expect(completion.object).toBe("chat.completion")
      expect(completion.model).toBe("mock-model")
      expect(completion.choices[0]!.message.role).toBe("assistant")
      expect(completion.choices[0]!.message.content?.length).toBeGreaterThan(0)
      expect(completion.choices[0]!.finish_reason).toBe("stop")
      expect(completion.usage!.total_tokens).toBe(completion.usage!.prompt_tokens + completion.usage!.completion_tokens)
      const [entry] = yield* provider.log
      expect(entry).toMatchObject({ method: "POST", path: "/v1/chat/completions", outcome: "served", status: 200 })
      expect(entry!.completionTokens).toBe(completion.usage!.completion_tokens)

      const wrongKey = new OpenAI({ apiKey: "sk-wrong", baseURL: provider.baseUrl, maxRetries: 0 })
      const refused = yield* Effect.flip(
        Effect.tryPromise(() => wrongKey.chat.completions.create({ model: "mock-model", messages }))
      )
      expect(refused.cause).toBeInstanceOf(OpenAI.AuthenticationError)
    })
  )

  it.scopedLive("embeddings: the SDK's default base64 decodes to the float answer; token arrays are input", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ apiKeys: [API_KEY] })
      const sdk = sdkFor(provider)
      const input = ["sluice", "gate keeper"]
      // No encoding_format: the SDK asks for base64 and decodes it itself.
      const byDefault = yield* Effect.promise(() => sdk.embeddings.create({ model: "mock-embedding", input }))
      const floats = yield* Effect.promise(() =>
        sdk.embeddings.create({ model: "mock-embedding", input, encoding_format: "float" })
      )
      expect(byDefault.data).toHaveLength(2)
      expect(byDefault.usage).toEqual({ prompt_tokens: 2 + 3, total_tokens: 5 })
      byDefault.data.forEach((item, index) => {
        expect(item.index).toBe(index)
        expect(item.embedding).toHaveLength(8)
        expect(item.embedding.every((x) => x !== 0)).toBe(true)
        expect(norm(item.embedding)).toBeCloseTo(1, 5)
        // The same vector as the float answer, to float32's precision.
        expect(item.embedding).toEqual(floats.data[index]!.embedding.map(Math.fround))
      })
      expect(byDefault.data[0]!.embedding).not.toEqual(byDefault.data[1]!.embedding)

      // Asked for explicitly, base64 comes back as the string: float32 little-endian.
      const raw = yield* Effect.promise(() =>
        sdk.embeddings.create({ model: "mock-embedding", input: "sluice", encoding_format: "base64", dimensions: 3 })
      )
      const encoded = raw.data[0]!.embedding as unknown as string
      expect(typeof encoded).toBe("string")
      expect(Buffer.from(encoded, "base64")).toHaveLength(3 * 4)
      expect(norm(decodeFloat32(encoded))).toBeCloseTo(1, 5)

      const tokens = yield* Effect.promise(() =>
        sdk.embeddings.create({ model: "mock-embedding", input: [101, 2023, 318] })
      )
      expect(tokens.data).toHaveLength(1)
      expect(tokens.usage.prompt_tokens).toBe(3)
      const tokenLists = yield* Effect.promise(() =>
        sdk.embeddings.create({
          model: "mock-embedding",
          input: [
            [101, 2023],
            [318, 7, 9]
          ]
        })
      )
      expect(tokenLists.data).toHaveLength(2)
      expect(tokenLists.usage.prompt_tokens).toBe(5)
      expect(norm(tokenLists.data[1]!.embedding)).toBeCloseTo(1, 5)
      expect((yield* provider.counters).served).toBe(5)
    })
  )

  it.scopedLive("streaming: chunks that add up to the completion, a usage chunk when asked; still metered", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ apiKeys: [API_KEY], rpm: 3, tpm: 10_000 })
      const sdk = sdkFor(provider)
      const whole = yield* Effect.promise(() => sdk.chat.completions.create({ model: "mock-model", messages }))

      const { chunks, remaining } = yield* Effect.promise(async () => {
        const { data: stream, response } = await sdk.chat.completions
          .create({ model: "mock-model", messages, stream: true, stream_options: { include_usage: true } })
          .withResponse()
        const chunks: Array<OpenAI.ChatCompletionChunk> = []
        for await (const chunk of stream) chunks.push(chunk)
        return { chunks, remaining: response.headers.get("x-ratelimit-remaining-requests") }
      })
      expect(remaining).toBe("1")
      expect(chunks.every((chunk) => chunk.object === "chat.completion.chunk" && chunk.id === whole.id)).toBe(true)
      expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant")
      const content = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")
      expect(content).toBe(whole.choices[0]!.message.content)
      const withChoices = chunks.filter((chunk) => chunk.choices.length > 0)
      expect(withChoices.at(-1)!.choices[0]!.finish_reason).toBe("stop")
      expect(withChoices.slice(0, -1).every((chunk) => chunk.choices[0]!.finish_reason === null)).toBe(true)
      const last = chunks.at(-1)!
      expect(last.choices).toEqual([])
      expect(last.usage).toEqual(whole.usage)
      expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true)

      // Without include_usage: no usage chunk; the SDK's stream helper assembles the same message.
      const final = yield* Effect.promise(() =>
        sdk.chat.completions.stream({ model: "mock-model", messages }).finalChatCompletion()
      )
      expect(final.choices[0]!.message.content).toBe(whole.choices[0]!.message.content)
      expect(final.choices[0]!.finish_reason).toBe("stop")
      expect(final.usage ?? undefined).toBeUndefined()

      // rpm 3 is spent: a fourth request, streamed, is refused with a 429 like any other.
      const refused = yield* Effect.flip(
        Effect.tryPromise(() => sdk.chat.completions.create({ model: "mock-model", messages, stream: true }))
      )
      expect(refused.cause).toBeInstanceOf(OpenAI.RateLimitError)
      const counters = yield* provider.counters
      expect([counters.served, counters.rateLimited]).toEqual([3, 1])
      const log = yield* provider.log
      expect(log[1]!.chargedTokens).toBe(whole.usage!.total_tokens)
    })
  )

  it.scopedLive("models: the list, one model, and 404 for an unlisted one", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make({ apiKeys: [API_KEY], models: ["mock-model", "mock-1"] })
      const sdk = sdkFor(provider)
      const ids = yield* Effect.promise(async () => {
        const ids: Array<string> = []
        for await (const model of sdk.models.list()) ids.push(model.id)
        return ids
      })
      expect(ids).toEqual(["mock-model", "mock-1"])
      const one = yield* Effect.promise(() => sdk.models.retrieve("mock-1"))
      expect(one).toMatchObject({ id: "mock-1", object: "model", owned_by: "sluice" })
      const missing = yield* Effect.flip(Effect.tryPromise(() => sdk.models.retrieve("gpt-none")))
      expect(missing.cause).toBeInstanceOf(OpenAI.NotFoundError)
      expect((yield* provider.log).map((entry) => [entry.path, entry.status])).toEqual([
        ["/v1/models", 200],
        ["/v1/models/mock-1", 200],
        ["/v1/models/gpt-none", 404]
      ])
    })
  )

  it.scopedLive(
    "a 429 is retried by the SDK's own retry after the server's retry-after-ms, and succeeds",
    () =>
      Effect.gen(function* () {
        // One request per second: the second waits for the first to leave the window (≤ 1 s).
        const provider = yield* MockProvider.make({ apiKeys: [API_KEY], rpm: 1, window: "1 second" })
        const sdk = sdkFor(provider, 2)
        yield* Effect.promise(() => sdk.chat.completions.create({ model: "mock-model", messages }))
        const retried = yield* Effect.promise(() =>
          sdk.chat.completions.create({ model: "mock-model", messages: [{ role: "user", content: "again" }] })
        )
        expect(retried.choices[0]!.message.content?.length).toBeGreaterThan(0)

        const counters = yield* provider.counters
        expect(counters.served).toBe(2)
        // One 429, or two if a timer fired a millisecond early; within the SDK's 2 retries either way.
        expect(counters.rateLimited).toBeGreaterThanOrEqual(1)
        expect(counters.rateLimited).toBeLessThanOrEqual(2)
        const log = yield* provider.log
        const [first, refused] = log
        const last = log.at(-1)!
        expect(refused!.status).toBe(429)
        expect(last.status).toBe(200)
        // The server's retry-after-ms was the time until the first left the window; the
        // SDK's own backoff (≤ 0.5 s for a first retry) would have come back sooner.
        expect(last.time - first!.time).toBeGreaterThanOrEqual(990)
      }),
    30_000
  )
})
