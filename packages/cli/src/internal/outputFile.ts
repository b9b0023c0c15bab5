/**
 * The results file: append-only JSONL that survives `kill -9`.
 *
 * Recovery reads an existing file once, as a stream of bytes (never whole),
 * collects the `custom_id` of every complete line and truncates away a last
 * line without its newline: the tail of a write cut short. Such a tail is
 * dropped even when it happens to parse, so its request is simply done again.
 * Records are read by `batchOutput.ts` (OpenAI's batch output shape, or an
 * earlier Sluice's). A `custom_id` on several lines counts by its latest; with
 * `retryFailed`, a latest that failed with a retryable error (its
 * `sluice.error.retryable`, or for older records its kind) is to be done again.
 *
 * Compaction (`compact`) rewrites the file keeping only the lines asked for
 * (the latest of each done `custom_id`), those in an earlier Sluice's shape
 * rewritten in OpenAI's: into `<path>.compacting`, fsynced,
 * then renamed over the file. A rename is atomic, so after `kill -9` at any
 * moment the file is the old one or the new one, never a mix; a leftover
 * `.compacting` file is removed by the next compaction.
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
import * as BatchOutput from "./batchOutput.js"
import { RunError } from "./runError.js"

const NEWLINE = 0x0a

export interface Recovered {
  /** The `custom_id` of every complete line whose latest result stands (not to be done again). */
  readonly done: ReadonlySet<string>
  /** Complete lines found. */
  readonly lines: number
  /** Done `custom_id`s whose latest result is a failure (kept); absent: none. */
  readonly failed?: ReadonlySet<string>
  /** `custom_id`s whose latest result is a retryable failure to do again (with `retryFailed`); absent: none. */
  readonly retry?: ReadonlySet<string>
  /**
   * 0-based indexes of the complete lines to keep: the latest line of each done `custom_id` (blank lines
   * not); absent when there is no file.
   */
  readonly keep?: ReadonlySet<number>
  /** Of `keep`: the lines in an earlier Sluice's shape, to rewrite in OpenAI's (absent: none). */
  readonly legacy?: ReadonlySet<number>
  /** Bytes of a torn last line that were truncated away (0 when none). */
  readonly truncatedBytes: number
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** Reads `path` (absent: nothing done), truncating a torn last line. */
export const recover = (
  fs: FileSystem.FileSystem,
  path: string,
  options: { readonly retryFailed?: boolean | undefined } = {}
): Effect.Effect<Recovered, RunError> =>
  Effect.gen(function* () {
    const exists = yield* fs
      .exists(path)
      .pipe(Effect.mapError((error) => new RunError({ reason: "OutputUnreadable", path, detail: describe(error) })))
    if (!exists) return { done: new Set<string>(), lines: 0, truncatedBytes: 0 }
    const decoder = new TextDecoder("utf-8", { fatal: true })
    /** Each `custom_id`'s latest line (0-based) and whether that line is a failure to do again. */
    const latest = new Map<
      string,
      { readonly index: number; readonly retry: boolean; readonly failed: boolean; readonly legacy: boolean }
    >()
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
      const record = BatchOutput.read(json)
      if (record === undefined) {
        return new RunError({ reason: "OutputCorrupt", path, detail: `line ${lines} has no custom_id` })
      }
      latest.set(record.customId, {
        index: lines - 1,
        failed: record.failed,
        retry: options.retryFailed === true && record.retryable,
        legacy: record.legacy
      })
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
    const done = new Set<string>()
    const failed = new Set<string>()
    const retry = new Set<string>()
    const keep = new Set<number>()
    const legacy = new Set<number>()
    for (const [id, latestLine] of latest) {
      if (latestLine.retry) retry.add(id)
      else {
        done.add(id)
        keep.add(latestLine.index)
        if (latestLine.legacy) legacy.add(latestLine.index)
        if (latestLine.failed) failed.add(id)
      }
    }
    return { done, failed, retry, keep, legacy, lines, truncatedBytes }
  })

/** Where a compaction is: writing the new file, or about to rename it over the old. */
export type CompactionPhase = "writing" | "renaming"

/** The file compaction writes before renaming it over `path`. */
export const compactingPathFor = (path: string): string => `${path}.compacting`

/**
 * Rewrites `path` with only its complete lines whose 0-based index is in `keep`
 * (blank lines go too), those in `legacy` rewritten in OpenAI's shape,
 * atomically: a new file, fsynced, renamed over it. `pause` runs in the act
 * (the tests' way to `kill -9` it there): `"writing"` once the first lines are
 * in the new file, `"renaming"` once all are on disk, just before the rename.
 */
export const compact = (
  fs: FileSystem.FileSystem,
  path: string,
  keep: ReadonlySet<number>,
  options: {
    readonly legacy?: ReadonlySet<number> | undefined
    readonly pause?: ((phase: CompactionPhase) => Effect.Effect<void>) | undefined
  } = {}
): Effect.Effect<void, RunError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const temporary = compactingPathFor(path)
      const fail = (error: unknown) => new RunError({ reason: "OutputUnwritable", path, detail: describe(error) })
      const file = yield* fs.open(temporary, { flag: "w" }).pipe(Effect.mapError(fail))
      const legacy = options.legacy
      const decoder = new TextDecoder()
      const encoder = new TextEncoder()
      /** A line in an earlier Sluice's shape, in OpenAI's (`recover` read it: it is a JSON object). */
      const rewritten = (line: Uint8Array) =>
        encoder.encode(`${JSON.stringify(BatchOutput.fromLegacy(JSON.parse(decoder.decode(line))))}\n`)
      let index = 0
      /** Whether some lines are in the new file yet. */
      let written = false
      let pending: Array<Uint8Array> = []
      yield* fs.stream(path).pipe(
        Stream.mapError((error) => new RunError({ reason: "OutputUnreadable", path, detail: describe(error) })),
        Stream.runForEach((chunk) =>
          Effect.suspend(() => {
            const kept: Array<Uint8Array> = []
            let start = 0
            for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, start)) {
              const piece = chunk.subarray(start, at + 1)
              if (keep.has(index)) {
                if (legacy?.has(index) === true) kept.push(rewritten(concat([...pending, piece])))
                else kept.push(...pending, piece)
              }
              pending = []
              index++
              start = at + 1
            }
            if (start < chunk.length) pending.push(chunk.slice(start))
            if (kept.length === 0) return Effect.void
            const write = Effect.mapError(file.writeAll(concat(kept)), fail)
            if (options.pause === undefined || written) return write
            written = true
            return Effect.zipRight(write, options.pause("writing"))
          })
        )
      )
      yield* Effect.mapError(file.sync, fail)
      if (options.pause !== undefined) yield* options.pause("renaming")
      yield* Effect.mapError(fs.rename(temporary, path), fail)
      // The rename itself to disk: fsync the directory (where the platform allows; a failure only loses durability).
      const slash = path.lastIndexOf("/")
      const directory = slash <= 0 ? (slash === 0 ? "/" : ".") : path.slice(0, slash)
      yield* Effect.ignore(Effect.scoped(Effect.flatMap(fs.open(directory, { flag: "r" }), (handle) => handle.sync)))
    })
  )

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
