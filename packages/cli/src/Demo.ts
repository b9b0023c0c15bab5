/**
 * `sluice demo`: the whole stack against two embedded MockProviders, in under
 * a minute. It starts two providers with separate quotas (300 requests and
 * 30,000 tokens per minute each, latency, a few faults), writes a batch of chat
 * requests of varied sizes, and runs them exactly as `sluice run --providers`
 * would: the runner, the Router (balancing, fallback, ejection), and for each
 * provider the Model (token estimates reserved and reconciled), the ApiClient
 * (typed errors, rate-limit headers, limits learned from them), the Executor
 * (limits, concurrency, retry) and a circuit breaker. Mid-run one provider
 * fails (every answer a 503) for eight seconds, then recovers: its lines move to
 * the other, none fails, and the traffic comes back once it answers again. It
 * shows the live progress, then a report: requests and tokens per minute
 * against the limits, 429s, retries, faults, latency percentiles, the
 * breakers' transitions, and the lines each provider served, second by second.
 *
 * What it adds to `sluice run`: only the staging (providers, input, outage)
 * and the report; the run itself is the same code path.
 *
 * @since 0.1.0
 */
import * as os from "node:os"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as NodeHttpPool from "@sluice/http-node/NodeHttpPool"
import { MockProvider } from "@sluice/testing"
import * as Chunk from "effect/Chunk"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as DemoReport from "./internal/demoReport.js"
import * as View from "./internal/progressView.js"
import * as RouterSend from "./internal/routerSend.js"
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
  /** When the second provider starts failing, and for how long. Default from 10 s, for 8 s. */
  readonly outage?: { readonly at: Duration.DurationInput; readonly lasting: Duration.DurationInput } | undefined
}

/**
 * Each provider's quota (the two together: 600 requests and 60,000 tokens per minute).
 *
 * @since 0.1.0
 * @category constants
 */
export const PROVIDER_LIMITS = { rpm: 300, tpm: 30_000 } as const

/**
 * The two providers' quotas together.
 *
 * @since 0.1.0
 * @category constants
 */
export const LIMITS = { rpm: 2 * PROVIDER_LIMITS.rpm, tpm: 2 * PROVIDER_LIMITS.tpm } as const

/** The providers' names and keys (the keys never shown: the report and the page are checked for them). */
const PROVIDERS = [
  { name: "alpha", key: "sk-sluice-demo-alpha", seed: 7 },
  { name: "beta", key: "sk-sluice-demo-beta", seed: 11 }
] as const

const FAULTS = { serviceUnavailable503: 0.02, reset: 0.01 } as const

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
      const requests = options.requests ?? 320
      const directory = options.directory ?? (yield* fs.makeTempDirectoryScoped({ prefix: "sluice-demo-" }))
      const input = path.join(directory, "requests.jsonl")
      const output = path.join(directory, "results.jsonl")
      yield* fs.writeFileString(input, `${batch(requests)}\n`)

      const servers = yield* Effect.forEach(PROVIDERS, (provider) =>
        MockProvider.make({
          ...PROVIDER_LIMITS,
          latency: { uniform: { min: "20 millis", max: "150 millis" } },
          faults: FAULTS,
          apiKeys: [provider.key],
          seed: provider.seed
        })
      )
      const [alpha, beta] = servers as unknown as readonly [
        MockProvider.MockProviderShape,
        MockProvider.MockProviderShape
      ]
      const reportPath =
        options.report ??
        (options.directory !== undefined
          ? path.join(directory, "report.html")
          : path.join(os.tmpdir(), "sluice-demo-report.html"))
      const recorder = yield* RunReport.make(yield* RunStats.make(LIMITS), {
        path: reportPath,
        title: "sluice demo",
        details: [
          ["providers", `alpha ${alpha.baseUrl}, beta ${beta.baseUrl}`],
          ["requests", String(requests)]
        ]
      })
      const stats = recorder.stats
      // The connection pool lives as long as the demo (a pool provided to `make` alone would close after it).
      const pool = yield* Layer.build(NodeHttpPool.layer({ connections: 16 }))
      const send = yield* RouterSend.make({
        providers: PROVIDERS.map((provider, index) => ({
          name: provider.name,
          baseUrl: servers[index]!.baseUrl,
          apiKey: Redacted.make(provider.key),
          limits: PROVIDER_LIMITS
        })),
        // As `sluice run` does by default: if every provider were down, lines would wait (shown on the live line).
        maxOutage: "5 minutes",
        // Shorter than `sluice run`'s 30 s, so that an ejected provider comes back within the demo.
        ejectionTime: "3 seconds",
        shared: { burst: 0.02, concurrency: 8, maxAttempts: 5, timeout: "10 seconds" }
      }).pipe(Effect.provideService(RunStats.RunStats, stats), Effect.provide(pool))
      const breakers = yield* Effect.forEach(send.breakers, ([name, breaker]) =>
        Effect.map(breaker.subscribe, (transitions) => [name, transitions] as const)
      )
      for (const [, breaker] of send.breakers.slice(1)) yield* recorder.watchBreaker(breaker)

      const outageAt = Duration.decode(options.outage?.at ?? "10 seconds")
      const outageFor = Duration.decode(options.outage?.lasting ?? "8 seconds")
      const outageFrom = Duration.toMillis(outageAt)
      const outageTo = outageFrom + Duration.toMillis(outageFor)
      yield* Console.log(
        `Sluice demo: ${requests} chat requests to two MockProviders, alpha at ${alpha.baseUrl} and beta at ${beta.baseUrl}\n` +
          `each with its own quota, ${PROVIDER_LIMITS.rpm} requests and ${PROVIDER_LIMITS.tpm.toLocaleString("en-US")} tokens per minute ` +
          `(together ${LIMITS.rpm} and ${LIMITS.tpm.toLocaleString("en-US")}); 2% of answers are 503, 1% connection resets;\n` +
          `beta fails every request from ${Duration.format(outageAt)} to ${Duration.format(Duration.millis(outageTo))}: its lines move to alpha, and come back when it recovers.\n`
      )
      // The outage: every answer of beta a 503, then its usual faults again.
      yield* Effect.forkScoped(
        Effect.gen(function* () {
          yield* Effect.sleep(outageAt)
          yield* beta.setFaults({ serviceUnavailable503: 1 })
          yield* Effect.sleep(outageFor)
          yield* beta.setFaults(FAULTS)
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
      const summary = yield* Runner.run({ input, output, concurrency: 2 * send.concurrency }, send).pipe(
        Effect.provideService(RunStats.RunStats, stats)
      )
      yield* Fiber.interrupt(progress)
      yield* draw
      if (live) yield* Effect.sync(() => void process.stdout.write("\n"))

      const results = (yield* fs.readFileString(output))
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as DemoReport.ResultLine)
      const counters = yield* Effect.forEach(servers, (server) => server.counters)
      const transitions: Array<DemoReport.NamedTransition> = []
      for (const [name, queue] of breakers) {
        for (const transition of Chunk.toReadonlyArray(yield* Queue.takeAll(queue))) {
          transitions.push({ provider: name, transition })
        }
      }
      const report = DemoReport.render({
        summary,
        results,
        counters,
        progress: yield* stats.snapshot,
        transitions,
        limits: LIMITS,
        startedAt,
        outage: { provider: "beta", fromMillis: outageFrom, toMillis: outageTo }
      })
      yield* Console.log(report.lines.join("\n"))
      yield* recorder.write
      yield* Console.log(`\nReport page: ${reportPath}`)
      if (options.directory !== undefined) yield* Console.log(`\nInput and results: ${directory}`)
      return { summary, report, reportPath }
    })
  )
