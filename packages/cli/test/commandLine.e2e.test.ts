/**
 * The `sluice` command line as a user meets it, end to end: the built program
 * as a child process (as the README starts it), its `--help`, its colour, its
 * flag errors, and its refusal to send a batch to a host other than loopback
 * without a key unless told. Nothing here waits a fixed time: each child runs
 * to its end.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { chatLine, ids, readResults, sluiceRun } from "./utils/child.js"

/** Each test starts child processes, slow on a busy machine. */
const TIMEOUT = 120_000
const ESCAPE = "\x1b"

let scope: Scope.CloseableScope
let dir: string

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-command-line-"))
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fs.rmSync(dir, { recursive: true, force: true })
})

/** `--help` split into its options: each `--flag ...` heading with the lines under it. */
const optionBlocks = (help: string): Map<string, string> => {
  const blocks = new Map<string, string>()
  let current: string | undefined
  for (const line of help.split("\n")) {
    const heading = /^(--[a-z-]+)/.exec(line)
    if (heading !== null) {
      current = heading[1]!
      blocks.set(current, "")
    } else if (current !== undefined) {
      blocks.set(current, `${blocks.get(current)}${line}\n`)
    }
  }
  return blocks
}

/** Options of @effect/cli's own, not ours. */
const BUILT_IN = new Set(["--completions", "--log-level", "--wizard", "--version"])

const writeInput = (name: string, count: number) => {
  const input = path.join(dir, name)
  fs.writeFileSync(
    input,
    `${ids(count)
      .map((id) => chatLine(id))
      .join("\n")}\n`
  )
  return input
}

/** An address of this machine that is not loopback, if it has one (the CI machine's eth0). */
const externalIPv4 = (): string | undefined =>
  Object.values(os.networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .find((address) => address.family === "IPv4" && !address.internal)?.address

describe("the sluice command line", () => {
  it(
    "--help shows the default of every optional flag, the base URL's included",
    async () => {
      const [run, demo] = await Promise.all([sluiceRun(["run", "--help"]), sluiceRun(["demo", "--help"])])
      expect(run.code).toBe(0)
      expect(demo.code).toBe(0)
      expect(run.stdout).toContain("Default: https://api.openai.com/v1")
      const runOptions = optionBlocks(run.stdout)
      const required = new Set(["--input", "--output", "--help"])
      const optional = [...runOptions.keys()].filter((flag) => !required.has(flag) && !BUILT_IN.has(flag))
      // Every flag of `sluice run` is listed, and each optional one says its default.
      expect(optional).toEqual(
        expect.arrayContaining(["--base-url", "--api-key-env", "--no-api-key", "--concurrency", "--max-outage"])
      )
      for (const flag of optional) expect(runOptions.get(flag), flag).toMatch(/Default: \S/)
      expect(runOptions.get("--concurrency")).toContain("Default: 16")
      expect(runOptions.get("--timeout")).toContain("Default: 60s")
      expect(runOptions.get("--max-outage")).toContain("Default: 5m")
      expect(runOptions.get("--output-tokens-charged")).toContain("Default: maximum")
      const demoOptions = optionBlocks(demo.stdout)
      for (const flag of ["--requests", "--keep-files", "--report"]) {
        expect(demoOptions.get(flag), flag).toMatch(/Default: \S/)
      }
      expect(demoOptions.get("--requests")).toContain("Default: 320")
    },
    TIMEOUT
  )

  it(
    "writes no colour codes when piped, nor with NO_COLOR set: help on stdout, errors on stderr",
    async () => {
      // NO_COLOR="" counts as unset (no-color.org): only the pipe keeps colour out.
      const runs = await Promise.all([
        sluiceRun(["run", "--help"], { NO_COLOR: "" }),
        sluiceRun(["--help"], { NO_COLOR: "" }),
        sluiceRun(["run", "--concurrency", "abc"], { NO_COLOR: "" }),
        sluiceRun(["run", "--help"], { NO_COLOR: "1" }),
        sluiceRun(["bogus"], { NO_COLOR: "1" })
      ])
      for (const run of runs) {
        expect(run.stdout + run.stderr).not.toBe("")
        expect(run.stdout).not.toContain(ESCAPE)
        expect(run.stderr).not.toContain(ESCAPE)
      }
      // The help is all there, headings included, only plain.
      expect(runs[0]!.stdout).toContain("USAGE")
      expect(runs[0]!.stdout).toContain("OPTIONS")
    },
    TIMEOUT
  )

  it(
    "flag errors name the flag as typed and exit 2",
    async () => {
      const input = writeInput("errors.jsonl", 1)
      const output = path.join(dir, "errors-results.jsonl")
      const run = (...flags: Array<string>) => sluiceRun(["run", "--input", input, "--output", output, ...flags])
      const cases: ReadonlyArray<readonly [Promise<{ code: number | null; stdout: string; stderr: string }>, string]> =
        [
          [run("--concurrency", "abc"), "--concurrency: 'abc' is not an integer"],
          [run("--rpm", "1.5"), "--rpm: '1.5' is not an integer"],
          [run("--burst", "lots"), "--burst: 'lots' is not a number"],
          [run("--output-tokens-charged", "all"), "--output-tokens-charged: 'all' is not one of maximum, used"],
          [run("--base-url", "api.openai.com"), "--base-url: expected an absolute URL"],
          [run("--base-url", "ftp://example.com/v1"), "--base-url: expected an http:// or https:// URL"],
          [
            sluiceRun(["run", "--input", path.join(dir, "missing.jsonl"), "--output", output]),
            `--input: no such file: ${path.join(dir, "missing.jsonl")}`
          ],
          [run("--report", dir), `--report: not a file: ${dir}`],
          [sluiceRun(["demo", "--requests", "many"]), "--requests: 'many' is not an integer"],
          [
            run("--base-url", "http://example.com/v1", "--api-key-env", "SLUICE_UNUSED_KEY"),
            "--base-url: plain http:// to example.com, which is not loopback, would cross the network in clear; use https://, or add --allow-insecure-http"
          ],
          [
            run("--no-api-key", "--api-key-env", "SLUICE_UNUSED_KEY"),
            "--no-api-key and --api-key-env SLUICE_UNUSED_KEY"
          ]
        ]
      const results = await Promise.all(cases.map(([result]) => result))
      results.forEach((result, index) => {
        const expected = cases[index]![1]
        expect(result.code, expected).toBe(2)
        expect(result.stderr, expected).toContain(expected)
      })
      // No error speaks of the flags by their names in code.
      for (const result of results) expect(result.stderr).not.toMatch(/allowInsecureHttp|is not a integer/)
      expect(fs.existsSync(output)).toBe(false)
    },
    TIMEOUT
  )

  it(
    "a run to a host other than loopback without --api-key-env refuses to start; --no-api-key says it is meant",
    async () => {
      // A MockProvider on an address of this machine that is not loopback; without one, 0.0.0.0 (which
      // Linux connects to this machine) names the loopback server by an address that is not loopback.
      const address = externalIPv4()
      const provider = await Effect.runPromise(
        Scope.extend(MockProvider.make({ host: address ?? "127.0.0.1", seed: 3 }), scope)
      )
      const baseUrl = `http://${address ?? "0.0.0.0"}:${provider.port}/v1`
      const input = writeInput("remote.jsonl", 5)
      const output = path.join(dir, "remote-results.jsonl")
      const args = ["run", "--input", input, "--output", output, "--base-url", baseUrl, "--allow-insecure-http"]

      const refused = await sluiceRun(args)
      expect(refused.code).toBe(2)
      expect(refused.stderr).toContain(
        `--base-url: no --api-key-env given, so no API key would be sent to ${address ?? "0.0.0.0"}`
      )
      expect(refused.stderr).toContain("--no-api-key")
      expect(fs.existsSync(output)).toBe(false)
      expect((await Effect.runPromise(provider.counters)).total).toBe(0)

      // Also for the default base URL (https://api.openai.com/v1): refused before any connection.
      const byDefault = await sluiceRun(["run", "--input", input, "--output", output])
      expect(byDefault.code).toBe(2)
      expect(byDefault.stderr).toContain("no API key would be sent to api.openai.com")

      const meant = await sluiceRun([...args, "--no-api-key", "--json"])
      expect(meant.code, meant.stderr).toBe(0)
      expect(JSON.parse(meant.stdout)).toMatchObject({ succeeded: 5, failed: 0 })
      expect(readResults(output).ids.length).toBe(5)
      expect((await Effect.runPromise(provider.counters)).served).toBe(5)
    },
    TIMEOUT
  )
})
