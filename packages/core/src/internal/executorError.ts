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
    const request = `Request ${this.requestId} on executor "${this.executor}"`
    const messages: Record<ExecutorErrorReason, string> = {
      QueueFull: `Executor "${this.executor}" has ${this.queueCapacity} requests queued, its capacity; the request was refused (whenFull: "fail")`,
      NotAccepting: `Executor "${this.executor}" is shutting down and accepts no new requests`,
      Abandoned: `Executor "${this.executor}" shut down before request ${this.requestId} finished; it was abandoned`,
      AttemptTimeout: `${request} did not finish within ${this.timeoutMillis} ms`,
      Deadline: `${request} ran past its deadline of ${this.timeoutMillis} ms`
    }
    return messages[this.reason]
  }
  /** A full queue and an attempt's timeout may pass; shutdown and a spent deadline are final. */
  get retryable(): boolean {
    return this.reason === "QueueFull" || this.reason === "AttemptTimeout"
  }
}
