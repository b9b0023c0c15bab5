/**
 * `sluice run`'s formats end to end: the real program as a child process,
 * against a real MockProvider in this process. Input lines for each endpoint
 * of OpenAI's Batch API; the output and the errors file checked against a
 * Schema of OpenAI's batch output record (as OpenAI documents it: `id`,
 * `custom_id`, `response: { status_code, request_id, body } | null`,
 * `error: { code, message } | null`), written here, apart from the code that
 * writes them.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { Model } from "@sluice/model"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { readResults, runArgs, sluiceRun } from "./utils/child.js"

const API_KEY = "sk-e2e-formats-0123456789"
const KEY_ENV = { SLUICE_E2E_KEY: API_KEY }
const TIMEOUT = 120_000

/** One line of an OpenAI batch output (or error) file. */
const BatchRequestOutput = Schema.Struct({
  id: Schema.String,
  custom_id: Schema.String,
  response: Schema.NullOr(
    Schema.Struct({
      status_code: Schema.Int,
      request_id: Schema.NullOr(Schema.String),
      body: Schema.Record({ key: Schema.String, value: Schema.Unknown })
    })
  ),
  error: Schema.NullOr(Schema.Struct({ code: Schema.String, message: Schema.String }))
})

/** The errors file's records: the same, with `custom_id` null for a line that had none. */
const ErrorRecord = Schema.Struct({
  ...BatchRequestOutput.fields,
  custom_id: Schema.NullOr(Schema.String),
  response: Schema.Null,
  error: Schema.Struct({ code: Schema.String, message: Schema.String })
})

const decodeOutput = Schema.decodeUnknownSync(BatchRequestOutput)
const decodeError = Schema.decodeUnknownSync(ErrorRecord)

let scope: Scope.CloseableScope
let provider: MockProvider.MockProviderShape
let dir: string | undefined

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  provider = await Effect.runPromise(Scope.extend(MockProvider.make({ apiKeys: [API_KEY], seed: 11 }), scope))
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

afterEach(async () => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  await Effect.runPromise(provider.reset)
})

const line = (customId: string, url: string, body: unknown) =>
  JSON.stringify({ custom_id: customId, method: "POST", url, body })

describe("sluice run, OpenAI's batch formats", () => {
  it(
    "a line of each endpoint end to end: records in OpenAI's batch output shape, the errors file too",
    async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-formats-"))
      const input = path.join(dir, "requests.jsonl")
      const output = path.join(dir, "results.jsonl")
      fs.writeFileSync(
        input,
        `${[
          line("chat", "/v1/chat/completions", {
            model: "mock-model",
            messages: [{ role: "user", content: "Say hello" }],
            max_tokens: 12
          }),
          line("embed", "/v1/embeddings", { model: "mock-embedding", input: ["first text", "second text"] }),
          line("complete", "/v1/completions", { model: "mock-model", prompt: "Once upon a time", max_tokens: 6 }),
          // Not an endpoint of the Batch API: refused as malformed, naming the ones allowed.
          line("responses", "/v1/responses", { model: "mock-model", input: "hi" }),
          // A completions body without its prompt: the line's own failure, sent nowhere.
          line("no-prompt", "/v1/completions", { model: "mock-model" }),
          // A body the server refuses (400): the line's own failure, with the answer's status and request id.
          line("too-wide", "/v1/embeddings", { model: "mock-embedding", input: "x", dimensions: 5000 }),
          "{not json"
        ].join("\n")}\n`
      )

      const run = await sluiceRun(
        runArgs({ input, output, baseUrl: provider.baseUrl, keyEnv: "SLUICE_E2E_KEY" }, "--json"),
        KEY_ENV
      )
      expect(run.code).toBe(1)
      expect(JSON.parse(run.stdout)).toMatchObject({ succeeded: 3, failed: 2, malformed: 2, stopReason: "completed" })
      expect(run.stderr).toContain(
        'line 4 (custom_id "responses"): url must be one of /v1/chat/completions, /v1/embeddings, /v1/completions'
      )

      const results = readResults(output)
      expect(results.torn).toBe(false)
      expect([...results.ids].sort()).toEqual(["chat", "complete", "embed", "no-prompt", "too-wide"])
      const byId = new Map(results.lines.map((record) => [record.custom_id as string, record]))
      for (const record of results.lines) {
        decodeOutput(record)
        // OpenAI's four fields, and Sluice's own in one more.
        expect(Object.keys(record).sort()).toEqual(["custom_id", "error", "id", "response", "sluice"])
        expect(record.id).toMatch(/^batch_req_[0-9a-f]{32}$/)
      }
      expect(new Set(results.lines.map((record) => record.id)).size).toBe(5)

      // Each endpoint's answer as the provider gave it, under response.body.
      const log = await Effect.runPromise(provider.log)
      expect(log.map((entry) => entry.path).sort()).toEqual([
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/embeddings"
      ])
      for (const [id, schema, path] of [
        ["chat", Model.ChatResponse, "/v1/chat/completions"],
        ["embed", Model.EmbedResponse, "/v1/embeddings"],
        ["complete", Model.CompletionResponse, "/v1/completions"]
      ] as const) {
        const record = byId.get(id)!
        expect(record.error).toBeNull()
        expect(record.response).toMatchObject({ status_code: 200, request_id: expect.stringMatching(/^req_mock_/) })
        Schema.decodeUnknownSync(schema as Schema.Schema<unknown, unknown>)(record.response.body)
        const served = log.find((entry) => entry.path === path && entry.status === 200)!
        expect(record.sluice).toMatchObject({
          status: "succeeded",
          attempts: 1,
          usage: { prompt_tokens: served.promptTokens, completion_tokens: served.completionTokens }
        })
      }
      // Embeddings have no output.
      expect(byId.get("embed")!.sluice.usage.completion_tokens).toBe(0)
      expect(byId.get("complete")!.response.body.choices[0].text).toEqual(expect.any(String))

      expect(byId.get("no-prompt")).toMatchObject({
        response: null,
        error: { code: "invalid_request", message: expect.stringContaining("prompt") },
        sluice: { status: "failed", error: { retryable: false } }
      })
      expect(byId.get("no-prompt")!.sluice.error.request_id).toBeUndefined()
      expect(byId.get("too-wide")).toMatchObject({
        response: null,
        error: { code: "invalid_request", message: expect.stringContaining("dimensions") },
        sluice: {
          status: "failed",
          attempts: 1,
          error: { status: 400, retryable: false, request_id: expect.stringMatching(/^req_mock_/) }
        }
      })

      const errors = fs
        .readFileSync(`${output}.errors.jsonl`, "utf8")
        .trimEnd()
        .split("\n")
        .map((text) => decodeError(JSON.parse(text)))
      expect(errors.map((record) => [record.custom_id, record.error.code, record.error.message])).toEqual([
        [
          "responses",
          "invalid_request",
          "line 4: url must be one of /v1/chat/completions, /v1/embeddings, /v1/completions"
        ],
        [null, "invalid_request", "line 7: not valid JSON"]
      ])
      for (const text of [run.stdout, run.stderr, fs.readFileSync(output, "utf8")]) expect(text).not.toContain(API_KEY)
    },
    TIMEOUT
  )
})
