/**
 * The limiter of a run that learns its limits: one `RateLimiterShape` that the
 * run's one ApiClient is built over (its `rateLimiter` option), whose limits
 * can be replaced once the first answer has said what the server's are. A
 * limiter's limits are configuration (its `sync` moves a bucket's level, not
 * its rate), so replacing them means a new limiter behind the same face:
 * - every call goes to the limiter in force (none: admitted at once);
 * - a reservation is settled (`refund`, `reconcile`) by the limiter that made
 *   it, so one admitted before the replacement never touches the new buckets;
 * - the face names every limit the run may come to have (`requests`,
 *   `tokens`), so the ApiClient and the Model account for both from the
 *   start; a cost's share of a limit not in force is not charged.
 *
 * The server's headers seed the new limits the usual way: the ApiClient feeds
 * each answer's `remaining` counts to this limiter (`sync`), and the
 * replacement is made before the first answer reaches the ApiClient.
 *
 * What it gives up: a limiter made by `RateLimiter.make` tells the Executor's
 * admission two things no other limiter can (dating a queued request's charge
 * back, and when admitted work began); behind this face the Executor uses
 * plain `acquire`. The headroom the run keeps under each limit absorbs that.
 */
import { type InvalidOptions, RateLimiter, RateLimiterStore } from "@sluice/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

export type Limits = Readonly<Record<string, RateLimiter.LimitOptions>>

export interface LearningLimiter {
  readonly limiter: RateLimiter.RateLimiterShape
  /** The limits from now on (an empty record: none). Limits a limiter cannot be built with fail, changing nothing. */
  readonly replace: (limits: Limits) => Effect.Effect<void, InvalidOptions.InvalidOptionsError>
}

export const make = (options: {
  readonly name: string
  /** Every limit the run may come to have. */
  readonly limitNames: ReadonlyArray<string>
  readonly limits: Limits
}): Effect.Effect<LearningLimiter, InvalidOptions.InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function* () {
    // The store in context (Redis, for `sluice run --redis`: shared by name with other runs), else memory.
    const shared = yield* Effect.serviceOption(RateLimiterStore.RateLimiterStore)
    const store = Option.isSome(shared) ? shared.value : yield* RateLimiterStore.makeMemory()
    let generation = 0
    const build = (limits: Limits) =>
      Object.keys(limits).length === 0
        ? Effect.succeed(undefined)
        : RateLimiter.make({ name: `${options.name}#${++generation}`, limits }).pipe(
            Effect.provideService(RateLimiterStore.RateLimiterStore, store)
          )
    let current: RateLimiter.RateLimiterShape | undefined = yield* build(options.limits)
    /** The limiter that made each reservation. */
    const owners = new WeakMap<RateLimiter.Reservation, RateLimiter.RateLimiterShape>()
    const owned = (limiter: RateLimiter.RateLimiterShape) => (reservation: RateLimiter.Reservation) => {
      owners.set(reservation, limiter)
      return reservation
    }
    /** A cost's shares of the limits `limiter` has (a number charges each of them alike). */
    const sharesFor = (limiter: RateLimiter.RateLimiterShape, cost: RateLimiter.Cost): RateLimiter.Cost => {
      if (typeof cost === "number") return cost
      const shares: Record<string, number> = {}
      for (const name of limiter.limitNames) if (cost[name] !== undefined) shares[name] = cost[name]
      return shares
    }
    /** What a call admitted with no limit in force holds: nothing. */
    const nothingHeld = (key: string | undefined) =>
      Effect.map(
        Clock.currentTimeMillis,
        (at): RateLimiter.Reservation => ({ key: key ?? "default", costs: {}, at, waited: 0, receipts: [] })
      )

    const limiter: RateLimiter.RateLimiterShape = {
      name: options.name,
      limitNames: options.limitNames,
      acquire: (cost, keyOptions) => {
        const limiter = current
        if (limiter === undefined) return nothingHeld(keyOptions?.key)
        return Effect.map(
          limiter.acquire(cost === undefined ? cost : sharesFor(limiter, cost), keyOptions),
          owned(limiter)
        )
      },
      tryAcquire: (cost, keyOptions) => {
        const limiter = current
        if (limiter === undefined) {
          return Effect.map(nothingHeld(keyOptions?.key), (reservation) => ({ _tag: "Admitted", reservation }) as const)
        }
        return Effect.map(
          limiter.tryAcquire(cost === undefined ? cost : sharesFor(limiter, cost), keyOptions),
          (result) => {
            if (result._tag === "Admitted") owned(limiter)(result.reservation)
            return result
          }
        )
      },
      admissibleIn: (cost, keyOptions) => {
        const limiter = current
        if (limiter === undefined) return Effect.succeed(Duration.zero)
        return limiter.admissibleIn(cost === undefined ? cost : sharesFor(limiter, cost), keyOptions)
      },
      refund: (reservation) => {
        const owner = owners.get(reservation)
        return owner === undefined ? Effect.void : owner.refund(reservation)
      },
      reconcile: (reservation, actual) => {
        const owner = owners.get(reservation)
        return owner === undefined ? Effect.void : owner.reconcile(reservation, sharesFor(owner, actual))
      },
      sync: (name, info, keyOptions) =>
        current === undefined || !current.limitNames.includes(name)
          ? Effect.void
          : current.sync(name, info, keyOptions),
      penalize: (duration, keyOptions) =>
        current === undefined ? Effect.void : current.penalize(duration, keyOptions),
      state: (keyOptions) => (current === undefined ? Effect.succeed([]) : current.state(keyOptions))
    }

    return {
      limiter,
      replace: (limits) =>
        Effect.map(build(limits), (next) => {
          current = next
        })
    }
  })
