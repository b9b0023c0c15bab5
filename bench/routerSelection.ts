/**
 * The Router's own cost per call as the number of providers grows:
 * sequential `router.submit` of an effect that does nothing, for each
 * strategy at 2, 16, 128 and 1,000 providers, over providers whose
 * "executor" runs the effect as it is (no queue, no limits): what is
 * measured is selection, the in-flight scope and the hop loop alone. Flat
 * in the number of providers is the target (LiteLLM: 51 ms at 1,000).
 *
 * Run: npx tsx bench/routerSelection.ts
 */
import { type Executor, Router } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

const CALLS = 50_000
const SIZES = process.env.REVERSE === "1" ? [1_000, 128, 16, 2] : [2, 16, 128, 1_000]
const STRATEGIES: ReadonlyArray<Router.Strategy> = [
  "roundRobin",
  "weightedRoundRobin",
  "leastOutstanding",
  "lowestLatency"
]

/** An ExecutorShape that runs the effect as it is: the router's cost stands alone. */
const passThrough = (name: string): Executor.ExecutorShape => ({
  name,
  submit: (effect) => effect,
  submitAll: () => Effect.die("not used"),
  setConcurrency: () => Effect.die("not used"),
  stats: Effect.die("not used"),
  events: Stream.empty,
  subscribe: Effect.die("not used"),
  shutdown: () => Effect.die("not used")
})

const perCallMicros = <E>(run: Effect.Effect<unknown, E>) =>
  Effect.gen(function* () {
    const start = performance.now()
    yield* run
    return ((performance.now() - start) * 1_000) / CALLS
  })

const program = Effect.gen(function* () {
  const rows: Array<Record<string, string>> = []
  for (const size of SIZES) {
    const providers = Array.from({ length: size }, (_, i) => ({
      name: `p${i}`,
      executor: passThrough(`p${i}`),
      weight: 1 + (i % 3)
    }))
    const bare = yield* perCallMicros(Effect.repeatN(Effect.void, CALLS - 1))
    const row: Record<string, string> = { providers: String(size), "bare effect µs": bare.toFixed(2) }
    for (const strategy of STRATEGIES) {
      const router = yield* Router.make({ name: `bench-${strategy}-${size}`, strategy, providers })
      yield* Effect.repeatN(
        router.submit(() => Effect.void),
        2_000
      )
      const routed = yield* perCallMicros(
        Effect.repeatN(
          router.submit(() => Effect.void),
          CALLS - 1
        )
      )
      row[`${strategy} µs`] = routed.toFixed(2)
    }
    rows.push(row)
  }
  console.table(rows)
})

Effect.runPromise(Effect.scoped(program))
