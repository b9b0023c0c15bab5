/**
 * The CircuitBreaker's machinery: one small state machine per key, driven
 * synchronously from the caller's fiber (no background fiber per breaker).
 *
 * CLOSED records outcomes in its window (`breakerWindow.ts`) and trips to
 * OPEN. OPEN refuses until its open duration has passed, then the next call
 * finds it HALF_OPEN (the change is made when observed, stamped with the time
 * it became due). HALF_OPEN hands out `halfOpenProbes` probe slots: all of
 * them succeeding closes the breaker, one failing re-opens it for the next
 * step of the open-duration schedule. A probe that ends without a verdict
 * (interrupted, or classified "ignore") gives its slot back, so the breaker
 * can never be stuck half-open. A probe still running `halfOpenTimeout` after
 * it was admitted counts as failed: the breaker re-opens ("ProbeTimedOut").
 * That is decided lazily, from Clock time, by the next call that looks at the
 * key (check, admit, protect, release, state, inspect), and stamped with the
 * moment it became due, as OPEN → HALF_OPEN is: no watcher fiber, nothing to
 * leak. Every permit carries the generation it was taken in, so a call that
 * outlives a state change (the stuck probe included) cannot vote in the next.
 * Opening records a `Trip` (what tipped it, what the window held), which the
 * refusals and `inspect` carry.
 *
 * With a `CircuitBreakerStore` (opt-in) the local state becomes a mirror of
 * the shared one, and the machine above keeps running on it unchanged: the
 * window stays local and still decides when this process trips; what changes
 * the shared state goes to the store as well: an open (after the local one,
 * so an unanswered store leaves the local open standing, flagged so that the
 * store's later answers do not cut it short), a half-open probe's slot
 * (asked of the store before the local one is taken; refused there, the
 * store's state decides), its verdict, isolate and reset. What the store
 * answers and what its notices say is adopted (`adopt`): by generation (a
 * notice older than what was seen is dropped), deadlines only moving later.
 * A key is read from the store once, when this breaker first uses it, and
 * again on a `Resync` notice; between those no call asks the store, except
 * for the transitions. Without a store none of this runs: one `undefined`
 * check on the paths that could reach it.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Predicate from "effect/Predicate"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as CircuitBreakerStore from "../CircuitBreakerStore.js"
import { isCircuitBreakerStore } from "../CircuitBreakerStore.js"
import * as InvalidOptions from "../InvalidOptions.js"
import * as Window from "./breakerWindow.js"
import { CircuitOpenError, describeExit, type Trip } from "./circuitBreakerError.js"
import { makeKeyMetrics } from "./circuitBreakerMetrics.js"
import * as EventHub from "./eventHub.js"
import * as ScheduleStepper from "./scheduleStepper.js"

export const DEFAULT_KEY = "default"
const DEFAULT_OPEN_DURATION = Duration.seconds(30)
const DEFAULT_IDLE_TIMEOUT = Duration.minutes(10)
export const DEFAULT_HALF_OPEN_TIMEOUT = Duration.minutes(1)

// ---- options -------------------------------------------------------------------

const Share = Schema.Number.pipe(
  Schema.greaterThan(0, { message: () => "Expected a share above 0 and at most 1" }),
  Schema.lessThanOrEqualTo(1, { message: () => "Expected a share above 0 and at most 1" })
)

const RateFields = {
  failureRate: Share,
  minimumCalls: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt))
}

const PolicySchema = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("consecutive"), failures: InvalidOptions.PositiveInt }),
  Schema.Struct({ kind: Schema.Literal("count"), size: InvalidOptions.PositiveInt, ...RateFields }).pipe(
    Schema.filter((policy) =>
      policy.minimumCalls === undefined || policy.minimumCalls <= policy.size
        ? undefined
        : {
            path: ["minimumCalls"],
            message: `minimumCalls (${policy.minimumCalls}) is larger than the window's size (${policy.size}): the window never holds that many calls, so the breaker could never open. Use a minimumCalls of at most ${policy.size}, or a larger size`
          }
    )
  ),
  Schema.Struct({
    kind: Schema.Literal("time"),
    window: InvalidOptions.PositiveDuration,
    buckets: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
    ...RateFields
  })
)

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  policy: PolicySchema,
  slowCall: Schema.optional(
    Schema.UndefinedOr(
      Schema.Struct({
        threshold: InvalidOptions.PositiveDuration,
        rate: Schema.optional(Schema.UndefinedOr(Share))
      })
    )
  ),
  openDuration: Schema.optional(
    Schema.UndefinedOr(Schema.Union(InvalidOptions.PositiveDuration, Schema.declare(Schedule.isSchedule)))
  ),
  halfOpenProbes: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  halfOpenTimeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  classify: Schema.optional(Schema.UndefinedOr(Schema.declare(Predicate.isFunction))),
  idleTimeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  transitionBufferSize: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  store: Schema.optional(Schema.UndefinedOr(Schema.declare(isCircuitBreakerStore)))
})

const decodeOptions = InvalidOptions.decode("CircuitBreaker", OptionsSchema)

const millisOf = (input: Duration.DurationInput) => Duration.toMillis(Duration.decode(input))

const SUCCESS = Exit.void
const GOOD: Window.Outcome = { failure: false, slow: false }
const SLOW: Window.Outcome = { failure: false, slow: true }
const BAD: Window.Outcome = { failure: true, slow: false }
const BAD_SLOW: Window.Outcome = { failure: true, slow: true }

/** Failures count, successes do not; interruption is never a verdict (handled before classify). */
export const defaultClassify = (exit: Exit.Exit<unknown, unknown>): CircuitBreaker.Verdict =>
  Exit.isSuccess(exit) ? "success" : "failure"

// ---- one key --------------------------------------------------------------------

class KeyBreaker {
  state: CircuitBreaker.State = "CLOSED"
  generation = 0
  openUntil = 0
  openedFor = 0
  probesTaken = 0
  probeSuccesses = 0
  /** The probes of this half-open still running (a few at most: `halfOpenProbes`). */
  readonly runningProbes = new Set<PermitRecord>()
  /** What opened it, while OPEN or HALF_OPEN. */
  trip: Trip | undefined = undefined
  inFlight = 0
  lastUsed: number
  /** Forgotten by the sweeper; a call still running on it puts it back. */
  evicted = false
  /** With a store: whether the store's state of the key was read (once, when the key is made). */
  known = false
  /** With a store: the latest generation of the store's state seen (older notices are ignored). */
  sharedGeneration = 0
  /** With a store: an OPEN the store did not hear of (it did not answer) lasts until then whatever the store says. */
  localOnlyUntil = 0
  readonly metrics: ReturnType<typeof makeKeyMetrics>
  constructor(
    readonly key: string,
    readonly window: Window.OutcomeWindow,
    readonly openDurations: ScheduleStepper.ScheduleStepper<number> | undefined,
    breaker: string,
    now: number
  ) {
    this.lastUsed = now
    this.metrics = makeKeyMetrics(breaker, key)
    this.metrics.state("CLOSED")
  }
}

interface PermitRecord extends CircuitBreaker.Permit {
  readonly breaker: KeyBreaker
  readonly generation: number
  readonly probe: boolean
  readonly startedAt: number
  done: boolean
  /** With a store: the probe's slot there, and the generation it was granted in. */
  holder?: string
  sharedGeneration?: number
}

export const make = (
  options: CircuitBreaker.Options
): Effect.Effect<CircuitBreaker.CircuitBreakerShape, InvalidOptions.InvalidOptionsError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* decodeOptions(options)
    const name = options.name
    const policy = options.policy
    const slowMillis = options.slowCall === undefined ? undefined : millisOf(options.slowCall.threshold)
    const thresholds = (failureRate: number, minimumCalls: number): Window.RateThresholds => ({
      failureRate,
      minimumCalls,
      slowCallRate: options.slowCall === undefined ? undefined : (options.slowCall.rate ?? 1)
    })
    const newWindow = (): Window.OutcomeWindow => {
      switch (policy.kind) {
        case "consecutive":
          return Window.consecutive(policy.failures)
        case "count":
          return Window.countBased(policy.size, thresholds(policy.failureRate, policy.minimumCalls ?? policy.size))
        case "time":
          return Window.timeBased(
            millisOf(policy.window),
            policy.buckets ?? 10,
            thresholds(policy.failureRate, policy.minimumCalls ?? 1)
          )
      }
    }
    const openDuration = options.openDuration ?? DEFAULT_OPEN_DURATION
    const fixedOpenMillis = Schedule.isSchedule(openDuration) ? undefined : millisOf(openDuration)
    const openSchedule = Schedule.isSchedule(openDuration)
      ? (openDuration as Schedule.Schedule<unknown, number>)
      : undefined
    const halfOpenProbes = options.halfOpenProbes ?? 1
    /** How long a probe may run before it counts as failed; infinite turns the limit off. */
    const halfOpenTimeoutMillis = millisOf(options.halfOpenTimeout ?? DEFAULT_HALF_OPEN_TIMEOUT)
    /** Whether an outcome's time matters: slow calls, or a time-based window. */
    const timeMatters = slowMillis !== undefined || policy.kind === "time"
    const classify = options.classify ?? defaultClassify
    const idleMillis = millisOf(options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT)

    const store = options.store
    /** A probe's slot in the store lasts `halfOpenTimeout`, or the default when that is infinite (a dead holder must not keep it). */
    const leaseMillis = Number.isFinite(halfOpenTimeoutMillis)
      ? halfOpenTimeoutMillis
      : millisOf(DEFAULT_HALF_OPEN_TIMEOUT)
    /** Names this breaker's probe slots in the store (unique across processes). */
    const instance = `${name}:${Math.random().toString(36).slice(2, 12)}`
    let probeIds = 0

    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const transitions = yield* EventHub.make<CircuitBreaker.Transition>(options.transitionBufferSize ?? 1024)
    const breakers = new Map<string, KeyBreaker>()

    const breakerFor = (key: string, at: number): KeyBreaker => {
      let breaker = breakers.get(key)
      if (breaker === undefined) {
        const stepper = openSchedule === undefined ? undefined : ScheduleStepper.make(openSchedule)
        breaker = new KeyBreaker(key, newWindow(), stepper, name, at)
        breakers.set(key, breaker)
      }
      return breaker
    }

    const transition = (
      breaker: KeyBreaker,
      to: CircuitBreaker.State,
      at: number,
      reason: CircuitBreaker.TransitionReason,
      shared = false
    ) => {
      const from = breaker.state
      breaker.state = to
      breaker.generation++
      breaker.probesTaken = 0
      breaker.probeSuccesses = 0
      breaker.runningProbes.clear()
      if (to === "CLOSED" || to === "ISOLATED") breaker.trip = undefined
      breaker.metrics.state(to)
      breaker.metrics.transition(from, to)
      if (transitions.observed()) {
        const trip = to === "OPEN" ? breaker.trip : undefined
        const event: CircuitBreaker.Transition =
          trip === undefined
            ? { breaker: name, key: breaker.key, from, to, at, reason }
            : { breaker: name, key: breaker.key, from, to, at, reason, trip }
        transitions.offer(shared ? { ...event, shared } : event)
      }
    }

    const tripOf = (reason: Trip["reason"], at: number, failure: string, counts: Window.WindowCounts): Trip => ({
      reason,
      at,
      failure,
      calls: counts.calls,
      failures: counts.failures,
      slowCalls: counts.slowCalls,
      failureRate: counts.calls === 0 ? 0 : counts.failures / counts.calls,
      slowCallRate: counts.calls === 0 ? 0 : counts.slowCalls / counts.calls
    })

    /** The call that counted against the dependency, in one safe line. */
    const describeCall = (result: Exit.Exit<unknown, unknown>, failure: boolean, slow: boolean, took: number) => {
      if (!failure) return `a slow call (${took} ms, slow from ${slowMillis} ms)`
      const described = Exit.isSuccess(result) ? "a success classified as a failure" : describeExit(result)
      return slow ? `${described} (after ${took} ms, slow)` : described
    }

    /** The next open duration: fixed, or the schedule's next step (its last step once it is done). */
    const nextOpenMillis = (breaker: KeyBreaker, at: number, reopening: boolean): Effect.Effect<number> => {
      if (breaker.openDurations === undefined) return Effect.succeed(fixedOpenMillis!)
      if (!reopening) breaker.openDurations.reset()
      return Effect.map(breaker.openDurations.next(at, 0), (millis) => millis ?? breaker.openedFor)
    }

    const openFor = (breaker: KeyBreaker, trip: Trip, millis: number) => {
      breaker.openedFor = millis
      breaker.openUntil = trip.at + millis
      breaker.window.clear()
      breaker.trip = trip
      transition(breaker, "OPEN", trip.at, trip.reason)
    }

    /**
     * Opens at once for a fixed duration (no effect needed); a schedule's next
     * step is an effect (after which nothing happens if the key changed state
     * meanwhile). With a store, the open is then shared (an effect):
     * `reopenOf` is the store's generation of the half-open whose probe
     * failed (`null` for a CLOSED window that tripped).
     */
    const open = (breaker: KeyBreaker, trip: Trip, reopenOf: number | null = null): Effect.Effect<void> | undefined => {
      if (breaker.openDurations === undefined) {
        openFor(breaker, trip, fixedOpenMillis!)
        return store === undefined ? undefined : shareOpen(breaker, reopenOf)
      }
      const generation = breaker.generation
      return Effect.flatMap(nextOpenMillis(breaker, trip.at, trip.reason !== "Tripped"), (millis) => {
        if (breaker.generation !== generation) return Effect.void
        openFor(breaker, trip, millis)
        return store === undefined ? Effect.void : shareOpen(breaker, reopenOf)
      })
    }

    /** When the earliest running probe reaches `halfOpenTimeout`; undefined with none running or no limit. */
    const probeDeadline = (breaker: KeyBreaker): number | undefined => {
      if (breaker.runningProbes.size === 0 || !Number.isFinite(halfOpenTimeoutMillis)) return undefined
      let earliest = Number.POSITIVE_INFINITY
      for (const probe of breaker.runningProbes) if (probe.startedAt < earliest) earliest = probe.startedAt
      return earliest + halfOpenTimeoutMillis
    }

    /**
     * Brings a key up to date with the Clock, as of `at`: a probe that has run
     * `halfOpenTimeout` re-opens it (stamped with when that became due), and
     * OPEN becomes HALF_OPEN once its time is up. Answers an effect only when
     * an open-duration schedule must be stepped first; that effect finishes the job.
     */
    const refresh = (breaker: KeyBreaker, at: number): Effect.Effect<void> | undefined => {
      for (;;) {
        if (breaker.state === "HALF_OPEN") {
          const due = probeDeadline(breaker)
          if (due === undefined || at < due) return undefined
          const failure = `a probe that had not answered after ${halfOpenTimeoutMillis} ms (halfOpenTimeout)`
          const counts = { calls: breaker.probeSuccesses + 1, failures: 1, slowCalls: 0 }
          const pending = open(breaker, tripOf("ProbeTimedOut", due, failure, counts), breaker.sharedGeneration)
          if (pending !== undefined)
            return Effect.zipRight(
              pending,
              Effect.suspend(() => refresh(breaker, at) ?? Effect.void)
            )
        } else if (breaker.state === "OPEN" && at >= breaker.openUntil) {
          transition(breaker, "HALF_OPEN", breaker.openUntil, "OpenDurationElapsed")
        } else {
          return undefined
        }
      }
    }

    /** Runs `continuation` once the key is up to date with the Clock (see {@link refresh}). */
    const current = <A, E, R>(
      breaker: KeyBreaker,
      at: number,
      continuation: () => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E, R> => {
      const pending = refresh(breaker, at)
      return pending === undefined ? continuation() : Effect.zipRight(pending, Effect.suspend(continuation))
    }

    /**
     * While HALF_OPEN with every slot taken: the time until a probe can close
     * it, as the breaker can tell it: the open duration last used (a probe
     * usually answers well within it; a caller refused again then gets a fresh
     * answer), but no later than the earliest running probe reaches
     * `halfOpenTimeout` (the latest a slot frees or the breaker re-opens).
     * Never 0 (at least 1 ms), so a client that honours it does not retry at
     * once into another refusal; and never the whole `halfOpenTimeout`, which
     * would hold a client back a minute for a probe that takes a second.
     */
    const halfOpenWait = (breaker: KeyBreaker, at: number) => {
      const byOpenDuration = at + breaker.openedFor
      const deadline = probeDeadline(breaker)
      return Math.max(1, (deadline === undefined ? byOpenDuration : Math.min(deadline, byOpenDuration)) - at)
    }

    const reject = (breaker: KeyBreaker, state: CircuitOpenError["state"], retryAfterMillis: number) => {
      breaker.metrics.rejected()
      const fields = { breaker: name, key: breaker.key, state, retryAfterMillis }
      return new CircuitOpenError(breaker.trip === undefined ? fields : { ...fields, trip: breaker.trip })
    }

    /** The refusal of an up-to-date key that lets nothing through now. */
    const refusal = (breaker: KeyBreaker, at: number): CircuitOpenError => {
      switch (breaker.state) {
        case "OPEN":
          return reject(breaker, "OPEN", breaker.openUntil - at)
        case "ISOLATED":
          return reject(breaker, "ISOLATED", Number.POSITIVE_INFINITY)
        default:
          return reject(breaker, "HALF_OPEN", halfOpenWait(breaker, at))
      }
    }

    const letsThrough = (breaker: KeyBreaker) =>
      breaker.state === "CLOSED" || (breaker.state === "HALF_OPEN" && breaker.probesTaken < halfOpenProbes)

    /** Takes a permit from an up-to-date key, or refuses. */
    const take = (breaker: KeyBreaker, at: number): PermitRecord | CircuitOpenError => {
      if (!letsThrough(breaker)) return refusal(breaker, at)
      const probe = breaker.state === "HALF_OPEN"
      if (probe) breaker.probesTaken++
      breaker.inFlight++
      const record: PermitRecord = {
        key: breaker.key,
        breaker,
        generation: breaker.generation,
        probe,
        startedAt: at,
        done: false
      }
      if (probe) breaker.runningProbes.add(record)
      return record
    }

    // ---- the shared state (with a store) ---------------------------------------------

    /**
     * Takes the store's view of a key into the local one. The store's answer
     * to our own call applies unless a newer one was seen; a notice only if it
     * is newer than anything seen. Deadlines only move later: an OPEN is
     * extended, never shortened, and one the store did not hear of (it did not
     * answer) lasts its time whatever the store says.
     */
    const adopt = (breaker: KeyBreaker, shared: CircuitBreakerStore.SharedState, at: number, answer: boolean) => {
      if (answer ? shared.generation < breaker.sharedGeneration : shared.generation <= breaker.sharedGeneration) return
      breaker.sharedGeneration = shared.generation
      switch (shared.state) {
        case "OPEN": {
          const until = at + shared.openRemaining
          if (breaker.state === "OPEN") {
            if (until > breaker.openUntil) {
              breaker.openUntil = until
              breaker.openedFor = shared.openedFor
            }
            return
          }
          breaker.openedFor = shared.openedFor
          breaker.openUntil = until
          breaker.window.clear()
          if (shared.trip !== null) breaker.trip = shared.trip
          transition(breaker, "OPEN", at, shared.trip?.reason ?? "Tripped", true)
          return
        }
        case "HALF_OPEN": {
          if (breaker.state === "HALF_OPEN" || (breaker.state === "OPEN" && breaker.openUntil > at)) return
          breaker.openedFor = shared.openedFor
          breaker.window.clear()
          if (shared.trip !== null) breaker.trip = shared.trip
          transition(breaker, "HALF_OPEN", at, "OpenDurationElapsed", true)
          return
        }
        case "CLOSED": {
          if (breaker.state === "CLOSED" || (breaker.state === "OPEN" && breaker.localOnlyUntil > at)) return
          breaker.window.clear()
          breaker.openDurations?.reset()
          transition(breaker, "CLOSED", at, breaker.state === "ISOLATED" ? "Reset" : "ProbesSucceeded", true)
          return
        }
        case "ISOLATED": {
          if (breaker.state === "ISOLATED") return
          breaker.window.clear()
          breaker.trip = undefined
          transition(breaker, "ISOLATED", at, "Isolated", true)
        }
      }
    }

    /** A store call whose answer is adopted; when the store does not answer, the local state stands. */
    const ask = (
      breaker: KeyBreaker,
      at: number,
      call: Effect.Effect<CircuitBreakerStore.SharedState, CircuitBreakerStore.CircuitBreakerStoreError>,
      onUnanswered: () => void = () => {}
    ): Effect.Effect<void> =>
      Effect.uninterruptible(
        Effect.matchEffect(call, {
          onFailure: () => Effect.sync(onUnanswered),
          onSuccess: (shared) => Effect.sync(() => adopt(breaker, shared, at, true))
        })
      )

    /** Reads the store's state of a key the first time the key is used (and again on a `Resync`). */
    const learn = (breaker: KeyBreaker, at: number): Effect.Effect<void> => {
      breaker.known = true
      return ask(breaker, at, store!.get({ breaker: name, key: breaker.key, now: at }))
    }

    /** Runs `continuation` once the store's state of the key has been read (at once without a store). */
    const whenKnown = <A, E, R>(
      breaker: KeyBreaker,
      at: number,
      continuation: () => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E, R> =>
      store === undefined || breaker.known
        ? continuation()
        : Effect.zipRight(learn(breaker, at), Effect.suspend(continuation))

    /** Tells the store the key opened locally (until `openUntil`); an unanswered open stays local until then. */
    const shareOpen = (breaker: KeyBreaker, reopenOf: number | null): Effect.Effect<void> => {
      const at = now()
      const trip = breaker.trip!
      const until = breaker.openUntil
      const request = {
        breaker: name,
        key: breaker.key,
        now: at,
        openFor: Math.max(0, until - at),
        trip,
        generation: reopenOf
      }
      return ask(
        breaker,
        at,
        Effect.tap(store!.open(request), () => {
          breaker.localOnlyUntil = 0
        }),
        () => {
          if (breaker.state === "OPEN") breaker.localOnlyUntil = breaker.openUntil
        }
      )
    }

    /** Gives a probe's slot back to the store, with its success or without a verdict. */
    const settleShared = (
      breaker: KeyBreaker,
      holder: string,
      generation: number,
      outcome: "success" | "released"
    ): Effect.Effect<void> => {
      const at = now()
      return ask(
        breaker,
        at,
        store!.settleProbe({
          breaker: name,
          key: breaker.key,
          now: at,
          holder,
          generation,
          outcome,
          probes: halfOpenProbes
        })
      )
    }

    /**
     * A half-open probe with a store: a slot there first (across processes).
     * Refused there: the store's state is adopted and decides (CLOSED lets the
     * call through). The store not answering: the local slots decide.
     */
    const takeShared = (breaker: KeyBreaker, at: number): Effect.Effect<PermitRecord | CircuitOpenError> => {
      const generation = breaker.generation
      const holder = `${instance}-${++probeIds}`
      const request = { breaker: name, key: breaker.key, now: at, holder, probes: halfOpenProbes, lease: leaseMillis }
      return Effect.uninterruptible(
        Effect.matchEffect(store!.acquireProbe(request), {
          onFailure: () => Effect.sync(() => take(breaker, now())),
          onSuccess: (answer) =>
            Effect.suspend((): Effect.Effect<PermitRecord | CircuitOpenError> => {
              const later = now()
              if (
                answer.granted &&
                breaker.generation === generation &&
                breaker.state === "HALF_OPEN" &&
                letsThrough(breaker)
              ) {
                const record = take(breaker, later) as PermitRecord
                record.holder = holder
                record.sharedGeneration = answer.shared.generation
                if (answer.shared.generation > breaker.sharedGeneration)
                  breaker.sharedGeneration = answer.shared.generation
                return Effect.succeed(record)
              }
              const giveBack = answer.granted
                ? settleShared(breaker, holder, answer.shared.generation, "released")
                : Effect.void
              adopt(breaker, answer.shared, at, true)
              return Effect.zipRight(
                giveBack,
                current(breaker, later, () =>
                  Effect.succeed(breaker.state === "CLOSED" ? take(breaker, later) : refusal(breaker, later))
                )
              )
            })
        })
      )
    }

    /** Takes a permit from an up-to-date key, through the store for a half-open probe. */
    const takeAny = (breaker: KeyBreaker, at: number): Effect.Effect<PermitRecord | CircuitOpenError> =>
      store !== undefined && breaker.state === "HALF_OPEN" && letsThrough(breaker)
        ? takeShared(breaker, at)
        : Effect.succeed(take(breaker, at))

    /** Refuses as `admit` would, but takes nothing. */
    const check = (key = DEFAULT_KEY): Effect.Effect<void, CircuitOpenError> =>
      Effect.suspend(() => {
        if (store !== undefined) {
          const at = now()
          const breaker = breakerFor(key, at)
          return whenKnown(breaker, at, () =>
            current(breaker, at, () => (letsThrough(breaker) ? Effect.void : Effect.fail(refusal(breaker, at))))
          )
        }
        const breaker = breakers.get(key)
        if (breaker === undefined || breaker.state === "CLOSED") return Effect.void
        const at = now()
        return current(breaker, at, () => (letsThrough(breaker) ? Effect.void : Effect.fail(refusal(breaker, at))))
      })

    /**
     * Records one call's outcome. Synchronous; answers an effect only when
     * something must still be done (stepping an open-duration schedule), so
     * the success path allocates no effect. A call that began before the
     * breaker last changed state (another generation) does not vote: so a
     * probe already counted as timed out is ignored when it ends.
     */
    const recordOutcome = (
      breaker: KeyBreaker,
      generation: number,
      probe: PermitRecord | undefined,
      startedAt: number,
      result: Exit.Exit<unknown, unknown> | "interrupted"
    ): Effect.Effect<void> | undefined => {
      // A CLOSED breaker without slow calls or a time window needs no second
      // clock reading for a call that began in its generation (its window
      // ignores time, and admission already marked the key as used).
      const cheap = breaker.state === "CLOSED" && generation === breaker.generation && !timeMatters
      if (cheap) return judge(breaker, generation, probe, startedAt, startedAt, result)
      const at = now()
      breaker.lastUsed = at
      const pending = refresh(breaker, at)
      if (pending === undefined) return judge(breaker, generation, probe, startedAt, at, result)
      return Effect.zipRight(
        pending,
        Effect.suspend(() => judge(breaker, generation, probe, startedAt, at, result) ?? Effect.void)
      )
    }

    /** The verdict of a call on an up-to-date key. */
    const judge = (
      breaker: KeyBreaker,
      generation: number,
      probe: PermitRecord | undefined,
      startedAt: number,
      at: number,
      result: Exit.Exit<unknown, unknown> | "interrupted"
    ): Effect.Effect<void> | undefined => {
      const slot = probe?.holder
      if (generation !== breaker.generation) {
        return slot === undefined ? undefined : settleShared(breaker, slot, probe!.sharedGeneration!, "released")
      }
      if (probe !== undefined) breaker.runningProbes.delete(probe)
      const verdict = result === "interrupted" ? "ignore" : classify(result)
      if (result === "interrupted" || verdict === "ignore") {
        if (probe !== undefined) breaker.probesTaken--
        return slot === undefined ? undefined : settleShared(breaker, slot, probe!.sharedGeneration!, "released")
      }
      const failure = verdict === "failure"
      const took = at - startedAt
      const slow = slowMillis !== undefined && took >= slowMillis
      if (probe !== undefined) {
        if (failure || slow) {
          const counts = { calls: breaker.probeSuccesses + 1, failures: failure ? 1 : 0, slowCalls: slow ? 1 : 0 }
          return open(
            breaker,
            tripOf("ProbeFailed", at, describeCall(result, failure, slow, took), counts),
            probe.sharedGeneration ?? breaker.sharedGeneration
          )
        }
        breaker.probeSuccesses++
        if (breaker.probeSuccesses >= halfOpenProbes) {
          breaker.window.clear()
          breaker.openDurations?.reset()
          transition(breaker, "CLOSED", at, "ProbesSucceeded")
        }
        return slot === undefined ? undefined : settleShared(breaker, slot, probe.sharedGeneration!, "success")
      }
      const outcome = failure ? (slow ? BAD_SLOW : BAD) : slow ? SLOW : GOOD
      if (breaker.state === "CLOSED" && breaker.window.record(outcome, at)) {
        const counts = breaker.window.counts(at)
        return open(breaker, tripOf("Tripped", now(), describeCall(result, failure, slow, took), counts))
      }
      return undefined
    }

    const settlePermit = (
      permit: CircuitBreaker.Permit,
      result: Exit.Exit<unknown, unknown> | "interrupted"
    ): Effect.Effect<void> | undefined => {
      const record = permit as PermitRecord
      if (record.done) return undefined
      record.done = true
      record.breaker.inFlight--
      return recordOutcome(
        record.breaker,
        record.generation,
        record.probe ? record : undefined,
        record.startedAt,
        result
      )
    }

    const release = (permit: CircuitBreaker.Permit, result: Exit.Exit<unknown, unknown> | "interrupted") =>
      Effect.suspend(() => settlePermit(permit, result) ?? Effect.void)

    const admit = (key = DEFAULT_KEY): Effect.Effect<CircuitBreaker.Permit, CircuitOpenError> =>
      Effect.suspend(() => {
        const at = now()
        const breaker = breakerFor(key, at)
        breaker.lastUsed = at
        return whenKnown(breaker, at, () =>
          current(breaker, at, () =>
            Effect.flatMap(takeAny(breaker, at), (result) =>
              result instanceof CircuitOpenError ? Effect.fail(result) : Effect.succeed(result)
            )
          )
        )
      })

    /** With the default classify a success needs no Exit of its own. */
    const successExit = (value: unknown) => (options.classify === undefined ? SUCCESS : Exit.succeed(value))

    /** Runs `effect` holding a permit, handing it back whatever happens (interruption included). */
    const protectWithPermit = <A, E, R>(effect: Effect.Effect<A, E, R>, breaker: KeyBreaker, at: number) =>
      Effect.uninterruptibleMask((restore): Effect.Effect<A, E | CircuitOpenError, R> => {
        const withPermit = (permit: PermitRecord | CircuitOpenError): Effect.Effect<A, E | CircuitOpenError, R> => {
          if (permit instanceof CircuitOpenError) return Effect.fail(permit)
          return Effect.matchCauseEffect(restore(effect), {
            onFailure: (cause) => {
              const after = settlePermit(permit, Cause.isInterruptedOnly(cause) ? "interrupted" : Exit.failCause(cause))
              return after === undefined ? Effect.failCause(cause) : Effect.zipRight(after, Effect.failCause(cause))
            },
            onSuccess: (value) => {
              const after = settlePermit(permit, successExit(value))
              return after === undefined ? Effect.succeed(value) : Effect.as(after, value)
            }
          })
        }
        return current(breaker, at, (): Effect.Effect<A, E | CircuitOpenError, R> => {
          if (store !== undefined && breaker.state === "HALF_OPEN" && letsThrough(breaker)) {
            return Effect.flatMap(takeShared(breaker, at), withPermit)
          }
          return withPermit(take(breaker, at))
        })
      })

    /** The CLOSED path: the effect, its outcome recorded; no permit, no uninterruptible region. */
    const closedCall = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      breaker: KeyBreaker,
      generation: number,
      startedAt: number
    ): Effect.Effect<A, E, R> =>
      Effect.matchCauseEffect(effect, {
        onFailure: (cause) => {
          if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
          const after = recordOutcome(reattach(breaker), generation, undefined, startedAt, Exit.failCause(cause))
          return after === undefined ? Effect.failCause(cause) : Effect.zipRight(after, Effect.failCause(cause))
        },
        onSuccess: (value) => {
          const after = recordOutcome(reattach(breaker), generation, undefined, startedAt, successExit(value))
          return after === undefined ? Effect.succeed(value) : Effect.as(after, value)
        }
      })

    /**
     * A CLOSED breaker lends nothing: the call holds no slot, so it runs
     * without an uninterruptible region (which costs more than the rest of
     * the breaker) and an interruption simply leaves no verdict. Any other
     * state goes through {@link protectWithPermit}, so a probe slot is always
     * given back. When the outcome's time does not matter, the CLOSED path is
     * built once per generation and reused: a call allocates nothing of ours.
     */
    const protect = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      protectOptions?: CircuitBreaker.KeyOptions
    ): Effect.Effect<A, E | CircuitOpenError, R> => {
      const key = protectOptions?.key ?? DEFAULT_KEY
      let cachedBreaker: KeyBreaker | undefined
      let cachedGeneration = -1
      let cached: Effect.Effect<A, E, R> | undefined
      return Effect.suspend(() => {
        const at = now()
        const breaker = breakerFor(key, at)
        breaker.lastUsed = at
        if (store !== undefined && !breaker.known) {
          return Effect.zipRight(
            learn(breaker, at),
            Effect.suspend(() =>
              breaker.state === "CLOSED"
                ? closedCall(effect, breaker, breaker.generation, at)
                : protectWithPermit(effect, breaker, now())
            )
          )
        }
        if (breaker.state !== "CLOSED") return protectWithPermit(effect, breaker, at)
        if (timeMatters) return closedCall(effect, breaker, breaker.generation, at)
        if (cached === undefined || cachedBreaker !== breaker || cachedGeneration !== breaker.generation) {
          cachedBreaker = breaker
          cachedGeneration = breaker.generation
          cached = closedCall(effect, breaker, breaker.generation, at)
        }
        return cached
      })
    }

    /** A key evicted while its call ran (longer than `idleTimeout`) takes its breaker back. */
    const reattach = (breaker: KeyBreaker) => {
      if (breaker.evicted) {
        breaker.evicted = false
        if (!breakers.has(breaker.key)) breakers.set(breaker.key, breaker)
      }
      return breaker
    }

    /** An up-to-date key, now. */
    const snapshotOf = (breaker: KeyBreaker, at: number): CircuitBreaker.Snapshot => {
      const counts = breaker.window.counts(at)
      const result: { -readonly [K in keyof CircuitBreaker.Snapshot]: CircuitBreaker.Snapshot[K] } = {
        key: breaker.key,
        state: breaker.state,
        calls: counts.calls,
        failures: counts.failures,
        slowCalls: counts.slowCalls,
        probesInFlight: breaker.state === "HALF_OPEN" ? breaker.runningProbes.size : 0,
        inFlight: breaker.inFlight
      }
      if (breaker.state === "OPEN") result.retryAfterMillis = breaker.openUntil - at
      else if (breaker.state === "HALF_OPEN" && !letsThrough(breaker))
        result.retryAfterMillis = halfOpenWait(breaker, at)
      if (breaker.trip !== undefined) result.trip = breaker.trip
      return result
    }

    const inspect = (key = DEFAULT_KEY): Effect.Effect<CircuitBreaker.Snapshot> =>
      Effect.suspend(() => {
        if (store !== undefined) {
          const at = now()
          const breaker = breakerFor(key, at)
          return whenKnown(breaker, at, () => current(breaker, at, () => Effect.succeed(snapshotOf(breaker, at))))
        }
        const breaker = breakers.get(key)
        if (breaker === undefined) {
          return Effect.succeed({
            key,
            state: "CLOSED",
            calls: 0,
            failures: 0,
            slowCalls: 0,
            probesInFlight: 0,
            inFlight: 0
          } satisfies CircuitBreaker.Snapshot)
        }
        const at = now()
        return current(breaker, at, () => Effect.succeed(snapshotOf(breaker, at)))
      })

    const force = (key: string, to: "ISOLATED" | "CLOSED", reason: CircuitBreaker.TransitionReason) =>
      Effect.suspend(() => {
        const at = now()
        const breaker = breakerFor(key, at)
        breaker.window.clear()
        breaker.openDurations?.reset()
        breaker.trip = undefined
        if (breaker.state !== to) transition(breaker, to, at, reason)
        else breaker.generation++
        if (store === undefined) return Effect.void
        breaker.known = true
        breaker.localOnlyUntil = 0
        const target = { breaker: name, key, now: at }
        return ask(breaker, at, to === "ISOLATED" ? store.isolate(target) : store.reset(target))
      })

    const sweep = Effect.sync(() => {
      const at = now()
      let evicted = 0
      for (const [key, breaker] of breakers) {
        // Only a CLOSED key with nothing running is forgotten (with what its window held);
        // an OPEN, HALF_OPEN or ISOLATED key is kept, or eviction would close it.
        if (breaker.state === "CLOSED" && breaker.inFlight === 0 && at - breaker.lastUsed >= idleMillis) {
          breakers.delete(key)
          breaker.evicted = true
          evicted++
        }
      }
      return evicted
    })
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(idleMillis)), sweep)))

    // With a store: its notices, subscribed before the breaker is handed out, mirrored into the keys held here.
    if (store !== undefined) {
      const notices = yield* store.notices
      const onNotice = (notice: CircuitBreakerStore.Notice): Effect.Effect<void> => {
        if (notice._tag === "Resync") {
          return Effect.forEach(Array.from(breakers.values()), (breaker) => learn(breaker, now()), { discard: true })
        }
        const breaker = notice.breaker === name ? breakers.get(notice.key) : undefined
        return breaker === undefined ? Effect.void : Effect.sync(() => adopt(breaker, notice.shared, now(), false))
      }
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(notices), onNotice)))
    }

    return {
      name,
      protect,
      check,
      admit,
      release,
      state: (key?: string) => Effect.map(inspect(key), (snapshot) => snapshot.state),
      inspect,
      isolate: (key = DEFAULT_KEY) => force(key, "ISOLATED", "Isolated"),
      reset: (key = DEFAULT_KEY) => force(key, "CLOSED", "Reset"),
      transitions: transitions.stream,
      subscribe: transitions.subscribe,
      size: Effect.sync(() => breakers.size),
      sweep
    } satisfies CircuitBreaker.CircuitBreakerShape
  })
