/**
 * A profiling aid, not part of the benchmark: the Executor's own CPU per
 * single `submit`, as the ApiClient uses it (no limits, spans off,
 * concurrency 64), around a task that waits for one turn of the event loop
 * (as I/O does). Prints CPU µs per request with and without the Executor.
 *
 *   npx esbuild bench/profileSubmit.ts --bundle --platform=node --format=esm --outfile=/tmp/ps.mjs
 *   node --cpu-prof /tmp/ps.mjs
 */
import { Executor } from "@sluice/core"
import * as Effect from "effect/Effect"

const REQUESTS = 50_000
const io = Effect.async<void>((resume) => {
  setImmediate(() => resume(Effect.void))
})

const measure = (label: string, run: (index: number) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const started = process.cpuUsage()
    yield* Effect.forEach(
      Array.from({ length: REQUESTS }, (_, index) => index),
      run,
      {
        concurrency: 64,
        discard: true
      }
    )
    const cpu = process.cpuUsage(started)
    process.stdout.write(`${label}: ${((cpu.user + cpu.system) / REQUESTS).toFixed(1)} µs CPU/request\n`)
  })

const program = Effect.gen(function* () {
  const executor = yield* Executor.make({ name: "submit-profile", concurrency: 64, spans: false })
  for (let round = 0; round < 3; round++) {
    yield* measure("bare", () => io)
    yield* measure("executor", () => executor.submit(io))
    yield* measure("executor + timeout", () => executor.submit(io, { timeout: 30_000 }))
    yield* measure("bare + timeoutFail", () => Effect.timeoutFail(io, { duration: 30_000, onTimeout: () => "late" }))
  }
})

Effect.runPromise(Effect.scoped(program))
