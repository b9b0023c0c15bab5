/**
 * The RateLimiter's error, in its own module so that the limiter's machinery
 * and its public module can both use it without importing each other.
 */
import * as Schema from "effect/Schema"

export class RateLimiterError extends Schema.TaggedError<RateLimiterError>("@sluice/core/RateLimiter/RateLimiterError")(
  "RateLimiterError",
  {
    reason: Schema.Literal("CostExceedsCapacity", "InvalidCost", "InvalidDuration", "UnknownLimit", "StoreFailure"),
    limiter: Schema.String,
    key: Schema.String,
    limit: Schema.optional(Schema.String),
    cost: Schema.optional(Schema.Number),
    capacity: Schema.optional(Schema.Number),
    detail: Schema.optional(Schema.String)
  }
) {
  override get message(): string {
    const where = `limiter "${this.limiter}", key "${this.key}"`
    switch (this.reason) {
      case "CostExceedsCapacity":
        return `A cost of ${this.cost} exceeds the capacity ${this.capacity} of limit "${this.limit}" (${where}); it could never be admitted`
      case "InvalidCost":
        return `Invalid cost ${this.cost} for limit "${this.limit}" (${where}): a cost must be a finite number of zero or more`
      case "InvalidDuration":
        return `Invalid ${this.detail} (${where}): expected a duration of zero or more`
      case "UnknownLimit":
        return `Unknown limit "${this.limit}" (${where}); this limiter has ${this.detail}`
      default:
        return `The rate-limiter store failed (${where}): ${this.detail}`
    }
  }

  /**
   * Whether the same call may succeed if made again: only when the store
   * failed (a network store that is back may answer). A cost, duration or
   * limit name that is wrong stays wrong.
   */
  get retryable(): boolean {
    return this.reason === "StoreFailure"
  }
}
