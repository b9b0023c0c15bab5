/**
 * Several providers behind one call. Two deployments share one organisation's
 * quota (a domain: one limiter key), a third has a quota of its own, and a
 * backup waits in tier 1. Each provider is an Executor of its own; the
 * Router picks one per call, prefers a domain that can admit the call now,
 * and falls back by the failure's reason: a 429 moves the call to another
 * domain (and cools the whole domain down), a 5xx to the next tier, a prompt
 * too long to a provider with a larger context window.
 *
 * Run: npx tsx examples/router-providers.ts
 */
import { Executor, RateLimiter, RateLimiterStore, Router } from "@sluice/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

/** What a model API answers with, and how it fails (the `reason`s the Router reads). */
export interface Answer {
  readonly provider: string
  readonly text: string
  readonly usedTokens: number
}

export class CallFailed extends Schema.TaggedError<CallFailed>()("CallFailed", {
  reason: Schema.Literal("RateLimited", "ServerError", "ContextTooLong"),
  retryAfterMillis: Schema.optional(Schema.Number)
}) {}

/**
 * Stands in for each provider's API. Organisation A's quota is spent on the
 * server's side: its first call answers 429 with `Retry-After: 2 s`.
 */
export const makeCallModel = () => {
  let orgASpent = true
  return (route: Router.Route, prompt: string): Effect.Effect<Answer, CallFailed> => {
    if (route.domains.includes("org-a") && orgASpent) {
      orgASpent = false
      return Effect.fail(new CallFailed({ reason: "RateLimited", retryAfterMillis: 2_000 }))
    }
    return Effect.succeed({ provider: route.provider, text: `echo: ${prompt}`, usedTokens: 100 + prompt.length }).pipe(
      Effect.delay("50 millis")
    )
  }
}

const limits: Readonly<Record<string, RateLimiter.LimitOptions>> = {
  requests: { limit: 60, interval: "1 minute", capacity: 10 },
  tokens: { limit: 40_000, interval: "1 minute" }
}

/** The router and its providers, built in the layer's scope. */
export const makeRouter = Effect.gen(function* () {
  // One limiter per organisation; a provider's Executor charges its organisation's key.
  const orgA = yield* RateLimiter.make({ name: "org-a", limits })
  const orgB = yield* RateLimiter.make({ name: "org-b", limits })
  const provider = (name: string, rateLimiter: RateLimiter.RateLimiterShape | undefined) =>
    Executor.make({
      name,
      concurrency: 8,
      ...(rateLimiter === undefined ? {} : { rateLimiter }),
      timeout: "30 seconds"
    })
  return yield* Router.make({
    name: "models",
    strategy: "roundRobin",
    domains: { "org-a": { limiter: orgA }, "org-b": { limiter: orgB } },
    providers: [
      { name: "azure-east", executor: yield* provider("azure-east", orgA), domains: ["org-a"], contextWindow: 8_192 },
      { name: "azure-west", executor: yield* provider("azure-west", orgA), domains: ["org-a"], contextWindow: 8_192 },
      { name: "openai", executor: yield* provider("openai", orgB), domains: ["org-b"], contextWindow: 128_000 },
      { name: "backup", executor: yield* provider("backup", undefined), tier: 1 }
    ],
    ejection: { consecutiveFailures: 5, baseEjectionTime: "30 seconds", maxEjectionPercent: 50 },
    maxAttempts: 3,
    deadline: "2 minutes"
  })
}).pipe(Effect.provide(RateLimiterStore.layerMemory()))

/** The router as a service: `Router.submit` in the program below finds it in context. */
export const ModelsRouter = Layer.scoped(Router.Router, makeRouter)

/** One call: its cost reserved by whichever provider takes it, settled to what the answer used. */
export const ask = (callModel: ReturnType<typeof makeCallModel>, prompt: string) =>
  Router.submit((route) => callModel(route, prompt), {
    cost: { tokens: 1_000 },
    contextTokens: 1_000,
    settle: (exit) =>
      Exit.isSuccess(exit) ? Executor.Settlement.reconcile({ tokens: exit.value.usedTokens }) : Executor.Settlement.keep
  })

const program = Effect.gen(function* () {
  const callModel = makeCallModel()
  // The first call meets org-a's 429 and goes to openai; org-a cools down for 2 s, so openai takes the next ones.
  for (const prompt of ["one", "two", "three"]) {
    const answer = yield* ask(callModel, prompt)
    yield* Console.log(`${answer.provider}: ${answer.text}`)
  }
  const router = yield* Router.Router
  yield* Console.log((yield* router.snapshot).domains)
  // After the cooldown org-a's deployments take their turns again.
  yield* Effect.sleep("2 seconds")
  for (const prompt of ["four", "five", "six"]) {
    const answer = yield* ask(callModel, prompt)
    yield* Console.log(`${answer.provider}: ${answer.text}`)
  }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program.pipe(Effect.provide(ModelsRouter)))
}
