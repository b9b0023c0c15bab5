/**
 * The in-memory Model: validation and the content-filter rule of the real
 * one, answers from handlers, and canned answers built from a request.
 */
import * as Effect from "effect/Effect"
import type * as Model from "../Model.js"
import * as TokenEstimator from "../TokenEstimator.js"
import { checkFiltered, validate } from "./model.js"
import { promptsOf } from "./tokenEstimator.js"
import * as Wire from "./wire.js"

const PROVIDER = "test"
const DEFAULT_CONTENT = "This is a canned completion."

type ChatRequest = typeof Wire.ChatRequest.Type
type EmbedRequest = typeof Wire.EmbedRequest.Type
type CompletionRequest = typeof Wire.CompletionRequest.Type

export const completion = (
  request: ChatRequest,
  content: string,
  options: { readonly finishReason?: string | undefined; readonly usage?: Model.ChatUsage | undefined } = {}
): Model.ChatResponse => {
  const prompt = TokenEstimator.standard.chat(request).prompt
  const completionTokens = TokenEstimator.textTokens(content)
  return {
    id: "chatcmpl-test",
    object: "chat.completion",
    created: 0,
    model: request.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content },
        finish_reason: options.finishReason ?? "stop"
      }
    ],
    usage: options.usage ?? {
      prompt_tokens: prompt,
      completion_tokens: completionTokens,
      total_tokens: prompt + completionTokens
    }
  }
}

export const textCompletion = (request: CompletionRequest, text: string): Model.CompletionResponse => {
  const prompts = promptsOf(request.prompt).length
  const prompt = TokenEstimator.standard.complete(request).prompt
  const completionTokens = TokenEstimator.textTokens(text) * prompts
  return {
    id: "cmpl-test",
    object: "text_completion",
    created: 0,
    model: request.model,
    choices: Array.from({ length: prompts }, (_, index) => ({ index, text, finish_reason: "stop" })),
    usage: { prompt_tokens: prompt, completion_tokens: completionTokens, total_tokens: prompt + completionTokens }
  }
}

/** FNV-1a over UTF-16 code units: a seed per input. */
const hash = (text: string) => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

const vectorOf = (seedText: string, dimensions: number) => {
  let state = hash(seedText)
  const raw = Array.from({ length: dimensions }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 4294967296 - 0.5
  })
  const norm = Math.sqrt(raw.reduce((total, x) => total + x * x, 0)) || 1
  return raw.map((x) => x / norm)
}

export const embeddings = (request: EmbedRequest): Model.EmbedResponse => {
  const input = request.input
  const items: ReadonlyArray<string> =
    typeof input === "string"
      ? [input]
      : typeof input[0] === "number"
        ? [JSON.stringify(input)]
        : input.map((item) => (typeof item === "string" ? item : JSON.stringify(item)))
  const dimensions = request.dimensions ?? 8
  const prompt = TokenEstimator.standard.embed(request).prompt
  return {
    object: "list",
    data: items.map((item, index) => ({
      object: "embedding",
      index,
      embedding: vectorOf(`${request.model}\u0000${item}`, dimensions)
    })),
    model: request.model,
    usage: { prompt_tokens: prompt, total_tokens: prompt }
  }
}

const answer = <A, E>(value: A | Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.isEffect(value) ? value : Effect.succeed(value)

export const makeTest = (handlers: Model.TestHandlers = {}): Model.ModelShape => {
  const chatHandler = handlers.chat ?? ((request: ChatRequest) => completion(request, DEFAULT_CONTENT))
  const embedHandler = handlers.embed ?? embeddings
  const validateChat = validate(Wire.ChatRequest, PROVIDER, "chat")
  const validateEmbed = validate(Wire.EmbedRequest, PROVIDER, "embed")
  const completeHandler =
    handlers.complete ?? ((request: CompletionRequest) => textCompletion(request, DEFAULT_CONTENT))
  const validateComplete = validate(Wire.CompletionRequest, PROVIDER, "complete")
  return {
    chat: (request) =>
      validateChat(request).pipe(
        Effect.flatMap((valid) => Effect.suspend(() => answer(chatHandler(valid)))),
        Effect.flatMap(checkFiltered(PROVIDER))
      ),
    embed: (request) =>
      validateEmbed(request).pipe(Effect.flatMap((valid) => Effect.suspend(() => answer(embedHandler(valid))))),
    complete: (request) =>
      validateComplete(request).pipe(Effect.flatMap((valid) => Effect.suspend(() => answer(completeHandler(valid)))))
  }
}
