/**
 * Part 2: one million trivial tasks through the Executor's batch path
 * (`submitAll` over a lazy generator) with a queue of 10,000, so intake has
 * to pause while the queue is full. Reports ops/s, the peak heap (heapUsed
 * sampled every 1,024 tasks pulled and every 10 ms), the deepest queue seen,
 * and whether every task ran and answered a success.
 */
import { Executor } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { collect, counter, effectTask, heapUsed } from "./harness.js"
import * as Table from "./table.js"

export interface MillionOptions {
  readonly tasks: number
  readonly queueCapacity: number
  readonly concurrency: number
}

export interface MillionResult {
  readonly tasks: number
  readonly elapsedMs: number
  readonly opsPerSecond: number
  readonly baselineHeap: number
  readonly peakHeap: number
  /** Heap still held once done (GC forced), while the array of exits is alive. */
  readonly heldByResults: number
  readonly maxQueued: number
  readonly exits: number
  readonly succeeded: number
  readonly ran: number
  readonly finished: boolean
  readonly error?: string | undefined
}

export const measure = async (options: MillionOptions): Promise<MillionResult> => {
  const scope = Effect.runSync(Scope.make())
  const executor = await Effect.runPromise(
    Scope.extend(
      Executor.make({
        name: "bench-million",
        concurrency: options.concurrency,
        queueCapacity: options.queueCapacity,
        spans: false
      }),
      scope
    )
  )
  let peak = 0
  let maxQueued = 0
  const sample = () => {
    const heap = heapUsed()
    if (heap > peak) peak = heap
  }
  function* tasks(): Generator<Effect.Effect<void>> {
    for (let i = 0; i < options.tasks; i++) {
      if ((i & 1023) === 0) {
        sample()
        const queued = Effect.runSync(executor.stats).queued
        if (queued > maxQueued) maxQueued = queued
      }
      yield effectTask
    }
  }
  try {
    collect()
    const baselineHeap = heapUsed()
    peak = baselineHeap
    const timer = setInterval(sample, 10)
    const ranBefore = counter.value
    const start = performance.now()
    let exits: Array<Exit.Exit<void, unknown>>
    try {
      exits = await Effect.runPromise(executor.submitAll(tasks()))
    } finally {
      clearInterval(timer)
    }
    const elapsedMs = performance.now() - start
    sample()
    const ran = counter.value - ranBefore
    const succeeded = exits.reduce((n, exit) => (Exit.isSuccess(exit) ? n + 1 : n), 0)
    collect()
    const heldByResults = heapUsed() - baselineHeap
    return {
      tasks: options.tasks,
      elapsedMs,
      opsPerSecond: (options.tasks / elapsedMs) * 1000,
      baselineHeap,
      peakHeap: peak,
      heldByResults,
      maxQueued,
      exits: exits.length,
      succeeded,
      ran,
      finished: exits.length === options.tasks && succeeded === options.tasks && ran === options.tasks
    }
  } catch (error) {
    return {
      tasks: options.tasks,
      elapsedMs: Number.NaN,
      opsPerSecond: Number.NaN,
      baselineHeap: 0,
      peakHeap: peak,
      heldByResults: Number.NaN,
      maxQueued,
      exits: 0,
      succeeded: 0,
      ran: 0,
      finished: false,
      error: String(error)
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export const print = (result: MillionResult, options: MillionOptions): void => {
  Table.print({
    title: `2. Batch path at scale: ${Table.int(options.tasks)} trivial tasks, submitAll over a generator`,
    columns: [{ header: "measure" }, { header: "value", align: "right" }],
    rows: [
      ["executor", `concurrency ${options.concurrency}, queueCapacity ${Table.int(options.queueCapacity)}, spans off`],
      ["elapsed", `${Table.fixed(result.elapsedMs / 1000, 2)} s`],
      ["ops/s", Table.int(result.opsPerSecond)],
      ["heap before (after GC)", Table.megabytes(result.baselineHeap)],
      ["peak heap (sampled)", Table.megabytes(result.peakHeap)],
      ["peak - before", Table.megabytes(result.peakHeap - result.baselineHeap)],
      ["held after, with the exits array (GC)", Table.megabytes(result.heldByResults)],
      [`deepest queue seen (capacity ${Table.int(options.queueCapacity)})`, Table.int(result.maxQueued)],
      ["exits answered / succeeded", `${Table.int(result.exits)} / ${Table.int(result.succeeded)}`],
      ["tasks that ran", Table.int(result.ran)],
      ["finished", result.finished ? "yes, every task ran and succeeded" : "NO"]
    ],
    notes: [
      "Peak heap is heapUsed as sampled, so it counts garbage not yet collected as well as live objects; the live",
      "  part is about the 'held after' line (one Exit per task, the array submitAll answers with) plus the queue.",
      ...(result.error === undefined ? [] : [`error: ${result.error}`])
    ]
  })
}
