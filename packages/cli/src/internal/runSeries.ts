/**
 * The time series behind the report page (`sluice run --report`): one sample
 * per interval (a second by default) of what the run did, taken on a
 * `Schedule` with time from `Clock`.
 *
 * It wraps a `RunStats` (a decorator: every call goes to the wrapped stats
 * as before) and sees what it sees: the Executor's `RequestEvent`s (its own
 * subscription to the same source), each 429, the tokens used, each line's
 * outcome and the limits in force; and, when given one, a breaker's
 * transitions. Each sample holds:
 * - requests and tokens per minute (RunStats' own sliding-minute figures, the
 *   ones the live line shows) and the limits in force;
 * - requests sent, 429s, retries and faults (failed attempts other than a 429,
 *   by kind) and attempts refused by an open breaker, in the interval;
 * - p50/p95/p99 of the attempts that ended in the interval (from the events'
 *   attempt log: the time on the wire, not the time queued);
 * - requests waiting (queued or waiting for admission) and being sent, now;
 * - each breaker's state now, and lines done so far;
 * - requests sent per executor/key, when there are several.
 *
 * Effect gave us `Clock`, `Schedule`, `Queue` subscriptions and `Scope`; this
 * module adds the bookkeeping (plain arrays that grow by one entry per
 * interval: an hour-long run is 3,600 entries per series).
 */
import type { CircuitBreaker, RequestEvent } from "@sluice/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as RunStats from "../RunStats.js"
import { percentile } from "./demoReport.js"

/** A breaker's state as a chart's level: 0 closed, 1 half-open, 2 open. */
export const BREAKER_LEVEL = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 } as const

export interface Transition {
  readonly breaker: string
  readonly from: string
  readonly to: string
  /** Seconds since the run started. */
  readonly at: number
}

/** Columns of equal length, one entry per sample (uPlot's data layout). */
export interface Series {
  /** Epoch milliseconds (the Clock's) when sampling started. */
  readonly startedAt: number
  readonly intervalMillis: number
  /** Seconds since `startedAt`. */
  readonly t: Array<number>
  readonly requestsPerMinute: Array<number>
  readonly tokensPerMinute: Array<number>
  readonly rpmLimit: Array<number | null>
  readonly tpmLimit: Array<number | null>
  /** In the interval. */
  readonly requests: Array<number>
  /** Tokens as the provider counts them (`chargedTokens`, else prompt plus completion). */
  readonly tokens: Array<number>
  readonly rateLimited: Array<number>
  readonly retries: Array<number>
  readonly faults: Array<number>
  readonly refused: Array<number>
  /** Attempts that ended in the interval (ms); null when none did. */
  readonly p50: Array<number | null>
  readonly p95: Array<number | null>
  readonly p99: Array<number | null>
  /** Now: queued or waiting for admission; being sent. */
  readonly waiting: Array<number>
  readonly sending: Array<number>
  /** Lines so far. */
  readonly succeeded: Array<number>
  readonly failed: Array<number>
  /** By breaker (`name` or `name/key`), a `BREAKER_LEVEL`. */
  readonly breakers: Record<string, Array<number>>
  /** Requests sent in the interval by `executor` (or `executor/key`). */
  readonly requestsBy: Record<string, Array<number>>
}

export interface Totals {
  readonly requests: number
  readonly rateLimited: number
  readonly retries: number
  readonly refused: number
  readonly faultsByKind: Record<string, number>
  readonly promptTokens: number
  readonly completionTokens: number
  /** The most requests and tokens the last 60 s held at any moment (RunStats' figures at their highest). */
  readonly busiestRequestsPerMinute: number
  readonly busiestTokensPerMinute: number
  readonly succeeded: number
  readonly failed: number
  readonly skipped: number
  readonly malformed: number
  readonly total: number | undefined
  readonly elapsedMillis: number
  readonly latency: { readonly p50: number | null; readonly p95: number | null; readonly p99: number | null }
}

export interface Recorded {
  readonly series: Series
  readonly totals: Totals
  readonly transitions: ReadonlyArray<Transition>
  /** Whether a breaker was watched (the page says when there was none). */
  readonly hasBreaker: boolean
}

export interface RunSeries {
  /** The wrapped stats: give these to the run in place of the original. */
  readonly stats: RunStats.RunStatsShape
  /** Charts a breaker's state from its transitions, for the scope's life. */
  readonly watchBreaker: (
    breaker: Pick<CircuitBreaker.CircuitBreakerShape, "subscribe">
  ) => Effect.Effect<void, never, Scope.Scope>
  /** Takes a last sample, and answers everything so far. */
  readonly finish: Effect.Effect<Recorded>
}

export const DEFAULT_INTERVAL = "1 second"

const statusGroup = (status: RequestEvent.RequestStatus): "waiting" | "sending" | undefined =>
  status === "CALLING"
    ? "sending"
    : status === "PENDING" || status === "QUEUED" || status === "PROCESSING"
      ? "waiting"
      : undefined

/** What an attempt failed with, as a kind: an ApiError's `reason`, else its tag. */
const kindOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const record = error as { readonly reason?: unknown; readonly _tag?: unknown }
    if (typeof record.reason === "string") return record.reason
    if (typeof record._tag === "string") return record._tag
  }
  return "unknown"
}

const percentiles = (values: Array<number>) => {
  const sorted = values.sort((a, b) => a - b)
  const at = (p: number) => (sorted.length === 0 ? null : percentile(sorted, p))
  return { p50: at(50), p95: at(95), p99: at(99) }
}

/**
 * Wraps `stats`, and samples every `interval` for the scope's life (the
 * first sample now).
 */
export const make = (
  stats: RunStats.RunStatsShape,
  options: { readonly interval?: Duration.DurationInput | undefined } = {}
): Effect.Effect<RunSeries, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const startedAt = clock.unsafeCurrentTimeMillis()
    const every = Duration.decode(options.interval ?? DEFAULT_INTERVAL)
    const intervalMillis = Duration.toMillis(every)
    const series: Series = {
      startedAt,
      intervalMillis,
      t: [],
      requestsPerMinute: [],
      tokensPerMinute: [],
      rpmLimit: [],
      tpmLimit: [],
      requests: [],
      tokens: [],
      rateLimited: [],
      retries: [],
      faults: [],
      refused: [],
      p50: [],
      p95: [],
      p99: [],
      waiting: [],
      sending: [],
      succeeded: [],
      failed: [],
      breakers: {},
      requestsBy: {}
    }
    const transitions: Array<Transition> = []
    let hasBreaker = false

    /** Per live request: its latest status and the attempt records already counted. */
    const live = new Map<string, { status: RequestEvent.RequestStatus; counted: number; group: string }>()
    const interval = {
      tokens: 0,
      faults: 0,
      refused: 0,
      latencies: [] as Array<number>,
      requestsBy: new Map<string, number>()
    }
    const allLatencies: Array<number> = []
    const faultsByKind: Record<string, number> = {}
    let refusedTotal = 0
    /** Each request's attempts started so far, to count sends per group. */
    const started = new Map<string, number>()

    const count = (event: RequestEvent.RequestEvent) => {
      const id = `${event.executor}#${event.id}`
      const group = event.key === "default" || event.key === "" ? event.executor : `${event.executor}/${event.key}`
      const entry = live.get(id) ?? { status: event.status, counted: 0, group }
      entry.status = event.status
      const log = event.attemptLog ?? []
      for (let index = entry.counted; index < log.length; index++) {
        const record = log[index]!
        if (record.outcome === "rejected") {
          interval.refused++
          refusedTotal++
        } else if (record.outcome !== "interrupted") {
          interval.latencies.push(record.endedAt - record.startedAt)
          allLatencies.push(record.endedAt - record.startedAt)
          if (record.outcome !== "success") {
            const kind = record.outcome === "timeout" ? "Timeout" : kindOf(record.error)
            if (kind !== "RateLimited") {
              interval.faults++
              faultsByKind[kind] = (faultsByKind[kind] ?? 0) + 1
            }
          }
        }
      }
      entry.counted = Math.max(entry.counted, log.length)
      const sent = started.get(id) ?? 0
      if (event.attempts > sent) {
        interval.requestsBy.set(group, (interval.requestsBy.get(group) ?? 0) + event.attempts - sent)
        started.set(id, event.attempts)
      }
      if (event.status === "COMPLETED" || event.status === "FAILED" || event.status === "CANCELLED") {
        live.delete(id)
        started.delete(id)
      } else live.set(id, entry)
    }

    const sources = new Set<Queue.Dequeue<RequestEvent.RequestEvent>>()
    const breakers = new Map<string, number>()
    const breakerQueues = new Set<Queue.Dequeue<CircuitBreaker.Transition>>()
    const permit = yield* Effect.makeSemaphore(1)
    const catchUp = Effect.gen(function* () {
      for (const queue of sources) for (const event of yield* Queue.takeAll(queue)) count(event)
      for (const queue of breakerQueues) {
        for (const transition of yield* Queue.takeAll(queue)) {
          const name = transition.key === "default" ? transition.breaker : `${transition.breaker}/${transition.key}`
          breakers.set(name, BREAKER_LEVEL[transition.to as keyof typeof BREAKER_LEVEL] ?? 0)
          transitions.push({
            breaker: name,
            from: transition.from,
            to: transition.to,
            at: (transition.at - startedAt) / 1000
          })
        }
      }
    })

    let previous = { requests: 0, rateLimited: 0, retries: 0 }
    let lastProgress: RunStats.Progress | undefined
    const sample = Effect.gen(function* () {
      yield* catchUp
      const progress = yield* stats.snapshot
      lastProgress = progress
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const index = series.t.length
      series.t.push(Math.round((now - startedAt) / 100) / 10)
      series.requestsPerMinute.push(progress.requestsPerMinute)
      series.tokensPerMinute.push(progress.tokensPerMinute)
      series.rpmLimit.push(progress.limits.rpm ?? null)
      series.tpmLimit.push(progress.limits.tpm ?? null)
      series.requests.push(progress.requests - previous.requests)
      series.rateLimited.push(progress.rateLimited - previous.rateLimited)
      series.retries.push(progress.retries - previous.retries)
      previous = progress
      series.tokens.push(interval.tokens)
      series.faults.push(interval.faults)
      series.refused.push(interval.refused)
      const { p50, p95, p99 } = percentiles(interval.latencies)
      series.p50.push(p50)
      series.p95.push(p95)
      series.p99.push(p99)
      let waiting = 0
      let sending = 0
      for (const entry of live.values()) {
        const group = statusGroup(entry.status)
        if (group === "waiting") waiting++
        else if (group === "sending") sending++
      }
      series.waiting.push(waiting)
      series.sending.push(sending)
      series.succeeded.push(progress.succeeded)
      series.failed.push(progress.failed)
      for (const [name, level] of breakers) {
        // A breaker first seen now was closed before.
        series.breakers[name] ??= Array.from({ length: index }, () => 0)
        series.breakers[name]!.push(level)
      }
      for (const name of Object.keys(series.requestsBy))
        if (!interval.requestsBy.has(name)) series.requestsBy[name]!.push(0)
      for (const [name, sent] of interval.requestsBy) {
        series.requestsBy[name] ??= Array.from({ length: index }, () => 0)
        series.requestsBy[name]!.push(sent)
      }
      interval.tokens = 0
      interval.faults = 0
      interval.refused = 0
      interval.latencies = []
      interval.requestsBy = new Map()
    }).pipe(permit.withPermits(1))

    yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(every)))
    // Taken in between samples too, so a subscription never overflows.
    yield* Effect.forkScoped(Effect.repeat(permit.withPermits(1)(catchUp), Schedule.spaced("100 millis")))

    const wrapped: RunStats.RunStatsShape = {
      ...stats,
      observe: (source) =>
        Effect.gen(function* () {
          yield* stats.observe(source)
          const queue = yield* source.subscribe
          yield* Effect.acquireRelease(
            Effect.sync(() => sources.add(queue)),
            () => Effect.sync(() => sources.delete(queue))
          )
        }),
      tokensUsed: (usage) =>
        Effect.zipRight(
          stats.tokensUsed(usage),
          Effect.sync(() => {
            interval.tokens += usage.chargedTokens ?? usage.promptTokens + usage.completionTokens
          })
        ),
      requestEvents: (events) =>
        Effect.suspend(() => {
          const taken = [...events]
          return Effect.zipRight(
            stats.requestEvents(taken),
            Effect.sync(() => {
              for (const event of taken) count(event)
            })
          )
        })
    }

    return {
      stats: wrapped,
      watchBreaker: (breaker) =>
        Effect.gen(function* () {
          const queue = yield* breaker.subscribe
          hasBreaker = true
          yield* Effect.acquireRelease(
            Effect.sync(() => breakerQueues.add(queue)),
            () => Effect.sync(() => breakerQueues.delete(queue))
          )
        }),
      finish: Effect.gen(function* () {
        yield* sample
        const progress = lastProgress!
        const latency = percentiles([...allLatencies])
        return {
          series,
          transitions,
          hasBreaker,
          totals: {
            requests: progress.requests,
            rateLimited: progress.rateLimited,
            retries: progress.retries,
            refused: refusedTotal,
            faultsByKind,
            promptTokens: progress.promptTokens,
            completionTokens: progress.completionTokens,
            busiestRequestsPerMinute: progress.busiestRequestsPerMinute,
            busiestTokensPerMinute: progress.busiestTokensPerMinute,
            succeeded: progress.succeeded,
            failed: progress.failed,
            skipped: progress.skipped,
            malformed: progress.malformed,
            total: progress.total,
            elapsedMillis: progress.elapsedMillis,
            latency
          }
        }
      })
    }
  })
