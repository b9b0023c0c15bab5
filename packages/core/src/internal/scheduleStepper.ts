/**
 * Steps a `Schedule` by hand: asks it for its next delay without sleeping.
 *
 * Effect's `Schedule.driver` sleeps the delay itself; Retry and the
 * CircuitBreaker need the delay as a number first (to raise it to a
 * `Retry-After`, to check it against a deadline, to stamp it on an event,
 * to set an open duration). This keeps the schedule's own state between steps,
 * exactly as the driver would, so the delays are the schedule's.
 */
import * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"

export interface ScheduleStepper<In> {
  /** The next delay in milliseconds, or `undefined` once the schedule is done. */
  readonly next: (now: number, input: In) => Effect.Effect<number | undefined>
  /** Back to the schedule's initial state. */
  readonly reset: () => void
}

export const make = <In>(schedule: Schedule.Schedule<unknown, In>): ScheduleStepper<In> => {
  let state: unknown = schedule.initial
  return {
    next: (now, input) =>
      Effect.map(
        Effect.suspend(() => schedule.step(now, input, state)),
        ([nextState, , decision]) => {
          state = nextState
          if (ScheduleDecision.isDone(decision)) return undefined
          return Math.max(0, Intervals.start(decision.intervals) - now)
        }
      ),
    reset: () => {
      state = schedule.initial
    }
  }
}
