/**
 * What the Executor applies to each key's requests besides admission: a
 * retry policy, a circuit breaker, a per-attempt timeout and a total
 * deadline. Executor-wide settings apply to every key; `keys` overrides them
 * field by field for the keys it names. Resolved once per key and cached, so
 * a request pays one map lookup.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type * as Executor from "../Executor.js"
import * as InvalidOptions from "../InvalidOptions.js"
import type * as Retry from "../Retry.js"
import * as RetryInternal from "./retry.js"

export interface KeySettings {
  readonly retry: Retry.Policy | undefined
  readonly breaker: CircuitBreaker.CircuitBreakerShape | undefined
  readonly timeoutMillis: number | undefined
  readonly deadlineMillis: number | undefined
  /** A retry policy, a breaker or a deadline applies: its attempts are logged on its events. */
  readonly resilient: boolean
}

const millisOf = (input: Duration.DurationInput | undefined) =>
  input === undefined ? undefined : Duration.toMillis(Duration.decode(input))

const isBreaker = (value: unknown): value is CircuitBreaker.CircuitBreakerShape =>
  Predicate.hasProperty(value, "protect") && Predicate.hasProperty(value, "admit")

/** Puts the executor's name and the field's path in front of an options error. */
const within = (executor: string, path: string) => (error: InvalidOptions.InvalidOptionsError) =>
  new InvalidOptions.InvalidOptionsError({ component: `Executor "${executor}" ${path}`, issues: error.issues })

const makeBreaker = (
  executor: string,
  path: string,
  breaker: Executor.BreakerSetting | undefined
): Effect.Effect<CircuitBreaker.CircuitBreakerShape | undefined, InvalidOptions.InvalidOptionsError, Scope.Scope> => {
  if (breaker === undefined) return Effect.succeed(undefined)
  if (isBreaker(breaker)) return Effect.succeed(breaker)
  return Effect.mapError(CircuitBreaker.make({ ...breaker, name: breaker.name ?? executor }), within(executor, path))
}

const makeRetry = (executor: string, path: string, retry: Retry.Options | undefined) =>
  retry === undefined ? Effect.succeed(undefined) : Effect.mapError(RetryInternal.policy(retry), within(executor, path))

const settings = (
  retry: Retry.Policy | undefined,
  breaker: CircuitBreaker.CircuitBreakerShape | undefined,
  timeoutMillis: number | undefined,
  deadlineMillis: number | undefined
): KeySettings => ({
  retry,
  breaker,
  timeoutMillis,
  deadlineMillis,
  resilient: retry !== undefined || breaker !== undefined || deadlineMillis !== undefined
})

export const makeResolver = (
  executor: string,
  options: Executor.Options
): Effect.Effect<(key: string) => KeySettings, InvalidOptions.InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function* () {
    const retry = yield* makeRetry(executor, "retry", options.retry)
    const breaker = yield* makeBreaker(executor, "breaker", options.breaker)
    const fallback = settings(retry, breaker, millisOf(options.timeout), millisOf(options.deadline))
    const byKey = new Map<string, KeySettings>()
    for (const [key, overrides] of Object.entries(options.keys ?? {})) {
      const keyRetry =
        overrides.retry === undefined ? retry : yield* makeRetry(executor, `keys.${key}.retry`, overrides.retry)
      const keyBreaker =
        overrides.breaker === undefined
          ? breaker
          : isBreaker(overrides.breaker)
            ? overrides.breaker
            : yield* makeBreaker(executor, `keys.${key}.breaker`, {
                ...overrides.breaker,
                name: overrides.breaker.name ?? `${executor}/${key}`
              })
      byKey.set(
        key,
        settings(
          keyRetry,
          keyBreaker,
          overrides.timeout === undefined ? fallback.timeoutMillis : millisOf(overrides.timeout),
          overrides.deadline === undefined ? fallback.deadlineMillis : millisOf(overrides.deadline)
        )
      )
    }
    return byKey.size === 0 ? () => fallback : (key: string) => byKey.get(key) ?? fallback
  })
