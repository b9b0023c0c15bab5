/**
 * The routed Model's machinery: one Router over several endpoints, each a
 * provider with its own Executor (its concurrency, queue, retry, breaker and
 * deadline from its `EndpointConfig`) and a plain ApiClient (one attempt;
 * its rate-limit headers still fed to the provider's limiter). Every call
 * goes through the Router, which reserves the call's tokens on the chosen
 * provider's Executor, and falls back by what the failure means.
 *
 * - **Quota domains.** A provider's limits (its endpoint's `requests` and
 *   `tokens`) are a quota domain of its own, named after it; providers that
 *   draw on one organisation's quota name a shared `domain`, declared with
 *   its limits in `domains`: one limiter, one key, for all of them. A 429
 *   cools the whole domain, and the Router prefers another.
 * - **Signals.** The Router reads each failure as the Model will report it:
 *   the ApiClient's error is first mapped to a `ModelError` (the same mapping
 *   as a single-endpoint Model), so a 429 is `RateLimited` (the domain), a
 *   5xx, timeout or broken connection `ProviderUnavailable` (ejection), a
 *   400 `context_length_exceeded` `ContextTooLong` (a provider with a larger
 *   declared `contextWindow`), a content-policy refusal — or an answer whose
 *   every choice was filtered — `ContentFiltered` (the
 *   `contentFilteredChain`), and the caller's own mistakes final.
 * - **Retries.** A provider retries only when its endpoint names a `retry`
 *   policy; otherwise each provider makes one attempt and the Router's
 *   fallback to another provider is the retry.
 * - **Context.** A call declares the context it needs, its estimated prompt
 *   plus the output it asks for (`max_tokens`; without one, the prompt
 *   alone): providers with a smaller declared `contextWindow` are passed over.
 * - **Errors.** What reaches the caller is a `ModelError` naming the
 *   provider that failed last; the Router's own (`NoAdmission`: no quota
 *   before the deadline → `RateLimited`; `ContextWindow` → `ContextTooLong`;
 *   `NoProvider` → `ProviderUnavailable` `NoProvider`) name the router.
 *
 * Installments (`maxRequestTokens`) are not offered: the Router's `submit`
 * takes none. A request with no explicit maximum output whose estimate
 * exceeds the smallest token capacity among the providers is charged that
 * capacity (as a single-endpoint Model charges its own).
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import { Executor, InvalidOptions, RateLimiter, RateLimiterStore, Router } from "@sluice/core"
import { ApiClient, type ApiError, type Auth, HealthProbe } from "@sluice/http"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Model from "../Model.js"
import * as TokenEstimator from "../TokenEstimator.js"
import { type CallContext, fromCallError } from "./errorMapping.js"
import { callOptionsOf, DEFAULT_TOKEN_LIMIT, decodeOptions, type Send, settlementOf, shapeOf } from "./model.js"
import { ModelError } from "./modelError.js"

const DEFAULT_NAME = "models"

const ProviderSchema = Schema.Struct({
  // The endpoint is checked by the ApiClient (a bad one fails naming its field).
  endpoint: Schema.Object,
  clientOptions: Schema.optional(Schema.UndefinedOr(Schema.Object)),
  domain: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyTrimmedString)),
  weight: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  tier: Schema.optional(Schema.UndefinedOr(Schema.NonNegativeInt)),
  contextWindow: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  model: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyTrimmedString)),
  // The Router checks their fields (a bad one fails naming it).
  adaptiveConcurrency: Schema.optional(Schema.UndefinedOr(Schema.Object)),
  healthCheck: Schema.optional(Schema.UndefinedOr(Schema.Union(Schema.Boolean, Schema.Object)))
})

const RoutedSchema = Schema.Struct({
  name: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyTrimmedString)),
  providers: Schema.NonEmptyArray(ProviderSchema),
  domains: Schema.optional(
    Schema.UndefinedOr(
      Schema.Record({
        key: Schema.NonEmptyTrimmedString,
        value: Schema.Struct({
          requests: Schema.optional(Schema.UndefinedOr(Schema.Object)),
          tokens: Schema.optional(Schema.UndefinedOr(Schema.Object))
        })
      })
    )
  )
}).pipe(
  Schema.filter((options) => {
    const issues: Array<Schema.FilterIssue> = []
    const domains = options.domains ?? {}
    options.providers.forEach((provider, index) => {
      if (provider.domain === undefined) return
      if (!(provider.domain in domains)) {
        issues.push({
          path: ["providers", index, "domain"],
          message: `Expected a domain declared in domains (with its limits); "${provider.domain}" is not`
        })
      }
    })
    return issues
  })
)

const decodeRouted = InvalidOptions.decode("Model", RoutedSchema)

const invalidOption = (issues: string) => new InvalidOptions.InvalidOptionsError({ component: "Model", issues })

/** One provider, built. */
interface Built {
  readonly name: string
  readonly client: ApiClient.ApiClientShape
  readonly executor: Executor.ExecutorShape
  /** Its limiter's key: its domain's name (its own, or the shared one). */
  readonly key: string
  readonly domain: string | undefined
  readonly limiter: RateLimiter.RateLimiterShape | undefined
  readonly model: string | undefined
  readonly healthCheck: Router.HealthCheckOptions | undefined
  /** The request rate its admissions are held to (its own limit or its shared domain's), if there is one. */
  readonly requestLimit: RateLimiter.LimitOptions | undefined
  readonly options: Model.RoutedProvider
}

/**
 * A provider's adaptive concurrency: the options as given, with the request
 * limit it is held to filled in when they name neither a `ceiling` nor a
 * `requestLimit`, so that the ceiling comes from the provider's rate limit
 * (Little's law, `Router.AdaptiveConcurrencyOptions`) without repeating it.
 */
const adaptiveOf = (
  adaptive: Router.AdaptiveConcurrencyOptions | undefined,
  requestLimit: RateLimiter.LimitOptions | undefined
): Router.AdaptiveConcurrencyOptions | undefined =>
  adaptive === undefined ||
  requestLimit === undefined ||
  adaptive.ceiling !== undefined ||
  adaptive.requestLimit !== undefined
    ? adaptive
    : { ...adaptive, requestLimit: { limit: requestLimit.limit, interval: requestLimit.interval } }

/** The Router reads a failure as the Model reports it. */
const classify = (error: unknown): Router.Signal => {
  if (Predicate.isTagged(error, "ApiError") || Predicate.isTagged(error, "AuthFailed")) {
    return Router.classify(
      fromCallError(error as ApiError.ApiError | Auth.AuthFailed, { provider: "", model: "", operation: "chat" })
    )
  }
  return Router.classify(error)
}

/** The Router's own failure, as the Model's. */
const fromRouterError = (error: Router.RouterError, context: CallContext, contextTokens: number): ModelError => {
  const common = {
    provider: error.router,
    model: context.model,
    operation: context.operation,
    detail: error.message,
    cause: error
  }
  switch (error.reason) {
    case "NoAdmission":
      return ModelError.rateLimited({
        ...common,
        ...(error.earliestMillis === undefined ? {} : { retryAfterMillis: error.earliestMillis }),
        retryable: true
      })
    case "ContextWindow":
      return ModelError.contextTooLong({
        ...common,
        ...(error.largestWindow === undefined ? {} : { maxContextTokens: error.largestWindow }),
        requestedTokens: contextTokens,
        ...(context.estimatedPromptTokens === undefined ? {} : { estimatedPromptTokens: context.estimatedPromptTokens })
      })
    default:
      return ModelError.providerUnavailable({ ...common, kind: "NoProvider", retryable: false })
  }
}

export const makeRouted = (
  options: Model.RoutedOptions
): Effect.Effect<Model.RoutedModel, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    yield* decodeRouted({ name: options.name, providers: options.providers, domains: options.domains })
    yield* decodeOptions(callOptionsOf(options))
    const name = options.name ?? DEFAULT_NAME
    const tokenLimit = options.tokenLimit ?? DEFAULT_TOKEN_LIMIT
    const store = yield* Effect.serviceOption(RateLimiterStore.RateLimiterStore)
    const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.provideServiceEffect(
        effect,
        RateLimiterStore.RateLimiterStore,
        Option.isSome(store) ? Effect.succeed(store.value) : RateLimiterStore.makeMemory()
      )

    // One limiter per quota domain: a shared one's from `domains`, a provider's own from its endpoint's limits.
    const shared = new Map<string, RateLimiter.RateLimiterShape>()
    for (const [domain, limits] of Object.entries(options.domains ?? {})) {
      const specs: Record<string, RateLimiter.LimitOptions> = {}
      if (limits.requests !== undefined) specs.requests = limits.requests
      if (limits.tokens !== undefined) specs.tokens = limits.tokens
      if (Object.keys(specs).length === 0)
        return yield* invalidOption(`["domains", "${domain}"] Expected requests or tokens limits`)
      shared.set(domain, yield* withStore(RateLimiter.make({ name: `domain:${domain}`, limits: specs })))
    }

    const built: Array<Built> = []
    for (const [index, provider] of options.providers.entries()) {
      const endpoint = provider.endpoint
      const endpointLimits = endpoint.limits
      if (
        provider.domain !== undefined &&
        (endpointLimits?.requests !== undefined || endpointLimits?.tokens !== undefined)
      ) {
        return yield* invalidOption(
          `["providers", ${index}, "endpoint", "limits"] A member of quota domain "${provider.domain}" draws on the domain's limits: declare requests and tokens in domains.${provider.domain}, not on its endpoint`
        )
      }
      let limiter: RateLimiter.RateLimiterShape | undefined
      let domain: string | undefined
      if (provider.domain !== undefined) {
        domain = provider.domain
        limiter = shared.get(provider.domain)
      } else if (endpointLimits?.requests !== undefined || endpointLimits?.tokens !== undefined) {
        const specs: Record<string, RateLimiter.LimitOptions> = {}
        if (endpointLimits.requests !== undefined) specs.requests = endpointLimits.requests
        if (endpointLimits.tokens !== undefined) specs.tokens = endpointLimits.tokens
        domain = endpoint.name
        if (shared.has(domain)) {
          return yield* invalidOption(
            `["providers", ${index}, "endpoint", "name"] "${domain}" names a shared domain too; a provider's own domain takes its name`
          )
        }
        limiter = yield* withStore(RateLimiter.make({ name: `endpoint:${endpoint.name}`, limits: specs }))
      }
      const client = yield* ApiClient.make(endpoint, {
        ...(provider.clientOptions ?? {}),
        executor: false,
        ...(limiter === undefined ? {} : { rateLimiter: limiter })
      })
      const executor = yield* Executor.make({
        name: endpoint.name,
        concurrency: endpointLimits?.concurrency ?? 16,
        queueCapacity: endpointLimits?.queueCapacity,
        rateLimiter: limiter,
        retry: endpoint.retry,
        breaker:
          endpoint.breaker === undefined
            ? undefined
            : "protect" in endpoint.breaker
              ? endpoint.breaker
              : { classify: ApiClient.classify, ...endpoint.breaker },
        deadline: endpoint.deadline,
        spans: false
      })
      // `true`, or options without a probe: the endpoint's models listed with its credentials.
      const healthCheck = provider.healthCheck
      const probed: Router.HealthCheckOptions | undefined =
        healthCheck === undefined || healthCheck === false
          ? undefined
          : healthCheck !== true && healthCheck.probe !== undefined
            ? { ...healthCheck, probe: healthCheck.probe }
            : {
                ...(healthCheck === true ? {} : healthCheck),
                probe: yield* HealthProbe.make(endpoint, {
                  ...(provider.clientOptions?.auth === undefined ? {} : { auth: provider.clientOptions.auth })
                })
              }
      built.push({
        name: endpoint.name,
        client,
        executor,
        key: domain ?? "default",
        domain,
        limiter,
        model: provider.model,
        healthCheck: probed,
        requestLimit:
          provider.domain === undefined ? endpointLimits?.requests : options.domains?.[provider.domain]?.requests,
        options: provider
      })
    }

    // Tokens are reserved on every provider or on none: the Router hands one cost to whichever it picks.
    const withTokens = built.filter((provider) => provider.limiter?.limitNames.includes(tokenLimit) === true)
    const accounting = withTokens.length > 0
    if ((accounting || options.tokenLimit !== undefined) && withTokens.length < built.length) {
      const index = built.findIndex((provider) => !withTokens.includes(provider))
      return yield* invalidOption(
        `["providers", ${index}] "${built[index]!.name}" has no "${tokenLimit}" limit while ${
          accounting ? `"${withTokens[0]!.name}" has one` : "tokenLimit names it"
        }: a routed Model reserves tokens on every provider or on none`
      )
    }
    /** The smallest token capacity among the providers: what a request with no explicit maximum is charged at most. */
    let smallestCapacity: number | undefined
    if (accounting) {
      for (const provider of built) {
        const buckets = yield* Effect.orElseSucceed(provider.limiter!.state({ key: provider.key }), () => [])
        const capacity = buckets.find((bucket) => bucket.name === tokenLimit)?.capacity
        if (capacity !== undefined) smallestCapacity = Math.min(smallestCapacity ?? capacity, capacity)
      }
    }

    const byName = new Map(built.map((provider) => [provider.name, provider]))
    const domains: Record<string, Router.DomainOptions> = {}
    for (const provider of built) {
      if (provider.domain !== undefined) domains[provider.domain] = { limiter: provider.limiter!, key: provider.domain }
    }
    const router = yield* Router.make({
      name,
      strategy: options.strategy,
      ejection: options.ejection,
      maxAttempts: options.maxAttempts,
      retryBudget: options.retryBudget,
      rateLimitCooldown: options.rateLimitCooldown,
      deadline: options.deadline,
      latencyWeight: options.latencyWeight,
      contentFilteredChain: options.contentFilteredChain,
      eventBufferSize: options.eventBufferSize,
      domains,
      classify,
      providers: built.map((provider) => ({
        name: provider.name,
        executor: provider.executor,
        key: provider.key,
        ...(provider.domain === undefined ? {} : { domains: [provider.domain] }),
        weight: provider.options.weight,
        tier: provider.options.tier,
        contextWindow: provider.options.contextWindow,
        adaptiveConcurrency: adaptiveOf(provider.options.adaptiveConcurrency, provider.requestLimit),
        healthCheck: provider.healthCheck
      }))
    })

    const settlement = settlementOf(tokenLimit)

    const send: Send = (call) =>
      Effect.suspend(() => {
        const total = TokenEstimator.total(call.estimate)
        const tokens =
          !call.explicitMaximum && smallestCapacity !== undefined && total > smallestCapacity
            ? Math.max(call.estimate.prompt, smallestCapacity)
            : total
        const contextTokens = call.estimate.prompt + (call.explicitMaximum ? call.estimate.maxOutput : 0)
        /** The provider of the latest hop: the one a failure is reported from. */
        let last = name
        return router
          .submit(
            (route) => {
              const provider = byName.get(route.provider)!
              last = provider.name
              const body =
                provider.model === undefined ? call.body : { ...(call.body as object), model: provider.model }
              const sent = provider.client.post(call.path, {
                schema: call.schema,
                body,
                key: provider.key,
                timeout: options.timeout
              })
              return call.check === undefined ? sent : Effect.flatMap(sent, call.check(provider.name))
            },
            {
              ...(accounting ? { cost: { [tokenLimit]: tokens }, settle: settlement(call.usedTokens) } : {}),
              priority: options.priority,
              contextTokens
            }
          )
          .pipe(
            Effect.mapError((error) =>
              error._tag === "ModelError"
                ? error
                : error._tag === "RouterError"
                  ? fromRouterError(error, call.context, contextTokens)
                  : fromCallError(error, { ...call.context, provider: last })
            )
          )
      })

    const state = (provider: string) => {
      const built = byName.get(provider)
      return built?.limiter === undefined ? Effect.succeed([]) : built.limiter.state({ key: built.key })
    }

    return { ...shapeOf(name, options, send), router, state }
  })
