/**
 * The Router's assembly: options, a call's hops from provider to provider,
 * the signals each failure feeds, snapshot and events. The parts, one file
 * each: the provider record (`routerProvider.ts`), the generation-numbered
 * registry and its exact in-flight counts (`routerRegistry.ts`), quota
 * domains (`routerDomain.ts`), selection (`routerSelection.ts`), strategies
 * (`routerStrategy.ts`), affinity by key (`routerAffinity.ts`), outlier
 * ejection (`routerOutlier.ts`), signals (`routerSignal.ts`), metrics
 * (`routerMetrics.ts`), adaptive concurrency (`routerAdaptive.ts`), active
 * health checks (`routerHealthCheck.ts`).
 *
 * One way to run a call: select (hard constraints, then health, then soft
 * preferences, then quota admission by tier, then the strategy) → dispatch
 * through the registry's scope to the provider's Executor → on failure, the
 * signal feeds one thing (domain, ejection, or nothing) and decides the next
 * hop's preferences, within `maxAttempts`, the retry budget and the deadline.
 */
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as InvalidOptions from "../InvalidOptions.js"
import * as Retry from "../Retry.js"
import type * as Router from "../Router.js"
import * as EventHub from "./eventHub.js"
import * as Adaptive from "./routerAdaptive.js"
import * as Affinity from "./routerAffinity.js"
import { headroom, QuotaDomain } from "./routerDomain.js"
import { RouterError } from "./routerError.js"
import * as HealthCheck from "./routerHealthCheck.js"
import { makeMetrics } from "./routerMetrics.js"
import * as Outlier from "./routerOutlier.js"
import { ProviderEntry } from "./routerProvider.js"
import * as Registry from "./routerRegistry.js"
import * as Selection from "./routerSelection.js"
import * as Signals from "./routerSignal.js"
import * as Strategy from "./routerStrategy.js"

export const classify = Signals.classify

const Share = Schema.Number.pipe(
  Schema.greaterThan(0, { message: () => "Expected a number above 0" }),
  Schema.lessThanOrEqualTo(1, { message: () => "Expected a number no more than 1" })
)

const AdaptiveConcurrencySchema = Schema.Struct({
  floor: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  ceiling: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  requestLimit: Schema.optional(
    Schema.UndefinedOr(
      Schema.Struct({ limit: InvalidOptions.PositiveNumber, interval: InvalidOptions.PositiveDuration })
    )
  ),
  decrease: Schema.optional(
    Schema.UndefinedOr(
      Schema.Number.pipe(
        Schema.greaterThan(0, { message: () => "Expected a factor above 0" }),
        Schema.lessThan(1, { message: () => "Expected a factor below 1" })
      )
    )
  )
}).pipe(
  Schema.filter(
    (options) =>
      options.ceiling === undefined ||
      options.ceiling >= (options.floor ?? 1) || {
        path: ["ceiling"],
        message: `Expected a ceiling of at least the floor (${options.floor ?? 1}), actual ${options.ceiling}`
      }
  )
)

const HealthCheckSchema = Schema.Struct({
  probe: Schema.declare((u): u is Effect.Effect<void, unknown> => Effect.isEffect(u), {
    message: () => "Expected an Effect"
  }),
  healthyInterval: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  failingInterval: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  timeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration))
})

const ProviderSchema = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  executor: Schema.Object,
  domains: Schema.optional(Schema.UndefinedOr(Schema.Array(Schema.NonEmptyTrimmedString))),
  key: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyTrimmedString)),
  weight: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  tier: Schema.optional(Schema.UndefinedOr(Schema.NonNegativeInt)),
  contextWindow: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  adaptiveConcurrency: Schema.optional(Schema.UndefinedOr(AdaptiveConcurrencySchema)),
  healthCheck: Schema.optional(Schema.UndefinedOr(HealthCheckSchema))
})

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  strategy: Schema.optional(Schema.UndefinedOr(Schema.Literal(...Strategy.strategyNames))),
  affinity: Schema.optional(
    Schema.UndefinedOr(
      Schema.Struct({
        virtualNodes: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
        loadFactor: Schema.optional(
          Schema.UndefinedOr(Schema.Number.pipe(Schema.greaterThan(1, { message: () => "Expected a number above 1" })))
        )
      })
    )
  ),
  domains: Schema.optional(
    Schema.UndefinedOr(
      Schema.Record({
        key: Schema.NonEmptyTrimmedString,
        value: Schema.Struct({
          limiter: Schema.Object,
          key: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyTrimmedString))
        })
      })
    )
  ),
  providers: Schema.optional(Schema.UndefinedOr(Schema.Array(ProviderSchema))),
  ejection: Schema.optional(
    Schema.UndefinedOr(
      Schema.Struct({
        consecutiveFailures: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
        failureRate: Schema.optional(Schema.UndefinedOr(Share)),
        minimumVolume: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
        window: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
        baseEjectionTime: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
        maxEjectionTime: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
        jitter: Schema.optional(Schema.UndefinedOr(InvalidOptions.NonNegativeDuration)),
        maxEjectionPercent: Schema.optional(
          Schema.UndefinedOr(
            Schema.Number.pipe(Schema.between(0, 100, { message: () => "Expected a percentage from 0 to 100" }))
          )
        ),
        panicThreshold: Schema.optional(
          Schema.UndefinedOr(
            Schema.Number.pipe(Schema.between(0, 1, { message: () => "Expected a share from 0 to 1" }))
          )
        )
      })
    )
  ),
  maxAttempts: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  retryBudget: Schema.optional(Schema.UndefinedOr(Schema.Object)),
  rateLimitCooldown: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  deadline: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  latencyWeight: Schema.optional(Schema.UndefinedOr(Share)),
  classify: Schema.optional(Schema.UndefinedOr(Schema.declare((u): u is Function => typeof u === "function"))),
  contentFilteredChain: Schema.optional(Schema.UndefinedOr(Schema.Array(Schema.NonEmptyTrimmedString))),
  eventBufferSize: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt))
}).pipe(
  Schema.filter((options) => {
    const issues: Array<Schema.FilterIssue> = []
    const seen = new Set<string>()
    const domains = options.domains ?? {}
    ;(options.providers ?? []).forEach((provider, index) => {
      if (seen.has(provider.name)) {
        issues.push({
          path: ["providers", index, "name"],
          message: `Expected a unique name; "${provider.name}" is taken`
        })
      }
      seen.add(provider.name)
      ;(provider.domains ?? []).forEach((domain, at) => {
        if (!(domain in domains)) {
          issues.push({
            path: ["providers", index, "domains", at],
            message: `Expected a domain declared in domains; "${domain}" is not`
          })
        }
      })
    })
    ;(options.contentFilteredChain ?? []).forEach((name, index) => {
      if (!seen.has(name)) {
        issues.push({ path: ["contentFilteredChain", index], message: `Expected a provider's name; "${name}" is none` })
      }
    })
    return issues.length === 0 ? true : issues
  })
)

const decodeOptions = InvalidOptions.decode("Router", OptionsSchema)
const decodeProvider = InvalidOptions.decode("Router provider", ProviderSchema)

const millisOf = (input: Duration.DurationInput) => Duration.toMillis(Duration.decode(input))

const isBudget = (value: unknown): value is Retry.RetryBudget =>
  typeof value === "object" && value !== null && "tryRetry" in value && "recordRequest" in value

export const make = (
  options: Router.Options
): Effect.Effect<Router.RouterShape, InvalidOptions.InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function* () {
    const decoded = yield* decodeOptions(options)
    const name = decoded.name
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const draw = Strategy.makeDraw(yield* Random.nextInt)
    const strategy = Strategy.make(decoded.strategy ?? "leastOutstanding", draw, {
      headroom: (provider) => {
        const domains = provider.domains
        if (domains.length === 0) return Effect.succeed(1)
        const at = now()
        if (domains.length === 1) return headroom(domains[0]!, at)
        return Effect.map(
          Effect.forEach(domains, (domain) => headroom(domain, at)),
          (shares) => Math.min(...shares)
        )
      }
    })
    const affinity =
      decoded.affinity === undefined
        ? undefined
        : Affinity.make({
            virtualNodes: decoded.affinity.virtualNodes ?? 100,
            loadFactor: decoded.affinity.loadFactor ?? 1.25
          })
    const ejection = decoded.ejection ?? {}
    const outlier = Outlier.make(
      {
        consecutiveFailures: ejection.consecutiveFailures ?? 5,
        failureRate: ejection.failureRate,
        minimumVolume: ejection.minimumVolume ?? 20,
        window: ejection.window ?? 100,
        baseEjectionMillis: millisOf(ejection.baseEjectionTime ?? Duration.seconds(30)),
        maxEjectionMillis: millisOf(ejection.maxEjectionTime ?? Duration.seconds(300)),
        jitterMillis: millisOf(ejection.jitter ?? 0),
        maxEjectionPercent: ejection.maxEjectionPercent ?? 50,
        panicThreshold: ejection.panicThreshold ?? 0.5
      },
      draw
    )
    const maxAttempts = decoded.maxAttempts ?? 3
    const budget = isBudget(options.retryBudget)
      ? options.retryBudget
      : yield* Retry.makeBudget(options.retryBudget ?? { ratio: 0.2, minRetries: 10 })
    const cooldownMillis = millisOf(decoded.rateLimitCooldown ?? Duration.seconds(1))
    const routerDeadline = decoded.deadline === undefined ? undefined : millisOf(decoded.deadline)
    const latencyWeight = decoded.latencyWeight ?? 0.3
    const classifyError = options.classify ?? Signals.classify
    const contentFilteredChain = decoded.contentFilteredChain ?? []
    const metrics = makeMetrics(name)
    const events = yield* EventHub.make<Router.RouterEvent>(decoded.eventBufferSize ?? 1024)

    const domains = new Map<string, QuotaDomain>()
    for (const [domainName, domain] of Object.entries(options.domains ?? {})) {
      domains.set(domainName, new QuotaDomain(domainName, domain.limiter, domain.key ?? domainName))
    }

    const emit = (event: () => Router.RouterEvent) => {
      if (events.observed()) events.offer(event())
    }
    /** The router's own fibers (health checks), interrupted with its scope. */
    const fork = yield* FiberSet.makeRuntime<never, void, never>()

    // Selection reads the registry only when a call is made, after both exist.
    const selection = Selection.make({
      router: name,
      now,
      generation: () => registry.current(),
      strategy,
      affinity,
      inFlightTotal: () => registry.inFlightTotal(),
      outlier,
      returned: (provider, at) =>
        emit(() => ({ _tag: "Returned", router: name, at, provider: provider.name, reason: "EjectionEnded" }))
    })

    const adaptive = Adaptive.make({
      router: name,
      now,
      latencyWeight,
      classify: classifyError,
      changed: (provider, from, to, reason) =>
        emit(() => ({ _tag: "ConcurrencyChanged", router: name, at: now(), provider: provider.name, from, to, reason }))
    })

    const health = HealthCheck.make({
      router: name,
      now,
      fork,
      probed: (provider, passed) =>
        emit(() => ({ _tag: "Probed", router: name, at: now(), provider: provider.name, passed })),
      failed: (provider) => unavailable(provider),
      returned: (provider, at) => {
        // Its ejection is over: no longer the selection's concern (this clears it there).
        selection.leftPool(provider)
        emit(() => ({ _tag: "Returned", router: name, at, provider: provider.name, reason: "Probe" }))
      }
    })

    const registry = Registry.make(
      name,
      (provider, change, generation) => {
        // A provider that stops taking work is no longer the selection's concern, nor its health check's.
        if (change === "Draining" || change === "Replaced") {
          selection.leftPool(provider)
          health.stop(provider)
        }
        if (change === "Added") health.start(provider)
        if (change === "Replaced") {
          const replacement = registry.get(provider.name)
          if (replacement !== undefined) health.start(replacement)
        }
        emit(() => ({ _tag: "ProviderChanged", router: name, at: now(), provider: provider.name, change, generation }))
      },
      (provider) => metrics.of(provider).inFlight(provider.inFlight)
    )

    const entryOf = (provider: Router.ProviderOptions): ProviderEntry | RouterError => {
      const memberOf: Array<QuotaDomain> = []
      for (const domainName of provider.domains ?? []) {
        const domain = domains.get(domainName)
        if (domain === undefined) {
          return new RouterError({ router: name, reason: "UnknownDomain", provider: provider.name, domain: domainName })
        }
        memberOf.push(domain)
      }
      return new ProviderEntry(
        provider.name,
        provider.executor,
        memberOf,
        provider.key ?? memberOf[0]?.key ?? "default",
        provider.weight ?? 1,
        provider.tier ?? 0,
        provider.contextWindow
      )
    }

    /** Its opt-in features, from its decoded options, before it takes work. */
    const prepare = (entry: ProviderEntry, provider: typeof ProviderSchema.Type): Effect.Effect<void> => {
      const check = provider.healthCheck
      if (check !== undefined) {
        health.register(entry, {
          probe: check.probe,
          healthyMillis: millisOf(check.healthyInterval ?? HealthCheck.DEFAULT_HEALTHY_INTERVAL),
          failingMillis: millisOf(check.failingInterval ?? HealthCheck.DEFAULT_FAILING_INTERVAL),
          timeoutMillis: millisOf(check.timeout ?? HealthCheck.DEFAULT_TIMEOUT)
        })
      }
      const aimd = provider.adaptiveConcurrency
      if (aimd === undefined) return Effect.void
      return adaptive.register(entry, {
        floor: aimd.floor ?? 1,
        ceiling: aimd.ceiling,
        requestsPerSecond:
          aimd.requestLimit === undefined
            ? undefined
            : aimd.requestLimit.limit / (millisOf(aimd.requestLimit.interval) / 1000),
        decrease: aimd.decrease ?? 0.5
      })
    }

    const add = (provider: Router.ProviderOptions) =>
      Effect.flatMap(decodeProvider(provider), (decodedProvider) => {
        const entry = entryOf(provider)
        if (entry instanceof RouterError) return Effect.fail(entry)
        return Effect.zipRight(prepare(entry, decodedProvider), registry.add(entry))
      })

    const replace = (provider: Router.ProviderOptions) =>
      Effect.flatMap(decodeProvider(provider), (decodedProvider) => {
        const entry = entryOf(provider)
        if (entry instanceof RouterError) return Effect.fail(entry)
        return Effect.zipRight(prepare(entry, decodedProvider), registry.replace(entry))
      })

    for (const [index, provider] of (options.providers ?? []).entries()) {
      const entry = entryOf(provider)
      // The options' Schema checked every name: neither can fail here.
      if (entry instanceof RouterError) continue
      yield* prepare(entry, decoded.providers![index]!)
      yield* Effect.ignore(registry.add(entry))
    }

    // ---- signals ----------------------------------------------------------------

    const ejectedCount = (at: number) => {
      let ejected = 0
      const active = registry.current().active
      for (const provider of active) if (provider.isEjected(at)) ejected++
      return { pool: active.length, ejected }
    }

    const succeeded = (provider: ProviderEntry, latencyMillis: number) => {
      outlier.success(provider)
      provider.ewmaMillis =
        provider.ewmaMillis === undefined
          ? latencyMillis
          : provider.ewmaMillis + latencyWeight * (latencyMillis - provider.ewmaMillis)
      metrics.of(provider).call("success")
    }

    const rateLimited = (provider: ProviderEntry, retryAfterMillis: number | undefined): Effect.Effect<void> => {
      const at = now()
      const wait = retryAfterMillis ?? cooldownMillis
      const until = at + wait
      return Effect.forEach(
        provider.domains,
        (domain) => {
          if (domain.coolDown(until)) {
            metrics.cooldown(domain.name)
            emit(() => ({
              _tag: "DomainCooledDown",
              router: name,
              at,
              domain: domain.name,
              provider: provider.name,
              until
            }))
          }
          return Effect.ignore(domain.limiter.penalize(wait, domain.keyOptions))
        },
        { discard: true }
      )
    }

    const unavailable = (provider: ProviderEntry) => {
      const at = now()
      const { pool, ejected } = ejectedCount(at)
      const wasEjecting = provider.ejectionReason !== undefined
      const verdict = outlier.failure(provider, at, pool, ejected)
      if (verdict._tag === "Ejected") {
        if (!wasEjecting) selection.ejected()
        health.ejected(provider)
        metrics.of(provider).ejected()
        emit(() => ({
          _tag: "Ejected",
          router: name,
          at,
          provider: provider.name,
          reason: verdict.reason,
          until: verdict.until,
          ejections: verdict.ejections
        }))
      } else if (verdict._tag === "Spared") {
        emit(() => ({
          _tag: "EjectionSpared",
          router: name,
          at,
          provider: provider.name,
          reason: verdict.reason,
          ejected: verdict.ejected,
          allowed: verdict.allowed
        }))
      }
    }

    // ---- a call -------------------------------------------------------------------

    /**
     * A call's hops. The generator function is made once per router, not per
     * call: V8 makes a generator function's closure far more slowly than a
     * plain one (microseconds, as much as the rest of a hop).
     */
    function* hops<A, E, R>(
      call: (route: Router.Route) => Effect.Effect<A, E, R>,
      submitOptions: Router.SubmitOptions<E, A> | undefined
    ) {
      const startedAt = now()
      const deadlineMillis = submitOptions?.deadline === undefined ? routerDeadline : millisOf(submitOptions.deadline)
      const deadlineAt = deadlineMillis === undefined ? undefined : startedAt + deadlineMillis
      const wants: Selection.Wants = {
        tried: Selection.noneTried,
        contextAtLeast: submitOptions?.contextTokens,
        contextAbove: undefined,
        only: undefined,
        avoidDomains: undefined,
        aboveTier: undefined,
        affinityKey: submitOptions?.affinityKey
      }
      yield* budget.recordRequest
      let hop = 0
      while (true) {
        const provider = yield* selection.select(wants, submitOptions?.cost, deadlineAt)
        hop++
        const route: Router.Route = {
          provider: provider.name,
          domains: provider.domainNames,
          tier: provider.tier,
          contextWindow: provider.contextWindow,
          hop
        }
        const dispatchedAt = now()
        const left = deadlineAt === undefined ? undefined : Math.max(1, deadlineAt - dispatchedAt)
        const attempts: Adaptive.Attempts = { startedAtCut: undefined }
        const sent = () =>
          provider.executor.submit(adaptive.observe(provider, call(route), attempts), {
            cost: submitOptions?.cost,
            settle: submitOptions?.settle,
            priority: submitOptions?.priority,
            timeout: submitOptions?.timeout,
            deadline: left,
            key: provider.key
          })
        const result = yield* Effect.either(registry.dispatch(provider, sent))
        if (Either.isRight(result)) {
          if (result.right === Registry.NotTaken) {
            // Drained or removed since it was chosen: choose again; this was no hop.
            hop--
            continue
          }
          const value = result.right as A
          const tokens = submitOptions?.outputTokens?.(value)
          const latency = now() - dispatchedAt
          succeeded(provider, tokens !== undefined && tokens > 0 ? latency / tokens : latency)
          return value
        }
        const error = result.left
        yield* adaptive.timedOut(provider, error, attempts)
        const signal = classifyError(error)
        metrics.of(provider).call(signal._tag)
        wants.tried = new Set([...wants.tried, provider.name])
        switch (signal._tag) {
          case "RateLimited":
            yield* rateLimited(provider, signal.retryAfterMillis)
            wants.avoidDomains = new Set([...(wants.avoidDomains ?? []), ...provider.domains])
            break
          case "Unavailable":
            unavailable(provider)
            wants.aboveTier = provider.tier
            break
          case "Refused":
            wants.aboveTier = provider.tier
            break
          case "ContextTooLong":
            wants.contextAbove = Math.max(wants.contextAbove ?? 0, provider.contextWindow ?? 0)
            break
          case "ContentFiltered":
            wants.only = new Set(contentFilteredChain)
            break
          case "Final":
            return yield* Effect.fail(error)
        }
        if (hop >= maxAttempts) return yield* Effect.fail(error)
        if (deadlineAt !== undefined && now() >= deadlineAt) return yield* Effect.fail(error)
        // The fallback is checked before the hop: with nowhere to go, the call fails with its own error.
        if (!selection.hasCandidate(wants)) return yield* Effect.fail(error)
        if (!(yield* budget.tryRetry)) return yield* Effect.fail(error)
        emit(() => ({ _tag: "Fallback", router: name, at: now(), provider: provider.name, signal: signal._tag, hop }))
      }
    }

    const submit = <A, E, R>(
      call: (route: Router.Route) => Effect.Effect<A, E, R>,
      submitOptions?: Router.SubmitOptions<E, A>
    ): Effect.Effect<A, E | Router.SubmitError, R> => Effect.gen(() => hops(call, submitOptions))

    // ---- observation ----------------------------------------------------------------

    const snapshot = Effect.flatMap(
      budget.state,
      (retryBudget): Effect.Effect<Router.Snapshot> =>
        Effect.sync(() => {
          const at = now()
          const generation = registry.current()
          const { pool, ejected } = ejectedCount(at)
          return {
            router: name,
            generation: generation.number,
            panic: outlier.panics(pool, ejected),
            providers: registry.all().map((provider): Router.ProviderSnapshot => {
              const isEjected = provider.isEjected(at)
              return {
                name: provider.name,
                state: provider.status === "draining" ? "draining" : isEjected ? "ejected" : "active",
                domains: provider.domains.map((domain) => domain.name),
                tier: provider.tier,
                weight: provider.weight,
                contextWindow: provider.contextWindow,
                inFlight: provider.inFlight,
                consecutiveFailures: provider.consecutiveFailures,
                ejections: provider.ejections,
                ejection:
                  isEjected && provider.ejectionReason !== undefined
                    ? { reason: provider.ejectionReason, until: provider.ejectedUntil }
                    : undefined,
                latencyMillis: provider.ewmaMillis,
                concurrency: adaptive.snapshot(provider),
                healthCheck: health.snapshot(provider)
              }
            }),
            domains: [...domains.values()].map((domain) => ({
              name: domain.name,
              key: domain.key,
              cooldownUntil: domain.cooldownUntil > at ? domain.cooldownUntil : undefined
            })),
            retryBudget
          }
        })
    )

    return {
      name,
      submit,
      add,
      drain: registry.drain,
      remove: registry.remove,
      replace,
      snapshot,
      events: events.stream,
      subscribe: events.subscribe
    } satisfies Router.RouterShape
  })

export const submitWith = <A, E, R, I, S extends Router.RouterShape>(
  tag: Context.Tag<I, S>,
  call: (route: Router.Route) => Effect.Effect<A, E, R>,
  options?: Router.SubmitOptions<E, A>
): Effect.Effect<A, E | Router.SubmitError, R | I> => Effect.flatMap(tag, (router) => router.submit(call, options))
