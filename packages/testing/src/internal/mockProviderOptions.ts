/**
 * The MockProvider's option Schemas, shared by `make`, the run-time setters
 * and the command line, so a wrong value is refused the same way everywhere:
 * with an `InvalidOptionsError` that names the field.
 */
import * as InvalidOptions from "@sluice/core/InvalidOptions"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { FaultKind, Faults, Latency, Limits, Options } from "../MockProvider.js"

export const COMPONENT = "MockProvider"

export const FAULT_KINDS: ReadonlyArray<FaultKind> = [
  "serverError500",
  "serviceUnavailable503",
  "reset",
  "hang",
  "malformedJson",
  "slowBody"
]

const Share = Schema.Number.pipe(
  Schema.finite({ message: () => "Expected a finite number" }),
  Schema.between(0, 1, { message: () => "Expected a share between 0 and 1" })
)

const faultFields = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, Schema.optional(Share)])) as {
  readonly [K in FaultKind]: Schema.optional<typeof Share>
}

const sumOfShares = (faults: Faults) => FAULT_KINDS.reduce((total, kind) => total + (faults[kind] ?? 0), 0)

export const FaultsSchema: Schema.Schema<Faults, Faults> = Schema.Struct(faultFields).pipe(
  Schema.filter((faults) =>
    sumOfShares(faults) <= 1 + 1e-9
      ? undefined
      : `Expected fault shares adding up to at most 1, actual ${sumOfShares(faults)}`
  )
)

const millis = (duration: Duration.DurationInput) => Duration.toMillis(Duration.decode(duration))

export const LatencySchema: Schema.Schema<Latency, Latency> = Schema.Union(
  Schema.Struct({ fixed: InvalidOptions.NonNegativeDuration }),
  Schema.Struct({
    uniform: Schema.Struct({
      min: InvalidOptions.NonNegativeDuration,
      max: InvalidOptions.NonNegativeDuration
    }).pipe(
      Schema.filter((range) => (millis(range.min) <= millis(range.max) ? undefined : "Expected min to be at most max"))
    )
  }),
  Schema.Struct({
    normal: Schema.Struct({
      mean: InvalidOptions.NonNegativeDuration,
      stdDev: InvalidOptions.NonNegativeDuration
    })
  })
)

const limitFields = {
  rpm: Schema.optional(InvalidOptions.PositiveInt),
  tpm: Schema.optional(InvalidOptions.PositiveInt),
  window: Schema.optional(InvalidOptions.PositiveDuration)
}

export const LimitsSchema: Schema.Schema<Limits, Limits> = Schema.Struct(limitFields)

export const ApiKeysSchema = Schema.Array(
  Schema.String.pipe(Schema.minLength(1, { message: () => "Expected a key that is not empty" }))
)

export const OptionsSchema: Schema.Schema<Options, Options> = Schema.Struct({
  ...limitFields,
  latency: Schema.optional(LatencySchema),
  faults: Schema.optional(FaultsSchema),
  seed: Schema.optional(Schema.Int),
  apiKeys: Schema.optional(ApiKeysSchema),
  slowBody: Schema.optional(
    Schema.Struct({
      chunks: Schema.optional(
        Schema.Int.pipe(Schema.between(2, 1000, { message: () => "Expected a whole number from 2 to 1000" }))
      ),
      interval: Schema.optional(InvalidOptions.PositiveDuration)
    })
  ),
  port: Schema.optional(
    Schema.Int.pipe(Schema.between(0, 65535, { message: () => "Expected a port from 0 to 65535" }))
  ),
  host: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  logCapacity: Schema.optional(InvalidOptions.PositiveInt),
  models: Schema.optional(
    Schema.Array(
      Schema.String.pipe(Schema.minLength(1, { message: () => "Expected a model id that is not empty" }))
    ).pipe(Schema.minItems(1, { message: () => "Expected at least one model id" }))
  )
})

export const decodeOptions: (input: unknown) => Effect.Effect<Options, InvalidOptions.InvalidOptionsError> =
  InvalidOptions.decode(COMPONENT, OptionsSchema)

/** The setters validate their argument under the option's own name, so errors read `["faults", ...]`. */
export const decodeFaults = (input: unknown) =>
  InvalidOptions.decode(COMPONENT, Schema.Struct({ faults: FaultsSchema }))({ faults: input })

export const decodeLatency = (input: unknown) =>
  InvalidOptions.decode(
    COMPONENT,
    Schema.Struct({ latency: Schema.UndefinedOr(LatencySchema) })
  )({
    latency: input
  })

export const decodeLimits: (input: unknown) => Effect.Effect<Limits, InvalidOptions.InvalidOptionsError> =
  InvalidOptions.decode(COMPONENT, LimitsSchema)

export const decodeApiKeys = (input: unknown) =>
  InvalidOptions.decode(
    COMPONENT,
    Schema.Struct({ apiKeys: Schema.UndefinedOr(ApiKeysSchema) })
  )({
    apiKeys: input
  })

export { millis }
