/**
 * The Sluice benchmark, in one run (about 4 minutes on 2 cores):
 *
 *   1. throughput and heap per queued request, 100,000 trivial tasks at
 *      concurrency 16, against raw Effect and the promise libraries;
 *   2. one million tasks through the batch path with a bounded queue;
 *   3. rate precision at 200 requests per second;
 *   4. circuit-breaker overhead per call beside opossum and cockatiel;
 *   5. HTTP requests per second through the ApiClient beside undici and the platform client;
 *   6. the main job: 2,000 chat requests through `sluice run` and a naive p-limit runner,
 *      against a MockProvider limiting requests and tokens (about 3 minutes);
 *   7. the targets, PASS or MISS.
 *
 * Run: npx -y pnpm@10.34.9 bench   (bench/build.mjs bundles it without tsx's keepNames, then
 *      node --expose-gc bench/build/run.mjs)
 * Some parts only: npx -y pnpm@10.34.9 bench --only throughput,breaker
 *   (throughput, million, rate, breaker, http, runner); the targets table then checks what was measured.
 * Tables go to stdout, progress to stderr. The exit code is 0 whatever the
 * results: this is a report, not a test.
 */
import * as os from "node:os"
import * as BatchMillion from "./batchMillion.js"
import * as Breaker from "./breaker.js"
import { hasGc } from "./harness.js"
import * as Http from "./http.js"
import * as RatePrecision from "./ratePrecision.js"
import * as Runner from "./runner.js"
import * as Targets from "./targets.js"
import * as Throughput from "./throughput.js"

const THROUGHPUT: Throughput.ThroughputOptions = { tasks: 100_000, queued: 100_000, maxReps: 5, budgetMs: 2_500 }
const BREAKER_CALLS = 1_000_000
const BREAKER_REPS = 7
const HTTP_REQUESTS = 5_000
const HTTP_ROUNDS = 5
const MILLION: BatchMillion.MillionOptions = { tasks: 1_000_000, queueCapacity: 10_000, concurrency: 16 }

const PARTS = ["throughput", "million", "rate", "breaker", "http", "runner"] as const
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

  let throughput: Array<Throughput.ThroughputRow> = []
  if (parts.has("throughput")) {
    progress("1. throughput and memory ...")
    const since = performance.now()
    throughput = await Throughput.measure(THROUGHPUT, progress)
    Throughput.print(throughput, THROUGHPUT)
    progress(`1. done in ${seconds(since)}`)
  }

  let million: BatchMillion.MillionResult | undefined
  if (parts.has("million")) {
    progress("2. one million through submitAll ...")
    const since = performance.now()
    million = await BatchMillion.measure(MILLION)
    BatchMillion.print(million, MILLION)
    progress(`2. done in ${seconds(since)}`)
  }

  let rates: Array<RatePrecision.RateRow> = []
  if (parts.has("rate")) {
    progress("3. rate precision (about 5 s per row) ...")
    const since = performance.now()
    rates = await RatePrecision.measure(progress)
    RatePrecision.print(rates)
    progress(`3. done in ${seconds(since)}`)
  }

  if (parts.has("breaker")) {
    progress("4. circuit breaker overhead ...")
    const since = performance.now()
    const breaker = await Breaker.measure(BREAKER_CALLS, BREAKER_REPS, progress)
    Breaker.print(breaker, BREAKER_CALLS, BREAKER_REPS)
    progress(`4. done in ${seconds(since)}`)
  }

  if (parts.has("http")) {
    progress("5. HTTP client throughput ...")
    const since = performance.now()
    const http = await Http.measure(HTTP_REQUESTS, HTTP_ROUNDS, progress)
    Http.print(http, HTTP_REQUESTS, HTTP_ROUNDS)
    progress(`5. done in ${seconds(since)}`)
  }

  if (parts.has("runner")) {
    progress("6. the main job: sluice run beside a naive runner (about 3 minutes) ...")
    const since = performance.now()
    Runner.print(await Runner.measure(progress))
    progress(`6. done in ${seconds(since)}`)
  }

  Targets.print(Targets.checks(throughput, million, rates))
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
