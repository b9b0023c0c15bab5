/**
 * Text for people: the live progress line, a malformed-line report, the
 * plain summary; and the `--json` summary for machines.
 */
import type * as Runner from "../Runner.js"
import type * as RunStats from "../RunStats.js"

const compact = (value: number): string => {
  const rounded = Math.round(value)
  if (rounded >= 1_000_000) return `${(value / 1_000_000).toFixed(1)}M`
  if (rounded >= 10_000) return `${(value / 1000).toFixed(0)}k`
  if (rounded >= 1000) return `${(value / 1000).toFixed(1)}k`
  return String(rounded)
}

export const duration = (millis: number): string => {
  const seconds = Math.max(0, Math.round(millis / 1000))
  const hours = Math.floor(seconds / 3600)
  const minutes = Math.floor((seconds % 3600) / 60)
  const rest = seconds % 60
  if (hours > 0) return `${hours}h${String(minutes).padStart(2, "0")}m`
  if (minutes > 0) return `${minutes}m${String(rest).padStart(2, "0")}s`
  return `${rest}s`
}

const against = (amount: number, limit: number | undefined) =>
  limit === undefined ? compact(amount) : `${compact(amount)}/${compact(limit)}`

const BREAKER: Record<NonNullable<RunStats.Progress["breaker"]>, string> = {
  CLOSED: "closed",
  OPEN: "open",
  HALF_OPEN: "half-open (probing)",
  ISOLATED: "isolated"
}

/**
 * One line, e.g. `312/1000 done · 2 failed · 16 in flight · 16 queued · 498/500 req, 88k/90k tok in the last
 * 60 s · 3×429 · 4 retries · breaker open · provider down 12s, 40 lines waiting · ETA 1m22s`. The rates are
 * `RunStats`' (what the last 60 s held, never extrapolated), the ones the report shows; the breaker shows
 * when it is not closed, the outage while there is one.
 */
export const progressLine = (progress: RunStats.Progress): string => {
  const parts = [`${progress.done}/${progress.total ?? "?"} done`]
  if (progress.failed > 0) parts.push(`${progress.failed} failed`)
  if (progress.skipped > 0) parts.push(`${progress.skipped} skipped`)
  if (progress.malformed > 0) parts.push(`${progress.malformed} malformed`)
  parts.push(`${progress.inFlight} in flight`)
  if (progress.waiting > 0) parts.push(`${progress.waiting} queued`)
  parts.push(
    `${against(progress.requestsPerMinute, progress.limits.rpm)} req, ${against(progress.tokensPerMinute, progress.limits.tpm)} tok in the last 60 s`
  )
  parts.push(`${progress.rateLimited}×429`)
  parts.push(`${progress.retries} retries`)
  if (progress.breaker !== undefined && progress.breaker !== "CLOSED")
    parts.push(`breaker ${BREAKER[progress.breaker]}`)
  if (progress.outage !== undefined) {
    const { lastedMillis, waiting } = progress.outage
    parts.push(`provider down ${duration(lastedMillis)}, ${waiting} line${waiting === 1 ? "" : "s"} waiting`)
  }
  parts.push(`ETA ${progress.etaMillis === undefined ? "?" : duration(progress.etaMillis)}`)
  return parts.join(" · ")
}

export const malformedLine = (malformed: Runner.Malformed): string =>
  `line ${malformed.lineNumber}${malformed.customId === undefined ? "" : ` (custom_id ${JSON.stringify(malformed.customId)})`}: ${malformed.reason}`

/** `57 server error (503), 2 request refused (400)`, the most first. */
export const reasonList = (byReason: Readonly<Record<string, number>>): string =>
  Object.entries(byReason)
    .sort(([, a], [, b]) => b - a)
    .map(([reason, count]) => `${count} ${reason}`)
    .join(", ")

/** The line printed on stderr as failures of one reason come: `failed: 57 × server error (503) (last r12)`. */
export const failureLine = (reason: string, count: number): string => `failed: ${count} × ${reason}`

/** The outage being waited out, for the live line and stderr. */
export const outageLine = (
  outage: RunStats.Outage & { readonly lastedMillis: number },
  maxOutageMillis: number | undefined
): string =>
  `provider unavailable for ${duration(outage.lastedMillis)}${maxOutageMillis === undefined ? "" : ` (the run stops after ${duration(maxOutageMillis)})`}: ${outage.waiting} line${outage.waiting === 1 ? "" : "s"} waiting; last: ${outage.lastFailure}`

const STOPPED: Record<Runner.StopReason, string> = {
  completed: "completed",
  drained: "interrupted: stopped taking lines, in-flight lines finished",
  deadline: "interrupted: stopped taking lines, in-flight lines past the drain deadline were cancelled",
  aborted: "interrupted: stopped at once",
  halted: "stopped"
}

export const summaryText = (summary: Runner.Summary): string => {
  const lines = [
    `sluice run ${STOPPED[summary.stopReason]} in ${duration(summary.elapsedMillis)}`,
    `  lines:     ${summary.total ?? "?"} (succeeded ${summary.succeeded}, failed ${summary.failed}, skipped ${summary.skipped}${summary.keptFailed > 0 ? ` (${summary.keptFailed} failed earlier)` : ""}, malformed ${summary.malformed}, remaining ${summary.remaining ?? "?"})`,
    `  requests:  ${summary.requests} (429s ${summary.rateLimited}, retries ${summary.retries})`,
    `  tokens:    ${summary.promptTokens} prompt + ${summary.completionTokens} completion`,
    `  output:    ${summary.output}`
  ]
  for (const provider of summary.providers ?? []) lines.push(`  ${providerLine(provider)}`)
  const reasons = reasonList(summary.failuresByReason)
  if (reasons !== "") lines.splice(2, 0, `  failures:  ${reasons}`)
  if (summary.halt !== undefined) lines.push(`  stopped:   ${summary.halt.message}`)
  if (summary.malformed > 0) lines.push(`  errors:    ${summary.errors}`)
  if (summary.truncatedBytes > 0)
    lines.push(`  resumed after removing a torn last line (${summary.truncatedBytes} bytes) from the output`)
  if (summary.stopReason !== "completed") lines.push("  run the same command again to do the rest")
  return lines.join("\n")
}

/** A limit per minute, or `learned/none` when unknown. */
const perMinute = (value: number | undefined, unit: string) =>
  value === undefined ? `no ${unit} limit known` : `${Math.round(value)} ${unit}/min`

/** One provider of a run through a Router (`--providers`), for the summary and the report. */
export const providerLine = (provider: RunStats.ProviderProgress): string =>
  `provider ${provider.name} (domain ${provider.domain}, ${provider.state}): served ${provider.served} lines, ${provider.promptTokens} + ${provider.completionTokens} tokens, 429s ${provider.rateLimited}, failed ${provider.failed}, moved away ${provider.movedAway}, ejections ${provider.ejections}; limits ${perMinute(provider.limits.rpm, "requests")}, ${perMinute(provider.limits.tpm, "tokens")}`

/** The `--json` summary: the `Summary` and the exit code, on one line (each provider without its per-second series). */
export const summaryJson = (summary: Runner.Summary, exitCode: number): string =>
  JSON.stringify({
    ...summary,
    ...(summary.providers === undefined
      ? {}
      : { providers: summary.providers.map(({ servedPerSecond: _, ...provider }) => provider) }),
    total: summary.total ?? null,
    remaining: summary.remaining ?? null,
    halt: summary.halt ?? null,
    exitCode
  })
