/**
 * The engine of `sluice run`: stream an OpenAI-style batch file (JSONL, one
 * `{ custom_id, method, url, body }` per line) through a sender, append one
 * result line per `custom_id` to an output file, and resume where a previous
 * run stopped.
 *
 * The runner is not the limiter. It reads the input as a stream (a line at a
 * time, never the whole file) and keeps at most `concurrency` lines with the
 * sender; the sender (today the HTTP sender over an `ApiClient`, later the
 * Model) is where rate, token and concurrency limits, retries and breakers
 * apply. The sender is injected (`Send`), so tests and other wirings swap it.
 *
 * Guarantees:
 * - Every result is one complete line (`JSON.stringify(...) + "\n"` in one
 *   uninterruptible write), fsynced every `syncEvery` lines, every
 *   `syncInterval` and at the end.
 * - Resume: an existing output is read first; a last line without its newline
 *   (torn by `kill -9`) is truncated away, and every `custom_id` found is
 *   skipped. A line that ended in an error is done too (its error is its
 *   result), unless `retryFailed` and its error was retryable: then its record
 *   is taken out (compaction: a new file renamed over the old, atomically) and
 *   the line is sent again. So the output holds each `custom_id` once, its
 *   latest result, whenever a `kill -9` comes.
 * - One run per output: `<output>.lock` names the process holding it; a
 *   second run refuses to start (`OutputLocked`), a lock whose process is gone
 *   is taken over.
 * - A line that cannot be read as a request, or that repeats the `custom_id`
 *   of an earlier valid line, is reported with its line number to `onMalformed`
 *   and to the errors file (rewritten by each run, since each run reads the
 *   whole input); the rest proceed.
 * - `stop` completing (the first Ctrl-C) stops taking lines; lines already
 *   with the sender finish, up to `drainTimeout`, then are interrupted.
 *   `abort` completing (the second Ctrl-C) interrupts them at once. Either
 *   way the output holds only complete lines, and a rerun does the rest.
 *
 * Output lines come in the order they finish, not input order. Each is a
 * record in OpenAI's Batch API output shape, `{ id, custom_id, response:
 * { status_code, request_id, body } | null, error: { code, message } | null }`,
 * with Sluice's own account (the input line, attempts, timings, usage, the
 * failure's kind, status and whether a rerun retries it) in `sluice`; the
 * errors file's records have the same shape. Records an earlier Sluice wrote
 * are read, and rewritten in this shape when the output is resumed.
 *
 * What Effect gave us: `Stream` (reading, splitting, bounded concurrency,
 * `haltWhen`), `FileSystem` (append, fsync, truncate), `Scope` (the files'
 * lifetimes), `Effect.race` (the drain deadline). What this module adds: the
 * batch-line checks, the crash-safe results file, resume, and the drain.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type { RunError } from "./internal/runError.js"
import * as internal from "./internal/runner.js"
import type { ProviderProgress, RunStats } from "./RunStats.js"

export {
  /**
   * The runner's error, refined by `reason`. The run could not go on
   * (`InputUnreadable`, `OutputUnreadable`, `OutputCorrupt`,
   * `OutputUnwritable`, `SamePath`: `path` names the file), or a line's
   * request failed for good (`SendFailed`, a {@link Send}'s error:
   * `errorKind` names the sender's final error, e.g. `RateLimited`,
   * `ServerError`, `ProviderUnavailable`, with the `attempts` made).
   *
   * @since 0.1.0
   * @category errors
   */
  RunError
} from "./internal/runError.js"

/**
 * One valid input line.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchLine {
  readonly customId: string
  readonly method: "POST"
  /** As written in the line, e.g. `/v1/chat/completions`. */
  readonly url: string
  readonly body: unknown
  /** 1-based. */
  readonly lineNumber: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Usage {
  readonly promptTokens: number
  readonly completionTokens: number
  /**
   * What the provider counted against its token limit, when that is not
   * `promptTokens + completionTokens` (OpenAI counts `max_tokens` for the output).
   */
  readonly chargedTokens?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SendResult {
  /** The response body. */
  readonly response: unknown
  /** The answer's HTTP status. Default 200. */
  readonly statusCode?: number | undefined
  /** The answer's `x-request-id`, when it had one. */
  readonly requestId?: string | undefined
  /** Attempts made, the first included. */
  readonly attempts: number
  readonly usage?: Usage | undefined
}

/**
 * Sends one line, with whatever limits and retries it applies, and answers
 * its final result. Interruption must be safe (the runner interrupts sends
 * past the drain deadline).
 *
 * @since 0.1.0
 * @category models
 */
export type Send = (line: BatchLine) => Effect.Effect<SendResult, RunError>

/**
 * An input line that was not run.
 *
 * @since 0.1.0
 * @category models
 */
export interface Malformed {
  /** 1-based. */
  readonly lineNumber: number
  readonly reason: string
  /** When the line had a usable one. */
  readonly customId?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /** The batch file (JSONL). */
  readonly input: string
  /** The results file (JSONL), appended to; an existing one is resumed. */
  readonly output: string
  /** Where malformed lines are reported. Default `<output>.errors.jsonl`. */
  readonly errors?: string | undefined
  /** Lines with the sender at once. */
  readonly concurrency: number
  /** Completes when the run should stop taking lines and drain. */
  readonly stop?: Effect.Effect<void> | undefined
  /** Completes when the run should stop at once. */
  readonly abort?: Effect.Effect<void> | undefined
  /** How long in-flight lines may finish after `stop`. Default 30 s. */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /** Told of each malformed line as it is found (e.g. to print it). */
  readonly onMalformed?: ((malformed: Malformed) => Effect.Effect<void>) | undefined
  /** fsync the output after this many lines. Default 256. */
  readonly syncEvery?: number | undefined
  /** ... and at least this often. Default 1 s. */
  readonly syncInterval?: Duration.DurationInput | undefined
  /**
   * Do again the lines whose latest result in the output is a retryable
   * failure (`error.retryable`: a 5xx, a timeout, a failed connection, a 429
   * the retries could not get past). Default false: every result stands.
   */
  readonly retryFailed?: boolean | undefined
  /**
   * Completes when the run must stop at once (e.g. an `HttpSend.Sender`'s
   * `halted`: the credentials refused, an outage too long): what is in flight
   * is interrupted and not written; the summary's `halt` says why.
   */
  readonly halt?: Effect.Effect<RunError> | undefined
  /**
   * Runs inside the compaction of an existing output, at each phase (writing
   * the new file; about to rename it over the old): a test's hook to catch it
   * in the act (`kill -9`). Default none.
   */
  readonly onCompaction?: ((phase: "writing" | "renaming") => Effect.Effect<void>) | undefined
}

/**
 * How a run ended: `completed` (the whole input was read), `drained` (stopped,
 * and everything in flight finished), `deadline` (stopped, and what was still
 * in flight at the drain deadline was interrupted), `aborted` (stopped at once),
 * `halted` (stopped at once by the sender or `halt`: see the summary's `halt`).
 *
 * @since 0.1.0
 * @category models
 */
export type StopReason = "completed" | "drained" | "deadline" | "aborted" | "halted"

/**
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  readonly input: string
  readonly output: string
  readonly errors: string
  readonly stopReason: StopReason
  /** Non-blank input lines, when the count finished. */
  readonly total: number | undefined
  readonly succeeded: number
  readonly failed: number
  /** Already in the output. */
  readonly skipped: number
  /** Of `skipped`: lines whose result in the output is a failure, kept (not retryable, or not `retryFailed`). */
  readonly keptFailed: number
  readonly malformed: number
  /** Lines of the input with no result yet (0 after a completed run). */
  readonly remaining: number | undefined
  /** Bytes of a torn last output line removed before resuming (0 when none). */
  readonly truncatedBytes: number
  readonly requests: number
  readonly rateLimited: number
  readonly retries: number
  readonly promptTokens: number
  readonly completionTokens: number
  /** Failed lines by what happened (`authentication failed (401)`, `server error (503)`, ...). */
  readonly failuresByReason: Readonly<Record<string, number>>
  /** When `halted`: the `RunError`'s reason (`AuthenticationFailed`, `ProviderUnavailable`) and its message. */
  readonly halt: { readonly reason: string; readonly message: string } | undefined
  readonly elapsedMillis: number
  /** Per provider, when the sender was a Router over several (`--providers`). */
  readonly providers?: ReadonlyArray<ProviderProgress> | undefined
}

/**
 * Runs a batch to the end (or to a stop), telling `RunStats` each line's
 * outcome and the tokens its answer reports (the sender feeds it the rest).
 *
 * @since 0.1.0
 * @category running
 */
export const run: (
  options: RunOptions,
  send: Send
) => Effect.Effect<Summary, RunError, FileSystem.FileSystem | Path.Path | RunStats> = internal.run

/**
 * The default errors file for an output path.
 *
 * @since 0.1.0
 * @category utils
 */
export const errorsPathFor: (output: string) => string = internal.errorsPathFor
