/**
 * The in-process RateLimiterStore: a Map from key to that key's bucket states,
 * each bucket a GCRA `tat` and its sliding log of admissions (see `gcra.ts`).
 * Every operation is synchronous, so each one is atomic with respect to other
 * fibers without any lock.
 *
 * The sweeper is a `forkScoped` fiber that wakes every `sweepInterval` (on the
 * Clock, so TestClock drives it) and deletes keys whose buckets are all full
 * and whose logs are empty. It reads the time as the limiter does
 * (`Gcra.clockMillis`, the Clock's nanosecond reading), so both agree.
 *
 * It keeps the store contract as a network store must (see
 * `RateLimiterStore.ts`): nothing it answers refers to its own objects (a
 * receipt names its log entry by number), so it works unchanged when every
 * argument and answer goes through JSON, which is how the conformance suite
 * runs it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { MemoryOptions, MemoryStore, ReserveRequest, ReserveResult } from "../RateLimiterStore.js"
import * as Gcra from "./gcra.js"

type KeyState = Map<string, Gcra.BucketState>

const stateOf = (keys: Map<string, KeyState>, key: string): KeyState => {
  let state = keys.get(key)
  if (state === undefined) {
    state = new Map()
    keys.set(key, state)
  }
  return state
}

const bucketOf = (state: KeyState, spec: Gcra.BucketSpec): Gcra.BucketState => {
  let bucket = state.get(spec.name)
  if (bucket === undefined) {
    bucket = Gcra.fresh(spec)
    state.set(spec.name, bucket)
  }
  return bucket
}

/** The synchronous core, exported for the benchmark and for tests. */
export const makeUnsafe = () => {
  const keys = new Map<string, KeyState>()

  const reserve = (request: ReserveRequest): ReserveResult => {
    const state = stateOf(keys, request.key)
    const { buckets, costs, now } = request
    // Dated no earlier than `notBefore`; the sliding log may hold it back in real time past its date.
    const ready: Gcra.Readiness = { chargeAt: request.notBefore, dueAt: request.notBefore }
    for (let i = 0; i < buckets.length; i++) {
      const cost = costs[i]!
      if (cost > 0) Gcra.readyAt(buckets[i]!, bucketOf(state, buckets[i]!), cost, now, ready)
    }
    if (!Gcra.isDue(ready.dueAt, now)) {
      // The schedule's date only where it differs: behind an admission that was itself late.
      return ready.chargeAt < ready.dueAt
        ? { at: ready.dueAt, chargeAt: ready.chargeAt, charged: false }
        : { at: ready.dueAt, charged: false }
    }
    const at = Math.min(ready.chargeAt, now)
    if (request.mode === "peek") return { at, charged: false }
    const receipts: Array<Gcra.Receipt | null> = []
    for (let i = 0; i < buckets.length; i++) {
      const cost = costs[i]!
      receipts.push(cost > 0 ? Gcra.take(buckets[i]!, bucketOf(state, buckets[i]!), cost, at, now) : null)
    }
    return { at, charged: true, receipts }
  }

  const charge = (
    key: string,
    buckets: ReadonlyArray<Gcra.BucketSpec>,
    amounts: ReadonlyArray<number>,
    now: number
  ) => {
    const state = stateOf(keys, key)
    for (let i = 0; i < buckets.length; i++) {
      const amount = amounts[i]!
      if (amount > 0) Gcra.charge(buckets[i]!, bucketOf(state, buckets[i]!), amount, now)
    }
  }

  const refund = (
    key: string,
    buckets: ReadonlyArray<Gcra.BucketSpec>,
    amounts: ReadonlyArray<number>,
    receipts: ReadonlyArray<Gcra.Receipt | null>,
    now: number
  ): ReadonlyArray<number> => {
    const state = keys.get(key)
    return buckets.map((spec, i) => {
      const bucket = state?.get(spec.name)
      const receipt = receipts[i]
      const amount = amounts[i]!
      // No state: the key was evicted, so everything it was charged has refilled.
      if (bucket === undefined || receipt == null || amount <= 0) return 0
      return Gcra.refund(spec, bucket, amount, receipt, now)
    })
  }

  const began = (
    key: string,
    buckets: ReadonlyArray<Gcra.BucketSpec>,
    receipts: ReadonlyArray<Gcra.Receipt | null>,
    now: number
  ): void => {
    const state = keys.get(key)
    if (state === undefined) return
    for (let i = 0; i < buckets.length; i++) {
      const bucket = state.get(buckets[i]!.name)
      const receipt = receipts[i]
      if (bucket !== undefined && receipt != null) Gcra.began(bucket, receipt, now)
    }
  }

  const sweep = (now: number): number => {
    let evicted = 0
    for (const [key, state] of keys) {
      let idle = true
      for (const bucket of state.values()) {
        if (!Gcra.isIdle(bucket, now)) {
          idle = false
          break
        }
      }
      if (idle) {
        keys.delete(key)
        evicted++
      }
    }
    return evicted
  }

  return {
    keys,
    reserve,
    charge,
    refund,
    began,
    sync: (key: string, bucket: Gcra.BucketSpec, remaining: number, resetAfter: number | undefined, now: number) =>
      Gcra.sync(bucket, bucketOf(stateOf(keys, key), bucket), remaining, resetAfter, now),
    // `now` is the store's time too: `until` needs no translation.
    block: (key: string, buckets: ReadonlyArray<Gcra.BucketSpec>, until: number, _now: number) => {
      const state = stateOf(keys, key)
      for (const bucket of buckets) Gcra.block(bucketOf(state, bucket), until)
    },
    inspect: (key: string, buckets: ReadonlyArray<Gcra.BucketSpec>, now: number) => {
      const state = keys.get(key)
      return buckets.map((spec) => {
        const bucket = state?.get(spec.name) ?? Gcra.fresh(spec)
        return {
          name: spec.name,
          capacity: spec.capacity,
          available: Gcra.level(spec, bucket, now),
          blockedUntil: bucket.blockedUntil
        }
      })
    },
    sweep
  }
}

export const makeMemory = (options?: MemoryOptions): Effect.Effect<MemoryStore, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const store = makeUnsafe()
    const now = () => Gcra.clockMillis(clock)
    const sweep = Effect.sync(() => store.sweep(now()))
    const interval = Duration.decode(options?.sweepInterval ?? Duration.minutes(1))
    yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(interval)).pipe(Effect.delay(interval)))
    return {
      reserve: (request) => Effect.sync(() => store.reserve(request)),
      charge: (key, buckets, amounts, at) => Effect.sync(() => store.charge(key, buckets, amounts, at)),
      refund: (key, buckets, amounts, receipts, at) =>
        Effect.sync(() => store.refund(key, buckets, amounts, receipts, at)),
      began: (key, buckets, receipts, at) => Effect.sync(() => store.began(key, buckets, receipts, at)),
      sync: (key, bucket, remaining, resetAfter, at) =>
        Effect.sync(() => store.sync(key, bucket, remaining, resetAfter, at)),
      block: (key, buckets, until, at) => Effect.sync(() => store.block(key, buckets, until, at)),
      inspect: (key, buckets, at) => Effect.sync(() => store.inspect(key, buckets, at)),
      size: Effect.sync(() => store.keys.size),
      sweep
    }
  })
