/**
 * How the Router chooses the provider for a call's next hop, in order:
 *
 * 1. hard constraints: not tried by this call yet, in the content-filter
 *    chain when one applies, a declared context window the call fits;
 * 2. health: ejected providers are left out, unless fewer than the panic
 *    threshold are healthy (then all take traffic) or none is left;
 * 3. soft preferences from the last failure (another quota domain after a
 *    429, a higher tier after a 5xx), kept only if some provider meets them;
 * 4. quota, by tier, lowest first: the strategy's pick if its domains admit
 *    the cost now (the usual case: one look), else the tier's providers that
 *    admit now, picked among by the strategy; when none admits in any tier,
 *    the one admitted first, if before the deadline ("admit now" and "first"
 *    are the domain limiters' `admissibleIn`: behind the callers already in
 *    line, charging nothing).
 *
 * With affinity on and a call's `affinityKey`, its first hop goes to the
 * key's home on the ring (`routerAffinity.ts`: consistent hashing with
 * bounded loads) if the home is not ejected, fits the call's context and its
 * domains admit the cost now; otherwise, and on every fallback hop, the
 * steps above choose as if the call had no key.
 *
 * Steps 1 to 3 cost nothing when nothing narrows the choice (no ejection, no
 * failure yet, a context every provider fits): the generation's tiers are
 * the candidates as they are, so a pick is O(1) in the number of providers
 * (smooth weighted round robin, O(distinct weights + log n) on its schedule;
 * affinity, one binary search of its ring). Otherwise one pass. The usual
 * selection is one look at one domain: no memo, no generator; a scan keeps
 * what it has asked per domain for the rest of the selection.
 */
import * as Effect from "effect/Effect"
import type * as RateLimiter from "../RateLimiter.js"
import type { Affinity } from "./routerAffinity.js"
import { admissibleIn, type QuotaDomain } from "./routerDomain.js"
import { RouterError } from "./routerError.js"
import type * as Outlier from "./routerOutlier.js"
import type { ProviderEntry } from "./routerProvider.js"
import type * as Registry from "./routerRegistry.js"
import * as Strategy from "./routerStrategy.js"

/** What a call's next hop asks of the provider it goes to. */
export interface Wants {
  /**
   * Providers (by name: a replacement counts as the one it replaced) this call has already been sent to;
   * replaced, never changed, so a call with none shares `noneTried`.
   */
  tried: ReadonlySet<string>
  /** The declared window must be at least this (the call's context). */
  contextAtLeast: number | undefined
  /** The declared window must be above this (after `ContextTooLong`). */
  contextAbove: number | undefined
  /** Only these providers (after `ContentFiltered`). */
  only: ReadonlySet<string> | undefined
  /** Prefer providers of none of these domains (after a 429). */
  avoidDomains: ReadonlySet<QuotaDomain> | undefined
  /** Prefer providers of a tier above this (after `Unavailable`). */
  aboveTier: number | undefined
  /** The call's affinity key, when affinity is on: its first hop goes to the key's home if it can take it now. */
  readonly affinityKey: string | undefined
}

/** The `tried` of a call's first hop. */
export const noneTried: ReadonlySet<string> = new Set()

/** What the Router lends this module. */
export interface Host {
  readonly router: string
  readonly now: () => number
  readonly generation: () => Registry.Generation
  readonly strategy: Strategy.Strategy
  /** Affinity by key, when it is on. */
  readonly affinity: Affinity | undefined
  /** Calls in flight on every provider (for affinity's load bound). */
  readonly inFlightTotal: () => number
  readonly outlier: ReturnType<typeof Outlier.make>
  /** A provider's ejection was found to have ended. */
  readonly returned: (provider: ProviderEntry, at: number) => void
}

export const make = (host: Host) => {
  const { affinity, now, outlier, strategy } = host
  const name = host.router
  /**
   * Active providers ejected, or whose ejection ended and has not been noticed yet: while there are any,
   * selection looks at each provider.
   */
  let ejecting = 0

  /** The largest declared window among providers that take work (for `ContextWindow`'s message). */
  const largestWindow = (active: ReadonlyArray<ProviderEntry>) =>
    active.reduce((largest, provider) => Math.max(largest, provider.contextWindow ?? 0), 0)

  const fitsContext = (provider: ProviderEntry, wants: Wants) => {
    const window = provider.contextWindow
    if (wants.contextAbove !== undefined && (window === undefined || window <= wants.contextAbove)) return false
    if (wants.contextAtLeast !== undefined && window !== undefined && window < wants.contextAtLeast) return false
    return true
  }

  /** Nothing narrows the choice: the generation's tiers are the candidates as they are. */
  const unconstrained = (generation: Registry.Generation, wants: Wants) =>
    ejecting === 0 &&
    wants.tried.size === 0 &&
    wants.only === undefined &&
    wants.contextAbove === undefined &&
    wants.avoidDomains === undefined &&
    wants.aboveTier === undefined &&
    (wants.contextAtLeast === undefined || wants.contextAtLeast <= generation.smallestWindow)

  /**
   * Every provider the call may go to now, before quota, by tier (lowest
   * first); marks providers whose ejection has ended. O(1) when nothing
   * narrows the choice (the usual call), one pass otherwise.
   */
  const acceptable = (
    generation: Registry.Generation,
    wants: Wants,
    at: number
  ): { readonly tiers: ReadonlyArray<ReadonlyArray<ProviderEntry>>; readonly contextShort: boolean } => {
    if (unconstrained(generation, wants)) return { tiers: generation.tiers, contextShort: false }
    const eligible: Array<ProviderEntry> = []
    let ejected = 0
    let contextShort = false
    for (const provider of generation.active) {
      if (provider.isEjected(at)) ejected++
      else if (provider.ejectionReason !== undefined) {
        provider.ejectionReason = undefined
        ejecting--
        host.returned(provider, at)
      }
      if (wants.tried.has(provider.name)) continue
      if (wants.only !== undefined && !wants.only.has(provider.name)) continue
      if (!fitsContext(provider, wants)) {
        contextShort = true
        continue
      }
      eligible.push(provider)
    }
    const panic = outlier.panics(generation.active.length, ejected)
    let candidates: Array<ProviderEntry> = eligible
    if (!panic && ejected > 0) {
      const healthy = eligible.filter((provider) => !provider.isEjected(at))
      if (healthy.length > 0) candidates = healthy
    }
    candidates = prefer(candidates, (provider) =>
      wants.avoidDomains === undefined ? true : provider.domains.every((domain) => !wants.avoidDomains!.has(domain))
    )
    candidates = prefer(candidates, (provider) => wants.aboveTier === undefined || provider.tier > wants.aboveTier)
    return { tiers: byTier(candidates), contextShort }
  }

  /** Candidates grouped by tier, lowest first. */
  const byTier = (candidates: ReadonlyArray<ProviderEntry>): ReadonlyArray<ReadonlyArray<ProviderEntry>> => {
    if (candidates.length === 0) return []
    const tier = candidates[0]!.tier
    if (candidates.every((provider) => provider.tier === tier)) return [candidates]
    const groups = new Map<number, Array<ProviderEntry>>()
    for (const provider of candidates) {
      const group = groups.get(provider.tier)
      if (group === undefined) groups.set(provider.tier, [provider])
      else group.push(provider)
    }
    return [...groups.entries()].sort(([a], [b]) => a - b).map(([, group]) => group)
  }

  /** The candidates that satisfy a preference, or all of them if none does. */
  const prefer = (candidates: Array<ProviderEntry>, predicate: (provider: ProviderEntry) => boolean) => {
    if (candidates.every(predicate)) return candidates
    const preferred = candidates.filter(predicate)
    return preferred.length > 0 ? preferred : candidates
  }

  const zero = Effect.succeed(0)

  /**
   * How long until one domain admits the cost; with `known`, remembered for
   * the rest of this selection (a scan asks about many providers, several of
   * one domain).
   */
  const domainDelay = (
    domain: QuotaDomain,
    cost: RateLimiter.Cost | undefined,
    at: number,
    known: Map<QuotaDomain, number> | undefined
  ): Effect.Effect<number> => {
    if (known === undefined) return admissibleIn(domain, cost, at)
    const memo = known.get(domain)
    if (memo !== undefined) return Effect.succeed(memo)
    return Effect.map(admissibleIn(domain, cost, at), (delay) => {
      known.set(domain, delay)
      return delay
    })
  }

  /** How long until the provider's domains all admit the cost. */
  const delayOf = (
    provider: ProviderEntry,
    cost: RateLimiter.Cost | undefined,
    at: number,
    known: Map<QuotaDomain, number> | undefined
  ): Effect.Effect<number> => {
    if (provider.domains.length === 0) return zero
    if (provider.domains.length === 1) return domainDelay(provider.domains[0]!, cost, at, known)
    return Effect.map(
      Effect.forEach(provider.domains, (domain) => domainDelay(domain, cost, at, known)),
      (delays) => Math.max(...delays)
    )
  }

  /**
   * The provider for the next hop. By tier, lowest first: the strategy's
   * pick if its domains admit now (the usual case: one look); otherwise the
   * tier's providers whose domains admit now, picked among by the strategy.
   * When none admits in any tier, the one admitted first, if before the
   * deadline. With an affinity key on the first hop, its home first, if it
   * can take the call now.
   */
  const select = (
    wants: Wants,
    cost: RateLimiter.Cost | undefined,
    deadlineAt: number | undefined
  ): Effect.Effect<ProviderEntry, RouterError> =>
    Effect.suspend(() => {
      const at = now()
      const generation = host.generation()
      const { contextShort, tiers } = acceptable(generation, wants, at)
      if (tiers.length === 0) {
        return Effect.fail(
          contextShort
            ? new RouterError({
                router: name,
                reason: "ContextWindow",
                contextTokens: wants.contextAbove ?? wants.contextAtLeast,
                largestWindow: largestWindow(generation.active)
              })
            : new RouterError({ router: name, reason: "NoProvider" })
        )
      }
      if (affinity !== undefined && wants.affinityKey !== undefined && wants.tried.size === 0) {
        const home = affinity.home(generation, wants.affinityKey, host.inFlightTotal())
        if (home !== undefined && !home.isEjected(at) && fitsContext(home, wants)) {
          return Effect.flatMap(delayOf(home, cost, at, undefined), (delay) =>
            delay === 0 ? Effect.succeed(home) : chooseByQuota(tiers, cost, at, deadlineAt)
          )
        }
      }
      return chooseByQuota(tiers, cost, at, deadlineAt)
    })

  /** Step 4: the lowest tier's strategy pick if it admits now (one look), else the scan by tier. */
  const chooseByQuota = (
    tiers: ReadonlyArray<ReadonlyArray<ProviderEntry>>,
    cost: RateLimiter.Cost | undefined,
    at: number,
    deadlineAt: number | undefined
  ): Effect.Effect<ProviderEntry, RouterError> =>
    Strategy.andThen(strategy.pick(tiers[0]!), (first) =>
      Effect.flatMap(delayOf(first, cost, at, undefined), (firstDelay) =>
        firstDelay === 0 ? Effect.succeed(first) : scanFrom(tiers, first, firstDelay, cost, at, deadlineAt)
      )
    )

  const scanFrom = (
    tiers: ReadonlyArray<ReadonlyArray<ProviderEntry>>,
    lowestPick: ProviderEntry,
    lowestPickDelay: number,
    cost: RateLimiter.Cost | undefined,
    at: number,
    deadlineAt: number | undefined
  ): Effect.Effect<ProviderEntry, RouterError> =>
    Effect.gen(() => {
      const known = new Map<QuotaDomain, number>()
      // What the first look found, so the scan does not ask its domain again.
      if (lowestPick.domains.length === 1) known.set(lowestPick.domains[0]!, lowestPickDelay)
      return scan(tiers, lowestPick, lowestPickDelay, cost, at, deadlineAt, known)
    })

  /**
   * The lowest tier's pick cannot be admitted now: each tier's providers that
   * admit now, picked among by the strategy (a higher tier's own pick first);
   * when none admits in any tier, the one admitted first, if before the deadline.
   * (A generator function made once, not per selection: see `router.ts`'s `hops`.)
   */
  function* scan(
    tiers: ReadonlyArray<ReadonlyArray<ProviderEntry>>,
    lowestPick: ProviderEntry,
    lowestPickDelay: number,
    cost: RateLimiter.Cost | undefined,
    at: number,
    deadlineAt: number | undefined,
    known: Map<QuotaDomain, number>
  ) {
    let earliest: ProviderEntry | undefined
    let earliestDelay = Number.POSITIVE_INFINITY
    for (let tier = 0; tier < tiers.length; tier++) {
      const group = tiers[tier]!
      const first = tier === 0 ? lowestPick : yield* Strategy.toEffect(strategy.pick(group))
      const firstDelay = tier === 0 ? lowestPickDelay : yield* delayOf(first, cost, at, known)
      if (firstDelay === 0) return first
      const ready: Array<ProviderEntry> = []
      for (const provider of group) {
        const delay = provider === first ? firstDelay : yield* delayOf(provider, cost, at, known)
        if (delay === 0) ready.push(provider)
        else if (delay < earliestDelay) {
          earliestDelay = delay
          earliest = provider
        }
      }
      if (ready.length > 0) return yield* Strategy.toEffect(strategy.pick(ready))
    }
    // Nothing admits now: the earliest admission, in its Executor's lane (a cost none can ever admit goes
    // to the first candidate, whose Executor says why).
    if (earliest === undefined) return tiers[0]![0]!
    if (deadlineAt !== undefined && at + earliestDelay > deadlineAt) {
      return yield* Effect.fail(
        new RouterError({
          router: name,
          reason: "NoAdmission",
          earliestMillis: Math.ceil(earliestDelay),
          deadlineMillis: Math.max(0, deadlineAt - at)
        })
      )
    }
    return earliest
  }

  /** Whether any provider is left for the next hop (health and quota aside). */
  const hasCandidate = (wants: Wants) =>
    host
      .generation()
      .active.some(
        (provider) =>
          !wants.tried.has(provider.name) &&
          (wants.only === undefined || wants.only.has(provider.name)) &&
          fitsContext(provider, wants)
      )

  return {
    select,
    hasCandidate,
    /** A provider was ejected (and was not counted as ejecting already). */
    ejected: () => {
      ejecting++
    },
    /** A provider stopped taking work: its ejection is no longer the selection's concern. */
    leftPool: (provider: ProviderEntry) => {
      if (provider.ejectionReason === undefined) return
      provider.ejectionReason = undefined
      ejecting--
    }
  }
}
