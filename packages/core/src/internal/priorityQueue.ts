/**
 * A bounded-by-the-caller priority queue of small records: one FIFO ring per
 * priority level, levels kept in descending order. Push and pop are O(1)
 * (amortized; a new priority level costs one sorted insert). Effect's `Queue`
 * has no priorities, and a heap would lose FIFO order within a level.
 *
 * Removal is lazy: the owner marks a record dead (`isLive` turns false) and
 * `pop` skips it; `compact` drops dead records when they pile up.
 */
import { Ring } from "./ring.js"

export class PriorityQueue<A extends { readonly priority: number }> {
  private readonly levels = new Map<number, Ring<A>>()
  /** Priorities with a ring, highest first. */
  private readonly order: Array<number> = []
  /** Records held, dead ones included. */
  private held = 0

  constructor(private readonly isLive: (item: A) => boolean) {}

  push(item: A): void {
    let ring = this.levels.get(item.priority)
    if (ring === undefined) {
      ring = new Ring()
      this.levels.set(item.priority, ring)
      let index = 0
      while (index < this.order.length && this.order[index]! > item.priority) index++
      this.order.splice(index, 0, item.priority)
    }
    ring.push(item)
    this.held++
  }

  /** The highest-priority live record, oldest first within a priority. */
  pop(): A | undefined {
    for (let level = 0; level < this.order.length; level++) {
      const ring = this.levels.get(this.order[level]!)!
      for (let item = ring.shift(); item !== undefined; item = ring.shift()) {
        this.held--
        if (this.isLive(item)) return item
      }
    }
    return undefined
  }

  /** Drops dead records once they outnumber `live` (and a floor), so cancelled work costs no memory. */
  compact(live: number): void {
    const dead = this.held - live
    if (dead < 1024 || dead < live) return
    this.held = 0
    for (const ring of this.levels.values()) {
      ring.filter(this.isLive)
      this.held += ring.length
    }
  }

  /** Removes and returns every live record (used at shutdown). */
  drain(): Array<A> {
    const items: Array<A> = []
    for (let item = this.pop(); item !== undefined; item = this.pop()) items.push(item)
    return items
  }
}
