/**
 * The contenders of the throughput and memory table, each behind one small
 * interface: `run` a workload to completion, or `fill` it (start everything,
 * the first tasks blocking on the gate) and say when every task is running or
 * queued, so the heap of a full queue can be read.
 *
 * Every contender limits concurrency to 16 and has no rate limit. The promise
 * libraries keep the promise each call returns (a caller needs it to get the
 * result); the Effect rows keep the one fiber that collects the results.
 */
import { Executor } from "@sluice/core"
import Bottleneck from "bottleneck"
import * as Cockatiel from "cockatiel"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { identity } from "effect/Function"
import * as Scope from "effect/Scope"
import pLimit from "p-limit"
import PQueue from "p-queue"
import type { Workload } from "./harness.js"

export const CONCURRENCY = 16

export interface Filled {
  /** True once every blocker runs and every other task is queued. */
  readonly ready: () => boolean
  /** Call after opening the gate: resolves when every task has finished. */
  readonly done: () => Promise<void>
}

export interface Subject {
  readonly name: string
  /** Which row this is, for the targets table. */
  readonly role?: "raw" | "batch" | "batchSpans" | "submit" | "p-queue" | "bottleneck" | "cockatiel" | undefined
  /** Measured on fewer tasks than the others (and why), when the full count would take minutes. */
  readonly tasks?: { readonly count: number; readonly why: string } | undefined
  readonly run: (work: Workload) => Promise<void>
  readonly fill: (work: Workload) => Filled
  readonly close: () => Promise<void>
}

const joinFiber = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => () =>
  Effect.runPromise(Effect.asVoid(Fiber.join(fiber)))

const allOf = (promises: ReadonlyArray<Promise<unknown>>) => async () => {
  await Promise.all(promises)
}

// ---- Effect -----------------------------------------------------------------

const rawForEach = (): Subject => {
  const program = (work: Workload) => Effect.forEach(work.effects, identity, { concurrency: CONCURRENCY })
  return {
    name: "Effect.forEach (raw, c=16)",
    role: "raw",
    run: (work) => Effect.runPromise(Effect.asVoid(program(work))),
    fill: (work) => {
      const fiber = Effect.runFork(program(work))
      return { ready: () => true, done: joinFiber(fiber) }
    },
    close: async () => {}
  }
}

/**
 * The Effect-only floor for the submit row: as many caller fibers, each taking
 * one of 16 permits of an Effect `Semaphore` around its task.
 */
const semaphoreFibers = (): Subject => {
  const semaphore = Effect.runSync(Effect.makeSemaphore(CONCURRENCY))
  const program = (work: Workload, entered: { count: number }) =>
    Effect.forEach(
      work.effects,
      (effect) =>
        Effect.suspend(() => {
          entered.count++
          return semaphore.withPermits(1)(effect)
        }),
      { concurrency: "unbounded" }
    )
  return {
    name: "Effect Semaphore(16) x N fibers",
    tasks: {
      count: 20_000,
      why: "a reference row (the Effect-only floor for the submit row), kept short: Effect costs about the same per fiber"
    },
    run: (work) => Effect.runPromise(Effect.asVoid(program(work, { count: 0 }))),
    fill: (work) => {
      const entered = { count: 0 }
      const fiber = Effect.runFork(program(work, entered))
      return { ready: () => entered.count === work.blockers + work.tasks, done: joinFiber(fiber) }
    },
    close: async () => {}
  }
}

/** An executor built in its own scope; `close` shuts it down. */
const withExecutor = async (options: Executor.Options) => {
  const scope = Effect.runSync(Scope.make())
  const executor = await Effect.runPromise(Scope.extend(Executor.make(options), scope))
  const full = (work: Workload) => () => {
    const stats = Effect.runSync(executor.stats)
    // The dispatcher holds the head request while it waits for a permit: it counts as `admitting`.
    return stats.inFlight === work.blockers && stats.queued + stats.admitting === work.tasks
  }
  return {
    executor,
    full,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const batchPath = async (spans: boolean): Promise<Subject> => {
  const { close, executor, full } = await withExecutor({
    name: spans ? "bench-batch-spans" : "bench-batch",
    concurrency: CONCURRENCY,
    queueCapacity: 200_000,
    spans
  })
  return {
    name: spans ? "Sluice submitAll (spans on)" : "Sluice submitAll (spans off)",
    role: spans ? "batchSpans" : "batch",
    run: (work) => Effect.runPromise(Effect.asVoid(executor.submitAll(work.effects))),
    fill: (work) => {
      const fiber = Effect.runFork(executor.submitAll(work.effects))
      return { ready: full(work), done: joinFiber(fiber) }
    },
    close
  }
}

const submitPath = async (): Promise<Subject> => {
  const { close, executor, full } = await withExecutor({
    name: "bench-submit",
    concurrency: CONCURRENCY,
    queueCapacity: 200_000,
    spans: false
  })
  const program = (work: Workload) =>
    Effect.forEach(work.effects, (effect) => executor.submit(effect), { concurrency: "unbounded" })
  return {
    name: "Sluice submit x N fibers (spans off)",
    role: "submit",
    run: (work) => Effect.runPromise(Effect.asVoid(program(work))),
    fill: (work) => {
      const fiber = Effect.runFork(program(work))
      return { ready: full(work), done: joinFiber(fiber) }
    },
    close
  }
}

// ---- promise libraries ------------------------------------------------------

const pLimitSubject = (): Subject => {
  const limit = pLimit(CONCURRENCY)
  return {
    name: "p-limit",
    run: async (work) => void (await Promise.all(work.thunks.map((task) => limit(task)))),
    fill: (work) => {
      const promises = work.thunks.map((task) => limit(task))
      return {
        ready: () => limit.activeCount === work.blockers && limit.pendingCount === work.tasks,
        done: allOf(promises)
      }
    },
    close: async () => {}
  }
}

const pQueueSubject = (): Subject => {
  const queue = new PQueue({ concurrency: CONCURRENCY })
  return {
    name: "p-queue",
    role: "p-queue",
    run: async (work) => void (await Promise.all(work.thunks.map((task) => queue.add(task)))),
    fill: (work) => {
      const promises = work.thunks.map((task) => queue.add(task))
      return {
        ready: () => queue.pending === work.blockers && queue.size === work.tasks,
        done: allOf(promises)
      }
    },
    close: async () => {}
  }
}

const bottleneckSubject = (): Subject => {
  const limiter = new Bottleneck({ maxConcurrent: CONCURRENCY })
  return {
    name: "bottleneck",
    role: "bottleneck",
    tasks: {
      count: 1_000,
      why: "bottleneck awaits setTimeout(0) in its datastore for every job (~2-3 ms each): 100,000 would take minutes"
    },
    run: async (work) => void (await Promise.all(work.thunks.map((task) => limiter.schedule(task)))),
    fill: (work) => {
      const promises = work.thunks.map((task) => limiter.schedule(task))
      return {
        ready: () => {
          const counts = limiter.counts()
          return counts.EXECUTING === work.blockers && counts.QUEUED === work.tasks
        },
        done: allOf(promises)
      }
    },
    close: () => limiter.stop({ dropWaitingJobs: false })
  }
}

const cockatielSubject = (): Subject => {
  const bulkhead = Cockatiel.bulkhead(CONCURRENCY, Number.POSITIVE_INFINITY)
  return {
    name: "cockatiel bulkhead",
    role: "cockatiel",
    run: async (work) => void (await Promise.all(work.thunks.map((task) => bulkhead.execute(task)))),
    fill: (work) => {
      const promises = work.thunks.map((task) => bulkhead.execute(task))
      // The bulkhead queues synchronously; it exposes free slots, not its queue length.
      return { ready: () => bulkhead.executionSlots === 0, done: allOf(promises) }
    },
    close: async () => {}
  }
}

/** Every contender, in table order. Built one at a time so that only one is alive while it is measured. */
export const subjects: ReadonlyArray<() => Subject | Promise<Subject>> = [
  rawForEach,
  () => batchPath(false),
  () => batchPath(true),
  submitPath,
  semaphoreFibers,
  pLimitSubject,
  pQueueSubject,
  bottleneckSubject,
  cockatielSubject
]
