import { describe, expect, it } from "@effect/vitest"
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ObservedExecutor, program, Telemetry } from "./observability.js"

/** Keeps every exported span (the SDK's in-memory exporter forgets them when it shuts down). */
class RecordingExporter implements SpanExporter {
  readonly spans: Array<ReadableSpan> = []
  export(spans: Array<ReadableSpan>, done: (result: { code: 0 }) => void): void {
    this.spans.push(...spans)
    done({ code: 0 })
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

describe("examples/observability", () => {
  it.live("exports a span per Executor request, under the caller's span, with Sluice's attributes", () =>
    Effect.gen(function* () {
      const exporter = new RecordingExporter()
      const results = yield* program.pipe(
        Effect.provide(ObservedExecutor),
        // The layer's scope ends here: the SDK flushes every span to the exporter as it shuts down.
        Effect.provide(Layer.fresh(Telemetry(exporter)))
      )
      expect(results.filter((result) => result._tag === "Right")).toHaveLength(2)
      const spans = exporter.spans
      const requests = spans.filter((span) => span.name === "sluice.executor.request")
      const parent = spans.find((span) => span.name === "example.batch")!
      expect(requests).toHaveLength(3)
      for (const span of requests) {
        expect(span.attributes["sluice.executor"]).toBe("provider")
        expect(span.attributes["sluice.request.key"]).toBe("default")
        expect(span.parentSpanContext?.spanId ?? (span as unknown as { parentSpanId?: string }).parentSpanId).toBe(
          parent.spanContext().spanId
        )
      }
      // The failing call ran its three attempts inside its one span, and the span says it failed.
      expect(requests.filter((span) => span.status.code === 2)).toHaveLength(1)
    })
  )
})
