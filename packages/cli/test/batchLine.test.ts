import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as BatchLine from "../src/internal/batchLine.js"
import * as DurationFlag from "../src/internal/durationFlag.js"

const line = (fields: Record<string, unknown>) =>
  JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { model: "m" }, ...fields })

const URLS = "url must be one of /v1/chat/completions, /v1/embeddings, /v1/completions"

describe("an input line", () => {
  it("a valid line becomes a BatchLine with its line number", () => {
    expect(BatchLine.parse(line({}), 7)).toEqual({
      _tag: "Line",
      line: { customId: "a", method: "POST", url: "/v1/chat/completions", body: { model: "m" }, lineNumber: 7 }
    })
    for (const url of ["/v1/embeddings", "/v1/completions"]) {
      expect(BatchLine.parse(line({ url }), 1)).toMatchObject({ _tag: "Line", line: { url } })
    }
  })

  it("each malformation is refused with a reason that does not quote the line", () => {
    const cases: ReadonlyArray<[string, string, string | undefined]> = [
      ['{"custom_id": "a", sk-secret', "not valid JSON", undefined],
      ["[1, 2]", "expected a JSON object", undefined],
      ['"text"', "expected a JSON object", undefined],
      [line({ custom_id: undefined }), "missing custom_id", undefined],
      [line({ custom_id: 42 }), "custom_id must be a non-empty string", undefined],
      [line({ custom_id: "" }), "custom_id must be a non-empty string", undefined],
      [line({ method: "GET" }), 'method must be "POST"', "a"],
      [line({ method: undefined }), 'method must be "POST"', "a"],
      [line({ url: "https://evil.example/v1/chat/completions" }), URLS, "a"],
      [line({ url: "//evil.example/x" }), URLS, "a"],
      [line({ url: 3 }), URLS, "a"],
      // Only the Batch API's endpoints, as OpenAI writes them.
      [line({ url: "/v1/responses" }), URLS, "a"],
      [line({ url: "/chat/completions" }), URLS, "a"],
      [line({ url: "/v1/chat/completions?x=1" }), URLS, "a"],
      [line({ body: "hi" }), "body must be a JSON object", "a"],
      [line({ body: undefined }), "body must be a JSON object", "a"]
    ]
    for (const [text, reason, customId] of cases) {
      const verdict = BatchLine.parse(text, 1)
      expect(verdict, text).toEqual(
        customId === undefined ? { _tag: "Malformed", reason } : { _tag: "Malformed", reason, customId }
      )
      if (verdict._tag === "Malformed") expect(verdict.reason).not.toContain("sk-secret")
    }
  })

  it("a url under the base URL's path is taken once", () => {
    expect(BatchLine.pathUnder("http://127.0.0.1:8080/v1", "/v1/chat/completions")).toBe("/chat/completions")
    expect(BatchLine.pathUnder("http://127.0.0.1:8080/v1/", "/chat/completions")).toBe("/chat/completions")
    expect(BatchLine.pathUnder("http://127.0.0.1:8080", "/v1/chat/completions")).toBe("/v1/chat/completions")
    expect(BatchLine.pathUnder("https://host/v1", "/v1x/embeddings")).toBe("/v1x/embeddings")
  })
})

describe("a duration flag", () => {
  it("reads units and bare seconds; refuses the rest", () => {
    expect(DurationFlag.parse("500ms")).toEqual(Duration.millis(500))
    expect(DurationFlag.parse("30s")).toEqual(Duration.seconds(30))
    expect(DurationFlag.parse("2m")).toEqual(Duration.minutes(2))
    expect(DurationFlag.parse("1.5")).toEqual(Duration.seconds(1.5))
    expect(DurationFlag.parse("0")).toBeUndefined()
    expect(DurationFlag.parse("3x")).toBeUndefined()
    expect(DurationFlag.parse("")).toBeUndefined()
  })
})
