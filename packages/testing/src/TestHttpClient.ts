/**
 * In-memory HTTP for unit tests that need no socket: an `HttpClient` whose
 * answers come from a handler function (an `ApiClient` runs over it:
 * `ApiClient.layer(config).pipe(Layer.provide(TestHttpClient.layer(handler)))`). The
 * handler sees each request as plain data (method, URL, headers, parsed JSON
 * body) and answers a status, headers and a body, or a transport failure
 * (`{ reset: true }`, as a connection reset). The answers pass through the
 * real ApiClient: header parsing, error mapping, decoding, retry.
 *
 * `@effect/platform` gives `HttpClient.make` and `HttpClientResponse.fromWeb`;
 * this module adds the plain-data handler shape and a record of every request.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * One request as the handler sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestRequest {
  readonly method: string
  readonly url: URL
  /** Lower-case names. Includes credentials: a test may check them, and must not print them. */
  readonly headers: Readonly<Record<string, string>>
  /** The JSON body, parsed; undefined when there was none. */
  readonly body: unknown
}

/**
 * @since 0.1.0
 * @category models
 */
export type TestResponse =
  | {
      readonly status: number
      readonly headers?: Readonly<Record<string, string>> | undefined
      /** A string is sent as it is; anything else as JSON. */
      readonly body?: unknown
    }
  | { readonly reset: true }

/**
 * @since 0.1.0
 * @category models
 */
export type Handler = (request: TestRequest) => Effect.Effect<TestResponse> | TestResponse

const bodyOf = (request: { readonly body: { readonly _tag: string } }): unknown => {
  const body = request.body as { readonly _tag: string; readonly body?: Uint8Array }
  if (body._tag !== "Uint8Array" || body.body === undefined) return undefined
  const text = new TextDecoder().decode(body.body)
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/**
 * An `HttpClient` answering from `handler`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (handler: Handler): HttpClient.HttpClient =>
  HttpClient.make((request, url) =>
    Effect.flatMap(
      Effect.suspend(() => {
        const answer = handler({ method: request.method, url, headers: { ...request.headers }, body: bodyOf(request) })
        return Effect.isEffect(answer) ? answer : Effect.succeed(answer)
      }),
      (answer) => {
        if ("reset" in answer) {
          return Effect.fail(
            new HttpClientError.RequestError({
              request,
              reason: "Transport",
              cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })
            })
          )
        }
        const body =
          answer.body === undefined ? null : typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body)
        return Effect.succeed(
          HttpClientResponse.fromWeb(
            request,
            new Response(body, { status: answer.status, headers: { ...answer.headers } })
          )
        )
      }
    )
  )

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (handler: Handler): Layer.Layer<HttpClient.HttpClient> =>
  Layer.succeed(HttpClient.HttpClient, make(handler))
