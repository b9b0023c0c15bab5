/**
 * Smooth weighted round robin's schedule (`routerWeighted.ts`) against
 * nginx's pass, the definition: the same picks in the same order, with the
 * running weights left as the pass leaves them, for random weights and a
 * random mix of picks from the usual list (scheduled), from lists narrowed
 * for one call (the pass), and from a new generation's list.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { ProviderEntry } from "../src/internal/routerProvider.js"
import * as Strategy from "../src/internal/routerStrategy.js"
import { WeightedSchedule, weightedPass } from "../src/internal/routerWeighted.js"

const entry = (name: string, weight: number) =>
  new ProviderEntry(name, undefined as never, [], "default", weight, 0, undefined)

/** One step: pick from the usual list, from a subset of it (a new list), or from a new generation's list. */
const step = fc.oneof(
  fc.constant({ _tag: "Usual" as const }),
  fc.record({ _tag: fc.constant("Narrowed" as const), keep: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }) }),
  fc.constant({ _tag: "NewGeneration" as const })
)

const scenario = fc.record({
  weights: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 12 }),
  steps: fc.array(fc.tuple(step, fc.integer({ min: 1, max: 30 })), { minLength: 1, maxLength: 12 })
})

describe("Router weighted round robin", () => {
  it("the schedule picks what nginx's pass picks, in the same order, and leaves the same running weights", () => {
    fc.assert(
      fc.property(scenario, ({ steps, weights }) => {
        const scheduled = weights.map((weight, i) => entry(`p${i}`, weight))
        const reference = weights.map((weight, i) => entry(`p${i}`, weight))
        const strategy = Strategy.make("weightedRoundRobin", () => 0, { headroom: () => undefined as never })
        let usual = [...scheduled]
        let usualReference = [...reference]
        for (const [kind, picks] of steps) {
          if (kind._tag === "NewGeneration") {
            usual = [...scheduled]
            usualReference = [...reference]
          }
          let list = usual
          let listReference = usualReference
          if (kind._tag === "Narrowed") {
            const kept = weights.map((_, i) => i).filter((i) => kind.keep[i])
            if (kept.length === 0) continue
            list = kept.map((i) => scheduled[i]!)
            listReference = kept.map((i) => reference[i]!)
          }
          for (let n = 0; n < picks; n++) {
            expect((strategy.pick(list) as ProviderEntry).name).toBe(weightedPass(listReference).name)
          }
        }
        // What the schedule holds, written back, is what the pass left on the records.
        strategy.pick([scheduled[0]!])
        weightedPass([reference[0]!])
        expect(scheduled.map((provider) => provider.currentWeight)).toEqual(
          reference.map((provider) => provider.currentWeight)
        )
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 200) }
    )
  })

  it("a schedule gives nginx's sequence for weights 5, 1, 1, repeating every sum of weights", () => {
    const schedule = new WeightedSchedule([entry("a", 5), entry("b", 1), entry("c", 1)])
    const names = Array.from({ length: 14 }, () => schedule.pick().name)
    expect(names).toEqual(["a", "a", "b", "a", "c", "a", "a", "a", "a", "b", "a", "c", "a", "a"])
  })
})
