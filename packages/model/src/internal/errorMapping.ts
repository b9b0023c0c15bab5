/**
 * From the ApiClient's (and its Executor's) errors to the Model's: what a
 * caller can act on. The provider's error body (OpenAI's
 * `{ error: { message, type, code } }`) is read from the excerpt the
 * ApiClient kept, which has the endpoint's secrets already cut out.
 */
import { type ApiClient, ApiError } from "@sluice/http"
import * as ModelError from "./modelError.js"

export interface CallContext {
  readonly provider: string
  readonly model: string
  readonly operation: "chat" | "embed"
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

/** Maps one of the ApiClient's errors. */
export const fromCallError = (error: ApiClient.CallError, context: CallContext): ModelError.ModelError => {
  const common = { provider: context.provider, model: context.model, operation: context.operation, cause: error }
  switch (error._tag) {
    case "RateLimited": {
      const body = parseProviderError(error.excerpt)
      if (body.code === "insufficient_quota") {
        return new ModelError.ProviderUnavailable({
          ...common,
          ...detailOf(body),
          reason: "QuotaExhausted",
          status: error.status,
          retryable: false
        })
      }
      if (body.code === "request_too_large") {
        return new ModelError.InvalidRequest({
          ...common,
          ...detailOf(body),
          reason: "TooLarge",
          status: error.status,
          code: body.code
        })
      }
      return new ModelError.RateLimited({
        ...common,
        ...detailOf(body),
        ...(error.retryAfterMillis === undefined ? {} : { retryAfterMillis: error.retryAfterMillis }),
        ...(body.code === undefined ? {} : { limit: body.code }),
        retryable: error.retryable
      })
    }
    case "ServerError": {
      const body = parseProviderError(error.excerpt)
      return new ModelError.ProviderUnavailable({
        ...common,
        ...detailOf(body),
        reason: error.status === 503 || error.status === 529 ? "Overloaded" : "ServerError",
        status: error.status,
        ...(error.retryAfterMillis === undefined ? {} : { retryAfterMillis: error.retryAfterMillis }),
        retryable: error.retryable
      })
    }
    case "ClientError": {
      const body = parseProviderError(error.excerpt)
      if (error.status === 401 || error.status === 403) {
        return new ModelError.ProviderUnavailable({
          ...common,
          ...detailOf(body),
          reason: "Unauthorized",
          status: error.status,
          retryable: false
        })
      }
      if (error.status === 408) {
        return new ModelError.ProviderUnavailable({
          ...common,
          ...detailOf(body),
          reason: "Timeout",
          status: error.status,
          retryable: error.retryable
        })
      }
      if (isContentFiltered(body)) {
        return new ModelError.ContentFiltered({ ...common, ...detailOf(body), source: "request" })
      }
      if (isContextTooLong(body)) {
        return new ModelError.ContextTooLong({
          ...common,
          ...detailOf(body),
          ...contextNumbers(body.message),
          ...(context.estimatedPromptTokens === undefined
            ? {}
            : { estimatedPromptTokens: context.estimatedPromptTokens })
        })
      }
      return new ModelError.InvalidRequest({
        ...common,
        ...detailOf(body),
        reason: error.status === 413 ? "TooLarge" : "Rejected",
        status: error.status,
        ...(body.code === undefined ? {} : { code: body.code }),
        retryable: error.retryable
      })
    }
    case "Timeout":
      return new ModelError.ProviderUnavailable({
        ...common,
        reason: "Timeout",
        detail: `no complete answer within ${error.timeoutMillis} ms`,
        retryable: true
      })
    case "RequestTimeoutError":
      return new ModelError.ProviderUnavailable({
        ...common,
        reason: "Timeout",
        detail: error.message,
        retryable: error.retryable
      })
    case "Transport":
      return new ModelError.ProviderUnavailable({ ...common, reason: "Transport", detail: error.reason })
    case "Decode": {
      // The issues quote the answer's values, which the ApiClient does not scrub: keep only where and what.
      const issues = safeIssues(error.issues)
      return new ModelError.InvalidRequest({
        ...common,
        cause: new ApiError.Decode({ ...error, issues }),
        reason: "Undecodable",
        status: error.status,
        detail: issues
      })
    }
    case "InvalidRequest":
      return new ModelError.InvalidRequest({ ...common, reason: "NotSent", detail: error.reason })
    case "AuthFailed":
      return new ModelError.ProviderUnavailable({
        ...common,
        reason: "Unauthorized",
        detail: error.reason,
        retryable: false
      })
    case "QueueFullError":
      return new ModelError.ProviderUnavailable({
        ...common,
        reason: "QueueFull",
        detail: error.message,
        retryable: error.retryable
      })
    case "ExecutorShutdownError":
      return new ModelError.ProviderUnavailable({
        ...common,
        reason: "ShuttingDown",
        detail: error.message,
        retryable: false
      })
    case "CircuitOpenError":
      return new ModelError.ProviderUnavailable({
        ...common,
        reason: "CircuitOpen",
        detail: error.message,
        ...(Number.isFinite(error.retryAfterMillis) ? { retryAfterMillis: error.retryAfterMillis } : {}),
        retryable: false
      })
    case "RateLimiterError":
      return fromLimiterError(error, context)
    case "InvalidOptionsError":
      return new ModelError.InvalidRequest({ ...common, reason: "Invalid", detail: error.message })
  }
}

type LimiterError = Extract<ApiClient.CallError, { readonly _tag: "RateLimiterError" }>

/** A limiter's refusal: a cost no limit can hold is the request's size; a store failure is ours. */
export const fromLimiterError = (error: LimiterError, context: CallContext): ModelError.ModelError => {
  const common = { provider: context.provider, model: context.model, operation: context.operation, cause: error }
  switch (error.reason) {
    case "CostExceedsCapacity":
      return new ModelError.InvalidRequest({ ...common, reason: "TooLarge", detail: error.message })
    case "StoreFailure":
      return new ModelError.ProviderUnavailable({ ...common, reason: "LimiterFailure", detail: error.message })
    default:
      return new ModelError.InvalidRequest({ ...common, reason: "Invalid", detail: error.message })
  }
}
