/**
 * The demo's final report, read from what the run left behind: the output
 * file (latency of each line, why lines failed), the run's summary (requests,
 * tokens, 429s, retries), the MockProvider's counters (what the server saw)
 * and the breaker's transitions.
 */
import type { CircuitBreaker } from "@sluice/core"
import type { MockProvider } from "@sluice/testing"
import type * as Runner from "../Runner.js"

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
  readonly counters: MockProvider.Counters
  /** Tokens the server charged against its limit (prompt plus `max_tokens`), from its log. */
  readonly chargedTokens: number
  readonly transitions: ReadonlyArray<CircuitBreaker.Transition>
  readonly limits: { readonly rpm: number; readonly tpm: number }
  readonly startedAt: number
}): Report => {
  const { summary, results, counters, chargedTokens, transitions, limits, startedAt } = options
  const minutes = summary.elapsedMillis / 60_000
  const tokens = summary.promptTokens + summary.completionTokens
  const rpm = summary.requests / minutes
  const tpm = tokens / minutes
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
    `requests per minute ${share(rpm, limits.rpm)}   (HTTP requests sent, retries included)`,
    `tokens per minute   ${share(chargedTokens / minutes, limits.tpm)}   (as the server charges them: prompt + max_tokens)`,
    `                    ${share(tpm, limits.tpm)}   (as the answers' usage reports them)`,
    `429s received       ${summary.rateLimited}   (the server refused ${counters.rateLimited})`,
    `retries             ${summary.retries}`,
    `server faults       ${faults.length === 0 ? "none" : faults.join(", ")}`,
    `failed lines        ${failures.size === 0 ? "none" : [...failures].map(([tag, count]) => `${tag} ${count}`).join(", ")}`,
    `latency per line    p50 ${percentile(latencies, 50)} ms, p95 ${percentile(latencies, 95)} ms, p99 ${percentile(latencies, 99)} ms   (queueing and retries included)`,
    `breaker transitions ${
      transitions.length === 0
        ? "none"
        : transitions.map((t) => `${t.from}→${t.to} at ${((t.at - startedAt) / 1000).toFixed(1)} s`).join(", ")
    }`
  ]
  return { lines, rpm, tpm }
}
