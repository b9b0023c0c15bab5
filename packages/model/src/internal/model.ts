/**
 * The Model's machinery: validate the request, estimate its tokens, reserve
 * them on the endpoint's token limit, call through the ApiClient, reconcile
 * the reservation with the reported `usage`, and map the errors.
 *
 * Why the Model reserves the tokens itself: the ApiClient does not hand back
 * the reservation its Executor takes, and a limiter can only give tokens back
 * against a real reservation (its receipts say what has not refilled yet).
 * So the Model takes the tokens (and nothing else) from the endpoint's own
 * limiter, on the call's key, and asks the Executor for the rest of the cost
 * (`{ tokens: 0 }`: one request, on every retry). It then holds the one
 * reservation that `reconcile` needs.
 *
 * A request larger than the token bucket (a bucket kept small to pace a run)
 * is refused as too large, unless `maxRequestTokens` allows it: it then pays
 * in installments of the bucket's capacity, each taken in the limiter's line,
 * and holds every piece until it settles.
 *
 * What happens to the reservation:
 * - an answer with `usage`: reconciled to `usage.total_tokens` (the unused
 *   rest goes back; a larger use is charged);
 * - an answer without `usage`: the estimate stands;
 * - an error the provider answered (4xx, 429, 5xx), or a call refused before
 *   it was sent (queue full, breaker open, shutting down, bad header): given
 *   back whole;
 * - a timeout, a broken connection, an undecodable answer, or an interruption
 *   after the request was sent: the estimate stands (the provider may have
 *   done the work); interrupted before it was sent: given back whole.
 * "Sent" is known from the body: the ApiClient serializes it with
 * `JSON.stringify` just before sending, which calls the body's `toJSON`.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import { InvalidOptions, type RateLimiter } from "@sluice/core"
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
import { type CallContext, fromCallError, fromLimiterError } from "./errorMapping.js"
import { ModelError } from "./modelError.js"
import * as Wire from "./wire.js"

type ChatRequest = typeof Wire.ChatRequest.Type
type ChatResponse = typeof Wire.ChatResponse.Type
type EmbedRequest = typeof Wire.EmbedRequest.Type
type EmbedResponse = typeof Wire.EmbedResponse.Type

const DETAIL_LENGTH = 300

/** A call's hold on the token limit: one reservation, or its installments. */
type Reservations = ReadonlyArray<RateLimiter.Reservation>

type Restore = <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>

export const DEFAULT_TOKEN_LIMIT = "tokens"
export const DEFAULT_CHAT_PATH = "/chat/completions"
export const DEFAULT_EMBED_PATH = "/embeddings"

/** Which of the ApiClient's errors show the provider did no billable work: it answered, or nothing was sent. */
const NO_WORK_DONE: Record<ApiError.Reason, boolean> = {
  ClientError: true,
  RateLimited: true,
  ServerError: true,
  InvalidRequest: true,
  // The provider may have done the work.
  Timeout: false,
  Transport: false,
  Decode: false
}

/** Whether a failed call did no billable work (its tokens go back whole). */
const didNoWork = (error: ApiClient.CallError): boolean => {
  switch (error._tag) {
    case "ApiError":
      return NO_WORK_DONE[error.reason]
    case "ExecutorError":
      // A timed-out attempt may have been done; anything else was refused before it was sent.
      return error.reason !== "AttemptTimeout" && error.reason !== "Deadline"
    // Refused before anything was sent.
    case "CircuitOpenError":
    case "RateLimiterError":
    case "InvalidOptionsError":
    case "AuthFailed":
      return true
  }
}

const Path = Schema.String.pipe(
  Schema.filter((path) => path.startsWith("/") || 'Expected a path starting with "/"', { identifier: "Path" })
)

const OptionsSchema = Schema.Struct({
  tokenLimit: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyTrimmedString)),
  chatPath: Schema.optional(Schema.UndefinedOr(Path)),
  embedPath: Schema.optional(Schema.UndefinedOr(Path)),
  key: Schema.optional(Schema.UndefinedOr(Schema.NonEmptyString)),
  priority: Schema.optional(Schema.UndefinedOr(Schema.Finite)),
  timeout: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveDuration)),
  outputTokensCharged: Schema.optional(Schema.UndefinedOr(Schema.Literal("used", "maximum"))),
  maxRequestTokens: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveNumber)),
  estimator: Schema.optional(
    Schema.UndefinedOr(
      Schema.Struct({ chat: Schema.declare(isFunction), embed: Schema.declare(isFunction) }).annotations({
        message: () => "Expected a TokenEstimator: { chat: (request) => Estimate, embed: (request) => Estimate }"
      })
    )
  )
})

function isFunction(value: unknown): value is (...args: ReadonlyArray<never>) => unknown {
  return typeof value === "function"
}

const decodeOptions = InvalidOptions.decode("Model", OptionsSchema)

const invalidOption = (issues: string) => new InvalidOptions.InvalidOptionsError({ component: "Model", issues })

/** The call options out of the full options (an endpoint or a client is checked elsewhere). */
const callOptionsOf = (options: Model.CallOptions) => ({
  tokenLimit: options.tokenLimit,
  chatPath: options.chatPath,
  embedPath: options.embedPath,
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
  <A, I>(schema: Schema.Schema<A, I>, provider: string, operation: "chat" | "embed") =>
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

/** A chat request's cap on its output, when it names one: per choice, times its `n` choices. */
const maxOutputOf = (request: ChatRequest): number | undefined => {
  const perChoice = request.max_completion_tokens ?? request.max_tokens ?? undefined
  return perChoice === undefined ? undefined : perChoice * (request.n ?? 1)
}

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

export const fromClient = (
  client: ApiClient.ApiClientShape,
  options: Model.CallOptions = {}
): Effect.Effect<Model.ModelShape, InvalidOptions.InvalidOptionsError> =>
  Effect.gen(function* () {
    yield* decodeOptions(callOptionsOf(options))
    const provider = client.endpoint
    const estimator = options.estimator ?? TokenEstimator.standard
    const tokenLimit = options.tokenLimit ?? DEFAULT_TOKEN_LIMIT
    const limiter = client.limiter
    const accounting = limiter?.limitNames.includes(tokenLimit) === true
    if (options.tokenLimit !== undefined && !accounting) {
      return yield* invalidOption(
        `["tokenLimit"] The endpoint "${provider}" has no limit "${tokenLimit}" (its limits: ${
          limiter === undefined ? "none" : limiter.limitNames.map((name) => `"${name}"`).join(", ")
        })`
      )
    }
    const chatPath = options.chatPath ?? DEFAULT_CHAT_PATH
    const embedPath = options.embedPath ?? DEFAULT_EMBED_PATH
    const keyOptions = { key: options.key }
    // The Executor charges the request (every retry too), the Model the tokens.
    const executorCost: RateLimiter.Cost | undefined = accounting ? { [tokenLimit]: 0 } : undefined

    const tokensOnly = (limits: RateLimiter.RateLimiterShape, tokens: number): RateLimiter.Cost =>
      Object.fromEntries(limits.limitNames.map((name) => [name, name === tokenLimit ? tokens : 0]))

    const acquireTokens = (restore: Restore, tokens: number) =>
      restore(limiter!.acquire(tokensOnly(limiter!, tokens), keyOptions))

    /**
     * Takes `total` in pieces of at most `capacity`, one after the other in
     * the limiter's line: a request larger than the bucket pays as the
     * bucket refills. Interrupted or failed part-way, the pieces taken go back.
     */
    const payInInstallments = (
      restore: Restore,
      total: number,
      capacity: number
    ): Effect.Effect<Reservations, RateLimiter.RateLimiterError> =>
      Effect.suspend(() => {
        const pieces: Array<RateLimiter.Reservation> = []
        const next = (left: number): Effect.Effect<Reservations, RateLimiter.RateLimiterError> =>
          left <= 0
            ? Effect.succeed(pieces)
            : Effect.flatMap(acquireTokens(restore, Math.min(left, capacity)), (piece) => {
                pieces.push(piece)
                return next(left - Math.min(left, capacity))
              })
        return next(total).pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : refundAll(pieces))))
      })

    /**
     * Takes the estimate from the token limit. A request that names no
     * maximum output and so could never fit is reserved at the limit's
     * capacity instead (the provider would not count the default either);
     * a larger one pays in installments when `maxRequestTokens` allows it.
     */
    const reserve = (
      restore: Restore,
      estimate: TokenEstimator.Estimate,
      explicitMaximum: boolean,
      context: CallContext
    ): Effect.Effect<Reservations, ModelError> => {
      if (!accounting || limiter === undefined) return Effect.succeed([])
      const total = TokenEstimator.total(estimate)
      const maxRequestTokens = options.maxRequestTokens
      return Effect.map(acquireTokens(restore, total), (reservation): Reservations => [reservation]).pipe(
        Effect.catchIf(
          (error) =>
            error.reason === "CostExceedsCapacity" &&
            !explicitMaximum &&
            error.capacity !== undefined &&
            estimate.prompt <= error.capacity,
          (error) => Effect.map(acquireTokens(restore, error.capacity!), (reservation): Reservations => [reservation])
        ),
        Effect.catchIf(
          (error) =>
            error.reason === "CostExceedsCapacity" &&
            error.capacity !== undefined &&
            maxRequestTokens !== undefined &&
            total <= maxRequestTokens,
          (error) => payInInstallments(restore, total, error.capacity!)
        ),
        Effect.mapError((error) => {
          const mapped = fromLimiterError(error, context)
          return mapped.reason === "InvalidRequest" && mapped.kind === "TooLarge"
            ? ModelError.invalidRequest({
                ...who(context),
                kind: "TooLarge",
                detail: `an estimated ${total} tokens (prompt ${estimate.prompt} + output ${estimate.maxOutput}) exceed ${
                  maxRequestTokens !== undefined && total > maxRequestTokens
                    ? `maxRequestTokens ${maxRequestTokens}`
                    : `the capacity ${error.capacity} of the "${tokenLimit}" limit`
                }`,
                cause: error
              })
            : mapped
        })
      )
    }

    const refundAll = (reservations: Reservations) =>
      Effect.forEach(reservations, (reservation) => Effect.ignore(limiter!.refund(reservation)), { discard: true })

    /** Reconciles the pieces to `used` in all: each keeps up to its own cost, the last takes any excess. */
    const reconcileAll = (reservations: Reservations, used: number) =>
      Effect.suspend(() => {
        let left = used
        return Effect.forEach(
          reservations,
          (reservation, i) => {
            const share = i === reservations.length - 1 ? left : Math.min(left, reservation.costs[tokenLimit] ?? 0)
            left -= share
            return Effect.ignore(limiter!.reconcile(reservation, { [tokenLimit]: share }))
          },
          { discard: true }
        )
      })

    const settle = <A>(
      reservations: Reservations,
      exit: Exit.Exit<A, ApiClient.CallError>,
      sent: boolean,
      usedTokens: (answer: A) => number | undefined
    ): Effect.Effect<void> => {
      if (reservations.length === 0 || limiter === undefined) return Effect.void
      if (Exit.isSuccess(exit)) {
        const used = usedTokens(exit.value)
        return used === undefined || !Number.isFinite(used) || used < 0 ? Effect.void : reconcileAll(reservations, used)
      }
      const failure = Cause.failureOption(exit.cause)
      const giveBack = !sent || (Option.isSome(failure) && didNoWork(failure.value))
      return giveBack ? refundAll(reservations) : Effect.void
    }

    const call = <A, I>(
      context: CallContext,
      path: string,
      body: unknown,
      schema: Schema.Schema<A, I>,
      estimate: TokenEstimator.Estimate,
      explicitMaximum: boolean,
      usedTokens: (answer: A) => number | undefined
    ): Effect.Effect<A, ModelError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(reserve(restore, estimate, explicitMaximum, context), (reservations) => {
          let sent = false
          const marked = {
            toJSON: () => {
              sent = true
              return body
            }
          }
          return restore(
            client.post(path, {
              schema,
              body: marked,
              cost: executorCost,
              priority: options.priority,
              key: options.key,
              timeout: options.timeout
            })
          ).pipe(
            Effect.onExit((exit) => settle(reservations, exit, sent, usedTokens)),
            Effect.mapError((error) => fromCallError(error, context))
          )
        })
      )

    /** What the provider counted for a chat answer (see `outputTokensCharged`). */
    const chargedChatTokens = (response: ChatResponse, maxOutput: number | undefined): number | undefined => {
      const usage = response.usage
      if (usage == null) return undefined
      if (options.outputTokensCharged === "maximum" && maxOutput !== undefined && usage.prompt_tokens != null) {
        return usage.prompt_tokens + maxOutput
      }
      return usage.total_tokens
    }

    const validateChat = validate(Wire.ChatRequest, provider, "chat")
    const validateEmbed = validate(Wire.EmbedRequest, provider, "embed")
    const filtered = checkFiltered(provider)

    const chat = (request: ChatRequest): Effect.Effect<ChatResponse, ModelError> =>
      Effect.flatMap(validateChat(request), (valid) => {
        const context: CallContext = { provider, model: valid.model, operation: "chat" }
        return Effect.flatMap(runEstimator(estimator.chat, valid, context), (estimate) =>
          call(
            { ...context, estimatedPromptTokens: estimate.prompt },
            chatPath,
            valid,
            Wire.ChatResponse,
            estimate,
            valid.max_tokens != null || valid.max_completion_tokens != null,
            (response) => chargedChatTokens(response, maxOutputOf(valid))
          ).pipe(Effect.flatMap(filtered))
        )
      })

    const embed = (request: EmbedRequest): Effect.Effect<EmbedResponse, ModelError> =>
      Effect.flatMap(validateEmbed(request), (valid) => {
        const context: CallContext = { provider, model: valid.model, operation: "embed" }
        return Effect.flatMap(runEstimator(estimator.embed, valid, context), (estimate) =>
          call(
            { ...context, estimatedPromptTokens: estimate.prompt },
            embedPath,
            valid,
            Wire.EmbedResponse,
            estimate,
            true,
            (response) => response.usage?.total_tokens ?? response.usage?.prompt_tokens
          )
        )
      })

    return { chat, embed } satisfies Model.ModelShape
  })
