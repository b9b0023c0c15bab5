/**
 * Ctrl-C in two steps, as two effects: `first` completes on the first
 * SIGINT (or SIGTERM), `second` on the next. The listeners live as long as
 * the scope. While they are installed Node does not end the process on a
 * signal; what happens is the program's to decide.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"

export interface Interrupts {
  readonly first: Effect.Effect<void>
  readonly second: Effect.Effect<void>
  /** Signals received so far. */
  readonly count: Effect.Effect<number>
}

export const make: Effect.Effect<Interrupts, never, Scope.Scope> = Effect.gen(function* () {
  const first = yield* Deferred.make<void>()
  const second = yield* Deferred.make<void>()
  let received = 0
  const onSignal = () => {
    received++
    Deferred.unsafeDone(received === 1 ? first : second, Exit.void)
  }
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      process.on("SIGINT", onSignal)
      process.on("SIGTERM", onSignal)
    }),
    () =>
      Effect.sync(() => {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
      })
  )
  return { first: Deferred.await(first), second: Deferred.await(second), count: Effect.sync(() => received) }
})
