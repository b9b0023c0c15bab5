/**
 * A quota domain: the organisation, project or key whose limits several
 * providers share, which is one key of one RateLimiter. The members' own
 * Executors charge it (the Executor is admission's one owner); the Router
 * only reads it, to prefer a provider that can be admitted now, to know how
 * long the earliest admission is, and to weigh the quota left (`headroom`),
 * and slows it on a 429.
 *
 * What the RateLimiter gives: `admissibleIn` (when a cost could be admitted,
 * behind the callers already in the key's line, charging nothing), `state`
 * (each bucket's level and block) and `penalize` (a block that never
 * shortens). What this adds: the cost as the members' Executors would charge
 * it (its share of each of the limiter's limits), the share of capacity left,
 * and a local cooldown that, like the limiter's block, only ever moves later
 * (a second, shorter `Retry-After` never ends the first one early).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as RateLimiter from "../RateLimiter.js"

export class QuotaDomain {
  /** The local view of the latest cooldown (ms on the Clock); it only moves later. */
  cooldownUntil = 0
  /** The limiter's options for this domain's key, made once (every pick reads the limiter with them). */
  readonly keyOptions: RateLimiter.KeyOptions

  constructor(
    readonly name: string,
    readonly limiter: RateLimiter.RateLimiterShape,
    readonly key: string
  ) {
    this.keyOptions = { key }
  }

  /** Moves the cooldown to `until` if that is later; answers whether it moved. */
  coolDown(until: number): boolean {
    if (until <= this.cooldownUntil) return false
    this.cooldownUntil = until
    return true
  }
}

/**
 * The cost as a member's Executor charges the domain's limiter: a share of
 * each of its limits (a number is every limit's; a limit a record does not
 * name pays 1; what the record names beyond the limiter's limits is not its
 * concern).
 */
const sharesOf = (
  limiter: RateLimiter.RateLimiterShape,
  cost: RateLimiter.Cost | undefined
): RateLimiter.Cost | undefined => {
  if (cost === undefined || typeof cost === "number") return cost
  const shares: Record<string, number> = {}
  for (const limit of limiter.limitNames) shares[limit] = cost?.[limit] ?? 1
  return shares
}

/**
 * How long until `cost` could be admitted on the domain (ms; 0: now), behind
 * the callers already waiting on its key, charging nothing; `Infinity` when
 * it never could (a share above a limit's capacity, or a limiter that cannot
 * answer).
 */
export const admissibleIn = (
  domain: QuotaDomain,
  cost: RateLimiter.Cost | undefined,
  now: number
): Effect.Effect<number> => {
  if (domain.cooldownUntil > now) return Effect.succeed(domain.cooldownUntil - now)
  return Effect.match(domain.limiter.admissibleIn(sharesOf(domain.limiter, cost), domain.keyOptions), {
    onFailure: () => Number.POSITIVE_INFINITY,
    onSuccess: Duration.toMillis
  })
}

/**
 * The share (0 to 1) of the domain's capacity left now: its emptiest
 * limit's level over its capacity; 0 while it cools down or is blocked, or
 * when the limiter cannot answer.
 */
export const headroom = (domain: QuotaDomain, now: number): Effect.Effect<number> => {
  if (domain.cooldownUntil > now) return Effect.succeed(0)
  return Effect.match(domain.limiter.state(domain.keyOptions), {
    onFailure: () => 0,
    onSuccess: (buckets) => {
      let least = 1
      for (const bucket of buckets) {
        if (bucket.blockedUntil > now) return 0
        const share = bucket.available / bucket.capacity
        if (share < least) least = share
      }
      return Math.max(0, least)
    }
  })
}
