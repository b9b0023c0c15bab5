/**
 * The CircuitBreakerStore in memory: a Map from breaker and key to that key's
 * shared state, every operation synchronous (so atomic with respect to other
 * fibers), every change published on a sliding `PubSub`. HALF_OPEN is not
 * stored: it is an OPEN whose deadline has passed, read at each call. A key
 * that is CLOSED holds nothing and is dropped; generations come from one
 * counter for the whole store, so a dropped and re-created key still only
 * moves forward.
 *
 * `redis/src/internal/breakerScript.ts` is this file in Lua: change one, change the other.
 */
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import type * as CircuitBreakerStore from "../CircuitBreakerStore.js"
import { TypeId } from "../CircuitBreakerStore.js"
import type { Trip } from "./circuitBreakerError.js"

interface Entry {
  state: "OPEN" | "ISOLATED"
  generation: number
  openUntil: number
  openedFor: number
  successes: number
  /** Probe holders and when their lease ends. */
  readonly holders: Map<string, number>
  trip: Trip | null
}

const CLOSED: CircuitBreakerStore.SharedState = {
  state: "CLOSED",
  generation: 0,
  openRemaining: 0,
  openedFor: 0,
  probes: 0,
  successes: 0,
  trip: null
}

export const make: Effect.Effect<CircuitBreakerStore.CircuitBreakerStoreShape> = Effect.map(
  PubSub.sliding<CircuitBreakerStore.Notice>(4096),
  (pubsub) => {
    const entries = new Map<string, Entry>()
    let generations = 0
    const id = (target: CircuitBreakerStore.Target) => `${target.breaker}\u0000${target.key}`

    /** The entry as of `now`: expired leases dropped. */
    const load = (target: CircuitBreakerStore.Target): Entry | undefined => {
      const entry = entries.get(id(target))
      if (entry !== undefined) {
        for (const [holder, until] of entry.holders) if (until <= target.now) entry.holders.delete(holder)
      }
      return entry
    }

    /** The key as of `now`; a key held nothing for is CLOSED as of the latest generation (so older notices lose to it). */
    const view = (entry: Entry | undefined, now: number): CircuitBreakerStore.SharedState => {
      if (entry === undefined) return { ...CLOSED, generation: generations }
      const halfOpen = entry.state === "OPEN" && now >= entry.openUntil
      return {
        state: halfOpen ? "HALF_OPEN" : entry.state,
        generation: entry.generation,
        openRemaining: entry.state === "OPEN" && !halfOpen ? entry.openUntil - now : 0,
        openedFor: entry.openedFor,
        probes: halfOpen ? entry.holders.size : 0,
        successes: halfOpen ? entry.successes : 0,
        trip: entry.state === "OPEN" ? entry.trip : null
      }
    }

    const publish = (target: CircuitBreakerStore.Target, shared: CircuitBreakerStore.SharedState) => {
      pubsub.unsafeOffer({ _tag: "Change", breaker: target.breaker, key: target.key, shared })
      return shared
    }

    /** A new generation of the key: its state, or CLOSED (dropped). */
    const change = (
      target: CircuitBreakerStore.Target,
      next: Omit<Entry, "generation" | "holders"> | undefined
    ): CircuitBreakerStore.SharedState => {
      const generation = ++generations
      if (next === undefined) {
        entries.delete(id(target))
        return publish(target, view(undefined, target.now))
      }
      const entry: Entry = { ...next, generation, holders: new Map() }
      entries.set(id(target), entry)
      return publish(target, view(entry, target.now))
    }

    const open = (request: CircuitBreakerStore.OpenRequest): CircuitBreakerStore.SharedState => {
      const entry = load(request)
      const current = view(entry, request.now)
      if (current.state === "ISOLATED") return current
      if (request.generation !== null && request.generation !== current.generation) return current
      const until = request.now + request.openFor
      // Deadlines only move later.
      if (entry !== undefined && current.state === "OPEN" && entry.openUntil >= until) return current
      return change(request, {
        state: "OPEN",
        openUntil: until,
        openedFor: request.openFor,
        successes: 0,
        trip: request.trip
      })
    }

    const acquireProbe = (request: CircuitBreakerStore.ProbeRequest): CircuitBreakerStore.ProbeAnswer => {
      const entry = load(request)
      const current = view(entry, request.now)
      if (current.state !== "HALF_OPEN") return { granted: false, shared: current }
      if (!entry!.holders.has(request.holder) && entry!.holders.size >= request.probes) {
        return { granted: false, shared: current }
      }
      entry!.holders.set(request.holder, request.now + request.lease)
      return { granted: true, shared: view(entry, request.now) }
    }

    const settleProbe = (request: CircuitBreakerStore.SettleRequest): CircuitBreakerStore.SharedState => {
      const entry = load(request)
      const current = view(entry, request.now)
      if (current.state !== "HALF_OPEN" || current.generation !== request.generation) return current
      if (!entry!.holders.delete(request.holder)) return current
      if (request.outcome === "released") return view(entry, request.now)
      entry!.successes++
      if (entry!.successes >= request.probes) return change(request, undefined)
      return view(entry, request.now)
    }

    const isolate = (target: CircuitBreakerStore.Target) => {
      const current = view(load(target), target.now)
      if (current.state === "ISOLATED") return current
      return change(target, { state: "ISOLATED", openUntil: 0, openedFor: current.openedFor, successes: 0, trip: null })
    }

    const reset = (target: CircuitBreakerStore.Target) => {
      const current = view(load(target), target.now)
      return current.state === "CLOSED" ? current : change(target, undefined)
    }

    return {
      [TypeId]: TypeId,
      get: (target) => Effect.sync(() => view(load(target), target.now)),
      open: (request) => Effect.sync(() => open(request)),
      acquireProbe: (request) => Effect.sync(() => acquireProbe(request)),
      settleProbe: (request) => Effect.sync(() => settleProbe(request)),
      isolate: (target) => Effect.sync(() => isolate(target)),
      reset: (target) => Effect.sync(() => reset(target)),
      notices: PubSub.subscribe(pubsub)
    } satisfies CircuitBreakerStore.CircuitBreakerStoreShape
  }
)
