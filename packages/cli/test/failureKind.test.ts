/**
 * What a line's failure says about the run: the provider's (or the shared
 * limits' store's) failure pauses the run, the line's own error fails the line,
 * a refused key stops the run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Model } from "@sluice/model"
import * as FailureKind from "../src/internal/failureKind.js"

const common = { provider: "p", model: "m", operation: "chat" as const }

describe("failure kinds", () => {
  it("the shared limits' store unavailable (--redis) is systemic: the run waits for it, a rerun retries the line", () => {
    const verdict = FailureKind.verdictOf(
      Model.ModelError.providerUnavailable({ ...common, kind: "LimiterFailure", detail: "redis did not answer" })
    )
    expect(verdict).toMatchObject({
      class: "systemic",
      retryable: true,
      refused: false,
      storeDown: true,
      label: "the limits' store is unavailable (--redis)"
    })
    expect(FailureKind.isRetryableKind(verdict.errorKind)).toBe(true)
  })

  it("a request the provider refuses as invalid is the line's own; a refused key stops the run", () => {
    expect(
      FailureKind.verdictOf(Model.ModelError.invalidRequest({ ...common, kind: "Invalid", detail: "bad body" }))
    ).toMatchObject({ class: "own", retryable: false })
    expect(
      FailureKind.verdictOf(Model.ModelError.providerUnavailable({ ...common, kind: "Unauthorized", status: 401 }))
    ).toMatchObject({ class: "auth" })
  })
})
