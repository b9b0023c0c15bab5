/**
 * nginx's smooth weighted round robin, exactly, without a pass over every
 * candidate per pick. nginx's pick adds each candidate's weight to its
 * running weight, takes the largest (the first in order on a tie) and takes
 * the sum of the weights off the winner. After `t` picks from one list, a
 * candidate's running weight is `start + weight × t − total × picks`: among
 * candidates of one weight the order is that of `start − total × picks`,
 * which moves only for the winner. So a schedule keeps one heap per distinct
 * weight and compares the heaps' tops: O(distinct weights + log n) per pick,
 * the same sequence as the pass (weights 5, 1, 1 still give a a b a c a a).
 *
 * The running weights live on the provider records (`currentWeight`); a
 * schedule holds them in its own form while it is in use and writes them
 * back (`settle`) before a pick from another list, which then runs nginx's
 * pass on the records as they are. Effect has no weighted scheduler (nor a
 * mutable heap); this is all of it.
 */
import type { ProviderEntry } from "./routerProvider.js"

/** nginx's smooth weighted round robin as nginx runs it: one pass, no allocation. */
export const weightedPass = (candidates: ReadonlyArray<ProviderEntry>): ProviderEntry => {
  let total = 0
  let best = candidates[0]!
  for (let i = 0; i < candidates.length; i++) {
    const candidate = candidates[i]!
    candidate.currentWeight += candidate.weight
    total += candidate.weight
    if (candidate.currentWeight > best.currentWeight) best = candidate
  }
  best.currentWeight -= total
  return best
}

/** Candidates of one weight, by `key` (largest first), then by position in the list (first first). */
class WeightGroup {
  /** Positions in the list, as a binary heap. */
  readonly heap: Array<number> = []

  constructor(
    readonly weight: number,
    /** Per position in the list: `start − total × picks`. */
    private readonly key: Float64Array
  ) {}

  private before(a: number, b: number): boolean {
    const keyA = this.key[a]!
    const keyB = this.key[b]!
    return keyA > keyB || (keyA === keyB && a < b)
  }

  push(position: number): void {
    const heap = this.heap
    heap.push(position)
    let at = heap.length - 1
    while (at > 0) {
      const parent = (at - 1) >> 1
      if (!this.before(heap[at]!, heap[parent]!)) break
      heap[at] = heap[parent]!
      heap[parent] = position
      at = parent
    }
  }

  /** The top's key went down: moves it to its place. */
  siftTop(): void {
    const heap = this.heap
    const size = heap.length
    const moved = heap[0]!
    let at = 0
    while (true) {
      const left = 2 * at + 1
      if (left >= size) break
      const right = left + 1
      const child = right < size && this.before(heap[right]!, heap[left]!) ? right : left
      if (!this.before(heap[child]!, moved)) break
      heap[at] = heap[child]!
      at = child
    }
    heap[at] = moved
  }
}

/** A schedule over one candidate list, for as long as picks come from that list. */
export class WeightedSchedule {
  /** Picks made from the list since the schedule took it. */
  private picks = 0
  private readonly total: number
  private readonly key: Float64Array
  private readonly groups: ReadonlyArray<WeightGroup>

  constructor(readonly candidates: ReadonlyArray<ProviderEntry>) {
    const key = new Float64Array(candidates.length)
    const byWeight = new Map<number, WeightGroup>()
    let total = 0
    for (let position = 0; position < candidates.length; position++) {
      const candidate = candidates[position]!
      total += candidate.weight
      key[position] = candidate.currentWeight
      let group = byWeight.get(candidate.weight)
      if (group === undefined) {
        group = new WeightGroup(candidate.weight, key)
        byWeight.set(candidate.weight, group)
      }
      group.push(position)
    }
    this.key = key
    this.total = total
    this.groups = [...byWeight.values()]
  }

  /** The candidate nginx's pass would choose now, with its running weight moved as the pass moves it. */
  pick(): ProviderEntry {
    const picks = ++this.picks
    const key = this.key
    let bestGroup = this.groups[0]!
    let bestPosition = bestGroup.heap[0]!
    let bestWeight = key[bestPosition]! + bestGroup.weight * picks
    for (let g = 1; g < this.groups.length; g++) {
      const group = this.groups[g]!
      const position = group.heap[0]!
      const weight = key[position]! + group.weight * picks
      if (weight > bestWeight || (weight === bestWeight && position < bestPosition)) {
        bestGroup = group
        bestPosition = position
        bestWeight = weight
      }
    }
    key[bestPosition] = key[bestPosition]! - this.total
    bestGroup.siftTop()
    return this.candidates[bestPosition]!
  }

  /** Writes the running weights back to the provider records (before a pick from another list). */
  settle(): void {
    for (let position = 0; position < this.candidates.length; position++) {
      const candidate = this.candidates[position]!
      candidate.currentWeight = this.key[position]! + candidate.weight * this.picks
    }
  }
}
