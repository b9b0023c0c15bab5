/**
 * What a line's failure says about the run, decided from the ApiClient's or
 * the Model's error:
 * - `auth`: the provider refused the credentials (401, 403): every other line
 *   would be refused too, so the run stops at once;
 * - `systemic`: the provider (or the shared limits' store) failed, not the line (a 5xx, a timeout, a
 *   connection that failed, an open breaker): during an outage the line
 *   waits for the provider instead of failing;
 * - `own`: the line's own error (a 4xx of its own, a body the server or the
 *   Model refuses, a 429 its retries could not get past).
 * Each with the `label` failures are grouped by on stderr and in the summary,
 * a few words with the status (`authentication failed (401)`).
 */
import * as ApiError from "@sluice/http/ApiError"
import { Model } from "@sluice/model"
import { InvalidLine } from "./invalidLine.js"

export type Class = "auth" | "systemic" | "own"

export interface Verdict {
  readonly class: Class
  /** The error's reason (`ServerError`, `ProviderUnavailable`, ...), else its tag. */
  readonly errorKind: string
  readonly status?: number | undefined
  readonly retryable: boolean
  /** Refused by an open breaker before it was sent (systemic, and says nothing new about the provider). */
  readonly refused: boolean
  /**
   * Not sent because the shared limits' store (`--redis`) did not answer: an outage of the run's own, whatever
   * the provider answers other lines meanwhile.
   */
  readonly storeDown?: boolean
  readonly label: string
}

const withStatus = (words: string, status: number | undefined) =>
  status === undefined ? words : `${words} (${status})`

/** The label of a status a provider answered with, when it says more than the error's kind. */
const statusLabel = (status: number | undefined): string | undefined => {
  if (status === undefined) return undefined
  if (status === 401) return "authentication failed (401)"
  if (status === 403) return "permission denied (403)"
  if (status === 404) return "not found (404)"
  if (status === 429) return "rate limited (429)"
  if (status >= 500) return withStatus("server error", status)
  return undefined
}

const SYSTEMIC_API = new Set<string>(["ServerError", "Transport", "Timeout"])
// `LimiterFailure`: the shared limits' store (`--redis`) did not answer; every line would fail alike, so the run
// waits for it as for a provider that is down (bounded by --max-outage), rather than spend its lines.
const SYSTEMIC_MODEL = new Set<string>([
  "ServerError",
  "Overloaded",
  "Timeout",
  "Transport",
  "CircuitOpen",
  "LimiterFailure"
])

const apiLabel = (error: ApiError.ApiError): string => {
  switch (error.reason) {
    case "Timeout":
      return "timed out"
    case "Transport":
      return "connection failed"
    case "Decode":
      return withStatus("answer not understood", error.status)
    case "InvalidRequest":
      return "request not sent"
    case "ClientError":
      return statusLabel(error.status) ?? withStatus("request refused", error.status)
    default:
      return statusLabel(error.status) ?? withStatus(error.reason, error.status)
  }
}

const modelLabel = (error: Model.ModelError): string => {
  const status = error.status
  switch (error.reason) {
    case "ContextTooLong":
      return "context too long"
    case "ContentFiltered":
      return "content filtered"
    case "RateLimited":
      return "rate limited (429)"
    case "ProviderUnavailable":
      switch (error.kind) {
        case "Unauthorized":
          return statusLabel(status) ?? "authentication failed"
        case "Timeout":
          return "timed out"
        case "Transport":
          return "connection failed"
        case "CircuitOpen":
          return "circuit open (the provider is failing)"
        case "QuotaExhausted":
          return withStatus("quota exhausted", status)
        case "LimiterFailure":
          return "the limits' store is unavailable (--redis)"
        default:
          return statusLabel(status) ?? withStatus(`provider unavailable: ${error.kind ?? "unknown"}`, status)
      }
    default:
      // InvalidRequest
      return error.kind === "Invalid"
        ? "invalid request body"
        : error.kind === "Undecodable"
          ? withStatus("answer not understood", status)
          : (statusLabel(status) ?? withStatus("request refused", status))
  }
}

export const verdictOf = (error: { readonly _tag: string; readonly message: string }): Verdict => {
  if (error instanceof ApiError.ApiError) {
    const status = error.status
    const auth = error.reason === "ClientError" && (status === 401 || status === 403)
    return {
      class: auth ? "auth" : SYSTEMIC_API.has(error.reason) ? "systemic" : "own",
      errorKind: error.reason,
      status,
      retryable: error.retryable,
      refused: false,
      label: apiLabel(error)
    }
  }
  if (error instanceof Model.ModelError) {
    const auth = error.reason === "ProviderUnavailable" && error.kind === "Unauthorized"
    const systemic =
      error.reason === "ProviderUnavailable" && error.kind !== undefined && SYSTEMIC_MODEL.has(error.kind)
    return {
      class: auth ? "auth" : systemic ? "systemic" : "own",
      errorKind: error.reason,
      status: error.status,
      retryable: error.retryable || systemic,
      refused: error.reason === "ProviderUnavailable" && error.kind === "CircuitOpen",
      ...(error.reason === "ProviderUnavailable" && error.kind === "LimiterFailure" ? { storeDown: true } : {}),
      label: modelLabel(error)
    }
  }
  if (error._tag === "CircuitOpenError") {
    return {
      class: "systemic",
      errorKind: error._tag,
      retryable: true,
      refused: true,
      label: "circuit open (the provider is failing)"
    }
  }
  if (error instanceof InvalidLine) {
    // Written with the kind a provider's 400 would give it.
    return {
      class: "own",
      errorKind: "InvalidRequest",
      retryable: false,
      refused: false,
      label: "invalid request body"
    }
  }
  return { class: "own", errorKind: error._tag, retryable: false, refused: false, label: error._tag }
}

/** Kinds of a written failure a rerun may retry, for records that do not say (`error.retryable`). */
const RETRYABLE_KINDS = new Set<string>([
  "RateLimited",
  "ServerError",
  "Timeout",
  "Transport",
  "ProviderUnavailable",
  "CircuitOpenError"
])

export const isRetryableKind = (kind: unknown): boolean => typeof kind === "string" && RETRYABLE_KINDS.has(kind)
