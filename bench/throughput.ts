/**
 * Part 1: throughput and memory of 100,000 trivial tasks at concurrency 16,
 * no rate limit, for every contender in `subjects.ts`.
 *
 * - ops/s: a warm-up run on a tenth of the tasks, then timed runs (GC forced
 *   before each) until `maxReps` runs or `budgetMs` of timed work, at least
 *   one; the table shows the median and the best, and how many runs.
 * - heap per queued request: with the GC forced, read heapUsed; start 16
 *   tasks that block on a gate and N more behind them; once all N are queued,
 *   force GC and read heapUsed again; report (after - before) / N; then open
 *   the gate and let everything finish. Inputs are allocated before the first
 *   reading, so only what the contender itself keeps is counted.
 */
import { collect, counter, Gate, hasGc, heapUsed, median, turn, waitUntil, workload } from "./harness.js"
import { CONCURRENCY, type Subject, subjects } from "./subjects.js"
import * as Table from "./table.js"

export interface ThroughputOptions {
  readonly tasks: number
  readonly queued: number
  readonly maxReps: number
  /** Stop repeating once the timed runs took this long in total. */
  readonly budgetMs: number
}

export interface ThroughputRow {
  readonly name: string
  readonly role: Subject["role"]
  readonly tasks: number
  readonly queued: number
  readonly median: number
  readonly best: number
  readonly runs: ReadonlyArray<number>
  /** Undefined when the process runs without --expose-gc, or the measurement failed. */
  readonly bytesPerQueued: number | undefined
  readonly note?: string | undefined
  readonly error?: string | undefined
}

const check = (what: string, expected: number, before: number) => {
  const ran = counter.value - before
  if (ran !== expected) throw new Error(`${what}: ${ran} of ${expected} tasks ran`)
}

const opsPerSecond = async (subject: Subject, tasks: number, options: ThroughputOptions) => {
  const warmup = workload(Math.max(1, Math.round(tasks / 10)))
  const warmupStart = counter.value
  await subject.run(warmup)
  check("warm-up", warmup.tasks, warmupStart)
  const work = workload(tasks)
  const runs: Array<number> = []
  let spent = 0
  while (runs.length < options.maxReps && (runs.length === 0 || spent < options.budgetMs)) {
    collect()
    const before = counter.value
    const start = performance.now()
    await subject.run(work)
    const ms = performance.now() - start
    check("timed run", tasks, before)
    spent += ms
    runs.push((tasks / ms) * 1000)
  }
  return runs
}

const bytesPerQueued = async (subject: Subject, queued: number): Promise<number | undefined> => {
  if (!hasGc()) return undefined
  const gate = new Gate()
  const work = workload(queued, gate, CONCURRENCY)
  const ran = counter.value
  collect()
  const before = heapUsed()
  const filled = subject.fill(work)
  let after: number
  try {
    await waitUntil(`${subject.name} to queue ${queued}`, () => gate.started === CONCURRENCY && filled.ready(), 30_000)
    await turn()
    collect()
    after = heapUsed()
    if (gate.started !== CONCURRENCY)
      throw new Error(`${gate.started} tasks started past the gate, expected ${CONCURRENCY}`)
  } finally {
    gate.open()
  }
  await filled.done()
  check("heap run", queued, ran)
  return (after - before) / queued
}

export const measure = async (
  options: ThroughputOptions,
  progress: (line: string) => void
): Promise<Array<ThroughputRow>> => {
  const rows: Array<ThroughputRow> = []
  for (const make of subjects) {
    const subject = await make()
    const tasks = subject.tasks?.count ?? options.tasks
    const queued = subject.tasks?.count ?? options.queued
    const started = performance.now()
    const base = { name: subject.name, role: subject.role, tasks, queued, note: subject.tasks?.why }
    try {
      const runs = await opsPerSecond(subject, tasks, options)
      const bytes = await bytesPerQueued(subject, queued)
      rows.push({ ...base, median: median(runs), best: Math.max(...runs), runs, bytesPerQueued: bytes })
    } catch (error) {
      rows.push({
        ...base,
        median: Number.NaN,
        best: Number.NaN,
        runs: [],
        bytesPerQueued: undefined,
        error: String(error)
      })
    } finally {
      await subject.close()
    }
    progress(`  ${subject.name}: ${((performance.now() - started) / 1000).toFixed(1)} s`)
    collect()
  }
  return rows
}

export const print = (rows: ReadonlyArray<ThroughputRow>, options: ThroughputOptions): void => {
  const raw = rows.find((row) => row.role === "raw")
  const marked = (row: ThroughputRow) => (row.note === undefined ? row.name : `${row.name} *`)
  Table.print({
    title: `1. Throughput and memory: ${Table.int(options.tasks)} trivial tasks, concurrency ${CONCURRENCY}, no rate limit`,
    columns: [
      { header: "contender" },
      { header: "ops/s (median)", align: "right" },
      { header: "ops/s (best)", align: "right" },
      { header: "runs", align: "right" },
      { header: "vs raw forEach", align: "right" },
      { header: "heap B / queued req", align: "right" }
    ],
    rows: rows.map((row) => [
      marked(row),
      row.error === undefined ? Table.int(row.median) : "error",
      row.error === undefined ? Table.int(row.best) : "",
      String(row.runs.length),
      raw === undefined || row.error !== undefined ? "" : `${Table.fixed(row.median / raw.median, 2)}x`,
      row.bytesPerQueued === undefined ? "n/a" : Table.int(row.bytesPerQueued)
    ]),
    notes: [
      `ops/s: median (and best) of the timed runs after a warm-up on a tenth of the tasks; GC forced before each run;`,
      `  runs stop at ${options.maxReps} or once the timed runs passed ${options.budgetMs / 1000} s in total.`,
      `heap: (heapUsed with ${CONCURRENCY} blocked + N queued - heapUsed before) / N, GC forced before both readings,`,
      `  N = ${Table.int(options.queued)}. Promise rows count the promise each call returns; Effect rows, their fibers.`,
      ...rows
        .filter((row) => row.note !== undefined)
        .map((row) => `* ${row.name}: ${Table.int(row.tasks)} tasks and N = ${Table.int(row.queued)}; ${row.note}.`),
      ...rows.filter((row) => row.error !== undefined).map((row) => `${row.name}: ${row.error}`)
    ]
  })
}
