/**
 * Sluice's spans and metrics through OpenTelemetry (`@effect/opentelemetry`):
 * every Executor request is a `sluice.executor.request` span (tagged with the
 * executor, request id, key and priority), and the Executor's and
 * CircuitBreaker's Effect `Metric`s (`sluice_executor_*`, `sluice_breaker_*`)
 * are read by the OpenTelemetry metric reader. Here both go to the console;
 * for an OTLP collector, swap the exporters for `OTLPTraceExporter` and
 * `OTLPMetricExporter` (`@opentelemetry/exporter-trace-otlp-http`,
 * `@opentelemetry/exporter-metrics-otlp-http`): nothing else changes.
 *
 * Run: npx tsx examples/observability.ts
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { ConsoleMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import { CircuitBreaker, Executor } from "@sluice/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** The telemetry layer: spans and metrics to the given exporters (the console by default). */
export const Telemetry = (spans: SpanExporter = new ConsoleSpanExporter()) =>
  NodeSdk.layer(() => ({
    resource: { serviceName: "sluice-example" },
    spanProcessor: new BatchSpanProcessor(spans),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new ConsoleMetricExporter(),
      exportIntervalMillis: 60_000
    })
  }))

/** An executor with limits, a breaker and retries: each request is one span, whatever its attempts. */
export const ObservedExecutor = Layer.unwrapScoped(
  Effect.map(CircuitBreaker.make({ name: "provider", policy: { kind: "consecutive", failures: 5 } }), (breaker) =>
    Executor.layer({
      name: "provider",
      concurrency: 4,
      limits: { requests: { limit: 600, interval: "1 minute" } },
      breaker,
      retry: { maxAttempts: 3, base: "50 millis" }
    })
  )
)

/** A few calls, one of them failing, inside a parent span. */
export const program = Effect.forEach(
  ["alpha", "beta", "gamma"],
  (name) =>
    Executor.submit(
      name === "gamma"
        ? Effect.fail("the provider said no" as const)
        : Effect.succeed(`answered ${name}`).pipe(Effect.delay("20 millis")),
      { key: "default" }
    ).pipe(Effect.either),
  { concurrency: "unbounded" }
).pipe(Effect.withSpan("example.batch"))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program.pipe(Effect.provide(ObservedExecutor), Effect.provide(Telemetry())))
}
