/**
 * A small client for the MockProvider tests: posts JSON with
 * `@effect/platform`'s HttpClient (undici) and reads the whole answer.
 */

import * as Net from "node:net"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as TestClock from "effect/TestClock"
import { eventually } from "../../src/TestEvents.js"

export const ClientLive = NodeHttpClient.layerUndici

export interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly text: string
}

export const request = (
  url: string,
  body: unknown,
  options: { readonly apiKey?: string; readonly method?: "GET" | "POST" } = {}
): HttpClientRequest.HttpClientRequest =>
  (options.method === "GET" ? HttpClientRequest.get(url) : HttpClientRequest.post(url)).pipe(
    body === undefined
      ? identity
      : typeof body === "string"
        ? HttpClientRequest.bodyText(body, "application/json")
        : HttpClientRequest.bodyUnsafeJson(body),
    options.apiKey === undefined ? identity : HttpClientRequest.bearerToken(options.apiKey)
  )

/** Sends a request and reads the whole body as text. */
export const send = (
  url: string,
  body: unknown,
  options: { readonly apiKey?: string; readonly method?: "GET" | "POST" } = {}
): Effect.Effect<Answer, HttpClientError.HttpClientError, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(request(url, body, options))
    const text = yield* response.text
    return { status: response.status, headers: response.headers, text }
  })

/** Sends a request and answers the response before its body is read. */
export const open = (
  url: string,
  body: unknown
): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError, HttpClient.HttpClient> =>
  Effect.flatMap(HttpClient.HttpClient, (client) => client.execute(request(url, body)))

export const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: "mock-model",
  messages: [{ role: "user", content }],
  ...extra
})

/**
 * Waits (in real time, polling every 2 ms, bounded) until some fiber sleeps on
 * the TestClock: the server has reached its latency or slow-body pause, so a
 * `TestClock.adjust` now moves it on.
 */
export const awaitSleeper: Effect.Effect<void> = eventually(
  "some fiber sleeps on the TestClock",
  Effect.map(TestClock.sleeps(), (sleeps) => !Chunk.isEmpty(sleeps))
)

/** Whether a TCP connection to `port` on 127.0.0.1 is accepted. */
export const accepts = (port: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const socket = Net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })
