/** Answers as an OpenAI-compatible server gives them, for the tests that play the server. */

/** A chat completion as an OpenAI-compatible server answers it. */
export const CHAT_ANSWER = {
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 0,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 }
}
