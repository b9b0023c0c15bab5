/**
 * A mock model provider: a real HTTP server on `127.0.0.1` (a free port
 * unless told) that speaks the OpenAI-compatible API, meters its callers the
 * way a provider does, and fails on demand. Tests point a real client at
 * `baseUrl` and then assert on what the server saw (`log`, `counters`).
 *
 * Endpoints: `POST /v1/chat/completions`, `POST /v1/embeddings`, the legacy
 * `POST /v1/completions`, `GET /v1/models` and `GET /v1/models/{id}` — what
 * the official `openai` SDK sends (and the three endpoints of OpenAI's Batch API). Every answer is a pure function of the request: the same request
 * gets the same body (only a chat answer's `created` second reads `Clock`, so
 * under `TestClock` even that repeats). Prompt tokens are estimated at ~4
 * characters per token of the messages' text, at least 1 (see
 * {@link estimateTokens}); a completion is 8 to 32 words (one token each)
 * picked by a generator seeded from the model and the last user message,
 * capped by `max_tokens` / `max_completion_tokens` (then `finish_reason` is
 * `"length"`). With `stream: true` the same completion comes as server-sent
 * events: `chat.completion.chunk`s (the role, one per word, then the
 * `finish_reason`), a last chunk with no choices and the `usage` when
 * `stream_options.include_usage` is set, then `data: [DONE]`. Embeddings are
 * unit vectors (8 dimensions, or `dimensions`) seeded from each input, which
 * is text or token ids (a token array costs its length), or a list of either;
 * `encoding_format: "base64"` (the SDK's default) sends each as float32
 * little-endian bytes in base64, as OpenAI does. The models listed are
 * `options.models` (default `mock-model`, `mock-embedding`); chat and
 * embeddings accept any model. A legacy completion answers `n` choices (1 by
 * default) for each prompt (text, token ids, or a list of either), each of 8 to
 * 32 words capped by `max_tokens` (16 when none is given, OpenAI's default); it
 * costs its prompts plus `max_tokens` for every choice.
 *
 * A request goes through, in order:
 * 1. routing: an unknown path or method → 404 (`GET /v1/models` answers after
 *    step 2, unmetered; an unlisted `/v1/models/{id}` → 404 `model_not_found`);
 * 2. auth, when `apiKeys` are set: a missing or unknown `Authorization: Bearer`
 *    key → 401 (the header's value is never logged);
 * 3. the body: not JSON, or missing `model`/`messages`/`input`, or a field of
 *    the wrong kind → 400;
 * 4. the limits: `rpm` and `tpm` over a sliding window of the last 60 s. A chat
 *    request costs its prompt tokens plus `max_tokens` when given (OpenAI
 *    reserves the maximum), else plus its actual completion tokens; an
 *    embeddings request costs its input tokens. Only admitted requests are
 *    counted, and only while a limit is set (without limits the server keeps no
 *    window, so it stays fast however many requests it serves). Over a limit → 429 with `retry-after` (whole seconds, rounded up)
 *    and `retry-after-ms` (the time until this request would fit) and a body
 *    `{ error: { message, type: "rate_limit_exceeded", code: "requests" | "tokens" } }`.
 *    A request of more tokens than `tpm` can never fit: 429 with code
 *    `"request_too_large"` and no `retry-after`;
 * 5. latency: fixed, uniform or normal (clamped at 0), drawn from `Random`;
 * 6. a fault, drawn by its share: 500, 503, a connection reset (the socket is
 *    reset, no response), a hang (no response until the client gives up or the
 *    server closes), malformed JSON (200 with the answer cut in half), a slow
 *    body (the answer in `slowBody.chunks` pieces, `slowBody.interval` apart);
 *    else the answer. A streamed answer is cut or slowed the same way (its
 *    events' text).
 * Answers from step 3 on carry an `x-request-id` (`req_mock_<n>`, counting up); from step 4 on also
 * `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
 * for each configured limit; a reset is the time until the window holds
 * nothing of that limit, in OpenAI's format (`1s`, `6m0s`, `12ms`). They also
 * carry the IETF `RateLimit-Policy` (`"requests";q=600;w=60, "tokens";q=60000;w=60`),
 * which names the window (when it is whole seconds) that OpenAI's headers leave unsaid.
 *
 * Every request gets one log entry and counts under exactly one outcome, so
 * `total = served + rateLimited + unauthorized + badRequest + notFound + Σ faults`.
 * The entry is written when the outcome is decided (before latency), so a
 * test can await it (`awaitRequests`) while the response is still on its way.
 *
 * Time: the limits' window, latency and slow bodies read `Clock` and sleep by
 * `Effect.sleep` in the context `make` ran in, so a server built inside a test
 * moves with `TestClock` (the sockets are real). Randomness: a `seed` makes a
 * server's draws (faults, latency) one fixed sequence; without it they come
 * from the context's `Random`.
 *
 * What Effect gave us: `HttpRouter`, `HttpServer` and `NodeHttpServer` (the
 * server, its scoped lifetime and the bound address), `Schema` (requests and
 * options), `Clock`, `Random`, `Ref`/`SubscriptionRef` (state), `Stream` (slow
 * bodies). What this module adds: the OpenAI-shaped answers and errors, the
 * sliding-window limits and their headers, fault injection at the socket level
 * and a shutdown that also ends hung and kept-alive connections (Node's
 * `server.close` alone would wait for them).
 *
 * @since 0.1.0
 */

import type { ServeError } from "@effect/platform/HttpServerError"
import type { InvalidOptionsError } from "@sluice/core/InvalidOptions"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as answers from "./internal/mockAnswers.js"
import * as internal from "./internal/mockProvider.js"
import * as window from "./internal/slidingWindow.js"

/**
 * Latency added to every admitted request: fixed, uniform over `[min, max]`,
 * or normal (draws below zero count as zero).
 *
 * @since 0.1.0
 * @category models
 */
export type Latency =
  | { readonly fixed: Duration.DurationInput }
  | { readonly uniform: { readonly min: Duration.DurationInput; readonly max: Duration.DurationInput } }
  | { readonly normal: { readonly mean: Duration.DurationInput; readonly stdDev: Duration.DurationInput } }

/**
 * The kinds of injected fault.
 *
 * @since 0.1.0
 * @category models
 */
export type FaultKind = "serverError500" | "serviceUnavailable503" | "reset" | "hang" | "malformedJson" | "slowBody"

/**
 * The share (0 to 1) of admitted requests that meet each fault; the shares
 * add up to at most 1, the rest is answered normally. Missing kinds are 0.
 *
 * @since 0.1.0
 * @category models
 */
export type Faults = { readonly [K in FaultKind]?: number | undefined }

/**
 * Requests and tokens per minute (a sliding window of 60 s); a missing limit is unlimited.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  readonly rpm?: number | undefined
  readonly tpm?: number | undefined
  /**
   * The window the limits are counted over. Default 1 minute, as the names
   * say; a benchmark that must span several windows quickly can shorten it
   * (the limits are then per that window, and the headers report them so).
   */
  readonly window?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends Limits {
  readonly latency?: Latency | undefined
  readonly faults?: Faults | undefined
  /** Makes the server's draws (faults, latency) repeatable. */
  readonly seed?: number | undefined
  /** Bearer keys the server accepts; none means no auth. Change them with `setApiKeys`. */
  readonly apiKeys?: ReadonlyArray<string> | undefined
  /** How a slow body is sent: in `chunks` pieces (default 5), `interval` apart (default 200 ms). */
  readonly slowBody?:
    | { readonly chunks?: number | undefined; readonly interval?: Duration.DurationInput | undefined }
    | undefined
  /** Default 0: a free port. */
  readonly port?: number | undefined
  /** Default `127.0.0.1`. */
  readonly host?: string | undefined
  /** Log entries kept (the oldest are dropped). Default 10,000. */
  readonly logCapacity?: number | undefined
  /** The model ids `GET /v1/models` lists. Default `["mock-model", "mock-embedding"]`. */
  readonly models?: ReadonlyArray<string> | undefined
}

/**
 * How a request ended.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = "served" | "rateLimited" | "unauthorized" | "badRequest" | "notFound" | "fault"

/**
 * One request as the server saw it. Never holds the `Authorization` header.
 *
 * @since 0.1.0
 * @category models
 */
export interface LogEntry {
  /** 1, 2, 3, ... since the server started or was last `reset`. */
  readonly sequence: number
  /** When it arrived, in `Clock` milliseconds. */
  readonly time: number
  readonly method: string
  readonly path: string
  /** The requested model, once the body was read (for `GET /v1/models/{id}`, the id). */
  readonly model: string | undefined
  readonly promptTokens: number | undefined
  readonly completionTokens: number | undefined
  /** What it cost on the token limit (0 unless admitted). */
  readonly chargedTokens: number
  readonly outcome: Outcome
  /** The status it is answered with; undefined for a reset or a hang. */
  readonly status: number | undefined
  readonly fault: FaultKind | undefined
  /** Latency drawn for it, in milliseconds (0 unless admitted). */
  readonly latencyMillis: number
}

/**
 * Requests by outcome since the server started or was last `reset`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Counters {
  readonly total: number
  /** Answered normally (200). */
  readonly served: number
  /** 429s. */
  readonly rateLimited: number
  /** 401s. */
  readonly unauthorized: number
  /** 400s. */
  readonly badRequest: number
  /** 404s. */
  readonly notFound: number
  readonly faults: { readonly [K in FaultKind]: number }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MockProviderShape {
  /** The OpenAI-style base URL, `http://127.0.0.1:<port>/v1`: endpoints are `${baseUrl}/chat/completions`, ... */
  readonly baseUrl: string
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string
  readonly port: number
  /** The request log, oldest first (at most `logCapacity` entries). */
  readonly log: Effect.Effect<ReadonlyArray<LogEntry>>
  readonly counters: Effect.Effect<Counters>
  /** Waits until at least `count` requests have been logged since the last reset, then answers the log. */
  readonly awaitRequests: (count: number) => Effect.Effect<ReadonlyArray<LogEntry>>
  /** Replaces every fault share (missing kinds become 0). */
  readonly setFaults: (faults: Faults) => Effect.Effect<void, InvalidOptionsError>
  /** Replaces the latency; `undefined` for none. */
  readonly setLatency: (latency: Latency | undefined) => Effect.Effect<void, InvalidOptionsError>
  /** Replaces both limits (a missing one becomes unlimited); requests already in the window stay counted. */
  readonly setLimits: (limits: Limits) => Effect.Effect<void, InvalidOptionsError>
  /** Replaces the accepted keys (e.g. to expire a token); `undefined` turns auth off. */
  readonly setApiKeys: (keys: ReadonlyArray<string> | undefined) => Effect.Effect<void, InvalidOptionsError>
  /** Empties the log, the counters and the limits' window. Settings stay. */
  readonly reset: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class MockProvider extends Context.Tag("@sluice/testing/MockProvider")<MockProvider, MockProviderShape>() {}

/**
 * Starts a server in the current scope; closing the scope closes the port and
 * every connection, hung ones included. Bad options fail with an
 * `InvalidOptionsError` that names the field; a port that cannot be bound with
 * a `ServeError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<MockProviderShape, InvalidOptionsError | ServeError, Scope.Scope> = internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<MockProvider, InvalidOptionsError | ServeError> =>
  Layer.scoped(MockProvider, make(options))

/**
 * The prompt-token estimate the server counts with: ~4 characters per token, at least 1.
 *
 * @since 0.1.0
 * @category utils
 */
export const estimateTokens: (text: string) => number = answers.estimateTokens

/**
 * Formats milliseconds the way OpenAI's `x-ratelimit-reset-*` headers do:
 * `0s`, `12ms`, `1.5s`, `6m0s`, `1h2m3.5s` (rounded up to the millisecond).
 *
 * @since 0.1.0
 * @category utils
 */
export const formatResetDuration: (millis: number) => string = window.formatDuration
