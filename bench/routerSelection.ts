/**
 * Part 11: the Router's selection cost per call as the number of providers
 * grows, for each strategy (and for affinity by key), at 2, 16, 128 and
 * 1,000 providers, in one run. Sequential `router.submit` of an effect that
 * does nothing, over providers whose "executor" runs the effect as it is (no
 * queue, no limits of its own): what is measured is selection, the in-flight
 * scope and the hop loop alone, each call's whole cost in the Router. Each
 * provider is in a quota domain of its own (one limiter, a key per domain,
 * limits no call reaches), so every pick asks its domain's limiter whether
 * it admits now (`admissibleIn`), and `headroom` reads two domains' state.
 * The affinity row is `leastOutstanding` with `affinity` on, each call with
 * one of 10,000 keys in turn (the ring is built before the timing starts).
 *
 * Each cell is the process's CPU time (user + system) per call, the best of
 * three runs of `CALLS` calls after a warm-up: CPU time, so that other work on
 * a busy machine is not charged to the Router (it still slows a run through
 * caches and frequency; the best of three keeps the least disturbed). The target: under
 * 20 µs per call at 1,000 providers, and flat: at 1,000 no more than twice
 * the cost at 2 (LiteLLM: 51 ms per pick at 1,000).
 *
 * Alone: npx -y pnpm@10.34.9 bench --only router
 */
import { type Executor, RateLimiter, RateLimiterStore, Router } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Table from "./table.js"

export const SIZES = [2, 16, 128, 1_000] as const
const CALLS = 20_000
const WARMUP = 2_000
const REPS = 3
const KEYS = Array.from({ length: 10_000 }, (_, i) => `session-${i}`)
/** The target: µs per call at 1,000 providers. */
export const PICK_MAX_MICROS = 20
/** Flat: µs at 1,000 providers at most this times µs at 2. */
export const FLAT_RATIO_MAX = 2

export type Variant = Router.Strategy | "affinity"
export const VARIANTS: ReadonlyArray<Variant> = [
  "roundRobin",
  "weightedRoundRobin",
  "leastOutstanding",
  "lowestLatency",
  "headroom",
  "affinity"
]

export interface SelectionRow {
  readonly variant: Variant
  readonly providers: number
  /** µs per call, the best of `REPS` runs. */
  readonly micros: number
}

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

const routerFor = (variant: Variant, size: number, limiter: RateLimiter.RateLimiterShape) =>
  Router.make({
    name: `bench-${variant}-${size}`,
    strategy: variant === "affinity" ? "leastOutstanding" : variant,
    ...(variant === "affinity" ? { affinity: {} } : {}),
    domains: Object.fromEntries(Array.from({ length: size }, (_, i) => [`d${i}`, { limiter }])),
    providers: Array.from({ length: size }, (_, i) => ({
      name: `p${i}`,
      executor: passThrough(`p${i}`),
      domains: [`d${i}`],
      weight: 1 + (i % 3)
    }))
  })

const callsOf = (router: Router.RouterShape, variant: Variant, calls: number) => {
  let turn = 0
  const call = () => Effect.void
  return variant === "affinity"
    ? Effect.repeatN(
        Effect.suspend(() => router.submit(call, { affinityKey: KEYS[turn++ % KEYS.length]! })),
        calls - 1
      )
    : Effect.repeatN(
        Effect.suspend(() => router.submit(call)),
        calls - 1
      )
}

/** CPU µs per call (user + system): what other work on the machine takes of the wall clock is not counted. */
const microsPerCall = (run: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const start = process.cpuUsage()
    yield* run
    const used = process.cpuUsage(start)
    return (used.user + used.system) / CALLS
  })

const program = (progress: (line: string) => void) =>
  Effect.gen(function* () {
    const rows: Array<SelectionRow> = []
    for (const size of SIZES) {
      for (const variant of VARIANTS) {
        const limiter = yield* RateLimiter.make({
          name: `bench-${variant}-${size}`,
          limits: { requests: { limit: 1e12, interval: "1 second" } }
        })
        const router = yield* routerFor(variant, size, limiter)
        yield* callsOf(router, variant, WARMUP)
        let best = Number.POSITIVE_INFINITY
        for (let rep = 0; rep < REPS; rep++)
          best = Math.min(best, yield* microsPerCall(callsOf(router, variant, CALLS)))
        rows.push({ variant, providers: size, micros: best })
      }
      progress(`  router: ${size} providers done`)
    }
    return rows
  }).pipe(Effect.scoped, Effect.provide(RateLimiterStore.layerMemory({ sweepInterval: "1 hour" })))

export const measure = (progress: (line: string) => void): Promise<ReadonlyArray<SelectionRow>> =>
  Effect.runPromise(program(progress))

const cell = (rows: ReadonlyArray<SelectionRow>, variant: Variant, providers: number) =>
  rows.find((row) => row.variant === variant && row.providers === providers)?.micros

/** Per variant: µs at 1,000 providers and its ratio to µs at 2. */
export const targets = (rows: ReadonlyArray<SelectionRow>) =>
  VARIANTS.map((variant) => {
    const at1000 = cell(rows, variant, 1_000)
    const at2 = cell(rows, variant, 2)
    return {
      variant,
      at1000,
      ratio: at1000 === undefined || at2 === undefined ? undefined : at1000 / at2
    }
  })

export const print = (rows: ReadonlyArray<SelectionRow>): void => {
  Table.print({
    title: "11. Router selection: CPU µs per call by strategy and number of providers",
    columns: [
      { header: "providers", align: "right" },
      ...VARIANTS.map((variant) => ({ header: variant, align: "right" as const }))
    ],
    rows: SIZES.map((size) => [
      Table.int(size),
      ...VARIANTS.map((variant) => {
        const micros = cell(rows, variant, size)
        return micros === undefined ? "n/a" : Table.fixed(micros, 2)
      })
    ]),
    notes: [
      `CPU µs per call: sequential router.submit of Effect.void over pass-through executors, each provider in a quota`,
      `  domain of its own; the best of ${REPS} runs of ${Table.int(CALLS)} calls. affinity = leastOutstanding with affinity on,`,
      `  10,000 keys in turn.`,
      `Target: < ${PICK_MAX_MICROS} µs per call at 1,000 providers and flat (at 1,000 <= ${FLAT_RATIO_MAX}x at 2). LiteLLM: 51 ms at 1,000.`,
      ...targets(rows).map(
        ({ at1000, ratio, variant }) =>
          `  ${variant}: ${at1000 === undefined ? "n/a" : `${Table.fixed(at1000, 2)} µs`} at 1,000, ${
            ratio === undefined ? "n/a" : `${Table.fixed(ratio, 2)}x`
          } the cost at 2`
      )
    ]
  })
}
