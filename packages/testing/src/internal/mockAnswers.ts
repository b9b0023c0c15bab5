/**
 * The MockProvider's answers: pure functions from a decoded request to the
 * body it answers with, its token counts and what it costs on the token limit.
 * Nothing here reads time, randomness or I/O, so the same request always gets
 * the same answer (the `created` second of a chat answer is passed in).
 */
import * as Schema from "effect/Schema"

/**
 * ~4 characters per token, at least 1: the estimate the MockProvider counts
 * prompts (and embedding inputs) with.
 */
export const estimateTokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4))

/** FNV-1a, 32 bits, over UTF-16 code units. */
export const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** mulberry32: a tiny seeded generator of numbers in [0, 1), pure given its seed. */
const generator = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const VOCABULARY = [
  "the",
  "sluice",
  "gate",
  "holds",
  "water",
  "back",
  "until",
  "the",
  "level",
  "is",
  "right",
  "and",
  "then",
  "lets",
  "it",
  "through",
  "in",
  "measured",
  "steps",
  "while",
  "tokens",
  "flow",
  "at",
  "a",
  "steady",
  "rate",
  "per",
  "minute",
  "so",
  "nothing",
  "floods",
  "downstream"
] as const

/** Completion lengths run from 8 to 32 tokens (one token per word), before `max_tokens`. */
const MIN_COMPLETION_TOKENS = 8
const COMPLETION_TOKENS_SPREAD = 25

/** Default embedding size when the request names no `dimensions`. */
export const DEFAULT_EMBEDDING_DIMENSIONS = 8

const ContentPart = Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) })

const Message = Schema.Struct({
  role: Schema.String,
  content: Schema.optional(Schema.Union(Schema.String, Schema.Array(ContentPart), Schema.Null))
})

const MaxTokens = Schema.Int.pipe(Schema.positive())

/** The fields of a chat request the MockProvider reads; others are ignored, as OpenAI ignores unknown ones. */
export const ChatRequest = Schema.Struct({
  model: Schema.String.pipe(Schema.minLength(1)),
  messages: Schema.NonEmptyArray(Message),
  max_tokens: Schema.optional(Schema.NullOr(MaxTokens)),
  max_completion_tokens: Schema.optional(Schema.NullOr(MaxTokens)),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean))
})
export type ChatRequest = typeof ChatRequest.Type

/** The fields of an embeddings request the MockProvider reads. */
export const EmbeddingsRequest = Schema.Struct({
  model: Schema.String.pipe(Schema.minLength(1)),
  input: Schema.Union(Schema.String, Schema.NonEmptyArray(Schema.String)),
  dimensions: Schema.optional(Schema.Int.pipe(Schema.between(1, 4096)))
})
export type EmbeddingsRequest = typeof EmbeddingsRequest.Type

/** What one request will be answered with, and what it counts for. */
export interface Answer {
  readonly model: string
  readonly promptTokens: number
  /** Output tokens (0 for embeddings). */
  readonly completionTokens: number
  /** What the request costs on the token limit. */
  readonly chargedTokens: number
  readonly body: unknown
}

const messageText = (message: typeof Message.Type): string => {
  const content = message.content
  if (typeof content === "string") return content
  if (content === null || content === undefined) return ""
  return content.map((part) => part.text ?? "").join("")
}

/**
 * A chat completion: prompt tokens estimated from every message's text; the
 * answer's words picked by a generator seeded from the model and the last user
 * message (or every message when none is from the user); `max_tokens` (or
 * `max_completion_tokens`) caps the words, with `finish_reason: "length"`.
 * The token limit is charged the prompt plus `max_tokens` when given (as
 * OpenAI reserves it), else the prompt plus the actual completion.
 */
export const chatAnswer = (request: ChatRequest, createdSeconds: number): Answer => {
  const texts = request.messages.map(messageText)
  const promptTokens = Math.max(1, Math.ceil(texts.reduce((total, text) => total + text.length, 0) / 4))
  const lastUser = [...request.messages].reverse().find((message) => message.role === "user")
  const seedText = `${request.model}\u0000${lastUser === undefined ? texts.join("\u0000") : messageText(lastUser)}`
  const seed = hash(seedText)
  const natural = MIN_COMPLETION_TOKENS + (seed % COMPLETION_TOKENS_SPREAD)
  const maxTokens = request.max_completion_tokens ?? request.max_tokens ?? undefined
  const completionTokens = maxTokens === undefined ? natural : Math.min(natural, maxTokens)
  const next = generator(seed)
  const words = Array.from(
    { length: completionTokens },
    () => VOCABULARY[Math.floor(next() * VOCABULARY.length)] as string
  )
  const truncated = completionTokens < natural
  const content = words.join(" ") + (truncated ? "" : ".")
  return {
    model: request.model,
    promptTokens,
    completionTokens,
    chargedTokens: promptTokens + (maxTokens ?? completionTokens),
    body: {
      id: `chatcmpl-mock-${seed.toString(16).padStart(8, "0")}`,
      object: "chat.completion",
      created: createdSeconds,
      model: request.model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: content.charAt(0).toUpperCase() + content.slice(1) },
          logprobs: null,
          finish_reason: truncated ? "length" : "stop"
        }
      ],
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens
      }
    }
  }
}

/** Unit-length vectors (`dimensions` long, 8 by default) seeded from the model and each input. */
export const embeddingsAnswer = (request: EmbeddingsRequest): Answer => {
  const inputs: ReadonlyArray<string> = typeof request.input === "string" ? [request.input] : request.input
  const dimensions = request.dimensions ?? DEFAULT_EMBEDDING_DIMENSIONS
  const promptTokens = inputs.reduce((total, input) => total + estimateTokens(input), 0)
  const data = inputs.map((input, index) => {
    const next = generator(hash(`${request.model}\u0000${input}`))
    const raw = Array.from({ length: dimensions }, () => next() * 2 - 1)
    const norm = Math.sqrt(raw.reduce((total, x) => total + x * x, 0)) || 1
    return { object: "embedding", index, embedding: raw.map((x) => x / norm) }
  })
  return {
    model: request.model,
    promptTokens,
    completionTokens: 0,
    chargedTokens: promptTokens,
    body: {
      object: "list",
      data,
      model: request.model,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens }
    }
  }
}

/** An OpenAI-style error body. */
export const errorBody = (message: string, type: string, code: string | null, param: string | null = null) => ({
  error: { message, type, param, code }
})
