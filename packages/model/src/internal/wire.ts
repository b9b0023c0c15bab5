/**
 * The OpenAI-compatible wire format of `/chat/completions`, `/embeddings`
 * and the legacy `/completions` as Schemas. Only the fields Sluice reads, or that a caller commonly sets,
 * are named; every other field is kept by an index signature and passed
 * through untouched, both ways, so that a provider's extensions (and fields
 * OpenAI adds later) survive a round trip.
 */
import * as Schema from "effect/Schema"

/** Any further field, kept as it is. */
const Rest = Schema.Record({ key: Schema.String, value: Schema.Unknown })

const PositiveInt = Schema.Int.pipe(Schema.positive())
const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())
const TokenCount = Schema.Number.pipe(Schema.nonNegative())

export const ContentPart = Schema.Struct(
  {
    /** `"text"`, `"image_url"`, `"input_audio"`, `"file"`, ... */
    type: Schema.String,
    text: Schema.optional(Schema.String)
  },
  Rest
)

export const ToolCall = Schema.Struct(
  {
    id: Schema.String,
    type: Schema.String,
    function: Schema.optional(Schema.Struct({ name: Schema.String, arguments: Schema.String }, Rest))
  },
  Rest
)

export const Tool = Schema.Struct(
  {
    type: Schema.String,
    function: Schema.optional(
      Schema.Struct(
        {
          name: Schema.String,
          description: Schema.optional(Schema.String),
          parameters: Schema.optional(Schema.Unknown),
          strict: Schema.optional(Schema.NullOr(Schema.Boolean))
        },
        Rest
      )
    )
  },
  Rest
)

export const Message = Schema.Struct(
  {
    /** `"system"`, `"developer"`, `"user"`, `"assistant"`, `"tool"`. */
    role: Schema.String.pipe(Schema.minLength(1)),
    content: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Array(ContentPart)))),
    name: Schema.optional(Schema.String),
    tool_calls: Schema.optional(Schema.Array(ToolCall)),
    tool_call_id: Schema.optional(Schema.String)
  },
  Rest
)

export const ChatRequest = Schema.Struct(
  {
    model: Schema.String.pipe(Schema.minLength(1)),
    messages: Schema.NonEmptyArray(Message),
    max_tokens: Schema.optional(Schema.NullOr(PositiveInt)),
    max_completion_tokens: Schema.optional(Schema.NullOr(PositiveInt)),
    temperature: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.nonNegative()))),
    top_p: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.between(0, 1)))),
    /** How many choices to generate: each may use up to the maximum output. */
    n: Schema.optional(Schema.NullOr(PositiveInt)),
    stop: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Array(Schema.String)))),
    tools: Schema.optional(Schema.Array(Tool)),
    tool_choice: Schema.optional(Schema.Unknown),
    response_format: Schema.optional(Schema.Unknown),
    seed: Schema.optional(Schema.NullOr(Schema.Int)),
    user: Schema.optional(Schema.String),
    /** Streaming is not supported by `chat` (it answers one complete body). */
    stream: Schema.optional(
      Schema.NullOr(
        Schema.Literal(false).annotations({ message: () => "stream: true is not supported; chat answers one body" })
      )
    )
  },
  Rest
)

export const ChatUsage = Schema.Struct(
  {
    prompt_tokens: TokenCount,
    completion_tokens: TokenCount,
    total_tokens: TokenCount
  },
  Rest
)

export const ResponseMessage = Schema.Struct(
  {
    role: Schema.String,
    content: Schema.optional(Schema.NullOr(Schema.String)),
    refusal: Schema.optional(Schema.NullOr(Schema.String)),
    tool_calls: Schema.optional(Schema.Array(ToolCall))
  },
  Rest
)

export const Choice = Schema.Struct(
  {
    index: NonNegativeInt,
    message: ResponseMessage,
    /** `"stop"`, `"length"`, `"tool_calls"`, `"content_filter"`; null from some providers. */
    finish_reason: Schema.NullOr(Schema.String),
    logprobs: Schema.optional(Schema.Unknown)
  },
  Rest
)

export const ChatResponse = Schema.Struct(
  {
    id: Schema.String,
    object: Schema.optional(Schema.String),
    created: Schema.optional(Schema.Number),
    model: Schema.String,
    choices: Schema.Array(Choice),
    /** What the call used. OpenAI always sends it; a compatible server may not. */
    usage: Schema.optional(ChatUsage),
    system_fingerprint: Schema.optional(Schema.NullOr(Schema.String))
  },
  Rest
)

export const EmbedRequest = Schema.Struct(
  {
    model: Schema.String.pipe(Schema.minLength(1)),
    /** One text, several texts, or pre-tokenized input (token ids). */
    input: Schema.Union(
      Schema.String,
      Schema.NonEmptyArray(Schema.String),
      Schema.NonEmptyArray(NonNegativeInt),
      Schema.NonEmptyArray(Schema.NonEmptyArray(NonNegativeInt))
    ),
    dimensions: Schema.optional(PositiveInt),
    /** Only `"float"`: a base64 answer would not decode as numbers. */
    encoding_format: Schema.optional(Schema.Literal("float")),
    user: Schema.optional(Schema.String)
  },
  Rest
)

export const EmbedUsage = Schema.Struct({ prompt_tokens: TokenCount, total_tokens: TokenCount }, Rest)

export const Embedding = Schema.Struct(
  {
    object: Schema.optional(Schema.String),
    index: NonNegativeInt,
    embedding: Schema.Array(Schema.Number)
  },
  Rest
)

export const EmbedResponse = Schema.Struct(
  {
    object: Schema.optional(Schema.String),
    data: Schema.Array(Embedding),
    model: Schema.String,
    usage: Schema.optional(EmbedUsage)
  },
  Rest
)

/** A prompt of `/completions`: a text, texts, token ids, or lists of token ids. */
export const Prompt = Schema.Union(
  Schema.String,
  Schema.NonEmptyArray(Schema.String),
  Schema.NonEmptyArray(NonNegativeInt),
  Schema.NonEmptyArray(Schema.NonEmptyArray(NonNegativeInt))
)

export const CompletionRequest = Schema.Struct(
  {
    model: Schema.String.pipe(Schema.minLength(1)),
    prompt: Prompt,
    /** The most each completion may use; OpenAI's default is 16. */
    max_tokens: Schema.optional(Schema.NullOr(PositiveInt)),
    /** Completions per prompt returned. */
    n: Schema.optional(Schema.NullOr(PositiveInt)),
    /** Completions per prompt generated (the best `n` returned): each may use up to `max_tokens`. */
    best_of: Schema.optional(Schema.NullOr(PositiveInt)),
    temperature: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.nonNegative()))),
    stop: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Array(Schema.String)))),
    suffix: Schema.optional(Schema.NullOr(Schema.String)),
    user: Schema.optional(Schema.String),
    /** Streaming is not supported by `complete` (it answers one complete body). */
    stream: Schema.optional(
      Schema.NullOr(
        Schema.Literal(false).annotations({ message: () => "stream: true is not supported; complete answers one body" })
      )
    )
  },
  Rest
)

export const CompletionChoice = Schema.Struct(
  {
    index: NonNegativeInt,
    text: Schema.String,
    /** `"stop"`, `"length"`, `"content_filter"`; null from some providers. */
    finish_reason: Schema.NullOr(Schema.String),
    logprobs: Schema.optional(Schema.Unknown)
  },
  Rest
)

export const CompletionResponse = Schema.Struct(
  {
    id: Schema.String,
    object: Schema.optional(Schema.String),
    created: Schema.optional(Schema.Number),
    model: Schema.String,
    choices: Schema.Array(CompletionChoice),
    /** What the call used (`completion_tokens` over every choice). */
    usage: Schema.optional(ChatUsage),
    system_fingerprint: Schema.optional(Schema.NullOr(Schema.String))
  },
  Rest
)
