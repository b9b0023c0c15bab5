/**
 * `sluice demo`: the whole stack against an embedded MockProvider, in under a
 * minute. It starts the provider (600 requests and 60,000 tokens per minute,
 * latency, a few faults, and a three-second outage), writes a batch of chat
 * requests of varied sizes, and runs them exactly as `sluice run` would: the
 * runner, the Model (token estimates reserved and reconciled), the ApiClient
 * (typed errors, rate-limit headers), the Executor (limits, concurrency,
 * retry) and a circuit breaker that opens during the outage. It shows the
 * live progress, then a report: requests and tokens per minute against the
 * limits, 429s, retries, faults, latency percentiles and the breaker's
 * transitions.
 *
 * What it adds to `sluice run`: only the staging (provider, input, outage)
 * and the report; the run itself is the same code path.
 *
 * @since 0.1.0
 */
import * as os from "node:os"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { CircuitBreaker } from "@sluice/core"
import * as NodeHttpPool from "@sluice/http-node/NodeHttpPool"
import { MockProvider } from "@sluice/testing"
import * as Chunk from "effect/Chunk"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as HttpSend from "./HttpSend.js"
import * as DemoReport from "./internal/demoReport.js"
import * as View from "./internal/progressView.js"
import * as Runner from "./Runner.js"
import * as RunReport from "./RunReport.js"
import * as RunStats from "./RunStats.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Chat requests in the batch. Default 320 (about 45 s at the demo's limits). */
  readonly requests?: number | undefined
  /** Where the input and output files go. Default a new temporary directory. */
  readonly directory?: string | undefined
  /** Redraw progress in place (a terminal), or print a line every few seconds. */
  readonly live?: boolean | undefined
  /**
   * Where the report page goes. Default `report.html` in `directory` when
   * given, else `sluice-demo-report.html` in the system's temporary directory.
   */
  readonly report?: string | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const LIMITS = { rpm: 600, tpm: 60_000 } as const

const API_KEY = "sk-sluice-demo"

const WORDS = ["river", "sluice", "gate", "token", "bucket", "window", "limit", "budget", "probe", "breaker", "queue"]

/** A deterministic batch: prompts from 5 to 100 words, output caps from 16 to 64 tokens. */
export const batch = (requests: number): string =>
  Array.from({ length: requests }, (_, i) => {
    const words = 5 + ((i * 7919) % 96)
    const content = Array.from({ length: words }, (_, w) => WORDS[(i + w * 3) % WORDS.length]).join(" ")
    const body = { model: "mock-1", messages: [{ role: "user", content }], max_tokens: 16 + ((i * 31) % 49) }
    return JSON.stringify({ custom_id: `demo-${i + 1}`, method: "POST", url: "/v1/chat/completions", body })
  }).join("\n")

/**
 * Runs the demo; answers the report's lines (also printed).
 *
 * @since 0.1.0
 * @category running
 */
export const run = (options: Options = {}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const directory = options.directory ?? (yield* fs.makeTempDirectoryScoped({ prefix: "sluice-demo-" }))
      const input = path.join(directory, "requests.jsonl")
      const output = path.join(directory, "results.jsonl")
      yield* fs.writeFileString(input, `${batch(options.requests ?? 320)}\n`)

      const provider = yield* MockProvider.make({
        ...LIMITS,
        latency: { uniform: { min: "20 millis", max: "150 millis" } },
        faults: { serviceUnavailable503: 0.02, reset: 0.01 },
        apiKeys: [API_KEY],
        seed: 7
      })
      const breaker = yield* CircuitBreaker.make({
        name: "mock-provider",
        policy: { kind: "count", size: 20, failureRate: 0.5, minimumCalls: 10 },
        openDuration: "1 second",
        halfOpenProbes: 2
      })
      const transitions = yield* breaker.subscribe
      const reportPath =
        options.report ??
        (options.directory !== undefined
          ? path.join(directory, "report.html")
          : path.join(os.tmpdir(), "sluice-demo-report.html"))
      const recorder = yield* RunReport.make(yield* RunStats.make(LIMITS), {
        path: reportPath,
        title: "sluice demo",
        details: [
          ["provider", provider.baseUrl],
          ["requests", String(options.requests ?? 320)]
        ]
      })
      yield* recorder.watchBreaker(breaker)
      const stats = recorder.stats
      // The connection pool lives as long as the demo (a pool provided to `make` alone would close after it).
      const pool = yield* Layer.build(NodeHttpPool.layer({ connections: 16 }))
      const send = yield* HttpSend.make({
        name: "mock-provider",
        baseUrl: provider.baseUrl,
        apiKey: Redacted.make(API_KEY),
        ...LIMITS,
        burst: 0.02,
        concurrency: 16,
        maxAttempts: 5,
        timeout: "10 seconds",
        breaker,
        // As `sluice run` does by default: lines wait out the outage (shown on the live line) instead of failing.
        maxOutage: "5 minutes"
      }).pipe(Effect.provideService(RunStats.RunStats, stats), Effect.provide(pool))

      yield* Console.log(
        `Sluice demo: ${options.requests ?? 320} chat requests to a MockProvider at ${provider.baseUrl}\n` +
          `limits ${LIMITS.rpm} requests and ${LIMITS.tpm.toLocaleString("en-US")} tokens per minute; ` +
          "2% of answers are 503, 1% connection resets, and the provider is down from 8 s to 11 s.\n"
      )
      // The outage: every answer a 503 for three seconds.
      yield* Effect.forkScoped(
        Effect.gen(function* () {
          yield* Effect.sleep("8 seconds")
          yield* provider.setFaults({ serviceUnavailable503: 1 })
          yield* Effect.sleep("3 seconds")
          yield* provider.setFaults({ serviceUnavailable503: 0.02, reset: 0.01 })
        })
      )
      const live = options.live ?? process.stdout.isTTY === true
      const draw = Effect.flatMap(stats.snapshot, (progress) =>
        live
          ? Effect.sync(() => void process.stdout.write(`\r\x1b[2K${View.progressLine(progress)}`))
          : Console.log(View.progressLine(progress))
      )
      const progress = yield* Effect.forkScoped(Effect.repeat(draw, Schedule.spaced(live ? "250 millis" : "5 seconds")))
      const startedAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const summary = yield* Runner.run({ input, output, concurrency: 32 }, send).pipe(
        Effect.provideService(RunStats.RunStats, stats)
      )
      yield* Fiber.interrupt(progress)
      yield* draw
      if (live) yield* Effect.sync(() => void process.stdout.write("\n"))

      const results = (yield* fs.readFileString(output))
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as DemoReport.ResultLine)
      const report = DemoReport.render({
        summary,
        results,
        counters: yield* provider.counters,
        progress: yield* stats.snapshot,
        transitions: Chunk.toReadonlyArray(yield* Queue.takeAll(transitions)),
        limits: LIMITS,
        startedAt
      })
      yield* Console.log(report.lines.join("\n"))
      yield* recorder.write
      yield* Console.log(`\nReport page: ${reportPath}`)
      if (options.directory !== undefined) yield* Console.log(`\nInput and results: ${directory}`)
      return { summary, report, reportPath }
    })
  )
