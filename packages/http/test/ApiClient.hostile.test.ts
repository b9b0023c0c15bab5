/**
 * The ApiClient against a provider that lies (issue 16): a real local HTTP
 * server (`support/HostileServer`) answers each hostile case, and the client
 * runs over a real undici pool (`ApiClient.layer` over `NodeHttpClient.layerUndici`).
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"
import { ApiClient, type ApiError, Auth, EndpointConfig } from "../src/index.js"
import * as HostileServer from "./support/HostileServer.js"

const SECRET = "sk-hostile-0123456789abcdef/+="

const Answer = Schema.Struct({ answer: Schema.String })

const build = (config: EndpointConfig.EndpointConfig, options?: ApiClient.MakeOptions) =>
  Effect.map(
    Layer.build(ApiClient.layer(config, options).pipe(Layer.provide(NodeHttpClient.layerUndici))),
    Context.get(ApiClient.ApiClient)
  )

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? (exit.cause as { error?: E }).error : undefined

const query = (params: Record<string, string>) => new URLSearchParams(params).toString()

describe("ApiClient against a hostile server: the ceiling on server-driven waits", () => {
  const CEILING_MILLIS = 300
  const inAYear = new Date(Date.now() + 365 * 24 * 3_600_000).toUTCString()
  const cases: ReadonlyArray<{
    readonly name: string
    readonly status: number
    readonly headers: Record<string, string>
  }> = [
    { name: "retry-after: 999999999", status: 429, headers: { "retry-after": "999999999" } },
    { name: "retry-after-ms: 999999999999", status: 429, headers: { "retry-after-ms": "999999999999" } },
    { name: "retry-after: a date a year ahead", status: 429, headers: { "retry-after": inAYear } },
    { name: "a 503 with retry-after: 999999999", status: 503, headers: { "retry-after": "999999999" } },
    {
      name: "x-ratelimit-reset-tokens: 99999999h with remaining 0",
      status: 429,
      headers: { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "99999999h" }
    },
    {
      name: "anthropic-ratelimit-tokens-reset: 2999-01-01 with remaining 0",
      status: 429,
      headers: {
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2999-01-01T00:00:00Z"
      }
    },
    {
      name: "RateLimit: limit=100, remaining=0, reset=999999999",
      status: 429,
      headers: { ratelimit: "limit=100, remaining=0, reset=999999999" }
    }
  ]

  for (const hostile of cases) {
    it.live(
      `${hostile.name}: the call fails typed with the advertised wait; the next call goes within the ceiling`,
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const server = yield* HostileServer.make
            const api = yield* build({
              name: "hostile",
              baseUrl: server.url,
              auth: { _tag: "Bearer", token: Redacted.make(SECRET) },
              limits: {
                requests: { limit: 600, interval: "1 minute" },
                tokens: { limit: 100_000, interval: "1 minute" }
              },
              retry: { maxAttempts: 3, base: "10 millis", jitter: "none" },
              serverWaitCeiling: Duration.millis(CEILING_MILLIS)
            })
            const headers = Object.fromEntries(
              Object.entries(hostile.headers).map(([name, value]) => [`h.${name}`, value])
            )
            const exit = yield* Effect.exit(
              api.get(`/answer?${query({ status: String(hostile.status), ...headers })}`, { schema: Answer })
            )
            const error = failureOf(exit) as ApiError.ApiError
            expect(error).toMatchObject({
              _tag: "ApiError",
              reason: hostile.status === 429 ? "RateLimited" : "ServerError",
              ceilingMillis: CEILING_MILLIS
            })
            expect(error.retryAfterMillis).toBeGreaterThan(300 * 24 * 3_600_000) // the advertised wait, not the ceiling
            expect(error.retryable).toBe(false)
            expect(error.message).toContain("serverWaitCeiling")
            expect(server.seen).toHaveLength(1) // not retried

            const now = yield* Clock.currentTimeMillis
            for (const bucket of yield* api.state()) {
              expect(bucket.blockedUntil).toBeLessThanOrEqual(now + CEILING_MILLIS + 1)
            }
            const started = yield* Clock.currentTimeMillis
            const answer = yield* api
              .get("/ok", { schema: Answer, cost: { tokens: 10 } })
              .pipe(Effect.timeout("5 seconds"))
            expect(answer).toEqual({ answer: "42" })
            expect((yield* Clock.currentTimeMillis) - started).toBeLessThan(CEILING_MILLIS + 2000)
          })
        )
    )
  }

  it.live(
    "a 2xx whose headers advertise a reset years away returns its body, warns with the advertised time; the limiter is held at most the ceiling",
    () => {
      const warnings: Array<{ level: string; message: string; annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ logLevel, message, annotations }) => {
        warnings.push({
          level: logLevel.label,
          message: Array.isArray(message) ? message.join(" ") : String(message),
          annotations: Object.fromEntries(annotations)
        })
      })
      return Effect.scoped(
        Effect.gen(function* () {
          const server = yield* HostileServer.make
          const api = yield* build({
            name: "hostile",
            baseUrl: server.url,
            limits: { tokens: { limit: 100_000, interval: "1 minute" } },
            serverWaitCeiling: Duration.millis(CEILING_MILLIS)
          })
          const answer = yield* api.get(
            `/answer?${query({ status: "200", body: '{"answer":"late"}', "h.x-ratelimit-remaining-tokens": "0", "h.x-ratelimit-reset-tokens": "99999999h" })}`,
            { schema: Answer }
          )
          expect(answer).toEqual({ answer: "late" })
          // 99,999,999 hours, advertised in the warning as milliseconds; the ceiling named beside it.
          const warned = warnings.filter((entry) => entry.annotations["sluice.advertisedWaitMillis"] !== undefined)
          expect(warned).toHaveLength(1)
          expect(warned[0]!.level).toBe("WARN")
          expect(warned[0]!.annotations["sluice.advertisedWaitMillis"]).toBe(99_999_999 * 3_600_000)
          expect(warned[0]!.annotations["sluice.serverWaitCeilingMillis"]).toBe(CEILING_MILLIS)
          expect(warned[0]!.message).toContain("beyond the endpoint's serverWaitCeiling")
          const now = yield* Clock.currentTimeMillis
          for (const bucket of yield* api.state())
            expect(bucket.blockedUntil).toBeLessThanOrEqual(now + CEILING_MILLIS + 1)
          expect(
            yield* api.get("/ok", { schema: Answer, cost: { tokens: 10 } }).pipe(Effect.timeout("5 seconds"))
          ).toEqual({
            answer: "42"
          })
        })
      ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    }
  )

  it.live("past dates, negative and unparsable values are ignored, as before", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* HostileServer.make
        const api = yield* build({
          name: "hostile",
          baseUrl: server.url,
          limits: { requests: { limit: 600, interval: "1 minute" } },
          retry: { maxAttempts: 1 }
        })
        for (const value of ["Thu, 01 Jan 1970 00:00:00 GMT", "-5", "1e400", "soon", "Infinity"]) {
          const exit = yield* Effect.exit(
            api.get(`/answer?${query({ status: "429", "h.retry-after": value })}`, { schema: Answer })
          )
          const error = failureOf(exit) as ApiError.ApiError
          expect(error).toMatchObject({ reason: "RateLimited" })
          expect(error.ceilingMillis).toBeUndefined()
        }
        const now = yield* Clock.currentTimeMillis
        for (const bucket of yield* api.state()) expect(bucket.blockedUntil).toBeLessThanOrEqual(now + 1)
      })
    )
  )

  it.scoped("the ceiling defaults to 5 minutes; a bad one is refused naming the field", () =>
    Effect.gen(function* () {
      expect(Duration.toMillis(EndpointConfig.DEFAULT_SERVER_WAIT_CEILING)).toBe(300_000)
      const error = yield* Effect.flip(build({ name: "hostile", baseUrl: "http://127.0.0.1:9", serverWaitCeiling: -1 }))
      expect(error.message).toContain('["serverWaitCeiling"]')
    })
  )
})

describe("ApiClient against a hostile server: secrets never echoed", () => {
  const USERNAME = "sluice-user"

  /** A tracer that records every span the native one makes. */
  const recordingTracer = (spans: Array<Tracer.Span>) =>
    Effect.map(Effect.tracer, (native) =>
      Tracer.make({
        span: (...args) => {
          const span = native.span(...args)
          spans.push(span)
          return span
        },
        context: native.context
      })
    )

  const json = (value: unknown) =>
    JSON.stringify(value, (_, inner) => (typeof inner === "bigint" ? inner.toString() : inner))

  const modes: ReadonlyArray<{
    readonly name: string
    readonly auth?: EndpointConfig.EndpointConfig["auth"]
    readonly provider?: boolean
    /** What a server may echo: the secret, and for Basic the pair. */
    readonly secrets: ReadonlyArray<string>
  }> = [
    { name: "bearer", auth: { _tag: "Bearer", token: Redacted.make(SECRET) }, secrets: [SECRET] },
    { name: "API-key header", auth: { _tag: "ApiKey", key: Redacted.make(SECRET) }, secrets: [SECRET] },
    {
      name: "basic",
      auth: { _tag: "Basic", username: USERNAME, password: Redacted.make(SECRET) },
      secrets: [SECRET, `${USERNAME}:${SECRET}`]
    },
    { name: "cached token", provider: true, secrets: [SECRET] }
  ]

  for (const mode of modes) {
    it.live(`${mode.name}: no form of the secret in a log line, an event, an error or a span`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* HostileServer.make
          const logs: Array<string> = []
          const logger = Logger.make(({ message, annotations, cause }) => {
            logs.push(json({ message, annotations: [...annotations] }), Cause.pretty(cause))
          })
          const spans: Array<Tracer.Span> = []
          const tracer = yield* recordingTracer(spans)
          const provider = mode.provider
            ? yield* Auth.cachedToken({
                endpoint: "hostile",
                fetch: Effect.succeed({ token: Redacted.make(SECRET), expiresIn: "1 hour" })
              })
            : undefined
          const api = yield* build(
            {
              name: "hostile",
              baseUrl: server.url,
              ...(mode.auth === undefined ? {} : { auth: mode.auth }),
              limits: { requests: { limit: 600, interval: "1 minute" } },
              retry: { maxAttempts: 1 }
            },
            { ...(provider === undefined ? {} : { auth: provider }), spans: true }
          )
          const events = yield* api.progress!.subscribe
          const errors: Array<unknown> = []
          for (const path of ["/echo", "/echo?status=429", "/echo?status=500", "/echo?status=200", "/reset"]) {
            const exit = yield* api.get(path, { schema: Answer, query: { key: "q" } }).pipe(
              Effect.tapErrorCause((cause) => Effect.logError("call failed", cause)),
              Effect.withSpan("caller"),
              Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
              Effect.withTracer(tracer),
              Effect.exit
            )
            const error = failureOf(exit)
            expect(error).toMatchObject({ _tag: "ApiError" })
            errors.push(error)
          }
          expect((errors[0] as ApiError.ApiError).reason).toBe("ClientError")
          expect((errors[0] as ApiError.ApiError).excerpt).toContain("<redacted>")
          expect((errors[4] as ApiError.ApiError).reason).toBe("Transport")
          // The server did receive the credentials (the echo is the server's, not ours).
          expect(HostileServer.credentialsOf(server.seen[0]!.headers)).toContain(SECRET)

          const spanRecords = spans.map((span) =>
            json({ name: span.name, attributes: [...span.attributes], status: span.status })
          )
          expect(spans.some((span) => span.name === "http.client GET")).toBe(true)
          expect(
            spans.some((span) => span.attributes.get("http.response.header.x-echo-authorization") === "<redacted>")
          ).toBe(true)
          const spanExits = spans.map((span) =>
            span.status._tag === "Ended" ? `${String(span.status.exit)}\n${json(span.status.exit)}` : ""
          )
          const capture = [
            ...logs,
            ...errors.flatMap((error) => [
              String(error),
              (error as Error).message,
              json(error),
              Cause.pretty(Cause.fail(error))
            ]),
            json(Array.from(yield* Queue.takeAll(events))),
            ...spanRecords,
            ...spanExits
          ].join("\n")
          expect(logs.length).toBeGreaterThan(0)
          for (const secret of mode.secrets) {
            for (const form of HostileServer.formsOf(secret)) expect(capture).not.toContain(form)
          }
        })
      )
    )
  }
})

describe("ApiClient: a plain string where a secret belongs is refused without echo", () => {
  const PLAIN = "sk-plain-0123456789abcdef"
  const plain = PLAIN as unknown as Redacted.Redacted<string>
  const base = { name: "hostile", baseUrl: "https://api.example.com/v1" }
  const refusals: ReadonlyArray<{ readonly name: string; readonly config: unknown; readonly field: string }> = [
    { name: "a bearer token", config: { ...base, auth: { _tag: "Bearer", token: plain } }, field: '["auth","token"]' },
    { name: "an API key", config: { ...base, auth: { _tag: "ApiKey", key: plain } }, field: '["auth","key"]' },
    {
      name: "a Basic password",
      config: { ...base, auth: { _tag: "Basic", username: "u", password: plain } },
      field: '["auth","password"]'
    },
    { name: "the whole auth", config: { ...base, auth: PLAIN }, field: '["auth"]' },
    {
      name: "an auth with an unknown field",
      config: { ...base, auth: { _tag: "Bearer", token: Redacted.make(PLAIN), extra: PLAIN } },
      field: '["auth"'
    },
    {
      name: "a base URL with credentials",
      config: { ...base, baseUrl: `https://user:${PLAIN}@api.example.com/v1` },
      field: '["baseUrl"]'
    },
    {
      name: "a key in plain headers",
      config: { ...base, headers: { authorization: `Bearer ${PLAIN}` } },
      field: '["headers","authorization"]'
    },
    {
      name: "a key in plain x-api-key",
      config: { ...base, headers: { "x-api-key": PLAIN } },
      field: '["headers","x-api-key"]'
    }
  ]

  for (const refusal of refusals) {
    it.scoped(`${refusal.name}: refused at construction, naming the field, never printing the value`, () =>
      Effect.gen(function* () {
        const logs: Array<string> = []
        const logger = Logger.make(({ message, cause }) => logs.push(JSON.stringify(message), Cause.pretty(cause)))
        const error = yield* build(refusal.config as EndpointConfig.EndpointConfig).pipe(
          Effect.tapErrorCause((cause) => Effect.logError("construction failed", cause)),
          Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
          Effect.flip
        )
        expect(error._tag).toBe("InvalidOptionsError")
        expect(error.message).toContain(refusal.field)
        const capture = [error.message, String(error), JSON.stringify(error), ...logs].join("\n")
        for (const form of HostileServer.formsOf(PLAIN)) expect(capture).not.toContain(form)
      })
    )
  }

  it.live(
    "a call's own credential header, an auth provider's plain string, a cached token's plain string: refused, never sent or printed",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* HostileServer.make
          const config = { name: "hostile", baseUrl: server.url, retry: { maxAttempts: 1 } }
          const errors: Array<unknown> = []
          const api = yield* build(config)
          errors.push(
            yield* Effect.flip(api.get("/ok", { schema: Answer, headers: { authorization: `Bearer ${PLAIN}` } }))
          )
          const provider: Auth.AuthProvider = {
            headers: Effect.succeed([["x-api-key", plain]]),
            refresh: Effect.succeed(false)
          }
          errors.push(yield* Effect.flip((yield* build(config, { auth: provider })).get("/ok", { schema: Answer })))
          const cached = yield* Auth.cachedToken({
            endpoint: "hostile",
            fetch: Effect.succeed({ token: plain, expiresIn: "1 hour" })
          })
          errors.push(yield* Effect.flip((yield* build(config, { auth: cached })).get("/ok", { schema: Answer })))
          expect(errors.map((error) => (error as { reason: string }).reason)).toEqual([
            "InvalidRequest",
            "InvalidRequest",
            expect.stringContaining("plain string")
          ])
          expect(errors.slice(0, 2).every((error) => (error as ApiError.ApiError).retryable === false)).toBe(true)
          expect(server.seen).toHaveLength(0)
          const capture = errors
            .flatMap((error) => [String(error), (error as Error).message, JSON.stringify(error)])
            .join("\n")
          for (const form of HostileServer.formsOf(PLAIN)) expect(capture).not.toContain(form)
        })
      )
  )
})

describe("ApiClient: what the HTTP stack would refuse is a typed InvalidRequest, before anything is sent", () => {
  const TOKEN = "sk-crlf-0123456789abcdef"

  it.live(
    "bad header values, hop-by-hop headers, a bad cached token or path: InvalidRequest, not retryable, nothing sent",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* HostileServer.make
          const config: EndpointConfig.EndpointConfig = {
            name: "hostile",
            baseUrl: server.url,
            auth: { _tag: "Bearer", token: Redacted.make(TOKEN) },
            retry: { maxAttempts: 3, base: "10 millis" },
            breaker: { policy: { kind: "consecutive", failures: 1 } }
          }
          const api = yield* build(config)
          const calls: ReadonlyArray<{ readonly path: string; readonly headers?: Record<string, string> }> = [
            { path: "/ok", headers: { "x-note": "line\u2028separator" } },
            { path: "/ok", headers: { "x-note": "euro \u20ac" } },
            { path: "/ok", headers: { "x-note": "bell\u0007" } },
            { path: "/ok", headers: { "x-note": "a\r\nx-admin: true" } },
            { path: "/ok", headers: { "x bad": "name" } },
            { path: "/ok", headers: { "transfer-encoding": "chunked" } },
            { path: "/ok", headers: { connection: "upgrade" } },
            { path: "/ok", headers: { expect: "100-continue" } },
            { path: "/ok", headers: { upgrade: "websocket" } },
            { path: "/ok\r\nx-admin: true" },
            { path: "/ok\n" }
          ]
          const errors: Array<ApiError.ApiError> = []
          for (const call of calls) {
            errors.push(
              (yield* Effect.flip(
                api.get(call.path, { schema: Answer, ...(call.headers === undefined ? {} : { headers: call.headers }) })
              )) as ApiError.ApiError
            )
          }
          const providers: ReadonlyArray<Auth.AuthProvider> = [
            yield* Auth.cachedToken({
              endpoint: "hostile",
              fetch: Effect.succeed({ token: Redacted.make(`${TOKEN}\r\nx-admin: true`), expiresIn: "1 hour" })
            }),
            { headers: Effect.succeed([["x-api-key", Redacted.make(`${TOKEN}\n`)]]), refresh: Effect.succeed(false) },
            {
              headers: Effect.succeed([["x-api-key", Redacted.make(`${TOKEN}\u2028`)]]),
              refresh: Effect.succeed(false)
            }
          ]
          for (const auth of providers) {
            const { auth: _, ...withoutAuth } = config
            errors.push(
              (yield* Effect.flip(
                (yield* build(withoutAuth, { auth })).get("/ok", { schema: Answer })
              )) as ApiError.ApiError
            )
          }
          for (const error of errors) {
            expect(error).toMatchObject({ _tag: "ApiError", reason: "InvalidRequest" })
            expect(error.retryable).toBe(false)
            expect(error.message).not.toMatch(/[\r\n\u2028]/)
            expect(error.message).not.toContain(TOKEN)
          }
          expect(server.seen).toHaveLength(0)
          // Not the provider's fault: the breaker stays closed, and a good call goes.
          expect(yield* api.get("/ok", { schema: Answer })).toEqual({ answer: "42" })
          expect(server.seen).toHaveLength(1)
        })
      )
  )

  it.effect(
    "in the config: a secret or a default header the HTTP stack would refuse fails construction, naming the field, not printing it",
    () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          EndpointConfig.validate({
            name: "hostile",
            baseUrl: "https://api.example.com",
            auth: { _tag: "Bearer", token: Redacted.make(`${TOKEN}\r\nx-admin: true`) },
            headers: { "x-note": "line\u2028separator" }
          })
        )
        expect(error.message).toContain('["auth","token"] A header value may not contain CR, LF or NUL')
        const hopByHop = yield* Effect.flip(
          EndpointConfig.validate({
            name: "hostile",
            baseUrl: "https://api.example.com",
            headers: { connection: "upgrade" }
          })
        )
        expect(hopByHop.message).toContain('["headers","connection"] A hop-by-hop')
        expect(error.message).toContain('["headers","x-note"] A header value may hold only')
        expect(error.message).not.toContain(TOKEN)
        const key = yield* Effect.flip(
          EndpointConfig.validate({
            name: "hostile",
            baseUrl: "https://api.example.com",
            auth: { _tag: "ApiKey", key: Redacted.make(`${TOKEN}\u00ff\u0100`) }
          })
        )
        expect(key.message).toContain('["auth","key"]')
        expect(key.message).not.toContain(TOKEN)
      })
  )
})

describe("ApiClient against a hostile server: a cap on an answer's size", () => {
  const cases: ReadonlyArray<{ readonly name: string; readonly bytes: number; readonly withLength: boolean }> = [
    { name: "a 50 MB body with its content-length", bytes: 50_000_000, withLength: true },
    { name: "a 50 MB body without a content-length (chunked)", bytes: 50_000_000, withLength: false }
  ]
  for (const hostile of cases) {
    it.live(`${hostile.name}: ResponseTooLarge past maxResponseBytes, not retried; the next call goes`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* HostileServer.make
          const api = yield* build({
            name: "hostile",
            baseUrl: server.url,
            maxResponseBytes: 1024 * 1024,
            retry: { maxAttempts: 3, base: "10 millis" }
          })
          const error = (yield* Effect.flip(
            api.get(`/big?${query({ bytes: String(hostile.bytes), length: hostile.withLength ? "1" : "0" })}`, {
              schema: Answer
            })
          )) as ApiError.ApiError
          expect(error).toMatchObject({
            _tag: "ApiError",
            reason: "ResponseTooLarge",
            status: 200,
            maxBytes: 1024 * 1024
          })
          expect(error.retryable).toBe(false)
          expect(error.message).toContain("maxResponseBytes")
          expect(server.seen).toHaveLength(1)
          expect(yield* api.get("/ok", { schema: Answer }).pipe(Effect.timeout("5 seconds"))).toEqual({ answer: "42" })
        })
      )
    )
  }

  it.live("a body within the cap is read once and decoded; the default cap is 64 MiB", () =>
    Effect.scoped(
      Effect.gen(function* () {
        expect(EndpointConfig.DEFAULT_MAX_RESPONSE_BYTES).toBe(64 * 1024 * 1024)
        const server = yield* HostileServer.make
        const api = yield* build({ name: "hostile", baseUrl: server.url, maxResponseBytes: 1024 * 1024 })
        const error = (yield* Effect.flip(
          api.get(`/big?${query({ bytes: String(1024 * 1024), length: "0" })}`, { schema: Answer })
        )) as ApiError.ApiError
        // Exactly at the cap: read, and found not to be JSON.
        expect(error.reason).toBe("Decode")
        const refused = yield* Effect.flip(build({ name: "hostile", baseUrl: server.url, maxResponseBytes: 0 }))
        expect(refused.message).toContain('["maxResponseBytes"]')
      })
    )
  )
})

describe("ApiClient: excerpts are scrubbed before they are cut", () => {
  it.live("a secret echoed across the excerpt's end, in any form, leaves no part of itself", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* HostileServer.make
        const api = yield* build({
          name: "hostile",
          baseUrl: server.url,
          auth: { _tag: "Bearer", token: Redacted.make(SECRET) },
          retry: { maxAttempts: 1 }
        })
        for (const form of HostileServer.formsOf(SECRET)) {
          for (const at of [280, 295, 299]) {
            const body = `${"x".repeat(at)}${form}${"y".repeat(2_000)}`
            const error = (yield* Effect.flip(
              api.get(`/answer?${query({ status: "400", body })}`, { schema: Answer })
            )) as ApiError.ApiError
            expect(error.status).toBe(400)
            expect(error.excerpt!.length).toBe(300)
            expect(`<redacted>${"y".repeat(300)}`.startsWith(error.excerpt!.slice(at))).toBe(true)
          }
        }
      })
    )
  )
})
