/**
 * `sluice run --redis`: two real `sluice run` processes over different input
 * files, against one MockProvider that enforces the limit both were given,
 * share one quota through Redis. Waits on the processes' exits (bounded);
 * asserts on the provider's log, never on timing.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sluice/redis"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { prefixFor } from "../src/internal/sharedLimits.js"
import { readResults, runArgs, sluice, sluiceRun, waitUntil } from "./utils/child.js"
import { tcpProxy } from "./utils/tcpProxy.js"

/** The Redis the runs share (`.ci/run` starts one when nothing answers); never skipped when missing. */
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

/** Deletes the keys the runs left under `prefix` (they expire by themselves too, once idle). */
const deleteKeys = (prefix: string) =>
  Effect.scoped(
    Effect.flatMap(RedisClient.make({ url: Redacted.make(redisUrl), deadline: "5 seconds" }), ({ redis }) =>
      Effect.promise(async () => {
        let cursor = "0"
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
          cursor = next
          if (keys.length > 0) await redis.del(...keys)
        } while (cursor !== "0")
      })
    )
  )
const API_KEY = "sk-redis-e2e-0123456789"
const LINES = 24

const chatLine = (id: string, model: string) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model, messages: [{ role: "user", content: `hello ${id}` }], max_tokens: 4 }
  })

describe("sluice run --redis", () => {
  it.scopedLive(
    "two runs over different inputs share one quota: no 429, every line done once",
    () =>
      Effect.gen(function* () {
        // 6 requests per 2 s, enforced by the provider; each run is given the same limit.
        const provider = yield* MockProvider.make({ apiKeys: [API_KEY], rpm: 6, window: "2 seconds" })
        yield* Effect.addFinalizer(() => Effect.orDie(deleteKeys(prefixFor(provider.baseUrl))))
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-redis-e2e-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const run = (name: string) => {
          const input = path.join(dir, `${name}.jsonl`)
          fs.writeFileSync(
            input,
            `${Array.from({ length: LINES }, (_, i) => chatLine(`${name}-${i}`, `model-${name}`)).join("\n")}\n`
          )
          const output = path.join(dir, `${name}.results.jsonl`)
          return {
            output,
            done: sluiceRun(
              runArgs(
                { input, output, baseUrl: provider.baseUrl, keyEnv: "SLUICE_REDIS_E2E_KEY" },
                "--rpm",
                "6",
                "--window",
                "2s",
                // 15% of a 2 s window (300 ms) for the time between an admission and the request's arrival:
                // the default 2% (40 ms) is less than two processes' scheduling jitter on a loaded machine.
                "--headroom",
                "0.15",
                "--no-learn-limits",
                "--concurrency",
                "4",
                "--json",
                "--redis",
                redisUrl
              ),
              { SLUICE_REDIS_E2E_KEY: API_KEY }
            )
          }
        }
        const a = run("a")
        const b = run("b")
        const [resultA, resultB] = yield* Effect.promise(() => Promise.all([a.done, b.done])).pipe(
          Effect.timeoutFail({ duration: "240 seconds", onTimeout: () => new Error("the runs did not end") })
        )
        expect(resultA.code, resultA.stderr).toBe(0)
        expect(resultB.code, resultB.stderr).toBe(0)
        for (const result of [resultA, resultB]) {
          expect(JSON.parse(result.stdout)).toMatchObject({ succeeded: LINES, rateLimited: 0 })
        }
        for (const output of [a.output, b.output]) {
          expect(fs.readFileSync(output, "utf8").trim().split("\n")).toHaveLength(LINES)
        }
        // The provider, holding both to the one limit, refused nothing.
        const counters = yield* provider.counters
        expect(counters).toMatchObject({ served: 2 * LINES, rateLimited: 0 })
        // And the runs overlapped: each sent while the other was sending (so they did share the quota).
        const log = yield* provider.log
        const span = (model: string) => {
          const times = log.filter((entry) => entry.model === model).map((entry) => entry.time)
          return { first: Math.min(...times), last: Math.max(...times) }
        }
        const spanA = span("model-a")
        const spanB = span("model-b")
        expect(Math.min(spanA.last, spanB.last)).toBeGreaterThan(Math.max(spanA.first, spanB.first))
      }),
    300_000
  )
  it.scopedLive(
    "--redis-env: the URL comes from the environment; its password shows nowhere (output, errors, report, logs)",
    () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({ apiKeys: [API_KEY] })
        yield* Effect.addFinalizer(() => Effect.orDie(deleteKeys(prefixFor(provider.baseUrl))))
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-redis-env-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const lines = 4
        const input = path.join(dir, "in.jsonl")
        fs.writeFileSync(
          input,
          `${Array.from({ length: lines }, (_, i) => chatLine(`e-${i}`, "model-e")).join("\n")}\n`
        )
        const output = path.join(dir, "out.jsonl")
        const report = path.join(dir, "report.html")
        // The local Redis asks no password: ioredis is given one anyway (and says it was not needed).
        const PASSWORD = "pw-e2e-must-not-leak-7f3a9c"
        const withPassword = new URL(redisUrl)
        withPassword.password = PASSWORD
        const args = (...redis: Array<string>) =>
          runArgs(
            { input, output, baseUrl: provider.baseUrl, keyEnv: "SLUICE_REDIS_E2E_KEY" },
            "--rpm",
            "6000",
            "--no-learn-limits",
            "--json",
            "--report",
            report,
            ...redis
          )
        const env = { SLUICE_REDIS_E2E_KEY: API_KEY, SLUICE_REDIS_E2E_URL: withPassword.toString() }
        const shown = (texts: ReadonlyArray<string>) => texts.filter((text) => text.includes(PASSWORD))

        const ran = yield* Effect.promise(() => sluiceRun(args("--redis-env", "SLUICE_REDIS_E2E_URL"), env))
        expect(ran.code, ran.stderr).toBe(0)
        expect(JSON.parse(ran.stdout)).toMatchObject({ succeeded: lines, failed: 0 })
        // The limits did live in Redis, under the run's prefix.
        const keys = yield* Effect.scoped(
          Effect.flatMap(RedisClient.make({ url: Redacted.make(redisUrl), deadline: "5 seconds" }), ({ redis }) =>
            Effect.promise(() => redis.keys(`${prefixFor(provider.baseUrl)}*`))
          )
        )
        expect(keys.length).toBeGreaterThan(0)
        const files = fs.readdirSync(dir).map((name) => fs.readFileSync(path.join(dir, name), "utf8"))
        expect(files.length).toBeGreaterThanOrEqual(3)
        expect(shown([ran.stdout, ran.stderr, ...files])).toEqual([])

        // A URL that is not one: the error names the flag and the variable, not the URL's password.
        const wrong = yield* Effect.promise(() =>
          sluiceRun(args("--redis-env", "SLUICE_REDIS_E2E_URL"), {
            ...env,
            SLUICE_REDIS_E2E_URL: `ftp://user:${PASSWORD}@127.0.0.1:6379`
          })
        )
        expect(wrong.code).not.toBe(0)
        expect(wrong.stderr).toContain("--redis-env SLUICE_REDIS_E2E_URL: Expected a redis:// or rediss:// URL")
        expect(shown([wrong.stdout, wrong.stderr])).toEqual([])

        // An unset variable, and both flags at once, are refused before anything runs.
        const unset = yield* Effect.promise(() => sluiceRun(args("--redis-env", "SLUICE_REDIS_E2E_UNSET"), env))
        expect(unset.code).not.toBe(0)
        expect(unset.stderr).toContain("--redis-env SLUICE_REDIS_E2E_UNSET: the environment variable")
        const both = yield* Effect.promise(() =>
          sluiceRun(args("--redis", redisUrl, "--redis-env", "SLUICE_REDIS_E2E_URL"), env)
        )
        expect(both.code).not.toBe(0)
        expect(both.stderr).toContain("give one or the other")
        expect(shown([both.stdout, both.stderr])).toEqual([])
      }),
    300_000
  )
  it.scopedLive(
    "Redis cut mid-run: the run waits for it as for a provider that is down, then finishes; no line failed",
    () =>
      Effect.gen(function* () {
        const provider = yield* MockProvider.make({
          apiKeys: [API_KEY],
          latency: { uniform: { min: "100 millis", max: "200 millis" } }
        })
        yield* Effect.addFinalizer(() => Effect.orDie(deleteKeys(prefixFor(provider.baseUrl))))
        const target = new URL(redisUrl)
        const proxy = yield* Effect.acquireRelease(
          Effect.promise(() => tcpProxy({ host: target.hostname, port: Number(target.port || 6379) })),
          (proxy) => Effect.promise(() => proxy.close())
        )
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-redis-cut-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const lines = 40
        const input = path.join(dir, "in.jsonl")
        fs.writeFileSync(
          input,
          `${Array.from({ length: lines }, (_, i) => chatLine(`c-${i}`, "model-c")).join("\n")}\n`
        )
        const output = path.join(dir, "out.jsonl")
        const run = sluice(
          runArgs(
            { input, output, baseUrl: provider.baseUrl, keyEnv: "SLUICE_REDIS_E2E_KEY" },
            "--rpm",
            "6000",
            "--no-learn-limits",
            "--concurrency",
            "2",
            "--json",
            "--redis",
            `redis://127.0.0.1:${proxy.port}`
          ),
          { SLUICE_REDIS_E2E_KEY: API_KEY }
        )
        yield* Effect.promise(async () => {
          await waitUntil("5 lines are done", () => readResults(output).lines.length >= 5, 120_000)
          proxy.cut()
          await waitUntil(
            "the run reports the store's outage",
            () => run.stderr().includes("limits' store is unavailable"),
            120_000
          )
          proxy.restore()
        })
        const { code } = yield* Effect.promise(() => run.exited)
        expect(code, run.stderr()).toBe(0)
        const results = readResults(output)
        expect(new Set(results.ids).size).toBe(lines)
        expect(results.lines).toHaveLength(lines)
        expect(results.lines.filter((line) => line.error !== null)).toEqual([])
        // stdout holds the one JSON object: the store's switches are logged on stderr.
        expect(JSON.parse(run.stdout())).toMatchObject({ succeeded: lines, failed: 0 })
        expect(run.stderr()).toContain("Redis is unavailable")
      }),
    300_000
  )
})
