/**
 * The HTTP sender's machinery: an `ApiClient` over a `HttpClient` wrapped to
 * see every attempt. Each call carries a private header naming it; the
 * wrapper takes the header off before the request leaves, counts the
 * attempt against that call, and tells `RunStats` of each request sent, each
 * retry and each 429.
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type { InvalidOptions } from "@sluice/core"
import * as ApiClient from "@sluice/http/ApiClient"
import type { EndpointConfig } from "@sluice/http/EndpointConfig"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as HttpSend from "../HttpSend.js"
import type * as Runner from "../Runner.js"
import { RunStats } from "../RunStats.js"
import { pathUnder } from "./batchLine.js"
import { SendFailure } from "./runError.js"

const CALL_HEADER = "x-sluice-call"

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

export const endpointConfig = (options: HttpSend.Options): EndpointConfig => ({
  name: options.name ?? "sluice-run",
  baseUrl: options.baseUrl,
  auth: options.apiKey === undefined ? undefined : { _tag: "Bearer", token: options.apiKey },
  timeout: options.timeout,
  limits: {
    requests: options.rpm === undefined ? undefined : { limit: options.rpm, interval: "1 minute" },
    tokens: options.tpm === undefined ? undefined : { limit: options.tpm, interval: "1 minute" },
    concurrency: options.concurrency
  },
  retry: { maxAttempts: options.maxAttempts ?? 3 },
  allowInsecureHttp: options.allowInsecureHttp
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
        Effect.flatMap(requestEffect, (request) => {
          const call = request.headers[CALL_HEADER]
          if (call === undefined) return http.execute(request)
          const outgoing = HttpClientRequest.setBody(
            HttpClientRequest.make(request.method)(request.url, {
              urlParams: request.urlParams,
              headers: Headers.remove(request.headers, CALL_HEADER),
              ...(Option.isSome(request.hash) ? { hash: request.hash.value } : {})
            }),
            request.body
          )
          const attempt = (attempts.get(call) ?? 0) + 1
          attempts.set(call, attempt)
          return Effect.gen(function* () {
            yield* stats.requestSent
            if (attempt > 1) yield* stats.retried
            const response = yield* http.execute(outgoing)
            if (response.status === 429) yield* stats.rateLimited
            return response
          })
        }),
      Effect.succeed
    )

    const api = yield* Effect.provideService(ApiClient.make(endpointConfig(options)), HttpClient.HttpClient, observed)
    const tokenLimited = options.tpm !== undefined

    return (line: Runner.BatchLine) => {
      const call = String(++nextCall)
      const attemptsOf = () => attempts.get(call) ?? 0
      return api
        .post(pathUnder(api.baseUrl, line.url), {
          schema: Schema.Unknown,
          body: line.body,
          headers: { [CALL_HEADER]: call },
          ...(tokenLimited ? { cost: { tokens: estimateTokens(line.body) } } : {})
        })
        .pipe(
          Effect.map((response): Runner.SendResult => {
            const usage = usageOf(response)
            return usage === undefined
              ? { response, attempts: attemptsOf() }
              : { response, attempts: attemptsOf(), usage }
          }),
          Effect.mapError(
            (error) => new SendFailure({ errorTag: error._tag, detail: error.message, attempts: attemptsOf() })
          ),
          Effect.ensuring(Effect.sync(() => attempts.delete(call)))
        )
    }
  })
