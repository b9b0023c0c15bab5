import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as InvalidOptions from "../src/InvalidOptions.js"

describe("InvalidOptions.decode", () => {
  const decode = InvalidOptions.decode(
    "Widget",
    Schema.Struct({
      wait: InvalidOptions.NonNegativeDuration,
      inner: Schema.optional(Schema.UndefinedOr(Schema.Struct({ secret: Schema.Literal("ok") })))
    })
  )

  it.effect("a negative number of milliseconds is not a duration of zero or more", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(decode({ wait: -5 }))
      expect(error.message).toContain('["wait"] Expected a duration of zero or more')
      yield* decode({ wait: 0 })
    })
  )

  it.effect("an optional field's 'Expected undefined' is dropped when the field has its own issue", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(decode({ wait: 1, inner: { secret: "hunter2" } }))
      expect(error.issues).toBe('["inner","secret"] Expected "ok", actual "hunter2"')
      const whole = yield* Effect.flip(decode({ wait: 1, inner: 42 }))
      expect(whole.issues).toContain('["inner"]')
    })
  )
})
