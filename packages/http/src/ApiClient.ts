/**
 * The resource client: one external HTTP API, called with typed errors and
 * Schema-decoded bodies, every call run through the endpoint's Executor
 * (rate and token limits, concurrency, retry, circuit breaker).
 *
 * What `@effect/platform` gives: `HttpClient` (requests, responses, spans,
 * header redaction in traces). The client runs over whichever `HttpClient` is
 * in context, so the same client runs on Node (`NodeHttpPool.layer` from
 * `@sluice/http-node`, an undici pool), Bun, Deno or a browser (`FetchHttpClient`),
 * or in memory in tests. What this module adds:
 * - one error a caller can act on, `ApiError`, refined by its `reason`
 *   (`RateLimited`, `ServerError`, `ClientError`, `Timeout`, `Transport`,
 *   `Decode`, `InvalidRequest`), with a `retryable` verdict that
 *   `x-should-retry` overrides, which the Executor's retry policy reads (a
 *   429's `retryAfter` sets the next delay);
 * - rate-limit headers of every dialect (`RateLimitHeaders`) fed into the
 *   endpoint's RateLimiter as they arrive (`sync`, and `penalize` for a
 *   `Retry-After`), so every queued call slows down together rather than each
 *   discovering the limit by its own 429;
 * - auth from the config or an `AuthProvider`, refreshed once on a 401;
 *   secrets revealed only into request headers, and every form of them (raw,
 *   base64, Basic's decoded `user:password`, JSON-escaped, URL-encoded) cut
 *   out of whatever a server sends back before it reaches an error, an event
 *   or a span; the client records its own `http.client` span (the platform's
 *   is turned off for its requests), redacting headers by name and by value,
 *   and ending with the scrubbed `ApiError`, never the request;
 * - a ceiling on every server-driven wait (`serverWaitCeiling`): no header
 *   holds the endpoint's limiter longer, and the call told a longer wait
 *   fails, not retried;
 * - a per-attempt timeout that covers the body too (a slow body is a
 *   timeout): the Executor's, or `Effect.timeoutFail` around each attempt
 *   of the plain client.
 *
 * `executor: false` gives the plain client: one attempt, no limits.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type { Executor, InvalidOptions, RateLimiter, RateLimiterStore } from "@sluice/core"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { ApiError } from "./ApiError.js"
import type { AuthFailed, AuthProvider } from "./Auth.js"
import type { EndpointConfig } from "./EndpointConfig.js"
import * as internal from "./internal/apiClient.js"
import type * as RateLimitHeaders from "./RateLimitHeaders.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Method = "GET" | "POST" | "PUT" | "DELETE" | "PATCH"

/**
 * @since 0.1.0
 * @category models
 */
export interface RequestOptions<A, I, R> {
  /** What a 2xx body must be; it is decoded with this Schema. */
  readonly schema: Schema.Schema<A, I, R>
  /** Sent as JSON. */
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly query?: Readonly<Record<string, string>> | undefined
  /** Overrides the endpoint's timeout for each attempt of this call. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * What the call costs on the endpoint's limits, e.g. `{ tokens: 1200 }` (one
   * request and 1,200 tokens), reserved all at once for each attempt.
   */
  readonly cost?: RateLimiter.Cost | undefined
  /**
   * How each attempt's reservation is settled once it ended: reconcile to the
   * real usage, refund (nothing was sent) or keep (default). See `Executor.SubmitOptions`.
   */
  readonly settle?: ((exit: Exit.Exit<A, ApiError | AuthFailed>) => Executor.Settlement) | undefined
  /** A cost above a limit's capacity is paid in installments of the capacity instead of failing. Default false. */
  readonly installments?: boolean | undefined
  readonly priority?: number | undefined
  /** Which rate-limit and breaker key applies. */
  readonly key?: string | undefined
}

/**
 * A read-only view of an endpoint's executor: its counts and its
 * `RequestEvent`s (see `Executor.ExecutorShape`).
 *
 * @since 0.1.0
 * @category models
 */
export type Progress = Pick<Executor.ExecutorShape, "name" | "stats" | "events" | "subscribe">

/**
 * Every way a call can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type CallError = ApiError | AuthFailed | Executor.SubmitError

/**
 * @since 0.1.0
 * @category models
 */
export interface ApiClientShape {
  readonly endpoint: string
  readonly baseUrl: string
  /** The names of the endpoint's limits (none without limits). */
  readonly limitNames: ReadonlyArray<string>
  /** The endpoint's buckets for a key, as they stand now (read-only; none without limits). */
  readonly state: (
    options?: RateLimiter.KeyOptions
  ) => Effect.Effect<ReadonlyArray<RateLimiterStore.BucketSnapshot>, RateLimiter.RateLimiterError>
  /** What the endpoint's executor is doing, for progress (read-only); undefined for the plain client (`executor: false`). */
  readonly progress: Progress | undefined
  readonly request: <A, I, R>(
    method: Method,
    path: string,
    options: RequestOptions<A, I, R>
  ) => Effect.Effect<A, CallError, R>
  readonly get: <A, I, R>(path: string, options: RequestOptions<A, I, R>) => Effect.Effect<A, CallError, R>
  readonly post: <A, I, R>(path: string, options: RequestOptions<A, I, R>) => Effect.Effect<A, CallError, R>
  readonly put: <A, I, R>(path: string, options: RequestOptions<A, I, R>) => Effect.Effect<A, CallError, R>
  readonly delete: <A, I, R>(path: string, options: RequestOptions<A, I, R>) => Effect.Effect<A, CallError, R>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class ApiClient extends Context.Tag("@sluice/http/ApiClient")<ApiClient, ApiClientShape>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  /** Credentials other than the config's static ones (e.g. `Auth.cachedToken`). */
  readonly auth?: AuthProvider | undefined
  /** Share a limiter instead of building one from the config's limits. */
  readonly rateLimiter?: RateLimiter.RateLimiterShape | undefined
  /**
   * What an earlier answer's rate-limit headers reported (`RateLimitHeaders.parse`):
   * the new limits start from its `remaining` counts, as the server's did.
   */
  readonly seed?: RateLimitHeaders.RateLimitInfo | undefined
  /** `false`: the plain client, with no executor (one attempt, no limits). Default true. */
  readonly executor?: boolean | undefined
  /**
   * A span per call in the executor (`sluice.executor.request`: queue, admission
   * and every attempt). Default false: `@effect/platform`'s client spans each
   * HTTP request already.
   */
  readonly spans?: boolean | undefined
}

/**
 * A client over the `HttpClient` in context. Bad config fails with an
 * `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  config: EndpointConfig,
  options?: MakeOptions
) => Effect.Effect<ApiClientShape, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | Scope.Scope> =
  internal.make

/**
 * The HTTP errors that are the provider's fault count against a breaker
 * (an `ApiError` of reason `ServerError`, `Timeout` or `Transport`); a
 * `RateLimited` or the caller's own errors do not. The endpoint's breaker
 * uses it unless given its own.
 *
 * @since 0.1.0
 * @category utils
 */
export const classify = internal.classify

/**
 * The client over the `HttpClient` in context: on Node, `NodeHttpPool.layer`
 * from `@sluice/http-node` (an undici pool sized by the config's `pool`);
 * elsewhere any platform's, e.g. `FetchHttpClient.layer`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: EndpointConfig,
  options?: MakeOptions
): Layer.Layer<ApiClient, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient> =>
  Layer.scoped(ApiClient, make(config, options))

/**
 * The same as {@link layer}, which now takes the `HttpClient` from context too.
 *
 * @since 0.1.0
 * @category layers
 * @deprecated Use {@link layer}.
 */
export const layerWithoutPool: (
  config: EndpointConfig,
  options?: MakeOptions
) => Layer.Layer<ApiClient, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient> = layer

/**
 * Reads the endpoint from `Config` (see `EndpointConfig.config`), then builds
 * the client over the `HttpClient` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<EndpointConfig>,
  options?: MakeOptions
): Layer.Layer<ApiClient, InvalidOptions.InvalidOptionsError | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Effect.map(config, (endpoint) => layer(endpoint, options)))
