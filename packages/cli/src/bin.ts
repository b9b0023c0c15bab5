#!/usr/bin/env node
/**
 * The `sluice` program. Install builds it to JavaScript (`build.mjs` bundles
 * it into `dist/bin.js`), which plain `node` runs:
 *
 * ```sh
 * node packages/cli/dist/bin.js run --input requests.jsonl --output results.jsonl --base-url http://127.0.0.1:8080/v1
 * ```
 *
 * (`npx -y pnpm@10.34.9 sluice run ...` from the repository.) `NodeRuntime.runMain`
 * runs it; the exit code is the one the command set (see `Cli.ExitCode`), 2
 * for flags `@effect/cli` refused, 130 when a signal interrupted the program
 * outside `sluice run`'s own drain. Help and errors come in colour on a
 * terminal only, and never with `NO_COLOR` set. Log lines (a store's switch,
 * a warning) go to stderr, so that stdout holds only what the command prints
 * (`--json`'s one object).
 *
 * @since 0.1.0
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import { cli, ExitCode } from "./Cli.js"
import * as Colour from "./internal/colour.js"

const program = cli(process.argv).pipe(
  Effect.catchIf(ValidationError.isValidationError, (error) =>
    Effect.sync(() => {
      process.exitCode = ValidationError.isHelpRequested(error) ? ExitCode.success : ExitCode.usage
    })
  ),
  // Help and errors in colour on a terminal only, and never with NO_COLOR set.
  Colour.whereWanted,
  Effect.provide(NodeContext.layer),
  // Logs on stderr, in colour where stderr wants it: stdout is the command's own.
  Effect.provide(
    Logger.replace(
      Logger.defaultLogger,
      Logger.prettyLogger({ stderr: true, colors: Colour.wanted(process.stderr, process.env) })
    )
  )
)

NodeRuntime.runMain(program, {
  disablePrettyLogger: true,
  teardown: (exit, onExit) => {
    const set = typeof process.exitCode === "number" ? process.exitCode : undefined
    if (Exit.isSuccess(exit)) return onExit(set ?? 0)
    onExit(set ?? (Cause.isInterruptedOnly(exit.cause) ? ExitCode.interrupted : 1))
  }
})
