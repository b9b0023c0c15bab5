import { describe, expect, it } from "@effect/vitest"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Colour from "../src/internal/colour.js"

const BOLD = "\x1b[1mUSAGE\x1b[0m"

/** A Console that records what each method was given. */
const recording = () => {
  const written: Array<readonly [string, ReadonlyArray<unknown>]> = []
  const record =
    (method: string) =>
    (...args: ReadonlyArray<unknown>) => {
      written.push([method, args])
    }
  const unsafe = {
    ...globalThis.console,
    log: record("unsafe.log"),
    error: record("unsafe.error"),
    info: record("unsafe.info"),
    debug: record("unsafe.debug"),
    warn: record("unsafe.warn"),
    trace: record("unsafe.trace")
  }
  const console = Effect.runSync(Console.consoleWith((base) => Effect.succeed(base)))
  const effectOf =
    (method: string) =>
    (...args: ReadonlyArray<unknown>) =>
      Effect.sync(() => record(method)(...args))
  const base: Console.Console = {
    ...console,
    log: effectOf("log"),
    info: effectOf("info"),
    debug: effectOf("debug"),
    error: effectOf("error"),
    warn: effectOf("warn"),
    trace: effectOf("trace"),
    unsafe
  }
  return { base, written }
}

describe("Colour", () => {
  it("is wanted on a terminal without NO_COLOR (or with it empty), never otherwise", () => {
    expect(Colour.wanted({ isTTY: true }, {})).toBe(true)
    expect(Colour.wanted({ isTTY: true }, { NO_COLOR: "" })).toBe(true)
    expect(Colour.wanted({ isTTY: true }, { NO_COLOR: "1" })).toBe(false)
    expect(Colour.wanted({ isTTY: true }, { NO_COLOR: "0" })).toBe(false)
    expect(Colour.wanted({ isTTY: false }, {})).toBe(false)
    expect(Colour.wanted({}, {})).toBe(false)
  })

  it.effect("strips escape codes from what goes to a plain stream and keeps them on a coloured one", () =>
    Effect.gen(function* () {
      const { base, written } = recording()
      const console = Colour.make(base, { stdout: false, stderr: true })
      yield* Effect.all([Console.log(BOLD, 42), Console.info(BOLD), Console.error(BOLD), Console.warn(BOLD)]).pipe(
        Console.withConsole(console)
      )
      console.unsafe.log(BOLD)
      console.unsafe.error(BOLD)
      expect(written).toEqual([
        ["log", ["USAGE", 42]],
        ["info", ["USAGE"]],
        ["error", [BOLD]],
        ["warn", [BOLD]],
        ["unsafe.log", ["USAGE"]],
        ["unsafe.error", [BOLD]]
      ])
    })
  )

  it.effect("leaves both streams as they are when both want colour", () =>
    Effect.gen(function* () {
      const { base, written } = recording()
      yield* Effect.all([Console.log(BOLD), Console.error(BOLD)]).pipe(
        Console.withConsole(Colour.make(base, { stdout: true, stderr: true }))
      )
      expect(written).toEqual([
        ["log", [BOLD]],
        ["error", [BOLD]]
      ])
    })
  )
})
