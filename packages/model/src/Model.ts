/**
 * The service layer: `chat`, `embed` and `complete` (the legacy
 * `/completions`) on an OpenAI-compatible API, with
 * the request's tokens estimated before the call, reserved on the endpoint's
 * token limit, and reconciled with the `usage` the provider reports; and
 * errors a caller can act on instead of HTTP statuses.
 *
 * What the lower layers give: `@effect/platform` the HTTP client and
 * `Schema`; `@sluice/http`'s ApiClient the endpoint, auth, typed HTTP errors,
 * rate-limit headers and an Executor (queue, limits, retry, breaker);
 * `@sluice/core`'s RateLimiter `reconcile` and `refund`. What this module adds:
 *
 * - the wire format as Schemas (`ChatRequest`, `ChatResponse`, `EmbedRequest`,
 *   `EmbedResponse`, `CompletionRequest`, `CompletionResponse`), with every field it does not name passed through
 *   untouched; a request is validated before anything is reserved or sent;
 * - token accounting: a pluggable {@link TokenEstimator} (prompt + maximum
 *   output) reserved on the endpoint's `tokens` limit before the call, then
 *   reconciled to `usage.total_tokens` (estimate 1,200, usage 830: 370 go
 *   back), given back whole when the provider refused the call, kept when it
 *   may have done the work but said nothing (a timeout);
 * - the Model's error, `ModelError`, refined by its `reason`
 *   (`ContextTooLong`, `ContentFiltered`, `RateLimited`,
 *   `ProviderUnavailable`, `InvalidRequest`), with `retryable` and a
 *   `message` that says what to do, mapped from the ApiClient's and the
 *   Executor's errors (a 400 `context_length_exceeded`, a
 *   `content_policy_violation`, a 429 with its `retryAfter`, a 5xx, a
 *   timeout, an open breaker, ...), and never holding a secret;
 * - `layerTest`: a Model that answers canned completions, for code above it.
 *
 * The interface names no provider: {@link makeRouted} and {@link layerRouted}
 * offer the same interface over several endpoints behind `@sluice/core`'s
 * Router (each endpoint a provider with its own Executor and limits; the
 * Router picks one per call and falls back by what a failure means), and
 * every error says which provider it came from and whether another try may
 * help (the reasons `ProviderUnavailable` and `RateLimited` are the ones to
 * fall back on).
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type { InvalidOptions, RateLimiter, RateLimiterStore } from "@sluice/core"
import { Router } from "@sluice/core"
import { ApiClient, type EndpointConfig } from "@sluice/http"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/model.js"
import * as errors from "./internal/modelError.js"
import * as routed from "./internal/modelRouter.js"
import * as testing from "./internal/modelTest.js"
import * as Wire from "./internal/wire.js"
import type * as TokenEstimator from "./TokenEstimator.js"

// ---- the wire format --------------------------------------------------------

/**
 * One part of a message's content: `{ type: "text", text }`, an image, ...
 *
 * @since 0.1.0
 * @category schemas
 */
export const ContentPart = Wire.ContentPart

/**
 * @since 0.1.0
 * @category schemas
 */
export type ContentPart = typeof Wire.ContentPart.Type

/**
 * A tool call the assistant made (in a response, or replayed in a request).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolCall = Wire.ToolCall

/**
 * @since 0.1.0
 * @category schemas
 */
export type ToolCall = typeof Wire.ToolCall.Type

/**
 * A tool the model may call, passed through as given.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Tool = Wire.Tool

/**
 * @since 0.1.0
 * @category schemas
 */
export type Tool = typeof Wire.Tool.Type

/**
 * A chat message: a role, its content (text or parts), and optionally a
 * name, tool calls or the tool call it answers.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Message = Wire.Message

/**
 * @since 0.1.0
 * @category schemas
 */
export type Message = typeof Wire.Message.Type

/**
 * The body of `POST /chat/completions`: `model`, `messages` (at least one),
 * `max_tokens` / `max_completion_tokens`, `temperature`, `tools`, ...; any
 * other field is sent untouched. `stream: true` is refused (`chat` answers
 * one body).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatRequest = Wire.ChatRequest

/**
 * @since 0.1.0
 * @category schemas
 */
export type ChatRequest = typeof Wire.ChatRequest.Type

/**
 * What a chat call used: `prompt_tokens`, `completion_tokens`, `total_tokens`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatUsage = Wire.ChatUsage

/**
 * @since 0.1.0
 * @category schemas
 */
export type ChatUsage = typeof Wire.ChatUsage.Type

/**
 * One answer: its message and why it ended (`finish_reason`: `"stop"`,
 * `"length"`, `"tool_calls"`, `"content_filter"`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Choice = Wire.Choice

/**
 * @since 0.1.0
 * @category schemas
 */
export type Choice = typeof Wire.Choice.Type

/**
 * The body of a chat completion: `choices` and `usage` (optional: a
 * compatible server may leave it out; then the estimate stands).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatResponse = Wire.ChatResponse

/**
 * @since 0.1.0
 * @category schemas
 */
export type ChatResponse = typeof Wire.ChatResponse.Type

/**
 * The body of `POST /embeddings`: `model` and `input` (a text, texts, or token ids).
 *
 * @since 0.1.0
 * @category schemas
 */
export const EmbedRequest = Wire.EmbedRequest

/**
 * @since 0.1.0
 * @category schemas
 */
export type EmbedRequest = typeof Wire.EmbedRequest.Type

/**
 * @since 0.1.0
 * @category schemas
 */
export const EmbedUsage = Wire.EmbedUsage

/**
 * @since 0.1.0
 * @category schemas
 */
export type EmbedUsage = typeof Wire.EmbedUsage.Type

/**
 * @since 0.1.0
 * @category schemas
 */
export const Embedding = Wire.Embedding

/**
 * @since 0.1.0
 * @category schemas
 */
export type Embedding = typeof Wire.Embedding.Type

/**
 * The answer of an embeddings call: one vector per input, and `usage`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const EmbedResponse = Wire.EmbedResponse

/**
 * @since 0.1.0
 * @category schemas
 */
export type EmbedResponse = typeof Wire.EmbedResponse.Type

/**
 * The body of the legacy `POST /completions`: `model`, `prompt` (a text,
 * texts, or token ids), `max_tokens` (OpenAI's default is 16), `n`,
 * `best_of`, ...; any other field is sent untouched. `stream: true` is
 * refused (`complete` answers one body).
 *
 * @since 0.1.0
 * @category schemas
 */
export const CompletionRequest = Wire.CompletionRequest

/**
 * @since 0.1.0
 * @category schemas
 */
export type CompletionRequest = typeof Wire.CompletionRequest.Type

/**
 * One completion of a `/completions` answer: its `text` and why it ended.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CompletionChoice = Wire.CompletionChoice

/**
 * @since 0.1.0
 * @category schemas
 */
export type CompletionChoice = typeof Wire.CompletionChoice.Type

/**
 * The body of a `/completions` answer: `choices` and `usage`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CompletionResponse = Wire.CompletionResponse

/**
 * @since 0.1.0
 * @category schemas
 */
export type CompletionResponse = typeof Wire.CompletionResponse.Type

// ---- errors -----------------------------------------------------------------

/**
 * What the provider counts against its token limit for a chat answer (what
 * the Model reconciles to): with `outputTokensCharged: "maximum"`, the prompt
 * plus the output the request asked for (its cap per choice, times `n`);
 * otherwise the total used. Undefined without `usage`.
 *
 * @since 0.1.0
 * @category utils
 */
export const chargedChatTokens: (
  request: internal.OutputCap,
  usage:
    | { readonly prompt_tokens?: number | null | undefined; readonly total_tokens?: number | null | undefined }
    | null
    | undefined,
  outputTokensCharged: "used" | "maximum" | undefined
) => number | undefined = internal.chargedChatTokens

/**
 * What the provider counts against its token limit for a `/completions`
 * answer: with `outputTokensCharged: "maximum"`, the prompt plus the most the
 * request may generate (`max_tokens`, 16 when it names none, for each of
 * `best_of` or `n` completions of each prompt); otherwise the total used.
 * Undefined without `usage`.
 *
 * @since 0.1.0
 * @category utils
 */
export const chargedCompletionTokens: (
  request: CompletionRequest,
  usage:
    | { readonly prompt_tokens?: number | null | undefined; readonly total_tokens?: number | null | undefined }
    | null
    | undefined,
  outputTokensCharged: "used" | "maximum" | undefined
) => number | undefined = internal.chargedCompletionTokens

/**
 * Every way a Model call fails: one error refined by `reason`, so that
 * `Effect.catchTag("ModelError", ...)` catches the Model's errors and never
 * the ApiClient's. Each has `retryable` and a `message` that says what to do.
 * Build one with the constructor named after its reason:
 *
 * - `ModelError.contextTooLong`: the prompt (plus the maximum output) does
 *   not fit the model's context window: shorten it. Carries the window and
 *   the requested count when the provider said them, and the Model's own
 *   estimate. Not retryable.
 * - `ModelError.contentFiltered`: the provider's content policy refused the
 *   prompt (`source: "request"`) or withheld every answer (`source:
 *   "response"`, with the response). Not retryable.
 * - `ModelError.rateLimited`: the provider's rate limit (429) held after the
 *   endpoint's retries, with the `retryAfter` it asked for. Retryable unless
 *   the server said otherwise.
 * - `ModelError.providerUnavailable`: this provider cannot serve now (`kind`:
 *   a 5xx, overloaded, a timeout, a broken connection, bad credentials,
 *   exhausted quota, an open breaker, a full queue, shutting down): try
 *   later, or another provider.
 * - `ModelError.invalidRequest`: the request itself is wrong (`kind`: it
 *   fails the Schema, the provider refused it, it is larger than the token
 *   limit, or the answer did not decode): fix it rather than retry it.
 *
 * @since 0.1.0
 * @category errors
 */
export const ModelError = errors.ModelError

/**
 * @since 0.1.0
 * @category errors
 */
export type ModelError = errors.ModelError

/**
 * What went wrong: `ContextTooLong`, `ContentFiltered`, `RateLimited`,
 * `ProviderUnavailable` or `InvalidRequest`.
 *
 * @since 0.1.0
 * @category errors
 */
export const ModelErrorReason = errors.Reason

/**
 * @since 0.1.0
 * @category errors
 */
export type ModelErrorReason = errors.Reason

/**
 * Why a `ProviderUnavailable` provider cannot serve (its `kind`).
 *
 * @since 0.1.0
 * @category errors
 */
export type UnavailableKind = errors.UnavailableKind

/**
 * What is wrong with an `InvalidRequest` (its `kind`).
 *
 * @since 0.1.0
 * @category errors
 */
export type InvalidKind = errors.InvalidKind

/**
 * @since 0.1.0
 * @category guards
 */
export const isModelError: (value: unknown) => value is ModelError = errors.isModelError

// ---- the service ------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface ModelShape {
  readonly chat: (request: ChatRequest) => Effect.Effect<ChatResponse, ModelError>
  readonly embed: (request: EmbedRequest) => Effect.Effect<EmbedResponse, ModelError>
  /** The legacy `/completions`: a prompt in, text out. */
  readonly complete: (request: CompletionRequest) => Effect.Effect<CompletionResponse, ModelError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Model extends Context.Tag("@sluice/model/Model")<Model, ModelShape>() {}

/**
 * How the Model calls its ApiClient.
 *
 * @since 0.1.0
 * @category models
 */
export interface CallOptions {
  /** Estimates each request's tokens. Default {@link TokenEstimator.standard}. */
  readonly estimator?: TokenEstimator.TokenEstimator | undefined
  /**
   * The endpoint's limit that counts tokens. Default `"tokens"`; when the
   * endpoint has no such limit, nothing is reserved (naming a limit it does
   * not have is an `InvalidOptionsError`).
   */
  readonly tokenLimit?: string | undefined
  /** Default `/chat/completions`. */
  readonly chatPath?: string | undefined
  /** Default `/embeddings`. */
  readonly embedPath?: string | undefined
  /** Default `/completions`. */
  readonly completePath?: string | undefined
  /** The rate-limit and breaker key every call uses. Default the endpoint's default key. */
  readonly key?: string | undefined
  /** The Executor priority of every call. Default 0. */
  readonly priority?: number | undefined
  /** Overrides the endpoint's timeout of each attempt. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * What the provider charges a chat call's output against its token limit,
   * and so what a reservation is reconciled to:
   * - `"used"` (default): the tokens the answer used. The reservation becomes
   *   `usage.total_tokens` (providers that settle the output at the end of the
   *   call, such as Anthropic's output-token limit).
   * - `"maximum"`: the maximum output asked for. The reservation becomes
   *   `usage.prompt_tokens` plus `max_completion_tokens` (or `max_tokens`)
   *   times `n`, so
   *   only the prompt's estimate is corrected (OpenAI counts `max_tokens`
   *   against its tokens-per-minute limit whatever the answer used). A request
   *   with no maximum is reconciled to `usage.total_tokens` either way.
   *
   * Reconciling to less than the provider counts lets the local limiter admit
   * more than the provider does: 429s.
   */
  readonly outputTokensCharged?: "used" | "maximum" | undefined
  /**
   * The largest estimate a call may have when it is larger than the token
   * bucket's capacity: such a call pays in installments of the capacity (one
   * after the other, as the bucket refills) instead of failing. Set it to the
   * provider's own allowance when the bucket is kept small to pace the calls.
   * Default none: an estimate above the capacity is an `InvalidRequest` (`TooLarge`).
   */
  readonly maxRequestTokens?: number | undefined
}

/**
 * A Model over an endpoint (it builds the ApiClient), or over a client built
 * elsewhere (shared, scripted, or a Router's).
 *
 * @since 0.1.0
 * @category models
 */
export type Options = CallOptions &
  (
    | {
        readonly endpoint: EndpointConfig.EndpointConfig
        readonly clientOptions?: ApiClient.MakeOptions | undefined
      }
    | { readonly client: ApiClient.ApiClientShape }
  )

/**
 * Builds a Model. Bad options (or a bad endpoint) fail with an
 * `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<ModelShape, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | Scope.Scope> = internal.make

/**
 * A Model over a client built elsewhere.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient: (
  client: ApiClient.ApiClientShape,
  options?: CallOptions
) => Effect.Effect<ModelShape, InvalidOptions.InvalidOptionsError> = internal.fromClient

/**
 * The Model over an endpoint (it builds the ApiClient over the `HttpClient` in
 * context: on Node, `NodeHttpPool.layer(endpoint.pool)` from `@sluice/http-node`),
 * or over the given client.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <O extends Options>(
  options: O
): Layer.Layer<
  Model,
  InvalidOptions.InvalidOptionsError,
  O extends { readonly endpoint: EndpointConfig.EndpointConfig } ? HttpClient.HttpClient : never
> =>
  ("endpoint" in options
    ? Layer.scoped(Model, make(options))
    : Layer.effect(Model, fromClient(options.client, options))) as Layer.Layer<
    Model,
    InvalidOptions.InvalidOptionsError,
    O extends { readonly endpoint: EndpointConfig.EndpointConfig } ? HttpClient.HttpClient : never
  >

/**
 * The Model over the `ApiClient` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApiClient = (
  options?: CallOptions
): Layer.Layer<Model, InvalidOptions.InvalidOptionsError, ApiClient.ApiClient> =>
  Layer.effect(
    Model,
    Effect.flatMap(ApiClient.ApiClient, (client) => fromClient(client, options))
  )

/**
 * Reads the endpoint from `Config` (e.g. `EndpointConfig.config("openai", "OPENAI")`),
 * then builds the Model like {@link layer}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  endpoint: Config.Config<EndpointConfig.EndpointConfig>,
  options?: CallOptions & { readonly clientOptions?: ApiClient.MakeOptions | undefined }
): Layer.Layer<Model, InvalidOptions.InvalidOptionsError | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Effect.map(endpoint, (config) => Layer.scoped(Model, make({ ...options, endpoint: config }))))

// ---- several providers ------------------------------------------------------

/**
 * One provider of a routed Model: an endpoint (its own limits, concurrency,
 * timeout, auth; its retry policy if it names one, else one attempt), and
 * where it stands in the Router.
 *
 * @since 0.1.0
 * @category models
 */
export interface RoutedProvider {
  /** Its `name` names the provider in the Router and in errors. */
  readonly endpoint: EndpointConfig.EndpointConfig
  readonly clientOptions?: Pick<ApiClient.MakeOptions, "auth" | "seed"> | undefined
  /**
   * The quota domain it shares with other providers (one organisation's
   * limits), declared in `domains`; its endpoint then declares no
   * `requests`/`tokens` limits of its own. Without one, its endpoint's limits
   * are a domain of its own.
   */
  readonly domain?: string | undefined
  /** For the `weightedRoundRobin` strategy. Default 1. */
  readonly weight?: number | undefined
  /** Lower tiers are preferred; a higher tier is the fallback group. Default 0. */
  readonly tier?: number | undefined
  /** The largest context (prompt and output tokens) its model takes: a call that needs more goes elsewhere. */
  readonly contextWindow?: number | undefined
  /** The model it serves, sent in place of the request's `model` (a deployment's name, say). */
  readonly model?: string | undefined
  /**
   * Adapt its Executor's concurrency to back-pressure (the Router's AIMD,
   * `Router.AdaptiveConcurrencyOptions`); it starts at its endpoint's
   * `limits.concurrency`. Without a `ceiling` or `requestLimit` of its own,
   * the ceiling is derived from the request limit it is held to (its
   * endpoint's `limits.requests`, or its shared domain's `requests`), so
   * that limit is not written twice. Off by default.
   */
  readonly adaptiveConcurrency?: Router.AdaptiveConcurrencyOptions | undefined
  /**
   * Probe it on an interval (`Router.HealthCheckOptions`). `true`, or options
   * without a `probe`: the probe is `HealthProbe.make(endpoint)` of
   * `@sluice/http` (`GET /models` with its credentials, no tokens spent).
   * Off by default.
   */
  readonly healthCheck?:
    | boolean
    | (Omit<Router.HealthCheckOptions, "probe"> & { readonly probe?: Router.HealthCheckOptions["probe"] | undefined })
    | undefined
}

/**
 * A Model over several providers behind a Router: the Model's call options
 * (but `key`: each provider uses its domain's key; and `maxRequestTokens`:
 * no installments through a Router), the Router's options (strategy,
 * ejection, fallback, deadline, …), the providers and their shared quota
 * domains.
 *
 * @since 0.1.0
 * @category models
 */
export interface RoutedOptions
  extends Omit<CallOptions, "key" | "maxRequestTokens">,
    Omit<Router.Options, "name" | "providers" | "domains" | "classify"> {
  /** Names the router (in its errors, events and metrics). Default `"models"`. */
  readonly name?: string | undefined
  readonly providers: ReadonlyArray<RoutedProvider>
  /** Quota domains several providers share, with their limits. */
  readonly domains?:
    | Readonly<
        Record<
          string,
          {
            readonly requests?: RateLimiter.LimitOptions | undefined
            readonly tokens?: RateLimiter.LimitOptions | undefined
          }
        >
      >
    | undefined
}

/**
 * A routed Model: the Model's interface, and the Router under it (for its
 * snapshot, events and run-time changes).
 *
 * @since 0.1.0
 * @category models
 */
export interface RoutedModel extends ModelShape {
  readonly router: Router.RouterShape
  /** A provider's buckets as they stand now (read-only; none without limits, or for a name it does not know). */
  readonly state: (
    provider: string
  ) => Effect.Effect<ReadonlyArray<RateLimiterStore.BucketSnapshot>, RateLimiter.RateLimiterError>
}

/**
 * Builds a Model whose every call goes through a Router over the providers
 * (see {@link RoutedOptions}): the Router picks a provider per call, its
 * Executor reserves the call's tokens, and a failure falls back by what it
 * means — a 429 to another quota domain, a 5xx or timeout to another
 * provider (ejecting the failing one), a context too long to a provider with
 * a larger `contextWindow`, a content-policy refusal to the
 * `contentFilteredChain`. Errors are the Model's own, naming the provider
 * that failed last. Bad options fail with an `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRouted: (
  options: RoutedOptions
) => Effect.Effect<RoutedModel, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | Scope.Scope> =
  routed.makeRouted

/**
 * The routed Model (and its Router) over the `HttpClient` in context: one
 * client for every provider (`NodeHttpPool.layer` from `@sluice/http-node` on
 * Node, any platform's `HttpClient` elsewhere, an in-memory one in tests):
 *
 * ```ts
 * Model.layerRouted({
 *   strategy: "weightedRoundRobin",
 *   providers: [
 *     { endpoint: azureEast, domain: "org-a", contextWindow: 8_192 },
 *     { endpoint: openai, weight: 2, contextWindow: 128_000 }
 *   ],
 *   domains: { "org-a": { tokens: { limit: 90_000, interval: "1 minute" } } }
 * }).pipe(Layer.provide(NodeHttpPool.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRouted = (
  options: RoutedOptions
): Layer.Layer<Model | Router.Router, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient> =>
  Layer.scopedContext(
    Effect.map(makeRouted(options), ({ chat, complete, embed, router }) =>
      Context.make(Model, { chat, embed, complete }).pipe(Context.add(Router.Router, router))
    )
  )

// ---- testing ----------------------------------------------------------------

/**
 * What a test Model answers. A handler answers a body or an Effect (which
 * may fail with a Model error); a missing one answers {@link completion},
 * {@link embeddings} or {@link textCompletion}.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestHandlers {
  readonly chat?: ((request: ChatRequest) => ChatResponse | Effect.Effect<ChatResponse, ModelError>) | undefined
  readonly embed?: ((request: EmbedRequest) => EmbedResponse | Effect.Effect<EmbedResponse, ModelError>) | undefined
  readonly complete?:
    | ((request: CompletionRequest) => CompletionResponse | Effect.Effect<CompletionResponse, ModelError>)
    | undefined
}

/**
 * A Model that answers from `handlers`, in memory. Requests are validated
 * like the real Model's (an `InvalidRequest` naming the field), and an answer
 * whose every choice was filtered fails with `ContentFiltered`, so code
 * above it sees the same behaviour.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTest: (handlers?: TestHandlers) => ModelShape = testing.makeTest

/**
 * A Model that answers canned completions:
 *
 * ```ts
 * Model.layerTest({ chat: (request) => Model.completion(request, "42") })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (handlers?: TestHandlers): Layer.Layer<Model> => Layer.succeed(Model, makeTest(handlers))

/**
 * A canned chat answer to `request`: one choice holding `content`, with a
 * `usage` counted by the standard estimator.
 *
 * @since 0.1.0
 * @category constructors
 */
export const completion: (
  request: ChatRequest,
  content: string,
  options?: { readonly finishReason?: string | undefined; readonly usage?: ChatUsage | undefined }
) => ChatResponse = testing.completion

/**
 * Canned embeddings for `request`: one unit vector per input (`dimensions`
 * long, 8 by default), the same for the same input.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embeddings: (request: EmbedRequest) => EmbedResponse = testing.embeddings

/**
 * A canned `/completions` answer to `request`: one choice per prompt holding
 * `text`, with a `usage` counted by the standard estimator.
 *
 * @since 0.1.0
 * @category constructors
 */
export const textCompletion: (request: CompletionRequest, text: string) => CompletionResponse = testing.textCompletion
