import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import { Batch } from "../src/internal/batchWorkers.js"

/**
 * The batch workers on their own, driven like the executor drives them: the
 * work made interruptible, each finished job handing the worker the next one.
 * One worker at a time, so every job runs on the same fiber. Both ways of
 * tidying between jobs are covered: the runtime's own methods (the default)
 * and the public Fiber API (the fallback).
 */
const runInSequence = (
  jobs: ReadonlyArray<Effect.Effect<unknown, unknown>>,
  options: { readonly maxWorkers: number; readonly publicApiOnly: boolean }
) =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const done = yield* Deferred.make<Array<Exit.Exit<unknown, unknown>>>()
    const exits: Array<Exit.Exit<unknown, unknown>> = []
    let next = 0
    const batch: Batch<number> = new Batch(
      runtime,
      options.maxWorkers,
      {
        work: (index) => Effect.interruptible(jobs[index]!),
        finished: (index, exit) => {
          exits[index] = exit
          if (next < jobs.length) {
            if (batch.offer(next) === undefined) throw new Error(`no worker for job ${next}`)
            next++
          } else {
            batch.close()
            Deferred.unsafeDone(done, Exit.succeed(exits))
          }
        }
      },
      options.publicApiOnly
    )
    batch.offer(next++)
    return yield* Deferred.await(done)
  })

describe("batch workers", () => {
  for (const publicApiOnly of [false, true]) {
    const how = publicApiOnly ? "through the public Fiber API" : "through the runtime's own methods"

    it.scoped(`each job starts from the worker's FiberRefs (${how})`, () =>
      Effect.gen(function* () {
        const ref = yield* FiberRef.make("initial")
        const seen: Array<string> = []
        const setsTheRef = Effect.gen(function* () {
          seen.push(yield* FiberRef.get(ref))
          yield* FiberRef.set(ref, "set by a job")
          yield* FiberRef.set(FiberRef.currentLogAnnotations, HashMap.make(["left", "behind"]))
        })
        const reads = Effect.gen(function* () {
          seen.push(yield* FiberRef.get(ref))
          seen.push(`${HashMap.size(yield* FiberRef.get(FiberRef.currentLogAnnotations))} annotations`)
        })
        // One worker: the jobs run on the same fiber.
        const exits = yield* runInSequence([setsTheRef, reads], { maxWorkers: 1, publicApiOnly }).pipe(
          Effect.locally(ref, "from the caller")
        )
        expect(exits.every(Exit.isSuccess)).toBe(true)
        expect(seen).toEqual(["from the caller", "from the caller", "0 annotations"])
      })
    )

    // With the runtime's own methods the next job does not wait for them (it goes to another worker):
    // the fiber left behind may take until the next job to stop. Through the public API it waits.
    const waitsForTheNextJob = !publicApiOnly
    it.scoped(`what a job forked and left running is interrupted (${how})`, () =>
      Effect.gen(function* () {
        const leftBehind = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const forks = Effect.gen(function* () {
          const started = yield* Deferred.make<void>()
          yield* Effect.fork(
            Effect.zipRight(
              Deferred.succeed(started, undefined),
              Effect.onInterrupt(Effect.never, () =>
                Effect.zipRight(
                  waitsForTheNextJob ? Deferred.await(release) : Effect.void,
                  Deferred.succeed(leftBehind, undefined)
                )
              )
            )
          )
          yield* Deferred.await(started)
        })
        const next = Deferred.succeed(release, undefined)
        const exits = yield* runInSequence([forks, next], { maxWorkers: 2, publicApiOnly })
        expect(exits.every(Exit.isSuccess)).toBe(true)
        // Would never complete if the fiber it forked were left running.
        yield* Deferred.await(leftBehind)
      })
    )
  }

  it.effect("stop interrupts the running job; the worker then retires and a new one takes the next job", () =>
    Effect.gen(function* () {
      const runtime = yield* Effect.runtime<never>()
      const running = yield* Deferred.make<void>()
      const exits: Array<Exit.Exit<unknown, unknown>> = []
      const done = yield* Deferred.make<void>()
      const jobs = [Effect.zipRight(Deferred.succeed(running, undefined), Effect.never), Effect.succeed("second")]
      const batch: Batch<number> = new Batch(runtime, 1, {
        work: (index) => Effect.interruptible(jobs[index]!),
        finished: (index, exit) => {
          exits[index] = exit
          if (index === 0) batch.offer(1)
          else Deferred.unsafeDone(done, Exit.void)
        }
      })
      const worker = batch.offer(0)!
      yield* Deferred.await(running)
      yield* worker.stop()
      yield* Deferred.await(done)
      batch.close()
      expect(Exit.isInterrupted(exits[0]!)).toBe(true)
      expect(exits[1]).toEqual(Exit.succeed("second"))
    })
  )
})
