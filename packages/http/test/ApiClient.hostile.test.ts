/**
 * The ApiClient against a provider that lies (issue 16): a real local HTTP
 * server (`support/HostileServer`) answers each hostile case, and the client
 * runs over a real undici pool (`ApiClient.layer`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { ApiClient, type ApiError, EndpointConfig } from "../src/index.js"
import * as HostileServer from "./support/HostileServer.js"

const SECRET = "sk-hostile-0123456789abcdef/+="

const Answer = Schema.Struct({ answer: Schema.String })

const build = (config: EndpointConfig.EndpointConfig, options?: ApiClient.MakeOptions) =>
  Effect.map(Layer.build(ApiClient.layer(config, options)), Context.get(ApiClient.ApiClient))

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
              expect(bucket.blockedUntil).toBeLessThanOrEqual(now + CEILING_MILLIS)
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
    "a 2xx whose headers advertise a reset years away returns its body; the limiter is held at most the ceiling",
    () =>
      Effect.scoped(
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
          const now = yield* Clock.currentTimeMillis
          for (const bucket of yield* api.state()) expect(bucket.blockedUntil).toBeLessThanOrEqual(now + CEILING_MILLIS)
          expect(
            yield* api.get("/ok", { schema: Answer, cost: { tokens: 10 } }).pipe(Effect.timeout("5 seconds"))
          ).toEqual({
            answer: "42"
          })
        })
      )
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
        for (const bucket of yield* api.state()) expect(bucket.blockedUntil).toBeLessThanOrEqual(now)
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
