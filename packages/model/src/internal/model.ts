/**
 * The Model's machinery: validate the request, estimate its tokens, and post
 * it through the ApiClient with its whole cost (`{ tokens: estimate }`: one
 * request and the estimate, admitted together by the endpoint's Executor for
 * each attempt) and how each attempt settles it; then map the errors. The
 * Model makes no limiter calls of its own: the Executor owns admission.
 *
 * A request larger than the token bucket (a bucket kept small to pace a run)
 * is refused as too large, unless `maxRequestTokens` allows it: it then pays
 * in installments of the bucket's capacity (the Executor's `installments`).
 *
 * How an attempt's tokens settle:
 * - an answer with `usage`: reconciled to what it used (see
 *   `outputTokensCharged`; the unused rest goes back, a larger use is charged);
 * - an answer without `usage`: the estimate stands;
 * - an error the provider answered (4xx, 429, 5xx), a request refused before
 *   it was sent (bad header, no credentials): given back whole;
 * - a timeout, a broken connection, an undecodable answer, or an interruption
 *   once the attempt began: the estimate stands (the provider may have done
 *   the work). An attempt that never began is refunded by the Executor.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import { Executor, InvalidOptions } from "@sluice/core"
import { ApiClient, type ApiError } from "@sluice/http"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Model from "../Model.js"
import * as TokenEstimator from "../TokenEstimator.js"
import { type CallContext, fromCallError } from "./errorMapping.js"
import { ModelError } from "./modelError.js"
import * as TokenEstimatorInternal from "./tokenEstimator.js"
import * as Wire from "./wire.js"

type ChatRequest = typeof Wire.ChatRequest.Type
type ChatResponse = typeof Wire.ChatResponse.Type
type EmbedRequest = typeof Wire.EmbedRequest.Type
type EmbedResponse = typeof Wire.EmbedResponse.Type
type CompletionRequest = typeof Wire.CompletionRequest.Type
type CompletionResponse = typeof Wire.CompletionResponse.Type

const DETAIL_LENGTH = 300

/** What a call asks the Executor to admit on the token limit. */
interface Admission {
  readonly tokens: number
  readonly installments: boolean
}

export const DEFAULT_TOKEN_LIMIT = "tokens"
export const DEFAULT_CHAT_PATH = "/chat/completions"
export const DEFAULT_EMBED_PATH = "/embeddings"
export const DEFAULT_COMPLETE_PATH = "/completions"

/**
 * What a failed attempt did, by the ApiClient's error: `Unsent` (nothing
 * reached the provider: the whole reservation goes back), `Answered` (the
 * provider refused it: it counted the request but no tokens), or `MayHaveWorked`
 * (the provider may have done the work: the estimate stands).
 */
const FAILED_ATTEMPT: Record<ApiError.Reason, "Unsent" | "Answered" | "MayHaveWorked"> = {
  InvalidRequest: "Unsent",
  ClientError: "Answered",
  RateLimited: "Answered",
  ServerError: "Answered",
  Timeout: "MayHaveWorked",
  Transport: "MayHaveWorked",
  Decode: "MayHaveWorked",
  ResponseTooLarge: "MayHaveWorked"
}

const Path = Schema.String.pipe(
  Schema.filter((path) => path.startsWith("/") || 'Expected a path starting with "/"', { identifier: "Path" })
)

const OptionsSchema = Schema.Struct({
  tokenLimit: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyTrimmedString)),
  chatPath: Schema.optional(Schema.UndefinedOr(Path)),
  embedPath: Schema.optional(Schema.UndefinedOr(Path)),
  completePath: Schema.optional(Schema.UndefinedOr(Path)),
  key: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyString)),
  priority: Schema.optional(Schema.UndefinedOr(Schema.Finite)),
  timeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  outputTokensCharged: Schema.optional(Schema.UndefinedOr(Schema.Literal("used", "maximum"))),
  maxRequestTokens: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveNumber)),
  estimator: Schema.optional(
    Schema.UndefinedOr(
      Schema.Struct({
        chat: Schema.declare(isFunction),
        embed: Schema.declare(isFunction),
        complete: Schema.declare(isFunction)
      }).annotations({
        message: () =>
          "Expected a TokenEstimator: { chat: (request) => Estimate, embed: (request) => Estimate, complete: (request) => Estimate }"
      })
    )
  )
})

function isFunction(value: unknown): value is (...args: ReadonlyArray<never>) => unknown {
  return typeof value === "function"
}

export const decodeOptions = InvalidOptions.decode("Model", OptionsSchema)

const invalidOption = (issues: string) => new InvalidOptions.InvalidOptionsError({ component: "Model", issues })

/** The call options out of the full options (an endpoint or a client is checked elsewhere). */
export const callOptionsOf = (options: Model.CallOptions) => ({
  tokenLimit: options.tokenLimit,
  chatPath: options.chatPath,
  embedPath: options.embedPath,
  completePath: options.completePath,
  key: options.key,
  priority: options.priority,
  timeout: options.timeout,
  outputTokensCharged: options.outputTokensCharged,
  maxRequestTokens: options.maxRequestTokens,
  estimator: options.estimator
})

export const make = (
  options: Model.Options
): Effect.Effect<Model.ModelShape, InvalidOptions.InvalidOptionsError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    if ("client" in options && options.client !== undefined) return yield* fromClient(options.client, options)
    if (!("endpoint" in options) || options.endpoint === undefined) {
      return yield* invalidOption(`["endpoint"] Expected an EndpointConfig, or a client`)
    }
    yield* decodeOptions(callOptionsOf(options))
    const client = yield* ApiClient.make(options.endpoint, options.clientOptions)
    return yield* fromClient(client, options)
  })

const formatIssues = (error: ParseResult.ParseError) =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => `${issue.path.length > 0 ? JSON.stringify(issue.path) : "(root)"} ${issue.message}`)
    .join("; ")
    .slice(0, DETAIL_LENGTH)

/** The fields every Model error names. */
const who = (context: CallContext) => ({
  provider: context.provider,
  model: context.model,
  operation: context.operation
})

const modelOf = (request: unknown) => {
  const model = (request as { model?: unknown } | null | undefined)?.model
  return typeof model === "string" && model !== "" ? model : "(none)"
}

/** Validates a request before anything is reserved or sent. */
export const validate =
  <A, I>(schema: Schema.Schema<A, I>, provider: string, operation: "chat" | "embed" | "complete") =>
  (request: unknown): Effect.Effect<A, ModelError> =>
    Schema.decodeUnknown(schema, { errors: "all" })(request).pipe(
      Effect.mapError((error) =>
        ModelError.invalidRequest({
          provider,
          model: modelOf(request),
          operation,
          kind: "Invalid",
          detail: formatIssues(error)
        })
      )
    )

/** An answer whose every choice the content filter stopped is no answer. */
export const checkFiltered = (provider: string) => (response: ChatResponse) =>
  response.choices.length > 0 && response.choices.every((choice) => choice.finish_reason === "content_filter")
    ? Effect.fail(
        ModelError.contentFiltered({
          provider,
          model: response.model,
          operation: "chat",
          source: "response",
          detail: 'finish_reason "content_filter"',
          response
        })
      )
    : Effect.succeed(response)

/** The fields of a chat request that cap its output. */
export interface OutputCap {
  readonly max_tokens?: number | null | undefined
  readonly max_completion_tokens?: number | null | undefined
  readonly n?: number | null | undefined
}

/** A chat request's cap on its output, when it names one: per choice, times its `n` choices. */
const maxOutputOf = (request: OutputCap): number | undefined => {
  const perChoice = request.max_completion_tokens ?? request.max_tokens ?? undefined
  return perChoice === undefined ? undefined : perChoice * (request.n ?? 1)
}

/** What an answer's `usage` says was used. */
type Usage =
  | { readonly prompt_tokens?: number | null | undefined; readonly total_tokens?: number | null | undefined }
  | null
  | undefined

/**
 * What the provider counted, given the most the request may generate: with
 * `outputTokensCharged: "maximum"`, the prompt plus that most; otherwise the
 * total used. Undefined without `usage`.
 */
const chargedTokens = (
  maxOutput: number | undefined,
  usage: Usage,
  outputTokensCharged: "used" | "maximum" | undefined
): number | undefined => {
  if (usage == null) return undefined
  if (outputTokensCharged === "maximum" && maxOutput !== undefined && usage.prompt_tokens != null) {
    return usage.prompt_tokens + maxOutput
  }
  return usage.total_tokens ?? undefined
}

/** What the provider counted for a chat answer (see `outputTokensCharged`); undefined without `usage`. */
export const chargedChatTokens = (
  request: OutputCap,
  usage: Usage,
  outputTokensCharged: "used" | "maximum" | undefined
): number | undefined => chargedTokens(maxOutputOf(request), usage, outputTokensCharged)

/**
 * What the provider counted for a `/completions` answer: with
 * `outputTokensCharged: "maximum"`, the prompt plus the most the request may
 * generate (`max_tokens`, 16 by default, per completion of each prompt);
 * otherwise the total used. Undefined without `usage`.
 */
export const chargedCompletionTokens = (
  request: CompletionRequest,
  usage: Usage,
  outputTokensCharged: "used" | "maximum" | undefined
): number | undefined => chargedTokens(TokenEstimatorInternal.completionMaxOutput(request), usage, outputTokensCharged)

/** Runs the estimator, refusing an answer that is not a count of tokens. */
const runEstimator = <R>(
  estimate: (request: R) => TokenEstimator.Estimate,
  request: R,
  context: CallContext
): Effect.Effect<TokenEstimator.Estimate, ModelError> =>
  Effect.suspend(() => {
    const fail = (detail: string) =>
      Effect.fail(ModelError.invalidRequest({ ...who(context), kind: "Invalid", detail }))
    let answer: TokenEstimator.Estimate
    try {
      answer = estimate(request)
    } catch (error) {
      return fail(`the token estimator failed: ${error instanceof Error ? error.message : String(error)}`)
    }
    const valid = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n) && n >= 0
    if (!valid(answer?.prompt) || !valid(answer?.maxOutput)) {
      return fail(`the token estimator answered ${String(answer?.prompt)} + ${String(answer?.maxOutput)}`)
    }
    return Effect.succeed({ prompt: Math.ceil(answer.prompt), maxOutput: Math.ceil(answer.maxOutput) })
  })

/**
 * How an attempt's tokens are settled: reconciled to what the answer
 * reports it used (the estimate stands without `usage`); the tokens given
 * back when the provider answered with an error (the request stays spent);
 * everything given back when nothing was sent; kept otherwise (the
 * provider may have done the work, as for an answer the content filter
 * withheld).
 */
export const settlementOf =
  (tokenLimit: string) =>
  <A>(usedTokens: (answer: A) => number | undefined) =>
  (exit: Exit.Exit<A, ApiClient.CallError | ModelError>): Executor.Settlement => {
    if (Exit.isSuccess(exit)) {
      const used = usedTokens(exit.value)
      return used === undefined || !Number.isFinite(used) || used < 0
        ? Executor.Settlement.keep
        : Executor.Settlement.reconcile({ [tokenLimit]: used })
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isNone(failure)) return Executor.Settlement.keep
    const error = failure.value
    // Credentials that could not be had: nothing was sent. Any other error (a filtered answer): the estimate stands.
    const verdict =
      error._tag === "AuthFailed"
        ? "Unsent"
        : error._tag === "ApiError"
          ? FAILED_ATTEMPT[error.reason]
          : "MayHaveWorked"
    return verdict === "Unsent"
      ? Executor.Settlement.refund
      : verdict === "Answered"
        ? Executor.Settlement.reconcile({ [tokenLimit]: 0 })
        : Executor.Settlement.keep
  }

/** One call, validated and estimated, for a transport to send. */
export interface Call<A, I> {
  readonly context: CallContext
  readonly path: string
  readonly body: unknown
  readonly schema: Schema.Schema<A, I>
  readonly estimate: TokenEstimator.Estimate
  /** The request names its maximum output (the estimate's output is not the estimator's default). */
  readonly explicitMaximum: boolean
  readonly usedTokens: (answer: A) => number | undefined
  /** Checks an answer where the provider that gave it is known (chat: every choice filtered is a failure). */
  readonly check?: ((provider: string) => (answer: A) => Effect.Effect<A, ModelError>) | undefined
}

/** How a Model sends its calls: through one ApiClient (`fromClient`), or a Router over several (`modelRouter.ts`). */
export type Send = <A, I>(call: Call<A, I>) => Effect.Effect<A, ModelError>

/**
 * The operations over a way to send: validate the request (errors name
 * `provider`), estimate its tokens, send it.
 */
export const shapeOf = (provider: string, options: Model.CallOptions, send: Send): Model.ModelShape => {
  const estimator = options.estimator ?? TokenEstimator.standard
  const chatPath = options.chatPath ?? DEFAULT_CHAT_PATH
  const embedPath = options.embedPath ?? DEFAULT_EMBED_PATH
  const completePath = options.completePath ?? DEFAULT_COMPLETE_PATH
  const validateChat = validate(Wire.ChatRequest, provider, "chat")
  const validateEmbed = validate(Wire.EmbedRequest, provider, "embed")
  const validateComplete = validate(Wire.CompletionRequest, provider, "complete")

  const chat = (request: ChatRequest): Effect.Effect<ChatResponse, ModelError> =>
    Effect.flatMap(validateChat(request), (valid) => {
      const context: CallContext = { provider, model: valid.model, operation: "chat" }
      return Effect.flatMap(runEstimator(estimator.chat, valid, context), (estimate) =>
        send({
          context: { ...context, estimatedPromptTokens: estimate.prompt },
          path: chatPath,
          body: valid,
          schema: Wire.ChatResponse,
          estimate,
          explicitMaximum: valid.max_tokens != null || valid.max_completion_tokens != null,
          usedTokens: (response) => chargedChatTokens(valid, response.usage, options.outputTokensCharged),
          check: checkFiltered
        })
      )
    })

  const embed = (request: EmbedRequest): Effect.Effect<EmbedResponse, ModelError> =>
    Effect.flatMap(validateEmbed(request), (valid) => {
      const context: CallContext = { provider, model: valid.model, operation: "embed" }
      return Effect.flatMap(runEstimator(estimator.embed, valid, context), (estimate) =>
        send({
          context: { ...context, estimatedPromptTokens: estimate.prompt },
          path: embedPath,
          body: valid,
          schema: Wire.EmbedResponse,
          estimate,
          explicitMaximum: true,
          usedTokens: (response) => response.usage?.total_tokens ?? response.usage?.prompt_tokens
        })
      )
    })

  const complete = (request: CompletionRequest): Effect.Effect<CompletionResponse, ModelError> =>
    Effect.flatMap(validateComplete(request), (valid) => {
      const context: CallContext = { provider, model: valid.model, operation: "complete" }
      return Effect.flatMap(runEstimator(estimator.complete, valid, context), (estimate) =>
        send({
          context: { ...context, estimatedPromptTokens: estimate.prompt },
          path: completePath,
          body: valid,
          schema: Wire.CompletionResponse,
          estimate,
          // OpenAI's default maximum (16) is a maximum too: such a request always fits as estimated.
          explicitMaximum: true,
          usedTokens: (response) => chargedCompletionTokens(valid, response.usage, options.outputTokensCharged)
        })
      )
    })

  return { chat, embed, complete }
}

export const fromClient = (
  client: ApiClient.ApiClientShape,
  options: Model.CallOptions = {}
): Effect.Effect<Model.ModelShape, InvalidOptions.InvalidOptionsError> =>
  Effect.gen(function* () {
    yield* decodeOptions(callOptionsOf(options))
    const provider = client.endpoint
    const tokenLimit = options.tokenLimit ?? DEFAULT_TOKEN_LIMIT
    const accounting = client.limitNames.includes(tokenLimit)
    if (options.tokenLimit !== undefined && !accounting) {
      return yield* invalidOption(
        `["tokenLimit"] The endpoint "${provider}" has no limit "${tokenLimit}" (its limits: ${
          client.limitNames.length === 0 ? "none" : client.limitNames.map((name) => `"${name}"`).join(", ")
        })`
      )
    }

    /** The token limit's capacity, read once (a limit's capacity is configuration; it does not change). */
    let capacity: number | undefined
    const capacityOf: Effect.Effect<number | undefined> = Effect.suspend(() =>
      capacity !== undefined || !accounting
        ? Effect.succeed(capacity)
        : client.state({ key: options.key }).pipe(
            Effect.map((buckets) => {
              capacity = buckets.find((bucket) => bucket.name === tokenLimit)?.capacity
              return capacity
            }),
            Effect.orElseSucceed(() => undefined)
          )
    )

    /**
     * What the call costs on the token limit, and whether it pays in
     * installments. A request that names no maximum output and so could never
     * fit is charged the limit's capacity instead (the provider would not count
     * the default either); a larger one pays in installments when
     * `maxRequestTokens` allows it; any other is refused as too large.
     */
    const admissionOf = (
      estimate: TokenEstimator.Estimate,
      explicitMaximum: boolean,
      context: CallContext
    ): Effect.Effect<Admission | undefined, ModelError> => {
      if (!accounting) return Effect.succeed(undefined)
      const total = TokenEstimator.total(estimate)
      const maxRequestTokens = options.maxRequestTokens
      return Effect.flatMap(capacityOf, (capacity): Effect.Effect<Admission, ModelError> => {
        if (capacity === undefined || total <= capacity) return Effect.succeed({ tokens: total, installments: false })
        if (!explicitMaximum && estimate.prompt <= capacity) {
          return Effect.succeed({ tokens: capacity, installments: false })
        }
        if (maxRequestTokens !== undefined && total <= maxRequestTokens) {
          return Effect.succeed({ tokens: total, installments: true })
        }
        return Effect.fail(
          ModelError.invalidRequest({
            ...who(context),
            kind: "TooLarge",
            detail: `an estimated ${total} tokens (prompt ${estimate.prompt} + output ${estimate.maxOutput}) exceed ${
              maxRequestTokens !== undefined && total > maxRequestTokens
                ? `maxRequestTokens ${maxRequestTokens}`
                : `the capacity ${capacity} of the "${tokenLimit}" limit`
            }`
          })
        )
      })
    }

    const settlement = settlementOf(tokenLimit)

    const send: Send = (call) =>
      Effect.flatMap(admissionOf(call.estimate, call.explicitMaximum, call.context), (admission) => {
        const sent = client
          .post(call.path, {
            schema: call.schema,
            body: call.body,
            ...(admission === undefined
              ? {}
              : {
                  cost: { [tokenLimit]: admission.tokens },
                  installments: admission.installments,
                  settle: settlement(call.usedTokens)
                }),
            priority: options.priority,
            key: options.key,
            timeout: options.timeout
          })
          .pipe(Effect.mapError((error) => fromCallError(error, call.context)))
        return call.check === undefined ? sent : Effect.flatMap(sent, call.check(provider))
      })

    return shapeOf(provider, options, send)
  })
