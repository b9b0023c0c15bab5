/**
 * Cuts every form of the endpoint's secrets out of text a server or a caller
 * handed us before it reaches an error, an event, a log line or a span.
 * Effect's `Redacted` keeps a secret from being printed by us; this is for
 * when the other side prints it back: the raw value, its base64 (and
 * base64url), a Basic header's decoded `user:password` and password, each
 * character possibly JSON-escaped (`\u002d`, `\\u002d`, `\/`), URL-encoded
 * (`%2D`, `+`) or an HTML character reference (`&#45;`). Written by hand:
 * nothing in Effect or the platform matches a secret in its encodings.
 *
 * @internal
 */

/** The longest form of one character: `&#x0000` + up to 6 hex digits + `;`, or 4 URL-encoded bytes. */
const LONGEST_CHAR_FORM = 14

/** Shorter values are not cut out: they would garble text without protecting much. */
const MIN_LENGTH = 4

const REDACTED = "<redacted>"

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&")

/** Hex digits matched in either case. */
const hexPattern = (hex: string) =>
  [...hex].map((digit) => (/[a-f]/.test(digit) ? `[${digit}${digit.toUpperCase()}]` : digit)).join("")

/** One character in any of the forms it is echoed in. */
const charPattern = (char: string): string => {
  const code = char.codePointAt(0)!
  const hex = code.toString(16)
  const forms = [escapeRegExp(char)]
  if (code <= 0xffff) forms.push(`\\\\{1,2}u${hexPattern(hex.padStart(4, "0"))}`)
  forms.push(
    code < 0x80
      ? `%${hexPattern(hex.padStart(2, "0"))}`
      : [...encodeURIComponent(char).matchAll(/%([0-9A-F]{2})/g)]
          .map((byte) => `%${hexPattern(byte[1]!.toLowerCase())}`)
          .join("")
  )
  forms.push(`&#0{0,4}${code};`, `&#[xX]0{0,4}${hexPattern(hex)};`)
  if (char === "/") forms.push("\\\\{1,2}/")
  if (char === " ") forms.push("\\+")
  return `(?:${forms.join("|")})`
}

const base64 = (text: string) => Buffer.from(text, "utf8").toString("base64")
const base64Url = (text: string) => Buffer.from(text, "utf8").toString("base64url")

/** A Basic credential's `user:password` and password, if `value` is `Basic <base64>`. */
const basicParts = (encoded: string): ReadonlyArray<string> => {
  if (!/^[A-Za-z0-9+/=_-]+$/.test(encoded)) return []
  const decoded = Buffer.from(encoded, "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  return colon < 0 ? [] : [decoded, decoded.slice(colon + 1)]
}

export interface Scrubber {
  /** A secret as it is (an API key, a token, a password). */
  readonly remember: (secret: string) => void
  /** An auth header's value: it, its bare credential, and for `Basic` the decoded pair and password. */
  readonly rememberHeader: (value: string) => void
  /** Whether `text` holds any form of a remembered secret. */
  readonly holds: (text: string) => boolean
  /** `text` with every form of every remembered secret replaced by `<redacted>`. */
  readonly scrub: (text: string) => string
  /** The most characters one form of a remembered secret can take. */
  readonly longestMatch: number
  /** How many secrets it has learnt: what was scrubbed before it changed may need scrubbing again. */
  readonly generation: number
}

export const make = (): Scrubber => {
  const secrets = new Set<string>()
  let pattern: RegExp | undefined
  let longestMatch = 0
  const remember = (secret: string) => {
    if (secret.length < MIN_LENGTH || secrets.has(secret)) return
    secrets.add(secret)
    // base64 is 4/3 the length; each character may take its longest form.
    longestMatch = Math.max(longestMatch, Math.ceil((secret.length * 4) / 3 + 4) * LONGEST_CHAR_FORM)
    pattern = undefined
  }
  const rememberHeader = (value: string) => {
    remember(value)
    const match = /^(\S+)\s+(\S.*)$/.exec(value)
    if (match === null) return
    remember(match[2]!)
    if (match[1]!.toLowerCase() === "basic") for (const part of basicParts(match[2]!)) remember(part)
  }
  const compiled = (): RegExp | undefined => {
    if (pattern !== undefined || secrets.size === 0) return pattern
    const variants = new Set<string>()
    for (const secret of secrets) {
      variants.add(secret)
      variants.add(base64(secret))
      variants.add(base64Url(secret))
    }
    // Longest first, so `Bearer <key>` is cut whole rather than leaving `Bearer `.
    const sorted = [...variants].sort((a, b) => b.length - a.length)
    pattern = new RegExp(sorted.map((variant) => [...variant].map(charPattern).join("")).join("|"), "g")
    return pattern
  }
  const scrub = (text: string) => {
    const regex = compiled()
    return regex === undefined || text === "" ? text : text.replace(regex, REDACTED)
  }
  // A test, not a replace: most text holds no secret, and a test builds no string. The pattern is global,
  // so it starts from the beginning each time.
  const holds = (text: string) => {
    const regex = compiled()
    if (regex === undefined || text === "") return false
    regex.lastIndex = 0
    const found = regex.test(text)
    regex.lastIndex = 0
    return found
  }
  return {
    remember,
    rememberHeader,
    holds,
    scrub,
    get longestMatch() {
      return longestMatch
    },
    get generation() {
      return secrets.size
    }
  }
}
