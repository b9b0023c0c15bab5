/**
 * Colour only where it is wanted. `@effect/cli` renders `--help` and its
 * errors with ANSI styles whatever the output is; a `Console` from
 * `colourWhereWanted` strips the escape codes from what is written to a
 * stream that should stay plain: any stream when `NO_COLOR` is set (to
 * anything but the empty string, as https://no-color.org defines it), and
 * a stream that is not a terminal (piped, redirected to a file).
 *
 * What Effect gave us: the `Console` service, swapped with
 * `Console.withConsole`; Node gave `util.stripVTControlCharacters`. What this
 * adds: the choice, per stream (stdout for `log`, `info`, `debug`; stderr for
 * `error`, `warn`, `trace`).
 */
import { stripVTControlCharacters } from "node:util"
import * as Console from "effect/Console"
import type * as Effect from "effect/Effect"

/** Whether a stream gets colour: a terminal, and `NO_COLOR` unset or empty. */
export const wanted = (
  stream: { readonly isTTY?: boolean | undefined },
  env: Readonly<Record<string, string | undefined>>
): boolean => (env.NO_COLOR === undefined || env.NO_COLOR === "") && stream.isTTY === true

const plain = (args: ReadonlyArray<unknown>): Array<unknown> =>
  args.map((arg) => (typeof arg === "string" ? stripVTControlCharacters(arg) : arg))

/** `base`, writing plain text to the streams that do not want colour. */
export const make = (
  base: Console.Console,
  colour: { readonly stdout: boolean; readonly stderr: boolean }
): Console.Console => {
  const out = <F extends (...args: ReadonlyArray<any>) => any>(keep: boolean, f: F): F =>
    (keep ? f : (...args: ReadonlyArray<unknown>) => f(...plain(args))) as F
  const unsafe = base.unsafe
  return {
    ...base,
    log: out(colour.stdout, base.log),
    info: out(colour.stdout, base.info),
    debug: out(colour.stdout, base.debug),
    error: out(colour.stderr, base.error),
    warn: out(colour.stderr, base.warn),
    trace: out(colour.stderr, base.trace),
    unsafe: {
      ...unsafe,
      log: out(colour.stdout, (...args) => unsafe.log(...args)),
      info: out(colour.stdout, (...args) => unsafe.info(...args)),
      debug: out(colour.stdout, (...args) => unsafe.debug(...args)),
      error: out(colour.stderr, (...args) => unsafe.error(...args)),
      warn: out(colour.stderr, (...args) => unsafe.warn(...args)),
      trace: out(colour.stderr, (...args) => unsafe.trace(...args))
    }
  }
}

/** Runs `effect` with a Console that leaves colour out where this process's stdout and stderr don't want it. */
export const whereWanted = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Console.consoleWith((base) =>
    Console.withConsole(
      effect,
      make(base, { stdout: wanted(process.stdout, process.env), stderr: wanted(process.stderr, process.env) })
    )
  )
