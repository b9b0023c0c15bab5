/**
 * Part 6: the main job, side by side. The same 2,000 chat requests (prompts
 * of 10 to 400 words, output caps of 16 to 256 tokens) go to a MockProvider
 * that limits requests and tokens over a 10 s window (a minute's limits,
 * scaled down so the run spans several windows in under a minute), through:
 *
 * - `sluice run`, the real program (its build, as the README runs it) in its own process, told no limits: it
 *   learns them from the first answer's headers (`x-ratelimit-*`, and the
 *   window from `RateLimit-Policy`);
 * - `sluice run` given the limits by flags (`--rpm --tpm --window`, not learning);
 * - a naive runner, the cookbook approach: p-limit at the same concurrency,
 *   and on a 429 a retry after an exponential backoff with jitter.
 *
 * The MockProvider runs in this process and its request log is the judge:
 * tokens charged (prompt plus `max_tokens`, as OpenAI counts) per window as a
 * share of the limit, over the whole run and once the limits are learned
 * (after the first window, before the last), 429s received, lines failed,
 * wall time. Between rows the server's window is emptied.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { MockProvider } from "@sluice/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import pLimit from "p-limit"
import * as Table from "./table.js"

export const REQUESTS = 2_000
export const CONCURRENCY = 16
export const WINDOW_SECONDS = 10
/** Per window: tokens bind, requests do not (about 450 requests go in a window). */
export const LIMITS = { requests: 1_000, tokens: 200_000 } as const
export const TARGET_SHARE = 0.95
export const MAX_ATTEMPTS = 6

const WORDS = ["river", "sluice", "gate", "token", "bucket", "window", "limit", "budget", "probe", "breaker", "queue"]

/** The batch, deterministic: line i has 10 to 400 words and asks for 16 to 256 tokens. */
export const batchLines = (requests: number): Array<string> =>
  Array.from({ length: requests }, (_, i) => {
    const words = 10 + ((i * 7919) % 391)
    const content = Array.from({ length: words }, (_, w) => WORDS[(i + w * 3) % WORDS.length]).join(" ")
    const body = { model: "mock-1", messages: [{ role: "user", content }], max_tokens: 16 + ((i * 31) % 241) }
    return JSON.stringify({ custom_id: `line-${i + 1}`, method: "POST", url: "/v1/chat/completions", body })
  })

export interface RunnerRow {
  readonly name: string
  readonly role: "sluice-learned" | "sluice-given" | "naive"
  readonly wallSeconds: number
  readonly succeeded: number
  readonly failed: number
  readonly rateLimited: number
  /** 429s that arrived after the first window. */
  readonly rateLimitedLater: number
  /** Tokens charged per window over the whole windows from the start, as a share of the limit. */
  readonly shareOverall: number
  /** The same between the end of the first window and the start of the last. */
  readonly shareSteady: number
}

/** The `sluice` program as the README runs it: its build (`pnpm build`), from bench/build/run.mjs. */
const SLUICE_BIN = fileURLToPath(new URL("../../packages/cli/dist/bin.js", import.meta.url))

/** Runs `sluice run` to the end; answers its JSON summary. */
export const sluiceRun = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; summary: { succeeded: number; failed: number } }>((resolve, reject) => {
    const child = spawn(process.execPath, [SLUICE_BIN, "run", ...args], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on("error", reject)
    child.on("exit", (code) => {
      try {
        resolve({ code, summary: JSON.parse(stdout) })
      } catch {
        reject(
          new Error(`sluice run exited ${code} without a summary: ${stdout.slice(0, 500)} ${stderr.slice(0, 500)}`)
        )
      }
    })
  })

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/** The cookbook runner: p-limit, and exponential backoff with full jitter on a 429 (up to 6 attempts). */
export const naiveRun = async (url: string, lines: ReadonlyArray<string>) => {
  const limit = pLimit(CONCURRENCY)
  let succeeded = 0
  let failed = 0
  await Promise.all(
    lines.map((line) =>
      limit(async () => {
        const body = JSON.stringify((JSON.parse(line) as { body: unknown }).body)
        for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
          const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body })
          await response.arrayBuffer()
          if (response.ok) {
            succeeded++
            return
          }
          if (response.status !== 429 || attempt === MAX_ATTEMPTS) break
          await sleep(Math.random() * 1000 * 2 ** (attempt - 1))
        }
        failed++
      })
    )
  )
  return { succeeded, failed }
}

/** What the server's log says of one run. */
const judge = (
  log: ReadonlyArray<MockProvider.LogEntry>,
  startedAt: number,
  endedAt: number
): Pick<RunnerRow, "rateLimited" | "rateLimitedLater" | "shareOverall" | "shareSteady"> => {
  const windowMillis = WINDOW_SECONDS * 1000
  const served = log.filter((entry) => entry.status === 200)
  const charged = (from: number, to: number) =>
    served.filter((entry) => entry.time >= from && entry.time < to).reduce((sum, entry) => sum + entry.chargedTokens, 0)
  const share = (from: number, to: number) => (charged(from, to) / LIMITS.tokens) * (windowMillis / (to - from))
  const firstWindowEnd = startedAt + windowMillis
  // Whole windows only: a sliding window lets `limit` through in every window, so a stretch of 2.8 windows
  // can hold 3 windows' worth. The stretch ends before the last request, while the run was still busy.
  const lastServed = served.at(-1)?.time ?? endedAt
  const steadyWindows = Math.floor((lastServed - firstWindowEnd) / windowMillis)
  const limited = log.filter((entry) => entry.status === 429)
  return {
    rateLimited: limited.length,
    rateLimitedLater: limited.filter((entry) => entry.time >= firstWindowEnd).length,
    // From the start (the learning included), in whole windows too; the last, partial one is left out.
    shareOverall:
      endedAt - startedAt >= windowMillis
        ? share(startedAt, startedAt + Math.floor((endedAt - startedAt) / windowMillis) * windowMillis)
        : Number.NaN,
    shareSteady: steadyWindows >= 1 ? share(firstWindowEnd, firstWindowEnd + steadyWindows * windowMillis) : Number.NaN
  }
}

export const measure = async (progress: (line: string) => void): Promise<Array<RunnerRow>> => {
  const scope = Effect.runSync(Scope.make())
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-bench-runner-"))
  try {
    const provider = await Effect.runPromise(
      Scope.extend(
        MockProvider.make({
          rpm: LIMITS.requests,
          tpm: LIMITS.tokens,
          window: `${WINDOW_SECONDS} seconds`,
          latency: { uniform: { min: "50 millis", max: "250 millis" } },
          logCapacity: REQUESTS * (MAX_ATTEMPTS + 1),
          seed: 11
        }),
        scope
      )
    )
    const lines = batchLines(REQUESTS)
    const input = path.join(directory, "requests.jsonl")
    fs.writeFileSync(input, `${lines.join("\n")}\n`)

    const rows: Array<RunnerRow> = []
    const row = async (
      name: string,
      role: RunnerRow["role"],
      run: () => Promise<{ succeeded: number; failed: number }>
    ) => {
      // An empty window, as a fresh minute would give.
      await Effect.runPromise(provider.reset)
      progress(`   ${name} ...`)
      const startedAt = Date.now()
      const { succeeded, failed } = await run()
      const endedAt = Date.now()
      rows.push({
        name,
        role,
        wallSeconds: (endedAt - startedAt) / 1000,
        succeeded,
        failed,
        ...judge(await Effect.runPromise(provider.log), startedAt, endedAt)
      })
    }
    const common = ["--input", input, "--base-url", provider.baseUrl, "--concurrency", String(CONCURRENCY)]
    const sluiceArgs = (output: string, ...more: Array<string>) => [
      ...common,
      "--output",
      path.join(directory, output),
      "--max-attempts",
      String(MAX_ATTEMPTS),
      "--json",
      ...more
    ]
    await row("sluice run (limits learned from headers)", "sluice-learned", async () => {
      return (await sluiceRun(sluiceArgs("learned.jsonl"))).summary
    })
    await row("sluice run (limits given by flags)", "sluice-given", async () => {
      const args = sluiceArgs(
        "given.jsonl",
        "--rpm",
        String(LIMITS.requests),
        "--tpm",
        String(LIMITS.tokens),
        "--window",
        `${WINDOW_SECONDS}s`,
        "--no-learn-limits"
      )
      return (await sluiceRun(args)).summary
    })
    await row("naive: p-limit + backoff on 429", "naive", () => naiveRun(`${provider.baseUrl}/chat/completions`, lines))
    return rows
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(directory, { recursive: true, force: true })
  }
}

/** The target: each Sluice row at 95% of the token limit or more once learned, with no 429 after the first window. */
export const target = (row: RunnerRow) => row.shareSteady >= TARGET_SHARE && row.rateLimitedLater === 0

export const print = (rows: ReadonlyArray<RunnerRow>) => {
  const percent = (share: number) => (Number.isFinite(share) ? `${Table.fixed(share * 100, 1)}%` : "n/a")
  Table.print({
    title: `6. The main job: ${Table.int(REQUESTS)} chat requests at ${CONCURRENCY} concurrent, MockProvider limiting ${Table.int(
      LIMITS.requests
    )} requests and ${Table.int(LIMITS.tokens)} tokens per ${WINDOW_SECONDS} s window`,
    columns: [
      { header: "runner" },
      { header: "tokens/window (learned)", align: "right" },
      { header: "(from the start)", align: "right" },
      { header: "429s", align: "right" },
      { header: "429s after 1st window", align: "right" },
      { header: "failed", align: "right" },
      { header: "wall time", align: "right" }
    ],
    rows: rows.map((row) => [
      row.name,
      percent(row.shareSteady),
      percent(row.shareOverall),
      Table.int(row.rateLimited),
      Table.int(row.rateLimitedLater),
      Table.int(row.failed),
      `${Table.fixed(row.wallSeconds, 1)} s`
    ]),
    notes: [
      "Tokens are what the server charged (prompt + max_tokens), per window, as a share of its limit; 'learned' counts the",
      "whole windows after the run's first one, 'from the start' the whole windows from its start (learning included). The",
      "server's own request log is the judge.",
      ...rows
        .filter((row) => row.role !== "naive")
        .map(
          (row) =>
            `Target for ${row.name}: >= ${TARGET_SHARE * 100}% of the token limit once learned, no 429 after the first window: ${Table.passOrMiss(target(row))}`
        )
    ]
  })
}
