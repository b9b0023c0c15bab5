/**
 * A profiling aid, not part of the benchmark: the product's regime (part 7)
 * with an `Effect.forEach` caller, for a CPU profile of the Executor's own
 * path with limits over 8 keys.
 *
 *   npx esbuild bench/profileRegime.ts --bundle --platform=node --format=esm --outfile=/tmp/pr.mjs
 *   node --cpu-prof /tmp/pr.mjs
 */
import { Executor } from "@sluice/core"
import * as Effect from "effect/Effect"

const REQUESTS = 20_000
const KEYS = 8

const program = Effect.gen(function* () {
  const executor = yield* Executor.make({
    name: "regime-profile",
    concurrency: 256,
    spans: false,
    limits: {
      requests: { limit: 10_000, interval: "1 minute" },
      tokens: { limit: 30_000_000, interval: "1 minute" }
    }
  })
  const started = process.cpuUsage()
  const wall = performance.now()
  yield* Effect.forEach(
    Array.from({ length: REQUESTS }, (_, index) => index),
    (index) =>
      executor.submit(Effect.sleep(5 + ((index * 7919) % 46)), {
        key: `key-${index % KEYS}`,
        cost: { tokens: 200 + ((index * 104_729) % 3_800) }
      }),
    { concurrency: 512, discard: true }
  )
  const cpu = process.cpuUsage(started)
  process.stdout.write(
    `${((cpu.user + cpu.system) / REQUESTS) | 0} µs CPU/request, ${Math.round(performance.now() - wall)} ms\n`
  )
})

Effect.runPromise(Effect.scoped(Effect.zipRight(program, program)))
