/**
 * One external API, described as data: where it is, how to authenticate,
 * default headers, the timeout, its limits (requests and tokens per
 * interval, concurrency), retry and breaker settings, and the connection
 * pool. A Schema, so a bad value fails at Layer construction with an
 * `InvalidOptionsError` naming the field; `config(prefix)` reads it from the
 * environment through `Config`, with defaults.
 *
 * Safety checks made here, once: a plain `http://` base URL to a host other
 * than loopback is refused unless `allowInsecureHttp` is set (a key would
 * cross the network in clear); header names must be tokens and header values
 * may not hold CR or LF (which would let a value smuggle in another header);
 * secrets must already be `Redacted` (a plain string is refused, so a key can
 * never be printed by accident), and a credential header (`authorization`,
 * `x-api-key`, `cookie`, ...) is refused in plain `headers`. A refusal names
 * the field and never prints what could be a secret: every string under
 * `auth`, a credential header's value, a base URL's `user:password`.
 *
 * @since 0.1.0
 */

import type { Executor, Retry } from "@sluice/core"
import { InvalidOptions } from "@sluice/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { StaticAuth } from "./Auth.js"
import * as Secrets from "./internal/secrets.js"

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * Headers the HTTP stack sets itself (connection management and framing): a
 * caller's value would be refused by undici, or change how the message is
 * framed, so they are refused before sending.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "expect",
  "host",
  "content-length"
])

/**
 * What is wrong with a header name, or undefined: it must be a token, and not
 * a hop-by-hop or framing header. The message never quotes the name's value.
 *
 * @since 0.1.0
 * @category utils
 */
export const headerNameProblem = (name: string): string | undefined =>
  !HEADER_NAME.test(name)
    ? "Expected a header name (letters, digits and !#$%&'*+.^_`|~-)"
    : HOP_BY_HOP.has(name.toLowerCase())
      ? "A hop-by-hop or framing header (connection, keep-alive, transfer-encoding, te, trailer, upgrade, expect, host, content-length) is set by the HTTP stack, not by the caller"
      : undefined

/**
 * What is wrong with a header value, or undefined: the rules the HTTP stack
 * applies (tab, space, visible ASCII and Latin-1 only), checked before
 * sending so that a bad value is the caller's typed mistake, not a transport
 * failure. The message never quotes the value (it may be a secret).
 *
 * @since 0.1.0
 * @category utils
 */
export const headerValueProblem = (value: string): string | undefined =>
  /[\r\n\0]/.test(value)
    ? "A header value may not contain CR, LF or NUL"
    : /[^\t\x20-\x7e\x80-\xff]/.test(value)
      ? "A header value may hold only tabs, spaces and visible Latin-1 characters (no control characters, nothing beyond U+00FF such as U+2028)"
      : undefined

/**
 * True when a header value could be sent as it is (see {@link headerValueProblem}).
 *
 * @since 0.1.0
 * @category utils
 */
export const isSafeHeaderValue = (value: string) => headerValueProblem(value) === undefined

const HeaderName = Schema.String.pipe(
  Schema.pattern(HEADER_NAME, { message: () => "Expected a header name (letters, digits and !#$%&'*+.^_`|~-)" })
)
const HeaderValue = Schema.String.pipe(Schema.filter((value) => headerValueProblem(value) ?? true))

/** Headers that carry credentials: they belong in `auth`, as `Redacted` secrets, never in plain `headers`. */
const CREDENTIAL_HEADERS = new Set([
  "authorization",
  "proxy-authorization",
  "x-api-key",
  "api-key",
  "x-goog-api-key",
  "cookie"
])

/**
 * True for a header that carries credentials (`authorization`, `x-api-key`,
 * `cookie`, ...): refused in plain `headers`, redacted wherever it is recorded.
 *
 * @since 0.1.0
 * @category guards
 */
export const isCredentialHeader = (name: string) => CREDENTIAL_HEADERS.has(name.toLowerCase())

const Secret = Schema.RedactedFromSelf(Schema.String).annotations({
  message: () => "Expected a Redacted secret (wrap it with Redacted.make, or read it with Config.redacted)"
})

/** A secret that goes into a header: the header's rules, checked without printing it. */
const HeaderSecret = Secret.pipe(
  Schema.filter((secret) => {
    const problem = headerValueProblem(Redacted.value(secret))
    return problem === undefined ? true : `${problem} (the secret is not shown)`
  })
)

const AuthSchema = Schema.Union(
  Schema.TaggedStruct("Bearer", { token: HeaderSecret }),
  Schema.TaggedStruct("ApiKey", {
    header: Schema.optional(Schema.UndefinedOr(HeaderName)),
    key: HeaderSecret
  }),
  Schema.TaggedStruct("Basic", {
    username: Schema.String.pipe(
      Schema.filter((username) => !username.includes(":") || "A Basic username may not contain a colon")
    ),
    password: Secret
  }),
  Schema.TaggedStruct("None", {})
)

const Limit = Schema.Struct({
  limit: InvalidOptions.PositiveNumber,
  interval: InvalidOptions.PositiveDuration,
  capacity: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveNumber)),
  windowMargin: Schema.optional(Schema.UndefinedOr(InvalidOptions.NonNegativeDuration))
})

/**
 * Whether a URL's hostname is this machine's loopback (`localhost`,
 * `127.x.x.x`, `::1`): the hosts a plain `http://` base URL may name without
 * `allowInsecureHttp`.
 *
 * @since 0.1.0
 * @category utils
 */
export const isLoopback = (hostname: string): boolean =>
  hostname === "localhost" ||
  hostname === "[::1]" ||
  hostname === "::1" ||
  /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)

const BaseUrl = Schema.String.pipe(
  Schema.filter(
    (value) => {
      try {
        const url = new URL(value)
        if (url.protocol !== "http:" && url.protocol !== "https:") return "Expected an http: or https: URL"
        if (url.username !== "" || url.password !== "") return "Put credentials in auth, not in the URL"
        return true
      } catch {
        return "Expected an absolute URL such as https://api.example.com/v1"
      }
    },
    { identifier: "BaseUrl" }
  )
)

const OptionsSchema = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  baseUrl: BaseUrl,
  // Exact (no `| undefined` union, whose failure message would print the value, secrets and all);
  // `validate` drops keys set to undefined first.
  auth: Schema.optionalWith(AuthSchema, { exact: true }),
  headers: Schema.optionalWith(
    Schema.Record({ key: HeaderName, value: HeaderValue }).pipe(
      Schema.filter((headers) => {
        const issues: Array<Schema.FilterIssue> = []
        for (const header of Object.keys(headers)) {
          if (isCredentialHeader(header)) {
            issues.push({
              path: [header],
              message: "A credential goes in auth, as a Redacted secret, not in plain headers (its value is not shown)"
            })
          } else {
            const problem = headerNameProblem(header)
            if (problem !== undefined) issues.push({ path: [header], message: problem })
          }
        }
        return issues.length === 0 ? true : issues
      })
    ),
    { exact: true }
  ),
  timeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  deadline: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  serverWaitCeiling: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  maxResponseBytes: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
  limits: Schema.optional(
    Schema.UndefinedOr(
      Schema.Struct({
        requests: Schema.optional(Schema.UndefinedOr(Limit)),
        tokens: Schema.optional(Schema.UndefinedOr(Limit)),
        concurrency: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
        queueCapacity: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt))
      })
    )
  ),
  retry: Schema.optional(Schema.UndefinedOr(Schema.Object)),
  breaker: Schema.optional(Schema.UndefinedOr(Schema.Object)),
  allowInsecureHttp: Schema.optional(Schema.UndefinedOr(Schema.Boolean)),
  pool: Schema.optional(
    Schema.UndefinedOr(
      Schema.Struct({
        connections: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt)),
        keepAliveTimeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
        pipelining: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt))
      })
    )
  )
}).pipe(
  Schema.filter((options) => {
    const url = new URL(options.baseUrl)
    return url.protocol === "https:" || isLoopback(url.hostname) || options.allowInsecureHttp === true
      ? true
      : {
          path: ["baseUrl"],
          message: `Refusing plain http:// to ${url.hostname}, which is not loopback: credentials would cross the network in clear (set allowInsecureHttp to allow it)`
        }
  })
)

/**
 * @since 0.1.0
 * @category models
 */
export interface LimitOptions {
  readonly limit: number
  readonly interval: Duration.DurationInput
  readonly capacity?: number | undefined
  /** The sliding window's room over `interval` (default 5 ms); see `RateLimiter.LimitOptions`. */
  readonly windowMargin?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface EndpointConfig {
  /** Names the endpoint in errors, metrics, spans and events. */
  readonly name: string
  /** e.g. `https://api.openai.com/v1`; request paths are appended to it. */
  readonly baseUrl: string
  readonly auth?: StaticAuth | undefined
  /** Sent with every request. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** How long one attempt may take, body included. Default 60 s. */
  readonly timeout?: Duration.DurationInput | undefined
  /** How long a call may take in all (queue, attempts, delays). None by default. */
  readonly deadline?: Duration.DurationInput | undefined
  /**
   * The longest a server's answer may hold the endpoint's limiter: a
   * `retry-after`/`retry-after-ms`, or a `*-reset*`/`RateLimit` reset with
   * nothing remaining, beyond it holds the limiter only this long, and the
   * call that was told fails (`retryable: false`, with the advertised wait).
   * Default 5 minutes ({@link DEFAULT_SERVER_WAIT_CEILING}).
   */
  readonly serverWaitCeiling?: Duration.DurationInput | undefined
  /**
   * The largest answer body read, in bytes: a larger one fails the call
   * (`ResponseTooLarge`, not retried) without being read further. Default
   * 64 MiB ({@link DEFAULT_MAX_RESPONSE_BYTES}).
   */
  readonly maxResponseBytes?: number | undefined
  readonly limits?:
    | {
        readonly requests?: LimitOptions | undefined
        readonly tokens?: LimitOptions | undefined
        /** Calls in flight at once. Default 16. */
        readonly concurrency?: number | undefined
        readonly queueCapacity?: number | undefined
      }
    | undefined
  /** Retry settings for the endpoint's Executor. Default: 3 attempts, full-jitter backoff from 500 ms. */
  readonly retry?: Retry.Options | undefined
  /** A circuit breaker for the endpoint. None by default. */
  readonly breaker?: Executor.BreakerSetting | undefined
  /** Allow plain `http://` to a host that is not loopback. Default false. */
  readonly allowInsecureHttp?: boolean | undefined
  /** The undici connection pool. */
  readonly pool?:
    | {
        /** Connections per origin. Default undici's (unlimited). */
        readonly connections?: number | undefined
        /** How long an idle connection is kept. Default 4 s (undici's). */
        readonly keepAliveTimeout?: Duration.DurationInput | undefined
        readonly pipelining?: number | undefined
      }
    | undefined
}

/**
 * Validates a config; every wrong field is named in one `InvalidOptionsError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const validate = (config: EndpointConfig): Effect.Effect<EndpointConfig, InvalidOptions.InvalidOptionsError> =>
  Effect.as(
    InvalidOptions.decode(
      `Endpoint "${config.name ?? ""}"`,
      OptionsSchema
    )(Object.fromEntries(Object.entries(config).filter(([, value]) => value !== undefined))).pipe(
      // An issue may quote the value it refused: whatever in the config could be a secret is cut out of it.
      Effect.mapError((error) => {
        const scrubber = scrubberFor(config)
        const issues = scrubber.scrub(error.issues)
        return issues === error.issues ? error : new InvalidOptions.InvalidOptionsError({ ...error, issues })
      })
    ),
    config
  )

/** Every string in `value` (a plain secret, or a Redacted one revealed), but a tag or a header name. */
const stringsIn = (value: unknown, found: Array<string>, depth = 0): Array<string> => {
  if (depth > 4) return found
  if (typeof value === "string") found.push(value)
  else if (Redacted.isRedacted(value)) stringsIn(Redacted.value(value), found, depth + 1)
  else if (typeof value === "object" && value !== null) {
    for (const [key, inner] of Object.entries(value)) {
      if (key !== "_tag" && key !== "header") stringsIn(inner, found, depth + 1)
    }
  }
  return found
}

/**
 * A scrubber for what in a config could be a secret: everything under
 * `auth` (but its tag and header name), credential headers' values, and
 * credentials in the base URL (`https://user:password@...`).
 *
 * @internal
 */
export const scrubberFor = (config: Partial<EndpointConfig>): Secrets.Scrubber => {
  const scrubber = Secrets.make()
  const raw = config as Record<string, unknown>
  for (const secret of stringsIn(raw.auth, [])) scrubber.remember(secret)
  const auth = raw.auth as { _tag?: unknown; username?: unknown; password?: unknown } | undefined
  if (auth?._tag === "Basic" && typeof auth.username === "string") {
    const password = Redacted.isRedacted(auth.password) ? Redacted.value(auth.password) : auth.password
    if (typeof password === "string")
      scrubber.rememberHeader(`Basic ${Buffer.from(`${auth.username}:${password}`).toString("base64")}`)
  }
  if (typeof raw.headers === "object" && raw.headers !== null) {
    for (const [name, value] of Object.entries(raw.headers)) {
      if (isCredentialHeader(name)) for (const secret of stringsIn(value, [])) scrubber.rememberHeader(secret)
    }
  }
  if (typeof raw.baseUrl === "string") {
    const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#@]*)@/i.exec(raw.baseUrl)?.[1]
    if (userinfo !== undefined) {
      scrubber.remember(userinfo)
      for (const part of userinfo.split(":")) scrubber.remember(part)
      try {
        const decoded = decodeURIComponent(userinfo)
        scrubber.remember(decoded)
        for (const part of decoded.split(":")) scrubber.remember(part)
      } catch {
        // not percent-encoded
      }
    }
  }
  return scrubber
}

/**
 * The default timeout of one attempt.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_TIMEOUT = Duration.seconds(60)

/**
 * The default ceiling on a server-driven wait (see `EndpointConfig.serverWaitCeiling`).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_SERVER_WAIT_CEILING = Duration.minutes(5)

/**
 * The default cap on an answer's body (see `EndpointConfig.maxResponseBytes`): 64 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

const optionalNumber = (name: string) => Config.option(Config.number(name))

/**
 * Reads an endpoint from the environment (or any `ConfigProvider`), each
 * name under `prefix` (e.g. `OPENAI`): `BASE_URL` (required), `API_KEY` (a
 * bearer token, redacted; `API_KEY_HEADER` sends it in that header instead),
 * `TIMEOUT_MS`, `RPM`, `TPM`, `CONCURRENCY`, `MAX_ATTEMPTS`,
 * `ALLOW_INSECURE_HTTP`. What is absent takes its default.
 *
 * @since 0.1.0
 * @category schemas
 */
export const config = (name: string, prefix: string): Config.Config<EndpointConfig> =>
  Config.nested(
    Config.all({
      baseUrl: Config.string("BASE_URL"),
      apiKey: Config.option(Config.redacted("API_KEY")),
      apiKeyHeader: Config.option(Config.string("API_KEY_HEADER")),
      timeoutMs: optionalNumber("TIMEOUT_MS"),
      rpm: optionalNumber("RPM"),
      tpm: optionalNumber("TPM"),
      concurrency: Config.option(Config.integer("CONCURRENCY")),
      maxAttempts: Config.option(Config.integer("MAX_ATTEMPTS")),
      allowInsecureHttp: Config.withDefault(Config.boolean("ALLOW_INSECURE_HTTP"), false)
    }),
    prefix
  ).pipe(
    Config.map((env): EndpointConfig => {
      const key = Option.getOrUndefined(env.apiKey) as Redacted.Redacted<string> | undefined
      const header = Option.getOrUndefined(env.apiKeyHeader)
      const rpm = Option.getOrUndefined(env.rpm)
      const tpm = Option.getOrUndefined(env.tpm)
      const maxAttempts = Option.getOrUndefined(env.maxAttempts)
      const timeoutMs = Option.getOrUndefined(env.timeoutMs)
      return {
        name,
        baseUrl: env.baseUrl,
        auth:
          key === undefined
            ? undefined
            : header === undefined
              ? { _tag: "Bearer", token: key }
              : { _tag: "ApiKey", header, key },
        timeout: timeoutMs === undefined ? undefined : Duration.millis(timeoutMs),
        limits: {
          requests: rpm === undefined ? undefined : { limit: rpm, interval: "1 minute" },
          tokens: tpm === undefined ? undefined : { limit: tpm, interval: "1 minute" },
          concurrency: Option.getOrUndefined(env.concurrency)
        },
        retry: maxAttempts === undefined ? undefined : { maxAttempts },
        allowInsecureHttp: env.allowInsecureHttp
      }
    })
  )
