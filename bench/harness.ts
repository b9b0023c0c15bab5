/**
 * What every benchmark part shares: the trivial task (as an Effect and as a
 * promise-returning function, both bumping one counter so a run can be checked
 * for completeness), the gate that keeps the running slots busy while the heap
 * of a full queue is measured, forced GC and heap readings, waiting for a
 * condition, and median/best over repetitions.
 */

import { setImmediate as nextTurn } from "node:timers/promises"
import * as Effect from "effect/Effect"

// ---- the trivial task -------------------------------------------------------

/** How many trivial tasks have run, across the whole process. */
export const counter = { value: 0 }

/** The trivial task as an Effect (one shared value; every submit runs it anew). */
export const effectTask: Effect.Effect<void> = Effect.sync(() => {
  counter.value++
})

/** The trivial task as a promise-returning function, for the promise libraries. */
export const thunkTask = async (): Promise<void> => {
  counter.value++
}

/**
 * The input of one run, allocated before any measurement starts so that the
 * input array itself is never counted: `blockers` gate tasks first, then trivial
 * tasks, once as Effects and once as functions.
 */
export interface Workload {
  readonly effects: ReadonlyArray<Effect.Effect<void>>
  readonly thunks: ReadonlyArray<() => Promise<void>>
  /** How many of the first tasks block on the gate (0 for a throughput run). */
  readonly blockers: number
  /** How many trivial tasks follow them. */
  readonly tasks: number
}

export const workload = (tasks: number, gate?: Gate, blockers = 0): Workload => {
  const effects: Array<Effect.Effect<void>> = new Array(blockers + tasks)
  const thunks: Array<() => Promise<void>> = new Array(blockers + tasks)
  for (let i = 0; i < blockers; i++) {
    effects[i] = gate!.effect
    thunks[i] = gate!.thunk
  }
  effects.fill(effectTask, blockers)
  thunks.fill(thunkTask, blockers)
  return { effects, thunks, blockers, tasks }
}

// ---- the gate ---------------------------------------------------------------

/** Tasks that count themselves as started and then wait until `open()`. */
export class Gate {
  started = 0
  readonly promise: Promise<void>
  private release: () => void = () => {}

  constructor() {
    this.promise = new Promise<void>((resolve) => {
      this.release = resolve
    })
  }

  readonly thunk = (): Promise<void> => {
    this.started++
    return this.promise
  }

  readonly effect: Effect.Effect<void> = Effect.suspend(() => {
    this.started++
    return Effect.promise(() => this.promise)
  })

  open(): void {
    this.release()
  }
}

// ---- heap -------------------------------------------------------------------

export const hasGc = (): boolean => typeof globalThis.gc === "function"

/** A full collection (twice, so that finalization-dependent garbage goes too). */
export const collect = (): void => {
  const gc = globalThis.gc
  if (gc === undefined) return
  gc()
  gc()
}

export const heapUsed = (): number => process.memoryUsage().heapUsed

// ---- waiting ----------------------------------------------------------------

/** Lets the event loop turn (timers, I/O, immediates): Effect fibers and promise chains progress. */
export const turn = (): Promise<void> => nextTurn()

/** Turns the event loop until `condition` holds; throws after `timeoutMs`. */
export const waitUntil = async (what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> => {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await turn()
  }
}

// ---- statistics -------------------------------------------------------------

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export const best = (values: ReadonlyArray<number>): number => Math.max(...values)

export const elapsedMs = async (run: () => Promise<void>): Promise<number> => {
  const start = performance.now()
  await run()
  return performance.now() - start
}
