/**
 * RunStats' counters: plain mutable numbers behind `Effect.sync` (every
 * update is one synchronous step, so fibers cannot interleave inside one),
 * with time read from `Clock`.
 *
 * Requests are counted from `RequestEvent`s: each live request's attempts
 * counted so far and its latest status, by executor and id; an event with
 * more attempts adds the difference (and the retries among them), a final
 * event (COMPLETED, FAILED, CANCELLED) ends the request. A live request is in
 * flight while CALLING (an attempt on the wire), waiting otherwise. Events
 * are taken from the subscriptions under one permit, so they are counted in
 * the order they were published. The rates are `rateWindow.ts`'s, the ETA
 * `eta.ts`'s.
 */
import { RequestEvent } from "@sluice/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as RunStats from "../RunStats.js"
import { etaMillis } from "./eta.js"
import * as RateWindow from "./rateWindow.js"

export const make = (initialLimits: RunStats.Limits = {}): Effect.Effect<RunStats.RunStatsShape> =>
  Effect.gen(function* () {
    let limits = initialLimits
    const clock = yield* Effect.clock
    const start = clock.unsafeCurrentTimeMillis()
    const requestWindow = RateWindow.make()
    const tokenWindow = RateWindow.make()
    /** Lines finished by this run's own sends: the pace the ETA goes by once a minute has gone. */
    const lineWindow = RateWindow.make()
    const counts = {
      total: undefined as number | undefined,
      succeeded: 0,
      failed: 0,
      skipped: 0,
      malformed: 0,
      requests: 0,
      rateLimited: 0,
      retries: 0,
      promptTokens: 0,
      completionTokens: 0,
      /** What the provider counted against the token limit, and for how many lines. */
      chargedTokens: 0,
      linesCharged: 0
    }
    const now = () => clock.unsafeCurrentTimeMillis()
    const failuresByReason: Record<string, number> = {}
    let outage: RunStats.Outage | undefined
    let breaker: RunStats.Progress["breaker"]
    /** The providers' own counts (`--providers`), read at each snapshot. */
    let providers: (() => ReadonlyArray<RunStats.ProviderProgress>) | undefined

    /** Each live request's attempts counted so far and its status, by `executor#id`. */
    const live = new Map<string, { readonly attempts: number; readonly status: RequestEvent.RequestStatus }>()
    const count = (event: RequestEvent.RequestEvent) => {
      const id = `${event.executor}#${event.id}`
      const counted = live.get(id)?.attempts ?? 0
      if (event.attempts > counted) {
        counts.requests += event.attempts - counted
        // Every attempt after a request's first is a retry.
        counts.retries += Math.max(0, event.attempts - 1) - Math.max(0, counted - 1)
        requestWindow.add(event.timestamps.CALLING ?? now(), event.attempts - counted)
      }
      if (RequestEvent.isTerminal(event.status)) live.delete(id)
      else live.set(id, { attempts: Math.max(counted, event.attempts), status: event.status })
    }
    const requestEvents = (events: Iterable<RequestEvent.RequestEvent>) =>
      Effect.sync(() => {
        for (const event of events) count(event)
      })

    const sources = new Set<Queue.Dequeue<RequestEvent.RequestEvent>>()
    const permit = yield* Effect.makeSemaphore(1)
    const catchUp = permit.withPermits(1)(
      Effect.forEach(sources, (queue) => Effect.flatMap(Queue.takeAll(queue), requestEvents), { discard: true })
    )
    return {
      observe: (source) =>
        Effect.gen(function* () {
          const queue = yield* source.subscribe
          yield* Effect.acquireRelease(
            Effect.sync(() => sources.add(queue)),
            () => Effect.sync(() => sources.delete(queue))
          )
          // Taken in often enough that a slow reader of the snapshot never lets the subscription overflow.
          yield* Effect.forkScoped(Effect.repeat(catchUp, Schedule.spaced("100 millis")))
        }),
      requestEvents,
      rateLimited: Effect.sync(() => {
        counts.rateLimited++
      }),
      tokensUsed: (usage) =>
        Effect.sync(() => {
          counts.promptTokens += usage.promptTokens
          counts.completionTokens += usage.completionTokens
          const charged = usage.chargedTokens ?? usage.promptTokens + usage.completionTokens
          counts.chargedTokens += charged
          counts.linesCharged++
          tokenWindow.add(now(), charged)
        }),
      lineFinished: (outcome, reason) =>
        Effect.sync(() => {
          counts[outcome]++
          lineWindow.add(now(), 1)
          if (outcome === "failed") {
            const key = reason ?? "failed"
            failuresByReason[key] = (failuresByReason[key] ?? 0) + 1
          }
        }),
      setOutage: (next) =>
        Effect.sync(() => {
          outage = next
        }),
      setBreaker: (state) =>
        Effect.sync(() => {
          breaker = state
        }),
      lineSettled: (outcome) =>
        Effect.sync(() => {
          counts[outcome]++
        }),
      setTotal: (total) =>
        Effect.sync(() => {
          counts.total = total
        }),
      setLimits: (next) =>
        Effect.sync(() => {
          limits = next
        }),
      setProviders: (read) =>
        Effect.sync(() => {
          providers = read
        }),
      snapshot: Effect.zipRight(
        catchUp,
        Effect.map(Clock.currentTimeMillis, (time): RunStats.Progress => {
          const done = counts.succeeded + counts.failed + counts.skipped + counts.malformed
          const remaining = counts.total === undefined ? undefined : Math.max(0, counts.total - done)
          let sending = 0
          for (const request of live.values()) if (request.status === "CALLING") sending++
          return {
            total: counts.total,
            providers: providers?.(),
            done,
            succeeded: counts.succeeded,
            failed: counts.failed,
            skipped: counts.skipped,
            malformed: counts.malformed,
            inFlight: sending,
            waiting: live.size - sending,
            requests: counts.requests,
            rateLimited: counts.rateLimited,
            retries: counts.retries,
            promptTokens: counts.promptTokens,
            completionTokens: counts.completionTokens,
            requestsPerMinute: requestWindow.inLastMinute(time),
            tokensPerMinute: tokenWindow.inLastMinute(time),
            busiestRequestsPerMinute: requestWindow.busiestMinute(),
            busiestTokensPerMinute: tokenWindow.busiestMinute(),
            limits,
            failuresByReason: { ...failuresByReason },
            outage: outage === undefined ? undefined : { ...outage, lastedMillis: time - outage.since },
            breaker,
            elapsedMillis: time - start,
            etaMillis: etaMillis({
              remainingLines: remaining,
              requests: counts.requests,
              retries: counts.retries,
              chargedTokens: counts.chargedTokens,
              linesCharged: counts.linesCharged,
              limits,
              linesInLastMinute: lineWindow.inLastMinute(time),
              elapsedMillis: time - start
            })
          }
        })
      )
    } satisfies RunStats.RunStatsShape
  })
