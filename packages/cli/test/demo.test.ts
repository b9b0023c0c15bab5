import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Demo from "../src/Demo.js"

describe("sluice demo", () => {
  it.live("runs a small batch through the whole stack against the embedded MockProvider and reports it", () =>
    Effect.gen(function* () {
      const directory = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-demo-test-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true })))
      const { summary, report, reportPath } = yield* Demo.run({
        requests: 30,
        live: false,
        report: path.join(directory, "report.html")
      })
      expect(summary).toMatchObject({ stopReason: "completed", succeeded: 30, failed: 0, malformed: 0 })
      expect(summary.promptTokens).toBeGreaterThan(0)
      const text = report.lines.join("\n")
      for (const heading of [
        "requests per minute",
        "tokens per minute",
        "429s received",
        "retries",
        "latency per line",
        "breaker transitions"
      ]) {
        expect(text).toContain(heading)
      }
      // Read from the output's records (`sluice.duration_ms`): numbers, not NaN.
      expect(text).toMatch(/latency per line +p50 \d+ ms, p95 \d+ ms, p99 \d+ ms/)
      expect(text).toMatch(/failed lines +none/)
      expect(text).not.toContain("sk-sluice-demo")
      // The report page: written where asked, self-contained, no secret in it.
      expect(reportPath).toBe(path.join(directory, "report.html"))
      const page = fs.readFileSync(reportPath, "utf8")
      expect(page).toContain("sluice demo: report")
      expect(page).toContain('id="sluice-data"')
      expect(page).not.toContain("sk-sluice-demo")
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer))
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
