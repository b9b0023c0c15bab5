/**
 * Part 3: rate precision. 1,000 requests submitted at once to a limit of 200
 * per second; each records its start with `performance.now()` as it begins.
 * Reported per contender: the most starts in any half-open 1 s window
 * [t, t + 1000 ms), the sustained rate (n - 1) / (last - first), and how long
 * the whole run took. Each row takes about 5 s.
 */
import { Executor, RateLimiter, RateLimiterStore } from "@sluice/core"
import Bottleneck from "bottleneck"
import * as Effect from "effect/Effect"
import * as EffectRateLimiter from "effect/RateLimiter"
import PQueue from "p-queue"
import * as Table from "./table.js"

export const REQUESTS = 1_000
export const LIMIT = 200
export const WINDOW_MS = 1_000

const LIMITS = { requests: { limit: LIMIT, interval: "1 second", capacity: 1 } } as const

export interface RateRow {
  readonly name: string
  /** Sluice rows are held to the targets. */
  readonly sluice: boolean
  readonly config: string
  readonly starts: ReadonlyArray<number>
  readonly windowMax: number
  readonly sustained: number
  readonly spanMs: number
  readonly error?: string | undefined
}

/** The most starts in any window [t, t + width), over sorted start times (a window starting at a start is enough). */
export const maxInWindow = (sorted: ReadonlyArray<number>, width: number): number => {
  let best = 0
  let end = 0
  for (let begin = 0; begin < sorted.length; begin++) {
    while (end < sorted.length && sorted[end]! < sorted[begin]! + width) end++
    best = Math.max(best, end - begin)
  }
  return best
}

export const sustainedRate = (sorted: ReadonlyArray<number>): number =>
  sorted.length < 2 ? Number.NaN : ((sorted.length - 1) / (sorted[sorted.length - 1]! - sorted[0]!)) * 1000

interface Contender {
  readonly name: string
  readonly sluice: boolean
  readonly config: string
  /** Runs REQUESTS requests, each calling `record` as it starts. */
  readonly run: (record: () => void) => Promise<void>
}

const indices = Array.from({ length: REQUESTS }, (_, i) => i)

const contenders: ReadonlyArray<Contender> = [
  {
    name: "Sluice RateLimiter.acquire",
    sluice: true,
    config: "200 / 1 s, capacity 1; 1,000 fibers",
    run: (record) =>
      Effect.runPromise(
        Effect.gen(function* () {
          const limiter = yield* RateLimiter.make({ limits: LIMITS })
          yield* Effect.forEach(indices, () => Effect.zipRight(limiter.acquire(), Effect.sync(record)), {
            concurrency: "unbounded",
            discard: true
          })
        }).pipe(Effect.provide(RateLimiterStore.layerMemory()))
      )
  },
  {
    name: "Sluice Executor.submitAll",
    sluice: true,
    config: "limits 200 / 1 s, capacity 1; concurrency 64",
    run: (record) =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const executor = yield* Executor.make({
              name: "bench-rate",
              concurrency: 64,
              queueCapacity: 10_000,
              limits: LIMITS
            })
            const exits = yield* executor.submitAll(indices.map(() => Effect.sync(record)))
            const failed = exits.filter((exit) => exit._tag === "Failure").length
            if (failed > 0) yield* Effect.die(new Error(`${failed} requests failed`))
          })
        )
      )
  },
  {
    name: "p-queue (strict)",
    sluice: false,
    config: "intervalCap 200, interval 1000, strict",
    run: async (record) => {
      const queue = new PQueue({ intervalCap: LIMIT, interval: WINDOW_MS, strict: true })
      await Promise.all(indices.map(() => queue.add(async () => record())))
    }
  },
  {
    name: "bottleneck",
    sluice: false,
    config: "minTime 5",
    run: async (record) => {
      const limiter = new Bottleneck({ minTime: WINDOW_MS / LIMIT })
      await Promise.all(indices.map(() => limiter.schedule(async () => record())))
    }
  },
  {
    name: "effect/RateLimiter",
    sluice: false,
    config: "limit 200, 1 s, token-bucket",
    run: (record) =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const limit = yield* EffectRateLimiter.make({
              limit: LIMIT,
              interval: "1 second",
              algorithm: "token-bucket"
            })
            yield* Effect.forEach(indices, () => limit(Effect.sync(record)), {
              concurrency: "unbounded",
              discard: true
            })
          })
        )
      )
  }
]

/** The rows held to the targets (named even when the part is not run). */
export const SLUICE_ROWS = contenders.filter((contender) => contender.sluice).map((contender) => contender.name)

export const measure = async (progress: (line: string) => void): Promise<Array<RateRow>> => {
  const rows: Array<RateRow> = []
  for (const contender of contenders) {
    const starts: Array<number> = []
    const base = { name: contender.name, sluice: contender.sluice, config: contender.config }
    const began = performance.now()
    try {
      await contender.run(() => {
        starts.push(performance.now())
      })
      if (starts.length !== REQUESTS) throw new Error(`${starts.length} of ${REQUESTS} requests started`)
      const sorted = [...starts].sort((a, b) => a - b)
      rows.push({
        ...base,
        starts: sorted,
        windowMax: maxInWindow(sorted, WINDOW_MS),
        sustained: sustainedRate(sorted),
        spanMs: sorted[sorted.length - 1]! - sorted[0]!
      })
    } catch (error) {
      rows.push({
        ...base,
        starts,
        windowMax: Number.NaN,
        sustained: Number.NaN,
        spanMs: Number.NaN,
        error: String(error)
      })
    }
    progress(`  ${contender.name}: ${((performance.now() - began) / 1000).toFixed(1)} s`)
  }
  return rows
}

export const print = (rows: ReadonlyArray<RateRow>): void => {
  Table.print({
    title: `3. Rate precision: ${Table.int(REQUESTS)} requests at once, limit ${LIMIT} per second`,
    columns: [
      { header: "contender" },
      { header: "configuration" },
      { header: "max starts in 1 s", align: "right" },
      { header: "sustained /s", align: "right" },
      { header: "first→last", align: "right" }
    ],
    rows: rows.map((row) =>
      row.error === undefined
        ? [
            row.name,
            row.config,
            String(row.windowMax),
            Table.fixed(row.sustained, 2),
            `${Table.fixed(row.spanMs / 1000, 3)} s`
          ]
        : [row.name, row.config, "error", "", ""]
    ),
    notes: [
      "max starts in 1 s: most start times in any half-open window [t, t + 1000 ms), performance.now() in the task.",
      "sustained: (n - 1) / (last start - first start).",
      "Sluice rows use the default windowMargin (5 ms): each round of 200 is scheduled 5 ms after the one a second",
      "  before it (what the ideal 200.00/s gives up: 4 rounds here, ~0.4 %), and no 1,002.5 ms of the limiter's Clock",
      "  sees more than 200. RateLimiter.acquire: admissions (a start lagging its admission by over 2.5 ms can make 201);",
      "  Executor: starts, since it reports each one to the limiter (began) as the work begins.",
      ...rows.filter((row) => row.error !== undefined).map((row) => `${row.name}: ${row.error}`)
    ]
  })
}
