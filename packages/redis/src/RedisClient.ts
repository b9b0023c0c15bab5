/**
 * One Redis connection as an Effect service: opened in a `Scope`, closed with
 * it, configured from `REDIS_URL` by `layerConfig`.
 *
 * The client is `ioredis`: it calls a Lua script by SHA and, when Redis
 * answers `NOSCRIPT` (after a restart, a failover, `SCRIPT FLUSH`), sends the
 * script itself and goes on (`defineCommand`), speaks to a Cluster with the
 * same API, and pipelines concurrent commands on one socket. (`redis`, node
 * redis 4+, has scripts too, but its `NOSCRIPT` fallback is the caller's job.)
 *
 * Effect gave us `Scope`, `Layer`, `Config` and `Redacted`; this module adds
 * the connection's options for a store that must never wait on a dead
 * server: a deadline per command (`deadline`, default 50 ms), no offline
 * queue (a command while disconnected fails at once, it is not sent minutes
 * later to charge a limit nobody waits on), nothing resent
 * after a reconnect, and a reconnect loop that keeps trying in the
 * background so the store returns to Redis when it answers again. The URL is
 * `Redacted` (it may hold a password) and never printed.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"

/**
 * @since 0.1.0
 * @category models
 */
export interface RedisClientShape {
  /** The ioredis connection (pipelining, scripts by SHA). */
  readonly redis: Redis
}

/**
 * @since 0.1.0
 * @category tags
 */
export class RedisClient extends Context.Tag("@sluice/redis/RedisClient")<RedisClient, RedisClientShape>() {}

/**
 * @since 0.1.0
 * @category errors
 */
export class RedisClientError extends Schema.TaggedError<RedisClientError>(
  "@sluice/redis/RedisClient/RedisClientError"
)("RedisClientError", { message: Schema.String }) {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `redis://[:password@]host:port[/db]` (or `rediss://`). */
  readonly url: Redacted.Redacted<string>
  /** Milliseconds to wait between reconnect attempts while Redis is down (default 100). */
  readonly reconnectInterval?: number | undefined
  /**
   * The longest one command may take before it fails as an outage (default 50 ms): ioredis's
   * `commandTimeout`, a timer per command inside the client.
   */
  readonly deadline?: Duration.DurationInput | undefined
  /** Milliseconds a connection attempt may take, and `make` waits for the first (default 5000). */
  readonly connectTimeout?: number | undefined
}

/** The URL with any password replaced, for messages. */
const safeUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "<redacted>"
    return parsed.toString()
  } catch {
    return "<an invalid URL>"
  }
}

/**
 * Opens a connection (it connects in the background; a store call made
 * before it is up fails at once and follows the store's outage policy) and
 * closes it when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<RedisClientShape, RedisClientError, Scope.Scope> =>
  Effect.gen(function* () {
    const url = Redacted.value(options.url)
    if (!/^rediss?:\/\//.test(url)) {
      return yield* new RedisClientError({ message: `Expected a redis:// or rediss:// URL, got ${safeUrl(url)}` })
    }
    const reconnectInterval = options.reconnectInterval ?? 100
    const redis = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new Redis(url, {
            enableOfflineQueue: false,
            autoResendUnfulfilledCommands: false,
            maxRetriesPerRequest: 0,
            enableAutoPipelining: true,
            retryStrategy: () => reconnectInterval,
            connectTimeout: options.connectTimeout ?? 5000,
            commandTimeout: Math.max(1, Math.ceil(Duration.toMillis(Duration.decode(options.deadline ?? 50))))
          })
      ),
      (redis) => Effect.sync(() => redis.disconnect(false))
    )
    // A connection error is the store's outage, handled per call; here it must not crash the process.
    redis.on("error", () => {})
    // Wait for the first connection, but not past `connectTimeout`: a store made while Redis is down starts
    // on its outage policy and finds Redis when it comes.
    yield* Effect.async<void>((resume) => {
      if (redis.status === "ready") return resume(Effect.void)
      const done = () => {
        redis.off("ready", done)
        redis.off("error", done)
        resume(Effect.void)
      }
      redis.once("ready", done)
      redis.once("error", done)
      return Effect.sync(() => {
        redis.off("ready", done)
        redis.off("error", done)
      })
    }).pipe(Effect.timeout(Duration.millis(options.connectTimeout ?? 5000)), Effect.ignore)
    return { redis }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<RedisClient, RedisClientError> =>
  Layer.scoped(RedisClient, make(options))

/**
 * `REDIS_URL` (default `redis://127.0.0.1:6379`), read through Effect's Config.
 *
 * @since 0.1.0
 * @category schemas
 */
export const url: Config.Config<Redacted.Redacted<string>> = Config.redacted("REDIS_URL").pipe(
  Config.withDefault(Redacted.make("redis://127.0.0.1:6379"))
)

/**
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<Options> = Config.map(url, (url) => ({ url }))
): Layer.Layer<RedisClient, RedisClientError | ConfigError.ConfigError> =>
  Layer.scoped(RedisClient, Effect.flatMap(config, make))
