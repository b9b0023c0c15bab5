/**
 * A profiling aid, not part of the benchmark: part 10's Sluice row (fibers
 * admitting requests + tokens one after another through `RateLimiter.acquire`
 * over `@sluice/redis`'s RedisStore) split into its layers, each measured as
 * CPU time per admission of this process (`process.cpuUsage`, so another
 * process on the machine does not count) and, on the Redis side, the script's
 * `usec_per_call` (`INFO commandstats` after `CONFIG RESETSTAT`):
 *
 * - `sluice`: the row as the bench runs it;
 * - `store`: the RedisStore's `reserve` called straight (no RateLimiter);
 * - `ioredis`: the same script call through ioredis's own script command
 *   (`defineCommand`, auto-pipelining), promise callers: how the store called
 *   Redis before it framed its calls itself;
 * - `rlf`: rate-limiter-flexible, two chained `consume` (the peer).
 *
 * Run from the repository root; the bundle goes in `bench/build` so that it
 * finds `effect` and ioredis:
 *
 *   npx esbuild bench/profileRedis.ts --bundle --platform=node --format=esm --outfile=bench/build/pr.mjs \
 *     --external:effect --external:'@effect/*' --external:ioredis --external:rate-limiter-flexible
 *   node bench/build/pr.mjs                          # every row, median of ROUNDS rounds
 *   ROWS=sluice ROUNDS=9 ADMISSIONS=50000 node bench/build/pr.mjs
 *   node --cpu-prof bench/build/pr.mjs sluice        # one row, for a CPU profile
 *   STEPS=1 node bench/build/pr.mjs sluice           # Effect steps per admission (a Supervisor counts them)
 */
import { execFileSync } from "node:child_process"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as RuntimeFlagsPatch from "effect/RuntimeFlagsPatch"
import * as Scope from "effect/Scope"
import * as Supervisor from "effect/Supervisor"
import { Redis } from "ioredis"
import { RateLimiterRedis } from "rate-limiter-flexible"
import { sluiceLimiter } from "./redis.js"

const ADMISSIONS = Number(process.env.ADMISSIONS ?? 30_000)
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const WORKERS = 64
const HUGE = 1_000_000_000
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const only = process.argv[2]
const rows = (only !== undefined ? [only] : (process.env.ROWS ?? "sluice,store,ioredis,rlf").split(",")).map((row) =>
  row.trim()
)
const runId = `${process.pid}-${Date.now()}`

/** One row: `round(n)` admits n requests over WORKERS callers at once. */
interface Row {
  readonly round: (admissions: number) => Promise<void>
  readonly timed?: (count: number) => Promise<Array<number>>
  readonly close: () => Promise<void>
}

/** Counts the effects evaluated under it (with op supervision on). */
class CountingSupervisor extends Supervisor.AbstractSupervisor<void> {
  steps = 0
  value = Effect.void
  override onEffect() {
    this.steps++
  }
}
const counting = new CountingSupervisor()

/** Part 10's two limits as the store sees them (a second each, far above what is asked). */
const bucketOf = (name: string) => ({
  name,
  capacity: HUGE,
  emission: 1000 / HUGE,
  interval: 1000,
  windowMargin: 5,
  windowLimit: 2 * HUGE - 1
})
const buckets = [bucketOf("requests"), bucketOf("tokens")]

const sluiceParts = async () => {
  const scope = Effect.runSync(Scope.make())
  const parts = await Effect.runPromise(sluiceLimiter(`sluice-profile:${runId}:`).pipe(Scope.extend(scope)))
  return { ...parts, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** WORKERS fibers, each admitting with `admit(worker)` until `admissions` are done in all. */
const fibers = (admit: (worker: number) => Effect.Effect<unknown, unknown>) => (admissions: number) => {
  let left = admissions
  const program = Effect.forEach(
    Array.from({ length: WORKERS }, (_, i) => i),
    (worker) =>
      Effect.whileLoop({
        while: () => left > 0,
        body: () => {
          left--
          return admit(worker)
        },
        step: () => {}
      }),
    { concurrency: "unbounded", discard: true }
  )
  const supervised =
    process.env.STEPS === "1"
      ? Effect.supervised(
          Effect.withRuntimeFlagsPatch(program, RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)),
          counting
        )
      : program
  return Effect.runPromise(supervised as Effect.Effect<void, unknown>)
}

/** One fiber admitting `count` requests one at a time, each timed (ms): part 10's latency run. */
const timedFiber = (admit: (worker: number) => Effect.Effect<unknown, unknown>) => (count: number) => {
  const latencies: Array<number> = []
  let start = 0
  return Effect.runPromise(
    Effect.whileLoop({
      while: () => latencies.length < count,
      body: () =>
        Effect.suspend(() => {
          start = performance.now()
          return admit(0)
        }),
      step: () => {
        latencies.push(performance.now() - start)
      }
    }) as Effect.Effect<void, unknown>
  ).then(() => latencies)
}

/** WORKERS promise callers. */
const promises = (admit: (worker: number) => Promise<unknown>) => async (admissions: number) => {
  let left = admissions
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, worker) => {
      while (left > 0) {
        left--
        await admit(worker)
      }
    })
  )
}

const makeRow = async (row: string): Promise<Row> => {
  const keys = Array.from({ length: WORKERS }, (_, i) => ({ key: `k${i}` }))
  switch (row) {
    case "sluice": {
      const { limiter, close } = await sluiceParts()
      const cost = { requests: 1, tokens: 100 }
      const admit = (worker: number) => limiter.acquire(cost, keys[worker])
      return { round: fibers(admit), timed: timedFiber(admit), close }
    }
    case "store": {
      const { store, close } = await sluiceParts()
      const costs = [1, 100]
      return {
        round: fibers((worker) =>
          Effect.suspend(() => {
            const now = performance.now()
            return store.reserve({ key: `bench:k${worker}`, buckets, costs, now, notBefore: now, mode: "ifDue" })
          })
        ),
        close
      }
    }
    case "ioredis": {
      // The script call the store makes, through ioredis's script command (its packed specs built once).
      const redis = new Redis(redisUrl, { enableAutoPipelining: true })
      const { SCRIPT } = await import("../packages/redis/src/internal/script.js")
      const { packSpec } = await import("../packages/redis/src/internal/redisStore.js")
      redis.defineCommand("sluiceProfile", { lua: SCRIPT })
      const specs = buckets.map(packSpec)
      const call = (
        redis as unknown as Record<string, (...args: Array<unknown>) => Promise<Buffer>>
      ).sluiceProfileBuffer!.bind(redis)
      return {
        round: promises((worker) => {
          const packed = Buffer.allocUnsafe(8 * 9)
          const now = performance.now()
          packed.writeDoubleLE(now, 0)
          packed.writeDoubleLE(1, 8)
          packed.writeDoubleLE(1000, 16)
          packed.writeDoubleLE(1000, 24)
          packed.writeDoubleLE(0, 32)
          packed.writeDoubleLE(now, 40)
          packed.writeDoubleLE(1, 48)
          packed.writeDoubleLE(1, 56)
          packed.writeDoubleLE(100, 64)
          const tag = `sluice-profile-raw:${runId}:{bench%3Ak${worker}}`
          return call(
            3,
            tag,
            `${tag}:requests`,
            `${tag}:tokens`,
            "reserve",
            packed,
            "holder",
            "requests",
            "tokens",
            specs[0],
            specs[1]
          )
        }),
        close: async () => {
          redis.disconnect()
        }
      }
    }
    case "rlf": {
      const redis = new Redis(redisUrl)
      const prefix = `rlf-profile:${runId}`
      const requests = new RateLimiterRedis({ storeClient: redis, points: HUGE, duration: 1, keyPrefix: `${prefix}:r` })
      const tokens = new RateLimiterRedis({ storeClient: redis, points: HUGE, duration: 1, keyPrefix: `${prefix}:t` })
      return {
        round: promises(async (worker) => {
          await requests.consume(`k${worker}`, 1)
          await tokens.consume(`k${worker}`, 100)
        }),
        close: async () => {
          redis.disconnect()
        }
      }
    }
    default:
      throw new Error(`unknown row ${row}`)
  }
}

const redisCli = (...args: Array<string>) => execFileSync("redis-cli", ["-u", redisUrl, ...args]).toString()

/** usec_per_call and calls of every command Redis ran since the last reset. */
const commandStats = () => {
  const stats: Array<string> = []
  for (const line of redisCli("info", "commandstats").split("\n")) {
    const match = /^cmdstat_(\w+):calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/.exec(line)
    if (match !== null) stats.push(`${match[1]} ${match[2]} calls ${match[3]} µs/call`)
  }
  return stats.join(", ")
}

/** Redis's own CPU time so far (user + system), in µs. */
const redisCpu = () => {
  const info = redisCli("info", "cpu")
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)![1])
  const system = Number(/used_cpu_sys:([\d.]+)/.exec(info)![1])
  return (user + system) * 1e6
}

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

for (const name of rows) {
  const row = await makeRow(name)
  if (process.env.LATENCY === "1" && row.timed !== undefined) {
    // As part 10 measures it: 500 admissions to warm up, then one caller, one admission at a time.
    await row.round(500)
    const latencies = (await row.timed(5_000)).sort((a, b) => a - b)
    const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!
    console.log(
      `${name} latency p50 ${at(0.5).toFixed(3)} ms, p99 ${at(0.99).toFixed(3)} ms, max ${at(1).toFixed(3)} ms`
    )
    await row.close()
    continue
  }
  await row.round(2_000)
  const cpu: Array<number> = []
  const rates: Array<number> = []
  const redisUsed: Array<number> = []
  let stats = ""
  for (let round = 0; round < ROUNDS; round++) {
    redisCli("config", "resetstat")
    counting.steps = 0
    const redisStart = redisCpu()
    const start = process.cpuUsage()
    const started = performance.now()
    await row.round(ADMISSIONS)
    const elapsed = performance.now() - started
    const used = process.cpuUsage(start)
    redisUsed.push((redisCpu() - redisStart) / ADMISSIONS)
    cpu.push((used.user + used.system) / ADMISSIONS)
    rates.push(ADMISSIONS / (elapsed / 1000))
    stats = commandStats()
  }
  await row.close()
  const stepNote = process.env.STEPS === "1" ? `, ${(counting.steps / ADMISSIONS).toFixed(1)} steps/admission` : ""
  console.log(
    `${name.padEnd(8)} CPU ${median(cpu).toFixed(1)} µs/admission (rounds ${cpu.map((c) => c.toFixed(1)).join(" ")}), ` +
      `${Math.round(median(rates))}/s wall${stepNote}; Redis CPU ${median(redisUsed).toFixed(1)} µs/admission; redis: ${stats}`
  )
}
process.exit(0)
