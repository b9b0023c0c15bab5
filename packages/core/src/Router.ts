/**
 * Many providers behind one call: quota domains, admission-aware selection,
 * balancing strategies, outlier ejection, fallback by error reason, and
 * providers added, drained and removed while traffic flows.
 *
 * Each provider is an Executor of its own (its limits, breaker, concurrency,
 * queue); the Router chooses one per call and sends the call through it with
 * the call's `cost`, `settle`, `deadline` and `priority`. The Executor stays
 * admission's one owner: the Router reserves nothing.
 *
 * - **Quota domains.** A domain is one key of one RateLimiter, shared by the
 *   providers that draw on the same organisation's or key's limits (build
 *   the members' Executors with that limiter; the Router calls each with its
 *   domain's key). A 429 on one member cools the whole domain down (the
 *   limiter is penalized for the `Retry-After`; a cooldown only ever moves
 *   later), and the next hop prefers a provider of another domain.
 * - **Admission-aware selection.** Among the acceptable providers (not
 *   tried yet by this call, not ejected, large enough a context window), the
 *   lowest tier whose domains can admit the cost now is chosen from by the
 *   strategy; when no domain can, the call goes to the provider whose
 *   admission comes first, where it waits in its Executor's lane, unless
 *   that is later than the call's deadline (`RouterError` `NoAdmission`, at
 *   once). It never fails because everything is cooling down. "Admit" is
 *   the domain limiter's `admissibleIn`: behind the callers already in its
 *   line, with its blocks, charging nothing.
 * - **Strategies**: `roundRobin`, `weightedRoundRobin` (smooth, nginx's),
 *   `leastOutstanding` (power of two choices on exact in-flight counts),
 *   `lowestLatency` (power of two choices on the EWMA of successful calls),
 *   `headroom` (power of two choices on the share of quota left in the
 *   providers' domains).
 * - **Affinity** (`affinity`, and each call's `affinityKey`: a session, a
 *   prompt's prefix): a key's calls go to one provider, kept by consistent
 *   hashing with bounded loads (a provider takes a key while its load stays
 *   within `loadFactor` times the average, else the next on the ring), so
 *   its prompt cache serves them; when that provider is ejected or its
 *   domains cannot admit now, the strategy chooses. Adding or removing a
 *   provider moves about 1/n of the keys.
 * - **Separate signals.** A 429 feeds the domain only; a 5xx, timeout or
 *   broken connection feeds outlier ejection; the caller's own 4xx feeds only
 *   the fallback choice (`classify`, see {@link Signal}).
 * - **Outlier ejection** in Envoy's model: consecutive failures, or a
 *   failure rate over a minimum volume; ejection for `base × n` (capped, with
 *   jitter); at most `maxEjectionPercent` of the pool at once, exactly,
 *   however small the pool; below `panicThreshold` healthy, route to all.
 * - **Fallback by reason**: rate limited → another domain; unavailable or
 *   refused → another provider, the next tier first; context too long → a
 *   provider with a larger declared `contextWindow` (checked before the hop:
 *   none, and the call fails with the provider's error at once); content
 *   filtered → the providers of `contentFilteredChain`; the caller's own
 *   error → none. Hops are bounded by `maxAttempts` and a router-wide retry
 *   budget (`Retry.makeBudget`).
 * - **Run-time changes** against a generation-numbered snapshot: `add`,
 *   `drain` (no new work; what is in flight finishes), `remove` (drain, then
 *   forget), `replace` (the new one takes new work at once, the old one
 *   drains). Nothing in flight is lost or sent twice.
 * - **Adaptive concurrency** (opt-in per provider, `adaptiveConcurrency`):
 *   AIMD on the provider's Executor's concurrency. Back-pressure (a 429, a
 *   503 or 529, a timeout) cuts the limit by a factor, once per cut however
 *   many attempts it caught; a success while every permit was taken adds
 *   one; between a floor and a ceiling, given or derived from the
 *   provider's request rate and the latency of its successful attempts.
 * - **Active health checks** (opt-in per provider, `healthCheck`): a cheap
 *   probe you give (`@sluice/http`'s `HealthProbe` lists the models: no
 *   tokens spent) on a fiber of the router's scope, at a shorter interval
 *   while failing or ejected and a longer one while healthy; a failing probe
 *   counts as one of the provider's failures toward ejection, a passing one
 *   returns an ejected provider at once (as Envoy's active health checking
 *   does).
 * - **Observability**: `snapshot`, a stream of {@link RouterEvent}s, and
 *   Metrics tagged by provider and domain.
 *
 * A pick does not grow with the number of providers: each strategy looks at
 * one or two of them (smooth weighted round robin keeps a schedule:
 * O(distinct weights + log n)), and the quota check asks the picked
 * provider's domains first, the others only when those cannot admit now.
 *
 * What Effect gave us: `uninterruptibleMask` and `matchCauseEffect` (a call's
 * in-flight count is a scope, `acquireUseRelease`'s guarantee, so it is exact
 * by construction), `PubSub`/`Stream` (events),
 * `Metric`, `Clock` (every time here, so all of it runs under `TestClock`),
 * `Random` (the seed of the strategies' draws), `FiberSet` (the health
 * checks' fibers, interrupted with the router's scope), `Effect.timeout` (a
 * probe's); the RateLimiter gives `admissibleIn` and `state`, read without
 * charging. What this module adds is the routing itself; nothing like it is
 * in Effect.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { ExecutorShape, SubmitError as ExecutorSubmitError, Settlement } from "./Executor.js"
import type { InvalidOptionsError } from "./InvalidOptions.js"
import * as internal from "./internal/router.js"
import type { RouterError } from "./internal/routerError.js"
import type { Change } from "./internal/routerRegistry.js"
import type { Signal } from "./internal/routerSignal.js"
import type { StrategyName } from "./internal/routerStrategy.js"
import type { Cost, RateLimiterShape } from "./RateLimiter.js"
import type { BudgetOptions, BudgetState, RetryBudget } from "./Retry.js"

export {
  /**
   * The Router's own error, refined by `reason`: `NoProvider` (nothing left to
   * send the call to), `NoAdmission` (no quota before the deadline; retryable),
   * `ContextWindow` (no provider declares a window the call fits),
   * `UnknownProvider`, `DuplicateProvider`, `UnknownDomain` (run-time changes).
   *
   * @since 0.1.0
   * @category errors
   */
  RouterError,
  /**
   * The Router's own error, refined by `reason`: `NoProvider` (nothing left to
   * send the call to), `NoAdmission` (no quota before the deadline; retryable),
   * `ContextWindow` (no provider declares a window the call fits),
   * `UnknownProvider`, `DuplicateProvider`, `UnknownDomain` (run-time changes).
   *
   * @since 0.1.0
   * @category errors
   */
  RouterErrorReason
} from "./internal/routerError.js"

export type {
  /**
   * What a failed call says to the Router: `RateLimited` (with the wait the
   * server asked for), `Unavailable`, `Refused`, `ContextTooLong`,
   * `ContentFiltered` or `Final`.
   *
   * @since 0.1.0
   * @category models
   */
  Signal
} from "./internal/routerSignal.js"

/**
 * The default `classify`: Sluice's own errors by class (`ExecutorError`
 * `AttemptTimeout` → `Unavailable`, `Deadline` → `Final`, the other
 * `ExecutorError`s, `CircuitOpenError` and a cost above capacity →
 * `Refused`), any other error by its `reason` as `ApiError` and `ModelError`
 * spell it (`RateLimited`; `ServerError`, `Timeout`, `Transport`,
 * `ProviderUnavailable` → `Unavailable`; `ContextTooLong`;
 * `ContentFiltered`; `ClientError`, `InvalidRequest`, `Decode`,
 * `ResponseTooLarge` → `Final`), and anything else as `Unavailable`.
 *
 * @since 0.1.0
 * @category utils
 */
export const classify: (error: unknown) => Signal = internal.classify

/**
 * @since 0.1.0
 * @category models
 */
export type Strategy = StrategyName

/**
 * The router's Effect `Metric`s, tagged `router`, `provider`, `domain`:
 * `sluice_router_calls_total` (also tagged `outcome`), `sluice_router_in_flight`,
 * `sluice_router_ejections_total`, `sluice_router_concurrency_limit` (adaptive
 * concurrency's limit), `sluice_router_probes_total` (health checks, also
 * tagged `outcome`: `passed`, `failed`), and `sluice_router_domain_cooldowns_total`
 * (tagged `router`, `domain`).
 *
 * @since 0.1.0
 * @category metrics
 */
export * as metrics from "./internal/routerMetrics.js"

/**
 * A quota domain: one key of one RateLimiter, the limits its members share.
 *
 * @since 0.1.0
 * @category models
 */
export interface DomainOptions {
  readonly limiter: RateLimiterShape
  /** The limiter's key. Default the domain's name. */
  readonly key?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ProviderOptions {
  readonly name: string
  /** The provider's own Executor; to share a domain's quota, build it with the domain's limiter. */
  readonly executor: ExecutorShape
  /**
   * The quota domains it draws on (names of `domains`); none: its quota is its
   * own business. Its Executor charges one limiter key (the one `key` names,
   * its first domain's by default); the Router checks that every domain it
   * lists can admit a call, and cools every one of them down on its 429.
   */
  readonly domains?: ReadonlyArray<string> | undefined
  /** The key its Executor is called with. Default its first domain's key, else `"default"`. */
  readonly key?: string | undefined
  /** For `weightedRoundRobin`. Default 1. */
  readonly weight?: number | undefined
  /** Lower tiers are preferred; a higher tier is the fallback group. Default 0. */
  readonly tier?: number | undefined
  /** The largest context (prompt and output tokens) it takes; unknown when absent. */
  readonly contextWindow?: number | undefined
  /** Adapt its Executor's concurrency to back-pressure (AIMD). Off by default. */
  readonly adaptiveConcurrency?: AdaptiveConcurrencyOptions | undefined
  /** Probe it on an interval. Off by default. */
  readonly healthCheck?: HealthCheckOptions | undefined
}

/**
 * Adaptive concurrency for one provider: AIMD on its Executor's concurrency
 * (`Executor.setConcurrency`), which it then owns (give the provider an
 * Executor of its own). It starts at the Executor's concurrency, within the
 * bounds.
 *
 * - **Decrease**: an attempt that meets back-pressure (a 429; a 503, 529 or
 *   an `Overloaded` provider; a timeout, the attempt's own or the
 *   Executor's) multiplies the limit by `decrease`, rounded down, not below
 *   `floor`. Attempts that had started before that cut do not cut again: a
 *   burst of 429s from one overloaded moment is one cut.
 * - **Increase**: a successful attempt that ran while every permit was taken
 *   (the limit was what held the work back) adds one, up to the ceiling.
 * - **Ceiling**: `ceiling` if given; else, with `requestLimit` (the
 *   provider's request rate, as given to its RateLimiter), Little's law:
 *   the rate per second × the latency of its successful attempts (an EWMA,
 *   seconds), rounded up, at least `floor` (more could not run at that rate;
 *   until the first success, the starting limit); else the Executor's
 *   concurrency when the provider was added.
 *
 * Latency comes only from successful attempts: a 429 answers fast and a
 * timeout slowly, and neither says how long the work takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdaptiveConcurrencyOptions {
  /** The lowest limit. Default 1. */
  readonly floor?: number | undefined
  /** The highest limit. Default: derived (see above). */
  readonly ceiling?: number | undefined
  /** The provider's request rate limit, e.g. `{ limit: 500, interval: "1 minute" }`, to derive the ceiling from. */
  readonly requestLimit?: { readonly limit: number; readonly interval: Duration.DurationInput } | undefined
  /** The factor (0–1) a back-pressure signal multiplies the limit by. Default 0.5 (TCP's). */
  readonly decrease?: number | undefined
}

/**
 * An active health check for one provider: `probe` runs on a fiber of the
 * router's scope (stopped when the provider drains, is removed or replaced,
 * and when the router's scope closes), every `healthyInterval` while it
 * passes, every `failingInterval` while it fails or the provider is ejected
 * (an ejection shortens the wait at once). A probe fails when it fails, dies
 * or outlasts `timeout`.
 *
 * - A failing probe counts as one failure of the provider's own (as a 5xx
 *   does) toward its ejection: a dead provider no call reaches is ejected
 *   all the same.
 * - A passing probe returns an ejected provider at once (a `Returned` event
 *   with reason `Probe`) and clears its outlier counts, as Envoy does; while
 *   the provider is not ejected it changes nothing (a cheap probe passing
 *   says little about real calls; their own successes count).
 *
 * Give a probe that costs no tokens: `HealthProbe` of `@sluice/http` lists
 * the models (`GET /v1/models`), which works for reasoning models too (a
 * one-token completion does not).
 *
 * @since 0.1.0
 * @category models
 */
export interface HealthCheckOptions {
  readonly probe: Effect.Effect<void, unknown>
  /** Between probes while it passes. Default 30 s. */
  readonly healthyInterval?: Duration.DurationInput | undefined
  /** Between probes while it fails or the provider is ejected. Default 5 s. */
  readonly failingInterval?: Duration.DurationInput | undefined
  /** How long one probe may take. Default 5 s. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Affinity by `affinityKey` (see `SubmitOptions`): consistent hashing with
 * bounded loads over the lowest tier's providers.
 *
 * @since 0.1.0
 * @category models
 */
export interface AffinityOptions {
  /** Points on the ring per provider (more: keys spread more evenly; a rebuild costs more). Default 100. */
  readonly virtualNodes?: number | undefined
  /**
   * `1 + ε`: a provider takes a key while its calls in flight, this one
   * included, stay within `⌈loadFactor × average⌉`; above, the key goes to
   * the next provider on the ring. Above 1; default 1.25.
   */
  readonly loadFactor?: number | undefined
}

/**
 * Outlier ejection (Envoy's outlier detection).
 *
 * @since 0.1.0
 * @category models
 */
export interface EjectionOptions {
  /** Failures in a row that eject. Default 5. */
  readonly consecutiveFailures?: number | undefined
  /** A failure rate (0–1] over the last `window` calls that ejects, once `minimumVolume` were seen. None by default. */
  readonly failureRate?: number | undefined
  /** Default 20. */
  readonly minimumVolume?: number | undefined
  /** Calls remembered per provider for the failure rate. Default 100. */
  readonly window?: number | undefined
  /** The first ejection's length; the n-th lasts n times it. Default 30 s. */
  readonly baseEjectionTime?: Duration.DurationInput | undefined
  /** The longest ejection (before jitter). Default 300 s. */
  readonly maxEjectionTime?: Duration.DurationInput | undefined
  /** A random extra of up to this much on each ejection. Default none. */
  readonly jitter?: Duration.DurationInput | undefined
  /** At most this share (percent) of the providers is ejected at once, rounded down. Default 50. */
  readonly maxEjectionPercent?: number | undefined
  /** Below this share (0–1) of healthy providers, route to all of them. Default 0.5. */
  readonly panicThreshold?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the router in errors, events and metrics. */
  readonly name: string
  /** Default `"leastOutstanding"`. */
  readonly strategy?: Strategy | undefined
  /** Turns affinity by `affinityKey` on (`{}`: the defaults). Off by default: calls' keys are not read. */
  readonly affinity?: AffinityOptions | undefined
  readonly domains?: Readonly<Record<string, DomainOptions>> | undefined
  readonly providers?: ReadonlyArray<ProviderOptions> | undefined
  readonly ejection?: EjectionOptions | undefined
  /** Providers tried per call at most (the first and its fallbacks). Default 3. */
  readonly maxAttempts?: number | undefined
  /** The router-wide budget every fallback hop takes from: its options, or a shared budget. Default 20 % of calls plus 10 per 10 s. */
  readonly retryBudget?: BudgetOptions | RetryBudget | undefined
  /** How long a domain cools down after a 429 that asked for no wait. Default 1 s. */
  readonly rateLimitCooldown?: Duration.DurationInput | undefined
  /** Each call's whole time over every hop, unless the call gives its own. None by default. */
  readonly deadline?: Duration.DurationInput | undefined
  /** The weight (0–1] of a new latency sample in the EWMA. Default 0.3. */
  readonly latencyWeight?: number | undefined
  /** Reads a failed call's error (see {@link classify}, the default). */
  readonly classify?: ((error: unknown) => Signal) | undefined
  /** Providers (by name, in order) to try after `ContentFiltered`. None by default: the call fails. */
  readonly contentFilteredChain?: ReadonlyArray<string> | undefined
  /** Events kept per slow subscriber before the oldest are dropped. Default 1,024. */
  readonly eventBufferSize?: number | undefined
}

/**
 * The provider a call is being sent to, handed to the call.
 *
 * @since 0.1.0
 * @category models
 */
export interface Route {
  readonly provider: string
  readonly domains: ReadonlyArray<string>
  readonly tier: number
  readonly contextWindow: number | undefined
  /** 1 for the first provider tried, 2 for the first fallback, … */
  readonly hop: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SubmitOptions<E = unknown, A = unknown> {
  /** The call's whole cost, reserved by the chosen provider's Executor (see `Executor.SubmitOptions`). */
  readonly cost?: Cost | undefined
  readonly settle?: ((exit: Exit.Exit<A, E>) => Settlement) | undefined
  readonly priority?: number | undefined
  /** Each attempt's timeout on the provider's Executor. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The call's whole time over every hop; overrides the router's. */
  readonly deadline?: Duration.DurationInput | undefined
  /** The context the call needs (prompt and maximum output tokens): providers with a smaller declared window are passed over. */
  readonly contextTokens?: number | undefined
  /**
   * With the router's `affinity` on, calls of one key (a session, a hash of
   * the prompt's cacheable prefix) go to one provider while it is healthy,
   * within its load bound and its quota admits them now; otherwise (and on
   * fallback hops) the strategy chooses. Ignored with affinity off.
   */
  readonly affinityKey?: string | undefined
  /**
   * How many output tokens the answer says it produced: the latency sample for
   * `lowestLatency` is then per output token (long answers do not make a
   * provider look slow). Give it on every call or on none, so that one
   * provider's samples stay comparable.
   */
  readonly outputTokens?: ((value: A) => number | undefined) | undefined
}

/**
 * Every error `submit` adds to the call's own.
 *
 * @since 0.1.0
 * @category errors
 */
export type SubmitError = ExecutorSubmitError | RouterError

/**
 * A provider, now.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProviderSnapshot {
  readonly name: string
  readonly state: "active" | "ejected" | "draining"
  readonly domains: ReadonlyArray<string>
  readonly tier: number
  readonly weight: number
  readonly contextWindow: number | undefined
  readonly inFlight: number
  readonly consecutiveFailures: number
  /** Ejections so far, after decay. */
  readonly ejections: number
  /** While ejected: why, and until when (ms on the Clock). */
  readonly ejection: { readonly reason: "ConsecutiveFailures" | "FailureRate"; readonly until: number } | undefined
  /** The latency EWMA of its successful calls (ms, or ms per output token with `outputTokens`). */
  readonly latencyMillis: number | undefined
  /** With `adaptiveConcurrency`: the limit now, its bounds, and the latency of successful attempts (ms EWMA). */
  readonly concurrency: ConcurrencySnapshot | undefined
  /** With `healthCheck`: the last probe's verdict (undefined before the first), failures in a row, when. */
  readonly healthCheck: HealthCheckSnapshot | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ConcurrencySnapshot {
  readonly limit: number
  readonly floor: number
  readonly ceiling: number
  readonly latencyMillis: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HealthCheckSnapshot {
  readonly passing: boolean | undefined
  readonly consecutiveFailures: number
  readonly lastProbeAt: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface DomainSnapshot {
  readonly name: string
  readonly key: string
  /** While cooling down after a 429: until when (ms on the Clock). */
  readonly cooldownUntil: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly router: string
  /** Bumped by every add, drain, remove and replace. */
  readonly generation: number
  /** Fewer than the panic threshold are healthy: every provider takes traffic. */
  readonly panic: boolean
  readonly providers: ReadonlyArray<ProviderSnapshot>
  readonly domains: ReadonlyArray<DomainSnapshot>
  readonly retryBudget: BudgetState
}

/**
 * Why adaptive concurrency changed a limit: back-pressure (`RateLimited`, a
 * 429; `Overloaded`, a 503, 529 or overloaded provider; `Timeout`), a
 * success while every permit was taken (`Saturated`: one more), or a derived
 * ceiling that fell below the limit (`Ceiling`).
 *
 * @since 0.1.0
 * @category models
 */
export type ConcurrencyChangedReason = "RateLimited" | "Overloaded" | "Timeout" | "Saturated" | "Ceiling"

/**
 * What the router did, as it did it (`at`: ms on the Clock).
 *
 * @since 0.1.0
 * @category models
 */
export type RouterEvent =
  | {
      readonly _tag: "ProviderChanged"
      readonly router: string
      readonly at: number
      readonly provider: string
      readonly change: Change
      readonly generation: number
    }
  | {
      readonly _tag: "Ejected"
      readonly router: string
      readonly at: number
      readonly provider: string
      readonly reason: "ConsecutiveFailures" | "FailureRate"
      readonly until: number
      readonly ejections: number
    }
  | {
      /** It would have been ejected, but `maxEjectionPercent` of the pool already is. */
      readonly _tag: "EjectionSpared"
      readonly router: string
      readonly at: number
      readonly provider: string
      readonly reason: "ConsecutiveFailures" | "FailureRate"
      readonly ejected: number
      readonly allowed: number
    }
  | {
      /** An ejected provider takes traffic again: its time was up, or a probe passed. */
      readonly _tag: "Returned"
      readonly router: string
      readonly at: number
      readonly provider: string
      readonly reason: "EjectionEnded" | "Probe"
    }
  | {
      /** Adaptive concurrency changed the provider's limit: a cut, a step up, or a lower ceiling. */
      readonly _tag: "ConcurrencyChanged"
      readonly router: string
      readonly at: number
      readonly provider: string
      readonly from: number
      readonly to: number
      readonly reason: ConcurrencyChangedReason
    }
  | {
      /** A health check's probe ended. */
      readonly _tag: "Probed"
      readonly router: string
      readonly at: number
      readonly provider: string
      readonly passed: boolean
    }
  | {
      readonly _tag: "DomainCooledDown"
      readonly router: string
      readonly at: number
      readonly domain: string
      readonly provider: string
      readonly until: number
    }
  | {
      /** A call failed on `provider` and goes on to another. */
      readonly _tag: "Fallback"
      readonly router: string
      readonly at: number
      readonly provider: string
      readonly signal: Signal["_tag"]
      readonly hop: number
    }

/**
 * @since 0.1.0
 * @category models
 */
export interface RouterShape {
  readonly name: string
  /**
   * Sends the call to a provider chosen for it, through that provider's
   * Executor, falling back to others as its failures say.
   */
  readonly submit: <A, E, R>(
    call: (route: Route) => Effect.Effect<A, E, R>,
    options?: SubmitOptions<E, A>
  ) => Effect.Effect<A, E | SubmitError, R>
  /** Adds a provider; answers the new generation. */
  readonly add: (provider: ProviderOptions) => Effect.Effect<number, RouterError | InvalidOptionsError>
  /** No new work for the provider; completes when what it has in flight has ended. */
  readonly drain: (provider: string) => Effect.Effect<void, RouterError>
  /** Drains the provider, then forgets it. */
  readonly remove: (provider: string) => Effect.Effect<void, RouterError>
  /**
   * Puts a provider in the place of the one of its name (a new key, a new
   * endpoint): new work goes to it at once, in one generation; the old one
   * finishes what it has in flight and is forgotten. Answers the generation
   * once the old one has drained.
   */
  readonly replace: (provider: ProviderOptions) => Effect.Effect<number, RouterError | InvalidOptionsError>
  readonly snapshot: Effect.Effect<Snapshot>
  /** Every router event from subscription on; slow subscribers lose the oldest. */
  readonly events: Stream.Stream<RouterEvent>
  /** Like `events`, as a queue subscribed once this returns. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<RouterEvent>, never, Scope.Scope>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Router extends Context.Tag("@sluice/core/Router")<Router, RouterShape>() {}

/**
 * Builds a router in the current scope (its health checks run there).
 * Bad options fail with an `InvalidOptionsError` that names the field (a
 * provider naming an undeclared domain, two providers of one name, a weight
 * of 0, …).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<RouterShape, InvalidOptionsError, Scope.Scope> = internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Router, InvalidOptionsError> => Layer.scoped(Router, make(options))

/**
 * Sends a call through the router in context.
 *
 * @since 0.1.0
 * @category combinators
 */
export const submit = <A, E, R>(
  call: (route: Route) => Effect.Effect<A, E, R>,
  options?: SubmitOptions<E, A>
): Effect.Effect<A, E | SubmitError, R | Router> => internal.submitWith(Router, call, options)
