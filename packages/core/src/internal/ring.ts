/**
 * A growable ring buffer: FIFO push and shift in O(1) (amortized), where an
 * `Array.shift()` queue would turn quadratic; `at` reads any place without
 * copying. Used for the executor's priority levels, the rate limiter's line
 * of waiters and its sliding log of admissions.
 */
export class Ring<A> {
  private items: Array<A | undefined> = new Array(16)
  private head = 0
  length = 0

  push(item: A): void {
    if (this.length === this.items.length) this.grow()
    this.items[(this.head + this.length) & (this.items.length - 1)] = item
    this.length++
  }

  first(): A | undefined {
    return this.length === 0 ? undefined : this.items[this.head]
  }

  shift(): A | undefined {
    if (this.length === 0) return undefined
    const item = this.items[this.head]
    this.items[this.head] = undefined
    this.head = (this.head + 1) & (this.items.length - 1)
    this.length--
    return item
  }

  /** The item `index` places from the front (undefined past the end), without copying. */
  at(index: number): A | undefined {
    return index < 0 || index >= this.length ? undefined : this.items[(this.head + index) & (this.items.length - 1)]
  }

  toArray(): Array<A> {
    const items: Array<A> = []
    for (let i = 0; i < this.length; i++) items.push(this.items[(this.head + i) & (this.items.length - 1)]!)
    return items
  }

  filter(keep: (item: A) => boolean): void {
    const kept: Array<A> = []
    for (let item = this.shift(); item !== undefined; item = this.shift()) if (keep(item)) kept.push(item)
    for (const item of kept) this.push(item)
  }

  private grow(): void {
    const next: Array<A | undefined> = new Array(this.items.length * 2)
    for (let i = 0; i < this.length; i++) next[i] = this.items[(this.head + i) & (this.items.length - 1)]
    this.items = next
    this.head = 0
  }
}
