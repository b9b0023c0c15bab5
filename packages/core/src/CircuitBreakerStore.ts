/**
 * Where a circuit breaker's *shared* state lives, for breakers of one name in
 * several processes that should agree when a dependency is down: opt-in
 * (a breaker uses a store only when its options name one), off by default.
 * Two stores: memory (here, the contract's reference, and a way to share one
 * state between breakers of one process) and Redis (`@sluice/redis`'s
 * `RedisBreakerStore`, one Lua script per operation, changes published).
 *
 * **What is shared and what is not.** Each process judges the dependency from
 * its own calls: the failure window (consecutive, count, time, slow calls)
 * stays local. The *transitions* go through the store: opening with a
 * deadline, the half-open probe slots, closing, isolation. So one process that
 * trips opens the breaker for every process, each process learns of it from
 * the store's notices (milliseconds, no polling per call) and mirrors it
 * locally, and across all of them half-open lets `halfOpenProbes` probes
 * through, not that many per process.
 *
 * **The contract a store keeps** (`CircuitBreakerStoreConformance` in
 * `@sluice/testing` checks it against any store):
 *
 * - *Plain values*: every argument and answer is JSON (a network store can
 *   keep it); state is per breaker name and key.
 * - *One call, one atomic step.* Each operation reads and changes one key's
 *   state in one step no other operation on it interleaves with.
 * - *Time*: each call passes the caller's `now`; a store may compute on its
 *   own clock (Redis `TIME`) and answers the open deadline as a duration
 *   (`openRemaining`), so a caller only ever sees its own clock. OPEN whose
 *   deadline has passed *is* HALF_OPEN (nothing needs to run at the deadline).
 * - *Deadlines only move later*: `open` on an OPEN key keeps the later of the
 *   two deadlines; an earlier one never shortens it.
 * - *Generations*: every change raises the key's `generation` (never back,
 *   even across the key's expiry, as far as the store can tell); a probe's
 *   verdict (`open` with a `generation`, `settleProbe`) counts only in the
 *   half-open it was admitted in.
 * - *Probe slots are leases*: `acquireProbe` grants at most `probes` holders
 *   at a time during one half-open; a slot is given back by `settleProbe`, or
 *   by itself when its lease ends (its holder died): a dead process never
 *   holds the breaker half-open.
 * - *ISOLATED holds*: `open` does nothing to an isolated key; only `reset`
 *   ends it.
 * - *Notices*: every change is published (`Change`), to every subscriber of
 *   every process; `Resync` says "you may have missed changes, read your keys
 *   again" (after a lost subscription).
 *
 * Effect gave us `Context.Tag`, `PubSub` (the notices), `Schema` (the error)
 * and `Scope`; this module adds the contract and the memory store.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Trip } from "./internal/circuitBreakerError.js"
import * as internal from "./internal/circuitBreakerStoreMemory.js"

/**
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: unique symbol = Symbol.for("@sluice/core/CircuitBreakerStore")

/**
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * One key's shared state as a store answers it (plain values).
 *
 * @since 0.1.0
 * @category models
 */
export interface SharedState {
  /** HALF_OPEN is an OPEN whose deadline has passed. */
  readonly state: "CLOSED" | "OPEN" | "HALF_OPEN" | "ISOLATED"
  /** Raised by every change; 0 for a key the store holds nothing for. */
  readonly generation: number
  /** While OPEN: milliseconds until the deadline (from the call's `now`, or the notice's publication). 0 otherwise. */
  readonly openRemaining: number
  /** The open duration last used, ms (0 if never opened). */
  readonly openedFor: number
  /** While HALF_OPEN: probe slots held (unexpired leases). */
  readonly probes: number
  /** While HALF_OPEN: probes that succeeded. */
  readonly successes: number
  /** While OPEN or HALF_OPEN: what opened it (its `at` is on the clock of the process that opened it). */
  readonly trip: Trip | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Target {
  /** The breaker's name (`CircuitBreaker.Options.name`). */
  readonly breaker: string
  readonly key: string
  /** The caller's Clock, ms. */
  readonly now: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface OpenRequest extends Target {
  /** How long to open for, ms; the deadline is `now + openFor`, unless the key is already open for longer. */
  readonly openFor: number
  readonly trip: Trip
  /** A probe's verdict: only if the key is still in this generation (its half-open). `null`: a CLOSED window tripped. */
  readonly generation: number | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ProbeRequest extends Target {
  /** Names the slot's holder (unique per probe). */
  readonly holder: string
  /** Slots a half-open grants at most (`halfOpenProbes`). */
  readonly probes: number
  /** How long the slot lasts if it is not settled, ms. */
  readonly lease: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ProbeAnswer {
  readonly granted: boolean
  readonly shared: SharedState
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SettleRequest extends Target {
  readonly holder: string
  /** The generation the slot was granted in. */
  readonly generation: number
  /** `"success"` counts toward closing (at `probes` successes); `"released"` only gives the slot back. */
  readonly outcome: "success" | "released"
  readonly probes: number
}

/**
 * A notice: a key changed (`Change`), or the subscription was lost and
 * changes may have been missed (`Resync`).
 *
 * @since 0.1.0
 * @category models
 */
export type Notice =
  | { readonly _tag: "Change"; readonly breaker: string; readonly key: string; readonly shared: SharedState }
  | { readonly _tag: "Resync" }

/**
 * A store call that did not happen: the store is unreachable
 * (`"Unavailable"`), did not answer in time (`"Deadline"`), or refused the
 * call (`"Refused"`: a bug). A breaker falls back to its local state.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitBreakerStoreError extends Schema.TaggedError<CircuitBreakerStoreError>(
  "@sluice/core/CircuitBreakerStore/CircuitBreakerStoreError"
)("CircuitBreakerStoreError", {
  reason: Schema.Literal("Unavailable", "Deadline", "Refused"),
  operation: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `The circuit-breaker store could not ${this.operation} (${this.reason}): ${this.detail}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreakerStoreShape {
  readonly [TypeId]: TypeId
  readonly get: (target: Target) => Effect.Effect<SharedState, CircuitBreakerStoreError>
  readonly open: (request: OpenRequest) => Effect.Effect<SharedState, CircuitBreakerStoreError>
  readonly acquireProbe: (request: ProbeRequest) => Effect.Effect<ProbeAnswer, CircuitBreakerStoreError>
  readonly settleProbe: (request: SettleRequest) => Effect.Effect<SharedState, CircuitBreakerStoreError>
  readonly isolate: (target: Target) => Effect.Effect<SharedState, CircuitBreakerStoreError>
  readonly reset: (target: Target) => Effect.Effect<SharedState, CircuitBreakerStoreError>
  /** Every notice from now on, for the scope's life (subscribed once this returns). */
  readonly notices: Effect.Effect<Queue.Dequeue<Notice>, never, Scope.Scope>
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isCircuitBreakerStore = (u: unknown): u is CircuitBreakerStoreShape => Predicate.hasProperty(u, TypeId)

/**
 * The store in context, for `CircuitBreaker.layerShared`.
 *
 * @since 0.1.0
 * @category tags
 */
export class CircuitBreakerStore extends Context.Tag("@sluice/core/CircuitBreakerStore")<
  CircuitBreakerStore,
  CircuitBreakerStoreShape
>() {}

/**
 * A store in this process: the contract's reference, and one state for
 * several breakers of one name in one process. Synchronous, so each call is
 * atomic; a key is dropped as soon as it is CLOSED again (generations come
 * from one counter, so they never go back).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<CircuitBreakerStoreShape> = internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<CircuitBreakerStore> = Layer.effect(CircuitBreakerStore, makeMemory)
