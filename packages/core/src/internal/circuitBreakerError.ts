/**
 * The CircuitBreaker's error, in its own module so that the machinery and the
 * public module can both use it without importing each other; with the record
 * of what opened a breaker (`Trip`) that the error and `inspect` carry, and the
 * safe one-line description of a failure that goes into it.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/** What opened the breaker, and what its window held at that moment. */
export const Trip = Schema.Struct({
  /** `Tripped` (the CLOSED window), `ProbeFailed`, or `ProbeTimedOut` (a probe outlived `halfOpenTimeout`). */
  reason: Schema.Literal("Tripped", "ProbeFailed", "ProbeTimedOut"),
  /** When it opened (ms on the breaker's Clock). */
  at: Schema.Number,
  /**
   * The call that tipped it, in one short line: the error's `_tag`, `reason`
   * and message (never the whole value; a `Redacted` stays redacted), a
   * defect, a slow call, or a probe that never answered.
   */
  failure: Schema.String,
  /** The window at the trip (for a probe: the probes of that half-open, this one included). */
  calls: Schema.Number,
  failures: Schema.Number,
  slowCalls: Schema.Number,
  /** `failures / calls` (0 with no calls). */
  failureRate: Schema.Number,
  /** `slowCalls / calls` (0 with no calls). */
  slowCallRate: Schema.Number
})
export type Trip = typeof Trip.Type

/** Which refusal: `Open`, `HalfOpenFull` (every probe slot taken) or `Isolated`. */
export type CircuitOpenReason = "Open" | "HalfOpenFull" | "Isolated"

const reasonOfState = {
  OPEN: "Open",
  HALF_OPEN: "HalfOpenFull",
  ISOLATED: "Isolated"
} as const satisfies Record<string, CircuitOpenReason>

const percent = (share: number) => `${Math.round(share * 1000) / 10}%`

/** The trip as a sentence, for messages. */
export const formatTrip = (trip: Trip): string => {
  const how =
    trip.reason === "Tripped"
      ? `the window then held ${trip.calls} call(s): ${trip.failures} failed (${percent(trip.failureRate)}), ${trip.slowCalls} slow (${percent(trip.slowCallRate)})`
      : `${trip.calls} probe(s) answered or timed out: ${trip.failures} failed, ${trip.slowCalls} slow`
  return `It opened at ${trip.at} ms (${trip.reason}) on ${trip.failure}; ${how}`
}

export class CircuitOpenError extends Schema.TaggedError<CircuitOpenError>(
  "@sluice/core/CircuitBreaker/CircuitOpenError"
)("CircuitOpenError", {
  breaker: Schema.String,
  key: Schema.String,
  /** Why the call was refused: the breaker is OPEN, ISOLATED, or HALF_OPEN with every probe slot taken. */
  state: Schema.Literal("OPEN", "HALF_OPEN", "ISOLATED"),
  /**
   * Milliseconds until a call may be let through: while OPEN, until the open
   * duration ends; while HALF_OPEN, until the earliest running probe reaches
   * `halfOpenTimeout` (the latest a slot frees; a probe answering sooner frees
   * it sooner), never 0; infinite while ISOLATED.
   */
  retryAfterMillis: Schema.Number,
  /** What opened the breaker (OPEN and HALF_OPEN refusals). */
  trip: Schema.optional(Trip)
}) {
  /** The kind of refusal, as a literal (one-to-one with `state`). */
  get reason(): CircuitOpenReason {
    return reasonOfState[this.state]
  }
  /** How long until a call may be let through. */
  get retryAfter(): Duration.Duration {
    return Number.isFinite(this.retryAfterMillis) ? Duration.millis(this.retryAfterMillis) : Duration.infinity
  }
  /** Refused at once on purpose: failing fast is the point, so retry policies leave it alone. */
  get retryable(): boolean {
    return false
  }
  override get message(): string {
    const where = `Circuit breaker "${this.breaker}", key "${this.key}"`
    const trip = this.trip === undefined ? "" : `. ${formatTrip(this.trip)}`
    const wait = Math.ceil(this.retryAfterMillis)
    switch (this.state) {
      case "OPEN":
        return `${where} is open; the call was refused. It lets a probe through in ${wait} ms${trip}`
      case "ISOLATED":
        return `${where} is isolated by hand; every call is refused until it is reset`
      default:
        return `${where} is half-open and every probe slot is taken; the call was refused. Retry in ${wait} ms, when a probe slot may be free${trip}`
    }
  }
}

// ---- describing a failure safely ---------------------------------------------------

const MAX_DESCRIPTION = 160

const oneLine = (text: string): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length > MAX_DESCRIPTION ? `${flat.slice(0, MAX_DESCRIPTION - 1)}…` : flat
}

/** A string-valued property, read without letting a throwing getter escape. */
const stringProperty = (value: object, name: string): string | undefined => {
  try {
    const field = (value as Record<string, unknown>)[name]
    return typeof field === "string" && field.length > 0 ? field : undefined
  } catch {
    return undefined
  }
}

/**
 * One short line for a failure value: `_tag` (or the Error's name), `reason`
 * and `message`, clipped; never the value's other fields, so a secret held in
 * one of them is not copied out. A `Redacted` is shown as `<redacted>`.
 */
export const describeValue = (value: unknown): string => {
  if (Redacted.isRedacted(value)) return "<redacted>"
  if (typeof value === "string") return value.length === 0 ? '""' : oneLine(value)
  if (typeof value === "function") return "a function"
  if (typeof value !== "object" || value === null) return String(value)
  const tag = stringProperty(value, "_tag") ?? (value instanceof Error ? value.name : undefined)
  const reason = stringProperty(value, "reason")
  const message = stringProperty(value, "message")
  const name =
    tag ?? (value.constructor?.name && value.constructor.name !== "Object" ? value.constructor.name : "object")
  const head = reason === undefined ? name : `${name} (${reason})`
  return oneLine(message === undefined || message === tag ? head : `${head}: ${message}`)
}

/** The failure in an Exit, described by {@link describeValue}; a defect says so. */
export const describeExit = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "a success"
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) return describeValue(failure.value)
  const defect = Cause.dieOption(exit.cause)
  if (Option.isSome(defect)) return `a defect: ${describeValue(defect.value)}`
  return "an interruption"
}
