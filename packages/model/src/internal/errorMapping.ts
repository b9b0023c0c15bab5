/**
 * From the ApiClient's (and its Executor's) errors to the Model's: what a
 * caller can act on. The provider's error body (OpenAI's
 * `{ error: { message, type, code } }`) is read from the excerpt the
 * ApiClient kept, which has the endpoint's secrets already cut out.
 */
import type { Executor } from "@sluice/core"
import { type ApiClient, ApiError } from "@sluice/http"
import { ModelError } from "./modelError.js"

export interface CallContext {
  readonly provider: string
  readonly model: string
  readonly operation: "chat" | "embed" | "complete"
  readonly estimatedPromptTokens?: number | undefined
}

/** The parts of an OpenAI-style error body we read. */
export interface ProviderError {
  readonly message: string | undefined
  readonly code: string | undefined
  readonly type: string | undefined
  readonly innerCode: string | undefined
}

const DETAIL_LENGTH = 300

const stringOf = (value: unknown): string | undefined =>
  typeof value === "string" && value !== "" ? value : typeof value === "number" ? String(value) : undefined

/** Reads an error body; an excerpt cut short still yields what a pattern can find. */
export const parseProviderError = (excerpt: string): ProviderError => {
  try {
    const json = JSON.parse(excerpt) as unknown
    const error = (json as { error?: unknown }).error ?? json
    if (typeof error === "string") return { message: error, code: undefined, type: undefined, innerCode: undefined }
    if (typeof error === "object" && error !== null) {
      const record = error as Record<string, unknown>
      const inner = record.innererror as Record<string, unknown> | undefined
      return {
        message: stringOf(record.message),
        code: stringOf(record.code),
        type: stringOf(record.type),
        innerCode: typeof inner === "object" && inner !== null ? stringOf(inner.code) : undefined
      }
    }
  } catch {
    // Not JSON, or cut short: look for the fields by pattern.
  }
  const field = (name: string) => new RegExp(`"${name}"\\s*:\\s*"([^"]*)"`).exec(excerpt)?.[1]
  return {
    message: field("message") ?? (excerpt.trim() === "" ? undefined : excerpt.trim()),
    code: field("code"),
    type: field("type"),
    innerCode: undefined
  }
}

const CONTEXT_CODES = new Set(["context_length_exceeded", "string_above_max_length"])
const CONTEXT_TEXT =
  /context length|context window|context_length|maximum context|prompt is too long|too many tokens|input is too long/i

const FILTER_CODES = new Set([
  "content_policy_violation",
  "content_filter",
  "content_filtered",
  "ResponsibleAIPolicyViolation"
])

export const isContextTooLong = (error: ProviderError) =>
  (error.code !== undefined && CONTEXT_CODES.has(error.code)) ||
  (error.message !== undefined && CONTEXT_TEXT.test(error.message))

export const isContentFiltered = (error: ProviderError) =>
  [error.code, error.type, error.innerCode].some((code) => code !== undefined && FILTER_CODES.has(code))

/** "maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens" */
const contextNumbers = (message: string | undefined) => {
  if (message === undefined) return {}
  const max = /(?:maximum context length|context window|context length) (?:is|of) (\d+)/i.exec(message)?.[1]
  const requested = /(?:resulted in|requested|you requested|prompt is too long:)\s*(\d+)/i.exec(message)?.[1]
  return {
    ...(max === undefined ? {} : { maxContextTokens: Number(max) }),
    ...(requested === undefined ? {} : { requestedTokens: Number(requested) })
  }
}

/**
 * A decode failure's issues without the values they quote (`…, actual "<value>"`):
 * each issue is kept as its path and what was expected there.
 */
export const safeIssues = (issues: string): string => {
  if (issues.startsWith("not JSON")) return "the answer is not JSON"
  const kept = issues
    .split("; ")
    .map((issue) => issue.split(", actual ")[0]!)
    .filter((issue) => issue.startsWith("[") || issue.startsWith("(root)"))
    .map((issue) => issue.slice(0, 120))
  return kept.length === 0 ? "the answer does not match the OpenAI shape" : kept.join("; ").slice(0, DETAIL_LENGTH)
}

const detailOf = (error: ProviderError, fallback?: string) => {
  const text = error.message ?? fallback
  return text === undefined ? {} : { detail: text.slice(0, DETAIL_LENGTH) }
}

/** Maps one of the ApiClient's errors (or its Executor's). */
export const fromCallError = (error: ApiClient.CallError, context: CallContext): ModelError => {
  const common = { provider: context.provider, model: context.model, operation: context.operation, cause: error }
  switch (error._tag) {
    case "ApiError":
      return fromApiError(error, context)
    case "ExecutorError":
      return fromExecutorError(error, common)
    case "AuthFailed":
      return ModelError.providerUnavailable({
        ...common,
        kind: "Unauthorized",
        detail: error.reason,
        retryable: false
      })
    case "CircuitOpenError":
      return ModelError.providerUnavailable({
        ...common,
        kind: "CircuitOpen",
        detail: error.message,
        ...(Number.isFinite(error.retryAfterMillis) ? { retryAfterMillis: error.retryAfterMillis } : {}),
        retryable: false
      })
    case "RateLimiterError":
      return fromLimiterError(error, context)
    case "InvalidOptionsError":
      return ModelError.invalidRequest({ ...common, kind: "Invalid", detail: error.message })
  }
}

/** The Executor's own error, by its reason: the provider could not be reached in time, or not at all. */
const fromExecutorError = (
  error: Executor.ExecutorError,
  common: { provider: string; model: string; operation: CallContext["operation"]; cause: unknown }
): ModelError => {
  switch (error.reason) {
    case "AttemptTimeout":
    case "Deadline":
      return ModelError.providerUnavailable({
        ...common,
        kind: "Timeout",
        detail: error.message,
        retryable: error.retryable
      })
    case "QueueFull":
      return ModelError.providerUnavailable({
        ...common,
        kind: "QueueFull",
        detail: error.message,
        retryable: error.retryable
      })
    case "NotAccepting":
    case "Abandoned":
      return ModelError.providerUnavailable({
        ...common,
        kind: "ShuttingDown",
        detail: error.message,
        retryable: false
      })
  }
}

/** Maps the ApiClient's error by its reason. */
export const fromApiError = (error: ApiError.ApiError, context: CallContext): ModelError => {
  const common = { provider: context.provider, model: context.model, operation: context.operation, cause: error }
  const status = error.status === undefined ? {} : { status: error.status }
  const retryAfter = error.retryAfterMillis === undefined ? {} : { retryAfterMillis: error.retryAfterMillis }
  switch (error.reason) {
    case "RateLimited": {
      const body = parseProviderError(error.excerpt ?? "")
      if (body.code === "insufficient_quota") {
        return ModelError.providerUnavailable({
          ...common,
          ...detailOf(body),
          kind: "QuotaExhausted",
          ...status,
          retryable: false
        })
      }
      if (body.code === "request_too_large") {
        return ModelError.invalidRequest({ ...common, ...detailOf(body), kind: "TooLarge", ...status, code: body.code })
      }
      return ModelError.rateLimited({
        ...common,
        ...detailOf(body),
        ...retryAfter,
        ...(body.code === undefined ? {} : { limit: body.code }),
        retryable: error.retryable
      })
    }
    case "ServerError": {
      const body = parseProviderError(error.excerpt ?? "")
      return ModelError.providerUnavailable({
        ...common,
        ...detailOf(body),
        kind: error.status === 503 || error.status === 529 ? "Overloaded" : "ServerError",
        ...status,
        ...retryAfter,
        retryable: error.retryable
      })
    }
    case "ClientError": {
      const body = parseProviderError(error.excerpt ?? "")
      if (error.status === 401 || error.status === 403) {
        return ModelError.providerUnavailable({
          ...common,
          ...detailOf(body),
          kind: "Unauthorized",
          ...status,
          retryable: false
        })
      }
      if (error.status === 408) {
        return ModelError.providerUnavailable({
          ...common,
          ...detailOf(body),
          kind: "Timeout",
          ...status,
          retryable: error.retryable
        })
      }
      if (isContentFiltered(body)) {
        return ModelError.contentFiltered({ ...common, ...detailOf(body), source: "request" })
      }
      if (isContextTooLong(body)) {
        return ModelError.contextTooLong({
          ...common,
          ...detailOf(body),
          ...contextNumbers(body.message),
          ...(context.estimatedPromptTokens === undefined
            ? {}
            : { estimatedPromptTokens: context.estimatedPromptTokens })
        })
      }
      return ModelError.invalidRequest({
        ...common,
        ...detailOf(body),
        kind: error.status === 413 ? "TooLarge" : "Rejected",
        ...status,
        ...(body.code === undefined ? {} : { code: body.code }),
        retryable: error.retryable
      })
    }
    case "Timeout":
      return ModelError.providerUnavailable({
        ...common,
        kind: "Timeout",
        detail: `no complete answer within ${error.timeoutMillis} ms`,
        retryable: true
      })
    case "Transport":
      return ModelError.providerUnavailable({
        ...common,
        kind: "Transport",
        ...(error.detail === undefined ? {} : { detail: error.detail })
      })
    case "Decode": {
      // The issues quote the answer's values, which the ApiClient does not scrub: keep only where and what.
      const issues = safeIssues(error.issues ?? "")
      return ModelError.invalidRequest({
        ...common,
        cause: new ApiError.ApiError({ ...error, issues }),
        kind: "Undecodable",
        ...status,
        detail: issues
      })
    }
    case "InvalidRequest":
      return ModelError.invalidRequest({
        ...common,
        kind: "NotSent",
        ...(error.detail === undefined ? {} : { detail: error.detail })
      })
    case "ResponseTooLarge":
      // The answer came but could not be used: as for a body that does not decode.
      return ModelError.invalidRequest({ ...common, kind: "Undecodable", ...status, detail: error.message })
  }
}

type LimiterError = Extract<ApiClient.CallError, { readonly _tag: "RateLimiterError" }>

/** A limiter's refusal: a cost no limit can hold is the request's size; a store failure is ours. */
export const fromLimiterError = (error: LimiterError, context: CallContext): ModelError => {
  const common = { provider: context.provider, model: context.model, operation: context.operation, cause: error }
  switch (error.reason) {
    case "CostExceedsCapacity":
      return ModelError.invalidRequest({ ...common, kind: "TooLarge", detail: error.message })
    case "StoreFailure":
      return ModelError.providerUnavailable({ ...common, kind: "LimiterFailure", detail: error.message })
    default:
      return ModelError.invalidRequest({ ...common, kind: "Invalid", detail: error.message })
  }
}
