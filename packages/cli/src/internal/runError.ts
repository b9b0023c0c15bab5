/**
 * The runner's errors, in their own module so that the machinery and the
 * public modules can both use them without importing each other.
 */
import * as Schema from "effect/Schema"

export class SendFailure extends Schema.TaggedError<SendFailure>("@sluice/cli/SendFailure")("SendFailure", {
  /** The tag of the error the sender gave up on, e.g. `RateLimited`, `ServerError`, `Timeout`. */
  errorTag: Schema.String,
  /** What went wrong, fit to show a person (never holds a secret). */
  detail: Schema.String,
  /** Attempts made, the first included. */
  attempts: Schema.Number
}) {
  override get message(): string {
    return `${this.errorTag} after ${this.attempts} attempt${this.attempts === 1 ? "" : "s"}: ${this.detail}`
  }
}

const MESSAGES = {
  InputUnreadable: (path: string, detail: string) => `Cannot read the input ${path}: ${detail}`,
  OutputUnreadable: (path: string, detail: string) => `Cannot read the existing output ${path} to resume: ${detail}`,
  OutputCorrupt: (path: string, detail: string) =>
    `The existing output ${path} is not a sluice results file (${detail}); refusing to append to it`,
  OutputUnwritable: (path: string, detail: string) => `Cannot write ${path}: ${detail}`,
  SamePath: (path: string, detail: string) => `${detail} are the same file (${path}); give them different paths`
} as const

export class RunError extends Schema.TaggedError<RunError>("@sluice/cli/RunError")("RunError", {
  reason: Schema.Literal("InputUnreadable", "OutputUnreadable", "OutputCorrupt", "OutputUnwritable", "SamePath"),
  path: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return MESSAGES[this.reason](this.path, this.detail)
  }
}
