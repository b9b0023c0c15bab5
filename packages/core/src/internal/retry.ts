/**
 * Retry's machinery: the backoff schedules, the options Schema, and the
 * decision taken after each failed attempt (retry after how long, or give up
 * and why). The Executor uses `makeDecider` directly so it can re-admit each
 * attempt and record each decision on the request's events.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Interval from "effect/ScheduleInterval"
import * as Schema from "effect/Schema"
import * as InvalidOptions from "../InvalidOptions.js"
import type * as Retry from "../Retry.js"
import * as RetryBudget from "./retryBudget.js"
import * as ScheduleStepper from "./scheduleStepper.js"

export const DEFAULT_MAX_ATTEMPTS = 3
export const DEFAULT_BASE = Duration.millis(200)
export const DEFAULT_MAX_DELAY = Duration.seconds(30)
export const DEFAULT_RETRY_AFTER_CEILING = Duration.minutes(1)

// ---- backoff schedules ------------------------------------------------------

const millisOf = (input: Duration.DurationInput) => Duration.toMillis(Duration.decode(input))

/** `base × factor^n`, capped; finite even when the power overflows. */
const exponentialMillis = (baseMillis: number, factor: number, capMillis: number, attempt: number) =>
  Math.min(capMillis, baseMillis * factor ** attempt)

/** A schedule that recurs forever with the delays `delayOf(n)` (n from 0), which may draw randomness. */
const fromDelays = <S>(initial: S, delayOf: (state: S) => Effect.Effect<readonly [S, number]>) =>
  Schedule.makeWithState<S, unknown, Duration.Duration>(initial, (now, _input, state) =>
    Effect.map(delayOf(state), ([next, delay]) => {
      const millis = Math.max(0, delay)
      return [next, Duration.millis(millis), ScheduleDecision.continueWith(Interval.after(now + millis))] as const
    })
  )

export const backoff = (options: Retry.BackoffOptions = {}): Schedule.Schedule<Duration.Duration> => {
  const base = millisOf(options.base ?? DEFAULT_BASE)
  const factor = options.factor ?? 2
  const cap = millisOf(options.maxDelay ?? DEFAULT_MAX_DELAY)
  switch (options.jitter ?? "full") {
    case "none":
      return fromDelays(0, (n) => Effect.succeed([n + 1, exponentialMillis(base, factor, cap, n)] as const))
    case "full":
      // AWS "full jitter": uniform in [0, min(cap, base × factor^n)].
      return fromDelays(0, (n) =>
        Effect.map(Random.next, (r) => [n + 1, r * exponentialMillis(base, factor, cap, n)] as const)
      )
    case "decorrelated":
      // AWS "decorrelated jitter": uniform in [base, previous × 3], capped.
      return fromDelays(base, (previous) =>
        Effect.map(Random.next, (r) => {
          const delay = Math.min(cap, base + r * (previous * 3 - base))
          return [delay, delay] as const
        })
      )
  }
}

// ---- options -----------------------------------------------------------------

const Ratio = Schema.Number.pipe(
  Schema.greaterThanOrEqualTo(0, { message: () => "Expected a share between 0 and 1" }),
  Schema.lessThanOrEqualTo(1, { message: () => "Expected a share between 0 and 1" })
)

const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative({ message: () => "Expected a whole number of zero or more" }))

export const BudgetOptionsSchema = Schema.Struct({
  ratio: Ratio,
  minRetries: Schema.optional(Schema.UndefinedOr(NonNegativeInt)),
  window: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration))
})

const OptionsSchema = Schema.Struct({
  maxAttempts: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  schedule: Schema.optional(Schema.UndefinedOr(Schema.declare(Schedule.isSchedule))),
  base: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  factor: Schema.optional(
    Schema.UndefinedOr(
      Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(1, { message: () => "Expected 1 or more" }))
    )
  ),
  maxDelay: Schema.optional(Schema.UndefinedOr(InvalidOptions.NonNegativeDuration)),
  jitter: Schema.optional(Schema.UndefinedOr(Schema.Literal("none", "full", "decorrelated"))),
  maxElapsed: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  retryAfterCeiling: Schema.optional(Schema.UndefinedOr(InvalidOptions.NonNegativeDuration)),
  isRetryable: Schema.optional(Schema.UndefinedOr(Schema.declare(Predicate.isFunction))),
  budget: Schema.optional(Schema.UndefinedOr(Schema.Object))
})

const decodeOptions = InvalidOptions.decode("Retry", OptionsSchema)
export const decodeBudgetOptions = InvalidOptions.decode("RetryBudget", BudgetOptionsSchema)

export const makeBudget = (options: Retry.BudgetOptions) =>
  Effect.map(decodeBudgetOptions(options), (decoded) =>
    RetryBudget.make({
      ratio: decoded.ratio,
      minRetries: decoded.minRetries ?? 0,
      windowMillis: millisOf(decoded.window ?? Duration.seconds(10))
    })
  )

export const policy = (options: Retry.Options = {}): Effect.Effect<Retry.Policy, InvalidOptions.InvalidOptionsError> =>
  Effect.map(
    decodeOptions(options),
    (): Retry.Policy => ({
      maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      schedule:
        options.schedule ??
        backoff({
          base: options.base ?? DEFAULT_BASE,
          factor: options.factor ?? 2,
          maxDelay: options.maxDelay ?? DEFAULT_MAX_DELAY,
          jitter: options.jitter ?? "full"
        }),
      maxElapsedMillis: options.maxElapsed === undefined ? undefined : millisOf(options.maxElapsed),
      retryAfterCeilingMillis: millisOf(options.retryAfterCeiling ?? DEFAULT_RETRY_AFTER_CEILING),
      isRetryable: options.isRetryable ?? isRetryable,
      budget: options.budget
    })
  )

// ---- verdicts ------------------------------------------------------------------

/** The error's own verdict: its `retryable` field or getter. Anything without one is not retried. */
export const isRetryable = (error: unknown): boolean =>
  Predicate.hasProperty(error, "retryable") && error.retryable === true

/** The error's `retryAfter` (a Duration, or milliseconds), if it carries one. */
export const retryAfterMillis = (error: unknown): number | undefined => {
  if (!Predicate.hasProperty(error, "retryAfter")) return undefined
  const value = error.retryAfter
  if (Duration.isDuration(value)) return Duration.toMillis(value)
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return value
  return undefined
}

// ---- decisions -----------------------------------------------------------------

/** Decides, after each failed attempt of one call, whether and when it is tried again. */
export const makeDecider = (policy: Retry.Policy, startedAt: number, deadlineAt?: number) => {
  const stepper = ScheduleStepper.make(policy.schedule)
  return (error: unknown, attempt: number, now: number): Effect.Effect<Retry.Decision> =>
    Effect.gen(function* () {
      if (!policy.isRetryable(error)) return giveUp("NotRetryable")
      if (attempt >= policy.maxAttempts) return giveUp("AttemptsExhausted")
      const scheduled = yield* stepper.next(now, error)
      if (scheduled === undefined) return giveUp("ScheduleDone")
      const retryAfter = retryAfterMillis(error)
      if (retryAfter !== undefined && retryAfter > policy.retryAfterCeilingMillis) {
        return giveUp("RetryAfterAboveCeiling")
      }
      const delay = Math.max(scheduled, retryAfter ?? 0)
      if (policy.maxElapsedMillis !== undefined && now + delay - startedAt > policy.maxElapsedMillis) {
        return giveUp("ElapsedExhausted")
      }
      if (deadlineAt !== undefined && now + delay >= deadlineAt) return giveUp("DeadlineExceeded")
      if (policy.budget !== undefined && !(yield* policy.budget.tryRetry)) return giveUp("BudgetExhausted")
      return { _tag: "Retry", delayMillis: delay } as const
    })
}

const giveUp = (reason: Retry.GiveUpReason): Retry.Decision => ({ _tag: "GiveUp", reason })

/**
 * A loop's options: the call's deadline (no retry past it); `refused` tells
 * a failure that made no call; `onDecision` hears every decision.
 */
export interface LoopOptions<E> {
  readonly deadlineAt?: number | undefined
  readonly refused?: ((error: E) => boolean) | undefined
  readonly onDecision?: ((decision: Retry.Decision) => void) | undefined
}

/** One call's retry loop (`makeLoop`): how it starts, and how it goes on from an attempt cut off its fiber. */
export interface Loop<A, E, R> {
  /** Runs the attempts from the first. */
  readonly run: Effect.Effect<A, E, R>
  /**
   * Goes on as if the attempt in flight had failed with `error`, on another
   * fiber: the one it ran on was interrupted to cut it off (the Executor's
   * timeout). The decision on it and every attempt after it are the loop's,
   * with its schedule's state and its counts, as if nothing had moved.
   */
  readonly resume: (error: E) => Effect.Effect<A, E, R>
}

/**
 * The one retry loop, which `retry` and the Executor both run: attempt `n`
 * (from 1); a failure is decided on (`makeDecider`), then tried again after
 * the delay, sleeping on `Clock`, until the policy gives up, when the last
 * error is returned. Defects and interruptions are not retried. `refused`
 * tells a failure that made no call (refused before it was sent): the policy
 * decides on it too, but it does not count as an attempt. `onDecision`
 * hears every decision. The decider is made at the first failure (most calls
 * have none), with the time the loop started.
 */
export const makeLoop = <A, E, R>(
  policy: Retry.Policy,
  attempt: (n: number) => Effect.Effect<A, E, R>,
  options: LoopOptions<E> = {}
): Loop<A, E, R> => {
  let startedAt = 0
  let decide: ReturnType<typeof makeDecider> | undefined
  /** Attempts made before the one in flight (refusals not counted). */
  let made = 0
  /** Decides on a failure of the attempt in flight (`counted`: attempts made with it), then goes on or gives up. */
  const decideOn = (error: E, counted: number): Effect.Effect<A, E, R> =>
    Effect.flatMap(
      Effect.clockWith((clock) => clock.currentTimeMillis),
      (now) => {
        decide ??= makeDecider(policy, startedAt, options.deadlineAt)
        return Effect.flatMap(decide(error, counted, now), (decision) => {
          options.onDecision?.(decision)
          return decision._tag === "GiveUp"
            ? Effect.fail(error)
            : Effect.zipRight(Effect.sleep(Duration.millis(decision.delayMillis)), from(counted))
        })
      }
    )
  const from = (before: number): Effect.Effect<A, E, R> => {
    made = before
    return Effect.catchAllCause(attempt(before + 1), (cause) => {
      const failure = Cause.failureOption(cause)
      if (Option.isNone(failure)) {
        // A defect is never retried (an interruption is no failure of the attempt's).
        if (!Cause.isInterruptedOnly(cause)) options.onDecision?.(giveUp("NotRetryable"))
        return Effect.failCause(cause)
      }
      const error = failure.value
      return decideOn(error, options.refused?.(error) === true ? before : before + 1)
    })
  }
  const started = Effect.clockWith((clock) =>
    Effect.flatMap(clock.currentTimeMillis, (now) => {
      startedAt = now
      return from(0)
    })
  )
  const run = policy.budget === undefined ? started : Effect.zipRight(policy.budget.recordRequest, started)
  return { run, resume: (error) => Effect.suspend(() => decideOn(error, made + 1)) }
}

/** The retry loop of one call (`makeLoop`), from its first attempt. */
export const loop = <A, E, R>(
  policy: Retry.Policy,
  attempt: (n: number) => Effect.Effect<A, E, R>,
  options: LoopOptions<E> = {}
): Effect.Effect<A, E, R> => Effect.suspend(() => makeLoop(policy, attempt, options).run)

/** Runs `self` under `policy`: retried while the decider says so, sleeping each delay on `Clock`. */
export const retry =
  (policy: Retry.Policy) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    loop(policy, () => self)

export { RetryBudget }
