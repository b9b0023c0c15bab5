import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Hedge from "../src/Hedge.js"
import { InvalidOptionsError } from "../src/InvalidOptions.js"

/** Attempt n answers `outcome` after `millis[n]`, logging its start, end or interruption. */
const scripted = (log: Array<string>, plan: Record<number, { millis: number; fails?: boolean }>) => (n: number) =>
  Effect.gen(function* () {
    log.push(`start ${n}@${yield* Clock.currentTimeMillis}`)
    const { millis, fails } = plan[n]!
    yield* Effect.sleep(millis)
    log.push(`end ${n}@${yield* Clock.currentTimeMillis}`)
    return fails === true ? yield* Effect.fail(`failed ${n}`) : `answer ${n}`
  }).pipe(
    Effect.onInterrupt(() =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => log.push(`interrupted ${n}@${now}`)))
    )
  )

describe("Hedge", () => {
  it.effect("starts a second attempt after the delay; the first to answer wins and the other is interrupted", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const policy = yield* Hedge.policy({ delay: "100 millis" })
      const fiber = yield* Effect.fork(Hedge.hedge(policy)(scripted(log, { 1: { millis: 1000 }, 2: { millis: 50 } })))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("answer 2")
      expect(log).toEqual(["start 1@0", "start 2@100", "end 2@150", "interrupted 1@150"])
    })
  )

  it.effect("an attempt that answers within the delay starts no hedge", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const policy = yield* Hedge.policy({ delay: "100 millis", maxHedges: 3 })
      const fiber = yield* Effect.fork(Hedge.hedge(policy)(scripted(log, { 1: { millis: 80 } })))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("answer 1")
      expect(log).toEqual(["start 1@0", "end 1@80"])
    })
  )

  it.effect("an early failure starts the next attempt at once; up to maxHedges more", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const policy = yield* Hedge.policy({ delay: "100 millis", maxHedges: 2 })
      const fiber = yield* Effect.fork(
        Hedge.hedge(policy)(scripted(log, { 1: { millis: 10, fails: true }, 2: { millis: 500 }, 3: { millis: 200 } }))
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("answer 3")
      expect(log).toEqual(["start 1@0", "end 1@10", "start 2@10", "start 3@110", "end 3@310", "interrupted 2@310"])
    })
  )

  it.effect("fails only when every attempt failed, with every failure in the cause", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const policy = yield* Hedge.policy({ delay: "100 millis" })
      const fiber = yield* Effect.fork(
        Hedge.hedge(policy)(scripted(log, { 1: { millis: 300, fails: true }, 2: { millis: 50, fails: true } }))
      )
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit))
        expect(Cause.failures(exit.cause).pipe((chunk) => [...chunk].sort())).toEqual(["failed 1", "failed 2"])
      expect(log).toEqual(["start 1@0", "start 2@100", "end 2@150", "end 1@300"])
    })
  )

  it.effect("bad options fail naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Hedge.policy({ delay: "soon" as never, maxHedges: 0 }))
      expect(error).toBeInstanceOf(InvalidOptionsError)
      expect(error.message).toContain('["delay"]')
      expect(error.message).toContain('["maxHedges"]')
    })
  )
})
