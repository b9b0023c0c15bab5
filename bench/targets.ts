/**
 * Part 4: the targets Sluice is held to, each next to what this run observed,
 * with PASS or MISS. A report, not a test: a MISS changes no exit code.
 */
import type { MillionResult } from "./batchMillion.js"
import type { RateRow } from "./ratePrecision.js"
import { LIMIT } from "./ratePrecision.js"
import * as Table from "./table.js"
import type { ThroughputRow } from "./throughput.js"

export interface Check {
  readonly target: string
  readonly required: string
  readonly observed: string
  /** Undefined when it could not be measured. */
  readonly ok: boolean | undefined
}

const measured = (value: number | undefined) => value !== undefined && Number.isFinite(value)

export const HEAP_PER_QUEUED_MAX = 1024
export const SUSTAINED_MIN = 198

export const checks = (
  throughput: ReadonlyArray<ThroughputRow>,
  million: MillionResult | undefined,
  rates: ReadonlyArray<RateRow>
): Array<Check> => {
  const out: Array<Check> = []
  const byRole = (role: ThroughputRow["role"]) => throughput.find((row) => row.role === role)
  const batch = byRole("batch")
  const raw = byRole("raw")
  const batchOps = batch?.median

  if (raw !== undefined) {
    const floor = raw.median * 0.5
    out.push({
      target: "batch ops/s >= 0.5 x raw Effect.forEach",
      required: `>= ${Table.int(floor)}`,
      observed: measured(batchOps) ? `${Table.int(batchOps!)} (${Table.fixed(batchOps! / raw.median, 2)}x)` : "n/a",
      ok: measured(batchOps) && measured(floor) ? batchOps! >= floor : undefined
    })
  }
  for (const role of ["p-queue", "bottleneck", "cockatiel"] as const) {
    const peer = byRole(role)
    if (peer === undefined) continue
    out.push({
      target: `batch ops/s > ${peer.name}`,
      required: `> ${measured(peer.median) ? Table.int(peer.median) : "n/a"}`,
      observed: measured(batchOps) ? Table.int(batchOps!) : "n/a",
      ok: measured(batchOps) && measured(peer.median) ? batchOps! > peer.median : undefined
    })
  }
  out.push({
    target: "batch heap per queued request",
    required: `<= ${Table.int(HEAP_PER_QUEUED_MAX)} B`,
    observed: measured(batch?.bytesPerQueued) ? `${Table.int(batch!.bytesPerQueued!)} B` : "n/a",
    ok: measured(batch?.bytesPerQueued) ? batch!.bytesPerQueued! <= HEAP_PER_QUEUED_MAX : undefined
  })
  if (million !== undefined) {
    out.push({
      target: `batch of ${Table.int(million.tasks)} finishes`,
      required: "all succeed",
      observed: `${Table.int(million.succeeded)} succeeded`,
      ok: million.finished
    })
  }
  for (const row of rates.filter((rate) => rate.sluice)) {
    out.push({
      target: `${row.name}: max starts in any 1 s`,
      required: `<= ${LIMIT}`,
      observed: measured(row.windowMax) ? String(row.windowMax) : "n/a",
      ok: measured(row.windowMax) ? row.windowMax <= LIMIT : undefined
    })
    out.push({
      target: `${row.name}: sustained rate`,
      required: `>= ${SUSTAINED_MIN} /s`,
      observed: measured(row.sustained) ? `${Table.fixed(row.sustained, 2)} /s` : "n/a",
      ok: measured(row.sustained) ? row.sustained >= SUSTAINED_MIN : undefined
    })
  }
  return out
}

export const print = (list: ReadonlyArray<Check>): void => {
  const missed = list.filter((check) => check.ok !== true).length
  Table.print({
    title: "4. Targets",
    columns: [
      { header: "target" },
      { header: "required", align: "right" },
      { header: "observed", align: "right" },
      { header: "result" }
    ],
    rows: list.map((check) => [
      check.target,
      check.required,
      check.observed,
      check.ok === undefined ? "MISS (not measured)" : Table.passOrMiss(check.ok)
    ]),
    notes: [
      missed === 0
        ? `All ${list.length} targets met.`
        : `${missed} of ${list.length} targets MISSED. (A report, not a test: the exit code is 0 either way.)`,
      "Batch = submitAll with spans off, compared by median ops/s."
    ]
  })
}
