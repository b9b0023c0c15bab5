/**
 * Runs the `provider-pool-workers` example end to end on the live clock,
 * with real child processes: jobs are answered by real workers behind the
 * Router; the pools grow under load and shrink back to one worker each when
 * idle; a worker killed while idle fails its ping and is replaced; a worker
 * killed under a call fails that call as `Exited` (fatal: replaced) and the
 * Router answers it from the other pool; once the scope closes, no worker
 * process is left. Every wait is for an event, bounded generously.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import { makeWorkerRouter, startedPids } from "./provider-pool-workers.js"

/** Whether a process of this pid runs (signal 0 checks without sending anything). */
const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Polls `condition` until it holds; fails, naming what never happened, after 30 s. */
const eventually = <E, R>(what: string, condition: Effect.Effect<boolean, E, R>) =>
  condition.pipe(
    Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (holds) => holds }),
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`never happened: ${what}`) })
  )

const inputs = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]

describe("examples/provider-pool-workers", () => {
  it.live(
    "worker processes behind the router: grown, shrunk, replaced when killed, a call falls back; none left after close",
    () =>
      Effect.gen(function* () {
        const before = startedPids.length
        yield* Effect.gen(function* () {
          const { pools, router, run } = yield* makeWorkerRouter("1 second")
          const a = pools["workers-a"]
          const b = pools["workers-b"]

          // Eight jobs at once on two pools of at most 3: answered by real workers, the pools grown.
          const replies = yield* Effect.forEach(inputs, run, { concurrency: "unbounded" })
          expect(replies.map((reply) => reply.output)).toEqual(inputs.map((input) => input.toUpperCase()))
          for (const reply of replies) expect(startedPids).toContain(reply.pid)
          const grown = (yield* a.snapshot).starts + (yield* b.snapshot).starts
          expect(grown).toBeGreaterThan(2)
          expect(grown).toBeLessThanOrEqual(6)

          // Idle: each pool shrinks back to its one worker.
          yield* eventually(
            "both pools back to one worker",
            Effect.map(Effect.all([a.snapshot, b.snapshot]), (all) => all.every((s) => s.size === 1 && s.inUse === 0))
          )

          // Kill pool a's idle worker: its ping fails, and another starts in its place.
          const victim = yield* a.use((worker) => Effect.succeed(worker.pid))
          process.kill(victim, "SIGKILL")
          yield* eventually(
            "the killed worker replaced",
            Effect.map(a.snapshot, (s) => s.invalidations.HealthCheck === 1 && s.restarts === 1 && s.size === 1)
          )
          const replacement = yield* a.use((worker) => Effect.succeed(worker.pid))
          expect(replacement).not.toBe(victim)
          expect(isRunning(victim)).toBe(false)

          // A worker killed under a call: the call fails as Exited on its provider and is answered by the other.
          const hung: Array<number> = []
          const call = yield* Effect.fork(
            router.submit((route) =>
              pools[route.provider as keyof typeof pools].use((worker) =>
                route.hop === 1
                  ? Effect.zipRight(
                      Effect.sync(() => hung.push(worker.pid)),
                      worker.call("hang")
                    )
                  : worker.call("work", "fallback")
              )
            )
          )
          yield* eventually(
            "the call reached a worker",
            Effect.sync(() => hung.length === 1)
          )
          process.kill(hung[0]!, "SIGKILL")
          const answer = yield* Fiber.join(call)
          expect(answer.output).toBe("FALLBACK")
          expect(answer.pid).not.toBe(hung[0])
          const fatal = (yield* a.snapshot).invalidations.Fatal + (yield* b.snapshot).invalidations.Fatal
          expect(fatal).toBe(1)
        }).pipe(Effect.scoped)

        // The scope is closed: every worker this test started has exited.
        const pids = startedPids.slice(before)
        expect(pids.length).toBeGreaterThan(3)
        expect(pids.filter(isRunning)).toEqual([])
      }),
    90_000
  )
})
