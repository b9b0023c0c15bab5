/**
 * Providers that are local processes: two pools of child-process workers
 * (`provider-pool-worker.mjs`, JSON lines over stdin/stdout) behind one
 * Router. Each pool keeps between 1 and 3 workers (`ProviderPool`, on
 * Effect's `Pool.makeWithTTL`): it starts more under load, stops the extra
 * ones once idle, pings every worker each second and replaces one that does
 * not answer. A call whose worker dies under it fails with `WorkerError`
 * `Exited`, which the pool treats as fatal (the worker is replaced) and the
 * Router as the provider's failure (the call falls back to the other pool).
 *
 * The pool is the provider's resource: the provider's Executor (its
 * concurrency the pool's `max`, so calls wait in the Executor's queue, where
 * priorities and deadlines apply, not in the pool) runs each call as
 * `pool.use((worker) => worker.call(...))`.
 *
 * Closing the scope stops the router's intake, then every pool: each worker
 * gets SIGTERM (SIGKILL if it has not exited 2 s later) and is waited for.
 *
 * Run: npx tsx examples/provider-pool-workers.ts
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Executor, ProviderPool, Router } from "@sluice/core"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

export const workerScript = fileURLToPath(new URL("./provider-pool-worker.mjs", import.meta.url))

/** How a worker failed a call. `Exited` is fatal to the worker (the pool replaces it). */
export class WorkerError extends Schema.TaggedError<WorkerError>()("WorkerError", {
  reason: Schema.Literal("Exited", "Failed", "StartTimeout"),
  pid: Schema.Number,
  detail: Schema.String
}) {}

interface Reply {
  readonly id: number | null
  readonly ok: boolean
  readonly pid: number
  readonly output?: string
  readonly error?: string
  readonly ready?: boolean
}

/** A running worker process. */
export interface Worker {
  readonly pid: number
  /** `work` answers `input` in capitals; `ping` answers at once; `hang` never answers. */
  readonly call: (op: "work" | "ping" | "hang", input?: string) => Effect.Effect<Reply, WorkerError>
}

/** Every worker pid started, for the test that checks none is left. */
export const startedPids: Array<number> = []

const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Waits for the child to exit (at once if it has). */
const exitOf = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (hasExited(child)) return resume(Effect.void)
    const listener = () => resume(Effect.void)
    child.once("exit", listener)
    return Effect.sync(() => child.off("exit", listener))
  })

/**
 * Starts a worker in the current scope: spawned, then ready once it said so
 * (within 10 s); on release, SIGTERM and a wait for its exit (SIGKILL after 2 s).
 */
export const spawnWorker: Effect.Effect<Worker, WorkerError, Scope.Scope> = Effect.gen(function* () {
  const child = yield* Effect.acquireRelease(
    Effect.sync(() => spawn(process.execPath, [workerScript], { stdio: ["pipe", "pipe", "inherit"] })),
    (child) =>
      Effect.zipRight(
        Effect.sync(() => hasExited(child) || child.kill("SIGTERM")),
        exitOf(child).pipe(
          Effect.timeout("2 seconds"),
          Effect.catchAll(() =>
            Effect.zipRight(
              Effect.sync(() => child.kill("SIGKILL")),
              exitOf(child)
            )
          )
        )
      )
  )
  const pid = child.pid ?? -1
  startedPids.push(pid)
  const pending = new Map<number, (reply: Effect.Effect<Reply, WorkerError>) => void>()
  const ready = yield* Deferred.make<void>()
  let exited: WorkerError | undefined
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const reply = JSON.parse(line) as Reply
    if (reply.ready === true) Deferred.unsafeDone(ready, Effect.void)
    else if (reply.id !== null) pending.get(reply.id)?.(Effect.succeed(reply))
  })
  child.once("exit", (code, signal) => {
    exited = new WorkerError({ reason: "Exited", pid, detail: `exited (code ${code}, signal ${signal})` })
    for (const resume of pending.values()) resume(Effect.fail(exited))
    pending.clear()
  })
  yield* Deferred.await(ready).pipe(
    Effect.timeoutFail({
      duration: "10 seconds",
      onTimeout: () => new WorkerError({ reason: "StartTimeout", pid, detail: "not ready within 10 s" })
    })
  )
  let nextId = 0
  const call = (op: "work" | "ping" | "hang", input?: string) =>
    Effect.async<Reply, WorkerError>((resume) => {
      if (exited !== undefined) return resume(Effect.fail(exited))
      const id = ++nextId
      pending.set(id, (reply) => {
        pending.delete(id)
        resume(
          Effect.flatMap(reply, (answer) =>
            answer.ok
              ? Effect.succeed(answer)
              : Effect.fail(new WorkerError({ reason: "Failed", pid, detail: answer.error ?? "" }))
          )
        )
      })
      child.stdin!.write(`${JSON.stringify({ id, op, input })}\n`)
      // An interrupted call forgets its id: a late answer is dropped, never handed to the next caller.
      return Effect.sync(() => pending.delete(id))
    })
  return { pid, call }
})

/** A worker that exited is unfit: a call that met it is fatal to it. */
const exitedWorker = (cause: Cause.Cause<unknown>) =>
  Option.exists(Cause.failureOption(cause), (error) => error instanceof WorkerError && error.reason === "Exited")

/** One provider's pool: 1 to 3 workers, pinged every second, replaced when one does not answer. */
export const makeWorkerPool = (name: string, timeToLive: Duration.DurationInput = "30 seconds") =>
  ProviderPool.make({
    name,
    acquire: spawnWorker,
    min: 1,
    max: 3,
    timeToLive,
    healthCheck: (worker) => worker.call("ping"),
    healthCheckInterval: "1 second",
    healthCheckTimeout: "2 seconds",
    isFatal: exitedWorker
  })

/** The router over two pools of workers; the pools and executors live in the current scope. */
export const makeWorkerRouter = (timeToLive?: Duration.DurationInput) =>
  Effect.gen(function* () {
    const pools = {
      "workers-a": yield* makeWorkerPool("workers-a", timeToLive),
      "workers-b": yield* makeWorkerPool("workers-b", timeToLive)
    }
    const provider = (name: keyof typeof pools) =>
      Effect.map(Executor.make({ name, concurrency: 3, timeout: "10 seconds" }), (executor) => ({ name, executor }))
    const router = yield* Router.make({
      name: "workers",
      strategy: "leastOutstanding",
      providers: [yield* provider("workers-a"), yield* provider("workers-b")],
      ejection: { consecutiveFailures: 3, baseEjectionTime: "5 seconds" }
    })
    /** One job: the router picks a provider, its Executor runs the call, the call borrows one of its workers. */
    const run = (input: string) =>
      router.submit((route) => pools[route.provider as keyof typeof pools].use((worker) => worker.call("work", input)))
    return { router, pools, run }
  })

const program = Effect.gen(function* () {
  const { pools, run } = yield* makeWorkerRouter()
  const replies = yield* Effect.forEach(
    ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"],
    (input) => run(input),
    { concurrency: "unbounded" }
  )
  for (const reply of replies) yield* Console.log(`${reply.output} from worker ${reply.pid}`)
  for (const pool of Object.values(pools)) {
    const snapshot = yield* pool.snapshot
    yield* Console.log(`${snapshot.pool}: ${snapshot.size} workers, ${snapshot.starts} started`)
  }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program)
}
