/**
 * One input line of an OpenAI batch file, parsed and checked: a JSON object
 * with a non-empty string `custom_id`, `method` `"POST"`, a `url` naming one
 * of the Batch API's endpoints (`/v1/chat/completions`, `/v1/embeddings`,
 * `/v1/completions`) and an object `body`. A refusal says why in words that
 * never quote the line itself (it may hold anything, secrets included).
 */
import type { BatchLine } from "../Runner.js"

/** Why a line was refused. */
export type Verdict =
  | { readonly _tag: "Line"; readonly line: BatchLine }
  | { readonly _tag: "Malformed"; readonly reason: string; readonly customId?: string | undefined }

const MAX_CUSTOM_ID_LENGTH = 512

/** The `url`s a line may name: the endpoints of OpenAI's Batch API. */
export const ENDPOINTS = ["/v1/chat/completions", "/v1/embeddings", "/v1/completions"] as const

export type Endpoint = (typeof ENDPOINTS)[number]

export const isEndpoint = (url: string): url is Endpoint => (ENDPOINTS as ReadonlyArray<string>).includes(url)

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const malformed = (reason: string, customId?: string): Verdict =>
  customId === undefined ? { _tag: "Malformed", reason } : { _tag: "Malformed", reason, customId }

/** Parses the text of line `lineNumber` (1-based). Blank lines are the caller's to skip. */
export const parse = (text: string, lineNumber: number): Verdict => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return malformed("not valid JSON")
  }
  if (!isRecord(json)) return malformed("expected a JSON object")
  const customId = json.custom_id
  if (customId === undefined) return malformed("missing custom_id")
  if (typeof customId !== "string" || customId.length === 0) return malformed("custom_id must be a non-empty string")
  if (customId.length > MAX_CUSTOM_ID_LENGTH)
    return malformed(`custom_id is longer than ${MAX_CUSTOM_ID_LENGTH} characters`)
  if (json.method !== "POST") return malformed('method must be "POST"', customId)
  const url = json.url
  if (typeof url !== "string" || !isEndpoint(url))
    return malformed(`url must be one of ${ENDPOINTS.join(", ")}`, customId)
  if (!isRecord(json.body)) return malformed("body must be a JSON object", customId)
  return { _tag: "Line", line: { customId, method: "POST", url, body: json.body, lineNumber } }
}

/**
 * The path to call under the base URL: the line's `url` with the base URL's
 * own path taken off its front when it repeats it, so both `/v1/chat/completions`
 * (the OpenAI batch form) and `/chat/completions` work against `.../v1`.
 */
export const pathUnder = (baseUrl: string, url: string): string => {
  const basePath = new URL(baseUrl).pathname.replace(/\/+$/, "")
  if (basePath !== "" && (url === basePath || url.startsWith(`${basePath}/`) || url.startsWith(`${basePath}?`)))
    return url.slice(basePath.length) || "/"
  return url
}
