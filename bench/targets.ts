/**
 * Part 12: every target Sluice is held to, part by part, each next to what this
 * run observed, with PASS or MISS. Every target is always listed: one whose
 * part was left out (`--only`) reads "not run", so "all met" is said only when
 * every target of every part was measured and met. A report, not a test: a
 * MISS changes no exit code.
 */
import type { MillionResult } from "./batchMillion.js"
import * as Breaker from "./breaker.js"
import * as Http from "./http.js"
import * as Lanes from "./lanes.js"
import * as Outage from "./outage.js"
import type { RateRow } from "./ratePrecision.js"
import { LIMIT, SLUICE_ROWS } from "./ratePrecision.js"
import * as RedisPart from "./redis.js"
import * as Regime from "./regime.js"
import * as RouterE2e from "./routerE2e.js"
import * as RouterSelection from "./routerSelection.js"
import * as Runner from "./runner.js"
import * as Table from "./table.js"
import type { ThroughputRow } from "./throughput.js"

export interface Check {
  readonly part: number
  readonly target: string
  readonly required: string
  readonly observed: string
  /** Undefined when it was not measured (the part was not run, or failed). */
  readonly ok: boolean | undefined
  /** False when the part was left out of this run. */
  readonly ran: boolean
}

/** What the parts measured; a part left out of the run is undefined. */
export interface Results {
  readonly throughput?: ReadonlyArray<ThroughputRow> | undefined
  readonly million?: MillionResult | undefined
  readonly rates?: ReadonlyArray<RateRow> | undefined
  readonly breaker?: ReadonlyArray<Breaker.BreakerRow> | undefined
  readonly http?: ReadonlyArray<Http.HttpRow> | undefined
  readonly runner?: ReadonlyArray<Runner.RunnerRow> | undefined
  readonly regime?: ReadonlyArray<Regime.RegimeRow> | undefined
  readonly lanes?: Lanes.LanesResult | undefined
  readonly outage?: ReadonlyArray<Outage.OutageRow> | undefined
  readonly redis?: ReadonlyArray<RedisPart.RedisRow> | undefined
  readonly router?: ReadonlyArray<RouterSelection.SelectionRow> | undefined
  readonly routerE2e?: ReadonlyArray<RouterE2e.RouterE2eRow> | undefined
}

export const HEAP_PER_QUEUED_MAX = 1024
export const SUSTAINED_MIN = 198

const measured = (value: number | undefined): value is number => value !== undefined && Number.isFinite(value)

/** A check of a part that ran: `ok` is undefined when the value could not be measured. */
const check = (
  part: number,
  target: string,
  required: string,
  observed: number | undefined,
  show: (value: number) => string,
  pass: (value: number) => boolean
): Check => ({
  part,
  target,
  required,
  observed: measured(observed) ? show(observed) : "n/a",
  ok: measured(observed) ? pass(observed) : undefined,
  ran: true
})

/** The same targets, for a part left out of the run. */
const notRun = (list: ReadonlyArray<Check>): Array<Check> =>
  list.map((item) => ({ ...item, observed: "not run", ok: undefined, ran: false }))

// ---- part by part -----------------------------------------------------------

const throughputChecks = (rows: ReadonlyArray<ThroughputRow> = []): Array<Check> => {
  const byRole = (role: ThroughputRow["role"]) => rows.find((row) => row.role === role)
  const batch = byRole("batch")?.median
  const raw = byRole("raw")?.median
  const out = [
    check(
      1,
      "batch ops/s >= 0.5 x raw Effect.forEach",
      measured(raw) ? `>= ${Table.int(raw * 0.5)}` : ">= 0.5 x raw",
      batch,
      (ops) => `${Table.int(ops)} (${Table.fixed(ops / raw!, 2)}x)`,
      (ops) => measured(raw) && ops >= raw * 0.5
    )
  ]
  for (const role of ["p-queue", "bottleneck", "cockatiel"] as const) {
    const peer = byRole(role)?.median
    out.push(
      check(
        1,
        `batch ops/s > ${role}`,
        `> ${measured(peer) ? Table.int(peer) : role}`,
        batch,
        Table.int,
        (ops) => measured(peer) && ops > peer
      )
    )
  }
  out.push(
    check(
      1,
      "batch heap per queued request",
      `<= ${Table.int(HEAP_PER_QUEUED_MAX)} B`,
      byRole("batch")?.bytesPerQueued,
      (bytes) => `${Table.int(bytes)} B`,
      (bytes) => bytes <= HEAP_PER_QUEUED_MAX
    )
  )
  return out
}

const millionChecks = (million: MillionResult | undefined): Array<Check> => [
  {
    part: 2,
    target: `batch of ${Table.int(million?.tasks ?? 1_000_000)} finishes`,
    required: "all succeed",
    observed: million === undefined ? "n/a" : `${Table.int(million.succeeded)} succeeded`,
    ok: million?.finished,
    ran: true
  }
]

const rateChecks = (rows: ReadonlyArray<RateRow> = []): Array<Check> =>
  SLUICE_ROWS.flatMap((name) => {
    const row = rows.find((rate) => rate.name === name)
    return [
      check(3, `${name}: max starts in any 1 s`, `<= ${LIMIT}`, row?.windowMax, String, (most) => most <= LIMIT),
      check(
        3,
        `${name}: sustained rate`,
        `>= ${SUSTAINED_MIN} /s`,
        row?.sustained,
        (rate) => `${Table.fixed(rate, 2)} /s`,
        (rate) => rate >= SUSTAINED_MIN
      )
    ]
  })

const breakerChecks = (rows: ReadonlyArray<Breaker.BreakerRow> = []): Array<Check> => {
  const { sluice, opossum } = Breaker.target(rows)
  return [
    check(
      4,
      "breaker success path ns/call <= opossum's",
      `<= ${measured(opossum) ? Table.fixed(opossum, 0) : "opossum"} ns`,
      sluice,
      (nanos) => `${Table.fixed(nanos, 0)} ns`,
      (nanos) => measured(opossum) && nanos <= opossum
    )
  ]
}

const httpChecks = (rows: ReadonlyArray<Http.HttpRow> = []): Array<Check> => {
  const { sluice, platform } = Http.target(rows)
  return [
    check(
      5,
      `ApiClient CPU µs/request <= ${Http.CPU_RATIO_MAX} x platform client's (CPU, not req/s)`,
      measured(platform) ? `<= ${Table.fixed(platform * Http.CPU_RATIO_MAX, 0)} µs` : `<= ${Http.CPU_RATIO_MAX}x`,
      sluice,
      (micros) => `${Table.fixed(micros, 0)} µs (${Table.fixed(micros / platform, 2)}x)`,
      (micros) => measured(platform) && micros <= platform * Http.CPU_RATIO_MAX
    )
  ]
}

const RUNNER_ROWS = [
  { role: "sluice-learned", label: "sluice run, limits learned" },
  { role: "sluice-given", label: "sluice run, limits given" }
] as const

const runnerChecks = (rows: ReadonlyArray<Runner.RunnerRow> = []): Array<Check> =>
  RUNNER_ROWS.map(({ role, label }) => {
    const row = rows.find((runner) => runner.role === role)
    const ok = row === undefined || !measured(row.shareSteady) ? undefined : Runner.target(row)
    return {
      part: 6,
      target: `main job (${label}): tokens/window, 429s after the 1st window`,
      required: `>= ${Runner.TARGET_SHARE * 100}%, 0`,
      observed:
        row === undefined
          ? "n/a"
          : `${measured(row.shareSteady) ? Table.fixed(row.shareSteady * 100, 1) : "n/a"}%, ${Table.int(row.rateLimitedLater)}`,
      ok,
      ran: true
    }
  })

const regimeChecks = (rows: ReadonlyArray<Regime.RegimeRow> = []): Array<Check> => {
  const { floor, ratio } = Regime.target(rows)
  return [
    check(
      7,
      `regime: Sluice CPU µs/request <= ${Regime.CPU_RATIO_MAX} x the forEach + Semaphore floor's`,
      measured(floor) ? `<= ${Table.fixed(floor * Regime.CPU_RATIO_MAX, 1)} µs` : `<= ${Regime.CPU_RATIO_MAX}x`,
      measured(ratio) ? ratio * floor : undefined,
      (micros) => `${Table.fixed(micros, 1)} µs (${Table.fixed(ratio, 2)}x)`,
      () => ratio <= Regime.CPU_RATIO_MAX
    )
  ]
}

const lanesChecks = (result: Lanes.LanesResult | undefined): Array<Check> => [
  check(
    8,
    "lanes: key B's p99 wait behind a saturated key A",
    `<= ${Table.int(Lanes.INTERVAL_MS)} ms`,
    result?.p99,
    (millis) => `${Table.int(millis)} ms`,
    (millis) => millis <= Lanes.INTERVAL_MS
  )
]

const outageChecks = (rows: ReadonlyArray<Outage.OutageRow> = []): Array<Check> => {
  const row = rows.find((outage) => outage.role === "sluice")
  return [
    {
      part: 9,
      target: `outage: sluice run through ${Outage.OUTAGE_SECONDS} s of 503s in the middle, failed lines`,
      required: "0",
      observed: row === undefined ? "n/a" : `${Table.int(row.failed)}${row.outageHit ? "" : " (no outage hit)"}`,
      ok: row === undefined ? undefined : Outage.target(row),
      ran: true
    }
  ]
}

const redisChecks = (rows: ReadonlyArray<RedisPart.RedisRow> = []): Array<Check> => {
  const { ours, bestPeer } = RedisPart.targets(rows)
  return [
    check(
      10,
      "redis: admissions/s with two limits, ahead of rate-limiter-flexible (chained) and bottleneck",
      measured(bestPeer) ? `> ${Table.int(bestPeer)}` : "> both peers",
      ours?.admissionsPerSecond,
      (ops) => Table.int(ops),
      (ops) => measured(bestPeer) && ops > bestPeer
    ),
    check(
      10,
      "redis: commands (round trips) per admission",
      "1",
      ours?.commandsPerAdmission,
      (commands) => Table.fixed(commands, 2),
      (commands) => commands <= 1
    ),
    check(
      10,
      "redis: p50 per admission on localhost",
      `< ${RedisPart.P50_MAX_MS} ms`,
      ours?.p50,
      (millis) => `${Table.fixed(millis, 3)} ms`,
      (millis) => millis < RedisPart.P50_MAX_MS
    )
  ]
}

const routerChecks = (rows: ReadonlyArray<RouterSelection.SelectionRow> = []): Array<Check> =>
  RouterSelection.targets(rows).map(({ at1000, ratio, variant }) => {
    const ok =
      at1000 === undefined || ratio === undefined
        ? undefined
        : at1000 < RouterSelection.PICK_MAX_MICROS && ratio <= RouterSelection.FLAT_RATIO_MAX
    return {
      part: 11,
      target: `router selection (${variant}): µs per call at 1,000 providers, flat (÷ µs at 2)`,
      required: `< ${RouterSelection.PICK_MAX_MICROS} µs, <= ${RouterSelection.FLAT_RATIO_MAX}x`,
      observed:
        at1000 === undefined || ratio === undefined ? "n/a" : `${Table.fixed(at1000, 2)} µs, ${Table.fixed(ratio, 2)}x`,
      ok,
      ran: true
    }
  })
const routerE2eChecks = (rows: ReadonlyArray<RouterE2e.RouterE2eRow> = []): Array<Check> => {
  const steady = rows.find((row) => row.role === "steady")
  const outage = rows.find((row) => row.role === "outage")
  const percent = (share: number) => (Number.isFinite(share) ? `${Table.fixed(share * 100, 1)}%` : "n/a")
  return [
    {
      part: 12,
      target:
        "router: two providers, tokens per window of the sum of their limits once learned (429s after 1st window, failed)",
      required: `>= ${Runner.TARGET_SHARE * 100}% (0, 0)`,
      observed:
        steady === undefined
          ? "n/a"
          : `${percent(steady.shareSteady)} (${Table.int(steady.rateLimitedLater)}, ${Table.int(steady.failed)})`,
      ok: steady === undefined ? undefined : RouterE2e.steadyTarget(steady),
      ran: true
    },
    {
      part: 12,
      target: `router: one provider down ${RouterE2e.OUTAGE_SECONDS} s, failed lines (the other's share of its limit)`,
      required: `0 (>= ${RouterE2e.CARRY_SHARE * 100}%)`,
      observed:
        outage === undefined
          ? "n/a"
          : `${Table.int(outage.failed)} (${outage.outage === undefined ? "no outage hit" : percent(outage.outage.carried)})`,
      ok: outage === undefined ? undefined : RouterE2e.outageTarget(outage),
      ran: true
    }
  ]
}

/** Every target, in part order; a part that was not run still lists its targets, as "not run". */
export const checks = (results: Results): Array<Check> => {
  const part = <A>(result: A | undefined, list: (result: A | undefined) => Array<Check>): Array<Check> =>
    result === undefined ? notRun(list(undefined)) : list(result)
  return [
    ...part(results.throughput, throughputChecks),
    ...part(results.million, millionChecks),
    ...part(results.rates, rateChecks),
    ...part(results.breaker, breakerChecks),
    ...part(results.http, httpChecks),
    ...part(results.runner, runnerChecks),
    ...part(results.regime, regimeChecks),
    ...part(results.lanes, lanesChecks),
    ...part(results.outage, outageChecks),
    ...part(results.redis, redisChecks),
    ...part(results.router, routerChecks),
    ...part(results.routerE2e, routerE2eChecks)
  ]
}

const verdict = (item: Check): string =>
  !item.ran ? "not run" : item.ok === undefined ? "MISS (not measured)" : Table.passOrMiss(item.ok)

const summary = (list: ReadonlyArray<Check>): string => {
  const met = list.filter((item) => item.ok === true).length
  const notRunCount = list.filter((item) => !item.ran).length
  const missed = list.length - met - notRunCount
  if (met === list.length) return `All ${list.length} targets met.`
  const parts = [`${met} of ${list.length} targets met`, `${missed} MISSED`]
  if (notRunCount > 0) parts.push(`${notRunCount} not run (parts left out by --only)`)
  return `${parts.join("; ")}. (A report, not a test: the exit code is 0 either way.)`
}

export const print = (list: ReadonlyArray<Check>): void => {
  Table.print({
    title: "13. Targets",
    columns: [
      { header: "part", align: "right" },
      { header: "target" },
      { header: "required", align: "right" },
      { header: "observed", align: "right" },
      { header: "result" }
    ],
    rows: list.map((item) => [String(item.part), item.target, item.required, item.observed, verdict(item)]),
    notes: [
      summary(list),
      "Batch = submitAll with spans off, compared by median ops/s. Breaker: Sluice's slower configuration against",
      "  opossum with its timeout off, by the median. HTTP: the target is client CPU per request; requests/s is not a",
      "  target. Regime: Sluice behind a Stream.mapEffect caller, its Executor as the ApiClient builds it (spans off)."
    ]
  })
}
