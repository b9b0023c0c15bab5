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
import { CircuitBreaker, type InvalidOptions, Retry } from "@sluice/core"
import * as ApiClient from "@sluice/http/ApiClient"
import type * as EndpointConfig from "@sluice/http/EndpointConfig"
import { Model } from "@sluice/model"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as HttpSend from "../HttpSend.js"
import type * as Runner from "../Runner.js"
import { RunStats } from "../RunStats.js"
import { pathUnder } from "./batchLine.js"
import { SendFailure } from "./runError.js"

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

const usageOf = (response: unknown): Runner.Usage | undefined => {
  const usage = isRecord(response) ? response.usage : undefined
  if (!isRecord(usage)) return undefined
  const promptTokens = typeof usage.prompt_tokens === "number" ? usage.prompt_tokens : 0
  const completionTokens = typeof usage.completion_tokens === "number" ? usage.completion_tokens : 0
  return { promptTokens, completionTokens }
}

export const endpointConfig = (options: HttpSend.Options): EndpointConfig.EndpointConfig => ({
  name: options.name ?? "sluice-run",
  baseUrl: options.baseUrl,
  auth: options.apiKey === undefined ? undefined : { _tag: "Bearer", token: options.apiKey },
  timeout: options.timeout,
  limits: {
    requests: options.rpm === undefined ? undefined : perMinute(options.rpm, options.burst),
    tokens: options.tpm === undefined ? undefined : perMinute(options.tpm, options.burst),
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
})

/** A per-minute limit whose bucket holds `burst` of it (at least one unit). */
const perMinute = (limit: number, burst: number | undefined): EndpointConfig.LimitOptions => ({
  limit,
  interval: "1 minute",
  capacity: burst === undefined ? undefined : Math.max(1, Math.floor(limit * burst))
})

export const make = (
  options: HttpSend.Options
): Effect.Effect<Runner.Send, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | RunStats | Scope.Scope> =>
  Effect.gen(function* () {
    const stats = yield* RunStats
    const http = yield* HttpClient.HttpClient
    /** Attempts so far of each call in flight, by its call header. */
    const attempts = new Map<string, number>()
    let nextCall = 0

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
            return response
          })
        }),
      Effect.succeed
    )

    const api = yield* Effect.provideService(ApiClient.make(endpointConfig(options)), HttpClient.HttpClient, observed)
    const tokenLimited = options.tpm !== undefined
    const model = yield* Model.fromClient(api)

    /** Chat and embeddings through the Model; anything else posted as it is. */
    const call = (
      line: Runner.BatchLine
    ): Effect.Effect<unknown, { readonly _tag: string; readonly message: string }> => {
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

    return (line: Runner.BatchLine) => {
      const id = String(++nextCall)
      const attemptsOf = () => attempts.get(id) ?? 0
      return call(line).pipe(
        Effect.map((response): Runner.SendResult => {
          const usage = usageOf(response)
          return usage === undefined
            ? { response, attempts: attemptsOf() }
            : { response, attempts: attemptsOf(), usage }
        }),
        Effect.mapError(
          (error) => new SendFailure({ errorTag: error._tag, detail: error.message, attempts: attemptsOf() })
        ),
        Effect.locally(currentCall, id),
        Effect.ensuring(Effect.sync(() => attempts.delete(id)))
      )
    }
  })

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
