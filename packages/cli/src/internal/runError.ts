/**
 * The runner's error, in its own module so that the machinery and the
 * public modules can both use it without importing each other: one
 * `RunError` refined by `reason`. A run fails with one of the file reasons
 * (it cannot go on); a line's sender fails with `SendFailed` (the line is
 * written as failed and the run goes on), or with a reason that stops the
 * whole run at once, the line untouched: `AuthenticationFailed` (the
 * provider refused the credentials: every other line would be refused too)
 * or `ProviderUnavailable` (an outage outlasted `--max-outage`).
 */
import * as Schema from "effect/Schema"

export class RunError extends Schema.TaggedError<RunError>("@sluice/cli/RunError")("RunError", {
  reason: Schema.Literal(
    "InputUnreadable",
    "OutputUnreadable",
    "OutputCorrupt",
    "OutputUnwritable",
    "SamePath",
    "OutputLocked",
    "SendFailed",
    "AuthenticationFailed",
    "ProviderUnavailable"
  ),
  /** The file the run could not use (every reason but `SendFailed`). */
  path: Schema.optional(Schema.String),
  /** What went wrong, fit to show a person (never holds a secret). */
  detail: Schema.String,
  /**
   * `SendFailed`: the kind of error the sender gave up on: an `ApiError`'s or
   * `ModelError`'s reason (`RateLimited`, `ServerError`, `ProviderUnavailable`,
   * ...), else the error's tag (`CircuitOpenError`, `Defect`, ...).
   */
  errorKind: Schema.optional(Schema.String),
  /** `SendFailed`: attempts made, the first included. */
  attempts: Schema.optional(Schema.Number),
  /** The provider's HTTP status, when it answered. */
  status: Schema.optional(Schema.Number),
  /** `SendFailed`: the `x-request-id` of the answer that refused the line, when it had one. */
  requestId: Schema.optional(Schema.String),
  /** `SendFailed`: whether another try may help (a rerun retries such lines). */
  retryable: Schema.optional(Schema.Boolean),
  /** What happened, in a few words a person scans (`authentication failed (401)`): failures are grouped by it. */
  label: Schema.optional(Schema.String),
  /**
   * `SendFailed`: what the failure says about the provider (`FailureKind`'s class): `systemic` (a 5xx, a
   * timeout, a failed connection, an open breaker) or `own` (the line's own error, a 429 past its retries).
   * `refused`: not sent, refused by the provider's open breaker. What the Router reads (`--providers`).
   */
  failureClass: Schema.optional(Schema.Literal("systemic", "own", "refused"))
}) {
  override get message(): string {
    switch (this.reason) {
      case "InputUnreadable":
        return `Cannot read the input ${this.path}: ${this.detail}`
      case "OutputUnreadable":
        return `Cannot read the existing output ${this.path} to resume: ${this.detail}`
      case "OutputCorrupt":
        return `The existing output ${this.path} is not a sluice results file (${this.detail}); refusing to append to it`
      case "OutputUnwritable":
        return `Cannot write ${this.path}: ${this.detail}`
      case "SamePath":
        return `${this.detail} are the same file (${this.path}); give them different paths`
      case "OutputLocked":
        return `The output ${this.path} is in use: ${this.detail}`
      case "AuthenticationFailed":
        return `Authentication failed${this.status === undefined ? "" : ` (${this.status})`}: ${this.detail}`
      case "ProviderUnavailable":
        return `The provider is unavailable: ${this.detail}`
      default: {
        // SendFailed
        const attempts = this.attempts ?? 1
        return `${this.errorKind} after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${this.detail}`
      }
    }
  }
}
