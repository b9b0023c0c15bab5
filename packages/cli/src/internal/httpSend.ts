/**
 * The sender's machinery: chat and embeddings lines go through the Model
 * (`@sluice/model`: the token estimate is reserved on the token limit and
 * reconciled with the usage the answer reports); any other URL is posted
 * through the same ApiClient as it is. The ApiClient runs over a `HttpClient`
 * wrapped to see every attempt: each call is named in a FiberRef (which the
 * Executor carries into the fiber running each attempt), so the wrapper can
 * count the attempt against its call and tell `RunStats` of each request
 * sent, each retry and each 429.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import { CircuitBreaker, InvalidOptions, Retry } from "@sluice/core"
import * as ApiClient from "@sluice/http/ApiClient"
import * as ApiError from "@sluice/http/ApiError"
import type * as EndpointConfig from "@sluice/http/EndpointConfig"
import * as RateLimitHeaders from "@sluice/http/RateLimitHeaders"
import { Model } from "@sluice/model"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as HttpSend from "../HttpSend.js"
import type * as Runner from "../Runner.js"
import { RunStats } from "../RunStats.js"
import { pathUnder } from "./batchLine.js"
import * as LearnedLimits from "./learnedLimits.js"
import { RunError } from "./runError.js"

/** The call the current fiber works for (set around each line's send). */
const currentCall = FiberRef.unsafeMake<string | undefined>(undefined)

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The characters of a body's prompt: chat messages' text, or embeddings' input. */
const promptCharacters = (body: Record<string, unknown>): number => {
  const textOf = (value: unknown): number => {
    if (typeof value === "string") return value.length
    if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + textOf(item), 0)
    if (isRecord(value)) {
      if (typeof value.text === "string") return value.text.length
      return textOf(value.content)
    }
    return 0
  }
  if (body.messages !== undefined) return textOf(body.messages)
  if (body.input !== undefined) return textOf(body.input)
  if (body.prompt !== undefined) return textOf(body.prompt)
  return JSON.stringify(body).length
}

export const estimateTokens = (body: unknown): number => {
  if (!isRecord(body)) return 1
  const maxOutput = body.max_completion_tokens ?? body.max_tokens
  return Math.max(1, Math.ceil(promptCharacters(body) / 4) + (typeof maxOutput === "number" ? maxOutput : 0))
}

/**
 * The usage an answer reports, and what the provider counted against its
 * token limit (the Model's own arithmetic, `Model.chargedChatTokens`): with
 * `outputTokensCharged: "maximum"`, a chat line's prompt plus the
 * `max_tokens` it asked for, for each of its `n` choices.
 */
export const usageOf = (
  body: unknown,
  response: unknown,
  outputTokensCharged: "used" | "maximum"
): Runner.Usage | undefined => {
  const usage = isRecord(response) ? response.usage : undefined
  if (!isRecord(usage)) return undefined
  const promptTokens = typeof usage.prompt_tokens === "number" ? usage.prompt_tokens : 0
  const completionTokens = typeof usage.completion_tokens === "number" ? usage.completion_tokens : 0
  if (outputTokensCharged !== "maximum" || !isRecord(body) || body.messages === undefined) {
    return { promptTokens, completionTokens }
  }
  const numberOr = (value: unknown) => (typeof value === "number" ? value : undefined)
  const chargedTokens = Model.chargedChatTokens(
    {
      max_tokens: numberOr(body.max_tokens),
      max_completion_tokens: numberOr(body.max_completion_tokens),
      n: numberOr(body.n)
    },
    { prompt_tokens: promptTokens },
    "maximum"
  )
  return chargedTokens === undefined
    ? { promptTokens, completionTokens }
    : { promptTokens, completionTokens, chargedTokens }
}

/** The flags' limits, each over the run's window. */
export const givenLimits = (options: HttpSend.Options): LearnedLimits.Limits => {
  const windowMillis = Duration.toMillis(Duration.decode(options.window ?? "1 minute"))
  return {
    requests: options.rpm === undefined ? undefined : { limit: options.rpm, windowMillis },
    tokens: options.tpm === undefined ? undefined : { limit: options.tpm, windowMillis }
  }
}

export const DEFAULT_BURST = 0.02
export const DEFAULT_HEADROOM = 0.02

/** How long the other lines wait for the first line's answer before they go by the flags' limits. */
export const DEFAULT_LEARN_WAIT = Duration.seconds(10)

export const endpointConfig = (
  options: HttpSend.Options,
  limits: LearnedLimits.Limits = givenLimits(options)
): EndpointConfig.EndpointConfig => {
  const burst = options.burst ?? DEFAULT_BURST
  const headroom = options.headroom ?? DEFAULT_HEADROOM
  return {
    name: options.name ?? "sluice-run",
    baseUrl: options.baseUrl,
    auth: options.apiKey === undefined ? undefined : { _tag: "Bearer", token: options.apiKey },
    timeout: options.timeout,
    limits: {
      requests: limits.requests === undefined ? undefined : LearnedLimits.bucket(limits.requests, burst, headroom),
      tokens: limits.tokens === undefined ? undefined : LearnedLimits.bucket(limits.tokens, burst, headroom),
      concurrency: options.concurrency
    },
    retry: {
      maxAttempts: options.maxAttempts ?? 3,
      // A batch outlives an outage: a line refused by an open breaker waits for it (paying nothing, using no
      // attempt) instead of failing, for up to ten minutes of retrying.
      isRetryable: (error) => Retry.isRetryable(error) || error instanceof CircuitBreaker.CircuitOpenError,
      maxElapsed: "10 minutes"
    },
    breaker: options.breaker,
    allowInsecureHttp: options.allowInsecureHttp
  }
}

/** What the first answer taught: the server's limits, and its headers to seed the new limiter with. */
interface Lesson {
  readonly limits: LearnedLimits.Limits
  readonly info: RateLimitHeaders.RateLimitInfo | undefined
}

const NOTHING_LEARNED: Lesson = { limits: {}, info: undefined }

type CallFailure = ApiError.ApiError | Model.ModelError | { readonly _tag: string; readonly message: string }

type Call = (line: Runner.BatchLine) => Effect.Effect<unknown, CallFailure>

/** What a line failed with: the reason of the ApiClient's or the Model's error, else the error's tag. */
const kindOf = (error: CallFailure): string =>
  error instanceof ApiError.ApiError || error instanceof Model.ModelError ? error.reason : error._tag

export const make = (
  options: HttpSend.Options
): Effect.Effect<Runner.Send, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | RunStats | Scope.Scope> =>
  Effect.gen(function* () {
    const stats = yield* RunStats
    const http = yield* HttpClient.HttpClient
    const scope = yield* Effect.scope
    const burst = options.burst ?? DEFAULT_BURST
    const headroom = options.headroom ?? DEFAULT_HEADROOM
    if (!(burst > 0 && burst < 1) || !(headroom >= 0 && headroom < 1) || burst + headroom >= 1) {
      return yield* new InvalidOptions.InvalidOptionsError({
        component: "HttpSend",
        issues: `["burst"] and ["headroom"] Expected a burst above 0, a headroom from 0, and together below 1 (the run paces at 1 - headroom - burst of a limit), actual ${burst} and ${headroom}`
      })
    }
    const learn = options.learnLimits ?? true
    const outputTokensCharged = options.outputTokensCharged ?? "maximum"
    const given = givenLimits(options)
    /** Attempts so far of each call in flight, by its call header. */
    const attempts = new Map<string, number>()
    let nextCall = 0
    /** Completed by the first answer's headers (or with nothing, when the first line got no answer). */
    const lesson = yield* Deferred.make<Lesson>()

    const observed: HttpClient.HttpClient = HttpClient.makeWith<never, never, HttpClientError.HttpClientError, never>(
      (requestEffect) =>
        Effect.flatMap(Effect.zip(requestEffect, FiberRef.get(currentCall)), ([request, call]) => {
          if (call === undefined) return http.execute(request)
          const attempt = (attempts.get(call) ?? 0) + 1
          attempts.set(call, attempt)
          return Effect.gen(function* () {
            yield* stats.requestSent
            if (attempt > 1) yield* stats.retried
            const response = yield* http.execute(request)
            if (response.status === 429) yield* stats.rateLimited
            if (learn && !(yield* Deferred.isDone(lesson))) {
              const info = RateLimitHeaders.parse(response.headers, yield* Clock.currentTimeMillis)
              const limits = LearnedLimits.fromHeaders(info)
              // An answer that reports no limit (a proxy's 502 page) teaches nothing: the first line's retry may.
              if (limits.requests !== undefined || limits.tokens !== undefined) {
                yield* Deferred.succeed(lesson, { limits, info })
              }
            }
            return response
          })
        }),
      Effect.succeed
    )

    /** A Model and an ApiClient over `limits` (and the concurrency flag), living as long as the sender. */
    const build = (limits: LearnedLimits.Limits, concurrency?: number, seed?: RateLimitHeaders.RateLimitInfo) =>
      Effect.gen(function* () {
        const config = endpointConfig(concurrency === undefined ? options : { ...options, concurrency }, limits)
        const api = yield* Effect.provideService(ApiClient.make(config, { seed }), HttpClient.HttpClient, observed)
        const model = yield* Model.fromClient(api, {
          outputTokensCharged,
          maxRequestTokens: limits.tokens?.limit
        })
        return { api, call: callThrough(api, model, limits.tokens !== undefined) }
      }).pipe(Scope.extend(scope))

    const publish = (limits: LearnedLimits.Limits) =>
      stats.setLimits({ rpm: LearnedLimits.perMinute(limits.requests), tpm: LearnedLimits.perMinute(limits.tokens) })

    yield* publish(given)
    let send: Call
    if (!learn) {
      send = (yield* build(given)).call
    } else {
      // The first line goes alone, under the flags' limits; the rest wait for what its answer says.
      const probe = yield* build(given, 1)
      const firstLineSent = yield* Deferred.make<void>()
      // Built once, in a fiber of the sender's own scope: a line interrupted while it waits (a caller's own
      // timeout) leaves it to the others, rather than leaving them an interrupted build.
      const limited = yield* Effect.forkIn(
        Effect.gen(function* () {
          yield* Deferred.await(firstLineSent)
          // A first answer slow in coming (or never coming) holds the rest back only so long.
          const learned = Option.getOrElse(
            yield* Effect.timeoutOption(Deferred.await(lesson), options.learnWait ?? DEFAULT_LEARN_WAIT),
            () => NOTHING_LEARNED
          )
          const learnedLimits = LearnedLimits.combine(given, learned.limits)
          // Limits no endpoint can be built with (nothing a header parses to should give them) leave the flags'.
          const { built, limits } = yield* Effect.orElse(
            // The first answer's remaining counts hold the new limits back as they held the server.
            Effect.map(build(learnedLimits, undefined, learned.info), (built) => ({ built, limits: learnedLimits })),
            () => Effect.map(build(given), (built) => ({ built, limits: given }))
          )
          yield* publish(limits)
          return built.call
        }).pipe(Effect.orDie),
        scope
      )
      let probing = false
      send = (line) => {
        if (!probing) {
          probing = true
          return Effect.zipRight(
            Deferred.succeed(firstLineSent, undefined),
            probe.call(line).pipe(Effect.ensuring(Deferred.succeed(lesson, NOTHING_LEARNED)))
          )
        }
        return Effect.flatMap(Fiber.join(limited), (call) => call(line))
      }
    }

    return (line: Runner.BatchLine) => {
      const id = String(++nextCall)
      const attemptsOf = () => attempts.get(id) ?? 0
      return send(line).pipe(
        Effect.map((response): Runner.SendResult => {
          const usage = usageOf(line.body, response, outputTokensCharged)
          return usage === undefined
            ? { response, attempts: attemptsOf() }
            : { response, attempts: attemptsOf(), usage }
        }),
        Effect.mapError(
          (error) =>
            new RunError({
              reason: "SendFailed",
              errorKind: kindOf(error),
              detail: error.message,
              attempts: attemptsOf()
            })
        ),
        Effect.locally(currentCall, id),
        Effect.ensuring(Effect.sync(() => attempts.delete(id)))
      )
    }
  })

/** Chat and embeddings through the Model; anything else posted as it is. */
const callThrough =
  (api: ApiClient.ApiClientShape, model: Model.ModelShape, tokenLimited: boolean): Call =>
  (line) => {
    const path = pathUnder(api.baseUrl, line.url)
    if (path === "/chat/completions") {
      return Effect.flatMap(decodeLine(Model.ChatRequest, line), model.chat)
    }
    if (path === "/embeddings") {
      return Effect.flatMap(decodeLine(Model.EmbedRequest, line), model.embed)
    }
    return api.post(path, {
      schema: Schema.Unknown,
      body: line.body,
      ...(tokenLimited ? { cost: { tokens: estimateTokens(line.body) } } : {})
    })
  }

/** A line's body as the Model's request: a body it cannot be is the line's own failure, sent nowhere. */
const decodeLine = <A, I>(schema: Schema.Schema<A, I>, line: Runner.BatchLine) =>
  Schema.decodeUnknown(schema)(line.body).pipe(
    Effect.mapError((error) => ({
      _tag: "InvalidRequest",
      // Where and what kind, never the values: a body may hold anything.
      message: `the body is not a valid request: ${ParseResult.ArrayFormatter.formatErrorSync(error)
        .map((issue) => `${JSON.stringify(issue.path)} ${issue._tag}`)
        .join("; ")}`
    }))
  )
