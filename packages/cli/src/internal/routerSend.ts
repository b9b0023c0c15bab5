/**
 * The sender of `sluice run --providers`: several endpoints behind one
 * `Router`. Each provider is an `HttpSend` of its own (its ApiClient, its
 * limits given or learned from its headers, its breaker, its concurrency and
 * retries), registered with the Router in its quota domain; each line goes
 * through `Router.submit`, which chooses the provider and falls back to
 * another by the failure's reason.
 *
 * - A provider's 5xx, timeouts and failed connections (after its own
 *   retries) move the line to another provider and count toward the
 *   provider's ejection; its open breaker refuses at once, and the line goes
 *   elsewhere. So an outage of one provider moves the traffic, it does not
 *   pause the run; an ejected provider takes lines again after its cool-down.
 * - The run pauses only when every provider is down: a line that failed on
 *   all of them, with no line answered meanwhile, waits and is sent again
 *   (`outage.ts`, as a single endpoint's outage), up to `maxOutage`.
 *   A line refused (open breakers: nothing was sent) everywhere it could go
 *   while other lines are answered waits and is sent again too, for up to
 *   `maxOutage` (`afterFailure`): a refusal is never the line's own failure.
 * - A 429 past a provider's retries cools its whole domain down (the Router's
 *   own rule); the caller's own errors (a bad body, a 4xx) fail the line.
 * - A domain declared with its limits (the file's `domains`) is one limiter,
 *   built here, that every member's `HttpSend` is given: each admission of
 *   any member charges it, and any member's rate-limit headers and
 *   `Retry-After` correct it, so a 429 on one member holds back the others
 *   at once, before the Router's cool-down.
 * - Counted per provider (`RunStats.ProviderProgress`): lines served and
 *   failed, lines moved away, tokens, 429s, ejections, its limits, and the
 *   lines it served each second (the report shows the traffic moving).
 *
 * The Router takes an Executor per provider and submits each call through
 * it; admission already has its owner in the provider's `HttpSend` (the
 * ApiClient's Executor, where the limits are), so the Executor handed to the
 * Router is a plain pass-through (no limits, no retry, no spans) and each
 * domain's limiter carries only the Router's 429 cool-down. Selection is then
 * by the strategy (`leastOutstanding` by default: a line waiting in a
 * provider's queue counts as outstanding there, so a provider whose limits
 * hold lines back gets fewer new ones).
 *
 * What Effect gave us: `Deferred` (the halt), `Scope` (every provider's
 * lifetime), `Queue` (the router's events). What `@sluice/core` gave us: the
 * Router (selection, ejection, fallback, domains) and the Executor. What this
 * module adds: the wiring of one `HttpSend` per provider into a Router, the
 * reading of a line's failure as a Router signal, the pause when every
 * provider is down, and the per-provider counts.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import { CircuitBreaker, Executor, type InvalidOptions, RateLimiter, RateLimiterStore, Router } from "@sluice/core"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as HttpSend from "../HttpSend.js"
import type * as Runner from "../Runner.js"
import type * as RunStatsTypes from "../RunStats.js"
import { RunStats, type RunStatsShape } from "../RunStats.js"
import * as InternalHttpSend from "./httpSend.js"
import * as LearnedLimits from "./learnedLimits.js"
import * as Outage from "./outage.js"
import type * as Providers from "./providers.js"
import { RunError } from "./runError.js"

export interface Options {
  readonly providers: ReadonlyArray<Providers.Provider>
  /** The shared quota domains' limits, by name (the members' `domain`): one limiter each. */
  readonly domains?: Readonly<Record<string, Providers.DomainLimits>> | undefined
  /** Default `leastOutstanding`. */
  readonly strategy?: Router.Strategy | undefined
  /** How long the run waits when every provider is down before it stops (`ProviderUnavailable`). */
  readonly maxOutage: Duration.DurationInput
  /** A provider's first ejection (the n-th lasts n times it). Default 30 s. */
  readonly ejectionTime?: Duration.DurationInput | undefined
  /** The settings every provider shares (the flags of `sluice run`); `concurrency` unless the entry gives its own. */
  readonly shared: Omit<
    HttpSend.Options,
    "baseUrl" | "apiKey" | "rpm" | "tpm" | "name" | "breaker" | "maxOutage" | "waitForBreaker"
  >
}

export interface RouterSender extends HttpSend.Sender {
  readonly router: Router.RouterShape
  /** Each provider's counts, now. */
  readonly providers: () => ReadonlyArray<RunStatsTypes.ProviderProgress>
  /** The providers' concurrency together. */
  readonly concurrency: number
  /** Each provider's breaker, in the order of the providers. */
  readonly breakers: ReadonlyArray<readonly [provider: string, breaker: CircuitBreaker.CircuitBreakerShape]>
}

/** A domain's limiter carries only the Router's 429 cool-down: its limit is never reached. */
const COOLDOWN_ONLY = { requests: { limit: 1_000_000_000, interval: "1 minute" } } as const

interface Counter {
  name: string
  domain: string
  state: RunStatsTypes.ProviderProgress["state"]
  served: number
  failed: number
  movedAway: number
  promptTokens: number
  completionTokens: number
  rateLimited: number
  ejections: number
  limits: RunStatsTypes.Limits
  servedPerSecond: Array<number>
}

/** What a line's failure says to the Router (`Router.Signal`). */
export const classify = (error: unknown): Router.Signal => {
  if (error instanceof RunError) {
    if (error.reason !== "SendFailed") return { _tag: "Final" }
    if (error.errorKind === "RateLimited") return { _tag: "RateLimited" }
    if (error.errorKind === "ContextTooLong") return { _tag: "ContextTooLong" }
    if (error.errorKind === "ContentFiltered") return { _tag: "ContentFiltered" }
    if (error.failureClass === "refused") return { _tag: "Refused" }
    if (error.failureClass === "systemic") return { _tag: "Unavailable" }
    return { _tag: "Final" }
  }
  return Router.classify(error)
}

/** The provider (or every provider) failed, not the line: an outage when nothing else is answered meanwhile. */
const isSystemic = (error: unknown): boolean =>
  error instanceof RunError
    ? error.reason === "SendFailed" && (error.failureClass === "systemic" || error.failureClass === "refused")
    : error instanceof Router.RouterError
      ? error.reason === "NoProvider" || error.reason === "NoAdmission"
      : classify(error)._tag === "Unavailable" || classify(error)._tag === "Refused"

/**
 * What becomes of a line whose last hop failed (`answered`: a provider served
 * a line since that hop began; `refusedFor`: how long its providers have been
 * refusing it while others were answered):
 * - `Fail`: its own failure (a bad body, a 4xx), or a provider's failure
 *   while others answered: the line fails;
 * - `Wait`: refused where it could go (an open breaker: nothing was sent)
 *   while others were answered: neither its own failure nor an outage; it
 *   waits and is sent again, as a single endpoint's line waits for its
 *   breaker, for no longer than the run waits out an outage;
 * - `Outage`: every provider failed it and none answered anyone meanwhile:
 *   they are all down; the run's outage begins, and the line waits.
 */
export const afterFailure = (
  error: unknown,
  answered: boolean,
  refusedFor: number,
  maxOutageMillis: number
): "Fail" | "Wait" | "Outage" => {
  if (!isSystemic(error)) return "Fail"
  if (!answered) return "Outage"
  return isRefusal(error) && refusedFor < maxOutageMillis ? "Wait" : "Fail"
}

/** A refusal: the provider's open breaker (or the Router's) let nothing be sent. */
const isRefusal = (error: unknown): boolean =>
  error instanceof RunError ? error.failureClass === "refused" : classify(error)._tag === "Refused"

/** A failure the Router (or its pass-through Executor) gave, as the line's `SendFailed`. */
const asRunError = (error: unknown): RunError => {
  if (error instanceof RunError) return error
  const tagged = error as { readonly _tag?: unknown; readonly reason?: unknown; readonly message?: unknown }
  const kind = typeof tagged.reason === "string" ? tagged.reason : String(tagged._tag ?? "Unknown")
  const systemic = isSystemic(error)
  return new RunError({
    reason: "SendFailed",
    errorKind: kind,
    detail: typeof tagged.message === "string" ? tagged.message : String(error),
    attempts: 1,
    retryable: systemic,
    label: systemic ? "no provider available" : kind,
    failureClass: systemic ? "systemic" : "own"
  })
}

const sumOf = (values: ReadonlyArray<number | undefined>): number | undefined =>
  values.some((value) => value === undefined) ? undefined : values.reduce<number>((sum, value) => sum + value!, 0)

export const make = (
  options: Options
): Effect.Effect<RouterSender, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | RunStats | Scope.Scope> =>
  Effect.gen(function* () {
    const stats = yield* RunStats
    const clock = yield* Effect.clock
    const startedAt = clock.unsafeCurrentTimeMillis()
    const halted = yield* Deferred.make<RunError>()
    const store = yield* Layer.build(RateLimiterStore.layerMemory())

    const counters = new Map<string, Counter>()
    for (const provider of options.providers) {
      counters.set(provider.name, {
        name: provider.name,
        domain: provider.domain ?? provider.name,
        state: "active",
        served: 0,
        failed: 0,
        movedAway: 0,
        promptTokens: 0,
        completionTokens: 0,
        rateLimited: 0,
        ejections: 0,
        limits: {},
        servedPerSecond: []
      })
    }
    const declared = options.domains ?? {}
    const publishLimits = Effect.suspend(() => {
      // A shared domain's limits once, whatever its members.
      const byDomain = new Map<string, Counter>()
      for (const counter of counters.values()) {
        const key = counter.domain in declared ? `domain:${counter.domain}` : `provider:${counter.name}`
        if (!byDomain.has(key)) byDomain.set(key, counter)
      }
      const all = [...byDomain.values()]
      return stats.setLimits({
        rpm: sumOf(all.map((counter) => counter.limits.rpm)),
        tpm: sumOf(all.map((counter) => counter.limits.tpm))
      })
    })
    /** A provider's own view of the run's stats: its 429s and limits counted as its own too. */
    const viewFor = (counter: Counter): RunStatsShape => ({
      ...stats,
      rateLimited: Effect.zipRight(
        Effect.sync(() => {
          counter.rateLimited++
        }),
        stats.rateLimited
      ),
      setLimits: (limits) =>
        Effect.zipRight(
          Effect.sync(() => {
            counter.limits = limits
          }),
          publishLimits
        ),
      // A breaker per provider: the run-wide one shown is none (each provider's state is in its counts).
      setBreaker: () => Effect.void,
      setOutage: () => Effect.void
    })

    // ---- the providers --------------------------------------------------------------

    const senders = new Map<string, HttpSend.Sender>()
    const breakers: Array<readonly [string, CircuitBreaker.CircuitBreakerShape]> = []
    const domains: Record<string, Router.DomainOptions> = {}
    const registered: Array<Router.ProviderOptions> = []
    /** Each declared domain's limiter, over its limits as the run paces them (burst and headroom). */
    const shared = new Map<string, RateLimiter.RateLimiterShape>()
    for (const [domain, limits] of Object.entries(declared)) {
      const given = InternalHttpSend.givenLimits({ baseUrl: "", window: options.shared.window, ...limits })
      const burst = options.shared.burst ?? InternalHttpSend.DEFAULT_BURST
      const headroom = options.shared.headroom ?? InternalHttpSend.DEFAULT_HEADROOM
      const buckets: Record<string, RateLimiter.LimitOptions> = {}
      if (given.requests !== undefined) buckets.requests = LearnedLimits.bucket(given.requests, burst, headroom)
      if (given.tokens !== undefined) buckets.tokens = LearnedLimits.bucket(given.tokens, burst, headroom)
      shared.set(
        domain,
        yield* RateLimiter.make({ name: `sluice-run-domain-limits:${domain}`, limits: buckets }).pipe(
          Effect.provide(store)
        )
      )
    }
    for (const provider of options.providers) {
      const counter = counters.get(provider.name)!
      const domainLimits = provider.domain === undefined ? undefined : declared[provider.domain]
      const breaker = yield* CircuitBreaker.make(HttpSend.defaultBreaker(provider.name))
      breakers.push([provider.name, breaker])
      const send = yield* HttpSend.make({
        ...options.shared,
        name: provider.name,
        baseUrl: provider.baseUrl,
        apiKey: provider.apiKey,
        rpm: domainLimits?.rpm ?? provider.limits?.rpm,
        tpm: domainLimits?.tpm ?? provider.limits?.tpm,
        rateLimiter: provider.domain === undefined ? undefined : shared.get(provider.domain),
        concurrency: provider.concurrency ?? options.shared.concurrency,
        breaker,
        // Refused by its open breaker: the line goes to another provider at once.
        waitForBreaker: false
      }).pipe(Effect.provideService(RunStats, viewFor(counter)))
      senders.set(provider.name, send)
      // Its credentials refused: the run stops, naming the provider.
      yield* Effect.forkScoped(
        Effect.flatMap(send.halted, (error) =>
          Deferred.succeed(
            halted,
            new RunError({
              reason: error.reason,
              detail: `provider ${provider.name}: ${error.detail.replace("--api-key-env", `its keyEnv (${provider.keyEnv ?? "none"})`)}`,
              ...(error.status === undefined ? {} : { status: error.status }),
              ...(error.label === undefined ? {} : { label: error.label })
            })
          )
        )
      )
      const domain = counter.domain
      if (domains[domain] === undefined) {
        domains[domain] = {
          limiter: yield* RateLimiter.make({ name: `sluice-run-domain:${domain}`, limits: COOLDOWN_ONLY }).pipe(
            Effect.provide(store)
          ),
          key: domain
        }
      }
      registered.push({
        name: provider.name,
        // The limits are the HttpSend's (its ApiClient's Executor); this one only carries the Router's calls.
        executor: yield* Executor.make({
          name: `router:${provider.name}`,
          concurrency: 1_000_000,
          queueCapacity: 1_000_000,
          spans: false
        }),
        domains: [domain],
        weight: provider.weight,
        tier: provider.tier,
        contextWindow: provider.contextWindow
      })
    }
    const concurrencySum = options.providers.reduce(
      (sum, provider) => sum + (provider.concurrency ?? options.shared.concurrency ?? 16),
      0
    )
    const router = yield* Router.make({
      name: "sluice-run",
      strategy: options.strategy,
      domains,
      providers: registered,
      classify,
      // Every provider once (at least a second try when there is one).
      maxAttempts: Math.max(1, options.providers.length),
      // A batch's lines must all be done: every line that failed on a provider may try another (the budget
      // guards a live service against retry storms; here a line refused a hop would only wait).
      retryBudget: { ratio: 1, minRetries: concurrencySum * 2 },
      ejection: {
        consecutiveFailures: 5,
        baseEjectionTime: options.ejectionTime ?? "30 seconds",
        maxEjectionPercent: 50
      }
    })

    const events = yield* router.subscribe
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(Queue.take(events), (event) =>
          Effect.sync(() => {
            const counter = "provider" in event ? counters.get(event.provider) : undefined
            if (counter === undefined) return
            switch (event._tag) {
              case "Ejected":
                counter.ejections++
                counter.state = "ejected"
                break
              case "Returned":
                counter.state = "active"
                break
              case "Fallback":
                counter.movedAway++
                break
            }
          })
        )
      )
    )
    const providers = (): ReadonlyArray<RunStatsTypes.ProviderProgress> =>
      [...counters.values()].map((counter) => ({ ...counter, servedPerSecond: [...counter.servedPerSecond] }))
    yield* stats.setProviders(providers)

    // ---- every provider down ---------------------------------------------------------

    const maxOutageMillis = Duration.toMillis(Duration.decode(options.maxOutage))
    const outage = yield* Outage.forRun({
      maxOutage: options.maxOutage,
      stats,
      halted,
      silent: "no provider has answered",
      back: "a provider"
    })

    const served = (provider: string, result: Runner.SendResult) =>
      Effect.sync(() => {
        const counter = counters.get(provider)
        if (counter === undefined) return
        counter.served++
        counter.promptTokens += result.usage?.promptTokens ?? 0
        counter.completionTokens += result.usage?.completionTokens ?? 0
        const second = Math.max(0, Math.floor((clock.unsafeCurrentTimeMillis() - startedAt) / 1000))
        while (counter.servedPerSecond.length <= second) counter.servedPerSecond.push(0)
        counter.servedPerSecond[second]!++
      })

    const sendLine = (line: Runner.BatchLine): Effect.Effect<Runner.SendResult, RunError> => {
      /** The provider of the line's last hop. */
      let last: string | undefined
      /** Lines served by any provider when the line's last hop began (see `Outage.answers`). */
      let answersAtHop = 0
      const once = router.submit((route) => {
        last = route.provider
        answersAtHop = outage.answers()
        return Effect.tap(senders.get(route.provider)!(line), (result) => served(route.provider, result))
      })
      /** When its providers first refused it while others answered (ms on the Clock), if they have. */
      let refusedSince: number | undefined
      const loop = (round: number): Effect.Effect<Runner.SendResult, RunError> => {
        answersAtHop = outage.answers()
        return once.pipe(
          Effect.tap(() => outage.alive),
          Effect.catchAll((error) => {
            if (error instanceof RunError && error.reason !== "SendFailed") return Effect.fail(error)
            const at = clock.unsafeCurrentTimeMillis()
            const answered = outage.answers() !== answersAtHop
            if (answered && isRefusal(error)) refusedSince ??= at
            const next = afterFailure(
              error,
              answered,
              refusedSince === undefined ? 0 : at - refusedSince,
              maxOutageMillis
            )
            const pause = Duration.millis(Math.min(5_000, 500 * 2 ** Math.min(round, 4)))
            if (next === "Wait") {
              return Effect.zipRight(
                Effect.raceFirst(Effect.sleep(pause), outage.nextChance),
                Effect.suspend(() => loop(round + 1))
              )
            }
            if (next === "Fail") {
              const counter = last === undefined ? undefined : counters.get(last)
              if (counter !== undefined) counter.failed++
              return Effect.fail(asRunError(error))
            }
            // Every provider failed it, and none answered anyone meanwhile: they are all down. Wait and send it again.
            return outage.down(asRunError(error).label ?? "no provider available").pipe(
              Effect.zipRight(
                Effect.acquireUseRelease(
                  outage.waiting(1),
                  () => Effect.raceFirst(Effect.sleep(pause), outage.nextChance),
                  () => outage.waiting(-1)
                )
              ),
              Effect.zipRight(Effect.suspend(() => loop(round + 1)))
            )
          })
        )
      }
      return Effect.raceFirst(loop(0), Effect.flatMap(Deferred.await(halted), Effect.fail))
    }
    return Object.assign(sendLine, {
      halted: Deferred.await(halted),
      router,
      providers,
      concurrency: concurrencySum,
      breakers
    }) satisfies RouterSender
  })
