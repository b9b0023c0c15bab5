/**
 * Structured concurrency with Sluice: a pipeline of stages (fetch → enrich →
 * store), each a group of calls that run through one Executor.
 *
 * What Effect gives: `Effect.forEach` with `concurrency` runs a stage's calls
 * as children of the stage and interrupts the siblings when one fails;
 * `Effect.acquireRelease` in a `Scope` releases what each call acquired on
 * success, failure and interruption; `Layer` starts services in dependency
 * order and closes their scopes in reverse; `Metric` and `Effect.withSpan`
 * observe each stage. What Sluice adds: every call is admitted by the
 * Executor (its rate limit and concurrency permit, released when the call is
 * interrupted), so the group stays within the API's limits.
 *
 * Run: npx tsx examples/structured-pipeline.ts
 */
import { Executor } from "@sluice/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"

/** What the pipeline did: lifecycle entries in order, and resource counters. */
export interface JournalShape {
  readonly entries: Ref.Ref<ReadonlyArray<string>>
  readonly acquired: Ref.Ref<number>
  readonly released: Ref.Ref<number>
  readonly interrupted: Ref.Ref<number>
}

export class Journal extends Context.Tag("examples/structured-pipeline/Journal")<Journal, JournalShape>() {
  static readonly layer = Layer.effect(
    Journal,
    Effect.all({
      entries: Ref.make<ReadonlyArray<string>>([]),
      acquired: Ref.make(0),
      released: Ref.make(0),
      interrupted: Ref.make(0)
    })
  )
}

const record = (entry: string) =>
  Effect.flatMap(Journal, (journal) => Ref.update(journal.entries, (entries) => [...entries, entry]))

/** A service started by its Layer and stopped when the Layer's scope closes. */
const lifecycle = (name: string) => Effect.acquireRelease(record(`start ${name}`), () => record(`stop ${name}`))

/** A connection pool to a database: each call borrows a connection. */
export class Database extends Context.Tag("examples/structured-pipeline/Database")<
  Database,
  { readonly connection: Effect.Effect<number, never, import("effect/Scope").Scope> }
>() {
  static readonly layer = Layer.scoped(
    Database,
    Effect.gen(function* () {
      const journal = yield* Journal
      yield* lifecycle("database")
      const connection = Effect.acquireRelease(
        Ref.updateAndGet(journal.acquired, (count) => count + 1),
        () => Ref.update(journal.released, (count) => count + 1)
      )
      return { connection }
    })
  )
}

/** A cache in front of the database; needs the database, so it starts after it and stops before it. */
export class Cache extends Context.Tag("examples/structured-pipeline/Cache")<Cache, { readonly name: string }>() {
  static readonly layer = Layer.scoped(
    Cache,
    Effect.gen(function* () {
      yield* Database
      yield* lifecycle("cache")
      return { name: "cache" }
    })
  )
}

/** The Executor every stage's calls go through; started last, shut down first. */
export const PipelineExecutor = Layer.scoped(
  Executor.Executor,
  Effect.gen(function* () {
    yield* Cache
    yield* lifecycle("executor")
    return yield* Executor.make({
      name: "pipeline",
      concurrency: 4,
      limits: { requests: { limit: 600, interval: "1 minute", capacity: 20 } }
    })
  })
)

/** Every service, built in dependency order (database, cache, executor) and closed in reverse. */
export const Services = PipelineExecutor.pipe(Layer.provideMerge(Cache.layer), Layer.provideMerge(Database.layer))

export class StageError extends Data.TaggedError("StageError")<{ readonly stage: string; readonly item: string }> {}

/** Each stage's wall time (by `Clock`, so virtual under TestClock), in milliseconds. */
export const stageDuration = Metric.timerWithBoundaries("pipeline_stage_duration", [10, 100, 1_000, 10_000])
/** How much the heap grew (or shrank) while a stage ran, in bytes. */
export const stageHeapDelta = Metric.gauge("pipeline_stage_heap_delta_bytes")

const heapUsed = Effect.sync(() => process.memoryUsage().heapUsed)

/** One call of a stage: borrows a connection for its whole run, then answers. */
export type Call = (item: string) => Effect.Effect<string, StageError>

/**
 * Runs one stage: every item's call through the Executor, as a group. The
 * first failure interrupts the siblings (each releases its connection and
 * its Executor permit); the stage's duration and heap delta go to Metrics and
 * onto its span.
 */
export const runStage = (stage: string, items: ReadonlyArray<string>, call: Call) =>
  Effect.gen(function* () {
    const executor = yield* Executor.Executor
    const database = yield* Database
    const journal = yield* Journal
    const started = yield* Clock.currentTimeMillis
    const heapBefore = yield* heapUsed
    const finish = Effect.gen(function* () {
      const elapsed = (yield* Clock.currentTimeMillis) - started
      const heapDelta = (yield* heapUsed) - heapBefore
      yield* Metric.update(stageDuration.pipe(Metric.tagged("stage", stage)), Duration.millis(elapsed))
      yield* Metric.set(stageHeapDelta.pipe(Metric.tagged("stage", stage)), heapDelta)
      yield* Effect.annotateCurrentSpan({
        "pipeline.stage.duration_ms": elapsed,
        "pipeline.stage.heap_delta_bytes": heapDelta
      })
    })
    const one = (item: string) =>
      executor
        .submit(
          Effect.scoped(Effect.zipRight(database.connection, call(item))).pipe(
            Effect.onInterrupt(() => Ref.update(journal.interrupted, (count) => count + 1))
          )
        )
        .pipe(Effect.withSpan(`pipeline.call`, { attributes: { "pipeline.stage": stage, "pipeline.item": item } }))
    return yield* Effect.forEach(items, one, { concurrency: "unbounded" }).pipe(Effect.ensuring(finish))
  }).pipe(Effect.withSpan(`pipeline.stage.${stage}`, { attributes: { "pipeline.stage": stage } }))

/** The stages' calls: fetch takes 100 ms, enrich 50 ms, store 20 ms. */
export const stages = {
  fetch: (item: string) => Effect.as(Effect.sleep("100 millis"), `${item}:fetched`),
  enrich: (item: string) => Effect.as(Effect.sleep("50 millis"), `${item}:enriched`),
  store: (item: string) => Effect.as(Effect.sleep("20 millis"), `${item}:stored`)
} satisfies Record<string, Call>

/** The pipeline: each stage starts when the previous one has finished all its calls. */
export const pipeline = (items: ReadonlyArray<string>, calls: Record<keyof typeof stages, Call> = stages) =>
  Effect.gen(function* () {
    const fetched = yield* runStage("fetch", items, calls.fetch)
    const enriched = yield* runStage("enrich", fetched, calls.enrich)
    return yield* runStage("store", enriched, calls.store)
  }).pipe(Effect.withSpan("pipeline"))

/** The enrich call, failing after 10 ms on an item that starts with "bad". */
export const failingEnrich: Call = (item) =>
  item.startsWith("bad")
    ? Effect.zipRight(Effect.sleep("10 millis"), Effect.fail(new StageError({ stage: "enrich", item })))
    : stages.enrich(item)

/** Runs the pipeline twice with the services up (once clean, once with a failing call), then reports. */
export const program = Effect.gen(function* () {
  const journal = yield* Journal
  yield* Effect.gen(function* () {
    const stored = yield* pipeline(["a", "b", "c", "d"])
    yield* Console.log(stored.join(", "))
    const failed = yield* Effect.either(pipeline(["a", "b", "bad", "d"], { ...stages, enrich: failingEnrich }))
    yield* Console.log(
      `second run: ${failed._tag === "Left" ? `failed: ${failed.left._tag === "StageError" ? `${failed.left.stage} of ${failed.left.item}` : failed.left._tag}` : "succeeded"}`
    )
  }).pipe(Effect.provide(Services))
  yield* Console.log(
    `acquired ${yield* Ref.get(journal.acquired)}, released ${yield* Ref.get(journal.released)}, interrupted ${yield* Ref.get(journal.interrupted)}`
  )
  yield* Console.log((yield* Ref.get(journal.entries)).join(" → "))
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program.pipe(Effect.provide(Journal.layer)))
}
