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
 * Or an object: the providers, and the quota domains several of them share
 * (an organisation, project or key whose limits hold for all its members):
 *
 * ```json
 * {
 *   "domains": { "azure-org": { "rpm": 600, "tpm": 100000 } },
 *   "providers": [
 *     { "name": "east", "baseUrl": "https://east.openai.azure.com/openai/v1", "keyEnv": "AZURE_KEY", "domain": "azure-org" },
 *     { "name": "west", "baseUrl": "https://west.openai.azure.com/openai/v1", "keyEnv": "AZURE_KEY", "domain": "azure-org" }
 *   ]
 * }
 * ```
 *
 * A domain declared in `domains` is one limiter that every member's admission
 * charges (a 429's `Retry-After` on one member holds them all back); its
 * members give no `limits` of their own. In the plain array form a `domain`
 * groups providers for the Router's cool-down after a 429 only, each with
 * its own limits.
 *
 * An entry without `limits` (and no declared domain) goes by the limits the
 * server's headers report (learned, as a single endpoint does). Errors name
 * the file, the entry (its index and name) or the domain, and the field; a
 * key variable that is not set is named, never its value (the keys are read
 * `Redacted`).
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

/** A shared quota domain's limits, per `--window` as `--rpm`/`--tpm`: at least one of them. */
export const DomainLimits = Schema.Struct({
  rpm: Schema.optional(PositiveInt),
  tpm: Schema.optional(PositiveInt)
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type DomainLimits = typeof DomainLimits.Type

export const Domains = Schema.Record({ key: Schema.NonEmptyTrimmedString, value: DomainLimits })

/** The file's object form: `{ "domains": {...}, "providers": [...] }`. */
export const ProvidersObject = Schema.Struct({
  domains: Schema.optional(Schema.Unknown),
  providers: Schema.Unknown
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/** What the file says: the providers, and the shared domains' limits by name (none in the array form). */
export interface Spec {
  readonly providers: ReadonlyArray<ProviderEntry>
  readonly domains: Readonly<Record<string, DomainLimits>>
}

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
  /** The file; `--provider` when the providers came from the flags (the detail names the occurrence). */
  path: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return this.path === FLAGS ? this.detail : `--providers ${this.path}: ${this.detail}`
  }
}

/** The `path` of providers given by `--provider` flags. */
export const FLAGS = "--provider"

/** How errors name an entry and its fields: the file's (`entry 1 ("b"), field baseUrl`) or the flags'. */
export interface Naming {
  readonly entry: (raw: unknown, index: number) => string
  readonly field: (path: string) => string
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** `entry 1 ("azure")`, from the raw JSON (the entry may be too broken to decode). */
const entryName = (raw: unknown, index: number): string => {
  const entry = Array.isArray(raw) ? raw[index] : undefined
  const name = typeof entry === "object" && entry !== null ? (entry as { readonly name?: unknown }).name : undefined
  return typeof name === "string" && name.trim() !== "" ? `entry ${index} (${JSON.stringify(name)})` : `entry ${index}`
}

const fileNaming: Naming = { entry: entryName, field: (path) => path }

/** A decoding error's issues, each as `<where>, field <path>: <message>`, `where` from the issue's first step. */
const issuesOf = (
  error: ParseResult.ParseError,
  where: (step: PropertyKey | undefined) => string | undefined,
  field: (path: string) => string = (path) => path
): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    // An optional field's other branch ("Expected undefined") says nothing the real issue does not.
    .filter((issue, _, all) => !(issue.message.startsWith("Expected undefined, actual") && all.length > 1))
    .map((issue) => {
      const [first, ...rest] = issue.path
      const named = where(first)
      if (named === undefined) return issue.message
      return `${named}${rest.length === 0 ? "" : `, field ${field(rest.map(String).join("."))}`}: ${issue.message}`
    })
    .join("; ")

/**
 * Decodes the providers (`raw`, an array) and the domains (`rawDomains`) and checks them together; every
 * issue named by `entryLabel` (its entry, or the flag occurrence it came from) and its field.
 */
export const decode = (
  raw: unknown,
  rawDomains: unknown,
  invalid: (detail: string) => ProvidersError,
  naming: Naming = fileNaming
): Effect.Effect<Spec, ProvidersError> =>
  Effect.gen(function* () {
    const domains = yield* Schema.decodeUnknown(Domains, { errors: "all" })(rawDomains ?? {}).pipe(
      Effect.mapError((error) =>
        invalid(
          issuesOf(error, (name) => (name === undefined ? "field domains" : `domain ${JSON.stringify(String(name))}`))
        )
      )
    )
    const entries = yield* Schema.decodeUnknown(ProvidersFile, { errors: "all" })(raw).pipe(
      Effect.mapError((error) =>
        invalid(
          issuesOf(error, (index) => (typeof index === "number" ? naming.entry(raw, index) : undefined), naming.field)
        )
      )
    )
    const label = (index: number) => naming.entry(raw, index)
    const seen = new Map<string, number>()
    for (const [index, entry] of entries.entries()) {
      const first = seen.get(entry.name)
      if (first !== undefined) {
        return yield* invalid(
          `${label(index)}, field ${naming.field("name")}: ${JSON.stringify(entry.name)} is already the name of ${label(first)}; each provider needs its own name`
        )
      }
      seen.set(entry.name, index)
    }
    for (const [name, limits] of Object.entries(domains)) {
      if (limits.rpm === undefined && limits.tpm === undefined) {
        return yield* invalid(`domain ${JSON.stringify(name)}: give rpm or tpm (or both), the limits its members share`)
      }
      if (!entries.some((entry) => entry.domain === name)) {
        return yield* invalid(
          `domain ${JSON.stringify(name)}: no provider names it in its ${naming.field("domain")} field; a domain's limits are its members'`
        )
      }
    }
    for (const [index, entry] of entries.entries()) {
      if (entry.domain !== undefined && entry.domain in domains && entry.limits !== undefined) {
        return yield* invalid(
          `${label(index)}, field ${naming.field("limits")}: a member of domain ${JSON.stringify(entry.domain)} draws on the domain's limits (domains.${entry.domain}); give them there, not on the provider`
        )
      }
      if (entry.domain === undefined && entry.name in domains) {
        return yield* invalid(
          `${label(index)}, field ${naming.field("name")}: ${JSON.stringify(entry.name)} names a domain too, and a provider without a domain is a domain of its own by its name; rename one, or give it domain ${JSON.stringify(entry.name)}`
        )
      }
    }
    return { providers: entries, domains }
  })

/** Decodes the file's text (an array of providers, or `{ domains, providers }`); every issue named by its entry or domain and field. */
export const parse = (path: string, text: string): Effect.Effect<Spec, ProvidersError> =>
  Effect.gen(function* () {
    const invalid = (detail: string) => new ProvidersError({ reason: "Invalid", path, detail })
    const raw = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (error) => invalid(`not JSON (${describe(error)})`)
    })
    if (Array.isArray(raw)) return yield* decode(raw, undefined, invalid)
    if (typeof raw !== "object" || raw === null || !("providers" in raw)) {
      return yield* invalid(
        'expected a JSON array of providers, one object per provider, or an object { "domains": {...}, "providers": [...] }'
      )
    }
    const file = yield* Schema.decodeUnknown(ProvidersObject, { errors: "all" })(raw).pipe(
      Effect.mapError((error) =>
        invalid(
          issuesOf(error, (field) => (field === undefined ? undefined : `field ${String(field)}`)).replace(
            /is unexpected, expected: .*/,
            'is not a field of the file; expected "domains" and "providers"'
          )
        )
      )
    )
    if (!Array.isArray(file.providers)) {
      return yield* invalid("field providers: expected a JSON array of providers, one object per provider")
    }
    return yield* decode(file.providers, file.domains, invalid)
  })

/**
 * Where each provider may go, as for a single `--base-url`: plain `http://`
 * only to loopback unless `allowInsecureHttp`; a host other than loopback
 * needs a `keyEnv`.
 */
const checkDestination = (
  path: string,
  where: string,
  field: (path: string) => string,
  entry: ProviderEntry,
  allowInsecureHttp: boolean
): Effect.Effect<void, ProvidersError> => {
  const url = new URL(entry.baseUrl)
  const loopback = EndpointConfig.isLoopback(url.hostname)
  if (!loopback && url.protocol === "http:" && !allowInsecureHttp) {
    return new ProvidersError({
      reason: "Invalid",
      path,
      detail: `${where}, field ${field("baseUrl")}: plain http:// to ${url.hostname}, which is not loopback, would cross the network in clear; use https://, or add --allow-insecure-http if that is meant`
    })
  }
  if (!loopback && entry.keyEnv === undefined) {
    return new ProvidersError({
      reason: "Invalid",
      path,
      detail: `${where}, field ${field("keyEnv")}: missing, so no API key would be sent to ${url.hostname}; name the environment variable holding its key`
    })
  }
  return Effect.void
}

/** The key each entry names, read from the environment as a `Redacted`. */
const readKey = (path: string, where: string, field: (path: string) => string, entry: ProviderEntry) =>
  entry.keyEnv === undefined
    ? Effect.succeed(undefined)
    : Config.redacted(entry.keyEnv).pipe(
        Effect.mapError(
          () =>
            new ProvidersError({
              reason: "KeyMissing",
              path,
              detail: `${where}, field ${field("keyEnv")}: the environment variable ${entry.keyEnv} is not set`
            })
        )
      )

/** The providers, ready to run, and the shared domains' limits. */
export interface Loaded {
  readonly providers: ReadonlyArray<Provider>
  readonly domains: Readonly<Record<string, DomainLimits>>
}

/** Checks where each provider goes and reads its key; `where` names an entry in errors. */
export const ready = (
  path: string,
  spec: Spec,
  options: { readonly allowInsecureHttp: boolean },
  naming: Naming = fileNaming
): Effect.Effect<Loaded, ProvidersError> =>
  Effect.map(
    Effect.forEach(spec.providers, (entry, index) => {
      const where = naming.entry(spec.providers, index)
      return Effect.zipRight(
        checkDestination(path, where, naming.field, entry, options.allowInsecureHttp),
        Effect.map(readKey(path, where, naming.field, entry), (apiKey): Provider => ({ ...entry, apiKey }))
      )
    }),
    (providers) => ({ providers, domains: spec.domains })
  )

/** Reads, decodes and checks the file, and reads each provider's key. */
export const load = (
  path: string,
  options: { readonly allowInsecureHttp: boolean }
): Effect.Effect<Loaded, ProvidersError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs
      .readFileString(path)
      .pipe(Effect.mapError((error) => new ProvidersError({ reason: "Unreadable", path, detail: describe(error) })))
    return yield* ready(path, yield* parse(path, text), options)
  })

// ---- --provider and --domain flags -------------------------------------------------------

/** A flag's key for each field of an entry (`limits.rpm` is `rpm`). */
const FLAG_KEYS: Readonly<Record<string, string>> = {
  name: "name",
  baseUrl: "base-url",
  keyEnv: "key-env",
  domain: "domain",
  weight: "weight",
  tier: "tier",
  contextWindow: "context-window",
  "limits.rpm": "rpm",
  "limits.tpm": "tpm",
  limits: "rpm/tpm",
  concurrency: "concurrency"
}
const FIELDS_BY_KEY = new Map(Object.entries(FLAG_KEYS).map(([field, key]) => [key, field]))
const NUMERIC = new Set(["weight", "tier", "context-window", "rpm", "tpm", "concurrency"])

const flagNaming = (flag: string): Naming => ({
  entry: (raw, index) => {
    const name = Array.isArray(raw) ? (raw[index] as { readonly name?: unknown } | undefined)?.name : undefined
    return typeof name === "string" && name.trim() !== ""
      ? `${flag} #${index + 1} (${JSON.stringify(name)})`
      : `${flag} #${index + 1}`
  },
  field: (path) => FLAG_KEYS[path] ?? path
})

/** `key=value,key=value`, each key once; a number where the field takes one (else the text, for the Schema to name). */
const keyValues = (
  text: string,
  where: string,
  invalid: (detail: string) => ProvidersError
): Effect.Effect<Record<string, string | number>, ProvidersError> =>
  Effect.gen(function* () {
    const fields: Record<string, string | number> = {}
    for (const part of text.split(",")) {
      const equals = part.indexOf("=")
      if (equals <= 0) {
        return yield* invalid(
          `${where}: ${JSON.stringify(part)} is not key=value (expected e.g. name=a,base-url=https://...,key-env=A_KEY,tpm=30000)`
        )
      }
      const key = part.slice(0, equals).trim()
      const value = part.slice(equals + 1).trim()
      if (key in fields) return yield* invalid(`${where}, field ${key}: given twice`)
      fields[key] = NUMERIC.has(key) && value !== "" && Number.isFinite(Number(value)) ? Number(value) : value
    }
    return fields
  })

/**
 * `--provider name=a,base-url=https://...,key-env=A_KEY,tpm=30000,domain=org` (repeated) and `--domain
 * name=org,rpm=600,tpm=100000` (repeated), as the file's entries and domains: decoded by the same Schema
 * and checks, each error naming the flag's occurrence (`--provider #2 ("b")`) and its key.
 */
export const fromFlags = (
  providerFlags: ReadonlyArray<string>,
  domainFlags: ReadonlyArray<string>
): Effect.Effect<Spec, ProvidersError> =>
  Effect.gen(function* () {
    const invalid = (detail: string) => new ProvidersError({ reason: "Invalid", path: FLAGS, detail })
    const entries: Array<Record<string, unknown>> = []
    for (const [index, text] of providerFlags.entries()) {
      const fields = yield* keyValues(text, `--provider #${index + 1}`, invalid)
      const entry: Record<string, unknown> = {}
      const limits: Record<string, unknown> = {}
      for (const [key, value] of Object.entries(fields)) {
        const field = FIELDS_BY_KEY.get(key) ?? key
        if (field.startsWith("limits.")) limits[field.slice("limits.".length)] = value
        else entry[field] = value
      }
      if (Object.keys(limits).length > 0) entry.limits = limits
      entries.push(entry)
    }
    const domains: Record<string, Record<string, unknown>> = {}
    for (const [index, text] of domainFlags.entries()) {
      const where = `--domain #${index + 1}`
      const { name, ...limits } = yield* keyValues(text, where, invalid)
      if (typeof name !== "string" || name === "") {
        return yield* invalid(`${where}, field name: missing (expected e.g. name=org,rpm=600,tpm=100000)`)
      }
      if (name in domains) return yield* invalid(`${where}, field name: domain ${JSON.stringify(name)} is given twice`)
      domains[name] = limits
    }
    return yield* decode(entries, domains, invalid, flagNaming(FLAGS))
  })

/** The flags' providers, checked and with their keys, as `load` gives a file's. */
export const loadFlags = (
  providerFlags: ReadonlyArray<string>,
  domainFlags: ReadonlyArray<string>,
  options: { readonly allowInsecureHttp: boolean }
): Effect.Effect<Loaded, ProvidersError> =>
  Effect.flatMap(fromFlags(providerFlags, domainFlags), (spec) => ready(FLAGS, spec, options, flagNaming(FLAGS)))
