/**
 * What a batch run has done so far, for the progress line and the summary:
 * lines by outcome, requests and tokens per minute against the limits, 429s
 * and retries, and an ETA.
 *
 * Two parties feed it. The runner records each line's outcome and the tokens
 * it used. The sender records what only it sees: every request it puts on
 * the wire (`requestSent`), every 429 (`rateLimited`) and every retry
 * (`retried`); the HTTP sender does it from a wrapped `HttpClient`, and a
 * sender over the Model can do it from the Executor's `RequestEvent` stream.
 *
 * Effect gave us `Clock` (every rate reads it, so `TestClock` drives it) and
 * `Context.Tag`; this module adds the counters and the sliding per-minute
 * windows (60 one-second buckets each, a fixed size however long the run).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/runStats.js"

/**
 * How a line ended. `skipped`: its result was already in the output (a
 * resumed run); `malformed`: the line could not be read as a request (or
 * repeats an earlier `custom_id`).
 *
 * @since 0.1.0
 * @category models
 */
export type LineOutcome = "succeeded" | "failed" | "skipped" | "malformed"

/**
 * The limits the rates are shown against, when known.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  readonly rpm?: number | undefined
  readonly tpm?: number | undefined
}

/**
 * A snapshot of a run.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  /** Non-blank input lines, once counted (the count runs alongside the work). */
  readonly total: number | undefined
  /** `succeeded + failed + skipped + malformed`. */
  readonly done: number
  readonly succeeded: number
  readonly failed: number
  readonly skipped: number
  readonly malformed: number
  /** Lines handed to the sender and not yet finished. */
  readonly inFlight: number
  /** Requests put on the wire, retries included. */
  readonly requests: number
  readonly rateLimited: number
  readonly retries: number
  readonly promptTokens: number
  readonly completionTokens: number
  /**
   * Requests in the last minute: the count a per-minute limit is held to, so
   * it reads above the limit only if the window really held more. Early in a
   * run, what was sent so far (not extrapolated: a start's burst would read high).
   */
  readonly requestsPerMinute: number
  /** Tokens in the last minute, as the provider counts them (see `tokensUsed`); as `requestsPerMinute`. */
  readonly tokensPerMinute: number
  readonly limits: Limits
  readonly elapsedMillis: number
  /** Time to finish at the pace of the last minute; undefined until there is a pace and a total. */
  readonly etaMillis: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RunStatsShape {
  /** The sender put a request on the wire (each attempt counts). */
  readonly requestSent: Effect.Effect<void>
  /** The server answered 429. */
  readonly rateLimited: Effect.Effect<void>
  /** An attempt after the first began. */
  readonly retried: Effect.Effect<void>
  /**
   * Tokens used. The rate against the token limit counts `chargedTokens`
   * (what the provider counts) when given, else prompt plus completion.
   */
  readonly tokensUsed: (usage: {
    readonly promptTokens: number
    readonly completionTokens: number
    readonly chargedTokens?: number | undefined
  }) => Effect.Effect<void>
  readonly lineStarted: Effect.Effect<void>
  /** A started line ended: `succeeded`, `failed`, or `abandoned` (interrupted; it stays to do). */
  readonly lineFinished: (outcome: "succeeded" | "failed" | "abandoned") => Effect.Effect<void>
  /** A line that was never started: `skipped` or `malformed`. */
  readonly lineSettled: (outcome: "skipped" | "malformed") => Effect.Effect<void>
  readonly setTotal: (total: number) => Effect.Effect<void>
  /** The limits in force changed (learned from the server). */
  readonly setLimits: (limits: Limits) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<Progress>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class RunStats extends Context.Tag("@sluice/cli/RunStats")<RunStats, RunStatsShape>() {}

/**
 * Fresh counters; the run's clock starts now.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (limits?: Limits) => Effect.Effect<RunStatsShape> = internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (limits?: Limits): Layer.Layer<RunStats> => Layer.effect(RunStats, make(limits))
