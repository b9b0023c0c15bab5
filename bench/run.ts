/**
 * The Sluice benchmark, in one run (about 10 minutes on 2 cores):
 *
 *   1. throughput and heap per queued request, 100,000 trivial tasks at
 *      concurrency 16, against raw Effect and the promise libraries;
 *   2. one million tasks through the batch path with a bounded queue;
 *   3. rate precision at 200 requests per second;
 *   4. circuit-breaker overhead per call beside opossum and cockatiel;
 *   5. HTTP requests per second through the ApiClient beside undici and the platform client;
 *   6. the main job: 2,000 chat requests through `sluice run` and a naive p-limit runner,
 *      against a MockProvider limiting requests and tokens (about 3 minutes);
 *   7. the product's regime: CPU per request of 20,000 submits (tasks of 5-50 ms, requests
 *      and tokens limits over 8 keys, concurrency 256) beside Effect.forEach with a Semaphore;
 *   8. lanes: a trickle on one key beside a saturated key, the trickle's wait to start;
 *   9. an outage: the main job's 2,000 lines through `sluice run` and the naive runner, the
 *      MockProvider answering 503 to everything for 20 s in the middle (about 1 minute);
 *  10. one quota in Redis: admissions/s, p50/p99 and commands per admission of @sluice/redis beside
 *      rate-limiter-flexible and bottleneck's clustering mode, against the local Redis (REDIS_URL);
 *  11. the Router's selection cost per call, every strategy and affinity, at 2, 16, 128 and 1,000 providers;
 *  12. the Router end to end: 2,000 lines through `sluice run --providers` over two MockProviders with
 *      separate token limits, steady and with one provider down for 20 s (about 2 minutes);
 *  13. every target of every part, PASS or MISS.
 *
 * Run: npx -y pnpm@10.34.9 bench   (bench/build.mjs bundles it without tsx's keepNames, then
 *      node --expose-gc bench/build/run.mjs)
 * Some parts only: npx -y pnpm@10.34.9 bench --only throughput,breaker
 *   (throughput, million, rate, breaker, http, runner, regime, lanes, outage, redis, router, routerE2e); the targets table still lists
 *   every target, those of the parts left out as "not run".
 * Tables go to stdout, progress to stderr. The exit code is 0 whatever the
 * results: this is a report, not a test.
 */
import * as os from "node:os"
import * as BatchMillion from "./batchMillion.js"
import * as Breaker from "./breaker.js"
import { hasGc } from "./harness.js"
import * as Http from "./http.js"
import * as Lanes from "./lanes.js"
import * as Outage from "./outage.js"
import * as RatePrecision from "./ratePrecision.js"
import * as RedisPart from "./redis.js"
import * as Regime from "./regime.js"
import * as RouterE2e from "./routerE2e.js"
import * as RouterSelection from "./routerSelection.js"
import * as Runner from "./runner.js"
import * as Targets from "./targets.js"
import * as Throughput from "./throughput.js"

const THROUGHPUT: Throughput.ThroughputOptions = { tasks: 100_000, queued: 100_000, maxReps: 5, budgetMs: 2_500 }
const BREAKER_CALLS = 1_000_000
const BREAKER_REPS = 7
const HTTP_REQUESTS = 5_000
const HTTP_ROUNDS = 5
const MILLION: BatchMillion.MillionOptions = { tasks: 1_000_000, queueCapacity: 10_000, concurrency: 16 }

const PARTS = [
  "throughput",
  "million",
  "rate",
  "breaker",
  "http",
  "runner",
  "regime",
  "lanes",
  "outage",
  "redis",
  "router",
  "routerE2e"
] as const
type Part = (typeof PARTS)[number]

/** The parts named by `--only a,b` (all of them without it). */
const selectedParts = (argv: ReadonlyArray<string>): ReadonlySet<Part> => {
  const at = argv.indexOf("--only")
  if (at === -1) return new Set(PARTS)
  const names = (argv[at + 1] ?? "").split(",").filter((name) => name !== "")
  const unknown = names.filter((name) => !(PARTS as ReadonlyArray<string>).includes(name))
  if (names.length === 0 || unknown.length > 0) {
    throw new Error(`--only takes a comma-separated list of ${PARTS.join(", ")}; got "${argv[at + 1] ?? ""}"`)
  }
  return new Set(names as Array<Part>)
}

const progress = (line: string) => {
  process.stderr.write(`${line}\n`)
}

const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`

const header = () => {
  const cpus = os.cpus()
  const lines = [
    "Sluice benchmark",
    `node ${process.version}, ${cpus.length} x ${cpus[0]?.model ?? "cpu"}, ${os.platform()} ${os.arch()}`,
    `load average at start: ${os
      .loadavg()
      .map((load) => load.toFixed(2))
      .join(" ")} (other work on the machine skews ops/s)`,
    hasGc()
      ? "GC exposed: heap figures are measured after forced collections."
      : "WARNING: run with node --expose-gc; heap per queued request is not measured without it."
  ]
  process.stdout.write(`${lines.join("\n")}\n`)
}

const main = async () => {
  const began = performance.now()
  const parts = selectedParts(process.argv.slice(2))
  header()

  /** Runs `part` if it was selected: its progress lines, its table; answers what it measured. */
  const run = async <A>(
    part: Part,
    title: string,
    measure: () => Promise<A>,
    print: (result: A) => void
  ): Promise<A | undefined> => {
    if (!parts.has(part)) return undefined
    progress(`${title} ...`)
    const since = performance.now()
    const result = await measure()
    print(result)
    progress(`${title.split(" ")[0]} done in ${seconds(since)}`)
    return result
  }

  const throughput = await run(
    "throughput",
    "1. throughput and memory",
    () => Throughput.measure(THROUGHPUT, progress),
    (rows) => Throughput.print(rows, THROUGHPUT)
  )
  const million = await run(
    "million",
    "2. one million through submitAll",
    () => BatchMillion.measure(MILLION),
    (result) => BatchMillion.print(result, MILLION)
  )
  const rates = await run(
    "rate",
    "3. rate precision (about 5 s per row)",
    () => RatePrecision.measure(progress),
    RatePrecision.print
  )
  const breaker = await run(
    "breaker",
    "4. circuit breaker overhead",
    () => Breaker.measure(BREAKER_CALLS, BREAKER_REPS, progress),
    (rows) => Breaker.print(rows, BREAKER_CALLS, BREAKER_REPS)
  )
  const http = await run(
    "http",
    "5. HTTP client CPU and throughput",
    () => Http.measure(HTTP_REQUESTS, HTTP_ROUNDS, progress),
    (result) => Http.print(result, HTTP_REQUESTS, HTTP_ROUNDS)
  )
  const runner = await run(
    "runner",
    "6. the main job: sluice run beside a naive runner (about 3 minutes)",
    () => Runner.measure(progress),
    Runner.print
  )
  const regime = await run(
    "regime",
    "7. the product's regime (about 3 minutes)",
    () => Regime.measure(progress),
    Regime.print
  )
  const lanes = await run("lanes", "8. lanes (about 10 s)", Lanes.measure, Lanes.print)
  const outage = await run(
    "outage",
    "9. an outage in the middle of the main job (about 1 minute)",
    () => Outage.measure(progress),
    Outage.print
  )

  const redis = await run(
    "redis",
    "10. one quota in Redis (about 30 s)",
    () => RedisPart.measure(progress),
    RedisPart.print
  )

  const router = await run(
    "router",
    "11. Router selection per call (about 1 minute)",
    () => RouterSelection.measure(progress),
    RouterSelection.print
  )

  const routerE2e = await run(
    "routerE2e",
    "12. the Router end to end (about 2 minutes)",
    () => RouterE2e.measure(progress),
    RouterE2e.print
  )

  Targets.print(
    Targets.checks({
      throughput,
      million,
      rates,
      breaker,
      http: http?.rows,
      runner,
      regime,
      lanes,
      outage,
      redis,
      router,
      routerE2e
    })
  )
  process.stdout.write(`\nTotal time: ${seconds(began)}\n`)
}

main()
  .catch((error: unknown) => {
    process.stdout.write(
      `\nThe benchmark stopped early: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`
    )
  })
  .finally(() => {
    // Some peers keep timers alive; leave once stdout is flushed. Exit 0: a report, not a test.
    process.stdout.write("", () => process.exit(0))
  })
