/**
 * The Executor's errors, in their own module so that the machinery and the
 * public module can both use them without importing each other.
 */
import * as Schema from "effect/Schema"

export class QueueFullError extends Schema.TaggedError<QueueFullError>("@sluice/core/Executor/QueueFullError")(
  "QueueFullError",
  { executor: Schema.String, queueCapacity: Schema.Number }
) {
  override get message(): string {
    return `Executor "${this.executor}" has ${this.queueCapacity} requests queued, its capacity; the request was refused (whenFull: "fail")`
  }
  get retryable(): boolean {
    return true
  }
}

export class ExecutorShutdownError extends Schema.TaggedError<ExecutorShutdownError>(
  "@sluice/core/Executor/ExecutorShutdownError"
)("ExecutorShutdownError", {
  executor: Schema.String,
  reason: Schema.Literal("NotAccepting", "Abandoned"),
  requestId: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    return this.reason === "NotAccepting"
      ? `Executor "${this.executor}" is shutting down and accepts no new requests`
      : `Executor "${this.executor}" shut down before request ${this.requestId} finished; it was abandoned`
  }
  get retryable(): boolean {
    return false
  }
}

export class RequestTimeoutError extends Schema.TaggedError<RequestTimeoutError>(
  "@sluice/core/Executor/RequestTimeoutError"
)("RequestTimeoutError", {
  executor: Schema.String,
  requestId: Schema.Number,
  timeoutMillis: Schema.Number,
  /** `"Attempt"` (default): one attempt ran too long, and may be retried. `"Deadline"`: the request's total time ran out. */
  kind: Schema.optional(Schema.Literal("Attempt", "Deadline"))
}) {
  override get message(): string {
    return this.kind === "Deadline"
      ? `Request ${this.requestId} on executor "${this.executor}" ran past its deadline of ${this.timeoutMillis} ms`
      : `Request ${this.requestId} on executor "${this.executor}" did not finish within ${this.timeoutMillis} ms`
  }
  get retryable(): boolean {
    return this.kind !== "Deadline"
  }
}
