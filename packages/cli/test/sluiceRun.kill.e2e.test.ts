/**
 * `kill -9` at random moments, during compaction too: the real program as a
 * child process against a real MockProvider (some answers 500, so reruns
 * have failures to redo and outputs to compact), killed again and again, then
 * run to the end. Every moment is reached by waiting for an event (the output
 * growing to a randomly drawn size, or the program announcing that its
 * compaction has paused, `SLUICE_TEST_PAUSE_COMPACTION`), never by a fixed sleep.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { announcement, VARIABLE } from "../src/internal/compactionPause.js"
import { compactingPathFor } from "../src/internal/outputFile.js"
import { readResults, runArgs, type Sluice, sluice, sluiceRun, waitUntil } from "./utils/child.js"

const API_KEY = "sk-e2e-kill-0123456789"
const KEY_ENV = { SLUICE_E2E_KEY: API_KEY }
const LINES = 400

let scope: Scope.CloseableScope
let provider: MockProvider.MockProviderShape

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  provider = await Effect.runPromise(Scope.extend(MockProvider.make({ apiKeys: [API_KEY], seed: 3 }), scope))
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

/** mulberry32: the moments are random, and the seed is in every message so that a failure can be replayed. */
const generator = (seed: number) => {
  let state = seed >>> 0
  return (low: number, high: number): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return low + Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (high - low + 1))
  }
}

/**
 * Embeddings of 512 dimensions (about 10 kB a record, so compaction spans several of its 64 kB reads), chat and
 * completions.
 */
const inputLine = (index: number) => {
  const customId = `r${index}`
  if (index % 5 === 1) {
    return JSON.stringify({
      custom_id: customId,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "mock-model", messages: [{ role: "user", content: `hello ${index}` }], max_tokens: 16 }
    })
  }
  if (index % 5 === 2) {
    return JSON.stringify({
      custom_id: customId,
      method: "POST",
      url: "/v1/completions",
      body: { model: "mock-model", prompt: `Once upon a time ${index}`, max_tokens: 8 }
    })
  }
  return JSON.stringify({
    custom_id: customId,
    method: "POST",
    url: "/v1/embeddings",
    body: { model: "mock-embedding", input: `text number ${index}`, dimensions: 512 }
  })
}

const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "")

/** The complete lines of a file (what a resume keeps of it: a torn last line goes). */
const completeLines = (text: string) => text.slice(0, text.lastIndexOf("\n") + 1)

/**
 * What a compaction of `text` must write: the latest record of each `custom_id`, in file order, without the
 * failures a rerun redoes (retryable ones).
 */
const compacted = (text: string): string => {
  const lines = completeLines(text)
    .split("\n")
    .filter((line) => line !== "")
  const latest = new Map<string, number>()
  lines.forEach((line, index) => {
    latest.set(JSON.parse(line).custom_id, index)
  })
  return lines
    .filter((line, index) => {
      const record = JSON.parse(line)
      return latest.get(record.custom_id) === index && !(record.error !== null && record.sluice.error.retryable)
    })
    .map((line) => `${line}\n`)
    .join("")
}

/**
 * Complete lines of the output so far, and whether one is a failure: read as text, and again only when the file's
 * size changed (the test polls it often, and it grows to megabytes).
 */
const progressOf = (() => {
  let seen: { readonly size: number; readonly lines: number; readonly failure: boolean } | undefined
  return (file: string) => {
    const size = fs.existsSync(file) ? fs.statSync(file).size : 0
    if (seen?.size !== size) {
      const text = completeLines(read(file))
      seen = { size, lines: text.split("\n").length - 1, failure: text.includes('"response":null,"error":{"code"') }
    }
    return seen
  }
})()

const kill = async (run: Sluice) => {
  run.child.kill("SIGKILL")
  expect((await run.exited).signal).toBe("SIGKILL")
}

describe("sluice run under kill -9", () => {
  it("killed at random moments, during compaction too: a final rerun leaves every custom_id once, its latest result", async () => {
    const seed = Date.now() % 1_000_000
    const random = generator(seed)
    const at = `(seed ${seed})`
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-kill-"))
    try {
      await Effect.runPromise(
        Effect.all([provider.setLatency({ fixed: "30 millis" }), provider.setFaults({ serverError500: 0.2 })])
      )
      const input = path.join(dir, "requests.jsonl")
      const output = path.join(dir, "results.jsonl")
      fs.writeFileSync(input, `${Array.from({ length: LINES }, (_, index) => inputLine(index)).join("\n")}\n`)
      const argsWith = (concurrency: number, ...extra: Array<string>) =>
        runArgs(
          { input, output, baseUrl: provider.baseUrl, keyEnv: "SLUICE_E2E_KEY" },
          "--concurrency",
          String(concurrency),
          "--max-attempts",
          "1",
          ...extra
        )
      const args = argsWith(2)

      /** Starts a run and kills it once the output holds `more` lines more than now and some failure to redo. */
      const killMidRun = async (more: number) => {
        const target = progressOf(output).lines + more
        const run = sluice(args, KEY_ENV)
        let ended = false
        void run.exited.then(() => {
          ended = true
        })
        await waitUntil(
          `the output has ${target} lines and a failure ${at}`,
          () => {
            if (ended) return true
            const progress = progressOf(output)
            return progress.lines >= target && progress.failure
          },
          90_000
        )
        expect(ended, `the run ended before it was killed ${at}`).toBe(false)
        await kill(run)
      }

      /** Starts a run that pauses its compaction at `phase`, and kills it there. */
      const killDuringCompaction = async (phase: "writing" | "renaming") => {
        const before = read(output)
        const expected = compacted(before)
        const run = sluice(args, { ...KEY_ENV, [VARIABLE]: phase })
        await waitUntil(
          `compaction paused while ${phase} ${at}`,
          () => run.stderr().includes(announcement(phase)),
          90_000
        )
        // The new file, beside the old one; the old one whole (only a torn last line truncated).
        const partial = read(compactingPathFor(output))
        expect(read(output), at).toBe(completeLines(before))
        if (phase === "renaming") expect(partial, at).toBe(expected)
        else {
          // Cut short: some of the lines to keep, whole, in order, and not yet all of them.
          expect(partial.length, at).toBeGreaterThan(0)
          expect(expected.startsWith(partial), at).toBe(true)
          expect(partial.endsWith("\n"), at).toBe(true)
          expect(partial.length, at).toBeLessThan(expected.length)
        }
        await kill(run)
        expect(read(output), at).toBe(completeLines(before))
      }

      await killMidRun(random(40, 90))
      await killDuringCompaction("writing")
      await killMidRun(random(10, 60))
      await killDuringCompaction("renaming")
      await killMidRun(random(1, 30))

      // The provider well again: the final run does the rest and redoes every failure.
      await Effect.runPromise(Effect.all([provider.setFaults({}), provider.setLatency(undefined)]))
      const before = readResults(output)
      const kept = new Map(
        before.lines.filter((record) => record.error === null).map((record) => [record.custom_id, record])
      )
      expect(kept.size, at).toBeLessThan(LINES)
      const final = await sluiceRun(argsWith(8, "--json"), KEY_ENV)
      expect(final.code, `${at} ${final.stderr}`).toBe(0)
      expect(JSON.parse(final.stdout)).toMatchObject({ stopReason: "completed", failed: 0, skipped: kept.size })

      const after = readResults(output)
      expect(after.torn, at).toBe(false)
      expect([...after.ids].sort(), at).toEqual(Array.from({ length: LINES }, (_, index) => `r${index}`).sort())
      for (const record of after.lines) {
        // Each the latest: a success kept as it was, or (for a line failed or never done) the final run's.
        expect(record.error, at).toBeNull()
        expect(record.response.status_code, at).toBe(200)
        if (kept.has(record.custom_id)) expect(record, at).toEqual(kept.get(record.custom_id))
      }
      // Nothing left behind: no compaction's file, no lock.
      expect(fs.readdirSync(dir).sort(), at).toEqual(["requests.jsonl", "results.jsonl"])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
      await Effect.runPromise(Effect.all([provider.setFaults({}), provider.setLatency(undefined), provider.reset]))
    }
  }, 300_000)
})
