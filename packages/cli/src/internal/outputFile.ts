/**
 * The results file: append-only JSONL that survives `kill -9`.
 *
 * Recovery reads an existing file once, as a stream of bytes (never whole),
 * collects the `custom_id` of every complete line and truncates away a last
 * line without its newline: the tail of a write cut short. Such a tail is
 * dropped even when it happens to parse, so its request is simply done again.
 *
 * The writer appends each result as one `JSON.stringify(...) + "\n"` under a
 * mutex, uninterruptibly (an interrupt never leaves half a line), and fsyncs
 * every `syncEvery` lines, every `syncInterval`, and when its scope closes.
 * An fsync takes no lock: appends go on while one runs, and the next takes them.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { RunError } from "./runError.js"

const NEWLINE = 0x0a

export interface Recovered {
  /** The `custom_id` of every complete line. */
  readonly done: ReadonlySet<string>
  /** Complete lines found. */
  readonly lines: number
  /** Bytes of a torn last line that were truncated away (0 when none). */
  readonly truncatedBytes: number
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** Reads `path` (absent: nothing done), truncating a torn last line. */
export const recover = (fs: FileSystem.FileSystem, path: string): Effect.Effect<Recovered, RunError> =>
  Effect.gen(function* () {
    const exists = yield* fs
      .exists(path)
      .pipe(Effect.mapError((error) => new RunError({ reason: "OutputUnreadable", path, detail: describe(error) })))
    if (!exists) return { done: new Set<string>(), lines: 0, truncatedBytes: 0 }
    const decoder = new TextDecoder("utf-8", { fatal: true })
    const done = new Set<string>()
    let lines = 0
    let size = 0
    /** Bytes up to and including the last newline seen. */
    let completeBytes = 0
    let pending: Array<Uint8Array> = []
    const completeLine = (bytes: Uint8Array): RunError | undefined => {
      lines++
      let text: string
      let json: unknown
      try {
        text = decoder.decode(bytes)
        if (text.trim() === "") return undefined
        json = JSON.parse(text)
      } catch {
        return new RunError({ reason: "OutputCorrupt", path, detail: `line ${lines} is not JSON` })
      }
      const id = (json as { custom_id?: unknown } | null)?.custom_id
      if (typeof id !== "string") {
        return new RunError({ reason: "OutputCorrupt", path, detail: `line ${lines} has no custom_id` })
      }
      done.add(id)
      return undefined
    }
    yield* fs.stream(path).pipe(
      Stream.mapError((error) => new RunError({ reason: "OutputUnreadable", path, detail: describe(error) })),
      Stream.runForEach((chunk) => {
        let start = 0
        for (let index = chunk.indexOf(NEWLINE); index !== -1; index = chunk.indexOf(NEWLINE, start)) {
          const piece = chunk.subarray(start, index)
          const bytes = pending.length === 0 ? piece : concat([...pending, piece])
          pending = []
          const failure = completeLine(bytes)
          if (failure !== undefined) return Effect.fail(failure)
          start = index + 1
          completeBytes = size + start
        }
        if (start < chunk.length) pending.push(chunk.slice(start))
        size += chunk.length
        return Effect.void
      })
    )
    const truncatedBytes = size - completeBytes
    if (truncatedBytes > 0) {
      yield* fs
        .truncate(path, completeBytes)
        .pipe(Effect.mapError((error) => new RunError({ reason: "OutputUnwritable", path, detail: describe(error) })))
    }
    return { done, lines, truncatedBytes }
  })

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

export interface Writer {
  /** Appends `JSON.stringify(value) + "\n"` as one write. */
  readonly append: (value: unknown) => Effect.Effect<void, RunError>
  /** Flushes to disk what was appended so far. */
  readonly sync: Effect.Effect<void, RunError>
}

export interface WriterOptions {
  /** `"a"` appends (the results); `"w"` starts the file afresh. */
  readonly flag: "a" | "w"
  readonly syncEvery?: number | undefined
  readonly syncInterval?: Duration.DurationInput | undefined
}

/** Opens `path` for the life of the scope; closing the scope syncs, then closes it. */
export const makeWriter = (
  fs: FileSystem.FileSystem,
  path: string,
  options: WriterOptions
): Effect.Effect<Writer, RunError, Scope.Scope> =>
  Effect.gen(function* () {
    const fail = (error: unknown) => new RunError({ reason: "OutputUnwritable", path, detail: describe(error) })
    const file = yield* fs.open(path, { flag: options.flag }).pipe(Effect.mapError(fail))
    const mutex = yield* Effect.makeSemaphore(1)
    const encoder = new TextEncoder()
    const syncEvery = options.syncEvery ?? 256
    /** Lines written, and lines an fsync that ended has covered. */
    let written = 0
    let synced = 0
    let syncing = 0
    /**
     * An fsync of what is written so far. It holds no lock: appends go on meanwhile and the next fsync
     * takes them, so a slow disk never holds up the lines waiting to write, nor, through them, the run.
     * A line counts as synced only once an fsync begun after it ended, so `sync` is a barrier even
     * while another fsync is under way, and a failed fsync leaves its lines to the next.
     */
    const syncNow = Effect.suspend(() => {
      const upTo = written
      if (upTo <= synced) return Effect.void
      syncing++
      return Effect.mapError(file.sync, fail).pipe(
        Effect.zipRight(
          Effect.sync(() => {
            synced = Math.max(synced, upTo)
          })
        ),
        Effect.ensuring(
          Effect.sync(() => {
            syncing--
          })
        )
      )
    })
    const sync = Effect.uninterruptible(syncNow)
    // Registered after `open`, so it runs before the file is closed.
    yield* Effect.addFinalizer(() => Effect.ignore(sync))
    yield* Effect.forkScoped(
      Effect.repeat(Effect.ignore(sync), Schedule.spaced(Duration.decode(options.syncInterval ?? "1 second")))
    )
    const append = (value: unknown) =>
      Effect.uninterruptible(
        Effect.zipRight(
          mutex.withPermits(1)(
            Effect.flatMap(Effect.mapError(file.writeAll(encoder.encode(`${JSON.stringify(value)}\n`)), fail), () =>
              Effect.sync(() => {
                written++
              })
            )
          ),
          // Every `syncEvery` lines, unless an fsync is already under way (the next will take these too).
          Effect.suspend(() => (written - synced >= syncEvery && syncing === 0 ? syncNow : Effect.void))
        )
      )
    return { append, sync }
  })
