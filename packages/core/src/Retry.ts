/**
 * Retry policies: how a failed call is tried again.
 *
 * What Effect gives: `Schedule` (exponential, jittered, recurs, upTo, …) and
 * `Effect.retry`, which re-runs an effect while a schedule continues. What it
 * lacks, and this module adds:
 * - the two jitters that spread a crowd of retries well (AWS "full" and
 *   "decorrelated"; `Schedule.jittered` only scales each delay by 0.8–1.2),
 *   with a cap on each delay ({@link backoff});
 * - only failures classified as retryable are retried: a predicate, or by
 *   default the error's own `retryable` verdict; defects and interruptions
 *   never are;
 * - an error carrying `retryAfter` (a 429 or 503 from the server) makes the
 *   next delay at least that long, and a `retryAfter` above a ceiling means
 *   "give up now" rather than holding the caller for an hour;
 * - a total elapsed time: no attempt is scheduled to start past `maxElapsed`;
 * - a retry budget ({@link makeBudget}, Envoy style): retries may be at most
 *   a share of recent requests, so an outage does not multiply load.
 *
 * A policy is still a `Schedule` at heart: the delays between attempts are
 * exactly the schedule's (raised to any `retryAfter`), stepped by hand so the
 * delay is known before sleeping. Each decision says why a call gave up.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import type { InvalidOptionsError } from "./InvalidOptions.js"
import * as internal from "./internal/retry.js"
import type { BudgetState, RetryBudgetShape } from "./internal/retryBudget.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface BackoffOptions {
  /** The first delay (before any jitter). Default 200 ms. */
  readonly base?: Duration.DurationInput | undefined
  /** Each delay is the previous times this. Default 2. */
  readonly factor?: number | undefined
  /** No single delay is longer than this. Default 30 s. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /**
   * `"full"` (default): uniform in [0, min(maxDelay, base × factor^n)].
   * `"decorrelated"`: uniform in [base, 3 × previous delay], capped.
   * `"none"`: exactly min(maxDelay, base × factor^n).
   */
  readonly jitter?: "none" | "full" | "decorrelated" | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends BackoffOptions {
  /** Attempts in all, the first included. Default 3. */
  readonly maxAttempts?: number | undefined
  /** The delays between attempts; replaces `base`/`factor`/`maxDelay`/`jitter`. */
  readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** No attempt is scheduled to start later than this after the first began. */
  readonly maxElapsed?: Duration.DurationInput | undefined
  /** A `retryAfter` longer than this gives up at once. Default 1 minute. */
  readonly retryAfterCeiling?: Duration.DurationInput | undefined
  /** Which failures are worth another attempt. Default: the error's own `retryable` verdict ({@link isRetryable}). */
  readonly isRetryable?: ((error: unknown) => boolean) | undefined
  /** Shared by every call under this policy (or several policies). */
  readonly budget?: RetryBudget | undefined
}

/**
 * A validated policy (see {@link policy}).
 *
 * @since 0.1.0
 * @category models
 */
export interface Policy {
  readonly maxAttempts: number
  readonly schedule: Schedule.Schedule<unknown, unknown>
  readonly maxElapsedMillis: number | undefined
  readonly retryAfterCeilingMillis: number
  readonly isRetryable: (error: unknown) => boolean
  readonly budget: RetryBudget | undefined
}

/**
 * Why a call stopped being retried.
 *
 * @since 0.1.0
 * @category models
 */
export type GiveUpReason =
  | "NotRetryable"
  | "AttemptsExhausted"
  | "ScheduleDone"
  | "RetryAfterAboveCeiling"
  | "ElapsedExhausted"
  | "DeadlineExceeded"
  | "BudgetExhausted"

/**
 * What follows a failed attempt.
 *
 * @since 0.1.0
 * @category models
 */
export type Decision =
  | { readonly _tag: "Retry"; readonly delayMillis: number }
  | { readonly _tag: "GiveUp"; readonly reason: GiveUpReason }

/**
 * Exponential backoff with a cap and jitter, as a `Schedule` (its output is
 * the delay). Randomness comes from Effect's `Random`, so a seeded `Random`
 * makes it repeatable.
 *
 * @since 0.1.0
 * @category constructors
 */
export const backoff: (options?: BackoffOptions) => Schedule.Schedule<Duration.Duration> = internal.backoff

/**
 * Validates options into a {@link Policy}; a bad value fails with an
 * `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const policy: (options?: Options) => Effect.Effect<Policy, InvalidOptionsError> = internal.policy

/**
 * Runs an effect under a policy: a retryable failure is tried again after the
 * policy's delay, until the policy gives up; then the last error is returned.
 *
 * @since 0.1.0
 * @category combinators
 */
export const retry: (policy: Policy) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> =
  internal.retry

/**
 * The default verdict: an error is retryable when it says so (a `retryable`
 * field or getter that is `true`), as Sluice's own errors do.
 *
 * @since 0.1.0
 * @category utils
 */
export const isRetryable: (error: unknown) => boolean = internal.isRetryable

/**
 * The `retryAfter` an error carries (a `Duration` or milliseconds), in milliseconds.
 *
 * @since 0.1.0
 * @category utils
 */
export const retryAfterMillis: (error: unknown) => number | undefined = internal.retryAfterMillis

/**
 * A budget shared by many calls: `tryRetry` takes one retry if the window
 * allows it, `recordRequest` counts a first attempt.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryBudget extends RetryBudgetShape {}

export type {
  /**
   * @since 0.1.0
   * @category models
   */
  BudgetState
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BudgetOptions {
  /** Retries may be at most this share of the first attempts in the window (0.2 = 20%). */
  readonly ratio: number
  /** Retries always allowed per window, however few requests there were. Default 0. */
  readonly minRetries?: number | undefined
  /** How far back requests and retries are counted. Default 10 s. */
  readonly window?: Duration.DurationInput | undefined
}

/**
 * Makes a retry budget; counts time by `Clock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeBudget: (options: BudgetOptions) => Effect.Effect<RetryBudget, InvalidOptionsError> =
  internal.makeBudget
