/**
 * Part 4: success-path overhead per call through a circuit breaker, one
 * million sequential calls of a trivial task, beside cockatiel's
 * `circuitBreaker` and opossum, with the raw call as the floor of each world
 * (an Effect loop for Effect, an `await` loop for the promise libraries).
 *
 * opossum is measured twice: with its per-call timeout off (no timer per call,
 * like the others) and with its default 10 s timeout. The target compares
 * Sluice with the faster opossum row. Every run gets a fresh breaker and a
 * collected heap: opossum keeps each call's latency in its rolling window (for
 * percentiles), and a breaker kept across rounds grew the heap by 150 MB a
 * round and slowed whatever ran next.
 */

import { CircuitBreaker } from "@sluice/core"
import * as Cockatiel from "cockatiel"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import CircuitBreakerOpossum from "opossum"
import { collect, counter, effectTask, median, thunkTask } from "./harness.js"
import * as Table from "./table.js"

export interface BreakerRow {
  readonly name: string
  readonly role: "effect-floor" | "promise-floor" | "sluice" | "opossum" | "opossum-timeout" | "cockatiel"
  /** Median nanoseconds per call over the repetitions. */
  readonly nanosPerCall: number
  /** The fastest repetition: the least disturbed by other work on the machine. */
  readonly bestNanosPerCall: number
}

/** Runs `calls` calls of the task through `call` in one Effect loop. */
const effectLoop = (calls: number, call: Effect.Effect<void, unknown>) => {
  const loop = (left: number): Effect.Effect<void, unknown> =>
    left === 0 ? Effect.void : Effect.flatMap(call, () => loop(left - 1))
  return Effect.runPromise(loop(calls))
}

const promiseLoop = async (calls: number, call: () => Promise<unknown>) => {
  for (let i = 0; i < calls; i++) await call()
}

const time = async (calls: number, run: () => Promise<void>) => {
  // Each run starts with a clean heap: garbage left by the row before is not charged to this one.
  collect()
  const before = counter.value
  const start = performance.now()
  await run()
  const nanos = ((performance.now() - start) * 1e6) / calls
  if (counter.value - before !== calls) throw new Error(`expected ${calls} calls, counted ${counter.value - before}`)
  return nanos
}

interface Subject {
  readonly name: string
  readonly role: BreakerRow["role"]
  /** Builds a fresh breaker for one timed run, and what to do after it. */
  readonly prepare: () => Promise<{ readonly run: () => Promise<void>; readonly dispose: () => Promise<void> }>
}

const nothing = async () => {}

/** A Sluice breaker in a scope of its own, closed after the run. */
const sluiceSubject = (name: string, options: CircuitBreaker.Options, calls: number): Subject => ({
  name,
  role: "sluice",
  prepare: async () => {
    const scope = Effect.runSync(Scope.make())
    const breaker = await Effect.runPromise(Scope.extend(CircuitBreaker.make(options), scope))
    const call = breaker.protect(effectTask)
    return {
      run: () => effectLoop(calls, call),
      dispose: () => Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
})

/** opossum keeps every latency of its rolling window (for percentiles): a fresh breaker per run frees them. */
const opossumSubject = (name: string, role: BreakerRow["role"], options: object, calls: number): Subject => ({
  name,
  role,
  prepare: async () => {
    const breaker = new CircuitBreakerOpossum(thunkTask, options)
    return {
      run: () => promiseLoop(calls, () => breaker.fire()),
      dispose: async () => {
        breaker.shutdown()
      }
    }
  }
})

export const measure = async (calls: number, reps: number, progress: (line: string) => void) => {
  const subjects: Array<Subject> = [
    {
      name: "raw Effect call (floor)",
      role: "effect-floor",
      prepare: async () => ({ run: () => effectLoop(calls, effectTask), dispose: nothing })
    },
    sluiceSubject(
      "Sluice protect (consecutive)",
      { name: "bench", policy: { kind: "consecutive", failures: 5 } },
      calls
    ),
    sluiceSubject(
      "Sluice protect (count window 100)",
      { name: "bench-count", policy: { kind: "count", size: 100, failureRate: 0.5 } },
      calls
    ),
    {
      name: "raw await call (floor)",
      role: "promise-floor",
      prepare: async () => ({ run: () => promiseLoop(calls, thunkTask), dispose: nothing })
    },
    opossumSubject("opossum fire (timeout off)", "opossum", { timeout: false }, calls),
    opossumSubject("opossum fire (default 10 s timeout)", "opossum-timeout", {}, calls),
    {
      name: "cockatiel circuitBreaker (consecutive)",
      role: "cockatiel",
      prepare: async () => {
        const breaker = Cockatiel.circuitBreaker(Cockatiel.handleAll, {
          halfOpenAfter: 10_000,
          breaker: new Cockatiel.ConsecutiveBreaker(5)
        })
        return { run: () => promiseLoop(calls, () => breaker.execute(thunkTask)), dispose: nothing }
      }
    }
  ]

  // Repetitions go round the subjects in turn, so that a change of load on
  // the machine during the run falls on every subject alike; each run gets a
  // fresh breaker and a collected heap, so nothing one row keeps is charged to the next.
  const samples = subjects.map(() => [] as Array<number>)
  for (let rep = 0; rep < reps; rep++) {
    for (const [i, subject] of subjects.entries()) {
      const { run, dispose } = await subject.prepare()
      samples[i]!.push(await time(calls, run))
      await dispose()
    }
    progress(`   round ${rep + 1} of ${reps} done`)
  }
  return subjects.map(
    (subject, i): BreakerRow => ({
      name: subject.name,
      role: subject.role,
      nanosPerCall: median(samples[i]!),
      bestNanosPerCall: Math.min(...samples[i]!)
    })
  )
}

/**
 * The target: Sluice's breaker (its slower configuration) at least as fast
 * per call as opossum (its faster one), by the median run, as every part of
 * the benchmark compares.
 */
export const target = (rows: ReadonlyArray<BreakerRow>) => {
  const sluice = Math.max(...rows.filter((row) => row.role === "sluice").map((row) => row.nanosPerCall))
  const opossum = rows.find((row) => row.role === "opossum")?.nanosPerCall ?? Number.NaN
  return { sluice, opossum, ok: sluice <= opossum }
}

export const print = (rows: ReadonlyArray<BreakerRow>, calls: number, reps: number) => {
  const floorOf = (row: BreakerRow) =>
    rows.find(
      (other) =>
        other.role ===
        (row.role.startsWith("sluice") || row.role.startsWith("effect") ? "effect-floor" : "promise-floor")
    )!
  const { sluice, opossum, ok } = target(rows)
  Table.print({
    title: `4. Circuit breaker, success path: ${Table.int(calls)} sequential calls (median of ${reps})`,
    columns: [
      { header: "breaker" },
      { header: "ns/call (median)", align: "right" },
      { header: "ns/call (best)", align: "right" },
      { header: "calls/s (median)", align: "right" },
      { header: "over its floor (median)", align: "right" }
    ],
    rows: rows.map((row) => [
      row.name,
      Table.fixed(row.nanosPerCall, 0),
      Table.fixed(row.bestNanosPerCall, 0),
      Table.int(1e9 / row.nanosPerCall),
      row.role.endsWith("floor") ? "-" : `+${Table.fixed(row.nanosPerCall - floorOf(row).nanosPerCall, 0)} ns`
    ]),
    notes: [
      `Target: Sluice's breaker (slower row, ${Table.fixed(sluice, 0)} ns) at least as fast per call as opossum (${Table.fixed(opossum, 0)} ns), by the median: ${Table.passOrMiss(ok)}`
    ]
  })
}
