/**
 * The breaker that guards a store's calls to Redis (the RateLimiterStore's
 * and the breaker store's): open after `failures` calls in a row fail, for
 * `openDuration` (default 3, 1 s), one probe at a time. A call Redis refused
 * (the script said no: a bug, not an outage) never opens it.
 *
 * What Effect and core gave: `CircuitBreaker` is the breaker; this module only
 * fixes its policy for a store, so both stores judge an outage alike.
 *
 * @internal
 */
import { CircuitBreaker, type InvalidOptions } from "@sluice/core"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/** The guard's options, as the stores take them. */
export interface GuardOptions {
  readonly failures?: number | undefined
  readonly openDuration?: Duration.DurationInput | undefined
}

/** A breaker named `name` whose failures are every failed call but the ones `refused` recognises. */
export const make = (
  name: string,
  options: GuardOptions | undefined,
  refused: (error: unknown) => boolean
): Effect.Effect<CircuitBreaker.CircuitBreakerShape, InvalidOptions.InvalidOptionsError, Scope.Scope> =>
  CircuitBreaker.make({
    name,
    policy: { kind: "consecutive", failures: options?.failures ?? 3 },
    openDuration: options?.openDuration ?? Duration.seconds(1),
    halfOpenProbes: 1,
    classify: (exit) =>
      Exit.isSuccess(exit)
        ? "success"
        : Option.match(Cause.failureOption(exit.cause), {
            onNone: () => "failure",
            onSome: (error) => (refused(error) ? "ignore" : "failure")
          })
  })
