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
   * Never, for a retry policy: a cost, duration or limit name that is wrong
   * stays wrong, and a store that failed is its outage policy's to handle
   * (fail open, fail closed or fall back locally, with its own deadline and
   * breaker). A retry loop on top would add attempts to every call while the
   * store is down. A layer above may judge otherwise: the Model reports a
   * store failure as `ProviderUnavailable` (`LimiterFailure`), which a batch
   * run waits out as it waits for a provider that is down.
   */
  get retryable(): boolean {
    return false
  }
}
