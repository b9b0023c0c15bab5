/**
 * Part 11: the Router end to end. Two MockProviders with separate token
 * limits (120,000 and 80,000 tokens per 10 s window: a minute's limits scaled
 * down to a 10 s window, as in part 6, so that the run spans several windows),
 * 2,000 chat lines (part 6's batch) through `sluice run --providers`, the real
 * program (its build, as the README runs it), its limits learned from each
 * provider's headers. Two runs:
 *
 * - steady: the Router's throughput once the limits are learned, as a share
 *   of the sum of the two limits (the servers' logs are the judge: tokens
 *   charged, prompt + `max_tokens`, per whole window after the first), 429s
 *   after the first window, failed lines;
 * - an outage: once a third of the lines are served, the second provider
 *   answers 503 to everything for 20 s (not scaled: 20 s is two of its
 *   windows), then serves again. Failed lines, and each provider's share of
 *   its own limit during the outage (the first carries the traffic at its
 *   limit, the second serves nothing), and whether the second served again.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { MockProvider } from "@sluice/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { batchLines, CONCURRENCY, MAX_ATTEMPTS, REQUESTS, sluiceRun, TARGET_SHARE } from "./runner.js"
import * as Table from "./table.js"

export const WINDOW_SECONDS = 10
/** Per window, each provider: tokens bind, requests do not. */
export const PROVIDERS = [
  { name: "alpha", requests: 1_000, tokens: 120_000, seed: 21 },
  { name: "beta", requests: 1_000, tokens: 80_000, seed: 22 }
] as const
export const TOKENS_SUM = PROVIDERS[0].tokens + PROVIDERS[1].tokens
export const OUTAGE_SECONDS = 20
/** The outage begins when this many lines have been served. */
export const OUTAGE_AFTER_SERVED = Math.floor(REQUESTS / 3)
/** During the outage, the provider left carries the traffic at this share of its own limit or more. */
export const CARRY_SHARE = 0.9

export interface RouterE2eRow {
  readonly name: string
  readonly role: "steady" | "outage"
  readonly wallSeconds: number
  readonly succeeded: number
  readonly failed: number
  readonly rateLimited: number
  readonly rateLimitedLater: number
  /** Tokens charged by both per whole window after the first, as a share of the sum of the limits. */
  readonly shareSteady: number
  /** Lines each provider served, in all. */
  readonly served: readonly [number, number]
  /** The outage: when it happened (ms from the run's start), each provider's tokens per window as a share of its own limit, and whether the failed one served again. */
  readonly outage:
    | {
        readonly fromSeconds: number
        readonly carried: number
        readonly failedProviderShare: number
        readonly cameBack: boolean
      }
    | undefined
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

type Log = ReadonlyArray<MockProvider.LogEntry>
const served = (log: Log) => log.filter((entry) => entry.status === 200)
const charged = (log: Log, from: number, to: number) =>
  served(log)
    .filter((entry) => entry.time >= from && entry.time < to)
    .reduce((sum, entry) => sum + entry.chargedTokens, 0)

export const measure = async (progress: (line: string) => void): Promise<Array<RouterE2eRow>> => {
  const scope = Effect.runSync(Scope.make())
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-bench-router-"))
  try {
    const servers = await Promise.all(
      PROVIDERS.map((provider) =>
        Effect.runPromise(
          Scope.extend(
            MockProvider.make({
              rpm: provider.requests,
              tpm: provider.tokens,
              window: `${WINDOW_SECONDS} seconds`,
              latency: { uniform: { min: "50 millis", max: "250 millis" } },
              logCapacity: REQUESTS * (MAX_ATTEMPTS + 1),
              seed: provider.seed
            }),
            scope
          )
        )
      )
    )
    const [alpha, beta] = servers as [MockProvider.MockProviderShape, MockProvider.MockProviderShape]
    const input = path.join(directory, "requests.jsonl")
    fs.writeFileSync(input, `${batchLines(REQUESTS).join("\n")}\n`)
    const providersFile = path.join(directory, "providers.json")
    // Loopback MockProviders take no key: no keyEnv. No limits: learned from each one's headers.
    fs.writeFileSync(
      providersFile,
      JSON.stringify(PROVIDERS.map((provider, index) => ({ name: provider.name, baseUrl: servers[index]!.baseUrl })))
    )

    const rows: Array<RouterE2eRow> = []
    const row = async (name: string, role: RouterE2eRow["role"]) => {
      await Effect.runPromise(Effect.all([alpha.reset, beta.reset, alpha.setFaults({}), beta.setFaults({})]))
      progress(`   ${name} ...`)
      let finished = false
      const startedAt = Date.now()
      /** Beta down for OUTAGE_SECONDS once a third of the lines are served (outage row only). */
      const outage =
        role === "outage"
          ? (async () => {
              while (!finished) {
                const counts = await Effect.runPromise(Effect.zip(alpha.counters, beta.counters))
                if (counts[0].served + counts[1].served >= OUTAGE_AFTER_SERVED) {
                  const from = Date.now()
                  await Effect.runPromise(beta.setFaults({ serviceUnavailable503: 1 }))
                  await sleep(OUTAGE_SECONDS * 1000)
                  await Effect.runPromise(beta.setFaults({}))
                  return { from, to: Date.now() }
                }
                await sleep(20)
              }
              return undefined
            })()
          : Promise.resolve(undefined)
      const { summary } = await sluiceRun([
        "--input",
        input,
        "--output",
        path.join(directory, `${role}.jsonl`),
        "--providers",
        providersFile,
        "--concurrency",
        String(CONCURRENCY),
        "--max-attempts",
        String(MAX_ATTEMPTS),
        "--json"
      ]).finally(() => {
        finished = true
      })
      const endedAt = Date.now()
      const window = await outage
      const logs = await Effect.runPromise(Effect.zip(alpha.log, beta.log))
      const windowMillis = WINDOW_SECONDS * 1000
      const both = [...logs[0], ...logs[1]].sort((a, b) => a.time - b.time)
      // The run's first window begins with its first request (the program's start-up before it is not the Router's).
      const firstRequest = both[0]?.time ?? startedAt
      const firstWindowEnd = firstRequest + windowMillis
      const lastServed = served(both).at(-1)?.time ?? endedAt
      // The steady share: whole windows after the first, up to the outage (or to the last request served).
      const steadyEnd = window?.from ?? lastServed
      const steadyWindows = Math.floor((steadyEnd - firstWindowEnd) / windowMillis)
      const limited = both.filter((entry) => entry.status === 429)
      // During the outage, its first window left out (the lines sent to beta just before it move then).
      const carriedFrom = window === undefined ? 0 : window.from + windowMillis / 2
      const carriedTo = window === undefined ? 0 : Math.min(window.to, lastServed)
      const perWindow = (log: Log, limit: number) =>
        carriedTo > carriedFrom
          ? (charged(log, carriedFrom, carriedTo) / limit) * (windowMillis / (carriedTo - carriedFrom))
          : Number.NaN
      rows.push({
        name,
        role,
        wallSeconds: (endedAt - startedAt) / 1000,
        succeeded: summary.succeeded,
        failed: summary.failed,
        rateLimited: limited.length,
        rateLimitedLater: limited.filter((entry) => entry.time >= firstWindowEnd).length,
        shareSteady:
          steadyWindows >= 1
            ? charged(both, firstWindowEnd, firstWindowEnd + steadyWindows * windowMillis) /
              (TOKENS_SUM * steadyWindows)
            : Number.NaN,
        served: [served(logs[0]).length, served(logs[1]).length],
        outage:
          window === undefined
            ? undefined
            : {
                fromSeconds: (window.from - startedAt) / 1000,
                carried: perWindow(logs[0], PROVIDERS[0].tokens),
                failedProviderShare: perWindow(logs[1], PROVIDERS[1].tokens),
                cameBack: served(logs[1]).some((entry) => entry.time >= window.to)
              }
      })
    }
    await row("steady: both providers, limits learned", "steady")
    await row(`outage: beta answers 503 for ${OUTAGE_SECONDS} s`, "outage")
    return rows
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(directory, { recursive: true, force: true })
  }
}

/** Steady: ≥ 95% of the sum of the limits once learned, no 429 after the first window, no failed line. */
export const steadyTarget = (row: RouterE2eRow) =>
  row.shareSteady >= TARGET_SHARE && row.rateLimitedLater === 0 && row.failed === 0 && row.succeeded === REQUESTS

/** Outage: no failed line; alpha carries the traffic at ≥ 90% of its own limit while beta is down. */
export const outageTarget = (row: RouterE2eRow) =>
  row.outage !== undefined && row.failed === 0 && row.succeeded === REQUESTS && row.outage.carried >= CARRY_SHARE

export const print = (rows: ReadonlyArray<RouterE2eRow>) => {
  const percent = (share: number) => (Number.isFinite(share) ? `${Table.fixed(share * 100, 1)}%` : "n/a")
  Table.print({
    title: `12. The Router end to end: ${Table.int(REQUESTS)} chat lines through sluice run --providers, two MockProviders limiting ${Table.int(
      PROVIDERS[0].tokens
    )} and ${Table.int(PROVIDERS[1].tokens)} tokens per ${WINDOW_SECONDS} s window (learned)`,
    columns: [
      { header: "run" },
      { header: "tokens/window of the sum (learned)", align: "right" },
      { header: "429s after 1st window", align: "right" },
      { header: "failed", align: "right" },
      { header: "served alpha / beta", align: "right" },
      { header: "outage: alpha of its limit", align: "right" },
      { header: "beta of its limit", align: "right" },
      { header: "beta back", align: "right" },
      { header: "wall time", align: "right" }
    ],
    rows: rows.map((row) => [
      row.name,
      percent(row.shareSteady),
      Table.int(row.rateLimitedLater),
      Table.int(row.failed),
      `${Table.int(row.served[0])} / ${Table.int(row.served[1])}`,
      row.outage === undefined ? "-" : percent(row.outage.carried),
      row.outage === undefined ? "-" : percent(row.outage.failedProviderShare),
      row.outage === undefined ? "-" : row.outage.cameBack ? "yes" : "no",
      `${Table.fixed(row.wallSeconds, 1)} s`
    ]),
    notes: [
      "Tokens are what the servers charged (prompt + max_tokens). 'Learned': whole windows after the first (from the first",
      "request the servers saw, the program's start-up left out), up to the outage or the last request served.",
      `The outage begins once ${Table.int(OUTAGE_AFTER_SERVED)} lines are served; it is not scaled (20 s, two windows). The`,
      "shares during it leave out its first half window (lines already sent to beta move then).",
      ...rows.map((row) =>
        row.role === "steady"
          ? `Target (steady): >= ${TARGET_SHARE * 100}% of the sum once learned, no 429 after the first window, no failed line: ${Table.passOrMiss(steadyTarget(row))}`
          : `Target (outage): no failed line, alpha carrying >= ${CARRY_SHARE * 100}% of its limit: ${Table.passOrMiss(outageTarget(row))}`
      )
    ]
  })
}
