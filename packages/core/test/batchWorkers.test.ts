import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import { Batch } from "../src/internal/batchWorkers.js"

/**
 * The batch workers on their own, driven like the executor drives them: the
 * work made interruptible, each finished job handing the worker the next one.
 * One worker at a time, so every job runs on the same fiber. Both ways of
 * tidying between jobs are covered: the runtime's own methods (the default)
 * and the public Fiber API (the fallback).
 */
const runInSequence = (jobs: ReadonlyArray<Effect.Effect<unknown, unknown>>, publicApiOnly: boolean) =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const done = yield* Deferred.make<Array<Exit.Exit<unknown, unknown>>>()
    const exits: Array<Exit.Exit<unknown, unknown>> = []
    let next = 0
    const batch: Batch<number> = new Batch(
      runtime,
      1,
      {
        work: (index) => Effect.interruptible(jobs[index]!),
        finished: (index, exit) => {
          exits[index] = exit
          if (next < jobs.length) {
            batch.offer(next++)
          } else {
            batch.close()
            Deferred.unsafeDone(done, Exit.succeed(exits))
          }
        }
      },
      publicApiOnly
    )
    batch.offer(next++)
    return yield* Deferred.await(done)
  })

describe("batch workers", () => {
  for (const publicApiOnly of [false, true]) {
    const how = publicApiOnly ? "through the public Fiber API" : "through the runtime's own methods"

    it.scoped(`each job starts from the worker's FiberRefs, and what it forked ends with it (${how})`, () =>
      Effect.gen(function* () {
        const ref = yield* FiberRef.make("initial")
        const seen: Array<string> = []
        const leftBehind = yield* Deferred.make<void>()
        const first = Effect.gen(function* () {
          seen.push(yield* FiberRef.get(ref))
          yield* FiberRef.set(ref, "set by the first job")
          const started = yield* Deferred.make<void>()
          yield* Effect.fork(
            Effect.zipRight(
              Deferred.succeed(started, undefined),
              Effect.onInterrupt(Effect.never, () => Deferred.succeed(leftBehind, undefined))
            )
          )
          yield* Deferred.await(started)
        })
        const second = Effect.gen(function* () {
          seen.push(yield* FiberRef.get(ref))
          seen.push((yield* Deferred.isDone(leftBehind)) ? "child interrupted" : "child still running")
        })
        const exits = yield* runInSequence([first, second], publicApiOnly).pipe(Effect.locally(ref, "from the caller"))
        expect(exits.every(Exit.isSuccess)).toBe(true)
        expect(seen).toEqual(["from the caller", "from the caller", "child interrupted"])
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
