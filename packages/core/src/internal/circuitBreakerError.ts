/**
 * The CircuitBreaker's error, in its own module so that the machinery and the
 * public module can both use it without importing each other.
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"

export class CircuitOpenError extends Schema.TaggedError<CircuitOpenError>(
  "@sluice/core/CircuitBreaker/CircuitOpenError"
)("CircuitOpenError", {
  breaker: Schema.String,
  key: Schema.String,
  /** Why the call was refused: the breaker is OPEN, ISOLATED, or HALF_OPEN with every probe slot taken. */
  state: Schema.Literal("OPEN", "HALF_OPEN", "ISOLATED"),
  /** Milliseconds until the breaker lets a probe through; infinite while ISOLATED; 0 while HALF_OPEN. */
  retryAfterMillis: Schema.Number
}) {
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
    switch (this.state) {
      case "OPEN":
        return `${where} is open; the call was refused. It lets a probe through in ${Math.ceil(this.retryAfterMillis)} ms`
      case "ISOLATED":
        return `${where} is isolated by hand; every call is refused until it is reset`
      default:
        return `${where} is half-open and every probe slot is taken; the call was refused`
    }
  }
}
