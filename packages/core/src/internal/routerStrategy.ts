/**
 * How the Router chooses among candidates that are equally acceptable (same
 * tier, not ejected, quota ready): one small swappable piece per strategy,
 * each `pick(candidates)`, kept like Effect `Pool`'s `Strategy` object. Each
 * is O(1) per pick except smooth weighted round robin: O(distinct weights +
 * log n) on the list the usual call picks from (an exact schedule of nginx's
 * algorithm, `routerWeighted.ts`), one pass on a list narrowed for one call.
 *
 * - `roundRobin`: each in turn.
 * - `weightedRoundRobin`: smooth weighted round robin (nginx): weights 5, 1, 1
 *   give a a b a c a a, never a burst of one provider.
 * - `leastOutstanding`: power of two choices (two at random, the one with
 *   fewer calls in flight), on the exact in-flight counts the registry keeps.
 * - `lowestLatency`: power of two choices on the latency EWMA of successful
 *   calls (per output token when the call says how many); a provider with no
 *   sample yet is tried first.
 * - `headroom`: power of two choices on the quota left: each of the two
 *   drawn providers' share of capacity left in its quota domains (its
 *   emptiest limit of its emptiest domain, read from the domains' limiters
 *   as the pick is made); the one with more wins, ties to the one with fewer
 *   calls in flight. A provider in no domain counts as full. Two reads per
 *   pick, whatever the number of providers, and fresh ones: no cache by
 *   generation or time, so a charge made since the last pick is seen by the
 *   next (the two reads are most of what headroom costs beyond the others).
 *
 * A pick is made when the selection is (inside its Effect): the provider
 * itself, or for `headroom`, which reads the limiters, an Effect of it, so
 * the strategies that read nothing add no step to a call. Randomness comes
 * from a seeded generator drawn from Effect's `Random` when the Router is
 * made, so a test that seeds `Random` sees the same picks. What Effect gave: `Random`, and `Pool`'s shape of a
 * policy as a small object; the strategies themselves are this module's.
 */
import * as Effect from "effect/Effect"
import { ProviderEntry } from "./routerProvider.js"
import { WeightedSchedule, weightedPass } from "./routerWeighted.js"

export type StrategyName = "roundRobin" | "weightedRoundRobin" | "leastOutstanding" | "lowestLatency" | "headroom"

export const strategyNames: ReadonlyArray<StrategyName> = [
  "roundRobin",
  "weightedRoundRobin",
  "leastOutstanding",
  "lowestLatency",
  "headroom"
]

export interface Strategy {
  readonly name: StrategyName
  /**
   * One of `candidates` (never empty), chosen now: the provider, or an Effect
   * of it when the strategy reads the limiters first (`headroom`).
   */
  readonly pick: (candidates: ReadonlyArray<ProviderEntry>) => Pick
}

/** A strategy's choice: made, or to be made by reading the limiters. */
export type Pick = ProviderEntry | Effect.Effect<ProviderEntry>

/** `f` of the picked provider: at once when the pick is made, after the reads otherwise. */
export const andThen = <A, E>(pick: Pick, f: (provider: ProviderEntry) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
  pick instanceof ProviderEntry ? f(pick) : Effect.flatMap(pick, f)

/** The pick as an Effect. */
export const toEffect = (pick: Pick): Effect.Effect<ProviderEntry> =>
  pick instanceof ProviderEntry ? Effect.succeed(pick) : pick

/** What a strategy may read besides the provider records. */
export interface Reads {
  /** The provider's share (0 to 1) of quota left now. */
  readonly headroom: (provider: ProviderEntry) => Effect.Effect<number>
}

/** A uniform integer in [0, bound). */
export type Draw = (bound: number) => number

/** mulberry32: a small seeded generator (the picks need speed, not cryptography). */
export const makeDraw = (seed: number): Draw => {
  let state = seed >>> 0
  return (bound) => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * bound)
  }
}

const roundRobin = (): Strategy => {
  let turn = 0
  return {
    name: "roundRobin",
    pick: (candidates) => candidates[turn++ % candidates.length]!
  }
}

/**
 * Smooth weighted round robin: a schedule (`routerWeighted.ts`) for a list
 * picked from twice in a row (a generation's tier, the usual call's list),
 * nginx's pass for a list made for one selection (narrowed by a failure or an
 * ejection), each leaving the running weights as nginx's pass would.
 */
const weightedRoundRobin = (): Strategy => {
  let schedule: WeightedSchedule | undefined
  let previous: ReadonlyArray<ProviderEntry> | undefined
  return {
    name: "weightedRoundRobin",
    pick: (candidates) => {
      if (schedule !== undefined && schedule.candidates === candidates) return schedule.pick()
      schedule?.settle()
      schedule = undefined
      const again = candidates === previous
      previous = candidates
      if (!again) return weightedPass(candidates)
      schedule = new WeightedSchedule(candidates)
      return schedule.pick()
    }
  }
}

/** Two distinct candidates at random, in the order drawn (one alone: itself twice). */
const drawTwo = (draw: Draw, candidates: ReadonlyArray<ProviderEntry>): readonly [ProviderEntry, ProviderEntry] => {
  if (candidates.length === 1) return [candidates[0]!, candidates[0]!]
  const first = draw(candidates.length)
  let second = draw(candidates.length - 1)
  if (second >= first) second++
  return [candidates[first]!, candidates[second]!]
}

/** Two distinct candidates at random; the better by `score` (lower wins; ties go to the first drawn). */
const twoChoices =
  (draw: Draw, score: (candidate: ProviderEntry) => number) =>
  (candidates: ReadonlyArray<ProviderEntry>): ProviderEntry => {
    const [a, b] = drawTwo(draw, candidates)
    return score(b) < score(a) ? b : a
  }

const leastOutstanding = (draw: Draw): Strategy => ({
  name: "leastOutstanding",
  pick: twoChoices(draw, (candidate) => candidate.inFlight)
})

const lowestLatency = (draw: Draw): Strategy => ({
  name: "lowestLatency",
  pick: twoChoices(draw, (candidate) => candidate.ewmaMillis ?? Number.NEGATIVE_INFINITY)
})

const headroom = (draw: Draw, reads: Reads): Strategy => ({
  name: "headroom",
  pick: (candidates) => {
    const [a, b] = drawTwo(draw, candidates)
    if (a === b) return a
    // One read after the other (`Effect.zipWith` would go through `Effect.all`, several times the steps).
    return Effect.flatMap(reads.headroom(a), (left) =>
      Effect.map(reads.headroom(b), (right) => (right > left || (right === left && b.inFlight < a.inFlight) ? b : a))
    )
  }
})

export const make = (name: StrategyName, draw: Draw, reads: Reads): Strategy => {
  switch (name) {
    case "roundRobin":
      return roundRobin()
    case "weightedRoundRobin":
      return weightedRoundRobin()
    case "leastOutstanding":
      return leastOutstanding(draw)
    case "lowestLatency":
      return lowestLatency(draw)
    case "headroom":
      return headroom(draw, reads)
  }
}
