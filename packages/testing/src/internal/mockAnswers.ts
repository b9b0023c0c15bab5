/**
 * The MockProvider's answers: pure functions from a decoded request to the
 * body it answers with (or, for `stream: true`, the server-sent events), its
 * token counts and what it costs on the token limit. Nothing here reads time,
 * randomness or I/O, so the same request always gets the same answer (the
 * `created` second of a chat answer is passed in).
 */
import * as Encoding from "effect/Encoding"
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
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(
    Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.NullOr(Schema.Boolean)) }))
  )
})
export type ChatRequest = typeof ChatRequest.Type

/** Token ids, as OpenAI's embeddings accept them in place of text. */
const TokenArray = Schema.NonEmptyArray(Schema.NonNegativeInt)

/**
 * The fields of an embeddings request the MockProvider reads. `input` is text,
 * token ids, or a list of either kind; `encoding_format` is `"float"` (the
 * default) or `"base64"` (what the official SDKs ask for).
 */
export const EmbeddingsRequest = Schema.Struct({
  model: Schema.String.pipe(Schema.minLength(1)),
  input: Schema.Union(Schema.String, Schema.NonEmptyArray(Schema.String), TokenArray, Schema.NonEmptyArray(TokenArray)),
  dimensions: Schema.optional(Schema.Int.pipe(Schema.between(1, 4096))),
  encoding_format: Schema.optional(Schema.NullOr(Schema.Literal("float", "base64")))
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
  /** The JSON body of the answer (for a streamed chat, the completion the events add up to). */
  readonly body: unknown
  /** For `stream: true`: the payload of each `data:` event, in order, before `data: [DONE]`. */
  readonly events?: ReadonlyArray<unknown> | undefined
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
 *
 * With `stream: true` the same completion is also given as OpenAI's
 * `chat.completion.chunk` events (see {@link chatChunks}).
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
  const text = words.join(" ") + (truncated ? "" : ".")
  const completion: Completion = {
    id: `chatcmpl-mock-${seed.toString(16).padStart(8, "0")}`,
    created: createdSeconds,
    model: request.model,
    content: text.charAt(0).toUpperCase() + text.slice(1),
    finishReason: truncated ? "length" : "stop",
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens
    }
  }
  return {
    model: request.model,
    promptTokens,
    completionTokens,
    chargedTokens: promptTokens + (maxTokens ?? completionTokens),
    body: {
      id: completion.id,
      object: "chat.completion",
      created: completion.created,
      model: completion.model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: completion.content },
          logprobs: null,
          finish_reason: completion.finishReason
        }
      ],
      usage: completion.usage
    },
    events: request.stream === true ? chatChunks(completion, request.stream_options?.include_usage === true) : undefined
  }
}

/** What a chat answer says, whichever way it is sent. */
interface Completion {
  readonly id: string
  readonly created: number
  readonly model: string
  readonly content: string
  readonly finishReason: "stop" | "length"
  readonly usage: {
    readonly prompt_tokens: number
    readonly completion_tokens: number
    readonly total_tokens: number
  }
}

/**
 * A completion as OpenAI streams it: a first chunk with the role, one chunk
 * per word (a token each; the words' contents join into the whole answer), a
 * chunk with the `finish_reason` and an empty delta, then, when `includeUsage`,
 * a chunk with no choices and the `usage` (every earlier chunk then carries
 * `usage: null`, as OpenAI's do).
 */
export const chatChunks = (completion: Completion, includeUsage: boolean): ReadonlyArray<unknown> => {
  const chunk = (choices: ReadonlyArray<unknown>, usage: Completion["usage"] | null = null) => ({
    id: completion.id,
    object: "chat.completion.chunk",
    created: completion.created,
    model: completion.model,
    system_fingerprint: null,
    choices,
    ...(includeUsage ? { usage } : {})
  })
  const choice = (delta: Record<string, string>, finishReason: string | null = null) => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: finishReason
  })
  const pieces = completion.content.split(" ").map((word, index) => (index === 0 ? word : ` ${word}`))
  return [
    chunk([choice({ role: "assistant", content: "" })]),
    ...pieces.map((piece) => chunk([choice({ content: piece })])),
    chunk([choice({}, completion.finishReason)]),
    ...(includeUsage ? [chunk([], completion.usage)] : [])
  ]
}

/** The events as a `text/event-stream` body: `data: <json>` each, then `data: [DONE]`. */
export const serverSentEvents = (events: ReadonlyArray<unknown>): ReadonlyArray<string> => [
  ...events.map((event) => `data: ${JSON.stringify(event)}\n\n`),
  "data: [DONE]\n\n"
]

type EmbeddingInput = string | ReadonlyArray<number>

const embeddingInputs = (input: EmbeddingsRequest["input"]): ReadonlyArray<EmbeddingInput> =>
  typeof input === "string" || typeof input[0] === "number"
    ? [input as EmbeddingInput]
    : (input as ReadonlyArray<EmbeddingInput>)

/** A vector as OpenAI's `encoding_format: "base64"` sends it: float32, little-endian, in base64. */
export const encodeFloat32Base64 = (vector: ReadonlyArray<number>): string => {
  const view = new DataView(new ArrayBuffer(vector.length * 4))
  for (let index = 0; index < vector.length; index++) view.setFloat32(index * 4, vector[index]!, true)
  return Encoding.encodeBase64(new Uint8Array(view.buffer))
}

/**
 * Unit-length vectors (`dimensions` long, 8 by default) seeded from the model
 * and each input. A text costs its estimated tokens, a token array its length;
 * `encoding_format: "base64"` sends each vector as float32 little-endian bytes
 * in base64.
 */
export const embeddingsAnswer = (request: EmbeddingsRequest): Answer => {
  const inputs = embeddingInputs(request.input)
  const dimensions = request.dimensions ?? DEFAULT_EMBEDDING_DIMENSIONS
  const promptTokens = inputs.reduce(
    (total, input) => total + (typeof input === "string" ? estimateTokens(input) : input.length),
    0
  )
  const data = inputs.map((input, index) => {
    // Text and token ids are seeded apart (\u0000 vs \u0001), so "[1,2]" and [1, 2] differ.
    const next = generator(
      hash(typeof input === "string" ? `${request.model}\u0000${input}` : `${request.model}\u0001${input.join(",")}`)
    )
    const raw = Array.from({ length: dimensions }, () => next() * 2 - 1)
    const norm = Math.sqrt(raw.reduce((total, x) => total + x * x, 0)) || 1
    const vector = raw.map((x) => x / norm)
    return {
      object: "embedding",
      index,
      embedding: request.encoding_format === "base64" ? encodeFloat32Base64(vector) : vector
    }
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

/** OpenAI's `max_tokens` of a `/v1/completions` request that names none. */
export const COMPLETION_DEFAULT_MAX_TOKENS = 16

/** The fields of a legacy completions request the MockProvider reads. `prompt` is text, token ids, or a list of either. */
export const CompletionRequest = Schema.Struct({
  model: Schema.String.pipe(Schema.minLength(1)),
  prompt: Schema.Union(
    Schema.String,
    Schema.NonEmptyArray(Schema.String),
    TokenArray,
    Schema.NonEmptyArray(TokenArray)
  ),
  max_tokens: Schema.optional(Schema.NullOr(MaxTokens)),
  n: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.between(1, 128)))),
  stream: Schema.optional(
    Schema.NullOr(Schema.Literal(false).annotations({ message: () => "stream: true is not served on /v1/completions" }))
  )
})
export type CompletionRequest = typeof CompletionRequest.Type

/**
 * A legacy text completion: `n` choices for each prompt (a text, token ids, or
 * a list of either), each 8 to 32 words seeded from the model, the prompt and
 * the choice's number, capped by `max_tokens` (16 when none is given, as
 * OpenAI's default; then `finish_reason` is `"length"`). The token limit is
 * charged the prompts plus `max_tokens` for every choice (as OpenAI reserves it).
 */
export const completionAnswer = (request: CompletionRequest, createdSeconds: number): Answer => {
  const prompts = embeddingInputs(request.prompt)
  const perChoice = request.n ?? 1
  const maxTokens = request.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS
  const promptTokens = prompts.reduce(
    (total, prompt) => total + (typeof prompt === "string" ? estimateTokens(prompt) : prompt.length),
    0
  )
  let completionTokens = 0
  const choices = prompts.flatMap((prompt, promptIndex) =>
    Array.from({ length: perChoice }, (_, choice) => {
      const seed = hash(
        `${request.model}\u0000${typeof prompt === "string" ? prompt : prompt.join(",")}\u0000${choice}`
      )
      const natural = MIN_COMPLETION_TOKENS + (seed % COMPLETION_TOKENS_SPREAD)
      const length = Math.min(natural, maxTokens)
      completionTokens += length
      const next = generator(seed)
      const words = Array.from({ length }, () => VOCABULARY[Math.floor(next() * VOCABULARY.length)] as string)
      return {
        index: promptIndex * perChoice + choice,
        text: ` ${words.join(" ")}${length < natural ? "" : "."}`,
        logprobs: null,
        finish_reason: length < natural ? "length" : "stop"
      }
    })
  )
  const id = `cmpl-mock-${hash(`${request.model}\u0000${JSON.stringify(request.prompt)}`)
    .toString(16)
    .padStart(8, "0")}`
  return {
    model: request.model,
    promptTokens,
    completionTokens,
    chargedTokens: promptTokens + maxTokens * perChoice * prompts.length,
    body: {
      id,
      object: "text_completion",
      created: createdSeconds,
      model: request.model,
      choices,
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens
      }
    }
  }
}

/** An OpenAI-style error body. */
export const errorBody = (message: string, type: string, code: string | null, param: string | null = null) => ({
  error: { message, type, param, code }
})
