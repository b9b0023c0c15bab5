/**
 * Affinity's ring lookup (`routerAffinity.ts`) against the definition: a
 * key's home, with nothing in flight, is the owner of the first point
 * clockwise from the key's hash (ties between points of one hash to the
 * provider registered first), found here by a scan of every point. The
 * lookup searches only the points that share the hash's high bits; this
 * checks it for random keys on rings of 1 to 2,000 points (indexes of 1 to
 * 2,048 prefixes).
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Affinity from "../src/internal/routerAffinity.js"
import { ProviderEntry } from "../src/internal/routerProvider.js"
import type * as Registry from "../src/internal/routerRegistry.js"

const entry = (name: string) => new ProviderEntry(name, undefined as never, [], "default", 1, 0, undefined)

const generationOf = (members: ReadonlyArray<ProviderEntry>): Registry.Generation => ({
  number: 1,
  active: members,
  tiers: [members],
  smallestWindow: Number.POSITIVE_INFINITY
})

/** The first point at or after the key's hash, by a scan of every point. */
const homeByScan = (members: ReadonlyArray<ProviderEntry>, virtualNodes: number, keyHash: number) => {
  const points = members.flatMap((member, owner) =>
    Array.from({ length: virtualNodes }, (_, point) => ({ hash: Affinity.hash(`${member.name}#${point}`), owner }))
  )
  points.sort((a, b) => a.hash - b.hash || a.owner - b.owner)
  const first = points.find((point) => point.hash >= keyHash) ?? points[0]!
  return members[first.owner]!
}

describe("Router affinity ring", () => {
  it("a key's home is the owner of the first point at or after its hash, as a scan of every point finds it", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.string({ maxLength: 12 }), { minLength: 1, maxLength: 40 }),
        (providers, virtualNodes, keys) => {
          const members = Array.from({ length: providers }, (_, i) => entry(`provider-${i}`))
          const affinity = Affinity.make({ virtualNodes, loadFactor: 1e9 })
          const generation = generationOf(members)
          for (const key of keys) {
            expect(affinity.home(generation, key, 0)?.name).toBe(
              homeByScan(members, virtualNodes, Affinity.hash(key)).name
            )
          }
        }
      ),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 200) }
    )
  })
})
