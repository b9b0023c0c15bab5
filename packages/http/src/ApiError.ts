/**
 * The ApiClient's typed errors. Each says whether trying again may help
 * (`retryable`), which Sluice's `Retry` reads; a server's `x-should-retry`
 * header overrides the default verdict. None of them carries a header, and
 * every body excerpt has the endpoint's secrets cut out, so an error can be
 * logged as it is.
 *
 * Default verdicts (as the OpenAI and Anthropic SDKs retry): `RateLimited`
 * (429) yes, with its `retryAfter`; `ServerError` yes, except 501 and 505;
 * `ClientError` only for 408 and 409; `Timeout` and `Transport` yes; `Decode`
 * and `InvalidRequest` never.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"

const Common = {
  endpoint: Schema.String,
  method: Schema.String,
  /** The request's path, without its query string (which may hold a key). */
  path: Schema.String
}

/** A failed answer: its status, the server's hints, and a short excerpt of its body. */
const Answered = {
  ...Common,
  status: Schema.Number,
  retryAfterMillis: Schema.optional(Schema.Number),
  shouldRetry: Schema.optional(Schema.Boolean),
  excerpt: Schema.String
}

const retryAfterOf = (millis: number | undefined) => (millis === undefined ? undefined : Duration.millis(millis))

const verdict = (shouldRetry: boolean | undefined, otherwise: boolean) => shouldRetry ?? otherwise

const where = (error: { endpoint: string; method: string; path: string }) =>
  `${error.method} ${error.path} on endpoint "${error.endpoint}"`

/**
 * 429: the server's rate limit. `retryAfterMillis` is what it asked for, if anything.
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimited extends Schema.TaggedError<RateLimited>("@sluice/http/RateLimited")("RateLimited", Answered) {
  get retryAfter(): Duration.Duration | undefined {
    return retryAfterOf(this.retryAfterMillis)
  }
  get retryable(): boolean {
    return verdict(this.shouldRetry, true)
  }
  override get message(): string {
    const wait = this.retryAfterMillis === undefined ? "" : `; retry after ${Math.ceil(this.retryAfterMillis)} ms`
    return `${where(this)} was rate limited (429)${wait}`
  }
}

/**
 * 5xx.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Schema.TaggedError<ServerError>("@sluice/http/ServerError")("ServerError", Answered) {
  get retryAfter(): Duration.Duration | undefined {
    return retryAfterOf(this.retryAfterMillis)
  }
  get retryable(): boolean {
    return verdict(this.shouldRetry, this.status !== 501 && this.status !== 505)
  }
  override get message(): string {
    return `${where(this)} failed with ${this.status}: ${this.excerpt}`
  }
}

/**
 * 4xx other than 429: usually the request's own fault.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClientError extends Schema.TaggedError<ClientError>("@sluice/http/ClientError")("ClientError", {
  ...Common,
  status: Schema.Number,
  shouldRetry: Schema.optional(Schema.Boolean),
  /** The first few hundred characters of the body, secrets removed. */
  excerpt: Schema.String
}) {
  get retryable(): boolean {
    return verdict(this.shouldRetry, this.status === 408 || this.status === 409)
  }
  override get message(): string {
    return `${where(this)} was refused with ${this.status}: ${this.excerpt}`
  }
}

/**
 * No complete answer within the request's timeout.
 *
 * @since 0.1.0
 * @category errors
 */
export class Timeout extends Schema.TaggedError<Timeout>("@sluice/http/Timeout")("Timeout", {
  ...Common,
  timeoutMillis: Schema.Number
}) {
  get retryable(): boolean {
    return true
  }
  override get message(): string {
    return `${where(this)} did not answer within ${this.timeoutMillis} ms`
  }
}

/**
 * The connection failed: refused, reset, closed early, DNS, TLS.
 *
 * @since 0.1.0
 * @category errors
 */
export class Transport extends Schema.TaggedError<Transport>("@sluice/http/Transport")("Transport", {
  ...Common,
  reason: Schema.String
}) {
  get retryable(): boolean {
    return true
  }
  override get message(): string {
    return `${where(this)} failed in transport: ${this.reason}`
  }
}

/**
 * The answer is not what the caller's Schema says (or not JSON at all).
 *
 * @since 0.1.0
 * @category errors
 */
export class Decode extends Schema.TaggedError<Decode>("@sluice/http/Decode")("Decode", {
  ...Common,
  status: Schema.Number,
  issues: Schema.String,
  excerpt: Schema.String
}) {
  get retryable(): boolean {
    return false
  }
  override get message(): string {
    return `${where(this)} answered ${this.status} with a body that does not decode: ${this.issues}`
  }
}

/**
 * The request was refused before it was sent (e.g. a header value holding a
 * line break, which could smuggle another header in).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>("@sluice/http/InvalidRequest")(
  "InvalidRequest",
  { ...Common, reason: Schema.String }
) {
  get retryable(): boolean {
    return false
  }
  override get message(): string {
    return `${where(this)} was not sent: ${this.reason}`
  }
}

/**
 * @since 0.1.0
 * @category errors
 */
export type ApiError = RateLimited | ServerError | ClientError | Timeout | Transport | Decode | InvalidRequest
