/**
 * The Model's errors, in their own module so that the machinery and the
 * public module can both use them without importing each other. Each names
 * the provider (the endpoint), the model and the operation; none holds a
 * header or a request body, and a provider's words are taken only from the
 * ApiClient's error excerpt, which has the endpoint's secrets cut out.
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { ChatResponse } from "./wire.js"

const Common = {
  /** The endpoint's name. */
  provider: Schema.String,
  /** The model the request named. */
  model: Schema.String,
  operation: Schema.Literal("chat", "embed"),
  /** What the provider (or the layer that refused the call) said, secrets removed. */
  detail: Schema.optional(Schema.String),
  /** The ApiClient's (or Executor's) error this one was mapped from. */
  cause: Schema.optional(Schema.Unknown)
}

const retryableDefault = (value: boolean) => Schema.optionalWith(Schema.Boolean, { default: () => value })

const where = (error: { provider: string; model: string; operation: string }) =>
  `${error.operation} with model "${error.model}" on provider "${error.provider}"`

const said = (detail: string | undefined) => (detail === undefined || detail === "" ? "" : ` (${detail})`)

export class ContextTooLong extends Schema.TaggedError<ContextTooLong>("@sluice/model/ContextTooLong")(
  "ContextTooLong",
  {
    ...Common,
    /** The model's context window, when the provider said it. */
    maxContextTokens: Schema.optional(Schema.Number),
    /** What the provider counted for the request, when it said it. */
    requestedTokens: Schema.optional(Schema.Number),
    /** The Model's own estimate of the prompt. */
    estimatedPromptTokens: Schema.optional(Schema.Number)
  }
) {
  get retryable(): boolean {
    return false
  }
  override get message(): string {
    const numbers =
      this.maxContextTokens === undefined
        ? ""
        : ` of ${this.maxContextTokens} tokens${this.requestedTokens === undefined ? "" : ` (it asked for ${this.requestedTokens})`}`
    return `${where(this)} does not fit the model's context window${numbers}: shorten the messages or lower max_tokens${said(this.detail)}`
  }
}

export class ContentFiltered extends Schema.TaggedError<ContentFiltered>("@sluice/model/ContentFiltered")(
  "ContentFiltered",
  {
    ...Common,
    /** `"request"`: the provider refused the prompt; `"response"`: it filtered the answer. */
    source: Schema.Literal("request", "response"),
    /** The filtered answer (tokens were used for it), when the answer was filtered. */
    response: Schema.optional(ChatResponse)
  }
) {
  get retryable(): boolean {
    return false
  }
  override get message(): string {
    return this.source === "request"
      ? `${where(this)} was refused by the provider's content policy${said(this.detail)}`
      : `${where(this)} answered, but the provider's content filter withheld the answer${said(this.detail)}`
  }
}

export class RateLimited extends Schema.TaggedError<RateLimited>("@sluice/model/RateLimited")("RateLimited", {
  ...Common,
  /** What the provider asked to wait, if anything. */
  retryAfterMillis: Schema.optional(Schema.Number),
  /** Which of the provider's limits ran out, when it said (`"requests"`, `"tokens"`). */
  limit: Schema.optional(Schema.String),
  retryable: retryableDefault(true)
}) {
  get retryAfter(): Duration.Duration | undefined {
    return this.retryAfterMillis === undefined ? undefined : Duration.millis(this.retryAfterMillis)
  }
  override get message(): string {
    const wait = this.retryAfterMillis === undefined ? "" : `; retry after ${Math.ceil(this.retryAfterMillis)} ms`
    const limit = this.limit === undefined ? "" : ` on ${this.limit}`
    return `${where(this)} was rate limited by the provider${limit}${wait}${said(this.detail)}`
  }
}

export class ProviderUnavailable extends Schema.TaggedError<ProviderUnavailable>("@sluice/model/ProviderUnavailable")(
  "ProviderUnavailable",
  {
    ...Common,
    /**
     * `ServerError` (5xx), `Overloaded` (503, 529), `Timeout`, `Transport`,
     * `Unauthorized` (401, 403, no credentials: this provider cannot serve,
     * another may), `QuotaExhausted` (billing), `CircuitOpen`, `QueueFull`,
     * `ShuttingDown`, `LimiterFailure` (the rate-limiter store failed).
     */
    reason: Schema.Literal(
      "ServerError",
      "Overloaded",
      "Timeout",
      "Transport",
      "Unauthorized",
      "QuotaExhausted",
      "CircuitOpen",
      "QueueFull",
      "ShuttingDown",
      "LimiterFailure"
    ),
    status: Schema.optional(Schema.Number),
    retryAfterMillis: Schema.optional(Schema.Number),
    retryable: retryableDefault(true)
  }
) {
  get retryAfter(): Duration.Duration | undefined {
    return this.retryAfterMillis === undefined ? undefined : Duration.millis(this.retryAfterMillis)
  }
  override get message(): string {
    const status = this.status === undefined ? "" : ` ${this.status}`
    return `${where(this)} failed: the provider is unavailable (${this.reason}${status})${said(this.detail)}`
  }
}

export class InvalidRequest extends Schema.TaggedError<InvalidRequest>("@sluice/model/InvalidRequest")(
  "InvalidRequest",
  {
    ...Common,
    /**
     * `Invalid`: the request does not match the Schema (nothing was sent);
     * `Rejected`: the provider refused it (4xx); `TooLarge`: it could never
     * fit the token limit; `NotSent`: the client refused to send it;
     * `Undecodable`: the provider's answer did not decode.
     */
    reason: Schema.Literal("Invalid", "Rejected", "TooLarge", "NotSent", "Undecodable"),
    status: Schema.optional(Schema.Number),
    /** The provider's error code, e.g. `"invalid_value"`. */
    code: Schema.optional(Schema.String),
    retryable: retryableDefault(false)
  }
) {
  override get message(): string {
    const status = this.status === undefined ? "" : ` with ${this.status}`
    switch (this.reason) {
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

export type ModelError = ContextTooLong | ContentFiltered | RateLimited | ProviderUnavailable | InvalidRequest
