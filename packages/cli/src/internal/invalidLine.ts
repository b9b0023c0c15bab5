/**
 * A line that is no request the Model can take: its body does not match the
 * endpoint's Schema (or its url is no endpoint's). It is the line's own
 * failure, found before anything was sent; the line is written as failed
 * with the kind a provider's 400 would give it (`InvalidRequest`), and is
 * never tried again.
 */
import * as Schema from "effect/Schema"

export class InvalidLine extends Schema.TaggedError<InvalidLine>("@sluice/cli/InvalidLine")("InvalidLine", {
  /** Where in the body and what kind of problem, never a value (a body may hold anything). */
  detail: Schema.String
}) {
  override get message(): string {
    return this.detail
  }

  /** The same line fails the same way every time. */
  get retryable(): boolean {
    return false
  }
}
