/**
 * One collection of records kept sorted by id, as Clever lists them, with the serialized
 * list item of each record cached so that serving a page of 1,000 is a join of strings.
 *
 * Records are treated as immutable: a change puts a new object (and drops its cached
 * JSON), so event snapshots can share the objects safely.
 */
export class Collection<A extends { readonly id: string }> {
  /** Ids in ascending order; the index the pages are cut from. */
  private readonly order: Array<string> = []
  private readonly records = new Map<string, A>()
  /** `{"data":{...}}` per id, filled on first serve. */
  private readonly items = new Map<string, string>()

  constructor(records: Iterable<A> = []) {
    for (const record of records) this.records.set(record.id, record)
    // Not push(...ids): spreading 100,000+ arguments overflows the stack.
    for (const id of [...this.records.keys()].sort()) this.order.push(id)
  }

  get length(): number {
    return this.order.length
  }

  get(id: string): A | undefined {
    return this.records.get(id)
  }

  has(id: string): boolean {
    return this.records.has(id)
  }

  idAt(index: number): string {
    return this.order[index]!
  }

  at(index: number): A {
    return this.records.get(this.order[index]!)!
  }

  first(): A | undefined {
    return this.order.length === 0 ? undefined : this.at(0)
  }

  last(): A | undefined {
    return this.order.length === 0 ? undefined : this.at(this.order.length - 1)
  }

  /** All records in id order (a copy: safe to mutate the collection while iterating it). */
  all(): Array<A> {
    return this.order.map((id) => this.records.get(id)!)
  }

  /** Inserts or replaces. New ids are usually the greatest (ObjectIDs), so this is an append. */
  put(record: A): void {
    if (!this.records.has(record.id)) {
      const at = this.lowerBound(record.id)
      if (at === this.order.length) this.order.push(record.id)
      else this.order.splice(at, 0, record.id)
    }
    this.records.set(record.id, record)
    this.items.delete(record.id)
  }

  delete(id: string): A | undefined {
    const record = this.records.get(id)
    if (record === undefined) return undefined
    this.order.splice(this.lowerBound(id), 1)
    this.records.delete(id)
    this.items.delete(id)
    return record
  }

  /** The list item `{"data":<record>}` as JSON. */
  item(id: string): string {
    let json = this.items.get(id)
    if (json === undefined) {
      json = `{"data":${JSON.stringify(this.records.get(id))}}`
      this.items.set(id, json)
    }
    return json
  }

  /** Index of the first id ≥ `id`. Ids are fixed-width hex, so string order is id order. */
  lowerBound(id: string): number {
    let lo = 0
    let hi = this.order.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.order[mid]! < id) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Index of the first id > `id`. */
  upperBound(id: string): number {
    let lo = 0
    let hi = this.order.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.order[mid]! <= id) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
