/**
 * Many tenants behind one Executor: each tenant is a key with its own limits
 * and its own lane, so a tenant out of quota never holds another's requests.
 * Each call states its whole cost (one request and its estimated tokens) and
 * how to settle it once the answer says what it really used.
 *
 * Run: npx tsx examples/executor-tenants.ts
 */
import { Executor } from "@sluice/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/** Stands in for a model API call: it reports the tokens it really used. */
export const callModel = (prompt: string) =>
  Effect.succeed({ answer: `echo: ${prompt}`, usedTokens: 100 + prompt.length }).pipe(Effect.delay("20 millis"))

export const TenantsExecutor = Executor.layer({
  name: "tenants",
  concurrency: 16,
  keyConcurrency: 4,
  // Per key: every tenant has these limits of its own.
  limits: {
    requests: { limit: 60, interval: "1 minute", capacity: 2 },
    tokens: { limit: 10_000, interval: "1 minute" }
  }
})

/** One tenant's call: reserves its estimate, and gives back what the answer did not use. */
export const ask = (tenant: string, prompt: string) =>
  Executor.submit(callModel(prompt), {
    key: tenant,
    cost: { tokens: 1_000 },
    settle: (exit) =>
      Exit.isSuccess(exit) ? Executor.Settlement.reconcile({ tokens: exit.value.usedTokens }) : Executor.Settlement.keep
  })

const program = Effect.gen(function* () {
  // Tenant A sends a burst well past its 2-request burst; tenant B is not held behind it.
  const answers = yield* Effect.all(
    [ask("tenant-a", "one"), ask("tenant-a", "two"), ask("tenant-a", "three"), ask("tenant-b", "hello")],
    { concurrency: "unbounded" }
  )
  for (const answer of answers) yield* Console.log(answer.answer)
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program.pipe(Effect.provide(TenantsExecutor)))
}
