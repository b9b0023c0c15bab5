import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Model, TokenEstimator } from "../src/index.js"

const request: Model.ChatRequest = { model: "gpt-test", messages: [{ role: "user", content: "What is 6 × 7?" }] }

describe("Model.layerTest", () => {
  it.effect("answers a canned completion by default, with a usage", () =>
    Effect.gen(function* () {
      const model = yield* Model.Model
      const response = yield* model.chat(request)
      expect(response.choices[0]!.message.content).toBe("This is a canned completion.")
      expect(response.choices[0]!.finish_reason).toBe("stop")
      expect(response.usage!.prompt_tokens).toBe(TokenEstimator.standard.chat(request).prompt)
      expect(response.usage!.total_tokens).toBe(response.usage!.prompt_tokens + response.usage!.completion_tokens)
    }).pipe(Effect.provide(Model.layerTest()))
  )

  it.effect("answers from the handler; a handler may fail with a Model error", () =>
    Effect.gen(function* () {
      const seen: Array<Model.ChatRequest> = []
      const layer = Model.layerTest({
        chat: (incoming) => {
          seen.push(incoming)
          return incoming.messages.length > 1
            ? Effect.fail(
                Model.ModelError.rateLimited({
                  provider: "test",
                  model: incoming.model,
                  operation: "chat",
                  retryAfterMillis: 500
                })
              )
            : Model.completion(incoming, "42")
        }
      })
      const model = yield* Effect.provide(Model.Model, layer)
      expect((yield* model.chat(request)).choices[0]!.message.content).toBe("42")
      const error = yield* Effect.flip(
        model.chat({ ...request, messages: [...request.messages, { role: "user", content: "again" }] })
      )
      expect(error).toMatchObject({ _tag: "ModelError", reason: "RateLimited" })
      expect(error.retryable).toBe(true)
      expect((error as Model.ModelError).retryAfter).toBeDefined()
      expect(seen).toHaveLength(2)
    })
  )

  it.effect("validates requests like the real Model, and fails an answer whose every choice was filtered", () =>
    Effect.gen(function* () {
      const model = Model.makeTest({
        chat: (incoming) => Model.completion(incoming, "", { finishReason: "content_filter" })
      })
      const invalid = yield* Effect.flip(model.chat({ model: "", messages: [{ role: "user", content: "x" }] }))
      expect(invalid).toMatchObject({ _tag: "ModelError", reason: "InvalidRequest", kind: "Invalid" })
      const filtered = yield* Effect.flip(model.chat(request))
      expect(filtered).toMatchObject({ _tag: "ModelError", reason: "ContentFiltered", source: "response" })
    })
  )

  it.effect("canned embeddings: unit vectors, the same for the same input", () =>
    Effect.gen(function* () {
      const model = Model.makeTest()
      const first = yield* model.embed({ model: "embed-test", input: ["a", "b"], dimensions: 16 })
      const again = yield* model.embed({ model: "embed-test", input: "a", dimensions: 16 })
      expect(first.data).toHaveLength(2)
      expect(first.data[0]!.embedding).toHaveLength(16)
      expect(Math.hypot(...first.data[0]!.embedding)).toBeCloseTo(1, 9)
      expect(again.data[0]!.embedding).toEqual(first.data[0]!.embedding)
      expect(first.data[1]!.embedding).not.toEqual(first.data[0]!.embedding)
      expect(first.usage).toEqual({ prompt_tokens: 2, total_tokens: 2 })
    })
  )
})
