/**
 * A `Send` over HTTP: each batch line's `body` POSTed to its `url` under a
 * base URL. A line names one of the Batch API's endpoints (chat completions,
 * embeddings, the legacy completions) and goes through the Model's call for it
 * (`@sluice/model`: the body checked, the token estimate reserved on the token
 * limit and reconciled with what the provider counted); the endpoint's
 * Executor applies the limits, the concurrency, the per-attempt `timeout` and
 * retries up to `maxAttempts`. The result carries the answer's status and
 * `x-request-id` (for OpenAI's batch output record).
 *
 * One ApiClient per run, whose limits are known up front or learned. The
 * first line goes alone, and its answer's headers (`x-ratelimit-limit-*`,
 * `anthropic-ratelimit-*-limit`, `RateLimit-Policy`) say the server's limits.
 * The run then goes by the tighter of those and the flags (`rpm`, `tpm`).
 *
 * Decided: the client is built once, at the start, over a limiter whose limits
 * can be replaced (the flags', until the first answer). A limiter's `sync`
 * moves a bucket's level, not its rate, so placeholder limits corrected by
 * `sync` would pace the run at the placeholder's rate between answers (429s);
 * and building the client only after the first answer would need another
 * client to send that first line. So the limits themselves are replaced, once,
 * before the ApiClient reads the answer that reported them: its own header
 * feed then seeds the new buckets with that answer's `remaining` counts, and
 * corrects them from every later answer (`sync` and `penalize`). One client
 * means one Executor: one queue, one concurrency limit, one breaker, one
 * stream of `RequestEvent`s for the whole run. A server that reports nothing,
 * or a first answer that takes longer than `learnWait`, leaves the flags in
 * force (or no limit but the concurrency, and the 429s' `retry-after`).
 * `learnLimits: false` builds the client with the flags' limits alone.
 *
 * Each limit is a bucket holding `burst` of the allowance that refills so
 * that no window takes more than the limit less its `headroom`, kept in
 * whole units where they can carry it and in time otherwise (`learnedLimits.ts`): the
 * server's window never sees more than its limit, a saturated run holds at
 * `1 − headroom − burst` of a large limit (96% by default), with no 429s, and
 * a small one loses no request to rounding.
 *
 * What Effect gave us: `HttpClient` (wrapped to observe each attempt and to
 * read the first answer's headers), `Deferred` (the decision the waiting lines
 * wait on) and `Scope`. What `@sluice/http` and `@sluice/model` gave us: the
 * `ApiClient` with its Executor and its events, the header parser, the Model
 * with its token estimator, `chargedChatTokens` and `chargedCompletionTokens`. What this module adds: the
 * mapping from a batch line to a call and back (attempts, `usage`, a
 * `RunError` of reason `SendFailed`), learning the limits, and the `RunStats`
 * feed: the client's events (requests, retries, in flight), each 429, the
 * limits in force.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type { CircuitBreaker, Executor, InvalidOptions, RateLimiter } from "@sluice/core"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/httpSend.js"
import type { RunError, Send } from "./Runner.js"
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
  /** Requests per `window` (a minute by default). None: what the server reports, or unlimited. */
  readonly rpm?: number | undefined
  /** Tokens per `window` (a minute by default). None: what the server reports, or unlimited. */
  readonly tpm?: number | undefined
  /** The window `rpm` and `tpm` are counted over. Default 1 minute. */
  readonly window?: Duration.DurationInput | undefined
  /**
   * Send the first line alone and go by the limits its answer reports (the
   * tighter of those and `rpm`/`tpm`). Default true.
   */
  readonly learnLimits?: boolean | undefined
  /**
   * How long the other lines wait for the first line's answer; then they go
   * by `rpm`/`tpm` alone (the headers of later answers still correct the
   * limiter's levels). Default 10 seconds.
   */
  readonly learnWait?: Duration.DurationInput | undefined
  /**
   * What the provider charges a chat line's output against its token limit
   * (see the Model's `outputTokensCharged`). Default `"maximum"`: OpenAI
   * counts `max_tokens` whatever the answer used.
   */
  readonly outputTokensCharged?: "used" | "maximum" | undefined
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
   * The share of a window's allowance that may go at once: each limit's
   * bucket holds this much (at least 1). Default 0.02. A request larger than
   * the bucket pays for its tokens in installments (the Model's
   * `maxRequestTokens`, set to the token limit).
   */
  readonly burst?: number | undefined
  /**
   * The share of each limit kept for the varying time between an admission
   * here and the request's arrival at the server: in whole requests or
   * tokens where they can carry it (a window holds at most the limit less
   * `⌊limit × headroom⌋`), the rest in time (the limiter's window made that
   * much longer than the server's). Default 0.02: a saturated run holds at
   * `1 − headroom − burst` (96%) of a large limit; 3 requests a minute go one
   * every 20.4 s.
   */
  readonly headroom?: number | undefined
  /** A circuit breaker for the endpoint (options, or a breaker to share and watch). */
  readonly breaker?: Executor.BreakerSetting | undefined
  /**
   * Pause through outages. When set, a line whose failure is the provider's
   * (a 5xx, a timeout, a failed connection, an open breaker) with no answer
   * from the provider to anyone since its last attempt began waits for the
   * provider and is sent again, instead of failing; an outage that lasts
   * this long completes `halted` (`ProviderUnavailable`). A breaker is built
   * by default (`defaultBreaker`: only the provider's failures count). Unset:
   * such a line fails once its attempts are spent.
   */
  readonly maxOutage?: Duration.DurationInput | undefined
  /**
   * Without `maxOutage`: a line refused by the open breaker waits for it (retried, paying nothing, for up to
   * ten minutes) when true, the default; fails at once when false (behind a Router, another provider takes it).
   */
  readonly waitForBreaker?: boolean | undefined
  /**
   * A limiter shared with other senders (a quota domain's: one organisation's
   * limits over several endpoints): every admission charges it, and each
   * answer's rate-limit headers and `Retry-After` correct it for all of them.
   * `rpm`/`tpm` then say what its limits are (for the run's stats and the
   * largest request); the limits are not learned.
   */
  readonly rateLimiter?: RateLimiter.RateLimiterShape | undefined
}

/**
 * A `Send` that can also stop the whole run: `halted` completes with the
 * reason (`AuthenticationFailed`: the provider refused the credentials, so
 * every line would be refused; `ProviderUnavailable`: an outage outlasted
 * `maxOutage`). Lines in flight then fail with the same error.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sender extends Send {
  readonly halted: Effect.Effect<RunError>
}

/**
 * Builds the sender over the `HttpClient` in context (on Node, `NodeHttpPool.layer` from `@sluice/http-node`).
 * Bad options fail with an `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<Sender, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | RunStats | Scope.Scope> =
  internal.make

/**
 * The breaker `sluice run` has by default: over the last 20 calls, once 10
 * were seen, half failing opens it, for 1 s, then 2, 4, up to 10 s while
 * probes fail; 2 probes. Only the provider's failures count (5xx, timeouts,
 * failed connections).
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultBreaker: (name: string) => CircuitBreaker.Options = internal.defaultBreaker
