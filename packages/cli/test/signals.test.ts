import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Signals from "../src/internal/signals.js"

describe("Signals", () => {
  it.scoped("a repeat within the window is the same Ctrl-C (a launcher's echo); a later one is the second", () =>
    Effect.gen(function* () {
      let signal: () => void = () => {}
      let removed = false
      const interrupts = yield* Effect.scoped(
        Effect.gen(function* () {
          const interrupts = yield* Signals.make({
            sameWithin: "500 millis",
            listen: (listener) => {
              signal = listener
              return () => {
                removed = true
              }
            }
          })
          const first = yield* Effect.fork(interrupts.first)
          const second = yield* Effect.fork(interrupts.second)
          const armed = yield* Effect.fork(interrupts.armed)
          signal()
          yield* TestClock.adjust("10 millis")
          signal()
          yield* Fiber.join(first)
          expect(yield* interrupts.count).toBe(2)
          // Still only the first: the echo did not count as a second Ctrl-C.
          expect(second.unsafePoll()).toBeNull()
          expect(armed.unsafePoll()).toBeNull()
          yield* TestClock.adjust("500 millis")
          yield* Fiber.join(armed)
          expect(second.unsafePoll()).toBeNull()
          signal()
          yield* Fiber.join(second)
          return interrupts
        })
      )
      expect(yield* interrupts.count).toBe(3)
      expect(removed).toBe(true)
    })
  )
})
