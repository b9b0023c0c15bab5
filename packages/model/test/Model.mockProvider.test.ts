/**
 * The Model against the real MockProvider: real sockets through the real
 * undici pool. The test's Clock does not move while a call runs (`run` only
 * yields real time for the socket I/O), so the token bucket does not refill
 * and its level can be compared exactly with the usage the server reported.
 */
import { describe, expect, it } from "@effect/vitest"
import { ApiClient, EndpointConfig } from "@sluice/http"
import { NodeHttpPool } from "@sluice/http-node"
import * as MockProvider from "@sluice/testing/MockProvider"
import { awaitEvent } from "@sluice/testing/TestEvents"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import { Model, TokenEstimator } from "../src/index.js"

/** Lets real I/O happen without moving the test's clock: waits (bounded in real time) for the call to end. */
const run = <A, E>(effect: Effect.Effect<A, E>) => awaitEvent("the call ends", Effect.exit(effect))

const setup = (
  options: MockProvider.Options = {},
  endpoint: Partial<EndpointConfig.EndpointConfig> = {},
  modelOptions: Model.CallOptions = {}
) =>
  Effect.gen(function* () {
    const provider = yield* MockProvider.make(options)
    const client = yield* Effect.map(
      Layer.build(
        ApiClient.layer({
          name: "mock",
          baseUrl: provider.baseUrl,
          retry: { maxAttempts: 1 },
          limits: { tokens: { limit: 100_000, interval: "1 minute" } },
          ...endpoint
        }).pipe(Layer.provide(NodeHttpPool.layer()))
      ),
      Context.get(ApiClient.ApiClient)
    )
    const model = yield* Model.fromClient(client, modelOptions)
    const tokens = Effect.map(Effect.orDie(client.state()), (buckets) => buckets[0]!.available)
    return { provider, client, model, tokens }
  })

const succeeded = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isFailure(exit)) throw new Error(Cause.pretty(exit.cause))
  return exit.value
}

const chat = (content: string, extra: Partial<Model.ChatRequest> = {}): Model.ChatRequest => ({
  model: "mock-1",
  messages: [
    { role: "system", content: "You are terse." },
    { role: "user", content }
  ],
  ...extra
})

describe("Model against the MockProvider", () => {
  it.scoped("chat: a completion decoded, with its finish reason and usage; the tokens reconciled to it", () =>
    Effect.gen(function* () {
      const { provider, model, tokens } = yield* setup()
      const response = succeeded(yield* run(model.chat(chat("Tell me about sluices"))))
      expect(response.model).toBe("mock-1")
      expect(response.choices).toHaveLength(1)
      expect(response.choices[0]!.message.role).toBe("assistant")
      expect(response.choices[0]!.message.content!.length).toBeGreaterThan(0)
      expect(response.choices[0]!.finish_reason).toBe("stop")
      const usage = response.usage!
      expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
      expect(yield* tokens).toBe(100_000 - usage.total_tokens)

      const capped = succeeded(yield* run(model.chat(chat("Tell me more", { max_tokens: 3 }))))
      expect(capped.choices[0]!.finish_reason).toBe("length")
      expect(capped.usage!.completion_tokens).toBe(3)
      expect(yield* tokens).toBe(100_000 - usage.total_tokens - capped.usage!.total_tokens)
      expect((yield* provider.counters).served).toBe(2)
    })
  )

  it.scoped('outputTokensCharged "maximum": the limiter ends having charged exactly what the server charged', () =>
    Effect.gen(function* () {
      const { provider, model, tokens } = yield* setup({}, {}, { outputTokensCharged: "maximum" })
      const prompts = ["Tell me about sluices", "and weirs", "and the gates of a lock, in detail, with history"]
      let used = 0
      for (const [i, content] of prompts.entries()) {
        used += succeeded(yield* run(model.chat(chat(content, { max_tokens: 40 + i * 30 })))).usage!.total_tokens
      }
      const charged = (yield* provider.log).reduce((sum, entry) => sum + entry.chargedTokens, 0)
      // The answers used fewer than max_tokens; the server charged the maximum, and so did we.
      expect(used).toBeLessThan(charged)
      expect(100_000 - (yield* tokens)).toBe(charged)
    })
  )

  it.scoped("embed: one vector per input, and the usage the server counted", () =>
    Effect.gen(function* () {
      const { model, tokens } = yield* setup()
      const inputs = ["the sluice gate", "holds water back"] as const
      const response = succeeded(yield* run(model.embed({ model: "embed-1", input: inputs, dimensions: 4 })))
      expect(response.data.map((item) => item.index)).toEqual([0, 1])
      for (const item of response.data) {
        expect(item.embedding).toHaveLength(4)
        expect(Math.hypot(...item.embedding)).toBeCloseTo(1, 9)
      }
      const counted = inputs.reduce((total, input) => total + MockProvider.estimateTokens(input), 0)
      expect(response.usage).toEqual({ prompt_tokens: counted, total_tokens: counted })
      expect(yield* tokens).toBe(100_000 - counted)
    })
  )

  it.scoped("the standard estimate is at least what the server counts, and reserves at least what it charges", () =>
    Effect.gen(function* () {
      const { provider, model } = yield* setup()
      const prompts = fc.sample(
        fc.record({
          content: fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: "grapheme", maxLength: 200 })),
          maxTokens: fc.integer({ min: 1, max: 64 })
        }),
        { numRuns: 25, seed: 42 }
      )
      for (const [index, prompt] of prompts.entries()) {
        const request = chat(prompt.content, { max_tokens: prompt.maxTokens })
        const estimate = TokenEstimator.standard.chat(request)
        const response = succeeded(yield* run(model.chat(request)))
        expect(estimate.prompt).toBeGreaterThanOrEqual(response.usage!.prompt_tokens)
        const entry = (yield* provider.log)[index]!
        expect(TokenEstimator.total(estimate)).toBeGreaterThanOrEqual(entry.chargedTokens)
      }
    })
  )

  it.scoped(
    "faults map to Model errors: a 503 is ProviderUnavailable; a request over the server's TPM is TooLarge",
    () =>
      Effect.gen(function* () {
        const { provider, model } = yield* setup()
        yield* provider.setFaults({ serviceUnavailable503: 1 })
        const unavailable = yield* run(model.chat(chat("hello")))
        expect(Exit.isFailure(unavailable) && Cause.failureOption(unavailable.cause)).toMatchObject({
          _tag: "Some",
          value: { _tag: "ModelError", reason: "ProviderUnavailable", kind: "Overloaded", status: 503, retryable: true }
        })
        yield* provider.setFaults({})
        yield* provider.setLimits({ tpm: 10 })
        const tooLarge = yield* run(model.chat(chat("hello", { max_tokens: 50 })))
        expect(Exit.isFailure(tooLarge) && Cause.failureOption(tooLarge.cause)).toMatchObject({
          _tag: "Some",
          value: { _tag: "ModelError", reason: "InvalidRequest", kind: "TooLarge", retryable: false }
        })
      })
  )

  it.scoped("a wrong key is ProviderUnavailable Unauthorized, and the key is nowhere in the error", () =>
    Effect.gen(function* () {
      const key = "sk-mock-wrong-key-123456"
      const { model } = yield* setup(
        { apiKeys: ["sk-mock-right-key"] },
        { auth: { _tag: "Bearer", token: Redacted.make(key) } }
      )
      const exit = yield* run(model.chat(chat("hello")))
      if (Exit.isSuccess(exit)) throw new Error("expected a failure")
      const error = Cause.failureOption(exit.cause)
      expect(error).toMatchObject({
        _tag: "Some",
        value: { _tag: "ModelError", reason: "ProviderUnavailable", kind: "Unauthorized" }
      })
      expect(Cause.pretty(exit.cause)).not.toContain(key)
      expect(JSON.stringify(error)).not.toContain(key)
    })
  )

  it.scoped("the Model layer over a Node pool against the server", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make()
      const model = yield* Effect.map(
        Layer.build(
          Model.layer({ endpoint: { name: "mock", baseUrl: provider.baseUrl } }).pipe(
            Layer.provide(NodeHttpPool.layer({ connections: 4 }))
          )
        ),
        Context.get(Model.Model)
      )
      const response = succeeded(yield* run(model.embed({ model: "embed-1", input: "one" })))
      expect(response.data).toHaveLength(1)
    })
  )

  it.scoped("layerConfig: the endpoint read from the environment", () =>
    Effect.gen(function* () {
      const provider = yield* MockProvider.make()
      const env = ConfigProvider.fromMap(new Map([["OPENAI.BASE_URL", provider.baseUrl]]))
      const model = yield* Effect.map(
        Layer.build(
          Model.layerConfig(EndpointConfig.config("openai", "OPENAI")).pipe(Layer.provide(NodeHttpPool.layer()))
        ),
        Context.get(Model.Model)
      ).pipe(Effect.withConfigProvider(env))
      const response = succeeded(yield* run(model.chat(chat("hello"))))
      expect(response.choices).toHaveLength(1)
    })
  )
})
