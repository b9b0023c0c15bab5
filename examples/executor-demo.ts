/**
 * The Executor at work, in real time, against a simulated model API: 120
 * requests of varied token cost through a limit of 1,200 requests and 600,000
 * tokens per minute, 8 at a time, with a few slow calls and failures. Prints
 * progress each second and a final report of achieved rates against the
 * limits, latency percentiles and outcomes.
 *
 * This is the README's main job until `sluice demo` (with the embedded mock
 * provider) arrives. Run: npx -y pnpm@10.34.9 demo
 */
import { Executor, RequestEvent } from "@sluice/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"

const REQUESTS = 120
const LIMITS = {
  requests: { limit: 1_200, interval: "1 minute", capacity: 5 },
  tokens: { limit: 600_000, interval: "1 minute", capacity: 5_000 }
} as const

/** A fake model call: 40–160 ms, a slow one now and then, a 2% failure rate. */
const fakeModelCall = (tokens: number) =>
  Effect.gen(function* () {
    const slow = (yield* Random.nextIntBetween(0, 20)) === 0
    yield* Effect.sleep(slow ? 600 : yield* Random.nextIntBetween(40, 160))
    if ((yield* Random.nextIntBetween(0, 50)) === 0) return yield* Effect.fail(new Error("upstream 500"))
    return { tokens }
  })

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const program = Effect.gen(function* () {
  const executor = yield* Executor.make({ name: "demo", concurrency: 8, limits: LIMITS, timeout: "500 millis" })
  const events = yield* executor.subscribe
  const startedAt = yield* Clock.currentTimeMillis
  const costs = yield* Effect.forEach(Array.from({ length: REQUESTS }), () => Random.nextIntBetween(100, 900))
  const totalTokens = costs.reduce((sum, tokens) => sum + tokens, 0)

  yield* Console.log(
    `Sluice demo: ${REQUESTS} requests (${totalTokens} tokens) through ${LIMITS.requests.limit} requests/min and ` +
      `${LIMITS.tokens.limit} tokens/min, concurrency 8, timeout 500 ms\n`
  )

  const progress = yield* Effect.fork(
    Effect.repeat(
      Effect.gen(function* () {
        const stats = yield* executor.stats
        const elapsed = ((yield* Clock.currentTimeMillis) - startedAt) / 1000
        const done = stats.completed + stats.failed + stats.cancelled
        yield* Console.log(
          `  ${elapsed.toFixed(1).padStart(5)} s  done ${String(done).padStart(3)}/${REQUESTS}  ` +
            `in flight ${stats.inFlight}  queued ${stats.queued}  failed ${stats.failed}`
        )
      }),
      Schedule.spaced("1 second")
    ).pipe(Effect.delay("1 second"))
  )

  const exits = yield* executor.submitAll(costs.map((tokens) => ({ effect: fakeModelCall(tokens), cost: { tokens } })))
  yield* Fiber.interrupt(progress)

  const elapsedMinutes = ((yield* Clock.currentTimeMillis) - startedAt) / 60_000
  const all: Array<RequestEvent.RequestEvent> = Array.from(yield* Queue.takeAll(events))
  const ended = all.filter((event) => RequestEvent.isTerminal(event.status))
  const latencies = ended
    .filter((event) => event.timestamps.CALLING !== undefined)
    .map((event) => event.timestamps[event.status]! - event.timestamps.CALLING!)
    .sort((a, b) => a - b)
  const succeeded = exits.filter(Exit.isSuccess).length
  const tokensSent = costs.reduce((sum, tokens, index) => sum + (exits[index]!._tag === "Success" ? tokens : 0), 0)
  const byError = new Map<string, number>()
  for (const event of ended.filter((e) => e.status === "FAILED")) {
    const error = event.error as { _tag?: string; message?: string }
    const label = error._tag ?? error.message ?? String(error)
    byError.set(label, (byError.get(label) ?? 0) + 1)
  }

  const row = (label: string, value: string) => Console.log(`  ${label.padEnd(24)} ${value}`)
  yield* Console.log("\nReport")
  yield* row("wall time", `${(elapsedMinutes * 60).toFixed(2)} s`)
  yield* row(
    "requests per minute",
    `${(REQUESTS / elapsedMinutes).toFixed(0)} achieved / ${LIMITS.requests.limit} limit`
  )
  yield* row(
    "tokens per minute",
    `${(totalTokens / elapsedMinutes).toFixed(0)} admitted / ${LIMITS.tokens.limit} limit ` +
      `(the buckets start full: a burst of ${LIMITS.requests.capacity} requests, ${LIMITS.tokens.capacity} tokens)`
  )
  yield* row("succeeded", `${succeeded} (${tokensSent} tokens)`)
  yield* row("failed", [...byError].map(([label, count]) => `${count} × ${label}`).join(", ") || "0")
  yield* row(
    "latency p50 / p95 / p99",
    `${percentile(latencies, 50)} / ${percentile(latencies, 95)} / ${percentile(latencies, 99)} ms`
  )
  const report = yield* executor.shutdown()
  yield* row("abandoned at shutdown", String(report.abandoned.length))
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
