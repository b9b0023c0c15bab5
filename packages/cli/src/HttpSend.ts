/**
 * A `Send` over HTTP: each batch line's `body` POSTed to its `url` under a
 * base URL, through an `ApiClient` whose Executor applies the limits (`rpm`,
 * `tpm`, `concurrency`), the per-attempt `timeout` and retries up to
 * `maxAttempts`. A line's token cost is estimated before the call as its
 * prompt characters / 4 plus its `max_tokens` (or `max_completion_tokens`).
 *
 * This is the stand-in sender that makes `sluice run` work end to end today;
 * the Model service (`@sluice/model`) will replace it in the command's one
 * wiring point, with its own token estimation and reconciliation.
 *
 * What Effect gave us: `HttpClient` (wrapped to observe each attempt) and
 * `Scope`. What `@sluice/http` gave us: the `ApiClient` with its Executor.
 * What this module adds: the mapping from a batch line to a call and back
 * (attempts, `usage`, a `SendFailure`), and the `RunStats` feed: each request
 * sent, each retry, each 429.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type { Executor, InvalidOptions } from "@sluice/core"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/httpSend.js"
import type { Send } from "./Runner.js"
import type { RunStats } from "./RunStats.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** e.g. `https://api.openai.com/v1`. A line's `url` that repeats its path (`/v1/...`) is taken under it once. */
  readonly baseUrl: string
  /** Sent as `Authorization: Bearer`; never printed. */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** Requests per minute. None: unlimited. */
  readonly rpm?: number | undefined
  /** Tokens per minute. None: unlimited. */
  readonly tpm?: number | undefined
  /** Calls in flight at once. Default 16. */
  readonly concurrency?: number | undefined
  /** Attempts per line, the first included. Default 3. */
  readonly maxAttempts?: number | undefined
  /** How long one attempt may take. Default 60 s. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Allow plain `http://` to a host other than loopback. */
  readonly allowInsecureHttp?: boolean | undefined
  /** Names the endpoint in errors. Default `sluice-run`. */
  readonly name?: string | undefined
  /**
   * The share of a minute's allowance that may go at once (each limit's
   * bucket capacity). Default 1: a whole minute, as a provider's sliding
   * window allows; lower it to pace a run evenly from the start.
   */
  readonly burst?: number | undefined
  /** A circuit breaker for the endpoint (options, or a breaker to share and watch). */
  readonly breaker?: Executor.BreakerSetting | undefined
}

/**
 * Builds the sender over the `HttpClient` in context (see `ApiClient.layerPool`).
 * Bad options fail with an `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<Send, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | RunStats | Scope.Scope> =
  internal.make

/**
 * The token cost a line is charged before its call: prompt characters / 4
 * (rounded up) plus its `max_completion_tokens` or `max_tokens`, at least 1.
 *
 * @since 0.1.0
 * @category utils
 */
export const estimateTokens: (body: unknown) => number = internal.estimateTokens
