import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as window from "../src/internal/slidingWindow.js"
import * as MockProvider from "../src/MockProvider.js"

/** The window as the server drives it: state in a Ref, `now` from Clock. */
const makeWindow = (limits: window.Limits) =>
  Effect.map(
    Ref.make(window.empty),
    (state) => (tokens: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(state, (current) => window.admit(current, limits, now, tokens))
      )
  )

describe("sliding window", () => {
  it.effect("requests: rpm in any 60 s; each admitted request frees its slot 60 s later", () =>
    Effect.gen(function* () {
      const admit = yield* makeWindow({ rpm: 3 })
      const tags: Array<string> = []
      for (const at of [0, 10_000, 20_000]) {
        yield* TestClock.setTime(at)
        tags.push((yield* admit(1))._tag)
      }
      const refused = yield* admit(1)
      expect(refused).toMatchObject({ _tag: "Rejected", limit: "requests", retryAfterMillis: 40_000 })
      yield* TestClock.setTime(60_000)
      tags.push((yield* admit(1))._tag) // the one at 0 left
      const next = yield* admit(1)
      expect(next).toMatchObject({ _tag: "Rejected", retryAfterMillis: 10_000 })
      expect(tags).toEqual(["Admitted", "Admitted", "Admitted", "Admitted"])
    })
  )

  it.effect("tokens: waits until enough old tokens leave; a cost above tpm never fits", () =>
    Effect.gen(function* () {
      const admit = yield* makeWindow({ tpm: 100 })
      yield* admit(30) // t = 0
      yield* TestClock.setTime(5_000)
      yield* admit(50) // t = 5 s
      const refused = yield* admit(40)
      // 80 used; 40 more needs the 30 at t=0 to leave (at 60 s) → 50 + 40 ≤ 100.
      expect(refused).toMatchObject({ _tag: "Rejected", limit: "tokens", retryAfterMillis: 55_000, requested: 40 })
      if (refused._tag === "Rejected") {
        expect(refused.report.tokens).toEqual({ limit: 100, remaining: 20, resetMillis: 60_000 })
      }
      const huge = yield* admit(101)
      expect(huge).toMatchObject({ _tag: "Rejected", limit: "tokens", retryAfterMillis: undefined })
      const admitted = yield* admit(20)
      expect(admitted._tag).toBe("Admitted")
      expect(admitted.report.tokens?.remaining).toBe(0)
    })
  )

  it.effect("both limits: the refusal names the one that frees up last", () =>
    Effect.gen(function* () {
      const admit = yield* makeWindow({ rpm: 2, tpm: 100 })
      yield* admit(5) // t = 0
      yield* TestClock.setTime(30_000)
      yield* admit(90) // t = 30 s: requests full until 60 s; tokens 95 until 60 s, 90 until 90 s
      const byTokens = yield* admit(20)
      expect(byTokens).toMatchObject({ _tag: "Rejected", limit: "tokens", retryAfterMillis: 60_000 })
      const byRequests = yield* admit(1)
      expect(byRequests).toMatchObject({ _tag: "Rejected", limit: "requests", retryAfterMillis: 30_000 })
      yield* TestClock.setTime(60_000)
      expect((yield* admit(20))._tag).toBe("Rejected")
      expect((yield* admit(10))._tag).toBe("Admitted")
    })
  )

  it("formats resets like OpenAI", () => {
    expect(MockProvider.formatResetDuration(0)).toBe("0s")
    expect(MockProvider.formatResetDuration(12)).toBe("12ms")
    expect(MockProvider.formatResetDuration(11.2)).toBe("12ms")
    expect(MockProvider.formatResetDuration(1000)).toBe("1s")
    expect(MockProvider.formatResetDuration(1500)).toBe("1.5s")
    expect(MockProvider.formatResetDuration(59_987)).toBe("59.987s")
    expect(MockProvider.formatResetDuration(360_000)).toBe("6m0s")
    expect(MockProvider.formatResetDuration(3_723_500)).toBe("1h2m3.5s")
  })
})

describe("slidingWindow options", () => {
  it("counts over a shorter window when given one, and keeps no log without limits", () => {
    const limits = { rpm: 2, windowMillis: 1000 }
    let state = window.empty
    for (const at of [0, 10]) {
      const [decision, next] = window.admit(state, limits, at, 1)
      expect(decision._tag).toBe("Admitted")
      state = next
    }
    const [refused] = window.admit(state, limits, 20, 1)
    expect(refused).toMatchObject({ _tag: "Rejected", limit: "requests", retryAfterMillis: 980 })
    const [later] = window.admit(state, limits, 1000, 1)
    expect(later._tag).toBe("Admitted")
    const [unlimited, unchanged] = window.admit(state, {}, 30, 500)
    expect(unlimited).toEqual({ _tag: "Admitted", report: {} })
    expect(unchanged).toBe(state)
  })
})
