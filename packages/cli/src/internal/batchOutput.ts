/**
 * The records `sluice run` writes, in OpenAI's Batch API output shape: one
 * JSON object a line, `{ id, custom_id, response, error }`, where `response`
 * is `{ status_code, request_id, body }` (null when there is none) and
 * `error` is `{ code, message }` (null on success), as OpenAI's output and
 * error files hold them. What Sluice knows beyond that (the input line, the
 * attempts, the timings, the usage, the failure's kind, label, HTTP status and
 * whether a rerun retries it) is in a field of its own, `sluice`, that code
 * written for OpenAI's files ignores.
 *
 * Decided where OpenAI's format leaves it open:
 * - a line that failed has `response: null` and `error: { code, message }`:
 *   Sluice keeps a short excerpt of a failed answer's body, not the body, so it
 *   does not make one up; the status the provider answered is `sluice.error.status`
 *   and its `x-request-id` `sluice.error.request_id`;
 * - results and failures share the output file (one record per `custom_id`,
 *   the latest), which is what resume reads; the errors file holds the input
 *   lines that could not be run, in the same shape (`custom_id` null when the
 *   line had none, `sluice.line` its line number);
 * - `request_id` is the answer's `x-request-id`, null when the server sent none;
 *   `id` is `batch_req_` and 32 random hex digits, as OpenAI's are opaque.
 *
 * Records an earlier Sluice wrote (`{ custom_id, status, response, error: { tag, ... }, ... }`)
 * are still read (`read`) and rewritten in this shape (`fromLegacy`) by the
 * compaction that resuming such a file runs.
 *
 * What Effect gave us: nothing specific (plain JSON values). What this adds:
 * the mapping from a line's outcome to OpenAI's record, and back for resume.
 */
import { randomUUID } from "node:crypto"
import { isRetryableKind } from "./failureKind.js"

/** What a succeeded line answered. */
export interface Answered {
  readonly statusCode: number
  readonly requestId: string | undefined
  readonly body: unknown
}

/** What a failed line's error says. */
export interface Failure {
  /** The kind of error (`RateLimited`, `ServerError`, `Timeout`, ...). */
  readonly kind: string
  readonly message: string
  /** The words failures are grouped by (`server error (503)`). */
  readonly reason?: string | undefined
  /** The provider's HTTP status, when it answered. */
  readonly status?: number | undefined
  /** The `x-request-id` of the answer that refused the line, when it had one. */
  readonly requestId?: string | undefined
  readonly retryable: boolean
}

/** Sluice's own account of a line, in `sluice`. */
export interface Extras {
  readonly line: number
  readonly attempts: number
  readonly startedAt: number
  readonly finishedAt: number
  readonly usage?: { readonly promptTokens: number; readonly completionTokens: number } | undefined
}

export const newId = (): string => `batch_req_${randomUUID().replace(/-/g, "")}`

const toIso = (millis: number) => new Date(millis).toISOString()

/**
 * A short machine-readable code for a failure, in OpenAI's style: by the
 * status the provider answered when there is one (`rate_limit_exceeded`,
 * `server_error`, `invalid_request`), else by its kind (`timeout`,
 * `connection_error`, `provider_unavailable`, ...).
 */
export const codeOf = (kind: string, status?: number | undefined): string => {
  if (status === 429) return "rate_limit_exceeded"
  if (status !== undefined && status >= 500) return "server_error"
  if (status !== undefined && status >= 400) return "invalid_request"
  switch (kind) {
    case "RateLimited":
      return "rate_limit_exceeded"
    case "ContextTooLong":
      return "context_length_exceeded"
    case "ContentFiltered":
      return "content_filter"
    case "Transport":
      return "connection_error"
    case "Decode":
      return "invalid_response"
    case "ClientError":
      return "invalid_request"
    case "CircuitOpenError":
      return "circuit_open"
    case "Defect":
      return "internal_error"
    default:
      return kind
        .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
        .replace(/[^A-Za-z0-9]+/g, "_")
        .toLowerCase()
  }
}

const extrasOf = (status: "succeeded" | "failed", extras: Extras) => ({
  status,
  line: extras.line,
  attempts: extras.attempts,
  started_at: toIso(extras.startedAt),
  finished_at: toIso(extras.finishedAt),
  duration_ms: extras.finishedAt - extras.startedAt
})

/** The record of a line that succeeded. */
export const succeeded = (customId: string, answered: Answered, extras: Extras) => ({
  id: newId(),
  custom_id: customId,
  response: { status_code: answered.statusCode, request_id: answered.requestId ?? null, body: answered.body ?? null },
  error: null,
  sluice: {
    ...extrasOf("succeeded", extras),
    ...(extras.usage === undefined
      ? {}
      : { usage: { prompt_tokens: extras.usage.promptTokens, completion_tokens: extras.usage.completionTokens } })
  }
})

/** The record of a line that failed. */
export const failed = (customId: string, failure: Failure, extras: Extras) => ({
  id: newId(),
  custom_id: customId,
  response: null,
  error: { code: codeOf(failure.kind, failure.status), message: failure.message },
  sluice: {
    ...extrasOf("failed", extras),
    error: {
      kind: failure.kind,
      ...(failure.reason === undefined ? {} : { reason: failure.reason }),
      ...(failure.status === undefined ? {} : { status: failure.status }),
      ...(failure.requestId === undefined ? {} : { request_id: failure.requestId }),
      retryable: failure.retryable
    }
  }
})

/** The errors file's record of an input line that could not be run. */
export const malformed = (lineNumber: number, reason: string, customId: string | undefined) => ({
  id: newId(),
  custom_id: customId ?? null,
  response: null,
  error: { code: "invalid_request", message: `line ${lineNumber}: ${reason}` },
  sluice: { status: "malformed", line: lineNumber, reason }
})

/** What resume needs of a record. */
export interface Read {
  readonly customId: string
  readonly failed: boolean
  /** A failure another try may help. */
  readonly retryable: boolean
  /** Written by an earlier Sluice, in its own shape (to be rewritten in this one). */
  readonly legacy: boolean
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Reads a record of either shape; undefined when it is not one (no `custom_id`). */
export const read = (json: unknown): Read | undefined => {
  if (!isRecord(json) || typeof json.custom_id !== "string") return undefined
  if (isRecord(json.sluice) || !("status" in json)) {
    const error = isRecord(json.sluice) && isRecord(json.sluice.error) ? json.sluice.error : undefined
    const failed = json.error !== null && json.error !== undefined
    return {
      customId: json.custom_id,
      failed,
      retryable:
        failed && (typeof error?.retryable === "boolean" ? error.retryable : isRetryableKind(error?.kind ?? undefined)),
      legacy: false
    }
  }
  // An earlier Sluice's record: `status` and `error: { tag, retryable? }` at the top.
  const failed = json.status === "failed"
  const error = isRecord(json.error) ? json.error : undefined
  return {
    customId: json.custom_id,
    failed,
    retryable: failed && (typeof error?.retryable === "boolean" ? error.retryable : isRetryableKind(error?.tag)),
    legacy: true
  }
}

const numberOr = (value: unknown, fallback: number) => (typeof value === "number" ? value : fallback)
const millisOf = (value: unknown) => (typeof value === "string" ? Date.parse(value) : Number.NaN)

/** An earlier Sluice's record in this shape (what it said is kept; what it did not say is left out). */
export const fromLegacy = (json: Record<string, unknown>): unknown => {
  const startedAt = millisOf(json.started_at)
  const finishedAt = millisOf(json.finished_at)
  const extras: Extras = {
    line: numberOr(json.line, 0),
    attempts: numberOr(json.attempts, 1),
    startedAt: Number.isNaN(startedAt) ? 0 : startedAt,
    finishedAt: Number.isNaN(finishedAt) ? (Number.isNaN(startedAt) ? 0 : startedAt) : finishedAt,
    usage: isRecord(json.usage)
      ? {
          promptTokens: numberOr(json.usage.prompt_tokens, 0),
          completionTokens: numberOr(json.usage.completion_tokens, 0)
        }
      : undefined
  }
  const customId = String(json.custom_id)
  if (json.status !== "failed") {
    return succeeded(customId, { statusCode: 200, requestId: undefined, body: json.response }, extras)
  }
  const error = isRecord(json.error) ? json.error : {}
  const kind = typeof error.tag === "string" ? error.tag : "Unknown"
  return failed(
    customId,
    {
      kind,
      message: typeof error.message === "string" ? error.message : "",
      reason: typeof error.reason === "string" ? error.reason : undefined,
      status: typeof error.status === "number" ? error.status : undefined,
      retryable: typeof error.retryable === "boolean" ? error.retryable : isRetryableKind(kind)
    },
    extras
  )
}
