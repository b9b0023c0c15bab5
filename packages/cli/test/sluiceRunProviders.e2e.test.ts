/**
 * `sluice run --providers` end to end: the real program as a child process, against two real MockProviders
 * in this process (each with its own key and quota), writing real files in a temp dir. Nothing here asserts
 * on timing; the child runs to its end (bounded by the test's timeout).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { chatLine, ids, readResults, sluiceRun } from "./utils/child.js"

const KEY_A = "sk-e2e-provider-a-do-not-print"
const KEY_B = "sk-e2e-provider-b-do-not-print"
const KEYS = { SLUICE_KEY_A: KEY_A, SLUICE_KEY_B: KEY_B }
const TIMEOUT = 120_000

let scope: Scope.CloseableScope
let a: MockProvider.MockProviderShape
let b: MockProvider.MockProviderShape
let dir: string

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  a = await Effect.runPromise(Scope.extend(MockProvider.make({ apiKeys: [KEY_A], seed: 1 }), scope))
  b = await Effect.runPromise(Scope.extend(MockProvider.make({ apiKeys: [KEY_B], seed: 2 }), scope))
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

afterEach(async () => {
  fs.rmSync(dir, { recursive: true, force: true })
  await Effect.runPromise(Effect.all([a.setFaults({}), a.reset, b.setFaults({}), b.reset]))
})

const setUp = (providers: unknown, lines = 40) => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-providers-"))
  const input = path.join(dir, "requests.jsonl")
  fs.writeFileSync(
    input,
    `${ids(lines)
      .map((id) => chatLine(id))
      .join("\n")}\n`
  )
  const file = path.join(dir, "providers.json")
  fs.writeFileSync(file, typeof providers === "string" ? providers : JSON.stringify(providers))
  const output = path.join(dir, "results.jsonl")
  return { input, output, file, args: ["run", "--input", input, "--output", output, "--providers", file] }
}

const twoProviders = () => [
  { name: "alpha", baseUrl: a.baseUrl, keyEnv: "SLUICE_KEY_A", domain: "org-a", limits: { rpm: 6000 } },
  { name: "beta", baseUrl: b.baseUrl, keyEnv: "SLUICE_KEY_B", domain: "org-b" }
]

describe("sluice run --providers", () => {
  it(
    "sends the lines through both providers, each with its own key; the summary counts each provider; no key printed",
    async () => {
      const { args, output } = setUp(twoProviders())
      const run = await sluiceRun([...args, "--json"], KEYS)
      expect(run.code).toBe(0)
      const summary = JSON.parse(run.stdout) as {
        succeeded: number
        failed: number
        providers: ReadonlyArray<{ name: string; served: number; failed: number; ejections: number }>
      }
      expect(summary).toMatchObject({ succeeded: 40, failed: 0 })
      const [alpha, beta] = summary.providers
      expect(alpha).toMatchObject({ name: "alpha", failed: 0 })
      expect(beta).toMatchObject({ name: "beta", failed: 0 })
      // Each provider served lines (with its own key: the MockProviders refuse any other), together all of them.
      expect(alpha!.served).toBeGreaterThan(0)
      expect(beta!.served).toBeGreaterThan(0)
      expect(alpha!.served + beta!.served).toBe(40)
      const counters = await Effect.runPromise(Effect.zip(a.counters, b.counters))
      expect(counters[0].served + counters[1].served).toBe(40)
      expect(counters[0].unauthorized + counters[1].unauthorized).toBe(0)
      expect(readResults(output).ids.length).toBe(40)
      for (const text of [run.stdout, run.stderr, fs.readFileSync(output, "utf8")]) {
        expect(text).not.toContain(KEY_A)
        expect(text).not.toContain(KEY_B)
      }
    },
    TIMEOUT
  )

  it(
    "one provider failing (every answer a 503): its lines move to the other, no line fails, the run does not pause",
    async () => {
      await Effect.runPromise(b.setFaults({ serviceUnavailable503: 1 }))
      const { args } = setUp(twoProviders())
      const run = await sluiceRun([...args, "--json"], KEYS)
      expect(run.code).toBe(0)
      const summary = JSON.parse(run.stdout) as {
        succeeded: number
        failed: number
        providers: ReadonlyArray<{ name: string; served: number; movedAway: number }>
      }
      expect(summary).toMatchObject({ succeeded: 40, failed: 0 })
      expect(summary.providers[0]).toMatchObject({ name: "alpha", served: 40 })
      expect(summary.providers[1]).toMatchObject({ name: "beta", served: 0 })
      expect(summary.providers[1]!.movedAway).toBeGreaterThan(0)
    },
    TIMEOUT
  )

  it(
    "an invalid providers file: a usage error naming the file, the entry and the field; nothing sent",
    async () => {
      const { args, file } = setUp([
        { name: "alpha", baseUrl: "not a url", keyEnv: "SLUICE_KEY_A" },
        { name: "beta", baseUrl: "http://127.0.0.1:1/v1", limits: { rpm: -5 } }
      ])
      const run = await sluiceRun(args, KEYS)
      expect(run.code).toBe(2)
      expect(run.stderr).toContain(`--providers ${file}`)
      expect(run.stderr).toContain('entry 0 ("alpha"), field baseUrl')
      expect(run.stderr).toContain('entry 1 ("beta"), field limits.rpm')
      const counters = await Effect.runPromise(Effect.zip(a.counters, b.counters))
      expect(counters[0].total + counters[1].total).toBe(0)
    },
    TIMEOUT
  )

  it(
    "a key variable that is not set: a usage error naming the variable (and no key's value)",
    async () => {
      const { args } = setUp(twoProviders())
      const run = await sluiceRun(args, { SLUICE_KEY_A: KEY_A })
      expect(run.code).toBe(2)
      expect(run.stderr).toContain('entry 1 ("beta"), field keyEnv: the environment variable SLUICE_KEY_B is not set')
      expect(run.stderr).not.toContain(KEY_A)
    },
    TIMEOUT
  )

  it(
    "--rpm with --providers: a usage error (the limits go in the file)",
    async () => {
      const { args } = setUp(twoProviders())
      const run = await sluiceRun([...args, "--rpm", "10"], KEYS)
      expect(run.code).toBe(2)
      expect(run.stderr).toContain("--rpm cannot go with it")
    },
    TIMEOUT
  )
})

describe("sluice run --provider (repeated flags in place of the file)", () => {
  /** The input and output of a run, and its arguments without any provider. */
  const withoutFile = () => {
    const { input, output } = setUp([])
    return { output, args: ["run", "--input", input, "--output", output] }
  }

  it(
    "two --provider flags in one --domain: both serve, each with its own key, each under the domain's limit; no key printed",
    async () => {
      const { args } = withoutFile()
      const run = await sluiceRun(
        [
          ...args,
          "--provider",
          `name=alpha,base-url=${a.baseUrl},key-env=SLUICE_KEY_A,domain=org`,
          "--provider",
          `name=beta,base-url=${b.baseUrl},key-env=SLUICE_KEY_B,domain=org,weight=2`,
          "--domain",
          "name=org,rpm=6000",
          "--json"
        ],
        KEYS
      )
      expect(run.code).toBe(0)
      const summary = JSON.parse(run.stdout) as {
        succeeded: number
        failed: number
        providers: ReadonlyArray<{ name: string; domain: string; served: number; limits: { rpm?: number } }>
      }
      expect(summary).toMatchObject({ succeeded: 40, failed: 0 })
      expect(summary.providers.map((provider) => [provider.name, provider.domain, provider.limits.rpm])).toEqual([
        ["alpha", "org", 6000],
        ["beta", "org", 6000]
      ])
      expect(summary.providers[0]!.served).toBeGreaterThan(0)
      expect(summary.providers[1]!.served).toBeGreaterThan(0)
      expect(`${run.stdout}${run.stderr}`).not.toContain(KEY_A)
      expect(`${run.stdout}${run.stderr}`).not.toContain(KEY_B)
    },
    TIMEOUT
  )

  it(
    "a bad --provider: a usage error naming the flag's occurrence and its key, as the file's are named; nothing sent",
    async () => {
      const { args } = withoutFile()
      const run = await sluiceRun(
        [
          ...args,
          "--provider",
          `name=alpha,base-url=${a.baseUrl},key-env=SLUICE_KEY_A`,
          "--provider",
          "name=beta,base-url=not a url,tpm=-5"
        ],
        KEYS
      )
      expect(run.code).toBe(2)
      expect(run.stderr).toContain('--provider #2 ("beta"), field base-url: Expected an http:// or https:// URL')
      expect(run.stderr).toContain('--provider #2 ("beta"), field tpm: Expected a positive number, actual -5')
      const missing = await sluiceRun([...args, "--provider", `name=alpha,base-url=${a.baseUrl},key-env=NOT_SET`], KEYS)
      expect(missing.code).toBe(2)
      expect(missing.stderr).toContain(
        '--provider #1 ("alpha"), field key-env: the environment variable NOT_SET is not set'
      )
      const counters = await Effect.runPromise(Effect.zip(a.counters, b.counters))
      expect(counters[0].total + counters[1].total).toBe(0)
    },
    TIMEOUT
  )

  it(
    "--provider with --providers, or --domain without --provider: a usage error",
    async () => {
      const { args, file } = setUp(twoProviders())
      const mixed = await sluiceRun(
        [...args, "--provider", `name=alpha,base-url=${a.baseUrl},key-env=SLUICE_KEY_A`],
        KEYS
      )
      expect(mixed.code).toBe(2)
      expect(mixed.stderr).toContain(`--providers ${file} and --provider cannot go together`)
      const { args: plain } = withoutFile()
      const lone = await sluiceRun([...plain, "--base-url", a.baseUrl, "--domain", "name=org,rpm=5"], KEYS)
      expect(lone.code).toBe(2)
      expect(lone.stderr).toContain("--domain goes with --provider")
    },
    TIMEOUT
  )
})
