/**
 * One provider as the Router holds it: what it was registered with, and the
 * small mutable record every part of the Router shares about it (its state,
 * in-flight count, strategy state, latency, outlier state). The same record
 * lives through every generation of the registry, so a request that chose it
 * under one generation is counted on it whatever happens after.
 */
import type * as Executor from "../Executor.js"
import type { QuotaDomain } from "./routerDomain.js"

export type ProviderStatus = "active" | "draining" | "removed"

export class ProviderEntry {
  status: ProviderStatus = "active"
  /** Calls dispatched to it and not yet ended; changed only by `Registry.dispatch`'s scope. */
  inFlight = 0
  /** Smooth weighted round robin's running weight. */
  currentWeight = 0
  /** Latency of successful calls, exponentially weighted (ms); undefined until the first. */
  ewmaMillis: number | undefined = undefined
  // ---- outlier detection ------------------------------------------------------
  consecutiveFailures = 0
  /** The last outcomes, oldest first overwritten: true is a failure. */
  readonly outcomes: Array<boolean> = []
  outcomeIndex = 0
  /** Ejections so far (decays while it stays healthy). */
  ejections = 0
  ejectedUntil = 0
  ejectionReason: "ConsecutiveFailures" | "FailureRate" | undefined = undefined
  /** When it last came back from an ejection (ms), for the ejection count's decay. */
  returnedAt = 0
  /** Completed once it is draining and nothing is in flight. */
  drained: (() => void) | undefined = undefined
  /** Its domains' names, as each call's `Route` shows them (one array for every call). */
  readonly domainNames: ReadonlyArray<string>

  constructor(
    readonly name: string,
    readonly executor: Executor.ExecutorShape,
    readonly domains: ReadonlyArray<QuotaDomain>,
    /** The key its Executor is called with (its lane, limits and breaker key). */
    readonly key: string,
    readonly weight: number,
    readonly tier: number,
    readonly contextWindow: number | undefined
  ) {
    this.domainNames = domains.map((domain) => domain.name)
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now
  }

  /** The domain names, as snapshots, events and metrics show them. */
  get domainLabel(): string {
    return this.domainNames.join(",")
  }
}
