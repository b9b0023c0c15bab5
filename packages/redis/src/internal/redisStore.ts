/**
 * The store's calls to Redis: each operation is one call of the script in
 * `script.ts` (by SHA, with ioredis's `NOSCRIPT` fallback), its arguments as
 * exact decimal strings, its keys declared and hash-tagged, under the client's deadline.
 * Answers are decoded back into the plain values of the store contract.
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

type Call = (...args: Array<string | number>) => Promise<Array<string>>

/** The number a string answer holds; `-0` and `+0` are both `0` (JSON cannot tell them apart). */
const num = (text: string): number => Number(text) + 0

/** Encodes a key or bucket name so that it can hold no `{`, `}` (the hash tag) nor `:` (our separator). */
const encode = (name: string): string => encodeURIComponent(name)

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
  const call = (redis as unknown as Record<string, Call>)[COMMAND]!.bind(redis)
  const tag = (key: string) => `${options.prefix}{${encode(key)}}`

  const keysOf = (key: string, buckets: ReadonlyArray<BucketSpec>): Array<string> => {
    const keys: Array<string> = []
    for (const bucket of buckets) {
      const hash = `${tag(key)}:${encode(bucket.name)}`
      keys.push(hash, `${hash}:log`)
    }
    return keys
  }

  /** One argument per bucket (fewer arguments: less to write and to read on both sides). */
  const specArgs = (buckets: ReadonlyArray<BucketSpec>): Array<string> =>
    buckets.map((b) => `${b.capacity} ${b.emission} ${b.interval} ${b.windowMargin} ${b.windowLimit}`)

  const receiptArgs = (buckets: ReadonlyArray<BucketSpec>, receipts: ReadonlyArray<Receipt | null>) => {
    const args: Array<string> = []
    for (let i = 0; i < buckets.length; i++) {
      const receipt = receipts[i]
      if (receipt == null) args.push("")
      else
        args.push(
          String(receipt.paidUntil),
          String(receipt.credited),
          String(receipt.generation),
          String(receipt.admission)
        )
    }
    return args
  }

  const run = (
    operation: string,
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    now: number,
    rest: ReadonlyArray<string>
  ): Effect.Effect<Array<string>, Failure> => {
    const keys = keysOf(key, buckets)
    return Effect.tryPromise({
      try: () =>
        call(
          keys.length,
          ...keys,
          operation,
          String(now),
          options.time,
          String(options.expiryMargin),
          String(buckets.length),
          options.fairness ? options.holder : "",
          String(options.holdGrace),
          ...specArgs(buckets),
          ...rest
        ),
      catch: failure
    })
  }

  const reserve = (request: RateLimiterStore.ReserveRequest): Effect.Effect<RawReserve, Failure> =>
    Effect.map(
      run("reserve", request.key, request.buckets, request.now, [
        request.mode,
        String(request.notBefore),
        options.fairness ? "1" : "0",
        ...request.costs.map(String)
      ]),
      (answer): RawReserve => {
        const blockedUntil = answer[3] === "" || answer[3] === undefined ? undefined : num(answer[3])
        if (answer[0] !== "1") {
          const result: RateLimiterStore.ReserveResult =
            answer[2] === ""
              ? { at: num(answer[1]!), charged: false }
              : {
                  at: num(answer[1]!),
                  chargeAt: num(answer[2]!),
                  charged: false
                }
          return { result, blockedUntil }
        }
        const receipts: Array<Receipt | null> = []
        for (let i = 0; i < request.buckets.length; i++) {
          const base = 4 + i * 4
          receipts.push(
            answer[base] === ""
              ? null
              : {
                  paidUntil: num(answer[base]!),
                  credited: num(answer[base + 1]!),
                  generation: num(answer[base + 2]!),
                  admission: num(answer[base + 3]!)
                }
          )
        }
        return { result: { at: num(answer[1]!), charged: true, receipts }, blockedUntil }
      }
    )

  return {
    reserve,
    charge: (key: string, buckets: ReadonlyArray<BucketSpec>, amounts: ReadonlyArray<number>, now: number) =>
      Effect.asVoid(run("charge", key, buckets, now, amounts.map(String))),
    refund: (
      key: string,
      buckets: ReadonlyArray<BucketSpec>,
      amounts: ReadonlyArray<number>,
      receipts: ReadonlyArray<Receipt | null>,
      now: number
    ) =>
      Effect.map(
        run("refund", key, buckets, now, [...amounts.map(String), ...receiptArgs(buckets, receipts)]),
        (answer): ReadonlyArray<number> => answer.map(num)
      ),
    began: (key: string, buckets: ReadonlyArray<BucketSpec>, receipts: ReadonlyArray<Receipt | null>, now: number) =>
      Effect.asVoid(run("began", key, buckets, now, receiptArgs(buckets, receipts))),
    /** Answers until when the bucket is blocked now (0 if it is not), on the caller's clock. */
    sync: (key: string, bucket: BucketSpec, remaining: number, resetAfter: number | undefined, now: number) =>
      Effect.map(
        run("sync", key, [bucket], now, [String(remaining), resetAfter === undefined ? "" : String(resetAfter)]),
        (answer) => num(answer[0]!)
      ),
    block: (key: string, buckets: ReadonlyArray<BucketSpec>, until: number, now: number) =>
      Effect.asVoid(run("block", key, buckets, now, [String(until)])),
    inspect: (key: string, buckets: ReadonlyArray<BucketSpec>, now: number) =>
      Effect.map(
        run("inspect", key, buckets, now, []),
        (answer): ReadonlyArray<RateLimiterStore.BucketSnapshot> =>
          buckets.map((bucket, i) => ({
            name: bucket.name,
            capacity: bucket.capacity,
            available: num(answer[2 * i]!),
            blockedUntil: num(answer[2 * i + 1]!)
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
