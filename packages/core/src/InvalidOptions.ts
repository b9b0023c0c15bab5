/**
 * One error for every bad option handed to a Sluice constructor. Options are
 * described by Schemas; decoding them at construction (at Layer build time)
 * turns a wrong value into this error, whose message names the component, the
 * field and what was expected, e.g.
 * `Executor options are invalid: ["concurrency"] Expected a positive number, actual -1`.
 *
 * Effect gave us Schema and its `ParseError` formatter; this module adds the
 * component name and a single typed error to catch.
 *
 * @since 0.1.0
 */

import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category errors
 */
export class InvalidOptionsError extends Schema.TaggedError<InvalidOptionsError>(
  "@sluice/core/InvalidOptions/InvalidOptionsError"
)("InvalidOptionsError", {
  component: Schema.String,
  issues: Schema.String
}) {
  override get message(): string {
    return `${this.component} options are invalid: ${this.issues}`
  }
}

/**
 * Decodes `input` with `schema`, failing with an {@link InvalidOptionsError}
 * that lists every wrong field.
 *
 * @since 0.1.0
 * @category schemas
 */
export const decode =
  <A, I>(component: string, schema: Schema.Schema<A, I>) =>
  (input: unknown): Effect.Effect<A, InvalidOptionsError> =>
    Schema.decodeUnknown(schema, { errors: "all", onExcessProperty: "error" })(input).pipe(
      Effect.mapError((error) => new InvalidOptionsError({ component, issues: formatIssues(error) }))
    )

/**
 * One line per wrong field. An optional field's "Expected undefined, actual …"
 * is dropped when the field has a better issue of its own: it says nothing
 * new, and it would print the whole value (secrets and all).
 */
const formatIssues = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const pathKey = (path: ReadonlyArray<PropertyKey>) => JSON.stringify(path.map(String))
  const within = (inner: ReadonlyArray<PropertyKey>, outer: ReadonlyArray<PropertyKey>) =>
    inner.length >= outer.length && outer.every((key, i) => String(key) === String(inner[i]))
  return issues
    .filter(
      (issue) =>
        !issue.message.startsWith("Expected undefined") ||
        !issues.some(
          (other) =>
            other !== issue && !other.message.startsWith("Expected undefined") && within(other.path, issue.path)
        )
    )
    .filter(
      (issue, i, all) =>
        all.findIndex((other) => pathKey(other.path) === pathKey(issue.path) && other.message === issue.message) === i
    )
    .map((issue) => `${issue.path.length > 0 ? JSON.stringify(issue.path) : "(root)"} ${issue.message}`)
    .join("; ")
}

const isPositiveDuration = (u: unknown): u is Duration.DurationInput => {
  const decoded = Duration.decodeUnknown(u)
  return Option.isSome(decoded) && Duration.toMillis(decoded.value) > 0
}

const isNonNegativeDuration = (u: unknown): u is Duration.DurationInput => {
  // Duration turns a negative number of milliseconds into zero; a negative is still a mistake.
  if (typeof u === "number" && u < 0) return false
  const decoded = Duration.decodeUnknown(u)
  return Option.isSome(decoded) && Duration.toMillis(decoded.value) >= 0
}

/**
 * A `Duration`, a number of milliseconds, or a string such as `"1 minute"`; above zero.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PositiveDuration = Schema.declare(isPositiveDuration, {
  identifier: "PositiveDuration",
  description: 'a duration above zero (a Duration, milliseconds, or a string like "1 minute")',
  message: () => 'Expected a duration above zero (a Duration, milliseconds, or a string like "1 minute")'
})

/**
 * Like {@link PositiveDuration}, zero allowed.
 *
 * @since 0.1.0
 * @category schemas
 */
export const NonNegativeDuration = Schema.declare(isNonNegativeDuration, {
  identifier: "NonNegativeDuration",
  description: "a duration of zero or more",
  message: () => 'Expected a duration of zero or more (a Duration, milliseconds, or a string like "5 seconds")'
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const PositiveInt = Schema.Int.pipe(Schema.positive({ message: () => "Expected a whole number above zero" }))

/**
 * @since 0.1.0
 * @category schemas
 */
export const PositiveNumber = Schema.Number.pipe(
  Schema.finite({ message: () => "Expected a finite number" }),
  Schema.positive({ message: () => "Expected a number above zero" })
)
