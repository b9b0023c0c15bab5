/**
 * The report page of a run: `sluice run --report run.html` (and the demo's).
 * One self-contained HTML file (uPlot inlined, the data embedded; no network)
 * charting the run over time: requests and tokens per minute against the
 * limits, 429s, retries and faults, attempt latency p50/p95/p99, queue depth,
 * the breaker's state, lines done, and requests per executor/key when there
 * are several.
 *
 * The series are sampled every second (a `Schedule`, time from `Clock`) from
 * what `RunStats` sees: `layer` provides a `RunStats` that records them and
 * writes the page when its scope closes, however the run ended.
 *
 * @since 0.1.0
 */

import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import type { CircuitBreaker } from "@sluice/core"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as View from "./internal/progressView.js"
import * as ReportPage from "./internal/reportPage.js"
import * as RunSeries from "./internal/runSeries.js"
import * as RunStats from "./RunStats.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where the page goes. */
  readonly path: string
  /** e.g. `sluice run`. */
  readonly title: string
  /** Shown under the title: label and value pairs (input, output, base URL). */
  readonly details?: ReadonlyArray<readonly [string, string]> | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Recorder {
  /** Give these stats to the run: they record as they count. */
  readonly stats: RunStats.RunStatsShape
  /** Charts a breaker's state for the scope's life. */
  readonly watchBreaker: (
    breaker: Pick<CircuitBreaker.CircuitBreakerShape, "subscribe">
  ) => Effect.Effect<void, never, Scope.Scope>
  /** Takes a last sample and writes the page. */
  readonly write: Effect.Effect<void, PlatformError, FileSystem.FileSystem>
}

/**
 * Records around `stats` for the scope's life.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (stats: RunStats.RunStatsShape, options: Options): Effect.Effect<Recorder, never, Scope.Scope> =>
  Effect.map(RunSeries.make(stats), (series) => ({
    stats: series.stats,
    watchBreaker: series.watchBreaker,
    write: Effect.flatMap(Effect.zip(series.finish, series.stats.snapshot), ([recorded, progress]) =>
      ReportPage.write(options.path, recorded, {
        title: options.title,
        // A run through a Router: a row per provider (lines served, tokens, 429s, failures, ejections).
        details: [
          ...(options.details ?? []),
          ...(progress.providers ?? []).map(
            (provider) =>
              [`provider ${provider.name}`, View.providerLine(provider).replace(/^provider \S+ /, "")] as const
          )
        ]
      })
    )
  }))

/**
 * `RunStats`, recording a report written to `options.path` when the layer's
 * scope closes (its path is then printed on stderr; a page that cannot be
 * written is reported there too, and does not fail the run). Without
 * options, plain `RunStats.layer()`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options | undefined
): Layer.Layer<RunStats.RunStats | Recording, never, FileSystem.FileSystem> =>
  options === undefined
    ? Layer.merge(RunStats.layer(), Layer.succeed(Recording, { watchBreaker: () => Effect.void }))
    : Layer.scopedContext(
        Effect.gen(function* () {
          const fs = yield* FileSystem.FileSystem
          const recorder = yield* make(yield* RunStats.make(), options)
          yield* Effect.addFinalizer(() =>
            recorder.write.pipe(
              Effect.provideService(FileSystem.FileSystem, fs),
              Effect.zipRight(Console.error(`Report: ${options.path}`)),
              Effect.catchAll((error) => Console.error(`--report ${options.path}: not written (${error.message})`))
            )
          )
          return Context.make(RunStats.RunStats, recorder.stats).pipe(
            Context.add(Recording, { watchBreaker: recorder.watchBreaker })
          )
        })
      )

/**
 * What a run tells the report beside its stats: the breakers to chart (with
 * no report, nothing is recorded).
 *
 * @since 0.1.0
 * @category tags
 */
export class Recording extends Context.Tag("@sluice/cli/RunReport/Recording")<
  Recording,
  Pick<Recorder, "watchBreaker">
>() {}
