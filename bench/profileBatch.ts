/**
 * A profiling aid, not part of the benchmark: runs 100,000 trivial tasks
 * through `submitAll` (spans off, concurrency 16, no rate limit), each run
 * followed by the same through raw `Effect.forEach`, and prints ops/s of both.
 * No GC is forced between runs, so its figures run higher than the bench's.
 *
 *   node --cpu-prof --import tsx bench/profileBatch.ts
 *
 * REPS=n sets the number of runs (5); ONLY=sluice skips the forEach runs
 * (keeps the profile to the executor); CAP=n sets the executor's
 * `queueCapacity` (200,000, as part 1's: the whole batch queued at once).
 * At CAP=256 the batch holds a few hundred records instead of 100,000, and
 * garbage collection falls from about half of the CPU to an eighth.
 */
import { Executor } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as Scope from "effect/Scope"
import { effectTask } from "./harness.js"

const TASKS = 100_000
const effects = new Array(TASKS).fill(effectTask)

const main = async () => {
  const scope = Effect.runSync(Scope.make())
  const executor = await Effect.runPromise(
    Scope.extend(
      Executor.make({
        name: "profile",
        concurrency: 16,
        queueCapacity: Number(process.env.CAP ?? 200_000),
        spans: false
      }),
      scope
    )
  )
  const reps = Number(process.env.REPS ?? 5)
  const onlySluice = process.env.ONLY === "sluice"
  for (let rep = 0; rep < reps; rep++) {
    let start = performance.now()
    await Effect.runPromise(Effect.asVoid(executor.submitAll(effects)))
    const sluice = (TASKS / (performance.now() - start)) * 1000
    start = performance.now()
    if (!onlySluice) await Effect.runPromise(Effect.asVoid(Effect.forEach(effects, identity, { concurrency: 16 })))
    const raw = (TASKS / (performance.now() - start)) * 1000
    const rawColumn = onlySluice ? "" : `, forEach ${Math.round(raw)} ops/s`
    process.stdout.write(`submitAll ${Math.round(sluice)} ops/s${rawColumn}\n`)
  }
  await Effect.runPromise(Scope.close(scope, Exit.void))
}

main()
