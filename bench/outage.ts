/**
 * Part 9: an outage in the middle of the main job. The same 2,000 chat lines
 * as part 6 go to a MockProvider (no limits, 50 to 250 ms of latency) that
 * goes down once half of them are served: for 20 s it answers 503 to every
 * request, then serves again. Through:
 *
 * - `sluice run`, the real program (its build, as the README runs it) with its
 *   defaults: the circuit breaker it has by default opens, the lines wait and
 *   are sent again when the provider answers, within `--max-outage` (5 min);
 * - the naive runner of part 6 (p-limit, backoff on 429 only, the cookbook
 *   approach), at the same concurrency and attempts.
 *
 * The target: `sluice run` ends with 0 failed lines. The server's counters
 * give the requests each runner sent and the 503s it received.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { MockProvider } from "@sluice/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { batchLines, CONCURRENCY, MAX_ATTEMPTS, naiveRun, REQUESTS, sluiceRun } from "./runner.js"
import * as Table from "./table.js"

export const OUTAGE_SECONDS = 20
/** The outage begins when this many lines have been served. */
export const OUTAGE_AFTER_SERVED = REQUESTS / 2

export interface OutageRow {
  readonly name: string
  readonly role: "sluice" | "naive"
  readonly succeeded: number
  readonly failed: number
  /** Requests the server saw from this runner, retries included. */
  readonly requests: number
  /** 503s it answered during the outage. */
  readonly unavailable: number
  /** Whether the outage began before the runner finished (else the row says nothing). */
  readonly outageHit: boolean
  readonly wallSeconds: number
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/** Takes the provider down for `OUTAGE_SECONDS` once half the batch is served, unless the run ends first. */
const outageInTheMiddle = async (provider: MockProvider.MockProviderShape, finished: () => boolean) => {
  while (!finished()) {
    if ((await Effect.runPromise(provider.counters)).served >= OUTAGE_AFTER_SERVED) {
      await Effect.runPromise(provider.setFaults({ serviceUnavailable503: 1 }))
      await sleep(OUTAGE_SECONDS * 1000)
      await Effect.runPromise(provider.setFaults({}))
      return true
    }
    await sleep(20)
  }
  return false
}

export const measure = async (progress: (line: string) => void): Promise<Array<OutageRow>> => {
  const scope = Effect.runSync(Scope.make())
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-bench-outage-"))
  try {
    const provider = await Effect.runPromise(
      Scope.extend(
        MockProvider.make({
          latency: { uniform: { min: "50 millis", max: "250 millis" } },
          // Every request of a run is logged: the retries of the lines waiting out the outage included.
          logCapacity: 100_000,
          seed: 13
        }),
        scope
      )
    )
    const lines = batchLines(REQUESTS)
    const input = path.join(directory, "requests.jsonl")
    fs.writeFileSync(input, `${lines.join("\n")}\n`)

    const rows: Array<OutageRow> = []
    const row = async (
      name: string,
      role: OutageRow["role"],
      run: () => Promise<{ succeeded: number; failed: number }>
    ) => {
      await Effect.runPromise(Effect.zipRight(provider.setFaults({}), provider.reset))
      progress(`   ${name} ...`)
      let finished = false
      const startedAt = performance.now()
      const outage = outageInTheMiddle(provider, () => finished)
      const { succeeded, failed } = await run().finally(() => {
        finished = true
      })
      const wallSeconds = (performance.now() - startedAt) / 1000
      // The naive runner is done long before the provider is back: let the outage end before the next row.
      const outageHit = await outage
      const counters = await Effect.runPromise(provider.counters)
      rows.push({
        name,
        role,
        succeeded,
        failed,
        requests: counters.total,
        unavailable: counters.faults.serviceUnavailable503,
        outageHit,
        wallSeconds
      })
    }

    await row("sluice run (defaults: breaker, --max-outage 5m)", "sluice", async () => {
      const args = [
        "--input",
        input,
        "--output",
        path.join(directory, "results.jsonl"),
        "--base-url",
        provider.baseUrl,
        "--concurrency",
        String(CONCURRENCY),
        "--max-attempts",
        String(MAX_ATTEMPTS),
        "--json"
      ]
      return (await sluiceRun(args)).summary
    })
    await row("naive: p-limit + backoff on 429", "naive", () => naiveRun(`${provider.baseUrl}/chat/completions`, lines))
    return rows
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(directory, { recursive: true, force: true })
  }
}

/** The target: `sluice run` loses no line to the outage (and the outage did happen during its run). */
export const target = (row: OutageRow) => row.outageHit && row.failed === 0 && row.succeeded === REQUESTS

export const print = (rows: ReadonlyArray<OutageRow>) => {
  const sluice = rows.find((row) => row.role === "sluice")
  Table.print({
    title: `9. An outage: ${Table.int(REQUESTS)} chat lines at ${CONCURRENCY} concurrent, the MockProvider answering 503 to everything for ${OUTAGE_SECONDS} s once ${Table.int(OUTAGE_AFTER_SERVED)} are served`,
    columns: [
      { header: "runner" },
      { header: "failed lines", align: "right" },
      { header: "succeeded", align: "right" },
      { header: "requests sent", align: "right" },
      { header: "503s received", align: "right" },
      { header: "wall time", align: "right" }
    ],
    rows: rows.map((row) => [
      row.outageHit ? row.name : `${row.name} (finished before the outage)`,
      Table.int(row.failed),
      Table.int(row.succeeded),
      Table.int(row.requests),
      Table.int(row.unavailable),
      `${Table.fixed(row.wallSeconds, 1)} s`
    ]),
    notes: [
      `Both runners make up to ${MAX_ATTEMPTS} attempts per line; the naive one backs off on 429 only, as the cookbook does.`,
      "Requests and 503s are the server's counts.",
      ...(sluice === undefined
        ? []
        : [
            `Target for ${sluice.name}: 0 failed lines, all ${Table.int(REQUESTS)} succeeded through the outage: ${Table.passOrMiss(target(sluice))}`
          ])
    ]
  })
}
