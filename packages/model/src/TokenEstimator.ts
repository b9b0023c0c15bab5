/**
 * How many tokens a request may use, known before it is sent: the prompt,
 * and the most the answer may add. The Model reserves their sum on the
 * endpoint's token limit, then reconciles it with the `usage` the provider
 * reports, so an estimate only has to be good enough to pace calls, and had
 * better err high (an estimate that is too low lets a burst through before
 * the reconcile charges the rest).
 *
 * Effect has no tokenizer, and a real one (tiktoken and its vocabularies) is
 * megabytes and model-specific; this module adds a small, dependency-free
 * estimator that errs high on ordinary text, and the interface to plug in
 * any other (a real tokenizer, a provider's count-tokens endpoint):
 *
 * - text: ~4 ASCII characters a token (`charsPerToken`); any other character
 *   at half its UTF-8 bytes (a CJK character 1.5 tokens, an emoji 2), where
 *   real tokenizers spend more than on English;
 * - chat: per OpenAI's cookbook, 3 tokens a message, 1 more for a `name`,
 *   3 to prime the reply; tool calls, tool definitions and `response_format`
 *   counted as their JSON text; an image part a fixed `perImage` (765, a
 *   1024×1024 high-detail image);
 * - maximum output: `max_completion_tokens ?? max_tokens ?? defaultMaxOutput`
 *   (4,096), times `n` choices;
 * - embeddings: each input's text (at least 1 token), or the length of a
 *   pre-tokenized input; no output;
 * - completions (the legacy `/completions`): each prompt's text (at least 1
 *   token) or token ids, and a `suffix`; the maximum output is `max_tokens`
 *   (16 when none is named, OpenAI's default) for each of `best_of` (or `n`)
 *   completions of each prompt.
 *
 * A custom estimator is a plain object:
 *
 * ```ts
 * const estimator: TokenEstimator.TokenEstimator = {
 *   ...TokenEstimator.standard,
 *   chat: (request) => ({ prompt: countWithTiktoken(request.messages), maxOutput: request.max_tokens ?? 1_000 })
 * }
 * ```
 *
 * @since 0.1.0
 */
import type { InvalidOptions } from "@sluice/core"
import type * as Effect from "effect/Effect"
import * as internal from "./internal/tokenEstimator.js"
import type * as Wire from "./internal/wire.js"

/**
 * A request's tokens: its prompt, and the most its answer may use (0 for
 * embeddings). The Model reserves `prompt + maxOutput`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Estimate {
  readonly prompt: number
  readonly maxOutput: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TokenEstimator {
  readonly chat: (request: typeof Wire.ChatRequest.Type) => Estimate
  readonly embed: (request: typeof Wire.EmbedRequest.Type) => Estimate
  readonly complete: (request: typeof Wire.CompletionRequest.Type) => Estimate
}

/**
 * Settings of the standard estimator; every one has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** ASCII characters per token. Default 4. */
  readonly charsPerToken?: number | undefined
  /** Tokens added per chat message. Default 3. */
  readonly perMessage?: number | undefined
  /** Tokens added for a message's `name`. Default 1. */
  readonly perName?: number | undefined
  /** Tokens that prime the reply. Default 3. */
  readonly perReply?: number | undefined
  /** Tokens of an image part. Default 765. */
  readonly perImage?: number | undefined
  /** The maximum output assumed when a request names none. Default 4,096. */
  readonly defaultMaxOutput?: number | undefined
}

/**
 * The standard estimator with its default settings.
 *
 * @since 0.1.0
 * @category constructors
 */
export const standard: TokenEstimator = internal.fromSettings(internal.withDefaults())

/**
 * The standard estimator with other settings. Bad settings fail with an
 * `InvalidOptionsError` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<TokenEstimator, InvalidOptions.InvalidOptionsError> =
  internal.make

/**
 * What the Model reserves for an estimate: prompt plus maximum output.
 *
 * @since 0.1.0
 * @category utils
 */
export const total = (estimate: Estimate): number => estimate.prompt + estimate.maxOutput

/**
 * The standard estimate of one text: ~`charsPerToken` ASCII characters a
 * token, any other character half its UTF-8 bytes, rounded up.
 *
 * @since 0.1.0
 * @category utils
 */
export const textTokens: (text: string, charsPerToken?: number) => number = internal.textTokens
