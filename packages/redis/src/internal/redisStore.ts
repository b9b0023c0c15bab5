/**
 * The store's calls to Redis: each operation is one call of the script in
 * `script.ts` by SHA, its numbers packed as IEEE doubles in one argument
 * (exact, and no text to format or parse on either side), its keys declared
 * and hash-tagged, under the client's deadline.
 *
 * What ioredis gives: the connection, the per-command deadline
 * (`commandTimeout`), the reply parser, failing at once while disconnected.
 * What this module adds: the call's bytes on the wire (RESP), made here in
 * one Buffer from parts made once (per bucket list: its fields and packed
 * specs; per key: its Redis keys, a bounded cache; per operation) with the
 * call's numbers written in place; the `NOSCRIPT` fallback (the script sent
 * whole, then the call goes on); writes of one turn of the event loop sent
 * in one system call (the socket corked until the turn ends). ioredis's own
 * script commands and auto-pipelining did the same per call with several
 * promises, a pipeline object and an argument list converted piece by piece:
 * about twice the CPU of the rest of an admission. Answers come back as
 * packed doubles (NaN for "none") and are decoded once, into the plain values
 * of the store contract. A reserve can be started with a callback
 * (`startReserve`), for a caller that makes its own `Effect.async` around it.
 *
 * Failures come out as one of three kinds: `Unavailable` (no connection,
 * Redis loading or read-only) and `Deadline` (no answer in time): the outage
 * policy decides; and
 * `Reply` (Redis answered with an error of the script: a bug, never hidden
 * behind the outage policy).
 *
 * @internal
 */

import { createHash } from "node:crypto"
import type { RateLimiterStore } from "@sluice/core"
import * as Effect from "effect/Effect"
import { Command, type Redis } from "ioredis"
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

/** Encodes a key or bucket name so that it can hold no `{`, `}` (the hash tag) nor `:` (our separator). */
const encode = (name: string): string => encodeURIComponent(name)

const CRLF = Buffer.from("\r\n")

/** A RESP bulk string: its length, its bytes. */
const bulk = (value: string | Buffer): Buffer => {
  const bytes = typeof value === "string" ? Buffer.from(value) : value
  return Buffer.concat([Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF])
}

/** What the script needs of a bucket that never changes: its field name, and its field and spec as bulks. */
interface PreparedBucket {
  readonly field: string
  /** The field name and the spec (capacity, emission, interval, windowMargin, windowLimit packed), as bulks. */
  readonly fieldBulk: Buffer
  readonly specBulk: Buffer
}

const prepared = new WeakMap<BucketSpec, PreparedBucket>()

/** A bucket's spec as the script reads it (`ARGV[3 + n + i]`): five little-endian doubles. */
export const packSpec = (bucket: BucketSpec): Buffer => {
  const spec = Buffer.alloc(40)
  spec.writeDoubleLE(bucket.capacity, 0)
  spec.writeDoubleLE(bucket.emission, 8)
  spec.writeDoubleLE(bucket.interval, 16)
  spec.writeDoubleLE(bucket.windowMargin, 24)
  spec.writeDoubleLE(bucket.windowLimit, 32)
  return spec
}

const prepare = (bucket: BucketSpec): PreparedBucket => {
  let found = prepared.get(bucket)
  if (found === undefined) {
    const spec = packSpec(bucket)
    const field = encode(bucket.name)
    found = { field, fieldBulk: bulk(field), specBulk: bulk(spec) }
    prepared.set(bucket, found)
  }
  return found
}

/**
 * What follows the numbers in every call on the same buckets: the holder, each bucket's field name, each
 * one's spec (RESP bulks, made once per bucket list: the limiter passes the same one every time).
 */
const tails = new WeakMap<ReadonlyArray<BucketSpec>, Map<string, Buffer>>()

/** The header's four numbers come first in the packed argument: now, server time, expiryMargin, holdGrace. */
const HEADER = 4

/** Keys whose framed Redis keys are kept; past this many the cache starts again. */
const KEY_CACHE = 10_000

/** The numbers of an answer; NaN (none) stays NaN, and `-0` is `0` (JSON cannot tell them apart). */
const doubleAt = (answer: Buffer, index: number): number => answer.readDoubleLE(8 * index) + 0

/** @internal */
export interface RawReserve {
  readonly result: RateLimiterStore.ReserveResult
  /** When the key's buckets of this call are blocked until (on the caller's clock), if they are. */
  readonly blockedUntil: number | undefined
}

/** How a call started by callback answers: a failure, or the decoded answer. */
type Answer<A> = (failure: Failure | undefined, answer: A | undefined) => void

/** The answer as the Buffer Redis sent (packed doubles), not decoded as text. */
const BUFFER_REPLY = { replyEncoding: null }

/**
 * The script's call as ioredis sends it: a command whose bytes on the wire (RESP) are made here, in one
 * Buffer, from parts made once per key and per bucket list, the call's numbers written into it in place.
 * ioredis still does the rest: the per-command deadline (`commandTimeout`), the reply parsing, failing at
 * once while disconnected. `args` stays empty (the frame is the command): `RedisClient` is one
 * connection, so nothing routes by key (a Cluster client would need the call's slot here).
 */
class ScriptCall extends Command {
  constructor(readonly frame: Buffer) {
    super("evalsha", [], BUFFER_REPLY)
  }
  override toWritable(): Buffer {
    return this.frame
  }
}

/** @internal */
export const makeRaw = (redis: Redis, options: RawOptions) => {
  const holder = options.fairness ? options.holder : ""
  const serverTime = options.time === "server" ? 1 : 0
  const holderBulk = bulk(holder)
  const scriptBulk = bulk(SCRIPT)
  const shaBulk = bulk(createHash("sha1").update(SCRIPT).digest("hex"))

  /** `*<count>` and `EVALSHA <sha>` (or `EVAL <script>`) for a call on `n` buckets, made once per `n`. */
  const heads = new Map<number, Buffer>()
  const headOf = (n: number): Buffer => {
    let head = heads.get(n)
    if (head === undefined) {
      // EVALSHA sha numkeys, the keys (the hash, a chunk list per bucket), operation, numbers, holder, fields, specs.
      head = Buffer.concat([Buffer.from(`*${7 + 3 * n}\r\n`), bulk("evalsha"), shaBulk])
      heads.set(n, head)
    }
    return head
  }
  const evalHead = (n: number): Buffer => Buffer.concat([Buffer.from(`*${7 + 3 * n}\r\n`), bulk("eval"), scriptBulk])

  /**
   * numkeys and the key's Redis keys (its hash, a chunk list per bucket) as bulks, made once per key and
   * bucket list (a key is asked with its limiter's list, or one bucket of it: `sync`).
   */
  const keyParts = new Map<string, Map<ReadonlyArray<BucketSpec>, Buffer>>()
  const keysOf = (key: string, buckets: ReadonlyArray<BucketSpec>): Buffer => {
    let byBuckets = keyParts.get(key)
    const found = byBuckets?.get(buckets)
    if (found !== undefined) return found
    if (byBuckets === undefined) {
      if (keyParts.size >= KEY_CACHE) keyParts.clear()
      byBuckets = new Map()
      keyParts.set(key, byBuckets)
    }
    const tag = `${options.prefix}{${encode(key)}}`
    const parts = [bulk(String(buckets.length + 1)), bulk(tag)]
    for (const bucket of buckets) parts.push(bulk(`${tag}:${prepare(bucket).field}`))
    const bulks = Buffer.concat(parts)
    byBuckets.set(buckets, bulks)
    return bulks
  }

  /** A bucket alone, as a list made once (so that its parts are made once too). */
  const singles = new WeakMap<BucketSpec, ReadonlyArray<BucketSpec>>()
  const single = (bucket: BucketSpec): ReadonlyArray<BucketSpec> => {
    let list = singles.get(bucket)
    if (list === undefined) {
      list = [bucket]
      singles.set(bucket, list)
    }
    return list
  }

  /** The operation and the numbers' length as bulk headers: `$<len>\r\n<op>\r\n$<bytes>\r\n`, made once each. */
  const operationParts = new Map<string, Buffer>()
  const operationOf = (operation: string, count: number): Buffer => {
    const name = `${operation} ${count}`
    let part = operationParts.get(name)
    if (part === undefined) {
      part = Buffer.concat([bulk(operation), Buffer.from(`$${8 * (HEADER + count)}\r\n`)])
      operationParts.set(name, part)
    }
    return part
  }

  const tailOf = (buckets: ReadonlyArray<BucketSpec>): Buffer => {
    let byHolder = tails.get(buckets)
    if (byHolder === undefined) {
      byHolder = new Map()
      tails.set(buckets, byHolder)
    }
    let tail = byHolder.get(holder)
    if (tail === undefined) {
      const fields = buckets.map((bucket) => prepare(bucket).fieldBulk)
      const specs = buckets.map((bucket) => prepare(bucket).specBulk)
      tail = Buffer.concat([CRLF, holderBulk, ...fields, ...specs])
      byHolder.set(holder, tail)
    }
    return tail
  }

  /**
   * The call's frame, every part in place but its numbers: the header's four (now first) written, the
   * operation's `count` to be written from `numbersAt + 8 * HEADER`.
   */
  const frameOf = (operation: string, key: string, buckets: ReadonlyArray<BucketSpec>, now: number, count: number) => {
    const head = headOf(buckets.length)
    const keys = keysOf(key, buckets)
    const op = operationOf(operation, count)
    const tail = tailOf(buckets)
    const numbersAt = head.length + keys.length + op.length
    const frame = Buffer.allocUnsafe(numbersAt + 8 * (HEADER + count) + tail.length)
    head.copy(frame, 0)
    keys.copy(frame, head.length)
    op.copy(frame, head.length + keys.length)
    tail.copy(frame, numbersAt + 8 * (HEADER + count))
    frame.writeDoubleLE(now, numbersAt)
    frame.writeDoubleLE(serverTime, numbersAt + 8)
    frame.writeDoubleLE(options.expiryMargin, numbersAt + 16)
    frame.writeDoubleLE(options.holdGrace, numbersAt + 24)
    return { frame, numbers: numbersAt + 8 * HEADER }
  }

  /**
   * Writes made in one turn of the event loop leave in one system call: the socket is corked at the first
   * and uncorked once the turn's callbacks have run (`process.nextTick`, as Node's documentation has it
   * for `cork`), so the callers resumed by one read of answers send their next calls together.
   */
  let corked = false
  const uncork = (stream: Redis["stream"]) => {
    corked = false
    stream.uncork()
  }

  /**
   * Sends a frame. A script Redis does not hold (`NOSCRIPT`: after a restart, a failover, `SCRIPT FLUSH`)
   * is sent again whole (`EVAL`, which loads it), and the call goes on.
   */
  const send = (frame: Buffer, buckets: number, answered: (error: unknown, answer: Buffer | undefined) => void) => {
    const stream = redis.stream
    if (!corked && stream !== undefined && stream !== null) {
      corked = true
      stream.cork()
      process.nextTick(uncork, stream)
    }
    const command = new ScriptCall(frame)
    ;(redis.sendCommand(command) as Promise<Buffer>).then(
      (answer) => answered(undefined, answer),
      (error: unknown) => {
        if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) return answered(error, undefined)
        const head = headOf(buckets).length
        const whole = new ScriptCall(Buffer.concat([evalHead(buckets), frame.subarray(head)]))
        ;(redis.sendCommand(whole) as Promise<Buffer>).then(
          (answer) => answered(undefined, answer),
          (error: unknown) => answered(error, undefined)
        )
      }
    )
  }

  /** One call as an Effect: sent when it runs, its answer decoded by `decode`. */
  const run = <A>(buckets: number, build: () => Buffer, decode: (answer: Buffer) => A): Effect.Effect<A, Failure> =>
    Effect.async<A, Failure>((resume) => {
      send(build(), buckets, (error, answer) =>
        resume(error === undefined ? Effect.succeed(decode(answer!)) : Effect.fail(failure(error)))
      )
    })

  const writeReceipts = (frame: Buffer, at: number, receipts: ReadonlyArray<Receipt | null>, count: number): void => {
    for (let i = 0; i < count; i++) {
      const receipt = receipts[i]
      const offset = at + 32 * i
      frame.writeDoubleLE(receipt == null ? Number.NaN : receipt.paidUntil, offset)
      frame.writeDoubleLE(receipt == null ? Number.NaN : receipt.credited, offset + 8)
      frame.writeDoubleLE(receipt == null ? Number.NaN : receipt.generation, offset + 16)
      frame.writeDoubleLE(receipt == null ? Number.NaN : receipt.admission, offset + 24)
    }
  }

  /** A reserve's answer, decoded in one pass. */
  const decodeReserve = (answer: Buffer, n: number): RawReserve => {
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
  }

  const reserveFrame = (request: RateLimiterStore.ReserveRequest): Buffer => {
    const n = request.buckets.length
    const { frame, numbers } = frameOf("reserve", request.key, request.buckets, request.now, 3 + n)
    frame.writeDoubleLE(request.mode === "peek" ? 1 : 0, numbers)
    frame.writeDoubleLE(request.notBefore, numbers + 8)
    frame.writeDoubleLE(options.fairness ? 1 : 0, numbers + 16)
    for (let i = 0; i < n; i++) frame.writeDoubleLE(request.costs[i]!, numbers + 24 + 8 * i)
    return frame
  }

  /**
   * Starts a reserve now; `answered` gets its outcome. For a caller that makes its own Effect around the
   * call (the store's usual path: one `Effect.async`, nothing else).
   */
  const startReserve = (request: RateLimiterStore.ReserveRequest, answered: Answer<RawReserve>): void => {
    const n = request.buckets.length
    send(reserveFrame(request), n, (error, answer) => {
      if (error !== undefined) return answered(failure(error), undefined)
      answered(undefined, decodeReserve(answer!, n))
    })
  }

  /** The header and one number per bucket (amounts), and `extra` more to be written. */
  const perBucket = (
    operation: string,
    key: string,
    buckets: ReadonlyArray<BucketSpec>,
    now: number,
    values: ReadonlyArray<number>,
    extra = 0
  ) => {
    const built = frameOf(operation, key, buckets, now, values.length + extra)
    for (let i = 0; i < values.length; i++) built.frame.writeDoubleLE(values[i]!, built.numbers + 8 * i)
    return built
  }

  const none = () => undefined

  return {
    startReserve,
    reserve: (request: RateLimiterStore.ReserveRequest): Effect.Effect<RawReserve, Failure> =>
      run(
        request.buckets.length,
        () => reserveFrame(request),
        (answer) => decodeReserve(answer, request.buckets.length)
      ),
    charge: (key: string, buckets: ReadonlyArray<BucketSpec>, amounts: ReadonlyArray<number>, now: number) =>
      run(buckets.length, () => perBucket("charge", key, buckets, now, amounts).frame, none),
    refund: (
      key: string,
      buckets: ReadonlyArray<BucketSpec>,
      amounts: ReadonlyArray<number>,
      receipts: ReadonlyArray<Receipt | null>,
      now: number
    ) =>
      run(
        buckets.length,
        () => {
          const { frame, numbers } = perBucket("refund", key, buckets, now, amounts, 4 * buckets.length)
          writeReceipts(frame, numbers + 8 * buckets.length, receipts, buckets.length)
          return frame
        },
        (answer): ReadonlyArray<number> => buckets.map((_, i) => doubleAt(answer, i))
      ),
    began: (key: string, buckets: ReadonlyArray<BucketSpec>, receipts: ReadonlyArray<Receipt | null>, now: number) =>
      run(
        buckets.length,
        () => {
          const { frame, numbers } = frameOf("began", key, buckets, now, 4 * buckets.length)
          writeReceipts(frame, numbers, receipts, buckets.length)
          return frame
        },
        none
      ),
    /** Answers until when the bucket is blocked now (0 if it is not), on the caller's clock. */
    sync: (key: string, bucket: BucketSpec, remaining: number, resetAfter: number | undefined, now: number) =>
      run(
        1,
        () => perBucket("sync", key, single(bucket), now, [remaining, resetAfter ?? Number.NaN]).frame,
        (answer) => doubleAt(answer, 0)
      ),
    block: (key: string, buckets: ReadonlyArray<BucketSpec>, until: number, now: number) =>
      run(buckets.length, () => perBucket("block", key, buckets, now, [until]).frame, none),
    inspect: (key: string, buckets: ReadonlyArray<BucketSpec>, now: number) =>
      run(
        buckets.length,
        () => frameOf("inspect", key, buckets, now, 0).frame,
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
