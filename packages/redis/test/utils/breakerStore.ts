/**
 * Test helpers for the Redis breaker store: a store on its own connection (a
 * "process") under a given prefix, its keys deleted when the scope closes.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as RedisBreakerStore from "../../src/RedisBreakerStore.js"
import * as RedisClient from "../../src/RedisClient.js"
import { admin, deleteKeys, redisUrl } from "./redis.js"

/** A breaker store on a connection of its own, under `prefix`; every key under it deleted with the scope. */
export const processStore = (
  prefix: string,
  options: Omit<RedisBreakerStore.Options, "prefix"> = {},
  url: string = redisUrl,
  clientOptions: Omit<RedisClient.Options, "url"> = {}
): Effect.Effect<RedisBreakerStore.RedisBreakerStore, never, Scope.Scope> =>
  Effect.gen(function* () {
    const redis = yield* admin(url)
    yield* Effect.addFinalizer(() => Effect.promise(() => deleteKeys(redis, prefix).catch(() => 0)))
    const client = yield* Effect.orDie(RedisClient.make({ ...clientOptions, url: Redacted.make(url) }))
    return yield* Effect.orDie(
      RedisBreakerStore.make({ ...options, prefix }).pipe(Effect.provideService(RedisClient.RedisClient, client))
    )
  })
