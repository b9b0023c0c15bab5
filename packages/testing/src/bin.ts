#!/usr/bin/env node
/**
 * The MockProvider as a standalone program:
 *
 * ```sh
 * npx tsx packages/testing/src/bin.ts --port 8080 --rpm 600 --tpm 60000 --fault-503 0.05
 * ```
 *
 * Prints the base URL (`http://127.0.0.1:8080/v1`) and serves until SIGINT or
 * SIGTERM (`NodeRuntime.runMain` interrupts the program, which closes the
 * server's scope). Flags are listed by `--help`; bad ones exit with code 2.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as args from "./internal/mockProviderArgs.js"
import * as MockProvider from "./MockProvider.js"

const program = Effect.gen(function* () {
  const command = yield* args.parse(process.argv.slice(2))
  if (command._tag === "Help") return yield* Console.log(args.USAGE)
  const provider = yield* MockProvider.make(command.options)
  yield* Console.log(`MockProvider listening on ${provider.baseUrl}`)
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  Effect.catchTag("InvalidOptionsError", (error) =>
    Effect.zipRight(
      Console.error(`${error.message}\n\n${args.USAGE}`),
      Effect.sync(() => {
        process.exitCode = 2
      })
    )
  )
)

NodeRuntime.runMain(program)
