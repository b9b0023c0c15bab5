/**
 * The store's calls to Redis: each operation is one call of the script in
 * `script.ts` (by SHA, with ioredis's `NOSCRIPT` fallback), its numbers packed
 * as IEEE doubles in one argument (exact, and no text to format or parse on
 * either side), its keys declared and hash-tagged, under the client's deadline.
 * What does not change from call to call is made once: each bucket's field
 * name and packed spec (per `BucketSpec`, the limiter passes the same ones
 * every time), each key's Redis keys (a bounded cache). Answers come back as
 * packed doubles (NaN for "none") and are decoded into the plain values of the
 * store contract.
 *
 * Failures come out as one of three kinds: `Unavailable` (no connection,
 * Redis loading or read-only) and `Deadline` (no answer in time): the outage
 * policy decides; and
 * `Reply` (Redis answered with an error of the script: a bug, never hidden
 * behind the outage policy).
 *
 * @internal
 */
import type { RateLimiterStore } from "@sluice/core"
import * as Effect from "effect/Effect"
import type { Redis } from "ioredis"
import { SCRIPT } from "./script.js"

type BucketSpec = RateLimiterStore.BucketSpec
type Receipt = RateLimiterStore.Receipt

/** @internal */
export interface RawOptions {
  readonly prefix: string
  readonly time: "server" | "caller"
  readonly expiryMargin: number
  readonly holdGrace: number
  readonly fairness: boolean
  /** This store's name in holds: one per process. */
  readonly holder: string
}

/** @internal */
export interface Failure {
  readonly kind: "Unavailable" | "Deadline" | "Reply"
  readonly detail: string
}

/** Replies that mean "not now" rather than "wrong": the server is there but cannot serve. */
const OUTAGE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY)/

const COMMAND = "sluiceRateLimiterStore"

/**
 * What a rejected command means. The deadline is ioredis's `commandTimeout` (set by `RedisClient` from
 * its `deadline`): one timer per command inside the client, where an Effect timeout would fork a fiber
 * per call (it doubled the cost of an admission). A command cut off may still run in Redis: its charge
 * is then kept, never lost.
 */
const failure = (error: unknown): Failure => {
  const message = error instanceof Error ? error.message : String(error)
  if (message === "Command timed out") return { kind: "Deadline", detail: message }
  const isReply = (error as { name?: string } | null)?.name === "ReplyError"
  return isReply && !OUTAGE_REPLIES.test(message)
    ? { kind: "Reply", detail: message }
    : { kind: "Unavailable", detail: message }
}

type Call = (...args: Array<string | number | Buffer>) => Promise<Buffer>

/** Encodes a key or bucket name so that it can hold no `{`, `}` (the hash tag) nor `:` (our separator). */
const encode = (name: string): string => encodeURIComponent(name)

/** What the script needs of a bucket that never changes: its field name and its spec, packed. */
interface PreparedBucket {
  readonly field: string
  readonly spec: Buffer
}

const prepared = new WeakMap<BucketSpec, PreparedBucket>()

const prepare = (bucket: BucketSpec): PreparedBucket => {
  let found = prepared.get(bucket)
  if (found === undefined) {
    const spec = Buffer.alloc(40)
    spec.writeDoubleLE(bucket.capacity, 0)
    spec.writeDoubleLE(bucket.emission, 8)
    spec.writeDoubleLE(bucket.interval, 16)
    spec.writeDoubleLE(bucket.windowMargin, 24)
    spec.writeDoubleLE(bucket.windowLimit, 32)
    found = { field: encode(bucket.name), spec }
    prepared.set(bucket, found)
  }
  return found
}

/** The header's four numbers come first in the packed argument: now, server time, expiryMargin, holdGrace. */
const HEADER = 4

/** Keys whose Redis key names are kept made; past this many the cache starts again. */
const KEY_CACHE = 10_000

/** The numbers of an answer; NaN (none) stays NaN, and `-0` is `0` (JSON cannot tell them apart). */
const doubleAt = (answer: Buffer, index: number): number => answer.readDoubleLE(8 * index) + 0

/** @internal */
export interface RawReserve {
  readonly result: RateLimiterStore.ReserveResult
  /** When the key's buckets of this call are blocked until (on the caller's clock), if they are. */
  readonly blockedUntil: number | undefined
}

/** @internal */
export const makeRaw = (redis: Redis, options: RawOptions) => {
  if (typeof (redis as unknown as Record<string, unknown>)[COMMAND] !== "function") {
    redis.defineCommand(COMMAND, { lua: SCRIPT })
  }
  const call = (redis as unknown as Record<string, Call>)[`${COMMAND}Buffer`]!.bind(redis)
  const holder = options.fairness ? options.holder : ""
  const serverTime = options.time === "server" ? 1 : 0

  /** The hash tag of each key, made once per key (a bounded cache: lines come back to the same keys). */
  const tags = new Map<string, string>()
  const tagOf = (key: string): string => {
    let tag = tags.get(key)
    if (tag === undefined) {
      if (tags.size >= KEY_CACHE) tags.clear()
      tag = `${options.prefix}{${encode(key)}}`
      tags.set(key, tag)
    }
    return tag
  }

  /** Room for the header and `count` numbers of the operation; the header written, `now` first. */
  const numbers = (now: number, count: number): Buffer => {
    const packed = Buffer.allocUnsafe(8 * (HEADER + count))
    packed.writeDoubleLE(now, 0)
    packed.writeDoubleLE(serverTime, 8)
    packed.writeDoubleLE(options.expiryMargin, 16)
    packed.writeDoubleLE(options.holdGrace, 24)
    return packed
  }

  const writeReceipts = (packed: Buffer, at: number, receipts: ReadonlyArray<Receipt | null>, count: number) => {
    for (let i = 0; i < count; i++) {
      const receipt = receipts[i]
      const offset = 8 * (at + 4 * i)
      packed.writeDoubleLE(receipt == null ? Number.NaN : receipt.paidUntil, offset)
      packed.writeDoubleLE(receipt == null ? Number.NaN : receipt.credited, offset + 8)
      packed.writeDoubleLE(receipt == null ? Number.NaN : receipt.generation, offset + 16)
      packed.writeDoubleLE(receipt == null ? Number.NaN : receipt.admission, offset + 24)
    }
  }

  const run = (
    operation: string,
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    packed: Buffer
  ): Effect.Effect<Buffer, Failure> =>
    Effect.tryPromise({
      try: () => {
        const n = buckets.length
        const tag = tagOf(key)
        // numkeys, KEYS (the hash, a chunk list per bucket), then ARGV: operation, numbers, holder, fields, specs.
        const args: Array<string | number | Buffer> = new Array(5 + 3 * n)
        args[0] = n + 1
        args[1] = tag
        args[2 + n] = operation
        args[3 + n] = packed
        args[4 + n] = holder
        for (let i = 0; i < n; i++) {
          const bucket = prepare(buckets[i]!)
          args[2 + i] = `${tag}:${bucket.field}`
          args[5 + n + i] = bucket.field
          args[5 + 2 * n + i] = bucket.spec
        }
        return call(...args)
      },
      catch: failure
    })

  const reserve = (request: RateLimiterStore.ReserveRequest): Effect.Effect<RawReserve, Failure> => {
    const n = request.buckets.length
    const packed = numbers(request.now, 3 + n)
    packed.writeDoubleLE(request.mode === "peek" ? 1 : 0, 8 * HEADER)
    packed.writeDoubleLE(request.notBefore, 8 * (HEADER + 1))
    packed.writeDoubleLE(options.fairness ? 1 : 0, 8 * (HEADER + 2))
    for (let i = 0; i < n; i++) packed.writeDoubleLE(request.costs[i]!, 8 * (HEADER + 3 + i))
    return Effect.map(run("reserve", request.key, request.buckets, packed), (answer): RawReserve => {
      const blocked = doubleAt(answer, 3)
      const blockedUntil = Number.isNaN(blocked) ? undefined : blocked
      const at = doubleAt(answer, 1)
      if (doubleAt(answer, 0) !== 1) {
        const chargeAt = doubleAt(answer, 2)
        const result: RateLimiterStore.ReserveResult = Number.isNaN(chargeAt)
          ? { at, charged: false }
          : { at, chargeAt, charged: false }
        return { result, blockedUntil }
      }
      const receipts: Array<Receipt | null> = new Array(n)
      for (let i = 0; i < n; i++) {
        const base = 4 + 4 * i
        const paidUntil = doubleAt(answer, base)
        receipts[i] = Number.isNaN(paidUntil)
          ? null
          : {
              paidUntil,
              credited: doubleAt(answer, base + 1),
              generation: doubleAt(answer, base + 2),
              admission: doubleAt(answer, base + 3)
            }
      }
      return { result: { at, charged: true, receipts }, blockedUntil }
    })
  }

  /** The header and one number per bucket (amounts). */
  const perBucket = (now: number, values: ReadonlyArray<number>, extra = 0): Buffer => {
    const packed = numbers(now, values.length + extra)
    for (let i = 0; i < values.length; i++) packed.writeDoubleLE(values[i]!, 8 * (HEADER + i))
    return packed
  }

  return {
    reserve,
    charge: (key: string, buckets: ReadonlyArray<BucketSpec>, amounts: ReadonlyArray<number>, now: number) =>
      Effect.asVoid(run("charge", key, buckets, perBucket(now, amounts))),
    refund: (
      key: string,
      buckets: ReadonlyArray<BucketSpec>,
      amounts: ReadonlyArray<number>,
      receipts: ReadonlyArray<Receipt | null>,
      now: number
    ) => {
      const packed = perBucket(now, amounts, 4 * buckets.length)
      writeReceipts(packed, HEADER + buckets.length, receipts, buckets.length)
      return Effect.map(
        run("refund", key, buckets, packed),
        (answer): ReadonlyArray<number> => buckets.map((_, i) => doubleAt(answer, i))
      )
    },
    began: (key: string, buckets: ReadonlyArray<BucketSpec>, receipts: ReadonlyArray<Receipt | null>, now: number) => {
      const packed = numbers(now, 4 * buckets.length)
      writeReceipts(packed, HEADER, receipts, buckets.length)
      return Effect.asVoid(run("began", key, buckets, packed))
    },
    /** Answers until when the bucket is blocked now (0 if it is not), on the caller's clock. */
    sync: (key: string, bucket: BucketSpec, remaining: number, resetAfter: number | undefined, now: number) =>
      Effect.map(run("sync", key, [bucket], perBucket(now, [remaining, resetAfter ?? Number.NaN])), (answer) =>
        doubleAt(answer, 0)
      ),
    block: (key: string, buckets: ReadonlyArray<BucketSpec>, until: number, now: number) =>
      Effect.asVoid(run("block", key, buckets, perBucket(now, [until]))),
    inspect: (key: string, buckets: ReadonlyArray<BucketSpec>, now: number) =>
      Effect.map(
        run("inspect", key, buckets, numbers(now, 0)),
        (answer): ReadonlyArray<RateLimiterStore.BucketSnapshot> =>
          buckets.map((bucket, i) => ({
            name: bucket.name,
            capacity: bucket.capacity,
            available: doubleAt(answer, 2 * i),
            blockedUntil: doubleAt(answer, 2 * i + 1)
          }))
      ),
    /** The keys that hold state: every hash-tagged name under the prefix, counted once. */
    size: Effect.tryPromise({
      try: async () => {
        const tags = new Set<string>()
        let cursor = "0"
        do {
          const [next, found] = await redis.scan(cursor, "MATCH", `${options.prefix}{*`, "COUNT", 1000)
          cursor = next
          for (const name of found) tags.add(name.slice(0, name.indexOf("}") + 1))
        } while (cursor !== "0")
        return tags.size
      },
      catch: failure
    })
  }
}

/** @internal */
export type RawStore = ReturnType<typeof makeRaw>
