/**
 * The ApiClient's and the Model's errors do not collide: each layer has one
 * error type with its own `_tag` (`ApiError`, `ModelError`), refined by a
 * `reason`, so `Effect.catchTag` tells a 429 seen by the ApiClient from the
 * Model's rate limit, though both have the reason `RateLimited`.
 */
import { describe, expect, it } from "@effect/vitest"
import { ApiClient, ApiError, type EndpointConfig } from "@sluice/http"
import * as TestHttpClient from "@sluice/testing/TestHttpClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Model } from "../src/index.js"

const apiLimited = ApiError.ApiError.rateLimited({
  endpoint: "openai",
  method: "POST",
  path: "/chat/completions",
  status: 429,
  excerpt: "",
  retryAfterMillis: 2000
})

const modelLimited = Model.ModelError.rateLimited({
  provider: "openai",
  model: "gpt-test",
  operation: "chat",
  retryAfterMillis: 2000
})

/** Tells the layers apart by `_tag` alone. */
const layerOf = <A>(effect: Effect.Effect<A, ApiClient.CallError | Model.ModelError>) =>
  effect.pipe(
    Effect.as("answered"),
    Effect.catchTag("ApiError", (error) => Effect.succeed(`http ${error.reason}`)),
    Effect.catchTag("ModelError", (error) => Effect.succeed(`model ${error.reason}`))
  )

describe("ApiError and ModelError", () => {
  it.effect("a RateLimited from each layer is caught by its own tag, never by the other's", () =>
    Effect.gen(function* () {
      expect(yield* layerOf(Effect.fail(apiLimited))).toBe("http RateLimited")
      expect(yield* layerOf(Effect.fail(modelLimited))).toBe("model RateLimited")

      // Catching one layer's errors lets the other's through untouched.
      const failing: Effect.Effect<string, ApiError.ApiError | Model.ModelError> = Effect.fail(modelLimited)
      const passed = yield* Effect.flip(failing.pipe(Effect.catchTag("ApiError", () => Effect.succeed("caught"))))
      expect(passed).toBe(modelLimited)
      const other: Effect.Effect<string, ApiError.ApiError | Model.ModelError> = Effect.fail(apiLimited)
      expect(yield* Effect.flip(other.pipe(Effect.catchTag("ModelError", () => Effect.succeed("caught"))))).toBe(
        apiLimited
      )
    })
  )

  it.effect("each says whether to retry, and its message names what went wrong", () =>
    Effect.sync(() => {
      expect(apiLimited).toMatchObject({ _tag: "ApiError", reason: "RateLimited", retryable: true })
      expect(apiLimited.message).toBe(
        'POST /chat/completions on endpoint "openai" was rate limited (429); retry after 2000 ms'
      )
      expect(
        ApiError.ApiError.rateLimited({
          endpoint: "openai",
          method: "POST",
          path: "/chat/completions",
          status: 429,
          excerpt: "",
          shouldRetry: false
        }).retryable
      ).toBe(false)

      expect(modelLimited).toMatchObject({ _tag: "ModelError", reason: "RateLimited", retryable: true })
      expect(modelLimited.message).toBe(
        'chat with model "gpt-test" on provider "openai" was rate limited by the provider; retry after 2000 ms'
      )
      expect(
        Model.ModelError.rateLimited({ provider: "openai", model: "gpt-test", operation: "chat", retryable: false })
          .retryable
      ).toBe(false)
    })
  )

  it.scoped("over one endpoint, the ApiClient's 429 is an ApiError and the Model's a ModelError holding it", () =>
    Effect.gen(function* () {
      const endpoint: EndpointConfig.EndpointConfig = {
        name: "openai",
        baseUrl: "https://api.example.com/v1",
        retry: { maxAttempts: 1 }
      }
      const handler: TestHttpClient.Handler = () => ({
        status: 429,
        headers: { "retry-after-ms": "1500" },
        body: { error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } }
      })
      const client = yield* ApiClient.make(endpoint).pipe(Effect.provide(TestHttpClient.layer(handler)))
      const model = yield* Model.fromClient(client)

      const direct = client.post("/chat/completions", { schema: Schema.Unknown, body: {} })
      const chat = model.chat({ model: "gpt-test", messages: [{ role: "user", content: "hi" }] })
      expect(yield* layerOf(direct)).toBe("http RateLimited")
      expect(yield* layerOf(chat)).toBe("model RateLimited")

      const error = yield* Effect.flip(chat)
      expect(error).toMatchObject({ reason: "RateLimited", retryable: true, retryAfterMillis: 1500 })
      expect(error.cause).toMatchObject({ _tag: "ApiError", reason: "RateLimited", status: 429 })
      expect(error.message).toContain('on provider "openai" was rate limited by the provider')
    })
  )
})
