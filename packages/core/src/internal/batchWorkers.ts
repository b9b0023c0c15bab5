/**
 * The worker fibers of one batch (`submitAll`): the executor hands each
 * started request of the batch to an idle worker, which runs it inline, so a
 * batch costs at most `maxWorkers` fibers instead of one per request. Workers
 * are forked lazily in the batch caller's runtime (its services, Clock, span
 * parent and FiberRefs), park on a `Deferred` when idle and end when the batch
 * closes.
 *
 * A request run inline must not see what the previous one left on the worker:
 * before each job the worker's FiberRefs are those it started with, and after
 * each job the fibers it forked and left running are interrupted, as the end
 * of a job's own fiber would have done (meanwhile the next job goes to another
 * worker, as it would have gone to a fiber of its own). Doing that through
 * the public Fiber API costs a suspension and a copy of the refs per job, so
 * the worker uses its `FiberRuntime`'s own `getChildren` / `setFiberRefs` when
 * they are there, and the public API otherwise (both are tested).
 *
 * What Effect gave us: `Runtime.runFork`, `Deferred`, `FiberRefsPatch`,
 * interruption regions. What this adds: the hand-over protocol. A worker runs
 * uninterruptibly except inside its job, so interrupting it (`stop`) reaches
 * the job it runs, and the worker then retires instead of taking another.
 * The job's outcome handlers are made once per worker, not per job.
 */
import type * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as FiberRefs from "effect/FiberRefs"
import * as FiberRefsPatch from "effect/FiberRefsPatch"
import * as Runtime from "effect/Runtime"

export interface BatchHooks<J, R> {
  /** The job's work, already interruptible where it must be. */
  readonly work: (job: J) => Effect.Effect<unknown, unknown, R>
  /**
   * Called synchronously once a job ended: the executor's bookkeeping, which
   * may hand the worker its next job (it is already offered as idle, unless it
   * must first interrupt fibers the job left behind).
   */
  readonly finished: (job: J, exit: Exit.Exit<unknown, unknown>) => void
}

export class Worker<J> {
  assigned: J | undefined = undefined
  /** The job it runs now. */
  running: J | undefined = undefined
  handlers: WorkerHandlers | undefined = undefined
  /** Set while the worker waits for a job. */
  parked: Deferred.Deferred<void> | undefined = undefined
  /** Set by `stop`: the worker takes no further job. */
  stopping = false
  fiber: Fiber.RuntimeFiber<void> | undefined = undefined

  constructor(readonly batch: Batch<J, any>) {}

  wake(): void {
    const parked = this.parked
    if (parked === undefined) return
    this.parked = undefined
    Deferred.unsafeDone(parked, Exit.void)
  }

  /** Interrupts the job this worker runs; the worker retires once the job ended. */
  stop(): Effect.Effect<void> {
    this.stopping = true
    const fiber = this.fiber
    return fiber === undefined ? Effect.void : Effect.asVoid(Fiber.interrupt(fiber))
  }
}

export class Batch<J, R = never> {
  /** Idle workers, the most recently idle last (it is warm, and may not have parked yet). */
  private readonly idle: Array<Worker<J>> = []
  private workers = 0
  private closed = false

  constructor(
    private readonly runtime: Runtime.Runtime<R>,
    private readonly maxWorkers: number,
    private readonly hooks: BatchHooks<J, R>,
    /** Tidy between jobs through the public Fiber API only (slower; the fallback, and for tests). */
    private readonly publicApiOnly = false
  ) {}

  /** Gives `job` to an idle worker, or to a new one; undefined if the batch has no worker for it. */
  offer(job: J): Worker<J> | undefined {
    if (this.closed) return undefined
    const idle = this.idle.pop()
    if (idle !== undefined) {
      idle.assigned = job
      idle.wake()
      return idle
    }
    if (this.workers >= this.maxWorkers) return undefined
    const worker = new Worker(this)
    this.workers++
    worker.assigned = job
    // Not started at once: the caller is in the middle of its bookkeeping.
    worker.fiber = Runtime.runFork(this.runtime)(
      Effect.uninterruptible(
        Effect.withFiberRuntime((fiber) => {
          const internals = this.publicApiOnly ? publicInternals(fiber) : internalsOf(fiber)
          worker.handlers = this.handlersOf(worker, internals, fiber.getFiberRefs())
          return this.next(worker, internals)
        })
      ),
      { immediate: false }
    )
    return worker
  }

  /** No further jobs: idle workers end; busy ones end after their job. */
  close(): void {
    this.closed = true
    for (const worker of this.idle.splice(0)) worker.wake()
  }

  private next(worker: Worker<J>, fiber: FiberInternals): Effect.Effect<void, never, any> {
    const job = worker.assigned
    if (job === undefined) {
      if (this.closed || worker.stopping) {
        this.workers--
        return Effect.void
      }
      const parked = Deferred.unsafeMake<void>(FiberId.none)
      worker.parked = parked
      return Effect.flatMap(Deferred.await(parked), () => this.next(worker, fiber))
    }
    worker.assigned = undefined
    worker.running = job
    return Effect.matchCauseEffect(this.hooks.work(job), worker.handlers!)
  }

  /** The handlers of one worker's job outcomes, made once per worker: nothing is allocated for them per job. */
  private handlersOf(worker: Worker<J>, fiber: FiberInternals, initial: FiberRefs.FiberRefs): WorkerHandlers {
    const after = (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void, never, any> => {
      const job = worker.running!
      worker.running = undefined
      if (worker.stopping || this.closed) {
        // Counted out before the bookkeeping, so that a job offered meanwhile can have a new worker.
        this.workers--
        this.hooks.finished(job, exit)
        // Leaving the fiber interrupts what the job forked.
        return Effect.void
      }
      // Staying: do what the end of the job's own fiber would have done.
      const tidying = fiber.tidy(initial)
      if (tidying === undefined || !fiber.knowsWhatIsLeft) {
        this.idle.push(worker)
        this.hooks.finished(job, exit)
        if (tidying === undefined) return this.next(worker, fiber)
        return Effect.zipRight(
          tidying,
          Effect.suspend(() => this.next(worker, fiber))
        )
      }
      // Fibers left behind to interrupt first: the next job goes to another worker meanwhile.
      this.hooks.finished(job, exit)
      return Effect.zipRight(
        tidying,
        Effect.suspend(() => {
          if (!this.closed) this.idle.push(worker)
          return this.next(worker, fiber)
        })
      )
    }
    return {
      onFailure: (cause) => after(Exit.failCause(cause)),
      onSuccess: (value) => after(Exit.succeed(value))
    }
  }
}

interface WorkerHandlers {
  readonly onFailure: (cause: Cause.Cause<unknown>) => Effect.Effect<void, never, any>
  readonly onSuccess: (value: unknown) => Effect.Effect<void, never, any>
}

/**
 * What a worker does between jobs, on its own fiber: interrupt the fibers the
 * last job forked and left running, and put back the FiberRefs the worker
 * started with. The public way costs a suspension per job (`fiber.children`
 * asks the fiber by message) and copies the refs on every read
 * (`getFiberRefs`), so the runtime's own methods are used when present.
 * With them, `tidy` restores the refs at once and answers undefined when no
 * fiber was left behind (otherwise the effect interrupting them, and the next
 * job goes to another worker meanwhile). The public way is the fallback: it
 * always answers an effect, which the worker runs before its next job.
 */
interface FiberInternals {
  readonly tidy: (initial: FiberRefs.FiberRefs) => Effect.Effect<void> | undefined
  /** True when `tidy` answers undefined exactly when there is nothing left to do. */
  readonly knowsWhatIsLeft: boolean
}

interface FiberRuntimeShape {
  readonly _fiberRefs?: FiberRefs.FiberRefs
  readonly setFiberRefs?: (refs: FiberRefs.FiberRefs) => void
  readonly getChildren?: () => ReadonlySet<Fiber.RuntimeFiber<unknown, unknown>>
}

const internalsOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): FiberInternals => {
  const runtime = fiber as unknown as FiberRuntimeShape
  if (
    runtime._fiberRefs === undefined ||
    typeof runtime.setFiberRefs !== "function" ||
    typeof runtime.getChildren !== "function"
  ) {
    return publicInternals(fiber)
  }
  return {
    knowsWhatIsLeft: true,
    tidy: (initial) => {
      if (runtime._fiberRefs !== initial) runtime.setFiberRefs!(initial)
      const children = runtime.getChildren!()
      return children.size === 0 ? undefined : Fiber.interruptAll(Array.from(children))
    }
  }
}

const publicInternals = (fiber: Fiber.RuntimeFiber<unknown, unknown>): FiberInternals => ({
  knowsWhatIsLeft: false,
  tidy: (initial) =>
    Effect.flatMap(fiber.children, (children) =>
      Effect.zipRight(
        children.length === 0 ? Effect.void : Fiber.interruptAll(children),
        Effect.suspend(() => Effect.patchFiberRefs(FiberRefsPatch.diff(fiber.getFiberRefs(), initial)))
      )
    )
})
