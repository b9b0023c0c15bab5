/**
 * The typed flags of the `sluice` command line. Each one names itself, as
 * typed, in its errors (`--concurrency: 'abc' is not an integer`, `--input:
 * no such file: requests.jsonl`), and `withDefault` shows its default in
 * `--help`.
 *
 * What `@effect/cli` gave us: `Options` (parsing, validation, `--help`,
 * defaults). Its typed primitives report a bad value without the flag's name
 * (`'abc' is not a integer`, `Path 'x' must exist`, `Expected one of the
 * following cases`), and its help shows a default only when it is an
 * `Option`. What this adds: flags that parse their own text and say which
 * flag was wrong, and a default in every flag's help.
 */

import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as DurationFlag from "./durationFlag.js"

/** A usage error that names the flag: `--name: problem`. */
export const invalid = (name: string, problem: string): ValidationError.ValidationError =>
  ValidationError.invalidValue(HelpDoc.p(`--${name}: ${problem}`))

/** A flag's text, turned into a value by `parse` or refused with a problem, which the error puts after the flag. */
const parsed = <A>(
  name: string,
  pseudoName: string,
  parse: (text: string) => Either.Either<A, string>
): Options.Options<A> =>
  Options.text(name).pipe(
    Options.withPseudoName(pseudoName),
    Options.mapEffect((text) => Either.mapLeft(parse(text), (problem) => invalid(name, problem)))
  )

/** A whole number above 0. */
export const positiveInteger = (name: string): Options.Options<number> =>
  parsed(name, "INTEGER", (text) => {
    const value = /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : Number.NaN
    if (!Number.isSafeInteger(value)) return Either.left(`'${text}' is not an integer`)
    return value > 0 ? Either.right(value) : Either.left(`expected a whole number above 0, got ${value}`)
  })

/** A share of a limit: above 0 (from 0, with `zero`) and below 1. */
export const share = (name: string, { zero }: { readonly zero: boolean }): Options.Options<number> =>
  parsed(name, "SHARE", (text) => {
    const value = text.trim() === "" ? Number.NaN : Number(text)
    if (!Number.isFinite(value)) return Either.left(`'${text}' is not a number`)
    return (zero ? value >= 0 : value > 0) && value < 1
      ? Either.right(value)
      : Either.left(`expected a share ${zero ? "from 0" : "above 0"} and below 1, got ${value}`)
  })

/** A duration: `500ms`, `30s`, `2m`, `1h`, or a number of seconds. */
export const duration = (name: string): Options.Options<Duration.Duration> =>
  parsed(name, "DURATION", (text) =>
    Either.fromNullable(
      DurationFlag.parse(text),
      () => `expected a duration such as 500ms, 30s, 2m or a number of seconds, got "${text}"`
    )
  )

/** One of `choices`, as typed. */
export const choice = <const C extends string>(name: string, choices: ReadonlyArray<C>): Options.Options<C> =>
  parsed(name, choices.join("|"), (text) =>
    (choices as ReadonlyArray<string>).includes(text)
      ? Either.right(text as C)
      : Either.left(`'${text}' is not one of ${choices.join(", ")}`)
  )

/** An absolute `http://` or `https://` URL, without credentials in it (those are never echoed back). */
export const url = (name: string): Options.Options<string> =>
  parsed(name, "URL", (text) => {
    let parsedUrl: URL
    try {
      parsedUrl = new URL(text)
    } catch {
      return Either.left(`expected an absolute URL such as https://api.openai.com/v1, got '${text}'`)
    }
    if (parsedUrl.username !== "" || parsedUrl.password !== "") {
      return Either.left("the URL holds credentials (not shown): give the key with --api-key-env instead")
    }
    return parsedUrl.protocol === "http:" || parsedUrl.protocol === "https:"
      ? Either.right(text)
      : Either.left(`expected an http:// or https:// URL, got ${parsedUrl.protocol}//`)
  })

/** A path to a file; with `exists`, one that exists and is a file. */
export const file = (name: string, { exists = false }: { readonly exists?: boolean } = {}): Options.Options<string> =>
  Options.text(name).pipe(
    Options.withPseudoName("FILE"),
    Options.mapEffect((path) =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const info = yield* Effect.option(fs.stat(path))
        if (info._tag === "None") return exists ? yield* Effect.fail(invalid(name, `no such file: ${path}`)) : path
        return info.value.type === "File" ? path : yield* Effect.fail(invalid(name, `not a file: ${path}`))
      })
    )
  )

/** The flag's default, used when it is left out and shown in `--help` (as `shown`, or the value). */
export const withDefault =
  <const A>(value: A, shown: string = String(value)) =>
  <B>(self: Options.Options<B>): Options.Options<A | B> =>
    self.pipe(Options.withDescription(`Default: ${shown}`), Options.withDefault(value))

/** What an optional flag without a value stands for, shown in `--help`. */
export const optional =
  (shown: string) =>
  <A>(self: Options.Options<A>) =>
    self.pipe(Options.withDescription(`Default: ${shown}`), Options.optional)

/** A switch, off unless given; `--help` says what it does and what happens without it. */
export const toggle = (name: string, description: string, withoutIt: string): Options.Options<boolean> =>
  Options.boolean(name).pipe(
    Options.withDescription(description),
    Options.withDescription(`Default: off (${withoutIt})`)
  )
