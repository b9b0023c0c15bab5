/**
 * The ApiClient's machinery: one attempt of a call (auth headers, send,
 * classify the answer, feed its rate-limit headers to the limiter, decode)
 * under its timeout, and the executor every call runs through. The timeout
 * fails with an `ApiError` of reason `Timeout`: the executor runs it
 * (`timeout` and `onTimeout` in the submit options, its own timer; the
 * timeout is retried like any failure), a plain client (`executor: false`)
 * wraps each attempt in `Effect.timeoutFail` itself.
 *
 * Per call it does only what the call needs: the rate-limit headers are
 * parsed only when the answer has some (`RateLimitHeaders.parse` looks at the
 * names first), the limiter is told only when there is something to tell it,
 * and one decoder serves each Schema. What is the same from call to call is
 * built once: the default headers (with `accept`), an auth secret's checks
 * (once per secret), a URL's span attributes and a header's attribute name
 * (bounded caches). The `http.client` span sets itself as the parent span and
 * turns the platform's span off with one acquire/release, which also ends it.
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpTraceContext from "@effect/platform/HttpTraceContext"
import { type CircuitBreaker, Executor, type InvalidOptions, RateLimiter, RateLimiterStore } from "@sluice/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import { constTrue } from "effect/Function"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type * as ApiClient from "../ApiClient.js"
import { ApiError } from "../ApiError.js"
import * as Auth from "../Auth.js"
import * as EndpointConfig from "../EndpointConfig.js"
import * as RateLimitHeaders from "../RateLimitHeaders.js"

const EXCERPT_LENGTH = 300

/** A control character (C0, DEL) or a line separator. */
const isControl = (code: number) => code < 0x20 || code === 0x7f || code === 0x2028 || code === 0x2029

/** Control characters and spaces: a path holding one is refused, not silently stripped by the URL parser. */
const isUnsafePath = (path: string) => {
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i)
    if (code === 0x20 || isControl(code)) return true
  }
  return false
}

/** `text` with control characters and line separators escaped (`\u000d`), for a message. */
const printable = (text: string) => {
  let clean = true
  for (let i = 0; i < text.length && clean; i++) clean = !isControl(text.charCodeAt(i))
  if (clean) return text
  let out = ""
  for (const char of text) {
    const code = char.charCodeAt(0)
    out += isControl(code) ? `\\u${code.toString(16).padStart(4, "0")}` : char
  }
  return out
}

const NOTHING_REPORTED: RateLimitHeaders.RateLimitInfo = { limits: [], problems: [] }

/**
 * Header names whose values a span never records: credentials a request
 * carries, and answers that often echo them (`www-authenticate`, `set-cookie`).
 */
const REDACTED_IN_SPANS = new Set([
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "x-api-key",
  "api-key",
  "x-goog-api-key",
  "www-authenticate",
  "proxy-authenticate"
])
const REDACTED = "<redacted>"

/** What an auth provider gives: header names (lower-case) and their secrets. */
type Credentials = ReadonlyArray<readonly [string, Redacted.Redacted<string>]>

/** Whether `name` is one of the auth headers. */
const isCredentialOf = (credentials: Credentials, name: string) => {
  for (const [header] of credentials) if (header === name) return true
  return false
}

/** Whether `name` matches one of the names the platform's `Headers.currentRedactedNames` holds. */
const isRedactedName = (redactedNames: ReadonlyArray<string | RegExp>, name: string) => {
  for (const redacted of redactedNames) {
    if (typeof redacted === "string" ? redacted.toLowerCase() === name : redacted.test(name)) return true
  }
  return false
}

/**
 * A bounded cache of what is derived from a string and asked for on every request (an attribute name, a
 * URL's parts); emptied when `generation` (what the derivation depends on besides the string) changes.
 */
const memo = <A>(derive: (input: string) => A, generation: () => number = () => 0, capacity = 256) => {
  const cache = new Map<string, A>()
  let cachedGeneration = generation()
  return (input: string): A => {
    const current = generation()
    if (current !== cachedGeneration) {
      cache.clear()
      cachedGeneration = current
    }
    let value = cache.get(input)
    if (value === undefined) {
      if (cache.size >= capacity) cache.clear()
      value = derive(input)
      cache.set(input, value)
    }
    return value
  }
}

/** A span's attribute names per header name, as the platform's client names them. */
interface AttributeKeys {
  readonly of: (name: string) => string
}
const REQUEST_HEADER_KEYS: AttributeKeys = { of: memo((name) => `http.request.header.${name}`) }
const RESPONSE_HEADER_KEYS: AttributeKeys = { of: memo((name) => `http.response.header.${name}`) }

/** One decoder per Schema: building it is most of the cost of decoding a small body. */
const decoders = new WeakMap<object, (input: unknown) => Effect.Effect<unknown, ParseResult.ParseError, any>>()
const decoderFor = <A, I, R>(schema: Schema.Schema<A, I, R>) => {
  let decoder = decoders.get(schema)
  if (decoder === undefined) {
    decoder = Schema.decodeUnknown(schema) as (input: unknown) => Effect.Effect<unknown, ParseResult.ParseError, any>
    decoders.set(schema, decoder)
  }
  return decoder as (input: unknown) => Effect.Effect<A, ParseResult.ParseError, R>
}

/** Which of the endpoint's limits a server's report speaks for. */
const LIMIT_FOR_REPORT: Record<string, string> = {
  requests: "requests",
  tokens: "tokens",
  "input-tokens": "tokens",
  default: "requests"
}

/** HTTP errors that are the provider's fault count against the breaker; the caller's own do not. */
export const classify = (exit: Exit.Exit<unknown, unknown>): CircuitBreaker.Verdict => {
  if (Exit.isSuccess(exit)) return "success"
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return "failure" // a defect
  const error = failure.value
  if (!(error instanceof ApiError)) return "ignore" // AuthFailed is the caller's; the Executor's own errors are not the provider's
  switch (error.reason) {
    case "ServerError":
    case "Timeout":
    case "Transport":
      return "failure"
    default:
      // RateLimited is the limiter's business; ClientError, Decode, InvalidRequest are ours.
      return "ignore"
  }
}

export const DEFAULT_RETRY = { maxAttempts: 3, base: "500 millis", maxDelay: "30 seconds" } as const

export const make = (
  config: EndpointConfig.EndpointConfig,
  options: ApiClient.MakeOptions = {}
): Effect.Effect<ApiClient.ApiClientShape, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    yield* EndpointConfig.validate(config)
    const name = config.name
    const baseUrl = config.baseUrl.replace(/\/+$/, "")
    const timeoutMillis = Duration.toMillis(Duration.decode(config.timeout ?? EndpointConfig.DEFAULT_TIMEOUT))
    const maxResponseBytes = config.maxResponseBytes ?? EndpointConfig.DEFAULT_MAX_RESPONSE_BYTES
    const ceilingMillis = Duration.toMillis(
      Duration.decode(config.serverWaitCeiling ?? EndpointConfig.DEFAULT_SERVER_WAIT_CEILING)
    )
    const auth = options.auth ?? Auth.fromStatic(config.auth)
    const defaultHeaders = config.headers ?? {}
    const http = yield* HttpClient.HttpClient
    const clock = yield* Effect.clock

    // ---- limits -------------------------------------------------------------

    const limitSpecs: Record<string, RateLimiter.LimitOptions> = {}
    if (config.limits?.requests !== undefined) limitSpecs.requests = config.limits.requests
    if (config.limits?.tokens !== undefined) limitSpecs.tokens = config.limits.tokens
    const limiter =
      options.rateLimiter ??
      (Object.keys(limitSpecs).length === 0
        ? undefined
        : yield* Effect.flatMap(Effect.serviceOption(RateLimiterStore.RateLimiterStore), (store) =>
            RateLimiter.make({ name: `endpoint:${name}`, limits: limitSpecs }).pipe(
              Effect.provideServiceEffect(
                RateLimiterStore.RateLimiterStore,
                Option.isSome(store) ? Effect.succeed(store.value) : RateLimiterStore.makeMemory()
              )
            )
          ))

    // ---- secrets ------------------------------------------------------------

    /**
     * Every form of every secret the client knows (the config's, and each auth header as it is
     * revealed), cut out of whatever a server sends back before it reaches an error, event or span.
     */
    const scrubber = EndpointConfig.scrubberFor(config)
    const scrub = scrubber.scrub
    /**
     * The first characters of `text`, secrets cut out: scrubbed before it is cut (a secret across the cut
     * must not leave its first half), over a prefix long enough to hold any form of a secret that starts
     * within the excerpt, so a large body is never scanned whole.
     */
    const excerptOf = (text: string) =>
      scrub(text.slice(0, EXCERPT_LENGTH + scrubber.longestMatch)).slice(0, EXCERPT_LENGTH)

    // ---- tracing ------------------------------------------------------------

    // The platform's own span records every response header as it is, and its failure holds the request,
    // credentials and all: this client records its own `http.client` span instead (`traced`), redacting
    // headers by name and by value, and ending with the (scrubbed) ApiError; the platform's is turned off
    // while it is sent.

    const headerAttributes = (
      span: Tracer.Span,
      keys: AttributeKeys,
      headers: Headers.Headers,
      redactedNames: ReadonlyArray<string | RegExp>,
      credentials: Credentials
    ) => {
      for (const name in headers) {
        const value = headers[name]!
        span.attribute(
          keys.of(name),
          REDACTED_IN_SPANS.has(name) ||
            isCredentialOf(credentials, name) ||
            isRedactedName(redactedNames, name) ||
            scrubber.holds(value)
            ? REDACTED
            : value
        )
      }
    }

    /** A request URL's parts as a span records them (the path scrubbed), parsed once per URL. */
    const spanTarget = memo(
      (href: string) => {
        const url = new URL(href)
        return {
          origin: url.origin,
          port: url.port === "" ? undefined : +url.port,
          full: scrub(`${url.origin}${url.pathname}`),
          path: scrub(url.pathname),
          scheme: url.protocol.slice(0, -1)
        }
      },
      () => scrubber.generation
    )

    const traced = (
      outgoing: HttpClientRequest.HttpClientRequest,
      query: Readonly<Record<string, string>> | undefined,
      credentials: Credentials,
      send: (
        request: HttpClientRequest.HttpClientRequest
      ) => Effect.Effect<HttpClientResponse.HttpClientResponse, ApiError>
    ): Effect.Effect<HttpClientResponse.HttpClientResponse, ApiError> =>
      Effect.withFiberRuntime((fiber) => {
        if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return send(outgoing)
        return Effect.flatMap(
          Effect.makeSpan(`http.client ${outgoing.method}`, { kind: "client", captureStackTrace: false }),
          (span) => {
            const target = spanTarget(outgoing.url)
            span.attribute("http.request.method", outgoing.method)
            span.attribute("server.address", target.origin)
            if (target.port !== undefined) span.attribute("server.port", target.port)
            span.attribute("url.full", target.full)
            span.attribute("url.path", target.path)
            span.attribute("url.scheme", target.scheme)
            // The query's names only: a value may be a key.
            if (query !== undefined && Object.keys(query).length > 0) {
              span.attribute(
                "url.query",
                Object.keys(query)
                  .map((name) => `${scrub(name)}=${REDACTED}`)
                  .join("&")
              )
            }
            const redactedNames = fiber.getFiberRef(Headers.currentRedactedNames)
            headerAttributes(span, REQUEST_HEADER_KEYS, outgoing.headers, redactedNames, credentials)
            const request = fiber.getFiberRef(HttpClient.currentTracerPropagation)
              ? HttpClientRequest.setHeaders(outgoing, HttpTraceContext.toHeaders(span))
              : outgoing
            // While it is sent, this span is the parent span, and the platform's client records none of its own:
            // both fiber refs set and put back, and the span ended, by one acquire/release (what `withParentSpan`,
            // `withTracerDisabledWhen` and `onExit` each did with one of their own).
            const context = fiber.getFiberRef(FiberRef.currentContext)
            const disabledWhen = fiber.getFiberRef(HttpClient.currentTracerDisabledWhen)
            return Effect.acquireUseRelease(
              Effect.zipRight(
                FiberRef.set(FiberRef.currentContext, Context.add(context, Tracer.ParentSpan, span)),
                FiberRef.set(HttpClient.currentTracerDisabledWhen, constTrue)
              ),
              () =>
                Effect.tap(send(request), (response) => {
                  span.attribute("http.response.status_code", response.status)
                  headerAttributes(span, RESPONSE_HEADER_KEYS, response.headers, redactedNames, credentials)
                }),
              // The span ends with the (scrubbed) ApiError, or with nothing: the response holds the request,
              // credentials and all, and a tracer that dumps the exit would print them.
              (_, exit) =>
                Effect.zipRight(
                  Effect.zipRight(
                    FiberRef.set(FiberRef.currentContext, context),
                    FiberRef.set(HttpClient.currentTracerDisabledWhen, disabledWhen)
                  ),
                  Effect.clockWith((clock) =>
                    Effect.sync(() => span.end(clock.unsafeCurrentTimeNanos(), Exit.isSuccess(exit) ? Exit.void : exit))
                  )
                )
            )
          }
        )
      })

    // ---- one attempt --------------------------------------------------------

    /** The path as errors show it: no query (it may hold a key), secrets cut out, control characters escaped. */
    const shownPath = (path: string) => printable(scrub(path.split("?")[0]!))

    const toTransport =
      (method: string, path: string) =>
      (error: HttpClientError.HttpClientError): ApiError => {
        const cause = error.cause instanceof Error ? error.cause : undefined
        const code = (cause as { code?: string } | undefined)?.code
        const detail = scrub(
          [code, cause?.message ?? error.message].filter((part) => part !== undefined && part !== "").join(": ")
        )
        return error._tag === "RequestError" && error.reason !== "Transport"
          ? ApiError.invalidRequest({ endpoint: name, method, path, detail: `${error.reason}: ${detail}` })
          : ApiError.transport({ endpoint: name, method, path, detail })
      }

    /**
     * The longest wait the server asked for: a 429's or 503's `retry-after*`, or the reset of a limit it
     * reports exhausted. Only a wait beyond the ceiling matters to the caller (see `errorFor`).
     */
    const advertisedWait = (info: RateLimitHeaders.RateLimitInfo, status: number): number => {
      let longest =
        (status === 429 || status === 503) && info.retryAfterMillis !== undefined ? info.retryAfterMillis : 0
      for (const report of info.limits) {
        if (report.remaining !== undefined && report.remaining <= 0 && report.resetAfterMillis !== undefined) {
          longest = Math.max(longest, report.resetAfterMillis)
        }
      }
      return longest
    }

    /**
     * What the server said, as limiter updates (undefined: nothing to tell it). Every wait it drives is
     * cut to the ceiling here, before the limiter sees it: one answer must never hold the endpoint longer.
     */
    const limiterUpdates = (
      info: RateLimitHeaders.RateLimitInfo,
      status: number,
      key: string | undefined
    ): Effect.Effect<void> | undefined => {
      if (limiter === undefined) return undefined
      const updates: Array<Effect.Effect<void, unknown>> = []
      for (const report of info.limits) {
        const limit = LIMIT_FOR_REPORT[report.name]
        if (limit === undefined || !limiter.limitNames.includes(limit) || report.remaining === undefined) continue
        const resetAfterMillis =
          report.resetAfterMillis === undefined ? undefined : Math.min(report.resetAfterMillis, ceilingMillis)
        updates.push(
          limiter.sync(
            limit,
            resetAfterMillis === undefined
              ? { remaining: report.remaining }
              : { remaining: report.remaining, resetAfter: Duration.millis(resetAfterMillis) },
            { key }
          )
        )
      }
      if ((status === 429 || status === 503) && info.retryAfterMillis !== undefined && info.retryAfterMillis > 0) {
        updates.push(limiter.penalize(Duration.millis(Math.min(info.retryAfterMillis, ceilingMillis)), { key }))
      }
      if (updates.length === 0) return undefined
      // What the server says only tunes our pacing: a limiter error must never fail the call.
      return Effect.ignore(Effect.all(updates, { discard: true }))
    }

    /**
     * A 2xx whose headers advertise a reset beyond the ceiling keeps its body: the call was served and
     * paid for, and failing it would make the caller send (and pay for) it again. The limiter is held at
     * most the ceiling (`limiterUpdates`), and the cut is said in a warning carrying the advertised time,
     * so that it is seen. A non-2xx answer says it in its `ApiError` instead (`errorFor`).
     */
    const withinCeiling = (
      info: RateLimitHeaders.RateLimitInfo,
      status: number,
      path: string,
      updates: Effect.Effect<void> | undefined
    ): Effect.Effect<void> | undefined => {
      if (status < 200 || status >= 300) return updates
      const advertised = advertisedWait(info, status)
      if (advertised <= ceilingMillis) return updates
      const warning = Effect.logWarning(
        `${name}: ${path} answered ${status} but advertised a reset ${Math.ceil(advertised)} ms away, beyond the endpoint's serverWaitCeiling of ${ceilingMillis} ms; the endpoint holds its calls at most ${ceilingMillis} ms`
      ).pipe(
        Effect.annotateLogs({
          "sluice.endpoint": name,
          "sluice.advertisedWaitMillis": Math.ceil(advertised),
          "sluice.serverWaitCeilingMillis": ceilingMillis
        })
      )
      return updates === undefined ? warning : Effect.zipRight(updates, warning)
    }

    const errorFor = (
      method: string,
      path: string,
      response: HttpClientResponse.HttpClientResponse,
      info: RateLimitHeaders.RateLimitInfo,
      body: string
    ): ApiError => {
      const common = { endpoint: name, method, path, status: response.status, excerpt: excerptOf(body) }
      const advertised = advertisedWait(info, response.status)
      const hints: { shouldRetry?: boolean; retryAfterMillis?: number; ceilingMillis?: number } = {
        ...(info.shouldRetry === undefined ? {} : { shouldRetry: info.shouldRetry }),
        ...(advertised > ceilingMillis
          ? { retryAfterMillis: advertised, ceilingMillis }
          : info.retryAfterMillis === undefined
            ? {}
            : { retryAfterMillis: info.retryAfterMillis })
      }
      if (response.status === 429) return ApiError.rateLimited({ ...common, ...hints })
      if (response.status >= 500) return ApiError.serverError({ ...common, ...hints })
      const { retryAfterMillis: _, ceilingMillis: __, ...clientHints } = hints
      return ApiError.clientError({ ...common, ...clientHints })
    }

    /** The attempt's timeout in milliseconds: the call's own, else the endpoint's. */
    const timeoutMillisOf = (timeout: Duration.DurationInput | undefined) =>
      timeout === undefined ? timeoutMillis : Duration.toMillis(Duration.decode(timeout))

    /**
     * The answer's body, read once and decoded once, up to `maxResponseBytes`: a `content-length` beyond
     * it fails before reading, one within it is read whole, and a body of undeclared length is read as it
     * streams in, and stops being read (the connection dropped) once it grows beyond the cap.
     */
    const readBody = (
      response: HttpClientResponse.HttpClientResponse,
      method: string,
      path: string,
      transport: (error: HttpClientError.HttpClientError) => ApiError
    ): Effect.Effect<string, ApiError> => {
      const tooLarge = (detail: string) =>
        ApiError.responseTooLarge({
          endpoint: name,
          method,
          path,
          status: response.status,
          maxBytes: maxResponseBytes,
          detail
        })
      const declared = response.headers["content-length"]
      if (declared !== undefined && /^\d+$/.test(declared)) {
        if (Number(declared) > maxResponseBytes) return Effect.fail(tooLarge(`its content-length is ${declared}`))
        // A declared length within the cap bounds the body (the HTTP stack holds a body to its content-length):
        // read it whole, as one string.
        return Effect.mapError(response.text, transport)
      }
      return Effect.suspend(() => {
        const chunks: Array<Uint8Array> = []
        let total = 0
        // A response with no body at all (a 204, or a web `Response(null)`) has no stream: it is "".
        const body = Stream.catchAll(response.stream, (error) =>
          error.reason === "EmptyBody" ? Stream.empty : Stream.fail(transport(error))
        )
        return Stream.runForEach(body, (chunk) => {
          total += chunk.length
          if (total > maxResponseBytes) return Effect.fail(tooLarge(`more than ${maxResponseBytes} bytes arrived`))
          chunks.push(chunk)
          return Effect.void
        }).pipe(
          Effect.map(() =>
            chunks.length === 1
              ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength).toString("utf8")
              : Buffer.concat(chunks, total).toString("utf8")
          )
        )
      })
    }

    /** The endpoint's default headers and `accept: application/json`, built once. */
    const baseHeaders = Headers.set(Headers.fromInput(defaultHeaders), "accept", "application/json")

    /**
     * The auth secrets already checked and remembered by the scrubber, with the header each went in:
     * a provider handing the same secret again (static auth, a cached token) is not checked again.
     */
    const checkedSecrets = new WeakMap<Redacted.Redacted<string>, string>()

    /**
     * One attempt, not under its timeout (the executor's, or `Effect.timeoutFail`, puts it under one).
     * `safePath` is the path as errors show it (`shownPath`).
     */
    const attempt = <A, I, R>(
      method: ApiClient.Method,
      path: string,
      safePath: string,
      request: ApiClient.RequestOptions<A, I, R>
    ): Effect.Effect<A, ApiError | Auth.AuthFailed, R> => {
      // The defaults were checked with the config; a call's own headers and path are checked here, with the
      // rules the HTTP stack applies, so that a bad one is the caller's typed mistake and nothing is sent.
      const refuse = (detail: string) =>
        Effect.fail(ApiError.invalidRequest({ endpoint: name, method, path: safePath, detail }))
      if (isUnsafePath(path)) {
        return refuse("the path holds a control character (CR, LF, NUL, ...) or a space; encode it, or leave it out")
      }
      let headers = baseHeaders
      if (request.headers !== undefined) {
        for (const [header, value] of Object.entries(request.headers)) {
          const shown = printable(header.slice(0, 40))
          if (EndpointConfig.isCredentialHeader(header)) {
            return refuse(
              `header "${shown}" carries a credential: it goes in auth, as a Redacted secret, not in plain headers (its value is not shown)`
            )
          }
          const problem = EndpointConfig.headerNameProblem(header) ?? EndpointConfig.headerValueProblem(value)
          if (problem !== undefined) return refuse(`header "${shown}": ${problem} (its value is not shown)`)
        }
        // The call's headers over the defaults; the answer is still asked for as JSON.
        headers = Headers.set(
          Headers.merge(baseHeaders, Headers.fromInput(request.headers)),
          "accept",
          "application/json"
        )
      }
      const url = `${baseUrl}${path.startsWith("/") ? path : `/${path}`}`
      const transport = toTransport(method, safePath)
      const execute = (ready: HttpClientRequest.HttpClientRequest) => Effect.mapError(http.execute(ready), transport)
      /** The answer read: its rate-limit headers fed to the limiter, then an error, a refresh and resend, or the decoded body. */
      const answer = (
        refreshed: boolean,
        response: HttpClientResponse.HttpClientResponse,
        text: string
      ): Effect.Effect<A, ApiError | Auth.AuthFailed, R> => {
        // A success on an endpoint without a limiter has no one to tell: its headers are not read.
        const info =
          limiter === undefined && response.status >= 200 && response.status < 300
            ? NOTHING_REPORTED
            : RateLimitHeaders.parse(response.headers, clock.unsafeCurrentTimeMillis())
        const updates = withinCeiling(
          info,
          response.status,
          safePath,
          limiterUpdates(info, response.status, request.key)
        )
        if (updates === undefined) return conclude(refreshed, response, info, text)
        return Effect.zipRight(
          updates,
          Effect.suspend(() => conclude(refreshed, response, info, text))
        )
      }
      const conclude = (
        refreshed: boolean,
        response: HttpClientResponse.HttpClientResponse,
        info: RateLimitHeaders.RateLimitInfo,
        text: string
      ): Effect.Effect<A, ApiError | Auth.AuthFailed, R> => {
        if (response.status === 401 && !refreshed) {
          return Effect.flatMap(auth.refresh, (renewed) => (renewed ? send(true) : conclusion(response, info, text)))
        }
        return conclusion(response, info, text)
      }
      /** Issues quote the values they refused: a body echoing the key must not carry it into the error. */
      const decodeError = (status: number, issues: string, text: string) =>
        ApiError.decode({
          endpoint: name,
          method,
          path: safePath,
          status,
          issues: excerptOf(issues),
          excerpt: excerptOf(text)
        })
      const conclusion = (
        response: HttpClientResponse.HttpClientResponse,
        info: RateLimitHeaders.RateLimitInfo,
        text: string
      ): Effect.Effect<A, ApiError, R> => {
        if (response.status < 200 || response.status >= 300) {
          return Effect.fail(errorFor(method, safePath, response, info, text))
        }
        let json: unknown
        try {
          json = text === "" ? undefined : JSON.parse(text)
        } catch (error) {
          return Effect.fail(
            decodeError(response.status, `not JSON (${error instanceof Error ? error.message : String(error)})`, text)
          )
        }
        return Effect.mapError(decoderFor(request.schema)(json), (error) =>
          decodeError(
            response.status,
            ParseResult.ArrayFormatter.formatErrorSync(error)
              .map((issue) => `${issue.path.length > 0 ? JSON.stringify(issue.path) : "(root)"} ${issue.message}`)
              .join("; "),
            text
          )
        )
      }
      const read = (refreshed: boolean) => (response: HttpClientResponse.HttpClientResponse) =>
        Effect.flatMap(readBody(response, method, safePath, transport), (text) => answer(refreshed, response, text))
      const send = (refreshed: boolean): Effect.Effect<A, ApiError | Auth.AuthFailed, R> =>
        Effect.flatMap(auth.headers, (credentials) => {
          let outgoing = HttpClientRequest.make(method)(url, {
            headers,
            ...(request.query === undefined ? {} : { urlParams: request.query })
          })
          for (const [header, secret] of credentials) {
            // A provider handing a plain string where a secret belongs: refused, and never printed.
            if (!Redacted.isRedacted(secret)) {
              return refuse(
                `the auth provider gave header "${printable(header.slice(0, 40))}" a plain string, not a Redacted secret (its value is not shown)`
              )
            }
            const value = Redacted.value(secret)
            if (checkedSecrets.get(secret) !== header) {
              scrubber.rememberHeader(value)
              const problem = EndpointConfig.headerNameProblem(header) ?? EndpointConfig.headerValueProblem(value)
              if (problem !== undefined) {
                return refuse(
                  `the auth header "${printable(header.slice(0, 40))}": ${problem} (the secret is not shown)`
                )
              }
              checkedSecrets.set(secret, header)
            }
            outgoing = HttpClientRequest.setHeader(outgoing, header, value)
          }
          if (request.body !== undefined)
            outgoing = HttpClientRequest.setBody(outgoing, HttpBody.unsafeJson(request.body))
          return Effect.flatMap(traced(outgoing, request.query, credentials, execute), read(refreshed))
        })
      return send(false)
    }

    // ---- the executor -------------------------------------------------------

    const executor =
      options.executor === false
        ? undefined
        : yield* Executor.make({
            name,
            concurrency: config.limits?.concurrency ?? 16,
            queueCapacity: config.limits?.queueCapacity,
            rateLimiter: limiter,
            retry: config.retry ?? DEFAULT_RETRY,
            breaker:
              config.breaker === undefined
                ? undefined
                : "protect" in config.breaker
                  ? config.breaker
                  : { classify, ...config.breaker },
            deadline: config.deadline,
            // The platform client spans each HTTP call already; the executor's span (queue and attempts) is opt-in.
            spans: options.spans ?? false
          })

    const request = <A, I, R>(
      method: ApiClient.Method,
      path: string,
      requestOptions: ApiClient.RequestOptions<A, I, R>
    ): Effect.Effect<A, ApiClient.CallError, R> => {
      const safePath = shownPath(path)
      const once = attempt(method, path, safePath, requestOptions)
      const millis = timeoutMillisOf(requestOptions.timeout)
      const onTimeout = (): ApiError =>
        ApiError.timeout({ endpoint: name, method, path: safePath, timeoutMillis: millis })
      // The executor runs each attempt under its timeout; a timeout of zero is no executor timeout: it ends
      // the attempt at once, as it always did.
      if (executor === undefined || millis <= 0) {
        const timed = Effect.timeoutFail(once, { duration: Duration.millis(millis), onTimeout })
        if (executor === undefined) return timed
        return executor.submit(timed, {
          cost: requestOptions.cost,
          settle: requestOptions.settle,
          installments: requestOptions.installments,
          priority: requestOptions.priority,
          key: requestOptions.key
        })
      }
      return executor.submit(once, {
        cost: requestOptions.cost,
        settle: requestOptions.settle,
        installments: requestOptions.installments,
        priority: requestOptions.priority,
        key: requestOptions.key,
        timeout: millis,
        onTimeout
      })
    }

    if (options.seed !== undefined) yield* limiterUpdates(options.seed, 200, undefined) ?? Effect.void

    return {
      endpoint: name,
      baseUrl,
      limitNames: limiter?.limitNames ?? [],
      state: (keyOptions) => (limiter === undefined ? Effect.succeed([]) : limiter.state(keyOptions)),
      progress:
        executor === undefined
          ? undefined
          : {
              name: executor.name,
              stats: executor.stats,
              events: executor.events,
              subscribe: executor.subscribe
            },
      request,
      get: (path, requestOptions) => request("GET", path, requestOptions),
      post: (path, requestOptions) => request("POST", path, requestOptions),
      put: (path, requestOptions) => request("PUT", path, requestOptions),
      delete: (path, requestOptions) => request("DELETE", path, requestOptions)
    } satisfies ApiClient.ApiClientShape
  })
