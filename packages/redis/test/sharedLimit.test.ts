import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import * as MockProvider from "@sluice/testing/MockProvider"
import * as Effect from "effect/Effect"
import { admin, deleteKeys, freshPrefix, redisUrl } from "./utils/redis.js"

const CHILD = fileURLToPath(new URL("./fixtures/sharedLimitChild.ts", import.meta.url))
const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url))

/**
 * 5 requests per second, shared by every process; the MockProvider enforces the same over a sliding 8 s.
 * The limiter's sliding-log margin (300 ms, under 4% of the interval) is the room for a request's trip from
 * its admission to the provider on a loaded machine (half of it: up to 150 ms later than the others').
 */
const LIMIT = 40
const INTERVAL_MS = 8000
const PROCESSES = 4
const PER_PROCESS = 16

interface ChildResult {
  readonly statuses: ReadonlyArray<number>
  readonly roundTrips: number
  readonly backend: string
}

/** Starts one child; resolves `ready` once it says so, `result` with its JSON line once it exits 0. */
const child = (env: Record<string, string>) => {
  const process_ = spawn(process.execPath, ["--import", "tsx", CHILD], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  let onReady: () => void = () => {}
  let onFailed: (error: Error) => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve
    onFailed = reject
  })
  process_.stdout.on("data", (chunk) => {
    stdout += String(chunk)
    if (stdout.startsWith("ready\n")) onReady()
  })
  process_.stderr.on("data", (chunk) => (stderr += String(chunk)))
  const result = new Promise<ChildResult>((resolve, reject) =>
    process_.on("close", (code) => {
      const failed = new Error(`child exited ${code}: ${stderr}`)
      onFailed(failed)
      if (code === 0) resolve(JSON.parse(stdout.split("\n").filter((line) => line.startsWith("{"))[0]!) as ChildResult)
      else reject(failed)
    })
  )
  result.catch(() => {})
  return { process: process_, ready, result }
}

/** Runs the four processes against one MockProvider; answers the provider's log and the children's results. */
const runShared = (offsets: ReadonlyArray<number>) =>
  Effect.gen(function* () {
    const provider = yield* MockProvider.make({ rpm: LIMIT, window: INTERVAL_MS })
    const prefix = freshPrefix()
    const redis = yield* admin()
    yield* Effect.addFinalizer(() => Effect.promise(() => deleteKeys(redis, prefix)))
    const children = offsets.map((offset) =>
      child({
        REDIS_URL: redisUrl,
        PREFIX: prefix,
        BASE_URL: provider.baseUrl,
        COUNT: String(PER_PROCESS),
        LIMIT: String(LIMIT),
        INTERVAL_MS: String(INTERVAL_MS),
        WINDOW_MARGIN_MS: "300",
        CLOCK_OFFSET_MS: String(offset)
      })
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const c of children) if (c.process.exitCode === null) c.process.kill("SIGKILL")
      })
    )
    // Every process set up (tsx started, Redis connected), then all of them go at once.
    yield* Effect.promise(() => Promise.all(children.map((c) => c.ready))).pipe(Effect.timeout("240 seconds"))
    for (const c of children) c.process.stdin.write("go\n")
    const results = yield* Effect.promise(() => Promise.all(children.map((c) => c.result))).pipe(
      Effect.timeout("240 seconds")
    )
    return { counters: yield* provider.counters, log: yield* provider.log, results }
  })

/** The chat requests in the provider's log (the children's warm-up lists models, which is not metered). */
const chats = (log: ReadonlyArray<MockProvider.LogEntry>) =>
  log.filter((entry) => entry.path.endsWith("/chat/completions"))

/** Requests per second between the first and the last request the provider served. */
const servedRate = (log: ReadonlyArray<MockProvider.LogEntry>) => {
  const served = chats(log)
    .filter((entry) => entry.outcome === "served")
    .map((entry) => entry.time)
  return (served.length - 1) / ((Math.max(...served) - Math.min(...served)) / 1000)
}

const checkShared = (run: Effect.Effect.Success<ReturnType<typeof runShared>>) => {
  const { counters, log, results } = run
  // No 429 anywhere, every request served.
  expect(counters.rateLimited).toBe(0)
  expect(chats(log).filter((entry) => entry.outcome === "served")).toHaveLength(PROCESSES * PER_PROCESS)
  for (const result of results) {
    expect(result.statuses.every((status) => status === 200)).toBe(true)
    expect(result.backend).toBe("redis")
  }
  // Together at least 95% of the limit (20 per second), and never above it.
  const rate = servedRate(log)
  const limitPerSecond = LIMIT / (INTERVAL_MS / 1000)
  expect(rate).toBeGreaterThanOrEqual(0.95 * limitPerSecond)
  expect(rate).toBeLessThanOrEqual(limitPerSecond * 1.01)
  // Every process got a share: nobody was starved.
  const requests = results.reduce((total, result) => total + result.statuses.length, 0)
  expect(requests).toBe(PROCESSES * PER_PROCESS)
}

describe("several processes share one limit through Redis", () => {
  it.scopedLive(
    "four processes, each with its own Executor: no 429, and together at least 95% of the limit",
    () => Effect.map(runShared([0, 0, 0, 0]), checkShared),
    300_000
  )

  it.scopedLive(
    "their Clocks minutes apart (-5, 0, +3, +7 min): the limit holds",
    () => Effect.map(runShared([-5 * 60_000, 0, 3 * 60_000, 7 * 60_000]), checkShared),
    300_000
  )
})
