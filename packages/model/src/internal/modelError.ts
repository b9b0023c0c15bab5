/**
 * The Model's error, in its own module so that the machinery and the public
 * module can both use it without importing each other: one `ModelError`
 * refined by a literal `reason`, so that `Effect.catchTag("ModelError", ...)`
 * catches this layer's failures and never the ApiClient's (whose `ApiError`
 * has a `RateLimited` reason too). Each names the provider (the endpoint),
 * the model and the operation; none holds a header or a request body, and a
 * provider's words are taken only from the ApiClient's error excerpt, which
 * has the endpoint's secrets cut out.
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { ChatResponse } from "./wire.js"

export const Reason = Schema.Literal(
  "ContextTooLong",
  "ContentFiltered",
  "RateLimited",
  "ProviderUnavailable",
  "InvalidRequest"
)

export type Reason = typeof Reason.Type

/**
 * Why the provider is unavailable: `ServerError` (5xx), `Overloaded` (503,
 * 529), `Timeout`, `Transport`, `Unauthorized` (401, 403, no credentials:
 * this provider cannot serve, another may), `QuotaExhausted` (billing),
 * `CircuitOpen`, `QueueFull`, `ShuttingDown`, `LimiterFailure` (the
 * rate-limiter store failed), `NoProvider` (a routed Model's router has no
 * provider left to send the call to).
 */
export const UnavailableKind = Schema.Literal(
  "ServerError",
  "Overloaded",
  "Timeout",
  "Transport",
  "Unauthorized",
  "QuotaExhausted",
  "CircuitOpen",
  "QueueFull",
  "ShuttingDown",
  "LimiterFailure",
  "NoProvider"
)

export type UnavailableKind = typeof UnavailableKind.Type

/**
 * What is wrong with the request: `Invalid`: it does not match the Schema
 * (nothing was sent); `Rejected`: the provider refused it (4xx); `TooLarge`:
 * it could never fit the token limit; `NotSent`: the client refused to send
 * it; `Undecodable`: the provider's answer did not decode.
 */
export const InvalidKind = Schema.Literal("Invalid", "Rejected", "TooLarge", "NotSent", "Undecodable")

export type InvalidKind = typeof InvalidKind.Type

/** Every error names where it happened. */
interface Common {
  /** The endpoint's name. */
  readonly provider: string
  /** The model the request named. */
  readonly model: string
  readonly operation: "chat" | "embed" | "complete"
  /** What the provider (or the layer that refused the call) said, secrets removed. */
  readonly detail?: string
  /** The ApiClient's (or Executor's) error this one was mapped from. */
  readonly cause?: unknown
}

const where = (error: { provider: string; model: string; operation: string }) =>
  `${error.operation} with model "${error.model}" on provider "${error.provider}"`

const said = (detail: string | undefined) => (detail === undefined || detail === "" ? "" : ` (${detail})`)

export class ModelError extends Schema.TaggedError<ModelError>("@sluice/model/ModelError")("ModelError", {
  reason: Reason,
  /** The endpoint's name. */
  provider: Schema.String,
  /** The model the request named. */
  model: Schema.String,
  operation: Schema.Literal("chat", "embed", "complete"),
  /** What the provider (or the layer that refused the call) said, secrets removed. */
  detail: Schema.optional(Schema.String),
  /** The ApiClient's (or Executor's) error this one was mapped from. */
  cause: Schema.optional(Schema.Unknown),
  /** Whether another try may help; each constructor sets its reason's default. */
  retryable: Schema.Boolean,
  /** `ProviderUnavailable`: which way; `InvalidRequest`: what is wrong with it. */
  kind: Schema.optional(Schema.Union(UnavailableKind, InvalidKind)),
  /** The provider's HTTP status, when it answered. */
  status: Schema.optional(Schema.Number),
  /** `RateLimited`, `ProviderUnavailable`: what the provider (or the breaker) asked to wait, if anything. */
  retryAfterMillis: Schema.optional(Schema.Number),
  /** `RateLimited`: which of the provider's limits ran out, when it said (`"requests"`, `"tokens"`). */
  limit: Schema.optional(Schema.String),
  /** `InvalidRequest`: the provider's error code, e.g. `"invalid_value"`. */
  code: Schema.optional(Schema.String),
  /** `ContextTooLong`: the model's context window, when the provider said it. */
  maxContextTokens: Schema.optional(Schema.Number),
  /** `ContextTooLong`: what the provider counted for the request, when it said it. */
  requestedTokens: Schema.optional(Schema.Number),
  /** `ContextTooLong`: the Model's own estimate of the prompt. */
  estimatedPromptTokens: Schema.optional(Schema.Number),
  /** `ContentFiltered`: `"request"`, the provider refused the prompt; `"response"`, it filtered the answer. */
  source: Schema.optional(Schema.Literal("request", "response")),
  /** `ContentFiltered`: the filtered answer (tokens were used for it), when the answer was filtered. */
  response: Schema.optional(ChatResponse)
}) {
  /** The prompt (plus the maximum output) does not fit the model's context window. Not retryable. */
  static contextTooLong(
    fields: Common & {
      readonly maxContextTokens?: number
      readonly requestedTokens?: number
      readonly estimatedPromptTokens?: number
    }
  ): ModelError {
    return new ModelError({ ...fields, reason: "ContextTooLong", retryable: false })
  }

  /** The provider's content policy refused the prompt or withheld every answer. Not retryable. */
  static contentFiltered(
    fields: Common & { readonly source: "request" | "response"; readonly response?: typeof ChatResponse.Type }
  ): ModelError {
    return new ModelError({ ...fields, reason: "ContentFiltered", retryable: false })
  }

  /** The provider's rate limit held. Retryable unless the server said otherwise. */
  static rateLimited(
    fields: Common & { readonly retryAfterMillis?: number; readonly limit?: string; readonly retryable?: boolean }
  ): ModelError {
    return new ModelError({ ...fields, reason: "RateLimited", retryable: fields.retryable ?? true })
  }

  /** This provider cannot serve now: try later, or another provider. Retryable unless said otherwise. */
  static providerUnavailable(
    fields: Common & {
      readonly kind: UnavailableKind
      readonly status?: number
      readonly retryAfterMillis?: number
      readonly retryable?: boolean
    }
  ): ModelError {
    return new ModelError({ ...fields, reason: "ProviderUnavailable", retryable: fields.retryable ?? true })
  }

  /** The request itself is wrong: fix it rather than retry it. Not retryable unless said otherwise. */
  static invalidRequest(
    fields: Common & {
      readonly kind: InvalidKind
      readonly status?: number
      readonly code?: string
      readonly retryable?: boolean
    }
  ): ModelError {
    return new ModelError({ ...fields, reason: "InvalidRequest", retryable: fields.retryable ?? false })
  }

  /** What the provider (or the breaker) asked to wait, if anything. */
  get retryAfter(): Duration.Duration | undefined {
    return this.retryAfterMillis === undefined ? undefined : Duration.millis(this.retryAfterMillis)
  }

  override get message(): string {
    switch (this.reason) {
      case "ContextTooLong": {
        const numbers =
          this.maxContextTokens === undefined
            ? ""
            : ` of ${this.maxContextTokens} tokens${this.requestedTokens === undefined ? "" : ` (it asked for ${this.requestedTokens})`}`
        return `${where(this)} does not fit the model's context window${numbers}: shorten the messages or lower max_tokens${said(this.detail)}`
      }
      case "ContentFiltered":
        return this.source === "request"
          ? `${where(this)} was refused by the provider's content policy${said(this.detail)}`
          : `${where(this)} answered, but the provider's content filter withheld the answer${said(this.detail)}`
      case "RateLimited": {
        const wait = this.retryAfterMillis === undefined ? "" : `; retry after ${Math.ceil(this.retryAfterMillis)} ms`
        const limit = this.limit === undefined ? "" : ` on ${this.limit}`
        return `${where(this)} was rate limited by the provider${limit}${wait}${said(this.detail)}`
      }
      case "ProviderUnavailable": {
        const status = this.status === undefined ? "" : ` ${this.status}`
        return `${where(this)} failed: the provider is unavailable (${this.kind}${status})${said(this.detail)}`
      }
      default: {
        // InvalidRequest
        const status = this.status === undefined ? "" : ` with ${this.status}`
        switch (this.kind) {
          case "Invalid":
            return `${where(this)} is not a valid request; nothing was sent${said(this.detail)}`
          case "TooLarge":
            return `${where(this)} is larger than the token limit allows at once; lower max_tokens or split it${said(this.detail)}`
          case "NotSent":
            return `${where(this)} was not sent${said(this.detail)}`
          case "Undecodable":
            return `${where(this)} got an answer${status} that is not the OpenAI shape${said(this.detail)}`
          default:
            return `${where(this)} was refused by the provider${status}${said(this.detail)}`
        }
      }
    }
  }
}

export const isModelError = (value: unknown): value is ModelError => value instanceof ModelError
