/**
 * A cheap probe for the Router's active health checks (`healthCheck` on a
 * provider): `GET {baseUrl}/models` (`/v1/models` on an OpenAI-style base
 * URL) with the endpoint's credentials. A 2xx answer passes; any `ApiError`
 * or `AuthFailed` fails it.
 *
 * Listing the models spends no tokens and does not depend on the model: a
 * one-token completion as a probe costs tokens on every check, and fails on
 * reasoning models, which cannot answer within `max_tokens: 1` (LiteLLM
 * #9584, #26987). It checks reachability and the key, not that completions
 * work; the Router's passive ejection, fed by the real calls, covers that.
 *
 * The probe is a plain client's (`ApiClient.make` with `executor: false`):
 * it never queues behind the provider's traffic nor waits for its limits,
 * and an open breaker does not fail it. It is built without the config's
 * limits, retry and breaker: one attempt, under the config's timeout (the
 * health check's `timeout` bounds it too).
 *
 * What `@effect/platform` and the ApiClient gave: the request, auth, typed
 * errors, secrets kept out of errors and spans. What this adds: the choice of
 * request, and its answer as a verdict.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type { InvalidOptions } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as ApiClient from "./ApiClient.js"
import type { ApiError } from "./ApiError.js"
import type { AuthFailed, AuthProvider } from "./Auth.js"
import type { EndpointConfig } from "./EndpointConfig.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The path probed, after the base URL. Default `"/models"`. */
  readonly path?: string | undefined
  /** Credentials other than the config's static ones (e.g. `Auth.cachedToken`). */
  readonly auth?: AuthProvider | undefined
}

/**
 * The probe: an Effect that succeeds when the endpoint answers the path with
 * a 2xx, and fails with the call's error otherwise. Built over the
 * `HttpClient` in context, in the current scope.
 *
 * ```ts
 * const probe = yield* HealthProbe.make(endpoint)
 * Router.make({ name: "models", providers: [{ name: "openai", executor, healthCheck: { probe } }] })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: EndpointConfig,
  options: Options = {}
): Effect.Effect<
  Effect.Effect<void, ApiError | AuthFailed>,
  InvalidOptions.InvalidOptionsError,
  HttpClient.HttpClient | Scope.Scope
> =>
  Effect.map(
    ApiClient.make(
      { ...config, limits: undefined, retry: undefined, breaker: undefined },
      { executor: false, ...(options.auth === undefined ? {} : { auth: options.auth }) }
    ),
    (client) =>
      // A plain client has no executor: none of the Executor's errors can come of it.
      Effect.asVoid(client.get(options.path ?? "/models", { schema: Schema.Unknown })) as Effect.Effect<
        void,
        ApiError | AuthFailed
      >
  )
