import { describe, expect, it } from "@effect/vitest"
import * as BatchOutput from "../src/internal/batchOutput.js"

const extras = { line: 3, attempts: 2, startedAt: Date.UTC(2026, 0, 1), finishedAt: Date.UTC(2026, 0, 1) + 250 }

describe("an output record", () => {
  it("a success: OpenAI's four fields, Sluice's account in `sluice`", () => {
    const record = BatchOutput.succeeded(
      "a",
      { statusCode: 200, requestId: "req_1", body: { object: "chat.completion" } },
      { ...extras, usage: { promptTokens: 5, completionTokens: 7 } }
    )
    expect(record).toEqual({
      id: expect.stringMatching(/^batch_req_[0-9a-f]{32}$/),
      custom_id: "a",
      response: { status_code: 200, request_id: "req_1", body: { object: "chat.completion" } },
      error: null,
      sluice: {
        status: "succeeded",
        line: 3,
        attempts: 2,
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:00:00.250Z",
        duration_ms: 250,
        usage: { prompt_tokens: 5, completion_tokens: 7 }
      }
    })
    // No request id from the server: null, as the field is always there.
    expect(BatchOutput.succeeded("a", { statusCode: 200, requestId: undefined, body: {} }, extras).response).toEqual({
      status_code: 200,
      request_id: null,
      body: {}
    })
  })

  it("a failure's code: by the status the provider answered, else by the kind", () => {
    expect(BatchOutput.codeOf("ProviderUnavailable", 503)).toBe("server_error")
    expect(BatchOutput.codeOf("RateLimited", 429)).toBe("rate_limit_exceeded")
    expect(BatchOutput.codeOf("InvalidRequest", 400)).toBe("invalid_request")
    expect(BatchOutput.codeOf("RateLimited")).toBe("rate_limit_exceeded")
    expect(BatchOutput.codeOf("Transport")).toBe("connection_error")
    expect(BatchOutput.codeOf("Timeout")).toBe("timeout")
    expect(BatchOutput.codeOf("ProviderUnavailable")).toBe("provider_unavailable")
    expect(BatchOutput.codeOf("ContextTooLong")).toBe("context_length_exceeded")
    expect(BatchOutput.codeOf("Defect")).toBe("internal_error")
  })

  it("resume reads both shapes: failed, retryable, and whether it is an earlier Sluice's", () => {
    const failed = BatchOutput.failed(
      "b",
      { kind: "ServerError", message: "503", status: 503, requestId: "req_2", retryable: true },
      extras
    )
    expect(failed).toMatchObject({
      response: null,
      error: { code: "server_error", message: "503" },
      sluice: { status: "failed", error: { kind: "ServerError", status: 503, request_id: "req_2", retryable: true } }
    })
    expect(BatchOutput.read(failed)).toEqual({ customId: "b", failed: true, retryable: true, legacy: false })
    expect(
      BatchOutput.read(BatchOutput.succeeded("a", { statusCode: 200, requestId: undefined, body: {} }, extras))
    ).toEqual({ customId: "a", failed: false, retryable: false, legacy: false })
    // An earlier Sluice's: `status` at the top, `error.tag`, `error.retryable` when it said.
    expect(BatchOutput.read({ custom_id: "c", status: "failed", error: { tag: "Timeout", message: "t" } })).toEqual({
      customId: "c",
      failed: true,
      retryable: true,
      legacy: true
    })
    expect(
      BatchOutput.read({
        custom_id: "d",
        status: "failed",
        error: { tag: "ServerError", message: "m", retryable: false }
      })
    ).toMatchObject({ failed: true, retryable: false, legacy: true })
    expect(BatchOutput.read({ custom_id: "e", status: "succeeded", response: {}, error: null })).toMatchObject({
      failed: false,
      legacy: true
    })
    expect(BatchOutput.read({ id: "x" })).toBeUndefined()
    expect(BatchOutput.read([1])).toBeUndefined()
  })

  it("an earlier Sluice's failure, in this shape: what it said kept", () => {
    expect(
      BatchOutput.fromLegacy({
        custom_id: "f",
        line: 9,
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:00:02.000Z",
        status: "failed",
        attempts: 3,
        response: null,
        error: { tag: "RateLimited", message: "429 after 3 attempts", reason: "rate limited (429)", status: 429 }
      })
    ).toEqual({
      id: expect.stringMatching(/^batch_req_/),
      custom_id: "f",
      response: null,
      error: { code: "rate_limit_exceeded", message: "429 after 3 attempts" },
      sluice: {
        status: "failed",
        line: 9,
        attempts: 3,
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:00:02.000Z",
        duration_ms: 2000,
        error: { kind: "RateLimited", reason: "rate limited (429)", status: 429, retryable: true }
      }
    })
  })

  it("a malformed line in the errors file: no response, custom_id null when it had none", () => {
    expect(BatchOutput.malformed(4, "not valid JSON", undefined)).toEqual({
      id: expect.stringMatching(/^batch_req_/),
      custom_id: null,
      response: null,
      error: { code: "invalid_request", message: "line 4: not valid JSON" },
      sluice: { status: "malformed", line: 4, reason: "not valid JSON" }
    })
  })
})
