/**
 * Ctrl-C in two steps, as two effects: `first` completes on the first
 * SIGINT (or SIGTERM), `second` on the next. The listeners live as long as
 * the scope. While they are installed Node does not end the process on a
 * signal; what happens is the program's to decide.
 *
 * One Ctrl-C may arrive twice: a launcher (`pnpm`, `npx`) forwards the
 * terminal's SIGINT to its child, which the terminal already sent to the
 * whole process group, a few milliseconds apart. So a signal within
 * `sameWithin` (default 500 ms) of the first counts as the same one; only a
 * later one is the second Ctrl-C. Time comes from the `Clock`.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"

export interface Interrupts {
  readonly first: Effect.Effect<void>
  readonly second: Effect.Effect<void>
  /** Completes once, after the first, a signal would count as the second. */
  readonly armed: Effect.Effect<void>
  /** Signals received so far (repeats of the first within `sameWithin` included). */
  readonly count: Effect.Effect<number>
}

export const DEFAULT_SAME_WITHIN = Duration.millis(500)

/** Installs a listener for the signals, answering how to remove it. */
export type Listen = (listener: () => void) => () => void

const processSignals: Listen = (listener) => {
  process.on("SIGINT", listener)
  process.on("SIGTERM", listener)
  return () => {
    process.off("SIGINT", listener)
    process.off("SIGTERM", listener)
  }
}

export const make = (
  options: { readonly sameWithin?: Duration.DurationInput | undefined; readonly listen?: Listen | undefined } = {}
): Effect.Effect<Interrupts, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const sameWithin = Duration.toMillis(Duration.decode(options.sameWithin ?? DEFAULT_SAME_WITHIN))
    const first = yield* Deferred.make<void>()
    const second = yield* Deferred.make<void>()
    let received = 0
    let firstAt: number | undefined
    const onSignal = () => {
      received++
      const now = clock.unsafeCurrentTimeMillis()
      if (firstAt === undefined) {
        firstAt = now
        Deferred.unsafeDone(first, Exit.void)
      } else if (now - firstAt > sameWithin) {
        Deferred.unsafeDone(second, Exit.void)
      }
    }
    const listen = options.listen ?? processSignals
    yield* Effect.acquireRelease(
      Effect.sync(() => listen(onSignal)),
      (remove) => Effect.sync(remove)
    )
    return {
      first: Deferred.await(first),
      second: Deferred.await(second),
      armed: Effect.zipRight(Deferred.await(first), Effect.sleep(Duration.millis(sameWithin + 1))),
      count: Effect.sync(() => received)
    }
  })
