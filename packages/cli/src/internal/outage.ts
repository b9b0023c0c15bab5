/**
 * The provider's outages, as a run sees them. An outage begins with a
 * systemic failure (a 5xx, a timeout, a failed connection, an open breaker)
 * that no answer from the provider followed, and ends with the next answer
 * (any status below 500: a 4xx or a 429 is the provider speaking). While one
 * lasts, lines wait for the provider instead of failing; one that outlasts
 * `maxOutage` completes `exceeded`, and the run stops.
 *
 * Effect gave us `Clock`, `Deferred` and `Effect.repeat`; this module adds the
 * bookkeeping (plain numbers behind `Effect.sync`) and a watch fiber; and
 * (`forRun`) a run's outage: shown in its stats, and halting it when it
 * lasts too long.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { RunStatsShape } from "../RunStats.js"
import { RunError } from "./runError.js"

export interface State {
  /** When it began (ms on the run's Clock). */
  readonly since: number
  /** Lines waiting for the provider now. */
  readonly waiting: number
  /** What the last systemic failure was, in a few words. */
  readonly lastFailure: string
}

export interface Outage {
  /** The provider answered (a status below 500): an outage ends. */
  readonly alive: Effect.Effect<void>
  /** Answers so far: a line compares it before and after its attempt. */
  readonly answers: () => number
  /**
   * A systemic failure no answer followed, or the breaker opened: an outage begins now, unless one has.
   * `failure` (a few words) replaces the last failure shown, when given.
   */
  readonly down: (failure?: string) => Effect.Effect<void>
  /** A line begins (+1) or ends (-1) waiting for the provider. */
  readonly waiting: (delta: 1 | -1) => Effect.Effect<void>
  readonly current: () => State | undefined
  /** Completes with the outage, once it has lasted `maxOutage`. */
  readonly exceeded: Effect.Effect<State>
  /** Completes at the next sign the provider may be back (`wake`, or an answer ending the outage). */
  readonly nextChance: Effect.Effect<void>
  /** Wakes the waiting lines (the breaker let probes through, or closed). */
  readonly wake: Effect.Effect<void>
}

export const make = (options: {
  readonly maxOutage: Duration.DurationInput
  /** Told of every change (to show it). */
  readonly onChange?: ((state: State | undefined) => Effect.Effect<void>) | undefined
}): Effect.Effect<Outage, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const maxMillis = Duration.toMillis(Duration.decode(options.maxOutage))
    const exceeded = yield* Deferred.make<State>()
    let answers = 0
    let waiting = 0
    let since: number | undefined
    let lastFailure = ""
    const current = (): State | undefined => (since === undefined ? undefined : { since, waiting, lastFailure })
    const changed = Effect.suspend(() => (options.onChange === undefined ? Effect.void : options.onChange(current())))
    let chance = yield* Deferred.make<void>()
    const wake = Effect.flatMap(Deferred.make<void>(), (next) => {
      const previous = chance
      chance = next
      return Deferred.succeed(previous, undefined)
    })

    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.suspend(() => {
          const state = current()
          return state !== undefined && clock.unsafeCurrentTimeMillis() - state.since >= maxMillis
            ? Deferred.succeed(exceeded, state)
            : Effect.void
        }),
        Schedule.spaced(Duration.millis(Math.min(250, Math.max(1, maxMillis / 4))))
      )
    )

    return {
      alive: Effect.suspend(() => {
        answers++
        if (since === undefined) return Effect.void
        since = undefined
        return Effect.zipRight(changed, wake)
      }),
      answers: () => answers,
      down: (failure) =>
        Effect.suspend(() => {
          if (failure !== undefined) lastFailure = failure
          if (since !== undefined) return Effect.void
          since = clock.unsafeCurrentTimeMillis()
          return changed
        }),
      waiting: (delta) =>
        Effect.suspend(() => {
          waiting += delta
          return since === undefined ? Effect.void : changed
        }),
      current,
      exceeded: Deferred.await(exceeded),
      nextChance: Effect.suspend(() => Deferred.await(chance)),
      wake: Effect.asVoid(wake)
    }
  })

/**
 * A run's outage: shown in its stats as it changes; once it has outlasted
 * `maxOutage`, `halted` completes with a `ProviderUnavailable` RunError that
 * says for how long nothing answered (`silent`: "it has not answered", "no
 * provider has answered") and to run again when `back` ("the provider", "a
 * provider") is back.
 */
export const forRun = (options: {
  readonly maxOutage: Duration.DurationInput
  readonly stats: Pick<RunStatsShape, "setOutage">
  readonly halted: Deferred.Deferred<RunError>
  readonly silent: string
  readonly back: string
}): Effect.Effect<Outage, never, Scope.Scope> =>
  Effect.gen(function* () {
    const maxOutage = Duration.decode(options.maxOutage)
    const outage = yield* make({
      maxOutage,
      onChange: (state) =>
        options.stats.setOutage(
          state === undefined
            ? undefined
            : { since: state.since, waiting: state.waiting, lastFailure: state.lastFailure }
        )
    })
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        const state = yield* outage.exceeded
        const lasted = Duration.millis(Math.max(0, (yield* Clock.currentTimeMillis) - state.since))
        yield* Deferred.succeed(
          options.halted,
          new RunError({
            reason: "ProviderUnavailable",
            detail: `${options.silent} for ${Duration.format(lasted)}, longer than the outage allowed (--max-outage ${Duration.format(maxOutage)}); the last failure: ${state.lastFailure}. What was done is kept: run the same command again when ${options.back} is back`,
            label: "provider unavailable"
          })
        )
      })
    )
    return outage
  })
