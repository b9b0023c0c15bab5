/**
 * The default token estimator's arithmetic: text at a fixed number of ASCII
 * characters per token plus every non-ASCII character at half its UTF-8 bytes
 * (so a CJK character counts 1.5 tokens, an emoji 2), and the per-message
 * overheads of OpenAI's cookbook. Every piece is rounded up on its own, so
 * the sum is never below what the whole text would count.
 */

import { InvalidOptions } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as TokenEstimator from "../TokenEstimator.js"
import type * as Wire from "./wire.js"

type ChatRequest = typeof Wire.ChatRequest.Type
type EmbedRequest = typeof Wire.EmbedRequest.Type
type CompletionRequest = typeof Wire.CompletionRequest.Type

/** OpenAI's `max_tokens` of a `/completions` request that names none. */
export const COMPLETION_DEFAULT_MAX_TOKENS = 16

/** The prompts of a `/completions` request: a string or a token list is one prompt, an array of either is several. */
export const promptsOf = (prompt: CompletionRequest["prompt"]): ReadonlyArray<string | ReadonlyArray<number>> =>
  typeof prompt === "string" || typeof prompt[0] === "number"
    ? [prompt as string | ReadonlyArray<number>]
    : (prompt as ReadonlyArray<string | ReadonlyArray<number>>)

/**
 * The most a `/completions` request may generate: `max_tokens` (16 when it names none, as OpenAI's default)
 * for each of the `best_of` (or `n`) completions of each prompt.
 */
export const completionMaxOutput = (request: {
  readonly prompt: CompletionRequest["prompt"]
  readonly max_tokens?: number | null | undefined
  readonly n?: number | null | undefined
  readonly best_of?: number | null | undefined
}): number =>
  (request.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS) *
  Math.max(request.n ?? 1, request.best_of ?? 1) *
  promptsOf(request.prompt).length

export const DEFAULTS = {
  charsPerToken: 4,
  perMessage: 3,
  perName: 1,
  perReply: 3,
  perImage: 765,
  defaultMaxOutput: 4_096
} as const

const OptionsSchema = Schema.Struct({
  charsPerToken: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveNumber)),
  perMessage: Schema.optional(Schema.UndefinedOr(Schema.NonNegative)),
  perName: Schema.optional(Schema.UndefinedOr(Schema.NonNegative)),
  perReply: Schema.optional(Schema.UndefinedOr(Schema.NonNegative)),
  perImage: Schema.optional(Schema.UndefinedOr(Schema.NonNegative)),
  defaultMaxOutput: Schema.optional(Schema.UndefinedOr(InvalidOptions.PositiveInt))
})

/** Tokens of one text: ASCII at `charsPerToken` a token, anything else at half its UTF-8 bytes. */
export const textTokens = (text: string, charsPerToken: number = DEFAULTS.charsPerToken): number => {
  let ascii = 0
  let otherBytes = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x80) ascii++
    else if (code < 0x800) otherBytes += 2
    else if (code >= 0xd800 && code <= 0xdbff) {
      // A surrogate pair: one code point of 4 UTF-8 bytes.
      otherBytes += 4
      i++
    } else otherBytes += 3
  }
  return Math.ceil(ascii / charsPerToken + otherBytes / 2)
}

const jsonTokens = (value: unknown, charsPerToken: number): number => {
  if (value === undefined || value === null) return 0
  try {
    return textTokens(typeof value === "string" ? value : (JSON.stringify(value) ?? ""), charsPerToken)
  } catch {
    return 0
  }
}

/** Every setting, given. */
export type Settings = { readonly [K in keyof TokenEstimator.Options]-?: number }

const IMAGE_PARTS = new Set(["image_url", "input_image", "image"])

export const fromSettings = (settings: Settings): TokenEstimator.TokenEstimator => {
  const { charsPerToken, perMessage, perName, perReply, perImage, defaultMaxOutput } = settings
  const text = (value: string) => textTokens(value, charsPerToken)

  const messageTokens = (message: ChatRequest["messages"][number]): number => {
    let total = perMessage + text(message.role)
    const content = message.content
    if (typeof content === "string") total += text(content)
    else if (content !== undefined && content !== null) {
      for (const part of content) {
        if (part.text !== undefined) total += text(part.text)
        else if (IMAGE_PARTS.has(part.type)) total += perImage
        else total += jsonTokens(part, charsPerToken)
      }
    }
    if (message.name !== undefined) total += perName + text(message.name)
    if (message.tool_calls !== undefined) total += jsonTokens(message.tool_calls, charsPerToken)
    if (message.tool_call_id !== undefined) total += text(message.tool_call_id)
    return total
  }

  return {
    chat: (request: ChatRequest) => {
      let prompt = perReply
      for (const message of request.messages) prompt += messageTokens(message)
      if (request.tools !== undefined) prompt += jsonTokens(request.tools, charsPerToken)
      if (request.response_format !== undefined) prompt += jsonTokens(request.response_format, charsPerToken)
      const perChoice = request.max_completion_tokens ?? request.max_tokens ?? defaultMaxOutput
      return { prompt: Math.ceil(prompt), maxOutput: perChoice * (request.n ?? 1) }
    },
    embed: (request: EmbedRequest) => {
      const input = request.input
      if (typeof input === "string") return { prompt: Math.max(1, text(input)), maxOutput: 0 }
      let prompt = 0
      for (const item of input) {
        if (typeof item === "string") prompt += Math.max(1, text(item))
        else if (typeof item === "number") prompt += 1
        else prompt += item.length
      }
      return { prompt, maxOutput: 0 }
    },
    complete: (request: CompletionRequest) => {
      let prompt = 0
      for (const item of promptsOf(request.prompt))
        prompt += typeof item === "string" ? Math.max(1, text(item)) : item.length
      if (request.suffix != null) prompt += text(request.suffix)
      return { prompt, maxOutput: completionMaxOutput(request) }
    }
  }
}

export const withDefaults = (options: TokenEstimator.Options = {}): Settings => ({
  charsPerToken: options.charsPerToken ?? DEFAULTS.charsPerToken,
  perMessage: options.perMessage ?? DEFAULTS.perMessage,
  perName: options.perName ?? DEFAULTS.perName,
  perReply: options.perReply ?? DEFAULTS.perReply,
  perImage: options.perImage ?? DEFAULTS.perImage,
  defaultMaxOutput: options.defaultMaxOutput ?? DEFAULTS.defaultMaxOutput
})

export const make = (
  options: TokenEstimator.Options = {}
): Effect.Effect<TokenEstimator.TokenEstimator, InvalidOptions.InvalidOptionsError> =>
  Effect.map(InvalidOptions.decode("TokenEstimator", OptionsSchema)(options), () => fromSettings(withDefaults(options)))
