/**
 * The Redis store as callers see it: the raw calls of `redisStore.ts` behind
 * a CircuitBreaker (from `@sluice/core`) and the outage policy, plus what
 * spares round trips (blocks known until they end).
 *
 * Every call goes through `guard`: through the breaker to Redis; an
 * `Unavailable` or `Deadline` failure (or the breaker refusing) switches the store to its
 * policy for that call, a `Reply` failure (the script said no: a bug) fails
 * as it is. The first call that fails after a success is a switch (logged,
 * counted); so is the first one that succeeds after failures.
 *
 * The usual path is one check: while every call the breaker judged succeeded
 * (CLOSED, no failure in its run), another success would change nothing in
 * it, so a reserve is one `Effect.async` around the call (`startReserve`), its
 * answer handed over as it comes. A failure, or a success that finds a
 * failure recorded while it ran, is judged by the breaker as it would have
 * been (`lateOutcome`); until a success leaves the breaker CLOSED with an
 * empty run again, every call goes through it.
 *
 * @internal
 */
import { type CircuitBreaker, InvalidOptions, RateLimiterStore } from "@sluice/core"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { RedisClient } from "../RedisClient.js"
import * as metrics from "./metrics.js"
import type * as RedisStoreModule from "./options.js"
import { Options as OptionsSchema, RedisStoreUnavailable } from "./options.js"
import { type Failure, makeRaw, type RawReserve } from "./redisStore.js"
import * as StoreGuard from "./storeGuard.js"

type BucketSpec = RateLimiterStore.BucketSpec

/** @internal The store's layer provides the core's Tag. */
export const StoreTag = RateLimiterStore.RateLimiterStore

const decodeOptions = InvalidOptions.decode("RedisStore", OptionsSchema)

/** Float slack when comparing a due time with now (as `gcra.ts`). */
const DUE_SLACK = 2e-6

/** Known blocks are forgotten once over; past this many keys the ended ones are swept at once. */
const KNOWN_BLOCKS_SWEEP = 10_000

let stores = 0

const isReply = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as Partial<Failure>).kind === "Reply"

/** A share of a bucket: `share` of its capacity and of its rate. */
const shareOf = (bucket: BucketSpec, share: number): BucketSpec => {
  if (share === 1) return bucket
  const limit = (bucket.interval / bucket.emission) * share
  const capacity = bucket.capacity * share
  return {
    ...bucket,
    capacity,
    emission: bucket.interval / limit,
    windowLimit: Math.max(capacity, capacity + limit - 1)
  }
}

export const make = (
  input?: RedisStoreModule.Options
): Effect.Effect<RedisStoreModule.RedisStore, InvalidOptions.InvalidOptionsError, RedisClient | Scope.Scope> =>
  Effect.gen(function* () {
    const options = yield* decodeOptions(input ?? {})
    const { redis } = yield* RedisClient
    const clock = yield* Effect.clock
    const policy = options.onUnavailable ?? "failClosed"
    const policyName = typeof policy === "string" ? policy : "degraded"
    const raw = makeRaw(redis, {
      prefix: options.prefix ?? "sluice:",
      time: options.time ?? "server",
      expiryMargin: Duration.toMillis(Duration.decode(options.expiryMargin ?? Duration.seconds(1))),
      holdGrace: Duration.toMillis(Duration.decode(options.holdGrace ?? Duration.seconds(1))),
      fairness: options.fairness ?? true,
      holder: `${process.pid}-${++stores}-${Math.random().toString(36).slice(2, 10)}`
    })
    // A refusal of the script is a bug, not an outage: it never opens the breaker.
    const breaker = yield* StoreGuard.make("redis-store", options.breaker, isReply)
    const degraded =
      typeof policy === "object"
        ? yield* RateLimiterStore.makeMemory({ sweepInterval: Duration.seconds(10) })
        : undefined
    const share = typeof policy === "object" ? policy.degrade.share : 1
    const local = (buckets: ReadonlyArray<BucketSpec>) => buckets.map((bucket) => shareOf(bucket, share))

    // ---- switches ------------------------------------------------------------------

    const state = {
      onRedis: true,
      switches: 0,
      since: clock.unsafeCurrentTimeMillis(),
      lastFailure: undefined as string | undefined,
      roundTrips: 0,
      answeredLocally: 0
    }
    const switchTo = (onRedis: boolean, detail: string | undefined) =>
      Effect.suspend(() => {
        if (state.onRedis === onRedis) return Effect.void
        state.onRedis = onRedis
        state.switches++
        state.since = clock.unsafeCurrentTimeMillis()
        const to = onRedis ? "redis" : policyName
        return Effect.zipRight(
          Effect.all([
            Metric.increment(Metric.tagged(metrics.switches, "to", to)),
            Metric.set(metrics.available, onRedis ? 1 : 0)
          ]),
          onRedis
            ? Effect.logInfo("Redis rate-limiter store: Redis answers again; back to Redis")
            : Effect.logWarning(`Redis rate-limiter store: Redis is unavailable (${detail}); now ${policyName}`)
        )
      })

    const unavailable = (operation: string, error: Failure | CircuitBreaker.CircuitOpenError) =>
      "kind" in error
        ? new RedisStoreUnavailable({
            reason: error.kind === "Deadline" ? "Deadline" : "Unavailable",
            operation,
            detail: error.detail
          })
        : new RedisStoreUnavailable({ reason: "BreakerOpen", operation, detail: error.message })

    /**
     * While every call the breaker has judged succeeded (it is CLOSED with no failure in its run), one more
     * success would change nothing in it: a call then goes to Redis without it (`healthy`, the one check of
     * the usual path). Any failure it records ends that (and counts in `failures`), and only a success that
     * leaves it CLOSED with an empty run starts it again.
     */
    let healthy = true
    let failures = 0

    const recheck = Effect.suspend(() => {
      const seen = failures
      return Effect.map(breaker.inspect(), (snapshot) => {
        if (failures === seen && snapshot.state === "CLOSED" && snapshot.calls === 0) healthy = true
      })
    })

    const refused = (operation: string, error: Failure) =>
      new RateLimiterStore.RateLimiterStoreError({
        operation,
        message: `Redis refused the store's script: ${error.detail}`
      })

    /** An outage met by a call: recorded, switched to the policy, answered by `fallback`. */
    const onOutage = <A>(
      operation: string,
      error: Failure | CircuitBreaker.CircuitOpenError,
      fallback: (cause: RedisStoreUnavailable) => Effect.Effect<A, RateLimiterStore.RateLimiterStoreError>
    ) => {
      healthy = false
      failures++
      const cause = unavailable(operation, error)
      state.lastFailure = cause.message
      return Effect.zipRight(switchTo(false, cause.detail), fallback(cause))
    }

    /**
     * A call judged by the breaker; on an outage, `fallback` (the policy's answer) after the switch; a failure
     * of the script itself is never hidden.
     */
    const judged = <A>(
      operation: string,
      call: Effect.Effect<A, Failure>,
      fallback: (cause: RedisStoreUnavailable) => Effect.Effect<A, RateLimiterStore.RateLimiterStoreError>
    ): Effect.Effect<A, RateLimiterStore.RateLimiterStoreError> =>
      breaker.protect(call).pipe(
        Effect.matchEffect({
          onSuccess: (value) =>
            healthy
              ? Effect.as(switchTo(true, undefined), value)
              : Effect.as(Effect.zipRight(switchTo(true, undefined), recheck), value),
          onFailure: (error) =>
            "kind" in error && error.kind === "Reply"
              ? Effect.fail(refused(operation, error))
              : onOutage(operation, error, fallback)
        })
      )

    /** One call: to Redis through the breaker (counted as a round trip once the breaker lets it through). */
    const guard = <A>(
      operation: string,
      call: Effect.Effect<A, Failure>,
      fallback: (cause: RedisStoreUnavailable) => Effect.Effect<A, RateLimiterStore.RateLimiterStoreError>
    ): Effect.Effect<A, RateLimiterStore.RateLimiterStoreError> =>
      judged(
        operation,
        Effect.suspend(() => {
          state.roundTrips++
          metrics.roundTrips.unsafeUpdate(1, [])
          return call
        }),
        fallback
      )

    /**
     * The outcome of a call made without the breaker, when a failure was recorded while it ran: judged now as
     * the breaker would have judged it then. A CLOSED breaker counts it; one that opened since would have
     * ignored it (a call of an earlier generation): the outage policy then answers a failure, a success is
     * kept.
     */
    const lateOutcome = <A>(
      operation: string,
      outcome: Exit.Exit<A, Failure>,
      fallback: (cause: RedisStoreUnavailable) => Effect.Effect<A, RateLimiterStore.RateLimiterStoreError>
    ): Effect.Effect<A, RateLimiterStore.RateLimiterStoreError> =>
      Effect.flatMap(breaker.inspect(), (snapshot) => {
        if (snapshot.state === "CLOSED") return judged(operation, outcome, fallback)
        if (Exit.isSuccess(outcome)) return Effect.as(switchTo(true, undefined), outcome.value)
        const error = Cause.failureOption(outcome.cause)
        return Option.isSome(error)
          ? onOutage(operation, error.value, fallback)
          : Effect.die(Cause.squash(outcome.cause))
      })

    const failClosed = (cause: RedisStoreUnavailable) =>
      Effect.fail(
        new RateLimiterStore.RateLimiterStoreError({
          operation: cause.operation,
          message: `${cause.message} (policy failClosed: nothing is admitted until Redis answers)`,
          cause
        })
      )

    /** The policy's answer: fail, answer as if there were no limit, or ask the local share. */
    const byPolicy = <A>(
      cause: RedisStoreUnavailable,
      open: () => A,
      degrade: (store: RateLimiterStore.MemoryStore) => Effect.Effect<A, RateLimiterStore.RateLimiterStoreError>
    ): Effect.Effect<A, RateLimiterStore.RateLimiterStoreError> =>
      policy === "failClosed" ? failClosed(cause) : policy === "failOpen" ? Effect.sync(open) : degrade(degraded!)

    // ---- blocks known until they end -------------------------------------------------

    const knownBlocks = new Map<string, Map<string, number>>()
    const learnBlock = (key: string, names: ReadonlyArray<string>, until: number, now: number) => {
      if (!(until - now >= DUE_SLACK)) return
      let buckets = knownBlocks.get(key)
      if (buckets === undefined) {
        if (knownBlocks.size >= KNOWN_BLOCKS_SWEEP) sweepBlocks(now)
        buckets = new Map()
        knownBlocks.set(key, buckets)
      }
      for (const name of names) buckets.set(name, Math.max(buckets.get(name) ?? 0, until))
    }
    const sweepBlocks = (now: number) => {
      for (const [key, buckets] of knownBlocks) {
        for (const [name, until] of buckets) if (until - now < DUE_SLACK) buckets.delete(name)
        if (buckets.size === 0) knownBlocks.delete(key)
      }
    }
    /** Until when one of the charged buckets is known blocked, if it is (beyond now). */
    const knownBlocked = (request: RateLimiterStore.ReserveRequest): number | undefined => {
      const buckets = knownBlocks.get(request.key)
      if (buckets === undefined) return undefined
      let until = 0
      for (let i = 0; i < request.buckets.length; i++) {
        if (request.costs[i]! > 0) until = Math.max(until, buckets.get(request.buckets[i]!.name) ?? 0)
      }
      if (until - request.now >= DUE_SLACK) return until
      if (until > 0) sweepBlocks(request.now)
      return undefined
    }

    /** A reserve's answer, the block it reports learned. */
    const learnFrom = (request: RateLimiterStore.ReserveRequest, answer: RawReserve) => {
      if (answer.blockedUntil !== undefined) {
        learnBlock(
          request.key,
          request.buckets.filter((_, i) => request.costs[i]! > 0).map((bucket) => bucket.name),
          answer.blockedUntil,
          request.now
        )
      }
      return answer.result
    }

    /** The outage policy's answer to a reserve. */
    const reserveFallback = (request: RateLimiterStore.ReserveRequest) => (cause: RedisStoreUnavailable) =>
      byPolicy(
        cause,
        (): RateLimiterStore.ReserveResult =>
          request.mode === "peek"
            ? { at: request.now, charged: false }
            : { at: request.now, charged: true, receipts: request.buckets.map(() => null) },
        (memory) => memory.reserve({ ...request, buckets: local(request.buckets) })
      )

    // ---- the store ---------------------------------------------------------------------

    const store: RedisStoreModule.RedisStore = {
      reserve: (request) =>
        Effect.async<RateLimiterStore.ReserveResult, RateLimiterStore.RateLimiterStoreError>((resume) => {
          const blocked = knownBlocked(request)
          if (blocked !== undefined) {
            state.answeredLocally++
            return resume(Effect.succeed({ at: blocked, charged: false }))
          }
          if (!healthy) {
            return resume(
              guard(
                "reserve",
                Effect.map(raw.reserve(request), (answer) => learnFrom(request, answer)),
                reserveFallback(request)
              )
            )
          }
          // The usual path: one call, its answer handed over as it comes.
          const seen = failures
          state.roundTrips++
          metrics.roundTrips.unsafeUpdate(1, [])
          raw.startReserve(request, (failure, answer) => {
            if (failure === undefined) {
              const result = learnFrom(request, answer!)
              return resume(
                failures === seen
                  ? Effect.succeed(result)
                  : lateOutcome("reserve", Exit.succeed(result), reserveFallback(request))
              )
            }
            resume(
              failure.kind === "Reply"
                ? Effect.fail(refused("reserve", failure))
                : lateOutcome("reserve", Exit.fail(failure), reserveFallback(request))
            )
          })
        }),
      charge: (key, buckets, amounts, now) =>
        guard("charge", raw.charge(key, buckets, amounts, now), (cause) =>
          byPolicy(
            cause,
            () => undefined,
            (memory) => memory.charge(key, local(buckets), amounts, now)
          )
        ),
      refund: (key, buckets, amounts, receipts, now) =>
        guard("refund", raw.refund(key, buckets, amounts, receipts, now), (cause) =>
          byPolicy(
            cause,
            () => buckets.map(() => 0),
            (memory) => memory.refund(key, local(buckets), amounts, receipts, now)
          )
        ),
      began: (key, buckets, receipts, now) =>
        guard("began", raw.began(key, buckets, receipts, now), (cause) =>
          byPolicy(
            cause,
            () => undefined,
            (memory) => memory.began(key, local(buckets), receipts, now)
          )
        ),
      sync: (key, bucket, remaining, resetAfter, now) =>
        guard(
          "sync",
          Effect.map(raw.sync(key, bucket, remaining, resetAfter, now), (until) =>
            learnBlock(key, [bucket.name], until, now)
          ),
          (cause) =>
            byPolicy(
              cause,
              () => undefined,
              (memory) => memory.sync(key, shareOf(bucket, share), remaining, resetAfter, now)
            )
        ),
      block: (key, buckets, until, now) =>
        Effect.zipRight(
          Effect.sync(() =>
            learnBlock(
              key,
              buckets.map((bucket) => bucket.name),
              until,
              now
            )
          ),
          guard("block", raw.block(key, buckets, until, now), (cause) =>
            byPolicy(
              cause,
              () => undefined,
              (memory) => memory.block(key, local(buckets), until, now)
            )
          )
        ),
      inspect: (key, buckets, now) =>
        guard("inspect", raw.inspect(key, buckets, now), (cause) =>
          byPolicy(
            cause,
            () =>
              buckets.map((bucket) => ({
                name: bucket.name,
                capacity: bucket.capacity,
                available: bucket.capacity,
                blockedUntil: 0
              })),
            (memory) => memory.inspect(key, local(buckets), now)
          )
        ),
      size: guard("size", raw.size, (cause) =>
        policy === "failClosed" || policy === "failOpen" ? failClosed(cause) : degraded!.size
      ),
      snapshot: Effect.map(breaker.state(), (breakerState) => ({
        backend: state.onRedis ? ("redis" as const) : policyName,
        switches: state.switches,
        since: state.since,
        lastFailure: state.lastFailure,
        breaker: breakerState,
        roundTrips: state.roundTrips,
        answeredLocally: state.answeredLocally
      }))
    }
    yield* Metric.set(metrics.available, 1)
    return store
  })
