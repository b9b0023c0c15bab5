/**
 * One timer for many attempts' timeouts: it interrupts each watched fiber
 * once its time is up, with no fiber and no timer per attempt. The Executor
 * watches the fibers its requests run on; the HTTP client's plain path (no
 * executor) watches the fibers its attempts run on. A timeout no timer can
 * hold, or a clock that went back, is not watched (`watch` answers
 * undefined): the caller then takes `Effect.timeoutFail`.
 *
 * Effect gave us `Effect.timeoutFail` (a race of the effect against a sleep:
 * a fiber and a timer per call), `Clock`, `Fiber` and interruption; the
 * shared watcher is in `internal/attemptTimer.ts`.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/attemptTimer.js"

/**
 * @since 0.1.0
 * @category models
 */
export type AttemptTimer = internal.AttemptTimer

/**
 * @since 0.1.0
 * @category models
 */
export type Watch = internal.Watch

/**
 * A timer on the Clock in context, its fiber living as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<AttemptTimer, never, Scope.Scope> = internal.make
