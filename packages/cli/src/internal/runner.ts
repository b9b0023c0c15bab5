/**
 * The runner's machinery. The input flows through three stages:
 * 1. read: the file as bytes → text → lines, numbered, halted by `stop`;
 * 2. classify, one line at a time in input order (so "first occurrence wins"
 *    is well defined): blank → nothing; unreadable or repeated → malformed
 *    (reported and written to the errors file); already in the output →
 *    skipped; else → to send;
 * 3. send, `concurrency` at a time, each result appended as it finishes.
 * A stage-3 line that has not started when `stop` completes is left for the
 * next run (it is not sent). A send failing with a reason other than
 * `SendFailed`, or `halt` completing, stops the run at once: what is in
 * flight is interrupted and not written.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Runner from "../Runner.js"
import { RunStats } from "../RunStats.js"
import * as BatchLine from "./batchLine.js"
import * as BatchOutput from "./batchOutput.js"
import { isRetryableKind } from "./failureKind.js"
import * as OutputFile from "./outputFile.js"
import * as OutputLock from "./outputLock.js"
import { RunError } from "./runError.js"

export const errorsPathFor = (output: string): string => `${output}.errors.jsonl`

const DEFAULT_DRAIN_TIMEOUT = Duration.seconds(30)

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** The input's lines, numbered from 1, as a stream (`\n` or `\r\n`). */
const inputLines = (fs: FileSystem.FileSystem, path: string) =>
  fs.stream(path).pipe(
    Stream.decodeText(),
    Stream.splitLines,
    Stream.zipWithIndex,
    Stream.mapError((error) => new RunError({ reason: "InputUnreadable", path, detail: describe(error) }))
  )

type Classified =
  | { readonly _tag: "Blank" }
  | { readonly _tag: "Skipped"; readonly failed: boolean }
  | { readonly _tag: "Malformed"; readonly malformed: Runner.Malformed }
  | { readonly _tag: "Send"; readonly line: Runner.BatchLine }

const classifier = (done: ReadonlySet<string>, failed: ReadonlySet<string> | undefined) => {
  /** The line each valid `custom_id` first appeared on. */
  const firstSeen = new Map<string, number>()
  return (text: string, lineNumber: number): Classified => {
    if (text.trim() === "") return { _tag: "Blank" }
    const verdict = BatchLine.parse(text, lineNumber)
    if (verdict._tag === "Malformed") {
      return {
        _tag: "Malformed",
        malformed: {
          lineNumber,
          reason: verdict.reason,
          ...(verdict.customId === undefined ? {} : { customId: verdict.customId })
        }
      }
    }
    const { customId } = verdict.line
    const first = firstSeen.get(customId)
    if (first !== undefined) {
      return {
        _tag: "Malformed",
        malformed: { lineNumber, customId, reason: `duplicate custom_id (first on line ${first})` }
      }
    }
    firstSeen.set(customId, lineNumber)
    return done.has(customId)
      ? { _tag: "Skipped", failed: failed?.has(customId) === true }
      : { _tag: "Send", line: verdict.line }
  }
}

export const run = (
  options: Runner.RunOptions,
  send: Runner.Send
): Effect.Effect<Runner.Summary, RunError, FileSystem.FileSystem | Path.Path | RunStats> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const stats = yield* RunStats
    const clock = yield* Effect.clock
    const scope = yield* Effect.scope
    const errorsPath = options.errors ?? errorsPathFor(options.output)

    const resolved = {
      input: path.resolve(options.input),
      output: path.resolve(options.output),
      errors: path.resolve(errorsPath)
    }
    if (resolved.input === resolved.output)
      return yield* new RunError({ reason: "SamePath", path: options.output, detail: "The input and the output" })
    if (resolved.errors === resolved.output || resolved.errors === resolved.input)
      return yield* new RunError({ reason: "SamePath", path: errorsPath, detail: "The errors file and another file" })
    const inputExists = yield* fs
      .exists(options.input)
      .pipe(
        Effect.mapError(
          (error) => new RunError({ reason: "InputUnreadable", path: options.input, detail: describe(error) })
        )
      )
    if (!inputExists)
      return yield* new RunError({ reason: "InputUnreadable", path: options.input, detail: "no such file" })

    // ---- lock and resume ------------------------------------------------------

    yield* OutputLock.acquire(fs, options.output)
    yield* Effect.ignore(fs.remove(OutputFile.compactingPathFor(options.output), { force: true }))
    const recovered = yield* OutputFile.recover(fs, options.output, { retryFailed: options.retryFailed })
    // One line per custom_id, its latest, with the failures to do again taken out before they are redone.
    // An earlier Sluice's records are rewritten in OpenAI's shape by the same compaction.
    if (
      recovered.keep !== undefined &&
      (recovered.lines > recovered.keep.size || (recovered.legacy !== undefined && recovered.legacy.size > 0))
    ) {
      yield* OutputFile.compact(fs, options.output, recovered.keep, {
        legacy: recovered.legacy,
        pause: options.onCompaction
      })
    }
    const writerOptions = { syncEvery: options.syncEvery, syncInterval: options.syncInterval }
    const output = yield* OutputFile.makeWriter(fs, options.output, { flag: "a", ...writerOptions })
    // The errors file describes this run's reading of the input: an old one is removed, a new one made on demand.
    yield* fs
      .remove(errorsPath, { force: true })
      .pipe(
        Effect.mapError(
          (error) => new RunError({ reason: "OutputUnwritable", path: errorsPath, detail: describe(error) })
        )
      )
    const errorsFile = yield* Effect.cached(
      Scope.extend(OutputFile.makeWriter(fs, errorsPath, { flag: "w", ...writerOptions }), scope)
    )

    // The total, counted alongside the work (a second read of the input, line by line).
    yield* Effect.forkScoped(
      inputLines(fs, options.input).pipe(
        Stream.runFold(0, (count, [text]) => (text.trim() === "" ? count : count + 1)),
        Effect.flatMap(stats.setTotal),
        Effect.ignore
      )
    )

    // ---- stop and abort -----------------------------------------------------

    const stopped = yield* Deferred.make<void>()
    const stop = options.stop ?? Effect.never
    yield* Effect.forkScoped(Effect.zipRight(stop, Deferred.succeed(stopped, undefined)))
    /** The run must stop at once: a line's sender said so (its error), or `halt` did. */
    const halted = yield* Deferred.make<RunError>()
    if (options.halt !== undefined) {
      yield* Effect.forkScoped(Effect.flatMap(options.halt, (error) => Deferred.succeed(halted, error)))
    }

    // ---- the stages -----------------------------------------------------------

    const classify = classifier(recovered.done, recovered.failed)
    /** Skipped lines whose kept result is a failure. */
    let keptFailed = 0

    const report = (malformed: Runner.Malformed) =>
      Effect.gen(function* () {
        const file = yield* errorsFile
        yield* file.append(BatchOutput.malformed(malformed.lineNumber, malformed.reason, malformed.customId))
        yield* stats.lineSettled("malformed")
        if (options.onMalformed !== undefined) yield* options.onMalformed(malformed)
      })

    const sendLine = (line: Runner.BatchLine) =>
      Effect.gen(function* () {
        if (yield* Deferred.isDone(stopped)) return
        const startedAt = clock.unsafeCurrentTimeMillis()
        const result = yield* send(line).pipe(
          Effect.catchAllDefect((defect) =>
            Effect.fail(
              new RunError({ reason: "SendFailed", errorKind: "Defect", detail: describe(defect), attempts: 1 })
            )
          ),
          Effect.either
        )
        const finishedAt = clock.unsafeCurrentTimeMillis()
        const timing = { line: line.lineNumber, startedAt, finishedAt }
        if (result._tag === "Right") {
          const { usage } = result.right
          yield* output.append(
            BatchOutput.succeeded(
              line.customId,
              {
                statusCode: result.right.statusCode ?? 200,
                requestId: result.right.requestId,
                body: result.right.response
              },
              { ...timing, attempts: result.right.attempts, usage }
            )
          )
          if (usage !== undefined) yield* stats.tokensUsed(usage)
          yield* stats.lineFinished("succeeded")
        } else {
          const failure = result.left
          if (failure.reason !== "SendFailed") {
            // The run stops at once; this line (and every other in flight) stays untouched.
            yield* Deferred.succeed(halted, failure)
            return yield* Effect.never
          }
          yield* output.append(
            BatchOutput.failed(
              line.customId,
              {
                kind: failure.errorKind ?? failure.reason,
                message: failure.detail,
                reason: failure.label,
                status: failure.status,
                requestId: failure.requestId,
                retryable: failure.retryable ?? isRetryableKind(failure.errorKind)
              },
              { ...timing, attempts: failure.attempts ?? 1 }
            )
          )
          yield* stats.lineFinished("failed", failure.label ?? failure.errorKind ?? "failed")
        }
      })

    const work = inputLines(fs, options.input).pipe(
      Stream.haltWhen(Deferred.await(stopped)),
      Stream.map(([text, index]) => classify(text, index + 1)),
      Stream.tap((classified) =>
        classified._tag === "Malformed"
          ? report(classified.malformed)
          : classified._tag === "Skipped"
            ? Effect.zipRight(
                Effect.sync(() => {
                  if (classified.failed) keptFailed++
                }),
                stats.lineSettled("skipped")
              )
            : Effect.void
      ),
      Stream.filterMap((classified) => (classified._tag === "Send" ? Option.some(classified.line) : Option.none())),
      Stream.mapEffect(sendLine, { concurrency: options.concurrency, unordered: true }),
      Stream.runDrain
    )

    const deadline = Deferred.await(stopped).pipe(
      Effect.zipRight(Effect.sleep(options.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT)),
      Effect.as<Runner.StopReason>("deadline")
    )
    const abort = Effect.as(options.abort ?? Effect.never, "aborted" as Runner.StopReason)
    const halt = Effect.as(Deferred.await(halted), "halted" as Runner.StopReason)
    const ended = yield* Effect.raceFirst(
      Effect.flatMap(work, () =>
        Effect.map(Deferred.isDone(stopped), (isStopped): Runner.StopReason => (isStopped ? "drained" : "completed"))
      ),
      Effect.race(Effect.race(deadline, abort), halt)
    )
    const haltedBy = ended === "halted" ? yield* Deferred.await(halted) : undefined
    yield* output.sync
    const progress = yield* stats.snapshot
    const done = progress.succeeded + progress.failed + progress.skipped + progress.malformed
    return {
      input: options.input,
      output: options.output,
      errors: errorsPath,
      stopReason: ended,
      total: progress.total ?? (ended === "completed" ? done : undefined),
      succeeded: progress.succeeded,
      failed: progress.failed,
      skipped: progress.skipped,
      keptFailed,
      malformed: progress.malformed,
      remaining:
        ended === "completed" ? 0 : progress.total === undefined ? undefined : Math.max(0, progress.total - done),
      truncatedBytes: recovered.truncatedBytes,
      requests: progress.requests,
      rateLimited: progress.rateLimited,
      retries: progress.retries,
      promptTokens: progress.promptTokens,
      completionTokens: progress.completionTokens,
      failuresByReason: progress.failuresByReason,
      halt: haltedBy === undefined ? undefined : { reason: haltedBy.reason, message: haltedBy.message },
      elapsedMillis: progress.elapsedMillis,
      ...(progress.providers === undefined ? {} : { providers: progress.providers })
    } satisfies Runner.Summary
  }).pipe(Effect.scoped)
