/**
 * The providers file of `sluice run --providers providers.json`: a JSON array,
 * one entry per endpoint, decoded by a Schema.
 *
 * ```json
 * [
 *   { "name": "openai", "baseUrl": "https://api.openai.com/v1", "keyEnv": "OPENAI_API_KEY",
 *     "limits": { "rpm": 500, "tpm": 90000 } },
 *   { "name": "azure", "baseUrl": "https://example.openai.azure.com/openai/v1", "keyEnv": "AZURE_KEY",
 *     "domain": "azure-org", "weight": 2, "tier": 0, "contextWindow": 128000, "concurrency": 8 }
 * ]
 * ```
 *
 * An entry without `limits` goes by the limits the server's headers report
 * (learned, as a single endpoint does). Errors name the file, the entry (its
 * index and name) and the field; a key variable that is not set is named,
 * never its value (the keys are read `Redacted`).
 *
 * What Effect gave us: `Schema` (decoding, the issues' paths), `Config.redacted`
 * (the keys), `FileSystem`. What this module adds: the entry's shape, the
 * checks across entries (unique names, where a key is needed) and the
 * messages.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as EndpointConfig from "@sluice/http/EndpointConfig"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

const PositiveInt = Schema.Int.pipe(Schema.positive())

const Url = Schema.String.pipe(
  Schema.filter((text) => URL.canParse(text) && /^https?:$/.test(new URL(text).protocol), {
    message: () => "Expected an http:// or https:// URL"
  })
)

/** One provider, as the file gives it. */
export const ProviderEntry = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  baseUrl: Url,
  /** The environment variable holding its key (sent as a Bearer token); none: no key is sent (loopback only). */
  keyEnv: Schema.optional(Schema.NonEmptyTrimmedString),
  /** The quota domain it belongs to (an organisation or key shared with others). Default its name. */
  domain: Schema.optional(Schema.NonEmptyTrimmedString),
  weight: Schema.optional(Schema.Number.pipe(Schema.positive())),
  tier: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  contextWindow: Schema.optional(PositiveInt),
  /** Per `--window` (a minute by default), as `--rpm`/`--tpm`; absent: learned from the server's headers. */
  limits: Schema.optional(
    Schema.Struct({ rpm: Schema.optional(PositiveInt), tpm: Schema.optional(PositiveInt) }).annotations({
      parseOptions: { onExcessProperty: "error" }
    })
  ),
  concurrency: Schema.optional(PositiveInt)
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type ProviderEntry = typeof ProviderEntry.Type

export const ProvidersFile = Schema.Array(ProviderEntry).pipe(Schema.minItems(1))

/** A provider ready to run: its entry and its key. */
export interface Provider extends ProviderEntry {
  readonly apiKey: Redacted.Redacted<string> | undefined
}

/**
 * `--providers`: the file could not be read (`Unreadable`), is not a valid
 * providers file (`Invalid`: the entry and the field), or names a key
 * variable that is not set (`KeyMissing`: the variable, never a value).
 */
export class ProvidersError extends Schema.TaggedError<ProvidersError>("@sluice/cli/ProvidersError")("ProvidersError", {
  reason: Schema.Literal("Unreadable", "Invalid", "KeyMissing"),
  path: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `--providers ${this.path}: ${this.detail}`
  }
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** `entry 1 ("azure")`, from the raw JSON (the entry may be too broken to decode). */
const entryName = (raw: unknown, index: number): string => {
  const entry = Array.isArray(raw) ? raw[index] : undefined
  const name = typeof entry === "object" && entry !== null ? (entry as { readonly name?: unknown }).name : undefined
  return typeof name === "string" && name.trim() !== "" ? `entry ${index} (${JSON.stringify(name)})` : `entry ${index}`
}

/** Decodes the file's text; every issue named by its entry and field. */
export const parse = (path: string, text: string): Effect.Effect<ReadonlyArray<ProviderEntry>, ProvidersError> =>
  Effect.gen(function* () {
    const invalid = (detail: string) => new ProvidersError({ reason: "Invalid", path, detail })
    const raw = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (error) => invalid(`not JSON (${describe(error)})`)
    })
    if (!Array.isArray(raw)) return yield* invalid("expected a JSON array of providers, one object per provider")
    const entries = yield* Schema.decodeUnknown(ProvidersFile, { errors: "all" })(raw).pipe(
      Effect.mapError((error) =>
        invalid(
          ParseResult.ArrayFormatter.formatErrorSync(error)
            // An optional field's other branch ("Expected undefined") says nothing the real issue does not.
            .filter((issue, _, all) => !(issue.message.startsWith("Expected undefined, actual") && all.length > 1))
            .map((issue) => {
              const [index, ...field] = issue.path
              if (typeof index !== "number") return issue.message
              const where = field.length === 0 ? "" : `, field ${field.map(String).join(".")}`
              return `${entryName(raw, index)}${where}: ${issue.message}`
            })
            .join("; ")
        )
      )
    )
    const seen = new Map<string, number>()
    for (const [index, entry] of entries.entries()) {
      const first = seen.get(entry.name)
      if (first !== undefined) {
        return yield* invalid(
          `entry ${index}, field name: ${JSON.stringify(entry.name)} is already the name of entry ${first}; each provider needs its own name`
        )
      }
      seen.set(entry.name, index)
    }
    return entries
  })

/**
 * Where each provider may go, as for a single `--base-url`: plain `http://`
 * only to loopback unless `allowInsecureHttp`; a host other than loopback
 * needs a `keyEnv`.
 */
const checkDestination = (
  path: string,
  index: number,
  entry: ProviderEntry,
  allowInsecureHttp: boolean
): Effect.Effect<void, ProvidersError> => {
  const url = new URL(entry.baseUrl)
  const loopback = EndpointConfig.isLoopback(url.hostname)
  const where = `entry ${index} (${JSON.stringify(entry.name)})`
  if (!loopback && url.protocol === "http:" && !allowInsecureHttp) {
    return new ProvidersError({
      reason: "Invalid",
      path,
      detail: `${where}, field baseUrl: plain http:// to ${url.hostname}, which is not loopback, would cross the network in clear; use https://, or add --allow-insecure-http if that is meant`
    })
  }
  if (!loopback && entry.keyEnv === undefined) {
    return new ProvidersError({
      reason: "Invalid",
      path,
      detail: `${where}, field keyEnv: missing, so no API key would be sent to ${url.hostname}; name the environment variable holding its key`
    })
  }
  return Effect.void
}

/** The key each entry names, read from the environment as a `Redacted`. */
const readKey = (path: string, index: number, entry: ProviderEntry) =>
  entry.keyEnv === undefined
    ? Effect.succeed(undefined)
    : Config.redacted(entry.keyEnv).pipe(
        Effect.mapError(
          () =>
            new ProvidersError({
              reason: "KeyMissing",
              path,
              detail: `entry ${index} (${JSON.stringify(entry.name)}), field keyEnv: the environment variable ${entry.keyEnv} is not set`
            })
        )
      )

/** Reads, decodes and checks the file, and reads each provider's key. */
export const load = (
  path: string,
  options: { readonly allowInsecureHttp: boolean }
): Effect.Effect<ReadonlyArray<Provider>, ProvidersError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs
      .readFileString(path)
      .pipe(Effect.mapError((error) => new ProvidersError({ reason: "Unreadable", path, detail: describe(error) })))
    const entries = yield* parse(path, text)
    return yield* Effect.forEach(entries, (entry, index) =>
      Effect.zipRight(
        checkDestination(path, index, entry, options.allowInsecureHttp),
        Effect.map(readKey(path, index, entry), (apiKey): Provider => ({ ...entry, apiKey }))
      )
    )
  })
