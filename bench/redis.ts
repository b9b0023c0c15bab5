/**
 * Part 10: one quota in Redis. Admissions per second and latency per
 * admission against the same local Redis (`REDIS_URL`, default
 * redis://127.0.0.1:6379), limits set far above what is asked so that only
 * the cost of admission is measured:
 *
 * - Sluice: `RateLimiter.acquire` of requests + tokens (all-or-nothing, one
 *   script call) over `@sluice/redis`'s store on Redis server time;
 * - rate-limiter-flexible `RateLimiterRedis.consume`: one limit, and two
 *   chained (requests, then tokens: two calls, and no rollback of the first
 *   when the second refuses);
 * - bottleneck in clustering mode (`datastore: "ioredis"`), `schedule` of a
 *   no-op job: its admission is the scripts it runs per job.
 *
 * Latency: one caller, one admission at a time (p50, p99 of `LATENCY_ADMISSIONS`).
 * Throughput: `WORKERS` callers at once, each on a key of its own (each key is
 * one line in Sluice's limiter: a process asks the store for one key's head at
 * a time), for `THROUGHPUT_MS`. Commands per admission: every command the
 * subject's ioredis connections sent during the throughput run (counted on the
 * client, so other users of the same Redis do not count), divided by the
 * admissions.
 */
import { RateLimiter, RateLimiterStore } from "@sluice/core"
import { RedisClient, RedisStore } from "@sluice/redis"
import Bottleneck from "bottleneck"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { RateLimiterRedis } from "rate-limiter-flexible"
import { median } from "./harness.js"
import * as Table from "./table.js"

export const LATENCY_ADMISSIONS = 5_000
export const THROUGHPUT_MS = 3_000
export const WORKERS = 64
/** Targets: p50 per admission on localhost, commands per admission. */
export const P50_MAX_MS = 0.5

const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

export interface RedisRow {
  readonly subject: string
  readonly role: "sluice" | "rlf-one" | "rlf-two" | "bottleneck"
  readonly limits: number
  readonly admissionsPerSecond: number
  readonly p50: number
  readonly p99: number
  readonly commandsPerAdmission: number
}

/** One subject: `admit(worker)` admits one request for that worker's key; `commands()` counts what was sent. */
interface Subject {
  readonly admit: (worker: number) => Promise<void>
  readonly commands: () => number
  readonly close: () => Promise<void>
}

/** Counts every command an ioredis connection sends. */
const countCommands = (redis: Redis): (() => number) => {
  let count = 0
  const send = redis.sendCommand.bind(redis)
  redis.sendCommand = ((command: Parameters<Redis["sendCommand"]>[0], stream?: unknown) => {
    count++
    return (send as (c: unknown, s?: unknown) => unknown)(command, stream)
  }) as Redis["sendCommand"]
  return () => count
}

const runId = `${process.pid}-${Date.now()}`
const HUGE = 1_000_000_000

const sluice = async (): Promise<Subject> => {
  const scope = Effect.runSync(Scope.make())
  const { limiter, redis } = await Effect.runPromise(
    Effect.gen(function* () {
      // A deadline far above any answer: this part measures admission, not the outage policy (on a loaded
      // machine a 50 ms deadline can fire, and failClosed would end the run).
      const client = yield* RedisClient.make({ url: Redacted.make(redisUrl), deadline: "5 seconds" })
      const store = yield* RedisStore.make({ prefix: `sluice-bench:${runId}:` }).pipe(
        Effect.provideService(RedisClient.RedisClient, client)
      )
      const limiter = yield* RateLimiter.make({
        name: "bench",
        limits: {
          requests: { limit: HUGE, interval: "1 second" },
          tokens: { limit: HUGE, interval: "1 second" }
        }
      }).pipe(Effect.provideService(RateLimiterStore.RateLimiterStore, store))
      return { limiter, redis: client.redis }
    }).pipe(Scope.extend(scope))
  )
  const commands = countCommands(redis)
  const keys = Array.from({ length: WORKERS }, (_, i) => ({ key: `k${i}` }))
  const cost = { requests: 1, tokens: 100 }
  return {
    admit: (worker) => Effect.runPromise(Effect.asVoid(limiter.acquire(cost, keys[worker]))),
    commands,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
}

const rateLimiterFlexible = async (chained: boolean): Promise<Subject> => {
  const redis = new Redis(redisUrl)
  const commands = countCommands(redis)
  const prefix = `rlf-bench:${runId}:${chained ? "two" : "one"}`
  const requests = new RateLimiterRedis({ storeClient: redis, points: HUGE, duration: 1, keyPrefix: `${prefix}:r` })
  const tokens = new RateLimiterRedis({ storeClient: redis, points: HUGE, duration: 1, keyPrefix: `${prefix}:t` })
  return {
    admit: chained
      ? async (worker) => {
          await requests.consume(`k${worker}`, 1)
          await tokens.consume(`k${worker}`, 100)
        }
      : async (worker) => {
          await requests.consume(`k${worker}`, 1)
        },
    commands,
    close: async () => {
      await redis.quit()
    }
  }
}

const bottleneck = async (): Promise<Subject> => {
  const client = new Redis(redisUrl)
  const connection = new Bottleneck.IORedisConnection({ client, Redis: Redis as never })
  const commands = countCommands(client)
  const limiters = Array.from(
    { length: WORKERS },
    (_, i) =>
      new Bottleneck({
        id: `bottleneck-bench:${runId}:k${i}`,
        datastore: "ioredis",
        connection,
        clearDatastore: true,
        maxConcurrent: null,
        minTime: 0
      })
  )
  await Promise.all(limiters.map((limiter) => limiter.ready()))
  const subscriber = (connection as unknown as { subscriber: Redis }).subscriber
  const subscriberCommands = countCommands(subscriber)
  const noop = () => Promise.resolve()
  return {
    admit: (worker) => limiters[worker]!.schedule(noop),
    commands: () => commands() + subscriberCommands(),
    close: async () => {
      await Promise.all(limiters.map((limiter) => limiter.disconnect(false)))
      await connection.disconnect(true)
    }
  }
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

const measureOne = async (
  subject: string,
  role: RedisRow["role"],
  limits: number,
  make: () => Promise<Subject>
): Promise<RedisRow> => {
  const target = await make()
  try {
    // Warm-up: scripts loaded, code paths compiled.
    for (let i = 0; i < 500; i++) await target.admit(i % WORKERS)
    const latencies: Array<number> = new Array(LATENCY_ADMISSIONS)
    for (let i = 0; i < LATENCY_ADMISSIONS; i++) {
      const start = performance.now()
      await target.admit(0)
      latencies[i] = performance.now() - start
    }
    latencies.sort((a, b) => a - b)
    const before = target.commands()
    let admissions = 0
    const end = performance.now() + THROUGHPUT_MS
    const started = performance.now()
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, worker) => {
        while (performance.now() < end) {
          await target.admit(worker)
          admissions++
        }
      })
    )
    const elapsed = performance.now() - started
    return {
      subject,
      role,
      limits,
      admissionsPerSecond: admissions / (elapsed / 1000),
      p50: median(latencies),
      p99: percentile(latencies, 0.99),
      commandsPerAdmission: (target.commands() - before) / admissions
    }
  } finally {
    await target.close()
  }
}

export const measure = async (progress: (line: string) => void): Promise<ReadonlyArray<RedisRow>> => {
  const rows: Array<RedisRow> = []
  const subjects: ReadonlyArray<[string, RedisRow["role"], number, () => Promise<Subject>]> = [
    ["Sluice RedisStore: requests + tokens, all-or-nothing", "sluice", 2, sluice],
    ["rate-limiter-flexible RateLimiterRedis.consume, one limit", "rlf-one", 1, () => rateLimiterFlexible(false)],
    ["rate-limiter-flexible, two chained (requests, tokens)", "rlf-two", 2, () => rateLimiterFlexible(true)],
    ["bottleneck clustering (ioredis), schedule", "bottleneck", 1, bottleneck]
  ]
  for (const [subject, role, limits, make] of subjects) {
    progress(`  ${subject} ...`)
    rows.push(await measureOne(subject, role, limits, make))
  }
  return rows
}

export const print = (rows: ReadonlyArray<RedisRow>): void => {
  Table.print({
    title: "10. one quota in Redis: admissions against a local Redis",
    columns: [
      { header: "subject" },
      { header: "limits", align: "right" },
      { header: "admissions/s", align: "right" },
      { header: "p50 ms", align: "right" },
      { header: "p99 ms", align: "right" },
      { header: "commands/admission", align: "right" }
    ],
    rows: rows.map((row) => [
      row.subject,
      String(row.limits),
      Table.int(row.admissionsPerSecond),
      Table.fixed(row.p50, 3),
      Table.fixed(row.p99, 3),
      Table.fixed(row.commandsPerAdmission, 2)
    ]),
    notes: [
      `${redisUrl}. Latency: one caller, ${Table.int(LATENCY_ADMISSIONS)} admissions one at a time. Throughput: ${WORKERS}`,
      `  callers at once, each on its own key, for ${THROUGHPUT_MS / 1000} s. Commands counted on the subject's own connections.`
    ]
  })
}

/** The targets: ahead of both peers with two limits, one command per admission, p50 under 0.5 ms. */
export const targets = (rows: ReadonlyArray<RedisRow>) => {
  const byRole = (role: RedisRow["role"]) => rows.find((row) => row.role === role)
  const ours = byRole("sluice")
  const peers = [byRole("rlf-two"), byRole("bottleneck")].filter((row) => row !== undefined)
  return {
    ours,
    bestPeer: peers.length === 0 ? undefined : Math.max(...peers.map((row) => row!.admissionsPerSecond))
  }
}
