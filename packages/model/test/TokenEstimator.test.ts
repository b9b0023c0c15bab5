import { describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"
import { type Model, TokenEstimator } from "../src/index.js"

const text = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: "grapheme", maxLength: 100 }),
  fc.string({ unit: "binary", maxLength: 100 })
)

const content = fc.oneof(
  text,
  fc.array(
    text.map((part) => ({ type: "text", text: part })),
    { minLength: 1, maxLength: 3 }
  )
)

const messages = fc
  .array(fc.record({ role: fc.constantFrom("system", "user", "assistant"), content }), { minLength: 1, maxLength: 6 })
  .map((generated) => generated as unknown as Model.ChatRequest["messages"])

/** The text the MockProvider counts: every message's content, joined. */
const counted = (request: Model.ChatRequest) =>
  request.messages
    .map((message) =>
      typeof message.content === "string"
        ? message.content
        : (message.content ?? []).map((part) => part.text ?? "").join("")
    )
    .join("")

describe("TokenEstimator.standard", () => {
  it("counts like OpenAI's cookbook: 3 per message, the role, the content, 3 for the reply", () => {
    const request: Model.ChatRequest = {
      model: "m",
      messages: [
        { role: "system", content: "You are a helpful assistant." },
        { role: "user", content: "Hello", name: "ada" }
      ]
    }
    // reply 3; system: 3 + "system" 2 + 28 chars 7; user: 3 + "user" 1 + "Hello" 2 + name 1 + "ada" 1
    expect(TokenEstimator.standard.chat(request)).toEqual({ prompt: 23, maxOutput: 4_096 })
  })

  it("the maximum output is max_completion_tokens, else max_tokens, else the default, times n", () => {
    const base: Model.ChatRequest = { model: "m", messages: [{ role: "user", content: "hi" }] }
    expect(TokenEstimator.standard.chat({ ...base, max_tokens: 100 }).maxOutput).toBe(100)
    expect(TokenEstimator.standard.chat({ ...base, max_tokens: 100, max_completion_tokens: 50 }).maxOutput).toBe(50)
    expect(TokenEstimator.standard.chat({ ...base, max_tokens: 100, n: 3 }).maxOutput).toBe(300)
  })

  it("non-ASCII text counts at half its UTF-8 bytes; images and tools are counted", () => {
    expect(TokenEstimator.textTokens("")).toBe(0)
    expect(TokenEstimator.textTokens("abcd")).toBe(1)
    expect(TokenEstimator.textTokens("日本語")).toBe(5)
    expect(TokenEstimator.textTokens("😀")).toBe(2)
    expect(TokenEstimator.textTokens("é")).toBe(1)
    const plain: Model.ChatRequest = { model: "m", messages: [{ role: "user", content: "look" }] }
    const withImage: Model.ChatRequest = {
      model: "m",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "look" },
            { type: "image_url", image_url: { url: "https://example.com/a.png" } }
          ]
        }
      ]
    }
    expect(TokenEstimator.standard.chat(withImage).prompt - TokenEstimator.standard.chat(plain).prompt).toBe(765)
    const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }]
    expect(TokenEstimator.standard.chat({ ...plain, tools }).prompt).toBeGreaterThan(
      TokenEstimator.standard.chat(plain).prompt + 10
    )
  })

  it("embeddings: each text at least 1 token, token ids as they are, no output", () => {
    expect(TokenEstimator.standard.embed({ model: "m", input: "" })).toEqual({ prompt: 1, maxOutput: 0 })
    expect(TokenEstimator.standard.embed({ model: "m", input: ["abcdefgh", "x"] }).prompt).toBe(3)
    expect(TokenEstimator.standard.embed({ model: "m", input: [1, 2, 3] }).prompt).toBe(3)
    expect(TokenEstimator.standard.embed({ model: "m", input: [[1, 2], [3]] }).prompt).toBe(3)
  })

  it("completions: each prompt's text or token ids; max_tokens (16 unless named) per choice of each prompt", () => {
    expect(TokenEstimator.standard.complete({ model: "m", prompt: "abcdefgh" })).toEqual({ prompt: 2, maxOutput: 16 })
    expect(TokenEstimator.standard.complete({ model: "m", prompt: ["abcd", ""], max_tokens: 5, n: 2 })).toEqual({
      prompt: 2,
      maxOutput: 5 * 2 * 2
    })
    expect(
      TokenEstimator.standard.complete({ model: "m", prompt: [1, 2, 3], max_tokens: 5, best_of: 3, n: 2 })
    ).toEqual({ prompt: 3, maxOutput: 15 })
    expect(TokenEstimator.standard.complete({ model: "m", prompt: [[1, 2], [3]], suffix: "abcd" }).prompt).toBe(4)
  })

  it("a prompt's estimate is at least what the MockProvider counts for it", () =>
    fc.assert(
      fc.property(messages, (generated) => {
        const request: Model.ChatRequest = { model: "m", messages: generated }
        const estimate = TokenEstimator.standard.chat(request)
        expect(estimate.prompt).toBeGreaterThanOrEqual(MockProvider.estimateTokens(counted(request)))
      }),
      { numRuns: 500 }
    ))

  it("an embedding input's estimate is at least what the MockProvider counts", () =>
    fc.assert(
      fc.property(fc.array(text, { minLength: 1, maxLength: 8 }), (inputs) => {
        const request: Model.EmbedRequest = {
          model: "m",
          input: inputs as unknown as readonly [string, ...Array<string>]
        }
        const counts = inputs.reduce((total, input) => total + MockProvider.estimateTokens(input), 0)
        expect(TokenEstimator.standard.embed(request).prompt).toBeGreaterThanOrEqual(counts)
      })
    ))

  it("another message always raises the estimate", () =>
    fc.assert(
      fc.property(messages, text, (generated, extra) => {
        const request: Model.ChatRequest = { model: "m", messages: generated }
        const longer: Model.ChatRequest = { model: "m", messages: [...generated, { role: "user", content: extra }] }
        expect(TokenEstimator.standard.chat(longer).prompt).toBeGreaterThan(
          TokenEstimator.standard.chat(request).prompt
        )
      })
    ))
})

describe("TokenEstimator.make", () => {
  it.effect("other settings", () =>
    Effect.gen(function* () {
      const estimator = yield* TokenEstimator.make({
        charsPerToken: 2,
        perMessage: 0,
        perReply: 0,
        defaultMaxOutput: 10
      })
      expect(estimator.chat({ model: "m", messages: [{ role: "ab", content: "abcd" }] })).toEqual({
        prompt: 3,
        maxOutput: 10
      })
    })
  )

  it.effect("bad settings fail with an InvalidOptionsError naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(TokenEstimator.make({ charsPerToken: 0, defaultMaxOutput: 1.5 }))
      expect(error._tag).toBe("InvalidOptionsError")
      expect(error.message).toContain("charsPerToken")
      expect(error.message).toContain("defaultMaxOutput")
    })
  )
})
