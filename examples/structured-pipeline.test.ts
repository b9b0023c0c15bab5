/**
 * Drives the `structured-pipeline` example under TestClock: a failing call
 * interrupts its siblings and every connection is released; services start in
 * dependency order and stop in reverse; each stage's duration and heap delta
 * are Metrics and span attributes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import {
  failingEnrich,
  Journal,
  pipeline,
  Services,
  StageError,
  stageDuration,
  stageHeapDelta,
  stages
} from "./structured-pipeline.js"

/** A tracer that keeps every span the native one makes. */
const recordingTracer = (spans: Array<Tracer.Span>) =>
  Effect.map(Effect.tracer, (native) =>
    Tracer.make({
      span: (...args) => {
        const span = native.span(...args)
        spans.push(span)
        return span
      },
      context: native.context
    })
  )

const durationOf = (stage: string) => Metric.value(stageDuration.pipe(Metric.tagged("stage", stage)))

describe("examples/structured-pipeline", () => {
  it.effect("a failing call interrupts its siblings; every connection acquired is released", () =>
    Effect.gen(function* () {
      const journal = yield* Journal
      const fiber = yield* Effect.fork(
        Effect.either(pipeline(["a", "b", "bad", "d"], { ...stages, enrich: failingEnrich })).pipe(
          Effect.provide(Services)
        )
      )
      yield* TestClock.adjust("100 millis") // fetch: four calls at once
      yield* TestClock.adjust("10 millis") // enrich: "bad" fails, its three siblings are mid-call
      const result = yield* Fiber.join(fiber)
      expect(result).toEqual(Either.left(new StageError({ stage: "enrich", item: "bad:fetched" })))
      expect(yield* Ref.get(journal.interrupted)).toBe(3)
      // fetch borrowed 4 connections, enrich 4; the store stage never ran.
      expect(yield* Ref.get(journal.acquired)).toBe(8)
      expect(yield* Ref.get(journal.released)).toBe(8)
    }).pipe(Effect.provide(Journal.layer))
  )

  it.effect("services start in dependency order and stop in reverse", () =>
    Effect.gen(function* () {
      const journal = yield* Journal
      yield* Effect.provide(Effect.void, Services)
      expect(yield* Ref.get(journal.entries)).toEqual([
        "start database",
        "start cache",
        "start executor",
        "stop executor",
        "stop cache",
        "stop database"
      ])
    }).pipe(Effect.provide(Journal.layer))
  )

  it.effect("each stage's duration and heap delta are Metrics and span attributes", () =>
    Effect.gen(function* () {
      const spans: Array<Tracer.Span> = []
      const tracer = yield* recordingTracer(spans)
      const before = yield* Effect.all([durationOf("fetch"), durationOf("enrich"), durationOf("store")])
      const fiber = yield* Effect.fork(
        pipeline(["a", "b", "c"]).pipe(
          Effect.provide(Services),
          Effect.provide(Journal.layer),
          Effect.withTracer(tracer)
        )
      )
      yield* TestClock.adjust("170 millis")
      expect(yield* Fiber.join(fiber)).toEqual([
        "a:fetched:enriched:stored",
        "b:fetched:enriched:stored",
        "c:fetched:enriched:stored"
      ])
      const after = yield* Effect.all([durationOf("fetch"), durationOf("enrich"), durationOf("store")])
      // One observation per stage, of its virtual duration: 100, 50 and 20 ms.
      expect(after.map((state, index) => state.count - before[index]!.count)).toEqual([1, 1, 1])
      expect(after.map((state, index) => state.sum - before[index]!.sum)).toEqual([100, 50, 20])
      for (const stage of ["fetch", "enrich", "store"]) {
        const heap = yield* Metric.value(stageHeapDelta.pipe(Metric.tagged("stage", stage)))
        expect(Number.isFinite(heap.value)).toBe(true)
        const span = spans.find((span) => span.name === `pipeline.stage.${stage}`)!
        expect(span.status._tag).toBe("Ended")
        expect(span.attributes.get("pipeline.stage.duration_ms")).toBe({ fetch: 100, enrich: 50, store: 20 }[stage])
        expect(typeof span.attributes.get("pipeline.stage.heap_delta_bytes")).toBe("number")
        expect(
          spans.filter((call) => call.name === "pipeline.call" && call.attributes.get("pipeline.stage") === stage)
        ).toHaveLength(3)
      }
    })
  )
})
