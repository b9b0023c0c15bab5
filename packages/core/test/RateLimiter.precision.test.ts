/**
 * Rate precision under saturation, on the TestClock: a backlog is admitted
 * exactly on its schedule, the sliding log's margin is the only rate it gives
 * up, and timers that fire late (a Clock whose sleeps overrun) neither lower
 * the long-run rate nor let any window see more than the limit allows.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Executor from "../src/Executor.js"
import * as RateLimiterInternal from "../src/internal/rateLimiter.js"
import type * as RateLimiter from "../src/RateLimiter.js"
import * as RateLimiterStore from "../src/RateLimiterStore.js"
import { makeLimiter, makeLimiterOn, timedAcquire } from "./utils/limiterHelpers.js"

/** 10 per second, burst 1: one admission per 100 ms. */
const tenPerSecond = (windowMargin?: Duration.DurationInput): Record<string, RateLimiter.LimitOptions> => ({
  requests: { limit: 10, interval: "1 second", capacity: 1, windowMargin }
})

/** The most times in any half-open window [t, t + width) (a window starting at a time is enough). */
const maxInWindow = (times: ReadonlyArray<number>, width: number): number => {
  const sorted = [...times].sort((a, b) => a - b)
  let best = 0
  let end = 0
  for (let begin = 0; begin < sorted.length; begin++) {
    while (end < sorted.length && sorted[end]! < sorted[begin]! + width) end++
    best = Math.max(best, end - begin)
  }
  return best
}

/** Admissions per interval [i * width, (i + 1) * width). */
const perInterval = (times: ReadonlyArray<number>, width: number, intervals: number): Array<number> => {
  const counts = new Array<number>(intervals).fill(0)
  for (const time of times) {
    const index = Math.floor(time / width)
    if (index < intervals) counts[index]!++
  }
  return counts
}

/**
 * The Clock in context, but every sleep overruns by the next of `lateness`
 * (ms, in turn): a timer that fires late, as on a busy event loop.
 */
const lateClock = (base: Clock.Clock, lateness: ReadonlyArray<number>): Clock.Clock => {
  let next = 0
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => base.unsafeCurrentTimeMillis(),
    unsafeCurrentTimeNanos: () => base.unsafeCurrentTimeNanos(),
    currentTimeMillis: base.currentTimeMillis,
    currentTimeNanos: base.currentTimeNanos,
    sleep: (duration) =>
      Effect.suspend(() => {
        const late = lateness[next++ % lateness.length]!
        return base.sleep(Duration.sum(duration, Duration.millis(late)))
      })
  }
}

/** A fixed pseudo-random sequence of lateness in [0, max) ms, to the microsecond (a linear congruential generator). */
const latenessSequence = (length: number, max: number, seed = 7): Array<number> => {
  let state = seed
  return Array.from({ length }, () => {
    state = (state * 1103515245 + 12345) % 2147483648
    return Math.floor((state / 2147483648) * max * 1000) / 1000
  })
}

/** `count` callers at once on `limiter`; answers when each returned, in order. */
const callers = (limiter: RateLimiter.RateLimiterShape, count: number) =>
  Effect.gen(function* () {
    const fibers = yield* Effect.forEach(Array.from({ length: count }), () => Effect.fork(timedAcquire(limiter)))
    const results = yield* Effect.forEach(fibers, Fiber.join)
    return results.map((result) => result.time).sort((a, b) => a - b)
  })

/** Runs `work` in a fiber of its own (on `clock` if given) while the TestClock moves `horizon` on. */
const runFor = <A, E>(work: Effect.Effect<A, E>, horizon: Duration.DurationInput, clock?: Clock.Clock) =>
  Effect.gen(function* () {
    // The TestClock is moved from outside: TestClock.adjust needs the TestClock as the Clock in context.
    const fiber = yield* Effect.fork(clock === undefined ? work : Effect.withClock(work, clock))
    yield* TestClock.adjust(horizon)
    return yield* Fiber.join(fiber)
  })

describe("RateLimiter precision", () => {
  it.effect("with windowMargin 0, a saturated limit admits exactly its limit in every interval, on schedule", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter({ limits: tenPerSecond(0) })
      const times = yield* runFor(callers(limiter, 60), "10 seconds")
      expect(times).toEqual(Array.from({ length: 60 }, (_, k) => k * 100))
      expect(perInterval(times, 1000, 6)).toEqual([10, 10, 10, 10, 10, 10])
    })
  )

  it.effect("with the default margin (5 ms), each interval gives up exactly the margin and no more", () =>
    Effect.gen(function* () {
      const limiter = yield* makeLimiter({ limits: tenPerSecond() })
      const times = yield* runFor(callers(limiter, 60), "10 seconds")
      // Round r (10 admissions) waits for round r - 1 to leave the window of 1,005 ms: 5 ms a round.
      expect(times).toEqual(Array.from({ length: 60 }, (_, k) => k * 100 + Math.floor(k / 10) * 5))
      expect(maxInWindow(times, 1005)).toBe(10)
    })
  )

  it.effect("timers late by up to 2 ms on every wake-up cost no rate, and no 1 s window sees more than 10", () =>
    Effect.gen(function* () {
      const clock = yield* Effect.clock
      const times = yield* runFor(
        Effect.flatMap(makeLimiter({ limits: tenPerSecond() }), (limiter) => callers(limiter, 60)),
        "20 seconds",
        lateClock(clock, latenessSequence(97, 2.5))
      )
      // On time, call k goes at 100 k + 5 ms per round before it (the 60th at 5,925 ms). Each late
      // timer delays only the call it wakes: nothing adds up, round after round.
      times.forEach((time, k) => {
        const onTime = k * 100 + Math.floor(k / 10) * 5
        expect(time).toBeGreaterThanOrEqual(onTime)
        expect(time).toBeLessThan(onTime + 2.5)
      })
      expect(maxInWindow(times, 1002.5)).toBe(10)
    })
  )

  it.effect("after a stall of 300 ms, the backlog catches up within the window bound and ends on schedule", () =>
    Effect.gen(function* () {
      const clock = yield* Effect.clock
      // The 5th sleep overruns by 300 ms (a busy process); the others by up to 2 ms.
      const lateness = latenessSequence(97, 2.5).map((late, index) => (index === 4 ? 300 : late))
      const times = yield* runFor(
        Effect.flatMap(makeLimiter({ limits: tenPerSecond() }), (limiter) => callers(limiter, 60)),
        "20 seconds",
        lateClock(clock, lateness)
      )
      // The calls held up by the stall go together when it ends (dated at their due times); the log
      // repeats that bunch a window later, and the schedule is not moved: the last call is on time.
      expect(times[59]!).toBeGreaterThanOrEqual(5925)
      expect(times[59]!).toBeLessThan(5925 + 2.5)
      expect(maxInWindow(times, 1000)).toBeLessThanOrEqual(10)
      expect(maxInWindow(times, 1002.5)).toBeLessThanOrEqual(10)
    })
  )

  it.effect("a start reported late (`began`) holds back the admission a window after it, and moves no schedule", () =>
    Effect.gen(function* () {
      /** Call 0 admitted at 0 ms, its work reported begun `startedAt` ms later, then 11 more callers. */
      const run = (startedAt: number | undefined) =>
        Effect.gen(function* () {
          const limiter = yield* makeLimiter({ limits: tenPerSecond() })
          const base = yield* Clock.currentTimeMillis
          const first = yield* limiter.acquire()
          if (startedAt !== undefined) {
            yield* TestClock.adjust(startedAt)
            yield* RateLimiterInternal.began(limiter, first)
          }
          const fibers = yield* Effect.forEach(Array.from({ length: 11 }), () => Effect.fork(timedAcquire(limiter)))
          yield* TestClock.adjust("3 seconds")
          const calls = yield* Effect.forEach(fibers, Fiber.join)
          return calls.map((call) => ({ time: call.time - base, at: call.reservation.at - base }))
        })
      const schedule = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1005, 1105]
      // Not reported: call 10 goes on schedule, a window (1,005 ms) after call 0 was charged.
      const onTime = yield* run(undefined)
      expect(onTime.map((call) => call.time)).toEqual(schedule)
      expect(onTime.map((call) => call.at)).toEqual(schedule)
      // Call 0's work began at 40 ms (a pause of the process after its admission): call 10 waits until
      // that start has left the real-time window (40 + 1,005 - 2.5 ms), so the 1 s window of starts from
      // 40 ms holds 10, not 11. It is still dated by the schedule, and call 11 is on time.
      const late = yield* run(40)
      expect(late.map((call) => call.time)).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1042.5, 1105])
      expect(late.map((call) => call.at)).toEqual(schedule)
      expect(maxInWindow([40, ...late.map((call) => call.time)], 1000)).toBe(10)
      expect(maxInWindow([40, ...onTime.map((call) => call.time)], 1000)).toBe(11)
    })
  )

  it.scoped("an Executor reports each start: a pause between an admission and its start crowds no window", () =>
    Effect.gen(function* () {
      const memory = yield* RateLimiterStore.makeMemory()
      let admissions = 0
      const begun: Array<RateLimiterStore.Receipt | null> = []
      // The dispatcher stalls for 40 ms right after the first admission, before the request can start (as a
      // pause of the process would hold it; nothing else admits meanwhile).
      const pausing: RateLimiterStore.RateLimiterStoreShape = {
        ...memory,
        reserve: (request) =>
          Effect.tap(memory.reserve(request), (result) =>
            result.charged && admissions++ === 0 ? Effect.sleep("40 millis") : Effect.void
          ),
        began: (key, buckets, receipts, now) =>
          Effect.zipRight(
            Effect.sync(() => begun.push(...receipts)),
            memory.began(key, buckets, receipts, now)
          )
      }
      const limiter = yield* makeLimiterOn(pausing, { limits: tenPerSecond() })
      const starts: Array<number> = []
      const batch = Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "paused-start", concurrency: 4, rateLimiter: limiter })
        const record = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(now)))
        return yield* executor.submitAll(Array.from({ length: 12 }, () => record))
      })
      const exits = yield* runFor(Effect.scoped(batch), "5 seconds")
      expect(exits.every((exit) => exit._tag === "Success")).toBe(true)
      expect(begun.length).toBe(12)
      // Request 10 waits for request 0's real start (40 ms) to leave the window: no 1 s of starts holds 11.
      expect(starts).toEqual([40, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1042.5, 1105])
      expect(maxInWindow(starts, 1000)).toBe(10)
    })
  )

  it.scoped("an Executor's backlog, admitted one at a time, keeps its rate through late timers and a stall", () =>
    Effect.gen(function* () {
      const clock = yield* Effect.clock
      const lateness = latenessSequence(89, 2.5, 11).map((late, index) => (index === 6 ? 300 : late))
      const starts: Array<number> = []
      const batch = Effect.gen(function* () {
        const executor = yield* Executor.make({ name: "late-timers", concurrency: 4, limits: tenPerSecond() })
        const record = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(now)))
        yield* executor.submitAll(Array.from({ length: 60 }, () => record))
      })
      yield* runFor(Effect.scoped(batch), "20 seconds", lateClock(clock, lateness))
      expect(starts.length).toBe(60)
      const sorted = [...starts].sort((a, b) => a - b)
      // Each admission is a new acquire; the dispatcher passes the one before as waitingSince.
      expect(sorted[59]!).toBeGreaterThanOrEqual(5925)
      expect(sorted[59]!).toBeLessThan(5925 + 2.5)
      expect(maxInWindow(sorted, 1000)).toBeLessThanOrEqual(10)
    })
  )
})
