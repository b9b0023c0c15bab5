/**
 * The demo's final report, read from what the run left behind: the output
 * file (latency of each line, why lines failed), the run's summary (requests,
 * tokens, 429s, retries), its last progress (the rates, as the live line
 * counts them: the busiest 60 s, never extrapolated), the MockProvider's
 * counters (what the servers saw), the breakers' transitions, and each
 * provider's lines second by second (the traffic moving during the outage and
 * coming back).
 */
import type { CircuitBreaker } from "@sluice/core"
import type { MockProvider } from "@sluice/testing"
import type * as Runner from "../Runner.js"
import type * as RunStats from "../RunStats.js"
import { providerLine } from "./progressView.js"

export interface NamedTransition {
  readonly provider: string
  readonly transition: CircuitBreaker.Transition
}

/** Seconds per row of the traffic table. */
const TRAFFIC_STEP_SECONDS = 5

/**
 * Lines served per provider, `TRAFFIC_STEP_SECONDS` a row, the outage's rows marked: the traffic moving
 * to the other provider and coming back.
 */
export const trafficTable = (
  providers: ReadonlyArray<RunStats.ProviderProgress>,
  elapsedMillis: number,
  outage: { readonly provider: string; readonly fromMillis: number; readonly toMillis: number } | undefined
): ReadonlyArray<string> => {
  const seconds = Math.max(1, Math.ceil(elapsedMillis / 1000))
  const width = Math.max(6, ...providers.map((provider) => provider.name.length + 1))
  const rows = [`  ${"seconds".padEnd(9)}${providers.map((provider) => provider.name.padStart(width)).join("")}`]
  for (let from = 0; from < seconds; from += TRAFFIC_STEP_SECONDS) {
    const to = Math.min(seconds, from + TRAFFIC_STEP_SECONDS)
    const counts = providers.map((provider) =>
      provider.servedPerSecond.slice(from, to).reduce((sum, count) => sum + count, 0)
    )
    const down =
      outage !== undefined && from * 1000 < outage.toMillis && to * 1000 > outage.fromMillis
        ? `   ← ${outage.provider} failing`
        : ""
    rows.push(`  ${`${from}–${to}`.padEnd(9)}${counts.map((count) => String(count).padStart(width)).join("")}${down}`)
  }
  return rows
}

/** The fields of an output record (OpenAI's batch output shape, Sluice's extras in `sluice`) the report reads. */
export interface ResultLine {
  readonly error: { readonly code: string } | null
  readonly sluice: { readonly duration_ms: number; readonly error?: { readonly kind: string } | undefined }
}

export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

export interface Report {
  readonly lines: ReadonlyArray<string>
  readonly rpm: number
  readonly tpm: number
}

export const render = (options: {
  readonly summary: Runner.Summary
  readonly results: ReadonlyArray<ResultLine>
  /** Each provider's server's counters. */
  readonly counters: ReadonlyArray<MockProvider.Counters>
  /** The run's progress at its end: the busiest minute's requests and tokens (as the server charges them). */
  readonly progress: RunStats.Progress
  readonly transitions: ReadonlyArray<NamedTransition>
  readonly limits: { readonly rpm: number; readonly tpm: number }
  readonly startedAt: number
  /** The outage staged (ms from the start). */
  readonly outage?: { readonly provider: string; readonly fromMillis: number; readonly toMillis: number } | undefined
}): Report => {
  const { summary, results, progress, transitions, limits, startedAt } = options
  const counters = {
    rateLimited: options.counters.reduce((sum, counter) => sum + counter.rateLimited, 0),
    faults: {} as Record<string, number>
  }
  for (const counter of options.counters) {
    for (const [kind, count] of Object.entries(counter.faults))
      counters.faults[kind] = (counters.faults[kind] ?? 0) + count
  }
  // The live line's rate at its highest: what 60 s held, or the whole run when it was shorter (never a
  // shorter time scaled up to a minute, which the start's burst would push past the limit).
  const rpm = progress.busiestRequestsPerMinute
  const tpm = progress.busiestTokensPerMinute
  const window =
    summary.elapsedMillis < 60_000
      ? `in the whole run, ${(summary.elapsedMillis / 1000).toFixed(1)} s: under a minute`
      : "in the busiest 60 s"
  const latencies = results.map((line) => line.sluice.duration_ms).sort((a, b) => a - b)
  const failures = new Map<string, number>()
  for (const line of results) {
    if (line.error !== null) {
      const kind = line.sluice.error?.kind ?? line.error.code
      failures.set(kind, (failures.get(kind) ?? 0) + 1)
    }
  }
  const faults = Object.entries(counters.faults)
    .filter(([, count]) => count > 0)
    .map(([kind, count]) => `${kind} ${count}`)
  const share = (value: number, limit: number) =>
    `${Math.round(value).toLocaleString("en-US")} / ${limit.toLocaleString("en-US")} (${Math.round((value / limit) * 100)}%)`
  const lines = [
    "",
    "Sluice demo: report",
    "===================",
    `lines               ${summary.succeeded} succeeded, ${summary.failed} failed, ${summary.malformed} malformed, in ${(summary.elapsedMillis / 1000).toFixed(1)} s`,
    `requests per minute ${share(rpm, limits.rpm)}   (HTTP requests sent ${window}, retries included)`,
    `tokens per minute   ${share(tpm, limits.tpm)}   (as the server charges them, prompt + max_tokens, ${window})`,
    `tokens used         ${summary.promptTokens.toLocaleString("en-US")} prompt + ${summary.completionTokens.toLocaleString("en-US")} completion   (as the answers' usage reports them)`,
    `429s received       ${summary.rateLimited}   (the server refused ${counters.rateLimited})`,
    `retries             ${summary.retries}`,
    `server faults       ${faults.length === 0 ? "none" : faults.join(", ")}`,
    `failed lines        ${failures.size === 0 ? "none" : [...failures].map(([tag, count]) => `${tag} ${count}`).join(", ")}`,
    `latency per line    p50 ${percentile(latencies, 50)} ms, p95 ${percentile(latencies, 95)} ms, p99 ${percentile(latencies, 99)} ms   (queueing and retries included)`,
    `breaker transitions ${
      transitions.length === 0
        ? "none"
        : transitions
            .map(
              ({ provider, transition: t }) =>
                `${provider} ${t.from}→${t.to} at ${((t.at - startedAt) / 1000).toFixed(1)} s`
            )
            .join(", ")
    }`
  ]
  const providers = progress.providers ?? []
  if (providers.length > 0) {
    lines.push("", "Providers", ...providers.map((provider) => `  ${providerLine(provider)}`))
    lines.push(
      "",
      `Lines served per provider, ${TRAFFIC_STEP_SECONDS} s a row`,
      ...trafficTable(providers, summary.elapsedMillis, options.outage)
    )
  }
  return { lines, rpm, tpm }
}
