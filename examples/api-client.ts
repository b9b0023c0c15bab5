/**
 * An ApiClient for an OpenAI-compatible endpoint, pointed at the embedded
 * MockProvider (a real local server that meters its callers at 60 requests
 * per minute). The client's own limit is higher, so the provider's headers
 * are what slow it down: after the provider says "0 remaining", queued calls
 * wait for its reset instead of each collecting a 429.
 *
 * Run: npx tsx examples/api-client.ts
 */
import { ApiClient } from "@sluice/http"
import { NodeHttpPool } from "@sluice/http-node"
import { MockProvider } from "@sluice/testing"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

export const ChatCompletion = Schema.Struct({
  choices: Schema.Array(Schema.Struct({ message: Schema.Struct({ content: Schema.String }) })),
  usage: Schema.Struct({ prompt_tokens: Schema.Number, completion_tokens: Schema.Number })
})

/** One chat completion, charged on the endpoint's token limit at its estimate. */
export const complete = (prompt: string) =>
  Effect.flatMap(ApiClient.ApiClient, (api) =>
    api.post("/chat/completions", {
      schema: ChatCompletion,
      body: { model: "mock-1", messages: [{ role: "user", content: prompt }], max_tokens: 64 },
      cost: { tokens: 64 + Math.ceil(prompt.length / 4) }
    })
  )

/** The client, for an endpoint at `baseUrl` (the provider's key comes from wherever you keep secrets), over a Node pool. */
export const clientFor = (baseUrl: string) =>
  ApiClient.layer({
    name: "mock-openai",
    baseUrl,
    auth: { _tag: "Bearer", token: Redacted.make("sk-example-key") },
    limits: {
      requests: { limit: 600, interval: "1 minute" },
      tokens: { limit: 100_000, interval: "1 minute" },
      concurrency: 4
    },
    retry: { maxAttempts: 4, base: "250 millis" }
  }).pipe(Layer.provide(NodeHttpPool.layer({ connections: 4 })))

/** The provider first, then a client pointed at it. */
export const ProviderAndClient = Layer.unwrapScoped(
  Effect.map(MockProvider.make({ rpm: 60, apiKeys: ["sk-example-key"] }), (provider) =>
    Layer.merge(Layer.succeed(MockProvider.MockProvider, provider), clientFor(provider.baseUrl))
  )
)

const program = Effect.gen(function* () {
  const answers = yield* Effect.forEach(["one", "two", "three"], complete, { concurrency: "unbounded" })
  for (const answer of answers) yield* Console.log(answer.choices[0]?.message.content)
  const provider = yield* MockProvider.MockProvider
  yield* Console.log(yield* provider.counters)
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program.pipe(Effect.provide(ProviderAndClient)))
}
