import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Demo from "../src/Demo.js"

describe("sluice demo", () => {
  it.live("runs a small batch through the whole stack against the embedded MockProvider and reports it", () =>
    Effect.gen(function* () {
      const { summary, report } = yield* Demo.run({ requests: 30, live: false })
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
      expect(text).not.toContain("sk-sluice-demo")
    }).pipe(Effect.provide(NodeContext.layer))
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
