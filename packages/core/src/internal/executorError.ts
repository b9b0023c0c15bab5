/**
 * The Executor's one error type, in its own module so that the machinery and
 * the public module can both use it without importing each other.
 */
import * as Schema from "effect/Schema"

/** Why the Executor itself failed a request. */
export const ExecutorErrorReason = Schema.Literal(
  "QueueFull",
  "NotAccepting",
  "Abandoned",
  "AttemptTimeout",
  "Deadline"
)
export type ExecutorErrorReason = typeof ExecutorErrorReason.Type

export class ExecutorError extends Schema.TaggedError<ExecutorError>("@sluice/core/Executor/ExecutorError")(
  "ExecutorError",
  {
    executor: Schema.String,
    reason: ExecutorErrorReason,
    requestId: Schema.optional(Schema.Number),
    /** `QueueFull`: the queue's capacity. */
    queueCapacity: Schema.optional(Schema.Number),
    /** `AttemptTimeout`: the attempt's timeout; `Deadline`: the request's whole time (ms). */
    timeoutMillis: Schema.optional(Schema.Number)
  }
) {
  override get message(): string {
    switch (this.reason) {
      case "QueueFull":
        return `Executor "${this.executor}" has ${this.queueCapacity} requests queued, its capacity; the request was refused (whenFull: "fail")`
      case "NotAccepting":
        return `Executor "${this.executor}" is shutting down and accepts no new requests`
      case "Abandoned":
        return `Executor "${this.executor}" shut down before request ${this.requestId} finished; it was abandoned`
      case "AttemptTimeout":
        return `Request ${this.requestId} on executor "${this.executor}" did not finish within ${this.timeoutMillis} ms`
      case "Deadline":
        return `Request ${this.requestId} on executor "${this.executor}" ran past its deadline of ${this.timeoutMillis} ms`
    }
  }
  /** A full queue and an attempt's timeout may pass; shutdown and a spent deadline are final. */
  get retryable(): boolean {
    return this.reason === "QueueFull" || this.reason === "AttemptTimeout"
  }
}
