/**
 * Part 5: requests per second through the ApiClient (no limits) against the
 * MockProvider with zero latency, at 64 concurrent requests, beside raw
 * undici `request` and `@effect/platform`'s HttpClient without Sluice. The
 * MockProvider runs as its own process (its standalone program, bundled by
 * `bench/build.mjs`), so the server has a core of its own and the clients'
 * differences show; each row has its own undici pool of 64 connections, and
 * the rounds go round the rows in turn so a change of load falls on all alike:
 * each round begins at the next row, and every run begins with a full garbage
 * collection (with `--expose-gc`), so no row pays for another's garbage.
 * Every row does a call's whole job each time (build the request, serialize
 * the body, read the answer); the platform row decodes it with the same
 * Schema as the ApiClient, so the difference is what Sluice adds.
 * The target is the client's CPU per request (this process's user + system
 * time), not requests/s: see `target`.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { ApiClient } from "@sluice/http"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Undici from "undici"
import { collect, median } from "./harness.js"
import * as Table from "./table.js"

export const CONCURRENCY = 64

const Completion = Schema.Struct({ usage: Schema.Struct({ total_tokens: Schema.Number }) })
const body = { model: "mock-1", messages: [{ role: "user", content: "How fast can you answer?" }], max_tokens: 16 }

export interface HttpRow {
  readonly name: string
  readonly role: "undici" | "platform" | "sluice"
  readonly requestsPerSecond: number
  /** This (the client's) process's CPU time per request, user + system, in microseconds. */
  readonly cpuMicrosPerRequest: number
}

const checkAnswer = (answer: unknown) => {
  if (typeof (answer as { usage?: { total_tokens?: unknown } }).usage?.total_tokens !== "number") {
    throw new Error("unexpected answer from the MockProvider")
  }
  checked.count++
}

/** `requests` requests, `CONCURRENCY` at a time, through `call`; requests per second. */
const rate = async (requests: number, call: () => Promise<unknown>) => {
  let next = 0
  const start = performance.now()
  const worker = async () => {
    while (next < requests) {
      next++
      checkAnswer(await call())
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return requests / ((performance.now() - start) / 1000)
}

const effectRate = async (requests: number, call: Effect.Effect<unknown, unknown>) => {
  const start = performance.now()
  await Effect.runPromise(
    Effect.forEach(Array.from({ length: requests }), () => Effect.map(call, checkAnswer), {
      concurrency: CONCURRENCY,
      discard: true
    })
  )
  return requests / ((performance.now() - start) / 1000)
}

/** Starts the MockProvider's standalone program and answers its base URL once it listens. */
const startProvider = async () => {
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL("./mock-provider.mjs", import.meta.url)), "--port", "0"],
    {
      stdio: ["ignore", "pipe", "inherit"]
    }
  )
  const baseUrl = await new Promise<string>((resolve, reject) => {
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on (\S+)/.exec(output)
      if (match !== null) resolve(match[1]!)
    })
    child.on("exit", (code) => reject(new Error(`the MockProvider exited (${code}) before listening: ${output}`)))
  })
  return { baseUrl, stop: () => child.kill("SIGINT") }
}

/** Answers checked, across every row (the standalone server has no counters endpoint). */
const checked = { count: 0 }

export const measure = async (requests: number, rounds: number, progress: (line: string) => void) => {
  const scope = Effect.runSync(Scope.make())
  const provider = await startProvider()
  const url = `${provider.baseUrl}/chat/completions`

  const undiciAgent = new Undici.Agent({ connections: CONCURRENCY })
  const rawUndici = async () => {
    const response = await Undici.request(url, {
      method: "POST",
      dispatcher: undiciAgent,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    return response.body.json()
  }

  const pool = (agent: Undici.Agent) =>
    NodeHttpClient.layerUndiciWithoutDispatcher.pipe(Layer.provide(Layer.succeed(NodeHttpClient.Dispatcher, agent)))
  const platformAgent = new Undici.Agent({ connections: CONCURRENCY })
  const platformClient = await Effect.runPromise(Effect.provide(HttpClient.HttpClient, pool(platformAgent)))
  // Each call builds its request and serializes its body, and decodes the answer with the same Schema as the
  // Sluice row: the job an application does per call, with or without Sluice.
  const platformCall = Effect.suspend(() =>
    Effect.flatMap(
      platformClient.execute(HttpClientRequest.post(url, { body: HttpBody.unsafeJson(body), acceptJson: true })),
      HttpClientResponse.schemaBodyJson(Completion)
    )
  )

  const sluiceAgent = new Undici.Agent({ connections: CONCURRENCY })
  const api = await Effect.runPromise(
    Scope.extend(
      Effect.map(
        Layer.build(
          ApiClient.layerWithoutPool({
            name: "bench",
            baseUrl: provider.baseUrl,
            limits: { concurrency: CONCURRENCY, queueCapacity: 100_000 }
          }).pipe(Layer.provide(pool(sluiceAgent)))
        ),
        Context.get(ApiClient.ApiClient)
      ),
      scope
    )
  )
  // Built per call, as the platform row builds its request: what a caller's `api.post` costs is counted.
  const sluiceCall = Effect.suspend(() => api.post("/chat/completions", { schema: Completion, body }))

  const subjects: Array<{ name: string; role: HttpRow["role"]; run: () => Promise<number> }> = [
    { name: "undici request (raw)", role: "undici", run: () => rate(requests, rawUndici) },
    { name: "@effect/platform HttpClient", role: "platform", run: () => effectRate(requests, platformCall) },
    { name: "Sluice ApiClient (no limits)", role: "sluice", run: () => effectRate(requests, sluiceCall) }
  ]
  // Warm up every row (connections, JIT), then measure.
  for (const subject of subjects) await subject.run()
  // Each round starts at the next row (the same row never always runs after the same other), and each run
  // starts from a full collection, so no row pays for the garbage the row before it left.
  const samples = subjects.map(() => [] as Array<number>)
  const cpu = subjects.map(() => [] as Array<number>)
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < subjects.length; k++) {
      const i = (round + k) % subjects.length
      collect()
      const before = process.cpuUsage()
      samples[i]!.push(await subjects[i]!.run())
      const used = process.cpuUsage(before)
      cpu[i]!.push((used.user + used.system) / requests)
    }
    progress(`   round ${round + 1} of ${rounds} done`)
  }
  const served = checked.count
  await Effect.runPromise(Scope.close(scope, Exit.void))
  provider.stop()
  await Promise.all([undiciAgent.destroy(), platformAgent.destroy(), sluiceAgent.destroy()])
  return {
    served,
    rows: subjects.map((subject, i) => ({
      name: subject.name,
      role: subject.role,
      requestsPerSecond: median(samples[i]!),
      cpuMicrosPerRequest: median(cpu[i]!)
    }))
  }
}

/** The target: the ApiClient's client CPU per request at most this many times the platform client's. */
export const CPU_RATIO_MAX = 1.25

/**
 * The target is client CPU per request, not requests/s: at a model API's
 * latencies (hundreds of ms) a client's throughput is the provider's, and what
 * the client adds is the CPU each call costs this process.
 */
export const target = (rows: ReadonlyArray<HttpRow>) => {
  const sluice = rows.find((row) => row.role === "sluice")?.cpuMicrosPerRequest ?? Number.NaN
  const platform = rows.find((row) => row.role === "platform")?.cpuMicrosPerRequest ?? Number.NaN
  const ratio = sluice / platform
  return { sluice, platform, ratio, ok: Number.isFinite(ratio) ? ratio <= CPU_RATIO_MAX : undefined }
}

export const print = (
  result: { readonly rows: ReadonlyArray<HttpRow>; readonly served: number },
  requests: number,
  rounds: number
) => {
  const platform = result.rows.find((row) => row.role === "platform")
  const { sluice, ratio, ok } = target(result.rows)
  Table.print({
    title: `5. HTTP client: ${Table.int(requests)} chat completions at ${CONCURRENCY} concurrent, MockProvider with zero latency (median of ${rounds})`,
    columns: [
      { header: "client" },
      { header: "requests/s", align: "right" },
      { header: "vs platform", align: "right" },
      { header: "client CPU µs/request", align: "right" },
      { header: "CPU vs platform", align: "right" }
    ],
    rows: result.rows.map((row) => [
      row.name,
      Table.int(row.requestsPerSecond),
      `${Table.fixed(row.requestsPerSecond / (platform?.requestsPerSecond ?? Number.NaN), 2)}x`,
      Table.fixed(row.cpuMicrosPerRequest, 0),
      `${Table.fixed(row.cpuMicrosPerRequest / (platform?.cpuMicrosPerRequest ?? Number.NaN), 2)}x`
    ]),
    notes: [
      `${Table.int(result.served)} answers checked in all (warm-up included); the MockProvider ran as its own process.`,
      "Every row does one call's whole job each time: build the request and serialize its JSON body, send it, read the",
      "  answer; the platform and Sluice rows decode it with the same Schema (undici parses it as JSON).",
      "client CPU: this process's user + system time per request (the server's is not counted), median of the rounds.",
      "requests/s is shown for reading only: at zero latency it is CPU-bound, at a model API's latency it is the provider's.",
      `Target (CPU, not requests/s): the ApiClient's client CPU per request <= ${CPU_RATIO_MAX} x the platform client's:`,
      `  ${Table.fixed(sluice, 0)} vs ${Table.fixed(platform?.cpuMicrosPerRequest ?? Number.NaN, 0)} µs = ${Table.fixed(ratio, 2)}x ${
        ok === undefined ? "MISS (not measured)" : Table.passOrMiss(ok)
      }`
    ]
  })
}
