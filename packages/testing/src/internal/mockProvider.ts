/**
 * The MockProvider's server: the router, the per-request pipeline (auth →
 * body → limits → latency → fault → answer), the log and the shutdown.
 * See `../MockProvider.ts` for the behaviour it implements.
 */

import * as Http from "node:http"
import * as HttpRouter from "@effect/platform/HttpRouter"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import type { InvalidOptionsError } from "@sluice/core/InvalidOptions"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type * as MockProvider from "../MockProvider.js"
import * as answers from "./mockAnswers.js"
import * as schemas from "./mockProviderOptions.js"
import * as window from "./slidingWindow.js"

const windowMillisOf = (input: Duration.DurationInput | undefined) =>
  input === undefined ? undefined : Duration.toMillis(Duration.decode(input))

const DEFAULT_SLOW_BODY_CHUNKS = 5
const DEFAULT_SLOW_BODY_INTERVAL_MILLIS = 200
const DEFAULT_LOG_CAPACITY = 10_000

type Endpoint = "chat" | "embeddings" | "completions"

/** The models `GET /v1/models` lists when the options name none. */
export const DEFAULT_MODELS: ReadonlyArray<string> = ["mock-model", "mock-embedding"]

/** The `created` second of every listed model (2024-01-01), fixed so answers repeat. */
const MODELS_CREATED_SECONDS = 1_704_067_200

interface Settings {
  readonly limits: window.Limits
  readonly latency: MockProvider.Latency | undefined
  readonly faults: MockProvider.Faults
  readonly apiKeys: ReadonlyArray<string> | undefined
}

type MutableCounters = {
  total: number
  served: number
  rateLimited: number
  unauthorized: number
  badRequest: number
  notFound: number
  faults: Record<MockProvider.FaultKind, number>
}

const zeroCounters = (): MutableCounters => ({
  total: 0,
  served: 0,
  rateLimited: 0,
  unauthorized: 0,
  badRequest: 0,
  notFound: 0,
  faults: { serverError500: 0, serviceUnavailable503: 0, reset: 0, hang: 0, malformedJson: 0, slowBody: 0 }
})

type Draft = Omit<MockProvider.LogEntry, "sequence">

const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

const isAuthorized = (header: string | undefined, keys: ReadonlyArray<string>): boolean => {
  if (header === undefined) return false
  const match = /^Bearer\s+(.+)$/i.exec(header.trim())
  return match !== null && keys.includes(match[1]!.trim())
}

const describeParseError = (error: ParseResult.ParseError): Problem => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return { message: "Invalid request body.", param: null }
  const param = issue.path.length === 0 ? null : issue.path.join(".")
  return { message: `Invalid request body: ${param === null ? "" : `'${param}' `}${issue.message}`, param }
}

const decodeChat = Schema.decodeUnknownEither(answers.ChatRequest)
const decodeEmbeddings = Schema.decodeUnknownEither(answers.EmbeddingsRequest)
const decodeCompletions = Schema.decodeUnknownEither(answers.CompletionRequest)

interface Problem {
  readonly message: string
  readonly param: string | null
}

/** Decodes a request body and computes its answer, or says what is wrong with it. */
const answerFor = (
  endpoint: Endpoint,
  body: unknown,
  createdSeconds: number
): Either.Either<answers.Answer, Problem> => {
  if (endpoint === "embeddings") {
    return Either.map(Either.mapLeft(decodeEmbeddings(body), describeParseError), answers.embeddingsAnswer)
  }
  if (endpoint === "completions") {
    return Either.map(Either.mapLeft(decodeCompletions(body), describeParseError), (completion) =>
      answers.completionAnswer(completion, createdSeconds)
    )
  }
  return Either.map(Either.mapLeft(decodeChat(body), describeParseError), (chat) =>
    answers.chatAnswer(chat, createdSeconds)
  )
}

/**
 * OpenAI's `x-ratelimit-*` headers, and the IETF `RateLimit-Policy` that
 * names each limit's window (OpenAI's headers do not: their limits are per
 * minute, and a MockProvider with a shorter `window` says so here).
 */
const rateLimitHeaders = (report: window.Report, limits: window.Limits): Record<string, string> => {
  const headers: Record<string, string> = {}
  const policies: Array<string> = []
  const windowMillis = limits.windowMillis ?? window.WINDOW_MILLIS
  for (const name of ["requests", "tokens"] as const) {
    const limit = report[name]
    if (limit === undefined) continue
    headers[`x-ratelimit-limit-${name}`] = String(limit.limit)
    headers[`x-ratelimit-remaining-${name}`] = String(limit.remaining)
    headers[`x-ratelimit-reset-${name}`] = window.formatDuration(limit.resetMillis)
    if (windowMillis % 1000 === 0) policies.push(`"${name}";q=${limit.limit};w=${windowMillis / 1000}`)
  }
  if (policies.length > 0) headers["ratelimit-policy"] = policies.join(", ")
  return headers
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers })

const EVENT_STREAM = "text/event-stream; charset=utf-8"

/** A streamed chat answer: one write per event, as a provider flushes them. */
const eventStream = (events: ReadonlyArray<unknown>, headers: Record<string, string>) => {
  const encoder = new TextEncoder()
  return HttpServerResponse.stream(
    Stream.map(Stream.fromIterable(answers.serverSentEvents(events)), (event) => encoder.encode(event)),
    { status: 200, headers: { ...headers, "cache-control": "no-cache" }, contentType: EVENT_STREAM }
  )
}

/** The text an answer is sent as (for the faults that cut or slow it), and its content type. */
const payloadOf = (answer: answers.Answer) =>
  answer.events === undefined
    ? { text: JSON.stringify(answer.body), contentType: "application/json" }
    : { text: answers.serverSentEvents(answer.events).join(""), contentType: EVENT_STREAM }

/** Splits `text` into `chunks` pieces of (nearly) equal length; the first piece is sent at once. */
const pieces = (text: string, chunks: number): Array<string> => {
  const size = Math.ceil(text.length / chunks)
  return Array.from({ length: chunks }, (_, i) => text.slice(i * size, (i + 1) * size)).filter((piece) => piece !== "")
}

/** @internal */
export const make = (
  input: MockProvider.Options = {}
): Effect.Effect<MockProvider.MockProviderShape, InvalidOptionsError | ServeError, Scope.Scope> =>
  Effect.gen(function* () {
    const options = yield* schemas.decodeOptions(input)
    const random = options.seed === undefined ? yield* Effect.random : Random.make(options.seed)
    const slowBodyChunks = options.slowBody?.chunks ?? DEFAULT_SLOW_BODY_CHUNKS
    const slowBodyInterval =
      options.slowBody?.interval === undefined
        ? Duration.millis(DEFAULT_SLOW_BODY_INTERVAL_MILLIS)
        : Duration.decode(options.slowBody.interval)
    const logCapacity = options.logCapacity ?? DEFAULT_LOG_CAPACITY
    const models = options.models ?? DEFAULT_MODELS
    const modelObject = (id: string) => ({ id, object: "model", created: MODELS_CREATED_SECONDS, owned_by: "sluice" })

    const settings = yield* Ref.make<Settings>({
      limits: { rpm: options.rpm, tpm: options.tpm, windowMillis: windowMillisOf(options.window) },
      latency: options.latency,
      faults: options.faults ?? {},
      apiKeys: options.apiKeys
    })
    const windowState = yield* Ref.make<window.State>(window.empty)
    // The log and counters are plain mutable values, changed only inside
    // `modifyEffect` on `sequence`, which serialises every change.
    let entries: Array<MockProvider.LogEntry> = []
    let counters = zeroCounters()
    const sequence = yield* SubscriptionRef.make(0)
    const closing = yield* Deferred.make<void>()

    const record = (draft: Draft) =>
      SubscriptionRef.modifyEffect(sequence, (previous) =>
        Effect.sync(() => {
          const next = previous + 1
          entries.push({ sequence: next, ...draft })
          if (entries.length > logCapacity) entries.splice(0, entries.length - logCapacity)
          counters.total++
          if (draft.outcome === "fault") counters.faults[draft.fault!]++
          else counters[draft.outcome]++
          return [undefined, next] as const
        })
      )

    const drawFault = (faults: MockProvider.Faults): Effect.Effect<MockProvider.FaultKind | undefined> => {
      if (schemas.FAULT_KINDS.every((kind) => (faults[kind] ?? 0) === 0)) return Effect.succeed(undefined)
      return Effect.map(random.next, (draw) => {
        let cumulative = 0
        for (const kind of schemas.FAULT_KINDS) {
          cumulative += faults[kind] ?? 0
          if (draw < cumulative) return kind
        }
        return undefined
      })
    }

    const drawLatency = (latency: MockProvider.Latency | undefined): Effect.Effect<number> => {
      if (latency === undefined) return Effect.succeed(0)
      if ("fixed" in latency) return Effect.succeed(schemas.millis(latency.fixed))
      if ("uniform" in latency) {
        const min = schemas.millis(latency.uniform.min)
        const max = schemas.millis(latency.uniform.max)
        return Effect.map(random.next, (draw) => Math.round(min + draw * (max - min)))
      }
      const mean = schemas.millis(latency.normal.mean)
      const stdDev = schemas.millis(latency.normal.stdDev)
      // Box–Muller; 1 - u keeps the logarithm finite.
      return Effect.map(Effect.zip(random.next, random.next), ([u1, u2]) =>
        Math.max(0, Math.round(mean + stdDev * Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2)))
      )
    }

    /** Answers 401 (and logs it) when auth is on and the request has no accepted key; else undefined. */
    const refuseUnauthorized = (
      request: HttpServerRequest.HttpServerRequest,
      base: Omit<Draft, "model" | "promptTokens" | "completionTokens" | "outcome" | "status">,
      current: Settings
    ) =>
      current.apiKeys === undefined || isAuthorized(request.headers.authorization, current.apiKeys)
        ? Effect.succeed(undefined)
        : Effect.as(
            record({
              ...base,
              model: undefined,
              promptTokens: undefined,
              completionTokens: undefined,
              outcome: "unauthorized",
              status: 401
            }),
            json(
              401,
              answers.errorBody(
                "Incorrect API key provided. Give a key the MockProvider accepts as `Authorization: Bearer <key>`.",
                "invalid_request_error",
                "invalid_api_key"
              )
            )
          )

    /** The request being served, and the start of its log entry. */
    const incoming = Effect.map(
      Effect.zip(HttpServerRequest.HttpServerRequest, Clock.currentTimeMillis),
      ([request, time]) => ({
        request,
        base: {
          time,
          method: request.method,
          path: pathOf(request.url),
          chargedTokens: 0,
          fault: undefined,
          latencyMillis: 0
        }
      })
    )

    let requestCount = 0
    const nextRequestId = () => `req_mock_${(++requestCount).toString(16).padStart(8, "0")}`

    /** Never answers; ends (interrupted) when the connection closes or the server shuts down. */
    const hang = Effect.zipRight(Deferred.await(closing), Effect.interrupt)

    const handle = (endpoint: Endpoint) =>
      Effect.gen(function* () {
        const { request, base } = yield* incoming
        const current = yield* Ref.get(settings)

        const refused = yield* refuseUnauthorized(request, base, current)
        if (refused !== undefined) return refused

        const body = yield* Effect.either(request.json)
        const decided = Either.flatMap(
          Either.mapLeft(body, (): Problem => ({ message: "The request body is not valid JSON.", param: null })),
          (value) => answerFor(endpoint, value, Math.floor(base.time / 1000))
        )
        if (Either.isLeft(decided)) {
          const model =
            Either.isRight(body) && typeof (body.right as { model?: unknown } | null)?.model === "string"
              ? (body.right as { model: string }).model
              : undefined
          yield* record({
            ...base,
            model,
            promptTokens: undefined,
            completionTokens: undefined,
            outcome: "badRequest",
            status: 400
          })
          return json(400, answers.errorBody(decided.left.message, "invalid_request_error", null, decided.left.param), {
            "x-request-id": nextRequestId()
          })
        }

        const answer = decided.right
        const counted = {
          ...base,
          model: answer.model,
          promptTokens: answer.promptTokens,
          completionTokens: answer.completionTokens
        }

        const decision = yield* Ref.modify(windowState, (state) =>
          window.admit(state, current.limits, base.time, answer.chargedTokens)
        )
        // Every metered answer names its request, as OpenAI's `x-request-id` does.
        const headers = { ...rateLimitHeaders(decision.report, current.limits), "x-request-id": nextRequestId() }

        if (decision._tag === "Rejected") {
          yield* record({ ...counted, outcome: "rateLimited", status: 429 })
          const kind = decision.limit === "requests" ? "requests per min (RPM)" : "tokens per min (TPM)"
          const limit = decision.report[decision.limit]!
          if (decision.retryAfterMillis === undefined) {
            return json(
              429,
              answers.errorBody(
                `Request too large for ${answer.model} on ${kind}: Limit ${limit.limit}, Requested ${decision.requested}.`,
                "rate_limit_exceeded",
                "request_too_large"
              ),
              headers
            )
          }
          return json(
            429,
            answers.errorBody(
              `Rate limit reached for ${answer.model} on ${kind}: Limit ${limit.limit}, ` +
                `Used ${limit.limit - limit.remaining}, Requested ${decision.requested}. ` +
                `Please try again in ${window.formatDuration(decision.retryAfterMillis)}.`,
              "rate_limit_exceeded",
              decision.limit
            ),
            {
              ...headers,
              "retry-after": String(Math.ceil(decision.retryAfterMillis / 1000)),
              "retry-after-ms": String(Math.ceil(decision.retryAfterMillis))
            }
          )
        }

        const fault = yield* drawFault(current.faults)
        const latencyMillis = yield* drawLatency(current.latency)
        const status =
          fault === "serverError500"
            ? 500
            : fault === "serviceUnavailable503"
              ? 503
              : fault === "reset" || fault === "hang"
                ? undefined
                : 200
        yield* record({
          ...counted,
          chargedTokens: answer.chargedTokens,
          outcome: fault === undefined ? "served" : "fault",
          status,
          fault,
          latencyMillis
        })
        if (latencyMillis > 0) yield* Effect.sleep(Duration.millis(latencyMillis))

        switch (fault) {
          case undefined:
            return answer.events === undefined ? json(200, answer.body, headers) : eventStream(answer.events, headers)
          case "serverError500":
            return json(
              500,
              answers.errorBody(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                null
              ),
              headers
            )
          case "serviceUnavailable503":
            return json(
              503,
              answers.errorBody(
                "The engine is currently overloaded, please try again later.",
                "server_error",
                "service_unavailable"
              ),
              headers
            )
          case "reset":
            return yield* Effect.zipRight(
              Effect.sync(() => NodeHttpServerRequest.toIncomingMessage(request).socket.resetAndDestroy()),
              hang
            )
          case "hang":
            return yield* hang
          case "malformedJson": {
            const { contentType, text } = payloadOf(answer)
            return HttpServerResponse.text(text.slice(0, Math.floor(text.length / 2)), {
              status: 200,
              headers,
              contentType
            })
          }
          case "slowBody": {
            const encoder = new TextEncoder()
            const { contentType, text } = payloadOf(answer)
            const [first, ...rest] = pieces(text, slowBodyChunks)
            return HttpServerResponse.stream(
              Stream.concat(
                Stream.make(encoder.encode(first!)),
                Stream.mapEffect(Stream.fromIterable(rest), (piece) =>
                  Effect.as(Effect.sleep(slowBodyInterval), encoder.encode(piece))
                )
              ),
              { status: 200, headers, contentType }
            )
          }
        }
      })

    /**
     * `GET /v1/models` and `GET /v1/models/{id}`: auth as any request, then
     * the listed models (an unlisted id → 404 `model_not_found`). Neither is
     * metered, delayed or faulted, as listing models is not on OpenAI.
     */
    const handleModels = (single: boolean) =>
      Effect.gen(function* () {
        const { request, base } = yield* incoming
        const refused = yield* refuseUnauthorized(request, base, yield* Ref.get(settings))
        if (refused !== undefined) return refused
        const id = single ? ((yield* HttpRouter.params).id ?? "") : undefined
        const entry = { ...base, model: id, promptTokens: undefined, completionTokens: undefined }
        if (id !== undefined && !models.includes(id)) {
          yield* record({ ...entry, outcome: "notFound", status: 404 })
          return json(
            404,
            answers.errorBody(
              `The model '${id}' does not exist or you do not have access to it.`,
              "invalid_request_error",
              "model_not_found",
              "model"
            )
          )
        }
        yield* record({ ...entry, outcome: "served", status: 200 })
        return json(200, id === undefined ? { object: "list", data: models.map(modelObject) } : modelObject(id))
      })

    const notFound = Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const time = yield* Clock.currentTimeMillis
      const path = pathOf(request.url)
      yield* record({
        time,
        method: request.method,
        path,
        model: undefined,
        promptTokens: undefined,
        completionTokens: undefined,
        chargedTokens: 0,
        outcome: "notFound",
        status: 404,
        fault: undefined,
        latencyMillis: 0
      })
      return json(
        404,
        answers.errorBody(`Unknown request URL: ${request.method} ${path}.`, "invalid_request_error", "unknown_url")
      )
    })

    const app = HttpRouter.empty.pipe(
      HttpRouter.post("/v1/chat/completions", handle("chat")),
      HttpRouter.post("/v1/embeddings", handle("embeddings")),
      HttpRouter.post("/v1/completions", handle("completions")),
      HttpRouter.get("/v1/models", handleModels(false)),
      HttpRouter.get("/v1/models/:id", handleModels(true)),
      HttpRouter.all("*", notFound)
    )

    const nodeServer = Http.createServer()
    const server = yield* NodeHttpServer.make(() => nodeServer, {
      port: options.port ?? 0,
      host: options.host ?? "127.0.0.1"
    })
    yield* server.serve(app)
    // Runs before NodeHttpServer's own finalizer, whose `server.close` would
    // otherwise wait for every open connection (kept-alive or hung) to end.
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        Effect.async<void>((resume) => {
          nodeServer.close(() => resume(Effect.void))
          nodeServer.closeAllConnections()
        }),
        Deferred.succeed(closing, undefined)
      )
    )

    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("MockProvider: expected a TCP address")
    const hostname = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
    const origin = `http://${hostname}:${address.port}`

    const log = Effect.sync((): ReadonlyArray<MockProvider.LogEntry> => entries.slice())

    return {
      baseUrl: `${origin}/v1`,
      origin,
      port: address.port,
      log,
      counters: Effect.sync((): MockProvider.Counters => ({ ...counters, faults: { ...counters.faults } })),
      awaitRequests: (count: number) =>
        Effect.zipRight(
          Stream.runDrain(
            Stream.take(
              Stream.filter(sequence.changes, (n) => n >= count),
              1
            )
          ),
          log
        ),
      setFaults: (faults: MockProvider.Faults) =>
        Effect.flatMap(schemas.decodeFaults(faults), (decoded) =>
          Ref.update(settings, (current) => ({ ...current, faults: decoded.faults }))
        ),
      setLatency: (latency: MockProvider.Latency | undefined) =>
        Effect.flatMap(schemas.decodeLatency(latency), (decoded) =>
          Ref.update(settings, (current) => ({ ...current, latency: decoded.latency }))
        ),
      setLimits: (limits: MockProvider.Limits) =>
        Effect.flatMap(schemas.decodeLimits(limits), (decoded) =>
          Ref.update(settings, (current) => ({
            ...current,
            limits: { rpm: decoded.rpm, tpm: decoded.tpm, windowMillis: windowMillisOf(decoded.window) }
          }))
        ),
      setApiKeys: (keys: ReadonlyArray<string> | undefined) =>
        Effect.flatMap(schemas.decodeApiKeys(keys), (decoded) =>
          Ref.update(settings, (current) => ({ ...current, apiKeys: decoded.apiKeys }))
        ),
      reset: Effect.zipRight(
        SubscriptionRef.modifyEffect(sequence, () =>
          Effect.sync(() => {
            entries = []
            counters = zeroCounters()
            return [undefined, 0] as const
          })
        ),
        Ref.set(windowState, window.empty)
      )
    }
  })
