/**
 * A quota domain: the organisation, project or key whose limits several
 * providers share, which is one key of one RateLimiter. The members' own
 * Executors charge it (the Executor is admission's one owner); the Router
 * only reads it, to prefer a provider that can be admitted now and to know
 * how long the earliest admission is, and slows it on a 429.
 *
 * What the RateLimiter gives: `state` (each bucket's level and block, read
 * without charging) and `tryAcquire` (how long a cost would wait, charging
 * only if it would not), `penalize` (a block that never shortens). What this
 * adds: "how long until this cost is admitted" from those two, and a local
 * cooldown that, like the limiter's block, only ever moves later (a second,
 * shorter `Retry-After` never ends the first one early).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as RateLimiter from "../RateLimiter.js"

export class QuotaDomain {
  /** The local view of the latest cooldown (ms on the Clock); it only moves later. */
  cooldownUntil = 0

  constructor(
    readonly name: string,
    readonly limiter: RateLimiter.RateLimiterShape,
    readonly key: string
  ) {}

  /** Moves the cooldown to `until` if that is later; answers whether it moved. */
  coolDown(until: number): boolean {
    if (until <= this.cooldownUntil) return false
    this.cooldownUntil = until
    return true
  }
}

/** The cost's share on one limit, as `RateLimiter.Cost` reads it (a limit it does not name pays 1). */
const shareOf = (cost: RateLimiter.Cost | undefined, limit: string): number =>
  typeof cost === "number" ? cost : (cost?.[limit] ?? 1)

/**
 * How long until `cost` could be admitted on the domain (0: now); `Infinity`
 * when it never could (a cost above a bucket's capacity, or a cost the limiter
 * cannot read). Reads the buckets first; asks `tryAcquire` only when they
 * cannot pay now, and gives back at once what it took should they have filled
 * in between.
 */
export const admissibleIn = (
  domain: QuotaDomain,
  cost: RateLimiter.Cost | undefined,
  now: number
): Effect.Effect<number> => {
  if (domain.cooldownUntil > now) return Effect.succeed(domain.cooldownUntil - now)
  const { limiter, key } = domain
  return Effect.flatMap(limiter.state({ key }), (buckets) => {
    let ready = true
    for (const bucket of buckets) {
      const share = shareOf(cost, bucket.name)
      if (share > bucket.capacity) return Effect.succeed(Number.POSITIVE_INFINITY)
      if (bucket.blockedUntil > now || bucket.available < share) ready = false
    }
    if (ready) return Effect.succeed(0)
    return Effect.flatMap(limiter.tryAcquire(cost, { key }), (result) =>
      result._tag === "Delayed"
        ? Effect.succeed(Duration.toMillis(result.retryAfter))
        : Effect.as(Effect.ignore(limiter.refund(result.reservation)), 0)
    )
  }).pipe(Effect.orElseSucceed(() => Number.POSITIVE_INFINITY))
}
