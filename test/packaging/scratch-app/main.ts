/**
 * The scratch app of the packaging check (test/packaging/scratchApp.test.ts): a plain Node program that
 * uses the installed @sluice/* tarballs as any user's app does. It composes a RateLimiter (memory store),
 * an ApiClient sharing that limiter over the Node pool, a Model over the ApiClient and an Executor for
 * the calls, against a MockProvider, then prints one JSON line of what happened. Compiled by tsc
 * (NodeNext) and run with plain `node`; also type-checked under moduleResolution "Bundler".
 */
import { Executor, RateLimiter, RateLimiterStore } from "@sluice/core"
import { ApiClient } from "@sluice/http"
import { NodeHttpPool } from "@sluice/http-node"
import { Model } from "@sluice/model"
import { MockProvider } from "@sluice/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** One limiter for the endpoint, in memory: hourly, so what the calls took is still missing when it is read. */
const Limits = RateLimiter.layer({
  name: "scratch",
  limits: {
    requests: { limit: 600, interval: "1 hour" },
    tokens: { limit: 2_000, interval: "1 hour" }
  }
}).pipe(Layer.provide(RateLimiterStore.layerMemory()))

/** The ApiClient for the provider at `baseUrl`, charging the shared limiter, over an undici pool. */
const Client = (baseUrl: string) =>
  Layer.unwrapEffect(
    Effect.map(RateLimiter.RateLimiter, (rateLimiter) =>
      ApiClient.layer({ name: "scratch", baseUrl, retry: { maxAttempts: 2 } }, { rateLimiter })
    )
  ).pipe(Layer.provide(NodeHttpPool.layer({ connections: 4 })))

/** Everything, over a MockProvider started first. */
const App = Layer.unwrapScoped(
  Effect.map(MockProvider.make(), (provider) =>
    Layer.mergeAll(
      Model.layerApiClient().pipe(Layer.provideMerge(Client(provider.baseUrl)), Layer.provideMerge(Limits)),
      Executor.layer({ name: "scratch-calls", concurrency: 2 }),
      Layer.succeed(MockProvider.MockProvider, provider)
    )
  )
)

const main = Effect.gen(function* () {
  const model = yield* Model.Model
  const answers = yield* Effect.forEach(
    ["one", "two", "three"],
    (prompt) =>
      Executor.submit(
        model.chat({ model: "mock-model", messages: [{ role: "user", content: prompt }], max_tokens: 16 })
      ),
    { concurrency: "unbounded" }
  )
  const limiter = yield* RateLimiter.RateLimiter
  const buckets = yield* limiter.state()
  const counters = yield* (yield* MockProvider.MockProvider).counters
  return {
    answers: answers.length,
    totalTokens: answers.map((answer) => answer.usage?.total_tokens ?? 0),
    served: counters.served,
    limits: buckets.map((bucket) => ({ name: bucket.name, capacity: bucket.capacity, available: bucket.available }))
  }
})

Effect.runPromise(Effect.scoped(Effect.provide(main, App))).then(
  (summary) => console.log(JSON.stringify(summary)),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
