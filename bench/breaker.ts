/**
 * Part 4: success-path overhead per call through a circuit breaker, one
 * million sequential calls of a trivial task, beside cockatiel's
 * `circuitBreaker` and opossum, with the raw call as the floor of each world
 * (an Effect loop for Effect, an `await` loop for the promise libraries).
 *
 * opossum is measured twice: with its per-call timeout off (no timer per call,
 * like the others) and with its default 10 s timeout. The target compares
 * Sluice with the faster opossum row.
 */

import { CircuitBreaker } from "@sluice/core"
import * as Cockatiel from "cockatiel"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import CircuitBreakerOpossum from "opossum"
import { counter, effectTask, median, thunkTask } from "./harness.js"
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
  const before = counter.value
  const start = performance.now()
  await run()
  const nanos = ((performance.now() - start) * 1e6) / calls
  if (counter.value - before !== calls) throw new Error(`expected ${calls} calls, counted ${counter.value - before}`)
  return nanos
}

export const measure = async (calls: number, reps: number, progress: (line: string) => void) => {
  const scope = Effect.runSync(Scope.make())
  const sluiceConsecutive = await Effect.runPromise(
    Scope.extend(CircuitBreaker.make({ name: "bench", policy: { kind: "consecutive", failures: 5 } }), scope)
  )
  const sluiceCount = await Effect.runPromise(
    Scope.extend(
      CircuitBreaker.make({ name: "bench-count", policy: { kind: "count", size: 100, failureRate: 0.5 } }),
      scope
    )
  )
  const opossumFast = new CircuitBreakerOpossum(thunkTask, { timeout: false })
  const opossumDefault = new CircuitBreakerOpossum(thunkTask)
  const cockatiel = Cockatiel.circuitBreaker(Cockatiel.handleAll, {
    halfOpenAfter: 10_000,
    breaker: new Cockatiel.ConsecutiveBreaker(5)
  })

  const subjects: Array<{ name: string; role: BreakerRow["role"]; run: () => Promise<void> }> = [
    { name: "raw Effect call (floor)", role: "effect-floor", run: () => effectLoop(calls, effectTask) },
    {
      name: "Sluice protect (consecutive)",
      role: "sluice",
      run: () => effectLoop(calls, sluiceConsecutive.protect(effectTask))
    },
    {
      name: "Sluice protect (count window 100)",
      role: "sluice",
      run: () => effectLoop(calls, sluiceCount.protect(effectTask))
    },
    { name: "raw await call (floor)", role: "promise-floor", run: () => promiseLoop(calls, thunkTask) },
    { name: "opossum fire (timeout off)", role: "opossum", run: () => promiseLoop(calls, () => opossumFast.fire()) },
    {
      name: "opossum fire (default 10 s timeout)",
      role: "opossum-timeout",
      run: () => promiseLoop(calls, () => opossumDefault.fire())
    },
    {
      name: "cockatiel circuitBreaker (consecutive)",
      role: "cockatiel",
      run: () => promiseLoop(calls, () => cockatiel.execute(thunkTask))
    }
  ]

  // Repetitions go round the subjects in turn, so that a change of load on
  // the machine during the run falls on every subject alike.
  const samples = subjects.map(() => [] as Array<number>)
  for (let rep = 0; rep < reps; rep++) {
    for (const [i, subject] of subjects.entries()) samples[i]!.push(await time(calls, subject.run))
    progress(`   round ${rep + 1} of ${reps} done`)
  }
  const rows: Array<BreakerRow> = subjects.map((subject, i) => ({
    name: subject.name,
    role: subject.role,
    nanosPerCall: median(samples[i]!),
    bestNanosPerCall: Math.min(...samples[i]!)
  }))
  opossumFast.shutdown()
  opossumDefault.shutdown()
  await Effect.runPromise(Scope.close(scope, Effect.runSync(Effect.exit(Effect.void))))
  return rows
}

/**
 * The target: Sluice's breaker at least as fast per call as opossum (its
 * faster configuration), compared by each one's best repetition: on a shared
 * machine the fastest run is the one least disturbed, and the median moves by
 * a third from run to run.
 */
export const target = (rows: ReadonlyArray<BreakerRow>) => {
  const sluice = Math.max(...rows.filter((row) => row.role === "sluice").map((row) => row.bestNanosPerCall))
  const opossum = rows.find((row) => row.role === "opossum")?.bestNanosPerCall ?? Number.NaN
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
    title: `Circuit breaker, success path: ${Table.int(calls)} sequential calls (median of ${reps})`,
    columns: [
      { header: "breaker" },
      { header: "ns/call (median)", align: "right" },
      { header: "ns/call (best)", align: "right" },
      { header: "calls/s (best)", align: "right" },
      { header: "over its floor (best)", align: "right" }
    ],
    rows: rows.map((row) => [
      row.name,
      Table.fixed(row.nanosPerCall, 0),
      Table.fixed(row.bestNanosPerCall, 0),
      Table.int(1e9 / row.bestNanosPerCall),
      row.role.endsWith("floor") ? "-" : `+${Table.fixed(row.bestNanosPerCall - floorOf(row).bestNanosPerCall, 0)} ns`
    ]),
    notes: [
      `Target: Sluice's breaker (slower row, best ${Table.fixed(sluice, 0)} ns) at least as fast per call as opossum (best ${Table.fixed(opossum, 0)} ns): ${Table.passOrMiss(ok)}`
    ]
  })
}
