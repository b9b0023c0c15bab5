/**
 * Affinity: calls that carry the same `affinityKey` (a session, a prompt's
 * prefix) go to the same provider while it can take them, so that the
 * provider's prompt cache keeps serving them. By consistent hashing with
 * bounded loads (Mirrokni, Thorup and Zadimoghaddam, 2018):
 *
 * - The ring: each provider of the lowest tier (the primary group; higher
 *   tiers are fallbacks, affinity does not send work there) placed at
 *   `virtualNodes` points, each the hash of its name and the point's number,
 *   so a provider keeps its points through every rebuild and a replacement
 *   (same name) inherits its keys. Adding or removing one provider moves
 *   only the keys of the arcs it takes or leaves, about 1/n of them.
 * - A key's home: the first provider clockwise from the key's hash whose
 *   load after this call stays within `⌈loadFactor × (calls in flight + 1) /
 *   providers⌉` (load = calls in flight, exact, from the registry); one over
 *   that bound passes the key on to the next provider on the ring. So no
 *   provider takes more than `loadFactor` times the average, and a hot key
 *   spills to the same few providers in the same order, whose caches warm up
 *   too. The walk gives up after `MAX_WALK` providers over the bound, and
 *   the strategy chooses (it cannot happen while the bound holds, since some
 *   provider is at or below the average; the cap keeps a pick flat anyway).
 *   The calls in flight are counted on every provider (the registry's total:
 *   other tiers', draining ones'), so the bound errs on the lenient side.
 * - The ring is rebuilt lazily, on the first pick after the registry's
 *   generation changed (add, drain, remove, replace); a pick reads it with
 *   a binary search among the points that share the key hash's high bits
 *   (an index by prefix, about one point per prefix, built with the ring):
 *   a look or two whatever the ring's size, where a search of the whole
 *   ring touches log2(points) places of a large array.
 *
 * Selection (`routerSelection.ts`) decides what happens when the home
 * cannot take the call (ejected, short of context, or its domains cannot
 * admit now): the strategy chooses as if the call had no key.
 *
 * Effect gives nothing like this; the hash is FNV-1a with MurmurHash3's
 * finalizer (fast, well spread; not for adversaries).
 */
import type { ProviderEntry } from "./routerProvider.js"
import type * as Registry from "./routerRegistry.js"

export interface AffinityConfig {
  readonly virtualNodes: number
  /** `1 + ε`: a provider takes a key while its load stays within this times the average (rounded up). */
  readonly loadFactor: number
}

/** Providers over the bound passed on the ring before the strategy chooses instead. */
export const MAX_WALK = 16

/** A ring point packs its hash (32 bits) above its owner's index (20 bits): exact in a double, sorted natively. */
const OWNER_SLOTS = 1 << 20

/** A 32-bit hash of `text`: FNV-1a, then MurmurHash3's finalizer to spread nearby inputs. */
export const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

interface Ring {
  readonly generation: number
  readonly members: ReadonlyArray<ProviderEntry>
  /** Point hashes, ascending. */
  readonly hashes: Uint32Array
  /** The provider at each point. */
  readonly owners: ReadonlyArray<ProviderEntry>
  /** How many high bits of a hash index `firstWithPrefix`. */
  readonly prefixBits: number
  /** Per prefix of `prefixBits` bits, the first point whose hash has that prefix or a larger one (one more entry: the end). */
  readonly firstWithPrefix: Uint32Array
}

/** At most this many prefix bits: an index of 2^16 + 1 entries (256 KiB) at most, for rings of 65,536 points or more. */
const MAX_PREFIX_BITS = 16

const build = (generation: Registry.Generation, virtualNodes: number): Ring => {
  const members = (generation.tiers[0] ?? []).slice(0, OWNER_SLOTS)
  const packed = new Float64Array(members.length * virtualNodes)
  let at = 0
  for (let owner = 0; owner < members.length; owner++) {
    const name = members[owner]!.name
    for (let point = 0; point < virtualNodes; point++) packed[at++] = hash(`${name}#${point}`) * OWNER_SLOTS + owner
  }
  packed.sort()
  const hashes = new Uint32Array(packed.length)
  const owners = new Array<ProviderEntry>(packed.length)
  for (let i = 0; i < packed.length; i++) {
    const value = packed[i]!
    hashes[i] = Math.floor(value / OWNER_SLOTS)
    owners[i] = members[value % OWNER_SLOTS]!
  }
  // About one point per prefix: the binary search then looks at one or two points, not log2(points) of them.
  const prefixBits = Math.min(MAX_PREFIX_BITS, Math.max(0, Math.ceil(Math.log2(Math.max(1, hashes.length)))))
  const prefixes = 2 ** prefixBits
  const firstWithPrefix = new Uint32Array(prefixes + 1)
  let point = 0
  for (let prefix = 0; prefix <= prefixes; prefix++) {
    while (point < hashes.length && prefixOf(hashes[point]!, prefixBits) < prefix) point++
    firstWithPrefix[prefix] = point
  }
  return { generation: generation.number, members, hashes, owners, prefixBits, firstWithPrefix }
}

const prefixOf = (hash: number, bits: number): number => (bits === 0 ? 0 : hash >>> (32 - bits))

/**
 * The first point at or after `point`, wrapping to 0 past the end: a binary
 * search within the points that share its prefix (every point before them
 * is smaller, every one after larger).
 */
const firstAtOrAfter = (ring: Ring, point: number): number => {
  const { firstWithPrefix, hashes } = ring
  const prefix = prefixOf(point, ring.prefixBits)
  let low = firstWithPrefix[prefix]!
  let high = firstWithPrefix[prefix + 1]!
  while (low < high) {
    const middle = (low + high) >>> 1
    if (hashes[middle]! < point) low = middle + 1
    else high = middle
  }
  return low === hashes.length ? 0 : low
}

export const make = (config: AffinityConfig) => {
  let ring: Ring | undefined

  const ringOf = (generation: Registry.Generation): Ring => {
    if (ring === undefined || ring.generation !== generation.number) ring = build(generation, config.virtualNodes)
    return ring
  }

  /**
   * The key's home now: the first provider on the ring from the key's hash
   * whose in-flight count after this call stays within the load bound;
   * undefined when the ring is empty or `MAX_WALK` providers in a row are
   * over it.
   */
  const home = (generation: Registry.Generation, key: string, inFlightTotal: number): ProviderEntry | undefined => {
    const current = ringOf(generation)
    const { members, owners } = current
    if (members.length === 0) return undefined
    const bound = Math.ceil((config.loadFactor * (inFlightTotal + 1)) / members.length)
    const start = firstAtOrAfter(current, hash(key))
    let passed: Array<ProviderEntry> | undefined
    for (let step = 0; step < owners.length; step++) {
      const owner = owners[(start + step) % owners.length]!
      if (owner.inFlight + 1 <= bound) return owner
      if (passed === undefined) passed = [owner]
      else if (!passed.includes(owner)) passed.push(owner)
      if (passed.length >= MAX_WALK) return undefined
    }
    return undefined
  }

  return { home }
}

export type Affinity = ReturnType<typeof make>
