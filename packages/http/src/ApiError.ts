/**
 * The ApiClient's error: one `ApiError` refined by a literal `reason`, so that
 * `Effect.catchTag("ApiError", ...)` catches this layer's failures and no
 * other package's (the Model's `RateLimited` is a `ModelError`). Each says
 * whether trying again may help (`retryable`), which Sluice's `Retry` reads;
 * a server's `x-should-retry` header overrides the default verdict. None
 * carries a header, and every body excerpt has the endpoint's secrets cut
 * out, so an error can be logged as it is.
 *
 * Reasons and their default verdicts (as the OpenAI and Anthropic SDKs retry):
 * - `RateLimited`: a 429, with its `retryAfter`; retryable;
 * - `ServerError`: a 5xx; retryable, except 501 and 505;
 * - `ClientError`: a 4xx other than 429; retryable only for 408 and 409;
 * - `Timeout`: no complete answer within the attempt's timeout; retryable;
 * - `Transport`: the connection failed (refused, reset, DNS, TLS); retryable;
 * - `Decode`: the answer is not what the caller's Schema says; never;
 * - `InvalidRequest`: refused before it was sent; never;
 * - `ResponseTooLarge`: the answer's body is beyond the endpoint's
 *   `maxResponseBytes` (read no further); never.
 *
 * Build one with the constructor named after its reason
 * (`ApiError.rateLimited({ ... })`, `ApiError.timeout({ ... })`, ...): each
 * asks for exactly the fields its kind carries.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"

/**
 * What went wrong.
 *
 * @since 0.1.0
 * @category models
 */
export const Reason = Schema.Literal(
  "RateLimited",
  "ServerError",
  "ClientError",
  "Timeout",
  "Transport",
  "Decode",
  "InvalidRequest",
  "ResponseTooLarge"
)

/**
 * @since 0.1.0
 * @category models
 */
export type Reason = typeof Reason.Type

/** Where every error happened. */
interface Where {
  readonly endpoint: string
  readonly method: string
  /** The request's path, without its query string (which may hold a key). */
  readonly path: string
}

/** A failed answer: its status, the server's hints, and a short excerpt of its body. */
interface Answered extends Where {
  readonly status: number
  /** The first few hundred characters of the body, secrets removed. */
  readonly excerpt: string
  /** What the server asked to wait (`retry-after`, `retry-after-ms`), if anything. */
  readonly retryAfterMillis?: number
  /** The server's `x-should-retry`, which overrides the default verdict. */
  readonly shouldRetry?: boolean
  /**
   * Set when the server asked to wait longer than the endpoint's
   * `serverWaitCeiling` (then `retryAfterMillis` is the wait it asked for):
   * the endpoint waits at most this, and the call is not retried.
   */
  readonly ceilingMillis?: number
}

const beyondCeiling = (error: {
  readonly retryAfterMillis?: number | undefined
  readonly ceilingMillis?: number | undefined
}) =>
  `; the server asked to wait ${Math.ceil(error.retryAfterMillis ?? 0)} ms, beyond the endpoint's serverWaitCeiling of ${error.ceilingMillis} ms: not retried, and the endpoint holds its calls at most ${error.ceilingMillis} ms`

const where = (error: Where) => `${error.method} ${error.path} on endpoint "${error.endpoint}"`

/**
 * A call that failed, refined by `reason`. Fields a kind lacks are absent:
 * `status` and `excerpt` for an answer (`RateLimited`, `ServerError`,
 * `ClientError`, `Decode`), `retryAfterMillis` for `RateLimited` and
 * `ServerError`, `timeoutMillis` for `Timeout`, `issues` for `Decode`, and
 * `detail` for `Transport` and `InvalidRequest`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApiError extends Schema.TaggedError<ApiError>("@sluice/http/ApiError")("ApiError", {
  reason: Reason,
  endpoint: Schema.String,
  method: Schema.String,
  /** The request's path, without its query string (which may hold a key). */
  path: Schema.String,
  status: Schema.optional(Schema.Number),
  retryAfterMillis: Schema.optional(Schema.Number),
  shouldRetry: Schema.optional(Schema.Boolean),
  /** The endpoint's `serverWaitCeiling`, when the server asked to wait longer (`retryAfterMillis`). */
  ceilingMillis: Schema.optional(Schema.Number),
  /** The first few hundred characters of the body, secrets removed. */
  excerpt: Schema.optional(Schema.String),
  /** `Timeout`: the attempt's timeout. */
  timeoutMillis: Schema.optional(Schema.Number),
  /** `Decode`: where the body did not match, and what was expected. */
  issues: Schema.optional(Schema.String),
  /** `ResponseTooLarge`: the endpoint's `maxResponseBytes`. */
  maxBytes: Schema.optional(Schema.Number),
  /** `Transport`, `InvalidRequest`, `ResponseTooLarge`: what failed, secrets removed. */
  detail: Schema.optional(Schema.String)
}) {
  /**
   * 429: the server's rate limit.
   *
   * @since 0.1.0
   */
  static rateLimited(fields: Answered): ApiError {
    return new ApiError({ ...fields, reason: "RateLimited" })
  }
  /**
   * 5xx.
   *
   * @since 0.1.0
   */
  static serverError(fields: Answered): ApiError {
    return new ApiError({ ...fields, reason: "ServerError" })
  }
  /**
   * 4xx other than 429: usually the request's own fault.
   *
   * @since 0.1.0
   */
  static clientError(fields: Omit<Answered, "retryAfterMillis" | "ceilingMillis">): ApiError {
    return new ApiError({ ...fields, reason: "ClientError" })
  }
  /**
   * No complete answer within the request's timeout.
   *
   * @since 0.1.0
   */
  static timeout(fields: Where & { readonly timeoutMillis: number }): ApiError {
    return new ApiError({ ...fields, reason: "Timeout" })
  }
  /**
   * The connection failed: refused, reset, closed early, DNS, TLS.
   *
   * @since 0.1.0
   */
  static transport(fields: Where & { readonly detail: string }): ApiError {
    return new ApiError({ ...fields, reason: "Transport" })
  }
  /**
   * The answer is not what the caller's Schema says (or not JSON at all).
   *
   * @since 0.1.0
   */
  static decode(
    fields: Where & { readonly status: number; readonly issues: string; readonly excerpt: string }
  ): ApiError {
    return new ApiError({ ...fields, reason: "Decode" })
  }
  /**
   * The request was refused before it was sent (e.g. a header value holding
   * a line break, which could smuggle another header in).
   *
   * @since 0.1.0
   */
  static invalidRequest(fields: Where & { readonly detail: string }): ApiError {
    return new ApiError({ ...fields, reason: "InvalidRequest" })
  }

  /**
   * The answer's body is larger than the endpoint's `maxResponseBytes`: it was not read further.
   *
   * @since 0.1.0
   */
  static responseTooLarge(
    fields: Where & { readonly status: number; readonly maxBytes: number; readonly detail: string }
  ): ApiError {
    return new ApiError({ ...fields, reason: "ResponseTooLarge" })
  }

  /** What the server asked to wait, if anything. */
  get retryAfter(): Duration.Duration | undefined {
    return this.retryAfterMillis === undefined ? undefined : Duration.millis(this.retryAfterMillis)
  }

  get retryable(): boolean {
    // A wait beyond the endpoint's ceiling: trying again within it would only be told the same.
    if (this.ceilingMillis !== undefined) return false
    switch (this.reason) {
      case "RateLimited":
        return this.shouldRetry ?? true
      case "ServerError":
        return this.shouldRetry ?? (this.status !== 501 && this.status !== 505)
      case "ClientError":
        return this.shouldRetry ?? (this.status === 408 || this.status === 409)
      case "Timeout":
      case "Transport":
        return true
      default: // Decode, InvalidRequest, ResponseTooLarge
        return false
    }
  }

  override get message(): string {
    switch (this.reason) {
      case "RateLimited": {
        const wait = this.retryAfterMillis === undefined ? "" : `; retry after ${Math.ceil(this.retryAfterMillis)} ms`
        return `${where(this)} was rate limited (429)${this.ceilingMillis === undefined ? wait : beyondCeiling(this)}`
      }
      case "ServerError":
        return `${where(this)} failed with ${this.status}${this.ceilingMillis === undefined ? "" : beyondCeiling(this)}: ${this.excerpt}`
      case "ClientError":
        return `${where(this)} was refused with ${this.status}: ${this.excerpt}`
      case "Timeout":
        return `${where(this)} did not answer within ${this.timeoutMillis} ms`
      case "Transport":
        return `${where(this)} failed in transport: ${this.detail}`
      case "Decode":
        return `${where(this)} answered ${this.status} with a body that does not decode: ${this.issues}`
      case "ResponseTooLarge":
        return `${where(this)} answered ${this.status} with a body larger than ${this.maxBytes} bytes (maxResponseBytes), not read further: ${this.detail}`
      default: // InvalidRequest
        return `${where(this)} was not sent: ${this.detail}`
    }
  }
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isApiError = (value: unknown): value is ApiError => value instanceof ApiError
