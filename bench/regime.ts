/**
 * Part 7: the product's regime. 20,000 `submit` calls from a caller that
 * streams them (`Stream.mapEffect`, 512 at a time, so the executor never
 * starves) into an Executor with a requests and a tokens limit over 8 keys,
 * concurrency 256; each task waits 5 to 50 ms (a real `Effect.sleep`, its
 * length a hash of its index, so every run and every row waits the same).
 *
 * What is measured is this process's CPU time per request (`process.cpuUsage`,
 * user + system), beside a floor that runs the same tasks through
 * `Effect.forEach` with an Effect `Semaphore` of 256 permits and no limits:
 * at model-API latencies the wall time is the provider's, and what Sluice
 * adds is CPU. The limits are generous (a tier-5 provider's per key), so every
 * request is charged on both but none waits: the figure is the cost of
 * queueing, admission and dispatch, not of pacing.
 *
 * Rows, each run once per round (a round starts at the next row; a full GC
 * before every run; the median over rounds after a warm-up run of each):
 * - the floor: `Effect.forEach` with the Semaphore, 256 at a time;
 * - the caller alone: `Stream.mapEffect` at 512 straight into the tasks, no
 *   executor (for reading: what the stream caller itself costs);
 * - Sluice behind that `Stream.mapEffect` caller: the target row;
 * - Sluice behind `Effect.forEach` at 512 (for reading: Sluice without the
 *   stream's cost).
 * Sluice's Executor is built as the ApiClient builds it (spans off). The
 * floor calls 256 at a time, not 512: an Effect Semaphore with more waiters
 * than permits wakes every waiter at each release (at 512 callers, 2,000 of
 * these tasks took 6 s of CPU and 900 MB of heap), which would make the floor
 * a measure of that, not of running the tasks.
 */
import { Executor } from "@sluice/core"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { collect, median } from "./harness.js"
import * as Table from "./table.js"

export const REQUESTS = 20_000
export const KEYS = 8
export const CONCURRENCY = 256
/** How many `submit` calls the caller keeps open at once: enough that the executor's queue is never empty. */
export const CALLER_CONCURRENCY = 512
/** Per key: 10,000 requests and 30,000,000 tokens a minute (a tier-5 model API's), burst = a minute's worth. */
export const LIMITS = {
  requests: { limit: 10_000, interval: "1 minute" },
  tokens: { limit: 30_000_000, interval: "1 minute" }
} as const
/** The target: Sluice's CPU per request at most this many times the floor's. */
export const CPU_RATIO_MAX = 1.5
const ROUNDS = 3
const WARMUP_REQUESTS = 2_000

export interface RegimeRow {
  readonly name: string
  readonly role: "floor" | "stream-caller" | "sluice" | "sluice-forEach"
  readonly cpuMicrosPerRequest: number
  readonly wallSeconds: number
  readonly requestsPerSecond: number
  readonly error?: string | undefined
}

// ---- the workload -----------------------------------------------------------

/** A 32-bit integer hash of `i` (lowbias32), as a number in [0, 1): the seeded "random" of request i. */
const unitHash = (i: number): number => {
  let x = (i + 0x9e3779b9) | 0
  x ^= x >>> 16
  x = Math.imul(x, 0x7feb352d)
  x ^= x >>> 15
  x = Math.imul(x, 0x846ca68b)
  x ^= x >>> 16
  return (x >>> 0) / 2 ** 32
}

/** Request i waits 5 to 50 ms. */
export const waitMillis = (i: number): number => 5 + Math.floor(unitHash(i) * 46)

/** Request i costs 200 to 4,000 tokens (and one request). */
const tokens = (i: number): number => 200 + Math.floor(unitHash(i + 1_000_003) * 3_801)

const keyOf = (i: number): string => `key-${i % KEYS}`

/** Tasks that have finished, across every row, to check that each run did all of its work. */
const finished = { count: 0 }

const task = (i: number): Effect.Effect<void> =>
  Effect.zipRight(
    Effect.sleep(waitMillis(i)),
    Effect.sync(() => {
      finished.count++
    })
  )

const indices = (requests: number) => Array.from({ length: requests }, (_, i) => i)

// ---- the rows ---------------------------------------------------------------

/** A row's measured run: all of `requests`, to the end. */
type Run = (requests: ReadonlyArray<number>) => Effect.Effect<void, unknown>

/** Builds what a row needs (outside the measurement) and answers its run. */
type Prepare = Effect.Effect<Run, never, Scope.Scope>

interface Contender {
  readonly name: string
  readonly role: RegimeRow["role"]
  readonly prepare: Prepare
}

const semaphoreFloor: Contender = {
  name: "floor: Effect.forEach (256) + Semaphore(256), no limits",
  role: "floor",
  prepare: Effect.map(
    Effect.makeSemaphore(CONCURRENCY),
    (semaphore) => (requests) =>
      Effect.forEach(requests, (i) => semaphore.withPermits(1)(task(i)), {
        concurrency: CONCURRENCY,
        discard: true
      })
  )
}

/** The stream caller with nothing behind it: each element runs its task directly, 512 at a time. */
const streamCaller: Contender = {
  name: "caller alone: Stream.mapEffect (512), no executor",
  role: "stream-caller",
  prepare: Effect.succeed((requests) =>
    Stream.fromIterable(requests).pipe(Stream.mapEffect(task, { concurrency: CALLER_CONCURRENCY }), Stream.runDrain)
  )
}

type Submit = (i: number) => Effect.Effect<void, unknown>

/** Sluice: a fresh Executor (as the ApiClient builds it: spans off); each request a `submit` with its key and tokens. */
const sluice = (name: string, role: RegimeRow["role"], caller: (submit: Submit) => Run): Contender => ({
  name,
  role,
  prepare: Effect.map(
    Effect.orDie(
      Executor.make({ name: `bench-regime-${role}`, concurrency: CONCURRENCY, limits: LIMITS, spans: false })
    ),
    (executor) => caller((i) => executor.submit(task(i), { key: keyOf(i), cost: { tokens: tokens(i) } }))
  )
})

const contenders: ReadonlyArray<Contender> = [
  semaphoreFloor,
  streamCaller,
  sluice(
    "Sluice submit from Stream.mapEffect (512)",
    "sluice",
    (submit) => (requests) =>
      Stream.fromIterable(requests).pipe(Stream.mapEffect(submit, { concurrency: CALLER_CONCURRENCY }), Stream.runDrain)
  ),
  sluice(
    "Sluice submit from Effect.forEach (512)",
    "sluice-forEach",
    (submit) => (requests) => Effect.forEach(requests, submit, { concurrency: CALLER_CONCURRENCY, discard: true })
  )
]

// ---- measuring --------------------------------------------------------------

interface Sample {
  readonly cpuMicros: number
  readonly wallMillis: number
}

/** One run of `requests` through a fresh instance of the contender: CPU and wall time of the run alone. */
const runOnce = (contender: Contender, requests: ReadonlyArray<number>): Promise<Sample> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const run = yield* contender.prepare
        collect()
        const before = finished.count
        const cpu = process.cpuUsage()
        const start = performance.now()
        yield* run(requests)
        const wallMillis = performance.now() - start
        const used = process.cpuUsage(cpu)
        const done = finished.count - before
        if (done !== requests.length) yield* Effect.die(new Error(`${done} of ${requests.length} tasks finished`))
        return { cpuMicros: used.user + used.system, wallMillis }
      })
    )
  )

export const measure = async (progress: (line: string) => void): Promise<Array<RegimeRow>> => {
  const all = indices(REQUESTS)
  const samples = contenders.map(() => [] as Array<Sample>)
  const errors: Array<string | undefined> = contenders.map(() => undefined)
  const attempt = async (i: number, requests: ReadonlyArray<number>) => {
    if (errors[i] !== undefined) return
    try {
      const sample = await runOnce(contenders[i]!, requests)
      if (requests === all) samples[i]!.push(sample)
    } catch (error) {
      errors[i] = String(error)
    }
  }
  // Warm up every row (JIT, the timer lists), then the rounds; each round starts at the next row.
  for (let i = 0; i < contenders.length; i++) await attempt(i, indices(WARMUP_REQUESTS))
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < contenders.length; k++) await attempt((round + k) % contenders.length, all)
    progress(`   round ${round + 1} of ${ROUNDS} done`)
  }
  return contenders.map((contender, i): RegimeRow => {
    const cpu = median(samples[i]!.map((sample) => sample.cpuMicros))
    const wall = median(samples[i]!.map((sample) => sample.wallMillis))
    return {
      name: contender.name,
      role: contender.role,
      cpuMicrosPerRequest: samples[i]!.length === 0 ? Number.NaN : cpu / REQUESTS,
      wallSeconds: samples[i]!.length === 0 ? Number.NaN : wall / 1000,
      requestsPerSecond: samples[i]!.length === 0 ? Number.NaN : (REQUESTS / wall) * 1000,
      error: errors[i]
    }
  })
}

/** The target: Sluice behind the Stream.mapEffect caller at most CPU_RATIO_MAX times the floor's CPU per request. */
export const target = (rows: ReadonlyArray<RegimeRow>) => {
  const sluiceCpu = rows.find((row) => row.role === "sluice")?.cpuMicrosPerRequest ?? Number.NaN
  const floorCpu = rows.find((row) => row.role === "floor")?.cpuMicrosPerRequest ?? Number.NaN
  const ratio = sluiceCpu / floorCpu
  return { sluice: sluiceCpu, floor: floorCpu, ratio, ok: Number.isFinite(ratio) ? ratio <= CPU_RATIO_MAX : undefined }
}

export const print = (rows: ReadonlyArray<RegimeRow>): void => {
  const floor = rows.find((row) => row.role === "floor")?.cpuMicrosPerRequest ?? Number.NaN
  const { sluice: sluiceCpu, ratio, ok } = target(rows)
  Table.print({
    title: `7. The product's regime: ${Table.int(REQUESTS)} submits from Stream.mapEffect, ${KEYS} keys, concurrency ${CONCURRENCY}, tasks of 5-50 ms (median of ${ROUNDS})`,
    columns: [
      { header: "contender" },
      { header: "CPU µs/request", align: "right" },
      { header: "vs floor", align: "right" },
      { header: "wall time", align: "right" },
      { header: "requests/s", align: "right" }
    ],
    rows: rows.map((row) =>
      row.error === undefined
        ? [
            row.name,
            Table.fixed(row.cpuMicrosPerRequest, 1),
            `${Table.fixed(row.cpuMicrosPerRequest / floor, 2)}x`,
            `${Table.fixed(row.wallSeconds, 2)} s`,
            Table.int(row.requestsPerSecond)
          ]
        : [row.name, "error", "", "", ""]
    ),
    notes: [
      "CPU: this process's user + system time during the run, per request (a full GC before each run, not counted).",
      `Callers: Sluice's keep ${CALLER_CONCURRENCY} submits open (the executor's queue never empties); the floor calls ${CONCURRENCY} at a`,
      "  time (an Effect Semaphore with more waiters than permits wakes them all at each release). The 'caller alone' row",
      "  is Stream.mapEffect's own cost (it forks and races per element), part of the target row's figure.",
      `Sluice rows (spans off, as the ApiClient): limits per key ${Table.int(LIMITS.requests.limit)} requests and ${Table.int(LIMITS.tokens.limit)} tokens a minute,`,
      "  each request costing 1 request and 200-4,000 tokens: charged on every request, never binding (none waits).",
      "Each task's wait (5-50 ms) is a hash of its index: every row runs the same 20,000 waits.",
      `Target: Sluice from Stream.mapEffect, CPU per request <= ${CPU_RATIO_MAX} x the floor's: ${Table.fixed(sluiceCpu, 1)} vs ${Table.fixed(
        floor,
        1
      )} µs = ${Table.fixed(ratio, 2)}x ${ok === undefined ? "MISS (not measured)" : Table.passOrMiss(ok)}`,
      ...rows.filter((row) => row.error !== undefined).map((row) => `${row.name}: ${row.error}`)
    ]
  })
}
