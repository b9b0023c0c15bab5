/**
 * Part 8: lanes. One Executor (concurrency 64) whose limit, 50 requests per
 * second, is a bucket per key. Key A is saturated: 500 requests (ten seconds
 * of its limit) submitted at once. Key B sends a steady trickle at a tenth of
 * its own limit, 5 per second for 8 seconds, all while A's backlog lasts.
 * B's bucket is never short, so any wait of B's is a wait behind A.
 *
 * Measured for each of B's requests: the time from its `submit` to the moment
 * its task's body begins (`performance.now()` both), reported as p50, p99 and
 * max (nearest rank). The target is p99 at most one interval of B's own limit
 * (1 s). An Executor that dispatches single-file keeps B behind A's backlog
 * (seconds); one with a lane per key starts B at once. Key A's own pace and
 * how long its backlog lasted are shown too, to show that A stayed saturated
 * for the whole of B's trickle (otherwise the row would prove nothing).
 */
import { Executor } from "@sluice/core"
import * as Effect from "effect/Effect"
import { maxInWindow, sustainedRate } from "./ratePrecision.js"
import * as Table from "./table.js"

export const CONCURRENCY = 64
/** Per key: 50 requests per second (burst 50). */
export const LIMIT = 50
export const INTERVAL_MS = 1_000
const LIMITS = { requests: { limit: LIMIT, interval: `${INTERVAL_MS} millis` } } as const
/** Key A: ten intervals of its limit, all at once. */
export const A_REQUESTS = 500
/** Key B: one request every 200 ms (5/s, a tenth of its limit) for 8 s, starting 100 ms after A's burst. */
export const B_REQUESTS = 40
export const B_EVERY_MS = 200
const B_FIRST_MS = 100
/** How long each task's body runs. */
const TASK_MS = 10

export interface LanesResult {
  /** Key B's waits from submit to start, in ms, sorted. */
  readonly bWaits: ReadonlyArray<number>
  readonly p50: number
  readonly p99: number
  readonly max: number
  /** When B's last request was submitted, in ms from the start. */
  readonly bLastSubmit: number
  /** When A's last request started, in ms from the start: A was backlogged until then. */
  readonly aLastStart: number
  readonly aSustained: number
  readonly aWindowMax: number
  readonly wallSeconds: number
  readonly error?: string | undefined
}

/** The nearest-rank percentile of sorted values. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** The run: A's burst and B's trickle into one executor; answers A's start times and B's waits (ms). */
const run = (origin: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const executor = yield* Executor.make({ name: "bench-lanes", concurrency: CONCURRENCY, limits: LIMITS })
      const now = () => performance.now() - origin
      const aStarts: Array<number> = []
      const bWaits: Array<number> = []
      let bLastSubmit = 0

      const aTask = Effect.suspend(() => {
        aStarts.push(now())
        return Effect.sleep(TASK_MS)
      })
      const saturateA = Effect.forEach(range(A_REQUESTS), () => executor.submit(aTask, { key: "A" }), {
        concurrency: "unbounded",
        discard: true
      })

      /** B's request i: submitted at its time on the trickle; the wait is measured inside its body. */
      const bRequest = (i: number) =>
        Effect.zipRight(
          Effect.sleep(B_FIRST_MS + i * B_EVERY_MS),
          Effect.suspend(() => {
            const submitted = now()
            bLastSubmit = Math.max(bLastSubmit, submitted)
            const body = Effect.suspend(() => {
              bWaits.push(now() - submitted)
              return Effect.sleep(TASK_MS)
            })
            return executor.submit(body, { key: "B" })
          })
        )
      const trickleB = Effect.forEach(range(B_REQUESTS), bRequest, { concurrency: "unbounded", discard: true })

      yield* Effect.all([saturateA, trickleB], { concurrency: "unbounded", discard: true })
      return { aStarts, bWaits, bLastSubmit }
    })
  )

export const measure = async (): Promise<LanesResult> => {
  const origin = performance.now()
  try {
    const { aStarts, bWaits, bLastSubmit } = await Effect.runPromise(run(origin))
    const waits = [...bWaits].sort((a, b) => a - b)
    const starts = [...aStarts].sort((a, b) => a - b)
    if (waits.length !== B_REQUESTS) throw new Error(`${waits.length} of ${B_REQUESTS} of B's requests started`)
    return {
      bWaits: waits,
      p50: percentile(waits, 0.5),
      p99: percentile(waits, 0.99),
      max: waits[waits.length - 1]!,
      bLastSubmit,
      aLastStart: starts[starts.length - 1] ?? Number.NaN,
      aSustained: sustainedRate(starts),
      aWindowMax: maxInWindow(starts, INTERVAL_MS),
      wallSeconds: (performance.now() - origin) / 1000
    }
  } catch (error) {
    const nan = Number.NaN
    return {
      bWaits: [],
      p50: nan,
      p99: nan,
      max: nan,
      bLastSubmit: nan,
      aLastStart: nan,
      aSustained: nan,
      aWindowMax: nan,
      wallSeconds: (performance.now() - origin) / 1000,
      error: String(error)
    }
  }
}

/** The target: B's p99 wait at most one interval of its own limit. */
export const target = (result: LanesResult) => ({
  required: INTERVAL_MS,
  ok: Number.isFinite(result.p99) ? result.p99 <= INTERVAL_MS : undefined
})

/** Whether A still had a backlog when B's last request arrived (else B's waits say little). */
export const aSaturatedThroughout = (result: LanesResult) => result.aLastStart > result.bLastSubmit

export const print = (result: LanesResult): void => {
  const ms = (value: number) => `${Table.int(value)} ms`
  const { ok } = target(result)
  Table.print({
    title: `8. Lanes: key A saturated (${A_REQUESTS} at once), key B at 10% of its limit; ${LIMIT} requests / ${INTERVAL_MS / 1000} s per key, concurrency ${CONCURRENCY}`,
    columns: [{ header: "measure" }, { header: "value", align: "right" }],
    rows: [
      [`key B: requests (one every ${B_EVERY_MS} ms)`, Table.int(result.bWaits.length)],
      ["key B: wait submit → start, p50", ms(result.p50)],
      ["key B: wait submit → start, p99", ms(result.p99)],
      ["key B: wait submit → start, max", ms(result.max)],
      ["key A: sustained starts /s", Table.fixed(result.aSustained, 2)],
      ["key A: max starts in any 1 s", Number.isFinite(result.aWindowMax) ? String(result.aWindowMax) : "n/a"],
      ["key A: last start / key B: last submit", `${ms(result.aLastStart)} / ${ms(result.bLastSubmit)}`],
      ["key A backlogged through B's trickle", aSaturatedThroughout(result) ? "yes" : "NO (the row proves little)"],
      ["wall time", `${Table.fixed(result.wallSeconds, 1)} s`]
    ],
    notes: [
      "Wait: performance.now() at B's submit to performance.now() as its task's body begins; percentiles by nearest rank.",
      `Key B's own bucket (${LIMIT} per ${INTERVAL_MS / 1000} s) never runs short at 5/s: a wait of B's is a wait behind A.`,
      `Key A's most starts in 1 s may reach capacity + limit - 1 = ${2 * LIMIT - 1} (a full bucket's burst, then its refill): by design.`,
      `Target: key B's p99 wait <= one interval of its limit (${ms(INTERVAL_MS)}): ${ms(result.p99)} ${
        ok === undefined ? "MISS (not measured)" : Table.passOrMiss(ok)
      }`,
      ...(result.error === undefined ? [] : [`error: ${result.error}`])
    ]
  })
}
