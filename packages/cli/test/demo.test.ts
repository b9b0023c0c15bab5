import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Demo from "../src/Demo.js"

describe("sluice demo", () => {
  it.live(
    "runs a batch through two embedded MockProviders; one fails mid-run: its traffic moves to the other and comes back, no line fails",
    () =>
      Effect.gen(function* () {
        const directory = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-demo-test-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true })))
        // 200 lines at the demo's limits: about 25 s; beta fails from 6 s to 10 s.
        const { summary, report, reportPath } = yield* Demo.run({
          requests: 200,
          live: false,
          report: path.join(directory, "report.html"),
          outage: { at: "6 seconds", lasting: "4 seconds" }
        })
        expect(summary).toMatchObject({ stopReason: "completed", succeeded: 200, failed: 0, malformed: 0 })
        expect(summary.promptTokens).toBeGreaterThan(0)
        const text = report.lines.join("\n")
        for (const heading of [
          "requests per minute",
          "tokens per minute",
          "429s received",
          "retries",
          "latency per line",
          "breaker transitions",
          "provider alpha",
          "provider beta",
          "Lines served per provider"
        ]) {
          expect(text).toContain(heading)
        }
        // Read from the output's records (`sluice.duration_ms`): numbers, not NaN.
        expect(text).toMatch(/latency per line +p50 \d+ ms, p95 \d+ ms, p99 \d+ ms/)
        expect(text).toMatch(/failed lines +none/)
        expect(text).toContain("← beta failing")

        // The traffic moved: beta served nothing in the outage's last two seconds (8 s to 10 s; its breaker or
        // the Router took it out of the rotation), alpha did; and beta served again after it recovered.
        const [alpha, beta] = summary.providers!
        const between = (series: ReadonlyArray<number>, from: number, to: number) =>
          series.slice(from, to).reduce((sum, count) => sum + count, 0)
        expect(beta!.name).toBe("beta")
        expect(between(beta!.servedPerSecond, 8, 10)).toBe(0)
        expect(between(alpha!.servedPerSecond, 8, 10)).toBeGreaterThan(0)
        expect(between(beta!.servedPerSecond, 0, 6)).toBeGreaterThan(0)
        expect(between(beta!.servedPerSecond, 11, beta!.servedPerSecond.length)).toBeGreaterThan(0)
        expect(beta!.movedAway).toBeGreaterThan(0)
        expect(alpha!.served + beta!.served).toBe(200)

        for (const secret of ["sk-sluice-demo", "sk-sluice-demo-alpha", "sk-sluice-demo-beta"]) {
          expect(text).not.toContain(secret)
        }
        // The report page: written where asked, self-contained, a row per provider, no secret in it.
        expect(reportPath).toBe(path.join(directory, "report.html"))
        const page = fs.readFileSync(reportPath, "utf8")
        expect(page).toContain("sluice demo: report")
        expect(page).toContain('id="sluice-data"')
        expect(page).toContain("provider beta")
        expect(page).not.toContain("sk-sluice-demo")
      }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)),
    120_000
  )

  it("writes a deterministic batch in the OpenAI batch format", () => {
    const lines = Demo.batch(3)
      .split("\n")
      .map((line) => JSON.parse(line))
    expect(lines).toHaveLength(3)
    expect(lines[0]).toMatchObject({ custom_id: "demo-1", method: "POST", url: "/v1/chat/completions" })
    expect(Demo.batch(3)).toBe(Demo.batch(3))
  })
})
