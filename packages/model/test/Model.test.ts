/**
 * The Model over the real ApiClient with an in-memory HTTP handler: the wire
 * format, token reservation and reconciliation (asserted through the
 * endpoint limiter's `state()`, under a TestClock that does not move, so the
 * buckets do not refill), the error mapping, and secrets.
 */
import { describe, expect, it } from "@effect/vitest"
import { ApiClient, EndpointConfig } from "@sluice/http"
import * as TestHttpClient from "@sluice/testing/TestHttpClient"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { Model, TokenEstimator } from "../src/index.js"

/** An ApiClient for `config` whose HTTP is `handler`: everything but the socket. */
const layerApiClient = (
  config: EndpointConfig.EndpointConfig,
  handler: TestHttpClient.Handler,
  options?: ApiClient.MakeOptions
) => ApiClient.layer(config, options).pipe(Layer.provide(TestHttpClient.layer(handler)))

const SECRET = "sk-test-0123456789abcdef"

const endpoint = (overrides: Partial<EndpointConfig.EndpointConfig> = {}): EndpointConfig.EndpointConfig => ({
  name: "mock",
  baseUrl: "https://api.example.com/v1",
  auth: { _tag: "Bearer", token: Redacted.make(SECRET) },
  retry: { maxAttempts: 1 },
  limits: {
    requests: { limit: 100, interval: "1 minute" },
    tokens: { limit: 10_000, interval: "1 minute" }
  },
  ...overrides
})

const request = (content = "Say hello", extra: Partial<Model.ChatRequest> = {}): Model.ChatRequest => ({
  model: "gpt-test",
  messages: [{ role: "user", content }],
  ...extra
})

const answer = (usage: { prompt: number; completion: number }, finishReason = "stop") => ({
  status: 200,
  body: {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model: "gpt-test",
    choices: [{ index: 0, message: { role: "assistant", content: "Hello!" }, finish_reason: finishReason }],
    usage: {
      prompt_tokens: usage.prompt,
      completion_tokens: usage.completion,
      total_tokens: usage.prompt + usage.completion
    }
  }
})

const errorBody = (status: number, message: string, type: string, code: string | null, headers = {}) => ({
  status,
  headers,
  body: { error: { message, type, param: null, code } }
})

/** Always estimates 1,000 prompt tokens and 200 of output: 1,200 reserved. */
const fixedEstimator: TokenEstimator.TokenEstimator = {
  chat: () => ({ prompt: 1_000, maxOutput: 200 }),
  embed: () => ({ prompt: 50, maxOutput: 0 }),
  complete: () => ({ prompt: 1_000, maxOutput: 200 })
}

const setup = (
  handler: TestHttpClient.Handler,
  overrides: Partial<EndpointConfig.EndpointConfig> = {},
  options: Model.CallOptions = { estimator: fixedEstimator }
) =>
  Effect.gen(function* () {
    const client = yield* ApiClient.make(endpoint(overrides)).pipe(Effect.provide(TestHttpClient.layer(handler)))
    const model = yield* Model.fromClient(client, options)
    const tokens = Effect.map(
      Effect.orDie(client.state()),
      (buckets) => buckets.find((bucket) => bucket.name === "tokens")!.available
    )
    return { client, model, tokens }
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(`expected a typed failure: ${Cause.pretty(exit.cause)}`)
  return failure.value
}

/** Runs `effect`, moving the clock until it ends (for retries and timeouts). */
const runToEnd = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(Effect.exit(effect))
    for (let i = 0; i < 600 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("1 second")
    return yield* Fiber.join(fiber)
  })

describe("Model.chat", () => {
  it.scoped("sends the request as it is, extra fields and tools included, and decodes the answer", () =>
    Effect.gen(function* () {
      const seen: Array<TestHttpClient.TestRequest> = []
      const { model } = yield* setup((incoming) => {
        seen.push(incoming)
        return answer({ prompt: 10, completion: 5 })
      })
      const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }]
      const response = yield* model.chat(
        request("What is the weather?", { temperature: 0.2, max_tokens: 100, tools, logit_bias: { "50256": -100 } })
      )
      expect(response.choices[0]!.message.content).toBe("Hello!")
      expect(response.usage).toEqual({ prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 })
      expect(seen[0]!.url.pathname).toBe("/v1/chat/completions")
      expect(seen[0]!.body).toEqual({
        model: "gpt-test",
        messages: [{ role: "user", content: "What is the weather?" }],
        temperature: 0.2,
        max_tokens: 100,
        tools,
        logit_bias: { "50256": -100 }
      })
    })
  )

  it.scoped("unknown fields of the answer are kept", () =>
    Effect.gen(function* () {
      const base = answer({ prompt: 1, completion: 1 })
      const { model } = yield* setup(() => ({ ...base, body: { ...base.body, service_tier: "default" } }))
      const response = yield* model.chat(request())
      expect(response.service_tier).toBe("default")
    })
  )

  it.scoped("an invalid request fails with InvalidRequest before anything is reserved or sent", () =>
    Effect.gen(function* () {
      let calls = 0
      const { model, tokens } = yield* setup(() => {
        calls++
        return answer({ prompt: 1, completion: 1 })
      })
      const empty = failureOf(yield* Effect.exit(model.chat({ model: "gpt-test", messages: [] as never })))
      expect(empty).toMatchObject({ _tag: "ModelError", reason: "InvalidRequest" })
      expect(empty).toMatchObject({ kind: "Invalid", retryable: false, provider: "mock" })
      expect(empty.message).toContain("messages")
      const streaming = failureOf(yield* Effect.exit(model.chat(request("hi", { stream: true as never }))))
      expect(streaming.message).toContain("stream: true is not supported")
      const badMax = failureOf(yield* Effect.exit(model.chat(request("hi", { max_tokens: -1 }))))
      expect(badMax.message).toContain("max_tokens")
      expect(calls).toBe(0)
      expect(yield* tokens).toBe(10_000)
    })
  )
})

describe("token accounting", () => {
  it.scoped("the estimate is reserved during the call, then reconciled to the usage (1,200 → 830: 370 back)", () =>
    Effect.gen(function* () {
      const arrived = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const { model, tokens } = yield* setup(() =>
        Effect.zipRight(
          Effect.zipRight(Deferred.succeed(arrived, undefined), Deferred.await(release)),
          Effect.succeed(answer({ prompt: 700, completion: 130 }))
        )
      )
      expect(yield* tokens).toBe(10_000)
      const fiber = yield* Effect.fork(model.chat(request()))
      yield* Deferred.await(arrived)
      expect(yield* tokens).toBe(10_000 - 1_200)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(fiber)
      expect(yield* tokens).toBe(10_000 - 830)
    })
  )

  it.scoped(
    'outputTokensCharged "maximum": reconciled to the reported prompt plus max_tokens, not the output used',
    () =>
      Effect.gen(function* () {
        const { model, tokens } = yield* setup(
          () => answer({ prompt: 700, completion: 130 }),
          {},
          {
            estimator: fixedEstimator,
            outputTokensCharged: "maximum"
          }
        )
        yield* model.chat(request("Say hello", { max_tokens: 200 }))
        // The provider counted its 700 prompt tokens and the 200 asked for: 1,200 → 900.
        expect(yield* tokens).toBe(10_000 - 900)
        yield* model.chat(request("Say hello", { max_completion_tokens: 150 }))
        expect(yield* tokens).toBe(10_000 - 900 - 850)
        // No maximum named: what the answer used, as with "used".
        yield* model.chat(request())
        expect(yield* tokens).toBe(10_000 - 900 - 850 - 830)
        // n choices, each up to max_tokens: 700 + 3 × 100.
        yield* model.chat(request("Say hello", { max_tokens: 100, n: 3 }))
        expect(yield* tokens).toBe(10_000 - 900 - 850 - 830 - 1_000)
      })
  )

  it.scoped("outputTokensCharged refuses a value it does not know, naming the field", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        setup(() => answer({ prompt: 1, completion: 1 }), {}, { outputTokensCharged: "all" as never })
      )
      const error = failureOf(exit)
      expect(error._tag).toBe("InvalidOptionsError")
      expect(error.message).toContain("outputTokensCharged")
    })
  )

  describe("a request larger than the token bucket", () => {
    // A bucket of 1,000 that refills 1,000 a second (a run's pacing bucket), and an estimate of 1,200.
    const paced = { tokens: { limit: 60_000, interval: "1 minute", capacity: 1_000 } } as const
    const at =
      (
        sent: Array<number>,
        response: ReturnType<typeof answer> = answer({ prompt: 700, completion: 130 })
      ): TestHttpClient.Handler =>
      () =>
        Effect.map(TestClock.currentTimeMillis, (now) => {
          sent.push(now)
          return response
        })

    /** A Model that may pay up to 5,000 tokens in installments, and the times its requests were sent. */
    const installments = Effect.gen(function* () {
      const sent: Array<number> = []
      const built = yield* setup(at(sent), { limits: paced }, { estimator: fixedEstimator, maxRequestTokens: 5_000 })
      return { ...built, sent }
    })

    it.scoped("pays in installments within maxRequestTokens: sent once the bucket refilled, reconciled in all", () =>
      Effect.gen(function* () {
        const { sent, model, tokens } = yield* installments
        const fiber = yield* Effect.fork(model.chat(request("Say hello", { max_tokens: 200 })))
        yield* TestClock.adjust("199 millis")
        expect(sent).toEqual([])
        yield* TestClock.adjust("1 milli")
        yield* Fiber.join(fiber)
        // 1,000 at 0 ms, then 200 at 200 ms, when the bucket had them again.
        expect(sent).toEqual([200])
        // 1,200 charged, 830 used: 370 of what has not refilled yet go back.
        expect(yield* tokens).toBe(370)
      })
    )

    it.scoped("interrupted between installments, the pieces taken go back", () =>
      Effect.gen(function* () {
        const { sent, model, tokens } = yield* installments
        const fiber = yield* Effect.fork(model.chat(request("Say hello", { max_tokens: 200 })))
        yield* TestClock.adjust("100 millis")
        expect(yield* tokens).toBe(100)
        yield* Fiber.interrupt(fiber)
        expect(sent).toEqual([])
        expect(yield* tokens).toBe(1_000)
      })
    )

    it.scoped("above maxRequestTokens, or without it, refused at once as TooLarge naming the bound", () =>
      Effect.gen(function* () {
        const sent: Array<number> = []
        const bounded = yield* setup(
          at(sent),
          { limits: paced },
          { estimator: fixedEstimator, maxRequestTokens: 1_100 }
        )
        const over = failureOf(yield* Effect.exit(bounded.model.chat(request("Say hello", { max_tokens: 200 }))))
        expect(over).toMatchObject({ _tag: "ModelError", reason: "InvalidRequest", kind: "TooLarge" })
        expect(over.message).toContain("maxRequestTokens 1100")
        const unbounded = yield* setup(at(sent), { limits: paced }, { estimator: fixedEstimator })
        const refused = failureOf(yield* Effect.exit(unbounded.model.chat(request("Say hello", { max_tokens: 200 }))))
        expect(refused.message).toContain('the capacity 1000 of the "tokens" limit')
        expect(sent).toEqual([])
        expect(yield* bounded.tokens).toBe(1_000)
      })
    )
  })

  it.scoped("a usage above the estimate is charged", () =>
    Effect.gen(function* () {
      const { model, tokens } = yield* setup(() => answer({ prompt: 1_500, completion: 300 }))
      yield* model.chat(request())
      expect(yield* tokens).toBe(10_000 - 1_800)
    })
  )

  it.scoped("an answer without usage leaves the estimate charged", () =>
    Effect.gen(function* () {
      const base = answer({ prompt: 1, completion: 1 })
      const { usage: _, ...body } = base.body
      const { model, tokens } = yield* setup(() => ({ status: 200, body }))
      const response = yield* model.chat(request())
      expect(response.usage).toBeUndefined()
      expect(yield* tokens).toBe(10_000 - 1_200)
    })
  )

  it.scoped("each call is one admission: one request and its tokens together, settled to the usage", () =>
    Effect.gen(function* () {
      const { model, client } = yield* setup(() => answer({ prompt: 700, completion: 130 }))
      yield* model.chat(request())
      yield* model.chat(request())
      const buckets = yield* Effect.orDie(client.state())
      expect(buckets.find((bucket) => bucket.name === "requests")!.available).toBe(98)
      expect(buckets.find((bucket) => bucket.name === "tokens")!.available).toBe(10_000 - 2 * 830)
    })
  )

  it.scoped("embeddings are reconciled too", () =>
    Effect.gen(function* () {
      const { model, tokens } = yield* setup(() => ({
        status: 200,
        body: {
          object: "list",
          data: [{ object: "embedding", index: 0, embedding: [0.6, 0.8] }],
          model: "embed-test",
          usage: { prompt_tokens: 12, total_tokens: 12 }
        }
      }))
      const response = yield* model.embed({ model: "embed-test", input: "hello" })
      expect(response.data[0]!.embedding).toEqual([0.6, 0.8])
      expect(yield* tokens).toBe(10_000 - 12)
    })
  )

  describe("complete (the legacy /completions)", () => {
    const completionAnswer = (usage: { prompt: number; completion: number }) => ({
      status: 200,
      body: {
        id: "cmpl-1",
        object: "text_completion",
        created: 1,
        model: "text-test",
        choices: [{ index: 0, text: " hello", finish_reason: "stop", logprobs: null }],
        usage: {
          prompt_tokens: usage.prompt,
          completion_tokens: usage.completion,
          total_tokens: usage.prompt + usage.completion
        }
      }
    })

    it.scoped("posts to /completions, reserves the prompt plus max_tokens, reconciles to the usage", () =>
      Effect.gen(function* () {
        const arrived = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const seen: Array<TestHttpClient.TestRequest> = []
        const { model, tokens } = yield* setup(
          (incoming) => {
            seen.push(incoming)
            return Effect.zipRight(
              Effect.zipRight(Deferred.succeed(arrived, undefined), Deferred.await(release)),
              Effect.succeed(completionAnswer({ prompt: 3, completion: 2 }))
            )
          },
          {},
          {}
        )
        const body = { model: "text-test", prompt: "x".repeat(40), max_tokens: 100, echo: false }
        const fiber = yield* Effect.fork(model.complete(body))
        yield* Deferred.await(arrived)
        // The standard estimate: 40 characters are 10 tokens, and the 100 asked for.
        expect(TokenEstimator.standard.complete(body)).toEqual({ prompt: 10, maxOutput: 100 })
        expect(yield* tokens).toBe(10_000 - 110)
        yield* Deferred.succeed(release, undefined)
        const response = yield* Fiber.join(fiber)
        expect(response.choices[0]!.text).toBe(" hello")
        expect(yield* tokens).toBe(10_000 - 5)
        expect(seen[0]!.url.pathname).toBe("/v1/completions")
        expect(seen[0]!.body).toEqual(body)
      })
    )

    it.scoped(
      'outputTokensCharged "maximum": the prompt plus max_tokens (16 unless named) per choice of each prompt',
      () =>
        Effect.gen(function* () {
          const { model, tokens } = yield* setup(
            () => completionAnswer({ prompt: 7, completion: 2 }),
            {},
            {
              outputTokensCharged: "maximum"
            }
          )
          yield* model.complete({ model: "text-test", prompt: "hello" })
          expect(yield* tokens).toBe(10_000 - (7 + 16))
          yield* model.complete({ model: "text-test", prompt: ["a", "b"], max_tokens: 10, n: 3 })
          expect(yield* tokens).toBe(10_000 - 23 - (7 + 10 * 3 * 2))
          expect(
            Model.chargedCompletionTokens(
              { model: "m", prompt: [[1, 2], [3]], best_of: 4, n: 2 },
              { prompt_tokens: 3 },
              "maximum"
            )
          ).toBe(3 + 16 * 4 * 2)
        })
    )

    it.scoped("a body that is not a completions request fails InvalidRequest naming the field, nothing sent", () =>
      Effect.gen(function* () {
        let calls = 0
        const { model, tokens } = yield* setup(() => {
          calls++
          return completionAnswer({ prompt: 1, completion: 1 })
        })
        const error = failureOf(yield* Effect.exit(model.complete({ model: "text-test" } as never)))
        expect(error).toMatchObject({ _tag: "ModelError", reason: "InvalidRequest", operation: "complete" })
        expect(error.message).toContain("prompt")
        const streaming = failureOf(
          yield* Effect.exit(model.complete({ model: "text-test", prompt: "x", stream: true as never }))
        )
        expect(streaming.message).toContain("stream: true is not supported")
        expect(calls).toBe(0)
        expect(yield* tokens).toBe(10_000)
      })
    )
  })

  it.scoped("a refused call gives the whole estimate back", () =>
    Effect.gen(function* () {
      const { model, tokens } = yield* setup(() =>
        errorBody(400, "Invalid value for 'temperature'", "invalid_request_error", "invalid_value")
      )
      yield* Effect.exit(model.chat(request()))
      expect(yield* tokens).toBe(10_000)
    })
  )

  it.scoped("a timeout leaves the estimate charged: the provider may have done the work", () =>
    Effect.gen(function* () {
      // 10,000 tokens per 50 s: 5 s refill exactly 1,000.
      const { model, tokens } = yield* setup(() => Effect.never, {
        timeout: "5 seconds",
        limits: { tokens: { limit: 10_000, interval: "50 seconds" } }
      })
      const fiber = yield* Effect.fork(Effect.exit(model.chat(request())))
      yield* TestClock.adjust("5 seconds")
      const exit = yield* Fiber.join(fiber)
      expect(failureOf(exit)).toMatchObject({
        _tag: "ModelError",
        reason: "ProviderUnavailable",
        kind: "Timeout",
        retryable: true
      })
      expect(yield* tokens).toBe(10_000 - 1_200 + 1_000)
    })
  )

  it.scoped("interrupted before it was sent (queued), the reservation is given back", () =>
    Effect.gen(function* () {
      const arrived = yield* Deferred.make<void>()
      const { model, tokens } = yield* setup(
        () => Effect.zipRight(Deferred.succeed(arrived, undefined), Effect.never),
        { limits: { ...endpoint().limits, concurrency: 1 } }
      )
      const first = yield* Effect.fork(model.chat(request("first")))
      yield* Deferred.await(arrived)
      const second = yield* Effect.fork(model.chat(request("second")))
      yield* Effect.yieldNow()
      yield* TestClock.adjust(0)
      expect(yield* tokens).toBe(10_000 - 2 * 1_200)
      yield* Fiber.interrupt(second)
      expect(yield* tokens).toBe(10_000 - 1_200)
      // The first was sent: interrupted, its estimate stands.
      yield* Fiber.interrupt(first)
      expect(yield* tokens).toBe(10_000 - 1_200)
    })
  )

  it.scoped("a request larger than the token limit fails at once with InvalidRequest TooLarge", () =>
    Effect.gen(function* () {
      const { model } = yield* setup(() => answer({ prompt: 1, completion: 1 }), {}, {})
      const error = failureOf(yield* Effect.exit(model.chat(request("hi", { max_tokens: 20_000 }))))
      expect(error).toMatchObject({ _tag: "ModelError", reason: "InvalidRequest", kind: "TooLarge", retryable: false })
      expect(error.message).toContain('capacity 10000 of the "tokens" limit')
    })
  )

  it.scoped("without max_tokens, a default maximum larger than the limit is reserved at the limit's capacity", () =>
    Effect.gen(function* () {
      const estimator = yield* TokenEstimator.make({ defaultMaxOutput: 50_000 })
      const arrived = yield* Deferred.make<void>()
      const { model, tokens } = yield* setup(
        () => Effect.zipRight(Deferred.succeed(arrived, undefined), Effect.never),
        {},
        { estimator }
      )
      const fiber = yield* Effect.fork(model.chat(request()))
      yield* Deferred.await(arrived)
      expect(yield* tokens).toBe(0)
      yield* Fiber.interrupt(fiber)
    })
  )

  it.scoped("no token limit on the endpoint: nothing is reserved, the call goes through", () =>
    Effect.gen(function* () {
      const { model, client } = yield* setup(() => answer({ prompt: 1, completion: 1 }), {
        limits: { requests: { limit: 10, interval: "1 minute" } }
      })
      yield* model.chat(request())
      const buckets = yield* Effect.orDie(client.state())
      expect(buckets).toHaveLength(1)
      expect(buckets[0]!.available).toBe(9)
    })
  )

  it.scoped("the estimator is pluggable, and the default one is used without one", () =>
    Effect.gen(function* () {
      const seen: Array<Model.ChatRequest> = []
      const arrived = yield* Deferred.make<void>()
      const custom: TokenEstimator.TokenEstimator = {
        ...TokenEstimator.standard,
        chat: (chatRequest) => {
          seen.push(chatRequest)
          return { prompt: 42, maxOutput: 8 }
        }
      }
      const { model, tokens } = yield* setup(
        () => Effect.zipRight(Deferred.succeed(arrived, undefined), Effect.never),
        {},
        { estimator: custom }
      )
      const fiber = yield* Effect.fork(model.chat(request("count me")))
      yield* Deferred.await(arrived)
      expect(seen[0]!.messages[0]!.content).toBe("count me")
      expect(yield* tokens).toBe(10_000 - 50)
      yield* Fiber.interrupt(fiber)

      const standardArrived = yield* Deferred.make<void>()
      const standard = yield* setup(
        () => Effect.zipRight(Deferred.succeed(standardArrived, undefined), Effect.never),
        {},
        {}
      )
      const withMax = request("x".repeat(40), { max_tokens: 100 })
      const other = yield* Effect.fork(standard.model.chat(withMax))
      yield* Deferred.await(standardArrived)
      expect(yield* standard.tokens).toBe(10_000 - TokenEstimator.total(TokenEstimator.standard.chat(withMax)))
      yield* Fiber.interrupt(other)
    })
  )

  it.scoped("an estimator answering nonsense fails the call with InvalidRequest", () =>
    Effect.gen(function* () {
      const { model } = yield* setup(
        () => answer({ prompt: 1, completion: 1 }),
        {},
        {
          estimator: { ...TokenEstimator.standard, chat: () => ({ prompt: Number.NaN, maxOutput: 1 }) }
        }
      )
      const error = failureOf(yield* Effect.exit(model.chat(request())))
      expect(error).toMatchObject({ _tag: "ModelError", reason: "InvalidRequest", kind: "Invalid" })
      expect(error.message).toContain("token estimator")
    })
  )
})

describe("error mapping", () => {
  const mapped = (response: TestHttpClient.TestResponse, overrides: Partial<EndpointConfig.EndpointConfig> = {}) =>
    Effect.gen(function* () {
      const { model } = yield* setup(() => response, overrides)
      return failureOf(yield* runToEnd(model.chat(request())))
    })

  it.scoped("400 context_length_exceeded → ContextTooLong, with the numbers the provider gave", () =>
    Effect.gen(function* () {
      const error = yield* mapped(
        errorBody(
          400,
          "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.",
          "invalid_request_error",
          "context_length_exceeded"
        )
      )
      expect(error).toMatchObject({ _tag: "ModelError", reason: "ContextTooLong" })
      expect(error).toMatchObject({
        maxContextTokens: 8192,
        requestedTokens: 9000,
        estimatedPromptTokens: 1_000,
        retryable: false,
        provider: "mock",
        model: "gpt-test",
        operation: "chat"
      })
      expect(error.message).toContain("context window of 8192 tokens")
    })
  )

  it.scoped("a context error said only in words → ContextTooLong", () =>
    Effect.gen(function* () {
      const error = yield* mapped({ status: 400, body: { error: { message: "prompt is too long: 210000 tokens" } } })
      expect(error).toMatchObject({ _tag: "ModelError", reason: "ContextTooLong" })
    })
  )

  it.scoped("400 content_policy_violation → ContentFiltered (request)", () =>
    Effect.gen(function* () {
      const error = yield* mapped(
        errorBody(
          400,
          "Your request was rejected by the safety system",
          "invalid_request_error",
          "content_policy_violation"
        )
      )
      expect(error).toMatchObject({
        _tag: "ModelError",
        reason: "ContentFiltered",
        source: "request",
        retryable: false
      })
    })
  )

  it.scoped("an answer whose every choice was filtered → ContentFiltered (response), its usage reconciled", () =>
    Effect.gen(function* () {
      const { model, tokens } = yield* setup(() => answer({ prompt: 700, completion: 3 }, "content_filter"))
      const error = failureOf(yield* Effect.exit(model.chat(request())))
      expect(error).toMatchObject({ _tag: "ModelError", reason: "ContentFiltered", source: "response" })
      expect((error as Model.ModelError).response?.usage?.total_tokens).toBe(703)
      expect(yield* tokens).toBe(10_000 - 703)
    })
  )

  it.scoped("429 → RateLimited with its retryAfter", () =>
    Effect.gen(function* () {
      const error = yield* mapped(
        errorBody(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded", {
          "retry-after-ms": "1500"
        })
      )
      expect(error).toMatchObject({ _tag: "ModelError", reason: "RateLimited" })
      const limited = error as Model.ModelError
      expect(limited.retryable).toBe(true)
      expect(limited.retryAfterMillis).toBe(1500)
      expect(limited.message).toContain("retry after 1500 ms")
    })
  )

  it.scoped("429 insufficient_quota → ProviderUnavailable QuotaExhausted, not retryable", () =>
    Effect.gen(function* () {
      const error = yield* mapped(
        errorBody(429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota")
      )
      expect(error).toMatchObject({
        _tag: "ModelError",
        reason: "ProviderUnavailable",
        kind: "QuotaExhausted",
        retryable: false
      })
    })
  )

  it.scoped("503 → ProviderUnavailable Overloaded; 500 → ServerError; both retryable", () =>
    Effect.gen(function* () {
      expect(yield* mapped(errorBody(503, "overloaded", "server_error", null))).toMatchObject({
        _tag: "ModelError",
        reason: "ProviderUnavailable",
        kind: "Overloaded",
        status: 503,
        retryable: true
      })
      expect(yield* mapped(errorBody(500, "oops", "server_error", null))).toMatchObject({
        reason: "ProviderUnavailable",
        kind: "ServerError",
        status: 500,
        retryable: true
      })
    })
  )

  it.scoped("a reset connection → ProviderUnavailable Transport", () =>
    Effect.gen(function* () {
      expect(yield* mapped({ reset: true })).toMatchObject({
        _tag: "ModelError",
        reason: "ProviderUnavailable",
        kind: "Transport"
      })
    })
  )

  it.scoped("another 4xx → InvalidRequest Rejected with the provider's code; 404 too", () =>
    Effect.gen(function* () {
      expect(
        yield* mapped(errorBody(400, "Invalid value for 'temperature'", "invalid_request_error", "invalid_value"))
      ).toMatchObject({
        _tag: "ModelError",
        reason: "InvalidRequest",
        kind: "Rejected",
        status: 400,
        code: "invalid_value",
        retryable: false
      })
      expect(
        yield* mapped(errorBody(404, "The model does not exist", "invalid_request_error", "model_not_found"))
      ).toMatchObject({
        _tag: "ModelError",
        reason: "InvalidRequest",
        kind: "Rejected",
        status: 404,
        code: "model_not_found"
      })
    })
  )

  it.scoped("401 → ProviderUnavailable Unauthorized (another provider may serve)", () =>
    Effect.gen(function* () {
      expect(
        yield* mapped(errorBody(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
      ).toMatchObject({ _tag: "ModelError", reason: "ProviderUnavailable", kind: "Unauthorized", retryable: false })
    })
  )

  it.scoped("an answer that is not the OpenAI shape → InvalidRequest Undecodable", () =>
    Effect.gen(function* () {
      const error = yield* mapped({ status: 200, body: { hello: "world" } })
      expect(error).toMatchObject({ _tag: "ModelError", reason: "InvalidRequest", kind: "Undecodable", status: 200 })
      expect(error.message).toContain('["id"] is missing')
    })
  )

  it.scoped("an open breaker → ProviderUnavailable CircuitOpen with retryAfter", () =>
    Effect.gen(function* () {
      const { model } = yield* setup(() => errorBody(500, "oops", "server_error", null), {
        breaker: { policy: { kind: "consecutive", failures: 1 }, openDuration: "30 seconds" }
      })
      yield* Effect.exit(model.chat(request()))
      const error = failureOf(yield* Effect.exit(model.chat(request())))
      expect(error).toMatchObject({
        _tag: "ModelError",
        reason: "ProviderUnavailable",
        kind: "CircuitOpen",
        retryable: false
      })
      expect((error as Model.ModelError).retryAfterMillis).toBe(30_000)
    })
  )

  it.scoped("the endpoint's retries run first: a 503 then an answer succeeds", () =>
    Effect.gen(function* () {
      let calls = 0
      const { model } = yield* setup(
        () =>
          ++calls === 1 ? errorBody(503, "overloaded", "server_error", null) : answer({ prompt: 5, completion: 5 }),
        { retry: { maxAttempts: 3, base: "100 millis", jitter: "none" } }
      )
      const exit = yield* runToEnd(model.chat(request()))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(calls).toBe(2)
    })
  )
})

describe("one admission per attempt", () => {
  it.scoped("a 503 then an answer: two admissions, each of 1 request + the estimate; refunded, then reconciled", () =>
    Effect.gen(function* () {
      const perDay = {
        requests: { limit: 100, interval: "1 day" },
        tokens: { limit: 10_000, interval: "1 day" }
      } as const
      let calls = 0
      /** The buckets as each attempt's request reaches the provider (rounded: a day's refill over ms is a fraction). */
      const seenAtCall: Array<Record<string, number>> = []
      let client: ApiClient.ApiClientShape | undefined
      const snapshot = Effect.suspend(() =>
        Effect.map(Effect.orDie(client!.state()), (buckets) =>
          Object.fromEntries(buckets.map((bucket) => [bucket.name, Math.round(bucket.available)]))
        )
      )
      const handler: TestHttpClient.Handler = () =>
        Effect.map(snapshot, (buckets) => {
          seenAtCall.push(buckets)
          return ++calls === 1
            ? errorBody(503, "overloaded", "server_error", null)
            : answer({ prompt: 700, completion: 130 })
        })
      const built = yield* setup(handler, {
        limits: perDay,
        retry: { maxAttempts: 3, base: "100 millis", jitter: "none" }
      })
      client = built.client
      const events = yield* client.progress!.subscribe
      const fiber = yield* Effect.fork(built.model.chat(request()))
      for (let i = 0; i < 20 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("100 millis")
      yield* Fiber.join(fiber)

      // Each attempt was admitted once, charging 1 request and the whole estimate (1,200) together.
      expect(seenAtCall).toEqual([
        { requests: 99, tokens: 10_000 - 1_200 },
        // The 503 did no billable work: its 1,200 went back (its request stays spent); the retry took 1 + 1,200 again.
        { requests: 98, tokens: 10_000 - 1_200 }
      ])
      // After the answer: reconciled to its usage (830), requests kept.
      expect(yield* snapshot).toEqual({ requests: 98, tokens: 10_000 - 830 })
      const calling = (yield* events.takeAll).pipe(Chunk.toReadonlyArray).filter((event) => event.status === "CALLING")
      expect(calling.map((event) => ({ attempts: event.attempts, cost: event.cost }))).toEqual([
        { attempts: 1, cost: { tokens: 1_200 } },
        { attempts: 2, cost: { tokens: 1_200 } }
      ])
    })
  )
})

describe("secrets", () => {
  it.scoped("no error, message or cause holds the API key, even when the provider echoes it", () =>
    Effect.gen(function* () {
      const echoes: ReadonlyArray<TestHttpClient.TestResponse> = [
        errorBody(401, `Incorrect API key provided: ${SECRET}`, "invalid_request_error", "invalid_api_key"),
        errorBody(400, `Bad request from Bearer ${SECRET}`, "invalid_request_error", "invalid_value"),
        errorBody(400, `maximum context length is 10 tokens for ${SECRET}`, "x", "context_length_exceeded"),
        errorBody(500, `internal error ${SECRET}`, "server_error", null),
        { status: 200, body: `{"id": "${SECRET}"` },
        { status: 200, body: { ...answer({ prompt: 1, completion: 1 }).body, created: SECRET } }
      ]
      for (const echo of echoes) {
        const { model } = yield* setup(() => echo)
        const exit = yield* Effect.exit(model.chat(request()))
        const error = failureOf(exit)
        expect(Model.isModelError(error)).toBe(true)
        for (const text of [
          error.message,
          String(error),
          JSON.stringify(error),
          Cause.pretty((exit as Exit.Failure<never, unknown>).cause)
        ]) {
          expect(text).not.toContain(SECRET)
        }
      }
    })
  )
})

describe("options", () => {
  it.scoped("a token limit the endpoint does not have is an InvalidOptionsError naming it", () =>
    Effect.gen(function* () {
      const client = yield* ApiClient.make(endpoint()).pipe(
        Effect.provide(TestHttpClient.layer(() => answer({ prompt: 1, completion: 1 })))
      )
      const error = yield* Effect.flip(Model.fromClient(client, { tokenLimit: "input-tokens" }))
      expect(error._tag).toBe("InvalidOptionsError")
      expect(error.message).toContain('no limit "input-tokens"')
      const badPath = yield* Effect.flip(Model.fromClient(client, { chatPath: "chat" }))
      expect(badPath.message).toContain("chatPath")
    })
  )

  it.scoped("make over an endpoint builds its ApiClient on the HttpClient in context", () =>
    Effect.gen(function* () {
      const model = yield* Model.make({ endpoint: endpoint(), estimator: fixedEstimator }).pipe(
        Effect.provide(TestHttpClient.layer(() => answer({ prompt: 3, completion: 4 })))
      )
      const response = yield* model.chat(request())
      expect(response.usage?.total_tokens).toBe(7)
      const invalid = yield* Effect.flip(
        Model.make({ endpoint: endpoint({ baseUrl: "not a url" }) }).pipe(
          Effect.provide(TestHttpClient.layer(() => answer({ prompt: 3, completion: 4 })))
        )
      )
      expect(invalid.message).toContain("baseUrl")
    })
  )

  it.effect("layerApiClient: the Model over the ApiClient in context", () =>
    Effect.gen(function* () {
      const model = yield* Model.Model
      const response = yield* model.chat(request())
      expect(response.usage?.total_tokens).toBe(2)
    }).pipe(
      Effect.provide(
        Model.layerApiClient().pipe(
          Layer.provide(layerApiClient(endpoint(), () => answer({ prompt: 1, completion: 1 })))
        )
      )
    )
  )

  it.effect("layerConfig: the endpoint read from Config; a missing value is a ConfigError", () =>
    Effect.gen(function* () {
      const layer = Model.layerConfig(EndpointConfig.config("openai", "OPENAI")).pipe(
        Layer.provide(TestHttpClient.layer(() => answer({ prompt: 1, completion: 1 })))
      )
      const missing = yield* Effect.flip(
        Layer.build(layer).pipe(Effect.scoped, Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
      )
      expect(String(missing)).toContain("BASE_URL")
    })
  )
})
