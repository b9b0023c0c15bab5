/**
 * What a batch run has done so far, for the progress line, the summary and
 * the report: lines by outcome, requests and tokens per minute against the
 * limits, requests being sent and waiting, 429s and retries, the breaker and
 * any outage, and an ETA.
 *
 * One definition of the rate for all of them (`rateWindow.ts`): what the last
 * minute holds (a per-minute limit's window), by the second, never
 * extrapolated: early in a run, what was sent so far. The ETA goes by the
 * binding limit (`eta.ts`): the lines left need as many requests and tokens
 * as the lines so far did, at each limit's rate.
 *
 * Each count has one source:
 * - the Executor's `RequestEvent`s (`observe` an ApiClient's `progress`, or
 *   hand them to `requestEvents`): requests sent (each attempt), retries, and
 *   the requests in flight. An event carries its request's attempts so far,
 *   so the counts are taken per request as its attempts grow; an event lost
 *   by a slow subscriber costs nothing but a later reading of the same request.
 * - the runner: each line's outcome (what the output file holds; a line
 *   refused before it was sent never reached the Executor) and the tokens its
 *   answer reports (the event's cost is only the estimate reserved before the call);
 * - the HTTP sender: each 429 (a status only the HTTP layer sees), and the
 *   limits in force.
 *
 * Effect gave us `Clock` (every rate reads it, so `TestClock` drives it),
 * `PubSub` subscriptions (`observe`), `Semaphore` and `Context.Tag`; this
 * module adds the counters, the sliding per-minute windows (60 one-second
 * buckets each, a fixed size however long the run) and the ETA.
 *
 * @since 0.1.0
 */
import type { RequestEvent } from "@sluice/core"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
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
 * An outage the run is waiting out (see `HttpSend`'s `maxOutage`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Outage {
  /** When it began (ms on the run's Clock). */
  readonly since: number
  /** Lines waiting for the provider. */
  readonly waiting: number
  /** The last failure, in a few words. */
  readonly lastFailure: string
}

/**
 * One provider of a run over several (`sluice run --providers`): what it
 * did, as the Router sent it lines.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProviderProgress {
  readonly name: string
  /** Its quota domain (its name when it declares none). */
  readonly domain: string
  /** `active`, `ejected` (failing: no lines go to it until its cool-down ends) or `draining`. */
  readonly state: "active" | "ejected" | "draining"
  /** Lines it answered successfully. */
  readonly served: number
  /** Lines whose final failure came from it (the Router had nowhere else to send them). */
  readonly failed: number
  /** Lines that failed on it and went on to another provider. */
  readonly movedAway: number
  /** Tokens its answers report (prompt + completion). */
  readonly promptTokens: number
  readonly completionTokens: number
  /** 429s it answered. */
  readonly rateLimited: number
  /** Times the Router ejected it. */
  readonly ejections: number
  /** Its limits in force (given or learned), per minute. */
  readonly limits: Limits
  /** Lines it served in each second of the run (index 0: the run's first second). */
  readonly servedPerSecond: ReadonlyArray<number>
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
  /** Requests being sent now (an attempt on the wire). */
  readonly inFlight: number
  /** Requests with the Executor not being sent: queued, waiting for admission or a permit, or between attempts. */
  readonly waiting: number
  /** Requests put on the wire (each attempt the Executor made), retries included. */
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
  /** The most requests any minute of the run held so far (`requestsPerMinute` at its highest): what a report sets against the limit. */
  readonly busiestRequestsPerMinute: number
  /** The same for tokens. */
  readonly busiestTokensPerMinute: number
  readonly limits: Limits
  /** Per provider, when the run goes through a Router (`--providers`); else undefined. */
  readonly providers: ReadonlyArray<ProviderProgress> | undefined
  /** Failed lines by what happened (`authentication failed (401)`, `server error (503)`, ...). */
  readonly failuresByReason: Readonly<Record<string, number>>
  /** The outage being waited out, if any, and how long it has lasted. */
  readonly outage: (Outage & { readonly lastedMillis: number }) | undefined
  /** The sender's breaker, when it has one. */
  readonly breaker: "CLOSED" | "OPEN" | "HALF_OPEN" | "ISOLATED" | undefined
  readonly elapsedMillis: number
  /**
   * Time to finish: the lines left at the binding limit's rate (as many requests and tokens per line as so
   * far), or at the last minute's pace once a full minute has gone and that is slower; with no limit known,
   * at the pace so far. Undefined until there is a total and something to go by.
   */
  readonly etaMillis: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface EventSource {
  /** e.g. an ApiClient's `progress.subscribe`: a queue of its Executor's events, subscribed once this returns. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<RequestEvent.RequestEvent>, never, Scope.Scope>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RunStatsShape {
  /**
   * Counts an Executor's requests from its events for the scope's life:
   * subscribes now (before any request is submitted, so none is missed). The
   * events are taken in every 100 ms and before each `snapshot`.
   */
  readonly observe: (source: EventSource) => Effect.Effect<void, never, Scope.Scope>
  /** Takes in events by hand (what `observe` does with each one). */
  readonly requestEvents: (events: Iterable<RequestEvent.RequestEvent>) => Effect.Effect<void>
  /** The server answered 429. */
  readonly rateLimited: Effect.Effect<void>
  /**
   * Tokens used. The rate against the token limit counts `chargedTokens`
   * (what the provider counts) when given, else prompt plus completion.
   */
  readonly tokensUsed: (usage: {
    readonly promptTokens: number
    readonly completionTokens: number
    readonly chargedTokens?: number | undefined
  }) => Effect.Effect<void>
  /**
   * A line sent to the sender ended with its result written: `succeeded` or
   * `failed`, the failure counted under `reason` (its label; default `failed`).
   */
  readonly lineFinished: (outcome: "succeeded" | "failed", reason?: string) => Effect.Effect<void>
  /** An outage began, changed or ended (`undefined`). */
  readonly setOutage: (outage: Outage | undefined) => Effect.Effect<void>
  /** The sender's breaker changed state. */
  readonly setBreaker: (state: "CLOSED" | "OPEN" | "HALF_OPEN" | "ISOLATED") => Effect.Effect<void>
  /** A line that was never started: `skipped` or `malformed`. */
  readonly lineSettled: (outcome: "skipped" | "malformed") => Effect.Effect<void>
  readonly setTotal: (total: number) => Effect.Effect<void>
  /** The limits in force changed (learned from the server). */
  readonly setLimits: (limits: Limits) => Effect.Effect<void>
  /** The providers' counts (a run through a Router): `read` is called at each snapshot. */
  readonly setProviders: (read: () => ReadonlyArray<ProviderProgress>) => Effect.Effect<void>
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
