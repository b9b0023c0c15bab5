/**
 * `sluice run --redis URL` (or `--redis-env NAME`, the URL read from that
 * environment variable): the run's limits live in Redis (`@sluice/redis`),
 * so several `sluice run` processes against the same API share one quota
 * instead of each taking all of it.
 *
 * The sender is built with the Redis store as the `RateLimiterStore` in
 * context: the run's limiter (learned or given) is made over it, under the
 * same name in every process, so they charge the same buckets. Keys are put
 * under a prefix made from the base URL: runs against one API share, runs
 * against another do not. Each call to Redis may take up to 1 s; while Redis
 * does not answer the store fails closed:
 * nothing is admitted, rather than every process taking the whole quota; the
 * run waits for Redis as for a provider that is down (`failureKind.ts`,
 * `httpSend.ts`), its lines untouched, up to `--max-outage`.
 *
 * The URL arrives `Redacted` (it may hold a password) and stays so: the client
 * and its errors never print it (`RedisClient`'s messages replace a password).
 *
 * Effect gave us `Scope`, `Redacted` and `provideService`; `@sluice/redis` the
 * client and the store. This module adds the choice of prefix and policy for the CLI.
 */
import { type InvalidOptions, RateLimiterStore } from "@sluice/core"
import { RedisClient, RedisStore } from "@sluice/redis"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"

/** The key prefix of a run against `baseUrl`: one per API. */
export const prefixFor = (baseUrl: string): string => `sluice:run:${encodeURIComponent(baseUrl)}:`

/** Runs `effect` (the sender's construction) over the Redis store when `--redis` or `--redis-env` was given. */
export const withRedis = <A, E, R>(
  redis: Option.Option<Redacted.Redacted<string>>,
  baseUrl: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<
  A,
  E | RedisClient.RedisClientError | InvalidOptions.InvalidOptionsError,
  Exclude<R, RateLimiterStore.RateLimiterStore> | Scope.Scope
> =>
  Option.match(redis, {
    onNone: () => effect as Effect.Effect<A, E, Exclude<R, RateLimiterStore.RateLimiterStore>>,
    onSome: (url) =>
      Effect.gen(function* () {
        // A batch waits on the provider for seconds: a one-second deadline (and ten to connect at the start)
        // costs it nothing, where the library's 50 ms would fail lines whenever a busy machine is slow.
        const client = yield* RedisClient.make({
          url,
          deadline: "1 second",
          connectTimeout: 10_000
        })
        const store = yield* RedisStore.make({ prefix: prefixFor(baseUrl), onUnavailable: "failClosed" }).pipe(
          Effect.provideService(RedisClient.RedisClient, client)
        )
        return yield* Effect.provideService(effect, RateLimiterStore.RateLimiterStore, store)
      })
  })
