/**
 * The smallest useful Executor: requests, tokens and concurrency limits on one
 * metered API. Each call says what it costs in tokens; the executor admits it
 * when both the request and the token budget allow, runs at most 4 at once,
 * and times out anything slower than 30 seconds.
 *
 * Run: npx tsx examples/executor-limits.ts
 */
import { Executor } from "@sluice/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"

/** Stands in for a model API call that costs `tokens`. */
export const callModel = (prompt: string, tokens: number) =>
  Effect.succeed({ prompt, tokens, answer: `echo: ${prompt}` }).pipe(Effect.delay("20 millis"))

export const ModelExecutor = Executor.layer({
  name: "model-api",
  concurrency: 4,
  limits: {
    requests: { limit: 600, interval: "1 minute", capacity: 10 },
    tokens: { limit: 60_000, interval: "1 minute", capacity: 6_000 }
  },
  timeout: "30 seconds"
})

/** Sends each prompt through the executor, charging its token estimate. */
export const answerAll = (prompts: ReadonlyArray<string>) =>
  Effect.forEach(
    prompts,
    (prompt) => {
      const tokens = 200 + prompt.length * 4
      return Executor.submit(callModel(prompt, tokens), { cost: { tokens } })
    },
    { concurrency: "unbounded" }
  )

const program = Effect.gen(function* () {
  const answers = yield* answerAll(["hello", "how are you?", "what is a token bucket?"])
  for (const answer of answers) yield* Console.log(`${answer.tokens} tokens → ${answer.answer}`)
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program.pipe(Effect.provide(ModelExecutor)))
}
