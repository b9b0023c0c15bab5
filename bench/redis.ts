/**
 * Part 10: one quota in Redis. Admissions per second and latency per
 * admission against the same local Redis (`REDIS_URL`, default
 * redis://127.0.0.1:6379), limits set far above what is asked so that only
 * the cost of admission is measured:
 *
 * - Sluice: `RateLimiter.acquire` of requests + tokens (all-or-nothing, one
 *   script call) over `@sluice/redis`'s store on Redis server time, called as
 *   an Effect program calls it: each caller is a fiber that admits one request
 *   after another. A second row calls it as promise code would, entering the
 *   Effect runtime once per admission (`Effect.runPromise`, a fiber made and
 *   run to its end each time: about 12 µs of CPU on the bench machine), for
 *   comparison; the targets use the first;
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
  readonly role: "sluice" | "sluice-promise" | "rlf-one" | "rlf-two" | "bottleneck"
  readonly limits: number
  readonly admissionsPerSecond: number
  readonly p50: number
  readonly p99: number
  readonly commandsPerAdmission: number
}

/**
 * One subject: `admit(worker)` admits one request for that worker's key; `commands()` counts what was sent.
 * `loop`, when given, is how one caller admits requests one after another until `end` (answering how many),
 * and `timed` how one caller times `count` admissions one at a time: a subject whose callers are not promise
 * code runs them its own way.
 */
interface Subject {
  readonly admit: (worker: number) => Promise<void>
  readonly loop?: (worker: number, end: number) => Promise<number>
  readonly timed?: (count: number) => Promise<Array<number>>
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

/**
 * The Sluice subject: a RateLimiter of requests + tokens (limits far above what is asked) over a RedisStore
 * whose keys start with `prefix`. A deadline far above any answer: this part measures admission, not the
 * outage policy (on a loaded machine a 50 ms deadline can fire, and failClosed would end the run).
 */
export const sluiceLimiter = (prefix: string) =>
  Effect.gen(function* () {
    const client = yield* RedisClient.make({ url: Redacted.make(redisUrl), deadline: "5 seconds" })
    const store = yield* RedisStore.make({ prefix }).pipe(Effect.provideService(RedisClient.RedisClient, client))
    const limiter = yield* RateLimiter.make({
      name: "bench",
      limits: {
        requests: { limit: HUGE, interval: "1 second" },
        tokens: { limit: HUGE, interval: "1 second" }
      }
    }).pipe(Effect.provideService(RateLimiterStore.RateLimiterStore, store))
    return { limiter, store, redis: client.redis }
  })

const sluice = async (callers: "fibers" | "promises"): Promise<Subject> => {
  const scope = Effect.runSync(Scope.make())
  const { limiter, redis } = await Effect.runPromise(sluiceLimiter(`sluice-bench:${runId}:`).pipe(Scope.extend(scope)))
  const commands = countCommands(redis)
  const keys = Array.from({ length: WORKERS }, (_, i) => ({ key: `k${i}` }))
  const cost = { requests: 1, tokens: 100 }
  const admit = (worker: number) => Effect.asVoid(limiter.acquire(cost, keys[worker]))
  return {
    admit: (worker) => Effect.runPromise(admit(worker)),
    ...(callers === "fibers"
      ? {
          loop: (worker: number, end: number) =>
            Effect.runPromise(
              Effect.suspend(() => {
                let admitted = 0
                return Effect.map(
                  Effect.whileLoop({
                    while: () => performance.now() < end,
                    body: () => admit(worker),
                    step: () => {
                      admitted++
                    }
                  }),
                  () => admitted
                )
              })
            ),
          timed: (count: number) =>
            Effect.runPromise(
              Effect.suspend(() => {
                const latencies: Array<number> = new Array(count)
                let i = 0
                let start = 0
                return Effect.map(
                  Effect.whileLoop({
                    while: () => i < count,
                    body: () =>
                      Effect.suspend(() => {
                        start = performance.now()
                        return admit(0)
                      }),
                    step: () => {
                      latencies[i++] = performance.now() - start
                    }
                  }),
                  () => latencies
                )
              })
            )
        }
      : {}),
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
    let latencies: Array<number> = new Array(LATENCY_ADMISSIONS)
    if (target.timed !== undefined) latencies = await target.timed(LATENCY_ADMISSIONS)
    else {
      for (let i = 0; i < LATENCY_ADMISSIONS; i++) {
        const start = performance.now()
        await target.admit(0)
        latencies[i] = performance.now() - start
      }
    }
    latencies.sort((a, b) => a - b)
    const before = target.commands()
    let admissions = 0
    const end = performance.now() + THROUGHPUT_MS
    const started = performance.now()
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, worker) => {
        if (target.loop !== undefined) {
          // Awaited first: `admissions += await ...` would read the total before the wait and lose the others'.
          const admitted = await target.loop(worker, end)
          admissions += admitted
          return
        }
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
    ["Sluice RedisStore: requests + tokens, all-or-nothing", "sluice", 2, () => sluice("fibers")],
    ["  the same, Effect.runPromise per admission (promise callers)", "sluice-promise", 2, () => sluice("promises")],
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
      `  callers at once, each on its own key, for ${THROUGHPUT_MS / 1000} s. Commands counted on the subject's own connections.`,
      "  Sluice's callers are fibers (as an Effect program's are); the second row enters the Effect runtime per admission."
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
