/**
 * `sluice run` end to end: the real program as a child process, against a
 * real MockProvider in this process, writing real files in a temp dir.
 * Nothing here asserts on timing; tests wait by polling files and the
 * provider's log.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import {
  chatLine,
  countLines,
  ids,
  REPO_ROOT,
  readResults,
  runArgs as runArgsOf,
  sluice,
  sluiceRun,
  waitUntil
} from "./utils/child.js"

const API_KEY = "sk-e2e-do-not-print-0123456789"
const KEY_ENV = { SLUICE_E2E_KEY: API_KEY }
/** Each test starts child processes, slow on a busy machine. */
const TIMEOUT = 120_000

let scope: Scope.CloseableScope
let provider: MockProvider.MockProviderShape
let dir: string | undefined

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  provider = await Effect.runPromise(Scope.extend(MockProvider.make({ apiKeys: [API_KEY], seed: 7 }), scope))
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

afterEach(async () => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  await Effect.runPromise(
    Effect.all([provider.setFaults({}), provider.setLatency(undefined), provider.setLimits({}), provider.reset])
  )
})

/** Waits (bounded in real time, with a message) until the provider has seen `count` requests. */
const awaitRequests = (count: number) =>
  Effect.runPromise(
    Effect.timeoutFail(provider.awaitRequests(count), {
      duration: "30 seconds",
      onTimeout: () => new Error(`timed out after 30 s waiting until the provider saw ${count} requests`)
    })
  )

const freshDir = (): string => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-run-"))
  return dir
}

const writeInput = (lines: ReadonlyArray<string>) => {
  const input = path.join(dir!, "requests.jsonl")
  fs.writeFileSync(input, `${lines.join("\n")}\n`)
  return input
}

const runArgs = (input: string, output: string, ...extra: Array<string>) =>
  runArgsOf({ input, output, baseUrl: provider.baseUrl, keyEnv: "SLUICE_E2E_KEY" }, ...extra)

const expectExactlyOnce = (output: string, expected: ReadonlyArray<string>) => {
  const results = readResults(output)
  expect(results.torn).toBe(false)
  expect(results.ids.length).toBe(expected.length)
  expect([...results.ids].sort()).toEqual([...expected].sort())
  return results
}

describe("sluice run", () => {
  it(
    "runs a batch: one result per line, malformed lines reported with line numbers, a --json summary",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setFaults({ serviceUnavailable503: 0.2 }))
      const good = ids(30)
      const lines = good.map((id) => chatLine(id))
      lines.splice(3, 0, "{this is not json")
      lines.splice(8, 0, chatLine("r3", "the same id again"))
      lines.splice(12, 0, JSON.stringify({ custom_id: "x", method: "GET", url: "/v1/chat/completions", body: {} }))
      const input = writeInput(lines)
      const output = path.join(dir!, "results.jsonl")

      const run = await sluiceRun(
        runArgs(
          input,
          output,
          "--rpm",
          "60000",
          "--tpm",
          "10000000",
          "--concurrency",
          "4",
          "--max-attempts",
          "8",
          "--json"
        ),
        KEY_ENV
      )

      expect(run.code).toBe(1) // malformed lines were reported
      const summary = JSON.parse(run.stdout)
      expect(Object.keys(summary).sort()).toEqual(
        [
          "input",
          "output",
          "errors",
          "stopReason",
          "total",
          "succeeded",
          "failed",
          "skipped",
          "malformed",
          "remaining",
          "truncatedBytes",
          "requests",
          "rateLimited",
          "retries",
          "promptTokens",
          "completionTokens",
          "failuresByReason",
          "halt",
          "keptFailed",
          "elapsedMillis",
          "exitCode"
        ].sort()
      )
      expect(summary).toMatchObject({
        input,
        output,
        errors: `${output}.errors.jsonl`,
        stopReason: "completed",
        total: 33,
        succeeded: 30,
        failed: 0,
        skipped: 0,
        malformed: 3,
        remaining: 0,
        truncatedBytes: 0,
        exitCode: 1
      })

      const results = expectExactlyOnce(output, good)
      for (const line of results.lines) {
        expect(line).toMatchObject({
          error: null,
          response: { status_code: 200, body: { object: "chat.completion" } },
          sluice: { status: "succeeded" }
        })
        expect(line.response.request_id).toMatch(/^req_mock_/)
        expect(line.sluice.attempts).toBeGreaterThanOrEqual(1)
        expect(typeof line.sluice.started_at).toBe("string")
        expect(typeof line.sluice.duration_ms).toBe("number")
      }
      // The counters the sender fed agree with the results and with what the server saw.
      const attempts = results.lines.reduce((sum, line) => sum + (line.sluice.attempts as number), 0)
      const counters = await Effect.runPromise(provider.counters)
      expect(summary.requests).toBe(attempts)
      expect(summary.requests).toBe(counters.total)
      expect(summary.retries).toBe(attempts - 30)
      expect(summary.retries).toBe(counters.faults.serviceUnavailable503)
      expect(summary.promptTokens).toBe(results.lines.reduce((sum, line) => sum + line.sluice.usage.prompt_tokens, 0))

      expect(run.stderr).toContain("line 4: not valid JSON\n")
      expect(run.stderr).toContain('line 9 (custom_id "r3"): duplicate custom_id (first on line 5)\n')
      expect(run.stderr).toContain('line 13 (custom_id "x"): method must be "POST"\n')
      const errors = fs
        .readFileSync(`${output}.errors.jsonl`, "utf8")
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line))
      expect(
        errors.map((record) => ({
          custom_id: record.custom_id,
          message: record.error.message,
          line: record.sluice.line
        }))
      ).toEqual([
        { custom_id: null, message: "line 4: not valid JSON", line: 4 },
        { custom_id: "r3", message: "line 9: duplicate custom_id (first on line 5)", line: 9 },
        { custom_id: "x", message: 'line 13: method must be "POST"', line: 13 }
      ])
      for (const text of [run.stdout, run.stderr, fs.readFileSync(output, "utf8"), JSON.stringify(errors)]) {
        expect(text).not.toContain(API_KEY)
      }
    },
    TIMEOUT
  )

  it(
    "with no --rpm/--tpm, learns the limits from the first answer's headers: no 429s where not learning draws them",
    async () => {
      freshDir()
      // 4 requests per 2 s window (named in RateLimit-Policy beside OpenAI's headers).
      await Effect.runPromise(provider.setLimits({ rpm: 4, window: "2 seconds" }))
      const all = ids(12)
      const input = writeInput(all.map((id) => chatLine(id)))

      const blind = await sluiceRun(
        runArgs(
          input,
          path.join(dir!, "blind.jsonl"),
          "--concurrency",
          "4",
          "--max-attempts",
          "10",
          "--no-learn-limits",
          "--json"
        ),
        KEY_ENV
      )
      expect(blind.code).toBe(0)
      const blindCounters = await Effect.runPromise(provider.counters)
      expect(blindCounters.served).toBe(12)
      expect(blindCounters.rateLimited).toBeGreaterThan(0)

      await Effect.runPromise(provider.reset)
      const output = path.join(dir!, "learned.jsonl")
      const learned = await sluiceRun(runArgs(input, output, "--concurrency", "4", "--json"), KEY_ENV)
      expect(learned.code).toBe(0)
      expect(JSON.parse(learned.stdout)).toMatchObject({ succeeded: 12, rateLimited: 0, retries: 0 })
      expect(await Effect.runPromise(provider.counters)).toMatchObject({ served: 12, rateLimited: 0 })
      expectExactlyOnce(output, all)
    },
    TIMEOUT
  )

  it(
    "after kill -9 mid-run, a rerun ends with every custom_id exactly once and no torn line",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setLatency({ fixed: "50 millis" }))
      const all = ids(400)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const first = sluice(runArgs(input, output, "--concurrency", "4"), KEY_ENV)
      await waitUntil("the output has 20 lines", () => countLines(output) >= 20)
      first.child.kill("SIGKILL")
      expect((await first.exited).signal).toBe("SIGKILL")
      const before = readResults(output)
      expect(before.ids.length).toBeLessThan(400)
      // The worst a kill can leave: a line cut short. Make sure there is one.
      if (!before.torn) fs.appendFileSync(output, '{"id":"batch_req_0","custom_id":"r399","respon')

      const rerun = await sluiceRun(runArgs(input, output, "--concurrency", "16"), KEY_ENV)
      expect(rerun.code).toBe(0)
      expect(rerun.stdout).toContain("sluice run completed")
      expect(rerun.stdout).toMatch(/removing a torn last line \(\d+ bytes\)/)
      expectExactlyOnce(output, all)
      const skipped = Number(/skipped (\d+)/.exec(rerun.stdout)?.[1])
      expect(skipped).toBe(before.ids.length)
    },
    TIMEOUT
  )

  it(
    "the first Ctrl-C drains: exit 130, only complete lines, and a rerun does exactly the rest",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setLatency({ fixed: "50 millis" }))
      const all = ids(400)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const first = sluice(runArgs(input, output, "--concurrency", "4", "--json"), KEY_ENV)
      await waitUntil("the output has 10 lines", () => countLines(output) >= 10)
      first.child.kill("SIGINT")
      const { code } = await first.exited
      expect(code).toBe(130)
      expect(first.stderr()).toContain("Stopping: no new lines")
      const summary = JSON.parse(first.stdout())
      expect(summary).toMatchObject({ stopReason: "drained", exitCode: 130, failed: 0 })
      const partial = readResults(output)
      expect(partial.torn).toBe(false)
      expect(new Set(partial.ids).size).toBe(partial.ids.length)
      expect(partial.ids.length).toBe(summary.succeeded)
      expect(partial.ids.length).toBeLessThan(400)
      expect(summary.remaining).toBe(400 - partial.ids.length)

      const rerun = await sluiceRun(runArgs(input, output, "--concurrency", "16", "--json"), KEY_ENV)
      expect(rerun.code).toBe(0)
      expect(JSON.parse(rerun.stdout)).toMatchObject({
        stopReason: "completed",
        skipped: partial.ids.length,
        succeeded: 400 - partial.ids.length
      })
      expectExactlyOnce(output, all)
    },
    TIMEOUT
  )

  it(
    "a second Ctrl-C stops at once, and the drain deadline cancels what is still in flight",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setFaults({ hang: 1 }))
      const all = ids(20)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const twice = sluice(runArgs(input, output, "--concurrency", "2", "--drain-timeout", "10m", "--json"), KEY_ENV)
      await awaitRequests(2)
      twice.child.kill("SIGINT")
      // A second Ctrl-C counts once the program says so (a repeat within moments is the launcher's echo of the first).
      await waitUntil("the drain began", () => twice.stderr().includes("Ctrl-C again"))
      twice.child.kill("SIGINT")
      expect((await twice.exited).code).toBe(130)
      expect(JSON.parse(twice.stdout())).toMatchObject({ stopReason: "aborted", succeeded: 0, remaining: 20 })
      expect(readResults(output)).toEqual({ lines: [], ids: [], torn: false })

      await Effect.runPromise(provider.reset)
      const deadline = sluice(
        runArgs(input, output, "--concurrency", "2", "--drain-timeout", "300ms", "--json"),
        KEY_ENV
      )
      await awaitRequests(2)
      deadline.child.kill("SIGINT")
      expect((await deadline.exited).code).toBe(130)
      expect(JSON.parse(deadline.stdout())).toMatchObject({ stopReason: "deadline", succeeded: 0 })

      await Effect.runPromise(provider.setFaults({}))
      const rerun = await sluiceRun(runArgs(input, output, "--json"), KEY_ENV)
      expect(rerun.code).toBe(0)
      expectExactlyOnce(output, all)
    },
    TIMEOUT
  )

  it(
    "a bad key stops the run at once: exit 4, authentication failed, nothing written; fixed, the rerun does every line",
    async () => {
      freshDir()
      const all = ids(40)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const bad = await sluiceRun(runArgs(input, output, "--concurrency", "4", "--json"), {
        SLUICE_E2E_KEY: "sk-wrong-key"
      })
      expect(bad.code).toBe(4)
      expect(bad.stderr).toContain("Authentication failed (401)")
      expect(bad.stderr).toContain("--api-key-env")
      const summary = JSON.parse(bad.stdout)
      expect(summary).toMatchObject({
        stopReason: "halted",
        halt: { reason: "AuthenticationFailed" },
        succeeded: 0,
        failed: 0,
        exitCode: 4
      })
      expect(readResults(output).lines).toEqual([])
      const counters = await Effect.runPromise(provider.counters)
      expect(counters.served).toBe(0)
      // The first line goes alone; the run stops on its answer, before most lines are sent.
      expect(counters.unauthorized).toBeLessThan(all.length / 2)
      expect(bad.stdout + bad.stderr).not.toContain("sk-wrong-key")

      const rerun = await sluiceRun(runArgs(input, output, "--concurrency", "4", "--json"), KEY_ENV)
      expect(rerun.code).toBe(0)
      expect(JSON.parse(rerun.stdout)).toMatchObject({ succeeded: 40, failed: 0, skipped: 0 })
      expectExactlyOnce(output, all)
    },
    TIMEOUT
  )

  it(
    "a closed port pauses instead of failing lines; past --max-outage the run stops (exit 5) and the fixed rerun does every line",
    async () => {
      freshDir()
      const closedPort = await new Promise<number>((resolve) => {
        const server = net.createServer()
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as net.AddressInfo
          server.close(() => resolve(port))
        })
      })
      const all = ids(30)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")
      const args = runArgs(input, output, "--concurrency", "4", "--max-outage", "2s", "--json")
      args[args.indexOf("--base-url") + 1] = `http://127.0.0.1:${closedPort}/v1`

      const down = await sluiceRun(args, KEY_ENV)
      expect(down.code).toBe(5)
      expect(down.stderr).toContain("The provider is unavailable")
      expect(down.stderr).toContain("connection failed")
      expect(JSON.parse(down.stdout)).toMatchObject({
        stopReason: "halted",
        halt: { reason: "ProviderUnavailable" },
        succeeded: 0,
        failed: 0,
        failuresByReason: {},
        exitCode: 5
      })
      expect(readResults(output).lines).toEqual([])

      const fixed = await sluiceRun(runArgs(input, output, "--concurrency", "4", "--json"), KEY_ENV)
      expect(fixed.code).toBe(0)
      expect(JSON.parse(fixed.stdout)).toMatchObject({ succeeded: 30, failed: 0 })
      expectExactlyOnce(output, all)
    },
    TIMEOUT
  )

  it(
    "an outage longer than --max-outage stops the run keeping what was done (no line failed); the rerun does the rest",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setLatency({ fixed: "20 millis" }))
      const all = ids(300)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const run = sluice(runArgs(input, output, "--concurrency", "4", "--max-outage", "2s", "--json"), KEY_ENV)
      await waitUntil("the output has 10 lines", () => countLines(output) >= 10)
      await Effect.runPromise(provider.setFaults({ serviceUnavailable503: 1 }))
      expect((await run.exited).code).toBe(5)
      const summary = JSON.parse(run.stdout())
      expect(summary).toMatchObject({ stopReason: "halted", halt: { reason: "ProviderUnavailable" }, failed: 0 })
      const kept = readResults(output)
      expect(kept.torn).toBe(false)
      expect(kept.lines.every((line) => line.error === null)).toBe(true)
      expect(kept.ids.length).toBe(summary.succeeded)
      expect(kept.ids.length).toBeLessThan(300)

      await Effect.runPromise(provider.setFaults({}))
      const rerun = await sluiceRun(runArgs(input, output, "--concurrency", "8", "--json"), KEY_ENV)
      expect(rerun.code).toBe(0)
      expect(JSON.parse(rerun.stdout)).toMatchObject({ skipped: kept.ids.length, failed: 0 })
      expectExactlyOnce(output, all)
    },
    TIMEOUT
  )

  it(
    "an outage then recovery: the lines wait for the provider and every line succeeds",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setFaults({ serviceUnavailable503: 1 }))
      const all = ids(40)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const run = sluice(runArgs(input, output, "--concurrency", "4", "--json"), KEY_ENV)
      // Enough failed calls to open the breaker (10), and more: some lines have spent their attempts.
      await awaitRequests(14)
      await Effect.runPromise(provider.setFaults({}))
      expect((await run.exited).code).toBe(0)
      expect(JSON.parse(run.stdout())).toMatchObject({ stopReason: "completed", succeeded: 40, failed: 0 })
      const results = expectExactlyOnce(output, all)
      expect(results.lines.every((line) => line.error === null)).toBe(true)
      const counters = await Effect.runPromise(provider.counters)
      expect(counters.faults.serviceUnavailable503).toBeGreaterThanOrEqual(14)
      expect(run.stderr()).toContain("provider unavailable for")
    },
    TIMEOUT
  )

  it(
    "failures are shown by reason; a rerun does again the retryable failures (not with --no-retry-failed), one record per custom_id",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setFaults({ serverError500: 0.3 }))
      const all = ids(120)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const first = await sluiceRun(
        runArgs(input, output, "--concurrency", "8", "--max-attempts", "1", "--json"),
        KEY_ENV
      )
      expect(first.code).toBe(1)
      const summary = JSON.parse(first.stdout)
      expect(summary.failed).toBeGreaterThan(0)
      expect(summary.failuresByReason).toEqual({ "server error (500)": summary.failed })
      expect(first.stderr).toMatch(/failed: \d+ × server error \(500\)/)
      // A storm is a few lines counting up, not a line per failure.
      expect(first.stderr.split("\n").filter((line) => line.startsWith("failed:")).length).toBeLessThan(summary.failed)
      const failedIds = readResults(output)
        .lines.filter((line) => line.error !== null)
        .map((line) => line.custom_id as string)
      expect(failedIds.length).toBe(summary.failed)
      expect(readResults(output).lines.find((line) => line.error !== null)).toMatchObject({
        response: null,
        error: { code: "server_error" },
        sluice: {
          status: "failed",
          error: {
            kind: "ProviderUnavailable",
            reason: "server error (500)",
            status: 500,
            retryable: true,
            request_id: expect.stringMatching(/^req_mock_/)
          }
        }
      })

      await Effect.runPromise(Effect.zipRight(provider.setFaults({}), provider.reset))
      const kept = await sluiceRun(runArgs(input, output, "--no-retry-failed", "--json"), KEY_ENV)
      // The failures stay in the output: not a success.
      expect(kept.code).toBe(1)
      expect(JSON.parse(kept.stdout)).toMatchObject({
        skipped: 120,
        keptFailed: failedIds.length,
        succeeded: 0,
        failed: 0
      })
      expect((await Effect.runPromise(provider.counters)).total).toBe(0)

      const retried = await sluiceRun(runArgs(input, output, "--json"), KEY_ENV)
      expect(retried.code).toBe(0)
      expect(JSON.parse(retried.stdout)).toMatchObject({
        skipped: 120 - failedIds.length,
        succeeded: failedIds.length,
        failed: 0
      })
      const results = expectExactlyOnce(output, all)
      expect(results.lines.every((line) => line.error === null)).toBe(true)
    },
    TIMEOUT
  )

  it(
    "a second run on the same output refuses to start, naming the holder's pid; a lock left by kill -9 is stale",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setFaults({ hang: 1 }))
      const all = ids(10)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const holder = sluice(runArgs(input, output, "--concurrency", "2"), KEY_ENV)
      await awaitRequests(1)
      const second = await sluiceRun(runArgs(input, output, "--json"), KEY_ENV)
      expect(second.code).toBe(3)
      expect(second.stderr).toContain(`pid ${holder.child.pid}`)
      expect(second.stdout).toBe("")

      holder.child.kill("SIGKILL")
      await holder.exited
      await Effect.runPromise(provider.setFaults({}))
      const after = await sluiceRun(runArgs(input, output, "--json"), KEY_ENV)
      expect(after.code).toBe(0)
      expectExactlyOnce(output, all)
      expect(fs.existsSync(`${output}.lock`)).toBe(false)
    },
    TIMEOUT
  )

  it(
    "one Ctrl-C delivered twice at once (as a launcher forwards it) drains, it does not stop at once",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setLatency({ fixed: "50 millis" }))
      const all = ids(400)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")

      const run = sluice(runArgs(input, output, "--concurrency", "4", "--json"), KEY_ENV)
      await waitUntil("the output has 10 lines", () => countLines(output) >= 10)
      run.child.kill("SIGINT")
      run.child.kill("SIGINT")
      expect((await run.exited).code).toBe(130)
      const summary = JSON.parse(run.stdout())
      expect(summary).toMatchObject({ stopReason: "drained", failed: 0 })
      expect(readResults(output).ids.length).toBe(summary.succeeded)
    },
    TIMEOUT
  )

  it(
    "Ctrl-C through the README's launcher (npx pnpm sluice: the whole process group gets it) drains: every request sent is kept",
    async () => {
      freshDir()
      await Effect.runPromise(provider.setLatency({ fixed: "200 millis" }))
      const all = ids(400)
      const input = writeInput(all.map((id) => chatLine(id)))
      const output = path.join(dir!, "results.jsonl")
      const launched = spawn(
        "npx",
        ["-y", "pnpm@10.34.9", "sluice", ...runArgs(input, output, "--concurrency", "8", "--json")],
        { cwd: REPO_ROOT, env: { ...process.env, ...KEY_ENV, NO_COLOR: "1" }, detached: true, stdio: "pipe" }
      )
      let stdout = ""
      let stderr = ""
      launched.stdout.on("data", (chunk) => (stdout += String(chunk)))
      launched.stderr.on("data", (chunk) => (stderr += String(chunk)))
      const closed = new Promise<void>((resolve) => launched.on("close", () => resolve()))
      await waitUntil("the output has 10 lines", () => countLines(output) >= 10, 60_000)
      // What a terminal does on Ctrl-C: SIGINT to the foreground process group (launchers and sluice).
      process.kill(-launched.pid!, "SIGINT")
      await closed
      // pnpm prints its own lines around the program's.
      const json = stdout.split("\n").find((line) => line.startsWith("{"))
      expect(json, `no summary on stdout:\n${stdout}\nstderr:\n${stderr}`).toBeDefined()
      const summary = JSON.parse(json!)
      expect(summary).toMatchObject({ stopReason: "drained", failed: 0, exitCode: 130 })
      const kept = readResults(output)
      expect(kept.torn).toBe(false)
      expect(kept.ids.length).toBe(summary.succeeded)
      // Nothing sent was discarded: every request the provider served has its result.
      expect((await Effect.runPromise(provider.counters)).served).toBe(kept.ids.length)
    },
    TIMEOUT
  )

  it(
    "sluice run --help lists the exit codes",
    async () => {
      const help = await sluiceRun(["run", "--help"])
      expect(help.code).toBe(0)
      for (const code of ["0", "1", "2", "3", "4", "5", "130"]) expect(help.stdout).toMatch(new RegExp(`\\b${code}\\s`))
      expect(help.stdout).toContain("authentication failed")
      expect(help.stdout).toContain("--max-outage")
    },
    TIMEOUT
  )

  it(
    "usage errors exit 2 without running (run and demo)",
    async () => {
      freshDir()
      const input = writeInput([chatLine("a")])
      const output = path.join(dir!, "results.jsonl")
      const [badFlag, badDuration, badShare, missingKey, demo] = await Promise.all([
        sluiceRun(runArgs(input, output, "--concurrency", "0")),
        sluiceRun(runArgs(input, output, "--timeout", "soon")),
        sluiceRun(runArgs(input, output, "--headroom", "1.5")),
        sluiceRun(runArgs(input, output), {}),
        sluiceRun(["demo", "--requests", "many"])
      ])
      expect(badFlag.code).toBe(2)
      expect(badFlag.stderr + badFlag.stdout).toContain("--concurrency: expected a whole number above 0")
      expect(badDuration.code).toBe(2)
      expect(badDuration.stderr + badDuration.stdout).toContain("--timeout: expected a duration")
      expect(badShare.code).toBe(2)
      expect(badShare.stderr + badShare.stdout).toContain("--headroom: expected a share from 0 and below 1, got 1.5")
      expect(missingKey.code).toBe(2)
      expect(missingKey.stderr).toContain("the environment variable SLUICE_E2E_KEY is not set")
      expect(fs.existsSync(output)).toBe(false)
      expect(demo.code).toBe(2)
      expect(demo.stderr + demo.stdout).toContain("--requests: 'many' is not an integer")
    },
    TIMEOUT
  )
})
