import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it } from "@effect/vitest"
import { Executor, type RequestEvent } from "@sluice/core"
import * as TestHttpClient from "@sluice/testing/TestHttpClient"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import { ApiClient, ApiError, Auth, EndpointConfig } from "../src/index.js"

/** An ApiClient for `config` whose HTTP is `handler`: everything but the socket. */
const layerApiClient = (
  config: EndpointConfig.EndpointConfig,
  handler: TestHttpClient.Handler,
  options?: ApiClient.MakeOptions
) => ApiClient.layer(config, options).pipe(Layer.provide(TestHttpClient.layer(handler)))

const SECRET = "sk-test-0123456789abcdef"

const Answer = Schema.Struct({ answer: Schema.String })

const endpoint = (overrides: Partial<EndpointConfig.EndpointConfig> = {}): EndpointConfig.EndpointConfig => ({
  name: "mock",
  baseUrl: "https://api.example.com/v1",
  auth: { _tag: "Bearer", token: Redacted.make(SECRET) },
  retry: { maxAttempts: 3, base: "100 millis", jitter: "none" },
  ...overrides
})

/** A handler answering from a script, one entry per request, recording what it saw. */
const scripted = (answers: ReadonlyArray<TestHttpClient.TestResponse | "hang">) => {
  const seen: Array<{ at: number; request: TestHttpClient.TestRequest }> = []
  const handler: TestHttpClient.Handler = (request) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) => {
      seen.push({ at, request })
      const answer = answers[Math.min(seen.length - 1, answers.length - 1)]!
      return answer === "hang" ? Effect.never : Effect.succeed(answer)
    })
  return { seen, handler }
}

/** Builds the client in the test's scope (closing the scope shuts its executor down). */
const build = (layer: Layer.Layer<ApiClient.ApiClient, unknown>) =>
  Effect.map(Layer.build(layer), Context.get(ApiClient.ApiClient))

const client = (handler: TestHttpClient.Handler, overrides?: Partial<EndpointConfig.EndpointConfig>) =>
  build(layerApiClient(endpoint(overrides), handler))

const ok = { status: 200, body: { answer: "42" } }

/** Runs `effect` in a fiber, moving the clock until it ends. */
const runToEnd = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(Effect.exit(effect))
    for (let i = 0; i < 600 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("1 second")
    return yield* Fiber.join(fiber)
  })

describe("ApiClient", () => {
  it.scoped("sends auth and default headers and a JSON body; decodes the answer with the Schema", () =>
    Effect.gen(function* () {
      const { seen, handler } = scripted([ok])
      const api = yield* client(handler, { headers: { "x-team": "sluice" } })
      const answer = yield* api.post("/chat", { schema: Answer, body: { prompt: "hi" }, query: { stream: "false" } })
      expect(answer).toEqual({ answer: "42" })
      const request = seen[0]!.request
      expect(request.method).toBe("POST")
      expect(request.url.href).toBe("https://api.example.com/v1/chat?stream=false")
      expect(request.headers).toMatchObject({ authorization: `Bearer ${SECRET}`, "x-team": "sluice" })
      expect(request.body).toEqual({ prompt: "hi" })
    })
  )

  it.scoped("the API-key and basic schemes", () =>
    Effect.gen(function* () {
      const apiKey = scripted([ok])
      const keyed = yield* client(apiKey.handler, {
        auth: { _tag: "ApiKey", header: "X-Goog-Api-Key", key: Redacted.make(SECRET) }
      })
      yield* keyed.get("/models", { schema: Answer })
      expect(apiKey.seen[0]!.request.headers["x-goog-api-key"]).toBe(SECRET)
      const basic = scripted([ok])
      const basicClient = yield* client(basic.handler, {
        auth: { _tag: "Basic", username: "user", password: Redacted.make("pass") }
      })
      yield* basicClient.get("/models", { schema: Answer })
      expect(basic.seen[0]!.request.headers.authorization).toBe(`Basic ${Buffer.from("user:pass").toString("base64")}`)
    })
  )

  it.scoped("a 429 is RateLimited; the retry waits its Retry-After", () =>
    Effect.gen(function* () {
      const { seen, handler } = scripted([{ status: 429, headers: { "retry-after": "2" }, body: "slow down" }, ok])
      const api = yield* client(handler)
      const exit = yield* runToEnd(api.get("/x", { schema: Answer }))
      expect(exit).toEqual(Exit.succeed({ answer: "42" }))
      expect(seen.map((entry) => entry.at)).toEqual([0, 2000])
    })
  )

  it.scoped("header sync slows the whole endpoint, not just the caller that was told", () =>
    Effect.gen(function* () {
      const { seen, handler } = scripted([
        {
          status: 200,
          headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s" },
          body: { answer: "last one" }
        },
        ok
      ])
      const api = yield* client(handler, { limits: { requests: { limit: 600, interval: "1 minute" } } })
      yield* api.get("/a", { schema: Answer })
      const others = yield* Effect.fork(
        Effect.forEach(["/b", "/c"], (path) => api.get(path, { schema: Answer }), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("29 seconds")
      expect(seen).toHaveLength(1)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(others)
      // The server said the window resets in 30 s: nothing goes before, and then the bucket is full again.
      expect(seen.map((entry) => entry.at)).toEqual([0, 30_000, 30_000])
    })
  )

  it.scoped("a 429's Retry-After holds every queued call on the endpoint", () =>
    Effect.gen(function* () {
      const { seen, handler } = scripted([{ status: 429, headers: { "retry-after": "5" } }, ok])
      const api = yield* client(handler, {
        limits: { requests: { limit: 6000, interval: "1 minute" } },
        retry: { maxAttempts: 1 }
      })
      const first = yield* Effect.exit(api.get("/a", { schema: Answer }))
      expect(first).toEqual(
        Exit.fail(
          ApiError.ApiError.rateLimited({
            endpoint: "mock",
            method: "GET",
            path: "/a",
            status: 429,
            retryAfterMillis: 5000,
            excerpt: ""
          })
        )
      )
      const second = yield* Effect.fork(api.get("/b", { schema: Answer }))
      yield* TestClock.adjust("4 seconds")
      expect(seen).toHaveLength(1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(second)
      expect(seen.map((entry) => entry.at)).toEqual([0, 5000])
    })
  )

  it.scoped("5xx is retried, 4xx is not, and x-should-retry overrides both", () =>
    Effect.gen(function* () {
      const server = scripted([{ status: 503, body: "busy" }, ok])
      expect(yield* runToEnd((yield* client(server.handler)).get("/a", { schema: Answer }))).toEqual(
        Exit.succeed({ answer: "42" })
      )
      expect(server.seen).toHaveLength(2)

      const refused = scripted([{ status: 400, body: { error: "bad prompt" } }])
      const exit = yield* runToEnd((yield* client(refused.handler)).get("/a", { schema: Answer }))
      expect(refused.seen).toHaveLength(1)
      expect(Exit.isFailure(exit) && exit.cause).toBeTruthy()
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "ClientError" })

      const dontRetry = scripted([{ status: 500, headers: { "x-should-retry": "false" } }, ok])
      yield* runToEnd((yield* client(dontRetry.handler)).get("/a", { schema: Answer }))
      expect(dontRetry.seen).toHaveLength(1)

      const doRetry = scripted([{ status: 400, headers: { "x-should-retry": "true" } }, ok])
      yield* runToEnd((yield* client(doRetry.handler)).get("/a", { schema: Answer }))
      expect(doRetry.seen).toHaveLength(2)
    })
  )

  it.scoped("an attempt with no answer within the timeout is a Timeout, and is retried", () =>
    Effect.gen(function* () {
      const { seen, handler } = scripted(["hang", ok])
      const api = yield* client(handler, { timeout: "5 seconds" })
      const exit = yield* runToEnd(api.get("/a", { schema: Answer }))
      expect(exit).toEqual(Exit.succeed({ answer: "42" }))
      expect(seen.map((entry) => entry.at)).toEqual([0, 5100])

      const always = scripted(["hang"])
      const failed = yield* runToEnd(
        (yield* client(always.handler, { timeout: "1 second" })).get("/a", { schema: Answer })
      )
      expect(failed).toEqual(
        Exit.fail(ApiError.ApiError.timeout({ endpoint: "mock", method: "GET", path: "/a", timeoutMillis: 1000 }))
      )
      expect(always.seen).toHaveLength(3)
    })
  )

  it.scoped("a connection reset is a Transport error, and is retried", () =>
    Effect.gen(function* () {
      const { seen, handler } = scripted([{ reset: true }, ok])
      expect(yield* runToEnd((yield* client(handler)).get("/a", { schema: Answer }))).toEqual(
        Exit.succeed({ answer: "42" })
      )
      expect(seen).toHaveLength(2)
      const always = scripted([{ reset: true }])
      const exit = yield* runToEnd(
        (yield* client(always.handler, { retry: { maxAttempts: 1 } })).get("/a", { schema: Answer })
      )
      expect(exit).toEqual(
        Exit.fail(
          ApiError.ApiError.transport({
            endpoint: "mock",
            method: "GET",
            path: "/a",
            detail: "ECONNRESET: socket hang up"
          })
        )
      )
    })
  )

  it.scoped("a body that is not JSON, or not the Schema, is a Decode error and is not retried", () =>
    Effect.gen(function* () {
      const broken = scripted([{ status: 200, body: '{"answer": "4' }])
      const exit = yield* runToEnd((yield* client(broken.handler)).get("/a", { schema: Answer }))
      expect(broken.seen).toHaveLength(1)
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "Decode" })
      expect((error as ApiError.ApiError).issues).toContain("not JSON")
      expect((error as ApiError.ApiError).excerpt).toBe('{"answer": "4')

      const wrong = scripted([{ status: 200, body: { answer: 42 } }])
      const wrongExit = yield* runToEnd((yield* client(wrong.handler)).get("/a", { schema: Answer }))
      const decode = Exit.isFailure(wrongExit) ? (wrongExit.cause as { error?: unknown }).error : undefined
      expect((decode as ApiError.ApiError).issues).toBe('["answer"] Expected string, actual 42')
    })
  )

  it.scoped("a 401 with a refreshable token refreshes once and sends again; a second 401 is returned", () =>
    Effect.gen(function* () {
      let fetches = 0
      const tokens = ["token-one-expired", "token-two-fresh", "token-three"]
      const auth = yield* Auth.cachedToken({
        endpoint: "mock",
        fetch: Effect.sync(() => ({ token: Redacted.make(tokens[fetches++]!), expiresIn: "1 hour" }))
      })
      const { seen, handler } = scripted([{ status: 401 }, ok, { status: 401 }, { status: 401 }])
      const layer = layerApiClient(endpoint({ auth: undefined }), handler, { auth })
      const api = yield* build(layer)
      expect(yield* api.get("/a", { schema: Answer })).toEqual({ answer: "42" })
      expect(fetches).toBe(2)
      expect(seen.map((entry) => entry.request.headers.authorization)).toEqual([
        "Bearer token-one-expired",
        "Bearer token-two-fresh"
      ])
      const exit = yield* Effect.exit(api.get("/b", { schema: Answer }))
      expect(fetches).toBe(3) // one refresh, not a loop
      expect(seen).toHaveLength(4)
      expect(Exit.isFailure(exit)).toBe(true)
    })
  )

  it.scoped("a cached token is fetched once by many callers, and again after it expires", () =>
    Effect.gen(function* () {
      let fetches = 0
      const auth = yield* Auth.cachedToken({
        endpoint: "mock",
        fetch: Effect.delay(
          Effect.sync(() => ({ token: Redacted.make(`token-${++fetches}`), expiresIn: "10 minutes" })),
          "100 millis"
        ),
        refreshBefore: "1 minute"
      })
      const all = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 10 }, () => auth.headers),
          { concurrency: "unbounded" }
        )
      )
      yield* TestClock.adjust("100 millis")
      const headers = yield* Fiber.join(all)
      expect(fetches).toBe(1)
      expect(new Set(headers.map(([[, value]]) => Redacted.value(value!))).size).toBe(1)
      yield* TestClock.adjust("9 minutes") // within a minute of expiry: refreshed
      const later = yield* Effect.fork(auth.headers)
      yield* TestClock.adjust("100 millis")
      expect(Redacted.value((yield* Fiber.join(later))[0]![1])).toBe("Bearer token-2")
    })
  )

  it.scoped("a secret never appears in a log line, an event, an error or its message", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const logger = Logger.make(({ message, annotations }) => {
        logs.push(JSON.stringify({ message, annotations: [...annotations] }))
      })
      // The server echoes the key back in its error body, as some APIs do.
      const { handler } = scripted([{ status: 401, body: { error: `Incorrect API key provided: ${SECRET}` } }])
      const api = yield* client(handler)
      const events = yield* api.progress!.subscribe
      const exit = yield* Effect.exit(
        api.get("/a", { schema: Answer }).pipe(
          Effect.tapErrorCause((cause) => Effect.logError("call failed", cause)),
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
      )
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "ClientError" })
      expect((error as ApiError.ApiError).excerpt).toContain("Incorrect API key provided: <redacted>")
      const everything = [
        ...logs,
        String(error),
        (error as Error).message,
        JSON.stringify(error),
        JSON.stringify(Array.from(yield* Queue.takeAll(events)) satisfies Array<RequestEvent.RequestEvent>),
        String(endpoint().auth && (endpoint().auth as { token: unknown }).token),
        JSON.stringify(endpoint())
      ].join("\n")
      expect(logs.length).toBeGreaterThan(0)
      expect(everything).not.toContain(SECRET)
      expect(everything).not.toContain(SECRET.slice(3))
    })
  )

  it.scoped("a body that echoes the key into a field of the wrong type does not carry it into the Decode error", () =>
    Effect.gen(function* () {
      const { handler } = scripted([{ status: 200, body: { answer: { echoed: SECRET } } }])
      const exit = yield* Effect.exit((yield* client(handler)).get("/a", { schema: Answer }))
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "Decode" })
      expect((error as ApiError.ApiError).issues).toContain("<redacted>")
      expect(JSON.stringify(error)).not.toContain(SECRET)
      expect(String(error)).not.toContain(SECRET)
    })
  )

  it.scoped("a header value with a line break is refused before sending", () =>
    Effect.gen(function* () {
      const { seen, handler } = scripted([ok])
      const api = yield* client(handler)
      const exit = yield* Effect.exit(api.get("/a", { schema: Answer, headers: { "x-note": "hi\r\nx-admin: true" } }))
      expect(seen).toHaveLength(0)
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "InvalidRequest" })
      expect((error as ApiError.ApiError).retryable).toBe(false)
    })
  )

  it.scoped(
    "an attempt's http.client span is the parent of the spans inside the HttpClient; the platform's own is off while it is sent, and back after",
    () =>
      Effect.gen(function* () {
        const spans: Array<Tracer.Span> = []
        const native = yield* Effect.tracer
        const tracer = Tracer.make({
          span: (...args) => {
            const span = native.span(...args)
            spans.push(span)
            return span
          },
          context: native.context
        })
        for (const options of [{}, { executor: false }]) {
          spans.length = 0
          const api = yield* build(
            layerApiClient(endpoint(), () => Effect.withSpan(Effect.succeed(ok), "inside the HttpClient"), options)
          )
          const after = yield* Effect.gen(function* () {
            yield* api.post("/chat", { schema: Answer, body: { prompt: "hi" } })
            return {
              span: Option.map(yield* Effect.option(Effect.currentSpan), (span) => span.name),
              platformSpansOff: (yield* FiberRef.get(HttpClient.currentTracerDisabledWhen))(
                HttpClientRequest.get("https://api.example.com/v1/other")
              )
            }
          }).pipe(Effect.withSpan("caller"), Effect.withTracer(tracer))
          const named = (name: string) => spans.filter((span) => span.name === name)
          expect(named("http.client POST")).toHaveLength(1)
          const [http] = named("http.client POST")
          const [inside] = named("inside the HttpClient")
          expect(Option.map(http!.parent, (parent) => (parent as Tracer.Span).name)).toEqual(Option.some("caller"))
          expect(inside!.parent).toEqual(Option.some(http))
          expect(http!.status._tag).toBe("Ended")
          // The caller's fiber has its own context and the platform's spans back.
          expect(after).toEqual({ span: Option.some("caller"), platformSpansOff: false })
        }
      })
  )

  it.scoped("the plain client has no executor: one attempt, no limits", () =>
    Effect.gen(function* () {
      const { seen, handler } = scripted([{ status: 503 }, ok])
      const api = yield* build(layerApiClient(endpoint(), handler, { executor: false }))
      expect(api.progress).toBeUndefined()
      const exit = yield* Effect.exit(api.get("/a", { schema: Answer }))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(seen).toHaveLength(1)
    })
  )
})

describe("ApiClient's plain path (executor: false): the attempt's timeout", () => {
  const plain = (handler: TestHttpClient.Handler, timeout: EndpointConfig.EndpointConfig["timeout"]) =>
    build(layerApiClient(endpoint({ timeout }), handler, { executor: false }))

  /** Forks `effect`; answers its fiber and when it ended (read from the Clock), once it has. */
  const timed = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.fork(Effect.zip(Effect.exit(effect), Clock.currentTimeMillis))

  it.scoped(
    "a call past its timeout fails with the Timeout ApiError at exactly the timeout, its attempt interrupted",
    () =>
      Effect.gen(function* () {
        const interrupted: Array<number> = []
        const api = yield* plain(
          () =>
            Effect.onInterrupt(Effect.never, () =>
              Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => interrupted.push(at)))
            ),
          "50 millis"
        )
        const fiber = yield* timed(api.get("/a?secret=1", { schema: Answer }))
        yield* TestClock.adjust("49 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        const [exit, at] = yield* Fiber.join(fiber)
        expect(exit).toEqual(
          Exit.fail(ApiError.ApiError.timeout({ endpoint: "mock", method: "GET", path: "/a", timeoutMillis: 50 }))
        )
        expect(at).toBe(50)
        // As with any `Effect.timeoutFail`: the attempt's finalizers have run when the timeout answers.
        expect(interrupted).toEqual([50])
        // A call's own timeout overrides the endpoint's.
        const own = yield* timed(api.get("/b", { schema: Answer, timeout: "20 millis" }))
        yield* TestClock.adjust("20 millis")
        const [ownExit, ownAt] = yield* Fiber.join(own)
        expect(ownExit).toEqual(
          Exit.fail(ApiError.ApiError.timeout({ endpoint: "mock", method: "GET", path: "/b", timeoutMillis: 20 }))
        )
        expect(ownAt).toBe(70)
      })
  )

  it.scoped("a call that ends before its timeout answers its own exit and is not interrupted later", () =>
    Effect.gen(function* () {
      const interrupted: Array<string> = []
      const answers: Record<string, TestHttpClient.TestResponse> = { "/ok": ok, "/busy": { status: 503 } }
      const api = yield* plain(
        (request) =>
          Effect.onInterrupt(Effect.as(Effect.sleep("40 millis"), answers[request.url.pathname.slice(3)]!), () =>
            Effect.sync(() => interrupted.push(request.url.pathname))
          ),
        "50 millis"
      )
      const fast = yield* timed(api.get("/ok", { schema: Answer }))
      const failing = yield* timed(api.get("/busy", { schema: Answer }))
      yield* TestClock.adjust("40 millis")
      const [fastExit, fastAt] = yield* Fiber.join(fast)
      expect(fastExit).toEqual(Exit.succeed({ answer: "42" }))
      expect(fastAt).toBe(40)
      const [failingExit, failingAt] = yield* Fiber.join(failing)
      expect(failingAt).toBe(40)
      const error = Exit.isFailure(failingExit) ? (failingExit.cause as { error?: unknown }).error : undefined
      expect(error).toMatchObject({ _tag: "ApiError", reason: "ServerError", status: 503 })
      // Nothing fires for them later.
      yield* TestClock.adjust("1 second")
      expect(interrupted).toEqual([])
    })
  )

  it.scoped("interrupting the caller interrupts its attempt", () =>
    Effect.gen(function* () {
      const interrupted: Array<number> = []
      const api = yield* plain(
        () =>
          Effect.onInterrupt(Effect.never, () =>
            Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => interrupted.push(at)))
          ),
        "1 second"
      )
      const fiber = yield* Effect.fork(api.get("/a", { schema: Answer }))
      yield* TestClock.adjust("10 millis")
      expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
      expect(interrupted).toEqual([10])
      yield* TestClock.adjust("2 seconds")
      expect(interrupted).toEqual([10])
    })
  )
})

describe("EndpointConfig", () => {
  const invalid = (config: EndpointConfig.EndpointConfig) =>
    Effect.flip(Effect.scoped(Layer.build(layerApiClient(config, () => ok))))

  it.effect("refuses plain http to a host that is not loopback, unless allowed", () =>
    Effect.gen(function* () {
      const error = yield* invalid(endpoint({ baseUrl: "http://api.example.com" }))
      expect(error.message).toContain('["baseUrl"] Refusing plain http:// to api.example.com')
      yield* Effect.scoped(Layer.build(layerApiClient(endpoint({ baseUrl: "http://127.0.0.1:8080" }), () => ok)))
      yield* Effect.scoped(
        Layer.build(layerApiClient(endpoint({ baseUrl: "http://api.internal", allowInsecureHttp: true }), () => ok))
      )
    })
  )

  it.effect("refuses header values with CR or LF, bad URLs, and secrets that are not Redacted", () =>
    Effect.gen(function* () {
      const error = yield* invalid(
        endpoint({
          baseUrl: "ftp://example.com",
          headers: { "x-evil": "a\r\nb" },
          auth: { _tag: "Bearer", token: SECRET as unknown as Redacted.Redacted<string> }
        })
      )
      expect(error.message).toContain('["baseUrl"] Expected an http: or https: URL')
      expect(error.message).toContain('["headers","x-evil"] A header value may not contain CR, LF or NUL')
      expect(error.message).toContain('["auth","token"] Expected a Redacted secret')
      expect(error.message).not.toContain(SECRET)
    })
  )

  it.scoped("passes a limit's windowMargin to the endpoint's limiter, and refuses a negative one naming it", () =>
    Effect.gen(function* () {
      const error = yield* invalid(
        endpoint({ limits: { requests: { limit: 10, interval: "1 second", windowMargin: -1 } } })
      )
      expect(error.message).toContain('["limits","requests","windowMargin"]')
      // 10 per second, burst 1, no margin: the 11th call goes exactly one second after the first.
      const handler = () => ok
      const strict = yield* client(handler, {
        limits: { requests: { limit: 10, interval: "1 second", capacity: 1, windowMargin: 0 } }
      })
      const loose = yield* client(handler, {
        limits: { requests: { limit: 10, interval: "1 second", capacity: 1, windowMargin: "50 millis" } }
      })
      const eleventh = (api: ApiClient.ApiClientShape) =>
        Effect.gen(function* () {
          const fibers = yield* Effect.forEach(Array.from({ length: 11 }), () =>
            Effect.fork(Effect.zipRight(api.get("/a", { schema: Answer }), Clock.currentTimeMillis))
          )
          const start = yield* Clock.currentTimeMillis
          yield* TestClock.adjust("3 seconds")
          const times = yield* Effect.forEach(fibers, Fiber.join)
          return Math.max(...times) - start
        })
      expect(yield* eleventh(strict)).toBe(1000)
      expect(yield* eleventh(loose)).toBe(1050)
    })
  )

  it.effect("reads an endpoint from the environment through Config, with defaults", () =>
    Effect.gen(function* () {
      const config = yield* EndpointConfig.config("openai", "OPENAI").pipe(
        Effect.withConfigProvider(
          ConfigProvider.fromMap(
            new Map([
              ["OPENAI_BASE_URL", "https://api.openai.com/v1"],
              ["OPENAI_API_KEY", SECRET],
              ["OPENAI_RPM", "500"],
              ["OPENAI_TPM", "90000"],
              ["OPENAI_CONCURRENCY", "8"]
            ]),
            { pathDelim: "_" }
          )
        )
      )
      expect(config).toMatchObject({
        name: "openai",
        baseUrl: "https://api.openai.com/v1",
        limits: {
          requests: { limit: 500, interval: "1 minute" },
          tokens: { limit: 90000, interval: "1 minute" },
          concurrency: 8
        },
        allowInsecureHttp: false
      })
      expect(Redacted.isRedacted((config.auth as { token: unknown }).token)).toBe(true)
      expect(String((config.auth as { token: unknown }).token)).toBe("<redacted>")
      const executor = yield* Effect.scoped(
        Effect.flatMap(Layer.build(layerApiClient(config, () => ok)), (context) =>
          Effect.map(Effect.provide(ApiClient.ApiClient, context), (api) => api.progress)
        )
      )
      expect(executor?.name).toBe("openai")
      expect(Executor).toBeDefined()
    })
  )
})
