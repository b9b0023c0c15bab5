/**
 * The Redis CircuitBreakerStore's machinery: each operation one call of the
 * script in `breakerScript.ts` (by SHA, with ioredis's `NOSCRIPT` fallback:
 * `defineCommand`), under the client's deadline, behind a CircuitBreaker on
 * the store itself (as `outage.ts` does for the rate-limiter store: an outage
 * costs at most the deadline per call, and nothing while that breaker is
 * open); and a second connection, subscribed to the store's channel, whose
 * messages become the store's notices.
 *
 * A call that finds no Redis fails with a `CircuitBreakerStoreError`, and the
 * breaker that made it decides alone (`@sluice/core`'s shared breaker). The
 * first such failure after a success is a switch to "local" (logged,
 * counted); the first success after failures is the switch back. When the
 * subscription is made (again), a `Resync` notice tells every
 * breaker to read its keys again (it may have missed changes).
 *
 * @internal
 */
import { CircuitBreaker, CircuitBreakerStore, InvalidOptions } from "@sluice/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { RedisClient } from "../RedisClient.js"
import { BREAKER_SCRIPT } from "./breakerScript.js"
import * as metrics from "./breakerStoreMetrics.js"
import * as StoreGuard from "./storeGuard.js"

/** @internal */
export const Options = Schema.Struct({
  /** Put before every key and the channel (default `"sluice:"`); one per application or test. */
  prefix: Schema.optional(Schema.String.pipe(Schema.pattern(/^[^*?[\]\\{}]*$/))),
  /** Whose clock deadlines and leases run on: Redis `TIME` (`"server"`, default) or the caller's `now`. */
  time: Schema.optional(Schema.Literal("server", "caller")),
  /** How long a key outlives its deadline and its leases (default 10 minutes). */
  retention: Schema.optional(InvalidOptions.PositiveDuration),
  /** The breaker on the store itself: open after `failures` calls in a row fail, for `openDuration` (default 3, 1 s). */
  breaker: Schema.optional(
    Schema.Struct({
      failures: Schema.optional(InvalidOptions.PositiveInt),
      openDuration: Schema.optional(InvalidOptions.PositiveDuration)
    })
  )
})

/** @internal */
export type Options = typeof Options.Encoded

/** @internal */
export interface Snapshot {
  readonly backend: "redis" | "local"
  readonly switches: number
  readonly since: number
  readonly lastFailure?: string | undefined
  readonly breaker: CircuitBreaker.State
  readonly subscribed: boolean
}

/** @internal */
export interface RedisBreakerStore extends CircuitBreakerStore.CircuitBreakerStoreShape {
  readonly snapshot: Effect.Effect<Snapshot>
}

/** @internal The store's layer provides the core's Tag. */
export const Tag = CircuitBreakerStore.CircuitBreakerStore

const decodeOptions = InvalidOptions.decode("RedisBreakerStore", Options)

const COMMAND = "sluiceBreakerStore"

/** Replies that mean "not now" rather than "wrong": the server is there but cannot serve. */
const OUTAGE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY)/

const failure = (operation: string, error: unknown): CircuitBreakerStore.CircuitBreakerStoreError => {
  const detail = error instanceof Error ? error.message : String(error)
  const reason =
    detail === "Command timed out"
      ? "Deadline"
      : (error as { name?: string } | null)?.name === "ReplyError" && !OUTAGE_REPLIES.test(detail)
        ? "Refused"
        : "Unavailable"
  return new CircuitBreakerStore.CircuitBreakerStoreError({ reason, operation, detail })
}

/** Encodes a name so that it can hold no `{`, `}` (the hash tag) nor `:` (our separator). */
const encode = (name: string): string => encodeURIComponent(name)

type Call = (...args: Array<string | number>) => Promise<Array<string>>

const sharedOf = (answer: ReadonlyArray<string>): CircuitBreakerStore.SharedState => ({
  state: answer[0] as CircuitBreakerStore.SharedState["state"],
  generation: Number(answer[1]),
  openRemaining: Number(answer[2]) + 0,
  openedFor: Number(answer[3]) + 0,
  probes: Number(answer[4]),
  successes: Number(answer[5]),
  trip: answer[6] === "" || answer[6] === undefined ? null : JSON.parse(answer[6])
})

/** A published change, as the script wrote it; anything else is not ours and is dropped. */
const noticeOf = (message: string): CircuitBreakerStore.Notice | undefined => {
  try {
    const m = JSON.parse(message) as Record<string, string>
    if (typeof m.b !== "string" || typeof m.k !== "string" || typeof m.s !== "string") return undefined
    return {
      _tag: "Change",
      breaker: m.b,
      key: m.k,
      shared: sharedOf([m.s, m.g!, m.r!, m.o!, m.p!, m.c!, m.t ?? ""])
    }
  } catch {
    return undefined
  }
}

let stores = 0

/** @internal */
export const make = (
  input?: Options
): Effect.Effect<RedisBreakerStore, InvalidOptions.InvalidOptionsError, RedisClient | Scope.Scope> =>
  Effect.gen(function* () {
    const options = yield* decodeOptions(input ?? {})
    const { redis } = yield* RedisClient
    const clock = yield* Effect.clock
    const prefix = options.prefix ?? "sluice:"
    const time = options.time ?? "server"
    const retention = String(Duration.toMillis(Duration.decode(options.retention ?? Duration.minutes(10))))
    const channel = `${prefix}breaker-changes`
    if (typeof (redis as unknown as Record<string, unknown>)[COMMAND] !== "function") {
      redis.defineCommand(COMMAND, { lua: BREAKER_SCRIPT, numberOfKeys: 1 })
    }
    const call = (redis as unknown as Record<string, Call>)[COMMAND]!.bind(redis)
    const keyOf = (breaker: string, key: string) => `${prefix}breaker:{${encode(breaker)}:${encode(key)}}`

    // ---- the store's own breaker and its switches ----------------------------------------

    // A refusal of the script is a bug, not an outage: it never opens the guard.
    const guard = yield* StoreGuard.make(
      `redis-breaker-store-${++stores}`,
      options.breaker,
      (error) => error instanceof CircuitBreakerStore.CircuitBreakerStoreError && error.reason === "Refused"
    )
    const state = {
      onRedis: true,
      switches: 0,
      since: clock.unsafeCurrentTimeMillis(),
      lastFailure: undefined as string | undefined,
      subscribed: false
    }
    const switchTo = (onRedis: boolean, detail: string | undefined) =>
      Effect.suspend(() => {
        if (state.onRedis === onRedis) return Effect.void
        state.onRedis = onRedis
        state.switches++
        state.since = clock.unsafeCurrentTimeMillis()
        return Effect.zipRight(
          Effect.all([
            Metric.increment(Metric.tagged(metrics.switches, "to", onRedis ? "redis" : "local")),
            Metric.set(metrics.available, onRedis ? 1 : 0)
          ]),
          onRedis
            ? Effect.logInfo("Redis breaker store: Redis answers again; breakers share their state again")
            : Effect.logWarning(
                `Redis breaker store: Redis is unavailable (${detail}); each breaker decides alone until it answers`
              )
        )
      })

    const run = (
      operation: string,
      breaker: string,
      key: string,
      now: number,
      rest: ReadonlyArray<string>
    ): Effect.Effect<Array<string>, CircuitBreakerStore.CircuitBreakerStoreError> =>
      guard
        .protect(
          Effect.tryPromise({
            try: () =>
              call(keyOf(breaker, key), operation, String(now), time, channel, breaker, key, retention, ...rest),
            catch: (error) => failure(operation, error)
          })
        )
        .pipe(
          Effect.mapError((error) =>
            error instanceof CircuitBreaker.CircuitOpenError
              ? new CircuitBreakerStore.CircuitBreakerStoreError({
                  reason: "Unavailable",
                  operation,
                  detail: `Redis did not answer the last calls; the store's own breaker is open (${Math.ceil(error.retryAfterMillis)} ms left)`
                })
              : error
          ),
          Effect.matchEffect({
            onSuccess: (answer) => Effect.as(switchTo(true, undefined), answer),
            onFailure: (error) => {
              if (error.reason === "Refused") return Effect.fail(error)
              state.lastFailure = error.message
              return Effect.zipRight(switchTo(false, error.detail), Effect.fail(error))
            }
          })
        )

    // ---- notices: a second connection, subscribed ---------------------------------------------

    const pubsub = yield* PubSub.sliding<CircuitBreakerStore.Notice>(4096)
    const subscriber = yield* Effect.acquireRelease(
      Effect.sync(() => {
        // Subscribed until the scope closes: it waits for Redis (offline queue, no command deadline) and
        // subscribes again after every reconnect (ioredis's autoResubscribe).
        const connection = redis.duplicate({
          enableOfflineQueue: true,
          maxRetriesPerRequest: null,
          commandTimeout: undefined,
          autoResubscribe: true
        })
        connection.on("error", () => {})
        connection.on("message", (from: string, message: string) => {
          if (from !== channel) return
          const notice = noticeOf(message)
          if (notice !== undefined) pubsub.unsafeOffer(notice)
        })
        connection.on("close", () => {
          state.subscribed = false
        })
        connection.on("ready", () => {
          // ioredis sends SUBSCRIBE again on this socket just after "ready" (in the same turn); the PING sent
          // behind it (a microtask later) answers once that is done. From then on nothing is missed: every
          // breaker reads its keys again.
          Promise.resolve()
            .then(() => connection.ping())
            .then(() => {
              state.subscribed = true
              // Also the first time: a breaker that used a key while Redis was down at the start never read it.
              pubsub.unsafeOffer({ _tag: "Resync" })
            })
            .catch(() => {})
        })
        return connection
      }),
      (connection) => Effect.sync(() => connection.disconnect(false))
    )
    // Wait for the subscription (bounded): a store made while Redis is down starts unsubscribed and
    // subscribes when Redis comes.
    yield* Effect.tryPromise(() => subscriber.subscribe(channel)).pipe(
      Effect.tap(() =>
        Effect.sync(() => {
          state.subscribed = true
        })
      ),
      Effect.timeout(Duration.seconds(5)),
      Effect.ignore
    )

    // ---- the store ------------------------------------------------------------------------------

    const store: RedisBreakerStore = {
      [CircuitBreakerStore.TypeId]: CircuitBreakerStore.TypeId,
      get: (target) => Effect.map(run("get", target.breaker, target.key, target.now, []), sharedOf),
      open: (request) =>
        Effect.map(
          run("open", request.breaker, request.key, request.now, [
            String(request.openFor),
            JSON.stringify(request.trip),
            request.generation === null ? "" : String(request.generation)
          ]),
          sharedOf
        ),
      acquireProbe: (request) =>
        Effect.map(
          run("acquire", request.breaker, request.key, request.now, [
            request.holder,
            String(request.probes),
            String(request.lease)
          ]),
          (answer) => ({ granted: answer[7] === "1", shared: sharedOf(answer) })
        ),
      settleProbe: (request) =>
        Effect.map(
          run("settle", request.breaker, request.key, request.now, [
            request.holder,
            String(request.generation),
            request.outcome,
            String(request.probes)
          ]),
          sharedOf
        ),
      isolate: (target) => Effect.map(run("isolate", target.breaker, target.key, target.now, []), sharedOf),
      reset: (target) => Effect.map(run("reset", target.breaker, target.key, target.now, []), sharedOf),
      notices: PubSub.subscribe(pubsub),
      snapshot: Effect.map(guard.state(), (breaker) => ({
        backend: state.onRedis ? ("redis" as const) : ("local" as const),
        switches: state.switches,
        since: state.since,
        lastFailure: state.lastFailure,
        breaker,
        subscribed: state.subscribed
      }))
    }
    yield* Metric.set(metrics.available, 1)
    return store
  })
