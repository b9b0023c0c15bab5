/**
 * Hedged calls: if the first attempt has not answered after a delay, start
 * another (up to `maxHedges` more); the first success wins and every other
 * attempt is interrupted, releasing what it held (an Executor permit, a rate
 * reservation not yet spent) before the hedged call returns.
 *
 * What Effect gives: `Effect.race` (first success wins, the loser is
 * interrupted and awaited) and `Deferred`. What this adds, as Polly's hedging
 * does: attempts staggered by a delay rather than all at once, and an attempt
 * that fails early starts the next one at once instead of waiting out the
 * delay. The call fails only once every attempt has failed; its cause holds
 * every attempt's failure.
 *
 * Hedge around `Executor.submit` (each attempt its own request, admitted
 * through the limits) for a slow tail; it multiplies load by up to
 * `1 + maxHedges`, so keep `maxHedges` small.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Schema from "effect/Schema"
import * as InvalidOptions from "./InvalidOptions.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How long an attempt may go unanswered before the next one starts. */
  readonly delay: Duration.DurationInput
  /** Extra attempts at most. Default 1. */
  readonly maxHedges?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Policy {
  readonly delay: Duration.Duration
  /** Attempts in all: 1 + maxHedges. */
  readonly attempts: number
}

const OptionsSchema = Schema.Struct({
  delay: InvalidOptions.NonNegativeDuration,
  maxHedges: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt))
})

const decodeOptions = InvalidOptions.decode("Hedge", OptionsSchema)

/**
 * Validates options; a bad value fails with an `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const policy = (options: Options): Effect.Effect<Policy, InvalidOptions.InvalidOptionsError> =>
  Effect.map(decodeOptions(options), () => ({
    delay: Duration.decode(options.delay),
    attempts: 1 + (options.maxHedges ?? 1)
  }))

/**
 * Runs hedged attempts of `attempt` (an effect, or a function of the attempt
 * number from 1). The result is the first success.
 *
 * @since 0.1.0
 * @category combinators
 */
export const hedge =
  (policy: Policy) =>
  <A, E, R>(
    attempt: Effect.Effect<A, E, R> | ((attempt: number) => Effect.Effect<A, E, R>)
  ): Effect.Effect<A, E, R> => {
    const run = (n: number) => (Effect.isEffect(attempt) ? attempt : attempt(n))
    const from = (n: number): Effect.Effect<A, E, R> => {
      if (n >= policy.attempts) return run(n)
      return Effect.suspend(() => {
        const failed = Deferred.unsafeMake<void>(FiberId.none)
        const current = Effect.onError(run(n), () => Deferred.succeed(failed, undefined))
        const next = Effect.zipRight(Effect.raceFirst(Effect.sleep(policy.delay), Deferred.await(failed)), from(n + 1))
        return Effect.race(current, next)
      })
    }
    return from(1)
  }
