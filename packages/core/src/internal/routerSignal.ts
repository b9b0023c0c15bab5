/**
 * What one failed call says, for the Router: each outcome feeds exactly one
 * thing. A 429 feeds the quota domain (its limits slow down) and nothing
 * else; a 5xx, a timeout or a broken connection feeds outlier ejection; the
 * caller's own 4xx (context too long, content filtered) feeds only the choice
 * of fallback; a provider that refused before sending (an open breaker, a
 * full queue, shutting down) is passed over without counting against it.
 *
 * The default classifier reads Sluice's own errors (`ExecutorError`,
 * `CircuitOpenError`, `RateLimiterError`) by class, and every other error by
 * the `reason` vocabulary that `ApiError` (`@sluice/http`) and `ModelError`
 * (`@sluice/model`) share; anything else counts as the provider's failure.
 */
import * as Predicate from "effect/Predicate"
import { CircuitOpenError } from "./circuitBreakerError.js"
import { ExecutorError } from "./executorError.js"
import { RateLimiterError } from "./rateLimiterError.js"
import { retryAfterMillis } from "./retry.js"

export type Signal =
  /** The provider's quota (a 429): its domains cool down; the next hop prefers another domain. */
  | { readonly _tag: "RateLimited"; readonly retryAfterMillis?: number | undefined }
  /** The provider failed (5xx, timeout, reset): counts toward its ejection; the next hop prefers the next tier. */
  | { readonly _tag: "Unavailable" }
  /** Refused before it was sent (breaker open, queue full, shutting down): another provider, no count against it. */
  | { readonly _tag: "Refused" }
  /** The prompt does not fit: a provider with a larger declared context window, if there is one. */
  | { readonly _tag: "ContextTooLong" }
  /** The provider's content policy refused it: the configured content-filter chain, if any. */
  | { readonly _tag: "ContentFiltered" }
  /** The caller's own mistake, or the call's deadline: final. */
  | { readonly _tag: "Final" }

const byReason: Readonly<Record<string, Signal["_tag"]>> = {
  RateLimited: "RateLimited",
  ServerError: "Unavailable",
  Timeout: "Unavailable",
  Transport: "Unavailable",
  ProviderUnavailable: "Unavailable",
  ContextTooLong: "ContextTooLong",
  ContentFiltered: "ContentFiltered",
  ClientError: "Final",
  InvalidRequest: "Final",
  Decode: "Final",
  ResponseTooLarge: "Final"
}

export const classify = (error: unknown): Signal => {
  if (error instanceof ExecutorError) {
    switch (error.reason) {
      case "AttemptTimeout":
        return { _tag: "Unavailable" }
      case "Deadline":
        return { _tag: "Final" }
      default:
        return { _tag: "Refused" }
    }
  }
  if (error instanceof CircuitOpenError) return { _tag: "Refused" }
  if (error instanceof RateLimiterError) {
    return error.reason === "CostExceedsCapacity" ? { _tag: "Refused" } : { _tag: "Final" }
  }
  if (Predicate.hasProperty(error, "reason") && typeof error.reason === "string") {
    const tag = byReason[error.reason]
    if (tag === "RateLimited") {
      const millis = Predicate.hasProperty(error, "retryAfterMillis")
        ? typeof error.retryAfterMillis === "number"
          ? error.retryAfterMillis
          : undefined
        : retryAfterMillis(error)
      return { _tag: "RateLimited", retryAfterMillis: millis }
    }
    if (tag !== undefined) return { _tag: tag } as Signal
  }
  return { _tag: "Unavailable" }
}
