/**
 * A profiling aid, not part of the benchmark: part 5's Effect rows against the
 * MockProvider's standalone program, and rows that split what the ApiClient
 * adds per call into its parts: the platform client alone, under
 * `Effect.timeoutFail`, inside a bare Executor (with and without the
 * ApiClient's default retry policy), the plain ApiClient (`executor: false`),
 * the ApiClient, and the ApiClient with bearer auth (every call built per
 * request, as part 5 does). Run from the repository root after
 * `node bench/build.mjs` (which bundles the MockProvider); the bundle goes in
 * `bench/build` so that it finds `effect` and the platform:
 *
 *   npx esbuild bench/profileHttp.ts --bundle --platform=node --format=esm --outfile=bench/build/ph.mjs \
 *     --external:effect --external:'@effect/*' --external:undici
 *   node --expose-gc bench/build/ph.mjs compare     # every row, round by round: median CPU µs/request
 *   ROWS=sluice,"ApiClient plain" ROUNDS=9 REQUESTS=2000 node --expose-gc bench/build/ph.mjs compare
 *   node --cpu-prof bench/build/ph.mjs sluice        # one row (by its name), for a CPU profile
 *   node bench/build/ph.mjs sluice --heap            # sampled allocations to /tmp/http-<row>.heapprofile
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { Session } from "node:inspector/promises"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Executor } from "@sluice/core"
import { ApiClient } from "@sluice/http"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Undici from "undici"

const REQUESTS = Number(process.env.REQUESTS ?? 5_000)
const CONCURRENCY = 64
const row = process.argv[2] ?? "sluice"
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const heap = process.argv.includes("--heap")

const Completion = Schema.Struct({ usage: Schema.Struct({ total_tokens: Schema.Number }) })
const body = { model: "mock-1", messages: [{ role: "user", content: "How fast can you answer?" }], max_tokens: 16 }

const provider = spawn(process.execPath, ["bench/build/mock-provider.mjs", "--port", "0"], {
  stdio: ["ignore", "pipe", "inherit"]
})
const baseUrl = await new Promise<string>((resolve) => {
  let output = ""
  provider.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString()
    const match = /listening on (\S+)/.exec(output)
    if (match !== null) resolve(match[1]!)
  })
})

const agent = new Undici.Agent({ connections: CONCURRENCY })
const pool = NodeHttpClient.layerUndiciWithoutDispatcher.pipe(
  Layer.provide(Layer.succeed(NodeHttpClient.Dispatcher, agent))
)

const rowsOf = Effect.gen(function* () {
  const client = yield* HttpClient.HttpClient
  const url = `${baseUrl}/chat/completions`
  const platform = Effect.suspend(() =>
    Effect.flatMap(
      client.execute(HttpClientRequest.post(url, { body: HttpBody.unsafeJson(body), acceptJson: true })),
      HttpClientResponse.schemaBodyJson(Completion)
    )
  )
  const executor = yield* Executor.make({
    name: "bare",
    concurrency: CONCURRENCY,
    queueCapacity: 100_000,
    spans: false
  })
  // As the ApiClient builds its executor: the default retry policy too.
  const retrying = yield* Executor.make({
    name: "retrying",
    concurrency: CONCURRENCY,
    queueCapacity: 100_000,
    spans: false,
    retry: { maxAttempts: 3, base: "500 millis", maxDelay: "30 seconds" }
  })
  const api = yield* ApiClient.make({
    name: "profile",
    baseUrl,
    limits: { concurrency: CONCURRENCY, queueCapacity: 100_000 }
  })
  const plain = yield* ApiClient.make({ name: "plain", baseUrl }, { executor: false })
  const authed = yield* ApiClient.make({
    name: "authed",
    baseUrl,
    auth: { _tag: "Bearer", token: Redacted.make("sk-profile-0123456789abcdef0123456789abcdef") },
    limits: { concurrency: CONCURRENCY, queueCapacity: 100_000 }
  })
  const rows: Record<string, Effect.Effect<unknown, unknown>> = {
    platform,
    "platform+timeoutFail": Effect.timeoutFail(platform, { duration: 30_000, onTimeout: () => new Error("late") }),
    "platform in Executor": executor.submit(platform, { timeout: 30_000, onTimeout: () => new Error("late") }),
    "platform in Executor (no timeout)": executor.submit(platform),
    "platform in Executor with retry (no timeout)": retrying.submit(platform),
    "platform in Executor with retry": retrying.submit(platform, {
      timeout: 30_000,
      onTimeout: () => new Error("late")
    }),
    "ApiClient plain": Effect.suspend(() => plain.post("/chat/completions", { schema: Completion, body })),
    sluice: Effect.suspend(() => api.post("/chat/completions", { schema: Completion, body })),
    "sluice (bearer auth)": Effect.suspend(() => authed.post("/chat/completions", { schema: Completion, body }))
  }
  return rows
})

const measure = (call: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const started = process.cpuUsage()
    yield* Effect.forEach(Array.from({ length: REQUESTS }), () => call, { concurrency: CONCURRENCY, discard: true })
    const cpu = process.cpuUsage(started)
    return (cpu.user + cpu.system) / REQUESTS
  })

const program = Effect.gen(function* () {
  const rows = yield* rowsOf
  if (row === "compare") {
    // Every row, round by round (each round starting at the next row), median CPU µs per request.
    const only = process.env.ROWS?.split(",")
    const names = Object.keys(rows).filter((name) => name === "platform" || only === undefined || only.includes(name))
    const samples: Record<string, Array<number>> = {}
    for (const name of names) {
      yield* measure(rows[name]!) // warm-up
      samples[name] = []
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(round + k) % names.length]!
        ;(globalThis as { gc?: () => void }).gc?.()
        samples[name]!.push(yield* measure(rows[name]!))
      }
    }
    const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[values.length >> 1]!
    const base = median(samples.platform!)
    for (const name of names) {
      const value = median(samples[name]!)
      process.stdout.write(
        `${name.padEnd(24)} ${value.toFixed(0).padStart(5)} µs CPU/request  ${(value / base).toFixed(2)}x\n`
      )
    }
    return
  }
  const call = rows[row]
  if (call === undefined) throw new Error(`no row ${row}: ${Object.keys(rows).join(", ")}, compare`)
  yield* measure(call) // warm-up
  const session = new Session()
  if (heap) {
    session.connect()
    yield* Effect.promise(() =>
      session.post("HeapProfiler.startSampling", {
        samplingInterval: 512,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true
      } as never)
    )
  }
  const micros = yield* measure(call)
  process.stdout.write(`${row}: ${micros.toFixed(0)} µs CPU/request\n`)
  if (heap) {
    const { profile } = (yield* Effect.promise(() => session.post("HeapProfiler.stopSampling"))) as {
      profile: unknown
    }
    fs.writeFileSync(`/tmp/http-${row}.heapprofile`, JSON.stringify(profile))
  }
})

await Effect.runPromise(Effect.scoped(Effect.provide(program, pool)))
provider.kill("SIGINT")
await agent.destroy()
