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
 * can never be stuck half-open. Every permit carries the generation it was
 * taken in, so a call that outlives a state change cannot vote in the next.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import * as InvalidOptions from "../InvalidOptions.js"
import * as Window from "./breakerWindow.js"
import { CircuitOpenError } from "./circuitBreakerError.js"
import { makeKeyMetrics } from "./circuitBreakerMetrics.js"
import * as EventHub from "./eventHub.js"
import * as ScheduleStepper from "./scheduleStepper.js"

export const DEFAULT_KEY = "default"
const DEFAULT_OPEN_DURATION = Duration.seconds(30)
const DEFAULT_IDLE_TIMEOUT = Duration.minutes(10)

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
  Schema.Struct({ kind: Schema.Literal("count"), size: InvalidOptions.PositiveInt, ...RateFields }),
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
  classify: Schema.optional(Schema.UndefinedOr(Schema.declare(Predicate.isFunction))),
  idleTimeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  transitionBufferSize: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt))
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
  inFlight = 0
  lastUsed: number
  /** Forgotten by the sweeper; a call still running on it puts it back. */
  evicted = false
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
    /** Whether an outcome's time matters: slow calls, or a time-based window. */
    const timeMatters = slowMillis !== undefined || policy.kind === "time"
    const classify = options.classify ?? defaultClassify
    const idleMillis = millisOf(options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT)

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
      reason: CircuitBreaker.TransitionReason
    ) => {
      const from = breaker.state
      breaker.state = to
      breaker.generation++
      breaker.probesTaken = 0
      breaker.probeSuccesses = 0
      breaker.metrics.state(to)
      breaker.metrics.transition(from, to)
      if (transitions.observed()) transitions.offer({ breaker: name, key: breaker.key, from, to, at, reason })
    }

    /** The next open duration: fixed, or the schedule's next step (its last step once it is done). */
    const nextOpenMillis = (breaker: KeyBreaker, at: number, reopening: boolean): Effect.Effect<number> => {
      if (breaker.openDurations === undefined) return Effect.succeed(fixedOpenMillis!)
      if (!reopening) breaker.openDurations.reset()
      return Effect.map(breaker.openDurations.next(at, 0), (millis) => millis ?? breaker.openedFor)
    }

    const openFor = (breaker: KeyBreaker, at: number, reason: CircuitBreaker.TransitionReason, millis: number) => {
      breaker.openedFor = millis
      breaker.openUntil = at + millis
      breaker.window.clear()
      transition(breaker, "OPEN", at, reason)
    }

    /** Opens at once for a fixed duration (no effect needed); a schedule's next step is an effect. */
    const open = (
      breaker: KeyBreaker,
      at: number,
      reason: CircuitBreaker.TransitionReason
    ): Effect.Effect<void> | undefined => {
      if (breaker.openDurations === undefined) {
        openFor(breaker, at, reason, fixedOpenMillis!)
        return undefined
      }
      return Effect.map(nextOpenMillis(breaker, at, reason === "ProbeFailed"), (millis) =>
        openFor(breaker, at, reason, millis)
      )
    }

    /** OPEN becomes HALF_OPEN once its time is up, observed on the next look. */
    const refresh = (breaker: KeyBreaker, at: number) => {
      if (breaker.state === "OPEN" && at >= breaker.openUntil) {
        transition(breaker, "HALF_OPEN", breaker.openUntil, "OpenDurationElapsed")
      }
    }

    const tryAdmit = (key: string): PermitRecord | CircuitOpenError => {
      const at = now()
      const breaker = breakerFor(key, at)
      breaker.lastUsed = at
      refresh(breaker, at)
      switch (breaker.state) {
        case "CLOSED":
          break
        case "HALF_OPEN":
          if (breaker.probesTaken < halfOpenProbes) {
            breaker.probesTaken++
            break
          }
          return reject(breaker, "HALF_OPEN", 0)
        case "OPEN":
          return reject(breaker, "OPEN", breaker.openUntil - at)
        case "ISOLATED":
          return reject(breaker, "ISOLATED", Number.POSITIVE_INFINITY)
      }
      breaker.inFlight++
      return {
        key,
        breaker,
        generation: breaker.generation,
        probe: breaker.state === "HALF_OPEN",
        startedAt: at,
        done: false
      }
    }

    /** Refuses as `tryAdmit` would, but takes nothing. */
    const check = (key = DEFAULT_KEY) =>
      Effect.suspend(() => {
        const breaker = breakers.get(key)
        if (breaker === undefined) return Effect.void
        const at = now()
        refresh(breaker, at)
        switch (breaker.state) {
          case "OPEN":
            return Effect.fail(reject(breaker, "OPEN", breaker.openUntil - at))
          case "ISOLATED":
            return Effect.fail(reject(breaker, "ISOLATED", Number.POSITIVE_INFINITY))
          case "HALF_OPEN":
            return breaker.probesTaken < halfOpenProbes ? Effect.void : Effect.fail(reject(breaker, "HALF_OPEN", 0))
          default:
            return Effect.void
        }
      })

    const reject = (breaker: KeyBreaker, state: CircuitOpenError["state"], retryAfterMillis: number) => {
      breaker.metrics.rejected()
      return new CircuitOpenError({ breaker: name, key: breaker.key, state, retryAfterMillis })
    }

    /**
     * Records one call's outcome. Synchronous; answers an effect only when
     * something must still be done (stepping an open-duration schedule), so
     * the success path allocates no effect. A call that began before the
     * breaker last changed state (another generation) does not vote.
     */
    const recordOutcome = (
      breaker: KeyBreaker,
      generation: number,
      probe: boolean,
      startedAt: number,
      result: Exit.Exit<unknown, unknown> | "interrupted"
    ): Effect.Effect<void> | undefined => {
      // A CLOSED breaker without slow calls or a time window needs no second
      // clock reading for a call that began in its generation (its window
      // ignores time, and admission already marked the key as used).
      const cheap = breaker.state === "CLOSED" && generation === breaker.generation && !timeMatters
      const at = cheap ? startedAt : now()
      if (!cheap) {
        breaker.lastUsed = at
        refresh(breaker, at)
      }
      if (generation !== breaker.generation) return undefined
      const verdict = result === "interrupted" ? "ignore" : classify(result)
      if (verdict === "ignore") {
        if (probe) breaker.probesTaken--
        return undefined
      }
      const failure = verdict === "failure"
      const slow = slowMillis !== undefined && at - startedAt >= slowMillis
      if (probe) {
        if (failure || slow) return open(breaker, at, "ProbeFailed")
        breaker.probeSuccesses++
        if (breaker.probeSuccesses >= halfOpenProbes) {
          breaker.window.clear()
          breaker.openDurations?.reset()
          transition(breaker, "CLOSED", at, "ProbesSucceeded")
        }
        return undefined
      }
      const outcome = failure ? (slow ? BAD_SLOW : BAD) : slow ? SLOW : GOOD
      if (breaker.state === "CLOSED" && breaker.window.record(outcome, at)) return open(breaker, now(), "Tripped")
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
      return recordOutcome(record.breaker, record.generation, record.probe, record.startedAt, result)
    }

    const release = (permit: CircuitBreaker.Permit, result: Exit.Exit<unknown, unknown> | "interrupted") =>
      Effect.suspend(() => settlePermit(permit, result) ?? Effect.void)

    const admit = (key = DEFAULT_KEY) =>
      Effect.suspend(() => {
        const result = tryAdmit(key)
        return result instanceof CircuitOpenError ? Effect.fail(result) : Effect.succeed(result)
      })

    /** With the default classify a success needs no Exit of its own. */
    const successExit = (value: unknown) => (options.classify === undefined ? SUCCESS : Exit.succeed(value))

    /** Runs `effect` holding a permit, handing it back whatever happens (interruption included). */
    const protectWithPermit = <A, E, R>(effect: Effect.Effect<A, E, R>, key: string) =>
      Effect.uninterruptibleMask((restore): Effect.Effect<A, E | CircuitOpenError, R> => {
        const permit = tryAdmit(key)
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
          const after = recordOutcome(reattach(breaker), generation, false, startedAt, Exit.failCause(cause))
          return after === undefined ? Effect.failCause(cause) : Effect.zipRight(after, Effect.failCause(cause))
        },
        onSuccess: (value) => {
          const after = recordOutcome(reattach(breaker), generation, false, startedAt, successExit(value))
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
      const guarded = protectWithPermit(effect, key)
      let cachedBreaker: KeyBreaker | undefined
      let cachedGeneration = -1
      let cached: Effect.Effect<A, E, R> | undefined
      return Effect.suspend(() => {
        const at = now()
        const breaker = breakerFor(key, at)
        refresh(breaker, at)
        if (breaker.state !== "CLOSED") return guarded
        breaker.lastUsed = at
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

    const snapshot = (key = DEFAULT_KEY): CircuitBreaker.Snapshot => {
      const at = now()
      const breaker = breakers.get(key)
      if (breaker === undefined) {
        return { key, state: "CLOSED", calls: 0, failures: 0, slowCalls: 0, probesInFlight: 0, inFlight: 0 }
      }
      refresh(breaker, at)
      const counts = breaker.window.counts(at)
      const result: { -readonly [K in keyof CircuitBreaker.Snapshot]: CircuitBreaker.Snapshot[K] } = {
        key,
        state: breaker.state,
        ...counts,
        probesInFlight: breaker.state === "HALF_OPEN" ? breaker.probesTaken - breaker.probeSuccesses : 0,
        inFlight: breaker.inFlight
      }
      if (breaker.state === "OPEN") result.retryAfterMillis = breaker.openUntil - at
      return result
    }

    const force = (key: string, to: "ISOLATED" | "CLOSED", reason: CircuitBreaker.TransitionReason) =>
      Effect.sync(() => {
        const at = now()
        const breaker = breakerFor(key, at)
        breaker.window.clear()
        breaker.openDurations?.reset()
        if (breaker.state !== to) transition(breaker, to, at, reason)
        else breaker.generation++
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

    return {
      name,
      protect,
      check,
      admit,
      release,
      state: (key?: string) => Effect.sync(() => snapshot(key).state),
      inspect: (key?: string) => Effect.sync(() => snapshot(key)),
      isolate: (key = DEFAULT_KEY) => force(key, "ISOLATED", "Isolated"),
      reset: (key = DEFAULT_KEY) => force(key, "CLOSED", "Reset"),
      transitions: transitions.stream,
      subscribe: transitions.subscribe,
      size: Effect.sync(() => breakers.size),
      sweep
    } satisfies CircuitBreaker.CircuitBreakerShape
  })
