/**
 * The Router's providers at run time, as a generation-numbered snapshot: each
 * change (add, drain, remove) publishes a new immutable list of the active
 * providers under the next generation number, and selection reads one
 * generation from start to end. The provider records themselves outlive
 * generations, so work dispatched under an old one is still counted.
 *
 * In-flight counts are exact by construction: the only way to send a call to
 * a provider is `dispatch`, whose count is a scope (what `Effect.acquireUseRelease`
 * gives, from `uninterruptibleMask` and `matchCauseEffect`): the increment and
 * the check that the provider still takes work are one uninterruptible step,
 * and the decrement runs whatever the call's end (success, failure,
 * interruption). A provider drained or removed between a
 * selection and its dispatch takes nothing, and the caller selects again:
 * nothing is lost, nothing is sent twice.
 *
 * Effect gave us `uninterruptibleMask`, `matchCauseEffect` and `Deferred`;
 * this adds the snapshot and the drain.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { RouterError } from "./routerError.js"
import type { ProviderEntry } from "./routerProvider.js"

export interface Generation {
  readonly number: number
  /** The providers that take new work, in registration order. */
  readonly active: ReadonlyArray<ProviderEntry>
  /** The same, grouped by tier, lowest tier first (built once per generation, so a pick need not). */
  readonly tiers: ReadonlyArray<ReadonlyArray<ProviderEntry>>
  /** The smallest context window declared among them (a provider that declares none takes any). */
  readonly smallestWindow: number
}

export type Change = "Added" | "Draining" | "Drained" | "Removed" | "Replaced"

/** What dispatch answers when the provider stopped taking work after it was chosen. */
export const NotTaken: unique symbol = Symbol("@sluice/core/Router/NotTaken")
export type NotTaken = typeof NotTaken

export const make = (
  router: string,
  onChange: (provider: ProviderEntry, change: Change, generation: number) => void,
  /** Told each time a provider's in-flight count changed. */
  onCount: (provider: ProviderEntry) => void
) => {
  const byName = new Map<string, ProviderEntry>()
  /** Providers replaced and still draining (their names belong to their replacements). */
  const retiring = new Set<ProviderEntry>()
  let current: Generation = { number: 0, active: [], tiers: [], smallestWindow: Number.POSITIVE_INFINITY }
  let inFlightTotal = 0

  const publish = () => {
    const active: Array<ProviderEntry> = []
    const byTier = new Map<number, Array<ProviderEntry>>()
    let smallestWindow = Number.POSITIVE_INFINITY
    for (const provider of byName.values()) {
      if (provider.status !== "active") continue
      active.push(provider)
      const tier = byTier.get(provider.tier)
      if (tier === undefined) byTier.set(provider.tier, [provider])
      else tier.push(provider)
      if (provider.contextWindow !== undefined) smallestWindow = Math.min(smallestWindow, provider.contextWindow)
    }
    const tiers = [...byTier.entries()].sort(([a], [b]) => a - b).map(([, providers]) => providers)
    current = { number: current.number + 1, active, tiers, smallestWindow }
  }

  const unknown = (provider: string) => new RouterError({ router, reason: "UnknownProvider", provider })

  const add = (provider: ProviderEntry): Effect.Effect<number, RouterError> =>
    Effect.suspend(() => {
      if (byName.has(provider.name)) {
        return Effect.fail(new RouterError({ router, reason: "DuplicateProvider", provider: provider.name }))
      }
      byName.set(provider.name, provider)
      publish()
      onChange(provider, "Added", current.number)
      return Effect.succeed(current.number)
    })

  /** Stops new work now; completes once nothing is in flight on it. */
  const drainEntry = (provider: ProviderEntry): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (provider.status === "active") {
        provider.status = "draining"
        publish()
        onChange(provider, "Draining", current.number)
      }
      if (provider.inFlight === 0) return Effect.void
      const done = Deferred.unsafeMake<void>(FiberId.none)
      const previous = provider.drained
      provider.drained = () => {
        previous?.()
        Deferred.unsafeDone(done, Exit.void)
      }
      return Deferred.await(done)
    })

  const drain = (name: string): Effect.Effect<void, RouterError> =>
    Effect.suspend(() => {
      const provider = byName.get(name)
      if (provider === undefined) return Effect.fail(unknown(name))
      return Effect.tap(drainEntry(provider), () =>
        Effect.sync(() => {
          if (provider.status === "draining") onChange(provider, "Drained", current.number)
        })
      )
    })

  const remove = (name: string): Effect.Effect<void, RouterError> =>
    Effect.suspend(() => {
      const provider = byName.get(name)
      if (provider === undefined) return Effect.fail(unknown(name))
      return Effect.tap(drainEntry(provider), () =>
        Effect.sync(() => {
          if (byName.get(name) !== provider) return
          provider.status = "removed"
          byName.delete(name)
          publish()
          onChange(provider, "Removed", current.number)
        })
      )
    })

  /**
   * Puts `provider` in the place of the provider of its name, in one
   * generation: new work goes to the new one at once; the old one drains
   * (what it has in flight finishes there) and is forgotten. Completes when
   * the old one has drained.
   */
  const replace = (provider: ProviderEntry): Effect.Effect<number, RouterError> =>
    Effect.suspend(() => {
      const old = byName.get(provider.name)
      if (old === undefined) return Effect.fail(unknown(provider.name))
      old.status = "draining"
      retiring.add(old)
      byName.set(provider.name, provider)
      publish()
      const generation = current.number
      onChange(old, "Replaced", generation)
      return Effect.as(
        Effect.tap(drainEntry(old), () =>
          Effect.sync(() => {
            old.status = "removed"
            retiring.delete(old)
          })
        ),
        generation
      )
    })

  /** One call fewer in flight on the provider (the end of `dispatch`'s scope). */
  const release = (provider: ProviderEntry) => {
    provider.inFlight--
    inFlightTotal--
    onCount(provider)
    if (provider.inFlight === 0 && provider.drained !== undefined) {
      const drained = provider.drained
      provider.drained = undefined
      drained()
    }
  }

  /**
   * Runs the Effect `use` makes counted on the provider, or answers `NotTaken` (without making it) if the
   * provider no longer takes work. The scope of
   * `acquireUseRelease`, written with the two primitives it is made of (`uninterruptibleMask`, and
   * `matchCauseEffect` around the restored `use`) because the acquire and release are synchronous:
   * the same guarantee at about half the cost, on every call the Router makes.
   */
  const dispatch = <A, E, R>(
    provider: ProviderEntry,
    use: () => Effect.Effect<A, E, R>
  ): Effect.Effect<A | NotTaken, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<A | NotTaken, E, R> => {
        if (provider.status !== "active") return Effect.succeed(NotTaken)
        // Made before the count moves: if making it throws, nothing was counted.
        const using = use()
        provider.inFlight++
        inFlightTotal++
        onCount(provider)
        return Effect.matchCauseEffect(restore(using), {
          onFailure: (cause) => {
            release(provider)
            return Effect.failCause(cause)
          },
          onSuccess: (value) => {
            release(provider)
            return Effect.succeed(value)
          }
        })
      })
    )

  return {
    current: () => current,
    get: (name: string) => byName.get(name),
    /** Every provider held: those by name, then those replaced and still draining. */
    all: () => [...byName.values(), ...retiring],
    inFlightTotal: () => inFlightTotal,
    add,
    drain,
    remove,
    replace,
    dispatch
  }
}

export type Registry = ReturnType<typeof make>
