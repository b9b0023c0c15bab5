import { describe, expect, it } from "@effect/vitest"
import { MockProvider } from "@sluice/testing"
import * as Effect from "effect/Effect"
import { complete, ProviderAndClient } from "./api-client.js"

describe("examples/api-client", () => {
  it.scoped("answers every prompt through the real MockProvider, with the key it expects", () =>
    Effect.gen(function* () {
      const answers = yield* Effect.forEach(["a", "b", "c", "d"], complete, { concurrency: "unbounded" })
      expect(answers).toHaveLength(4)
      for (const answer of answers) expect(answer.usage.completion_tokens).toBeGreaterThan(0)
      const provider = yield* MockProvider.MockProvider
      expect(yield* provider.counters).toMatchObject({ served: 4, unauthorized: 0, rateLimited: 0 })
    }).pipe(Effect.provide(ProviderAndClient))
  )
})
