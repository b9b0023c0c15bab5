/**
 * A profiling aid, not part of the benchmark: the HTTP part's platform and
 * Sluice rows (bench/http.ts) against a MockProvider in its own process,
 * REPS rounds of REQUESTS each, printing requests/s per row and the ratio.
 *
 *   node bench/build.mjs && node bench/build/profile-http.mjs (add --cpu-prof to profile)
 *
 * ONLY=sluice runs the Sluice row alone (keeps the profile to it).
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { ApiClient } from "@sluice/http"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Undici from "undici"
import { median } from "./harness.js"

const CONCURRENCY = 64
const Completion = Schema.Struct({ usage: Schema.Struct({ total_tokens: Schema.Number }) })
const body = { model: "mock-1", messages: [{ role: "user", content: "How fast can you answer?" }], max_tokens: 16 }

/** CPU microseconds per request of the last run (this process: user + system). */
const cpu = { perRequest: 0 }

const effectRate = async (requests: number, call: Effect.Effect<unknown, unknown>) => {
  const start = performance.now()
  const before = process.cpuUsage()
  await Effect.runPromise(
    Effect.forEach(Array.from({ length: requests }), () => call, { concurrency: CONCURRENCY, discard: true })
  )
  const used = process.cpuUsage(before)
  cpu.perRequest = (used.user + used.system) / requests
  return requests / ((performance.now() - start) / 1000)
}

const main = async () => {
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL("./mock-provider.mjs", import.meta.url)), "--port", "0"],
    {
      stdio: ["ignore", "pipe", "inherit"]
    }
  )
  const baseUrl = await new Promise<string>((resolve) => {
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on (\S+)/.exec(output)
      if (match !== null) resolve(match[1]!)
    })
  })
  const pool = (agent: Undici.Agent) =>
    NodeHttpClient.layerUndiciWithoutDispatcher.pipe(Layer.provide(Layer.succeed(NodeHttpClient.Dispatcher, agent)))
  const platformClient = await Effect.runPromise(
    Effect.provide(HttpClient.HttpClient, pool(new Undici.Agent({ connections: CONCURRENCY })))
  )
  const platformCall = Effect.flatMap(
    platformClient.execute(
      HttpClientRequest.post(`${baseUrl}/chat/completions`, { body: HttpBody.unsafeJson(body), acceptJson: true })
    ),
    (response) => response.json
  )
  const scope = Effect.runSync(Scope.make())
  const api = await Effect.runPromise(
    Scope.extend(
      Effect.map(
        Layer.build(
          ApiClient.layerWithoutPool({
            name: "bench",
            baseUrl,
            limits: { concurrency: CONCURRENCY, queueCapacity: 100_000 }
          }).pipe(Layer.provide(pool(new Undici.Agent({ connections: CONCURRENCY }))))
        ),
        Context.get(ApiClient.ApiClient)
      ),
      scope
    )
  )
  const sluiceCall = api.post("/chat/completions", { schema: Completion, body })
  const reps = Number(process.env.REPS ?? 5)
  const requests = Number(process.env.REQUESTS ?? 5000)
  const only = process.env.ONLY
  const p: Array<number> = []
  const s: Array<number> = []
  const pc: Array<number> = []
  const sc: Array<number> = []
  for (let rep = 0; rep < reps + 1; rep++) {
    const pr = only === "sluice" ? 0 : await effectRate(requests, platformCall)
    const pcpu = cpu.perRequest
    const sr = only === "platform" ? 0 : await effectRate(requests, sluiceCall)
    const scpu = cpu.perRequest
    if (rep === 0) continue
    p.push(pr)
    s.push(sr)
    pc.push(pcpu)
    sc.push(scpu)
    console.log(
      `platform ${pr.toFixed(0)}/s ${pcpu.toFixed(0)}us  sluice ${sr.toFixed(0)}/s ${scpu.toFixed(0)}us  ratio ${(sr / pr).toFixed(2)}`
    )
  }
  console.log(
    `median platform ${median(p).toFixed(0)}/s ${median(pc).toFixed(0)}us  sluice ${median(s).toFixed(0)}/s ${median(sc).toFixed(0)}us  ratio ${(median(s) / median(p)).toFixed(2)}  cpu ratio ${(median(pc) / median(sc)).toFixed(2)}  min cpu ${Math.min(...pc).toFixed(0)}us ${Math.min(...sc).toFixed(0)}us`
  )
  child.kill("SIGINT")
  process.exit(0)
}
main()
