/**
 * One table of OneRoster records kept sorted by sourcedId: the stable order the fake pages
 * through with `offset`, so a walk without concurrent changes visits every record once.
 *
 * Records are treated as immutable: a change puts a new object. `version` counts changes,
 * so the server can cache a filtered listing until the table changes.
 */
export class Table<A extends { readonly sourcedId: string }> {
  /** Ascending sourcedIds (UTF-16 code unit order, like a plain string sort). */
  private readonly order: Array<string>
  private readonly records = new Map<string, A>()
  private changes = 0

  constructor(records: Iterable<A> = []) {
    for (const record of records) this.records.set(record.sourcedId, record)
    const ids = [...this.records.keys()]
    let sorted = true
    for (let i = 1; i < ids.length && sorted; i++) sorted = ids[i - 1]! < ids[i]!
    this.order = sorted ? ids : ids.sort()
  }

  get length(): number {
    return this.order.length
  }

  /** Bumped by every put and delete. */
  get version(): number {
    return this.changes
  }

  get(sourcedId: string): A | undefined {
    return this.records.get(sourcedId)
  }

  has(sourcedId: string): boolean {
    return this.records.has(sourcedId)
  }

  /** The sorted ids themselves (not a copy): read, do not keep across a change. */
  ids(): ReadonlyArray<string> {
    return this.order
  }

  at(index: number): A {
    return this.records.get(this.order[index]!)!
  }

  /** All records in sourcedId order (a copy: safe to change the table while iterating). */
  all(): Array<A> {
    return this.order.map((id) => this.records.get(id)!)
  }

  /** Inserts or replaces. */
  put(record: A): void {
    if (!this.records.has(record.sourcedId)) {
      const at = this.lowerBound(record.sourcedId)
      if (at === this.order.length) this.order.push(record.sourcedId)
      else this.order.splice(at, 0, record.sourcedId)
    }
    this.records.set(record.sourcedId, record)
    this.changes++
  }

  delete(sourcedId: string): A | undefined {
    const record = this.records.get(sourcedId)
    if (record === undefined) return undefined
    this.order.splice(this.lowerBound(sourcedId), 1)
    this.records.delete(sourcedId)
    this.changes++
    return record
  }

  /** Index of the first id ≥ `id`. */
  private lowerBound(id: string): number {
    let lo = 0
    let hi = this.order.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.order[mid]! < id) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
