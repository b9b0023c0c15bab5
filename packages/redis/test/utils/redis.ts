/**
 * Test helpers: the Redis of `REDIS_URL` (default `redis://127.0.0.1:6379`),
 * a fresh key prefix per store (parallel runs never collide), and every key
 * under it deleted when the test's scope closes. Nothing here skips a test
 * when Redis is missing: it fails.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import * as RedisClient from "../../src/RedisClient.js"
import * as RedisStore from "../../src/RedisStore.js"

export const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

let prefixes = 0

/** A prefix no other test (in this run or another) uses. */
export const freshPrefix = (): string =>
  `sluice-test:${process.pid}:${++prefixes}:${Math.random().toString(36).slice(2, 10)}:`

/** Deletes every key under `prefix`. */
export const deleteKeys = async (redis: Redis, prefix: string): Promise<number> => {
  let deleted = 0
  let cursor = "0"
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
    cursor = next
    if (keys.length > 0) deleted += await redis.del(...keys)
  } while (cursor !== "0")
  return deleted
}

/** A plain ioredis connection for the test itself (inspecting keys), closed with the scope. */
export const admin = (url: string = redisUrl): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis(url, { maxRetriesPerRequest: 1 })
      // The test's own redis-server may be stopped on purpose; the store's outage is what is under test.
      redis.on("error", () => {})
      return redis
    }),
    (redis) => Effect.promise(() => redis.quit().catch(() => "closed"))
  )

export const clientLayer = (url: string = redisUrl) => RedisClient.layer({ url: Redacted.make(url) })

/** A store under a fresh prefix; its keys are deleted when the scope closes. */
export const testStore = (
  options: RedisStore.Options = {},
  url: string = redisUrl,
  clientOptions: Omit<RedisClient.Options, "url"> = {}
): Effect.Effect<{ readonly store: RedisStore.RedisStore; readonly prefix: string }, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const prefix = options.prefix ?? freshPrefix()
    const redis = yield* admin(url)
    yield* Effect.addFinalizer(() => Effect.promise(() => deleteKeys(redis, prefix).catch(() => 0)))
    const client = yield* Effect.orDie(RedisClient.make({ ...clientOptions, url: Redacted.make(url) }))
    const store = yield* RedisStore.make({ ...options, prefix }).pipe(
      Effect.provideService(RedisClient.RedisClient, client)
    )
    return { store, prefix }
  })
