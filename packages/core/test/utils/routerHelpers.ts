/**
 * Shared pieces of the Router tests: providers whose behaviour a test
 * scripts per call, quota domains over memory limiters, and an error that
 * speaks the `reason` vocabulary of `ApiError` and `ModelError`.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Executor from "../../src/Executor.js"
import * as RateLimiter from "../../src/RateLimiter.js"
import * as RateLimiterStore from "../../src/RateLimiterStore.js"
import * as Router from "../../src/Router.js"

export class Upstream extends Schema.TaggedError<Upstream>()("Upstream", {
  reason: Schema.Literal("RateLimited", "ServerError", "ClientError", "ContextTooLong", "ContentFiltered"),
  provider: Schema.String,
  retryAfterMillis: Schema.optional(Schema.Number)
}) {}

export const fail = (reason: Upstream["reason"], provider: string, retryAfterMillis?: number) =>
  Effect.fail(new Upstream({ reason, provider, ...(retryAfterMillis === undefined ? {} : { retryAfterMillis }) }))

/** A domain's limiter: `limit` requests per `interval`, a burst of `capacity`. */
export const domainLimiter = (limit: number, interval: Duration.DurationInput, capacity = limit) =>
  RateLimiter.make({ limits: { requests: { limit, interval, capacity, windowMargin: 0 } } }).pipe(
    Effect.provide(RateLimiterStore.layerMemory())
  )

/** A provider with an executor of its own, over `limiter` when it belongs to a domain. */
export const provider = (
  name: string,
  extra: Omit<Router.ProviderOptions, "name" | "executor"> & { readonly limiter?: RateLimiter.RateLimiterShape } = {}
): Effect.Effect<Router.ProviderOptions, never, Scope.Scope> =>
  Effect.map(
    Effect.orDie(
      Executor.make({
        name,
        concurrency: 100,
        ...(extra.limiter === undefined ? {} : { rateLimiter: extra.limiter }),
        spans: false
      })
    ),
    (executor) => {
      const { limiter: _, ...rest } = extra
      return { name, executor, ...rest }
    }
  )

/** Answers with the provider's name, so a test sees where each call went. */
export const whereItWent = (route: Router.Route) => Effect.succeed(route.provider)

/** What a scripted call does on a provider: answer, or fail with an upstream reason. */
export type Behaviour = "ok" | Upstream["reason"]

/** A call whose outcome on each provider the test sets; it records where each call went. */
export const scripted = (behaviour: Record<string, Behaviour>, log: Array<string>) => (route: Router.Route) =>
  Effect.suspend(() => {
    log.push(route.provider)
    const what = behaviour[route.provider] ?? "ok"
    return what === "ok" ? whereItWent(route) : fail(what, route.provider)
  })

/**
 * A round-robin Router over two quota domains: `a1` and `a2` share orgA's limiter, `b1` has orgB's
 * (1,000 requests a second each), with `extra` options on top.
 */
export const twoOrgs = (name: string, extra: Partial<Router.Options> = {}) =>
  Effect.gen(function* () {
    const orgA = yield* domainLimiter(1_000, "1 second")
    const orgB = yield* domainLimiter(1_000, "1 second")
    const router = yield* Router.make({
      name,
      strategy: "roundRobin",
      domains: { orgA: { limiter: orgA }, orgB: { limiter: orgB } },
      providers: [
        yield* provider("a1", { domains: ["orgA"], limiter: orgA }),
        yield* provider("a2", { domains: ["orgA"], limiter: orgA }),
        yield* provider("b1", { domains: ["orgB"], limiter: orgB })
      ],
      ...extra
    })
    return { router, orgA, orgB }
  })
