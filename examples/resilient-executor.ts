/**
 * An Executor that survives a flaky provider: failed calls are retried with
 * full-jitter backoff (a 429's `retryAfter` is respected, up to a ceiling),
 * retries are held to 20% of recent requests, a circuit breaker stops calling
 * after a run of failures and lets one probe through every so often (longer
 * after each failed probe), each attempt has a timeout and each request a
 * deadline. Embedding calls get their own, more patient settings.
 *
 * Run: npx tsx examples/resilient-executor.ts
 */
import { Executor, Retry } from "@sluice/core"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"

/**
 * The provider's error, as the house style has it: one tagged error refined
 * by a `reason`. A 429 looks to the retry policy like this: `retryable`, with
 * a `retryAfter`.
 */
export class ProviderError extends Schema.TaggedError<ProviderError>("examples/ProviderError")("ProviderError", {
  reason: Schema.Literal("RateLimited"),
  retryAfterMillis: Schema.Number
}) {
  get retryable(): boolean {
    return true
  }
  get retryAfter(): Duration.Duration {
    return Duration.millis(this.retryAfterMillis)
  }
  override get message(): string {
    return `the provider was rate limited; retry after ${this.retryAfterMillis} ms`
  }
}

/** A provider that answers 429 on every third call. */
export const flakyProvider = () => {
  let calls = 0
  return (prompt: string) =>
    Effect.suspend(() =>
      ++calls % 3 === 0
        ? Effect.fail(new ProviderError({ reason: "RateLimited", retryAfterMillis: 500 }))
        : Effect.succeed(`answer to ${prompt}`)
    ).pipe(Effect.delay("50 millis"))
}

export const ResilientExecutor = Layer.unwrapEffect(
  Effect.map(Retry.makeBudget({ ratio: 0.2, minRetries: 5, window: "10 seconds" }), (budget) =>
    Executor.layer({
      name: "provider",
      concurrency: 4,
      limits: { requests: { limit: 600, interval: "1 minute", capacity: 10 } },
      timeout: "10 seconds",
      deadline: "1 minute",
      retry: { maxAttempts: 4, base: "200 millis", maxDelay: "5 seconds", retryAfterCeiling: "30 seconds", budget },
      breaker: {
        policy: { kind: "count", size: 20, failureRate: 0.5, minimumCalls: 10 },
        openDuration: Schedule.exponential("5 seconds"),
        halfOpenProbes: 2
      },
      keys: { embeddings: { timeout: "30 seconds", retry: { maxAttempts: 6, jitter: "decorrelated" } } }
    })
  )
)

const program = Effect.gen(function* () {
  const call = flakyProvider()
  const answers = yield* Effect.forEach(["one", "two", "three", "four", "five", "six"], (prompt) =>
    Executor.submit(call(prompt))
  )
  for (const answer of answers) yield* Console.log(answer)
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program.pipe(Effect.provide(ResilientExecutor)))
}
