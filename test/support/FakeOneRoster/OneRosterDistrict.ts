/**
 * An in-memory OneRoster 1.1 district: orgs, academic sessions, courses, classes, users,
 * enrollments and demographics as 1.1 REST records, each table sorted by sourcedId.
 *
 * Mutations (for tests) stamp `dateLastModified` with the district's clock, so a delta
 * query `filter=dateLastModified>'<before the change>'` finds exactly the changed records:
 * - `create`, `update` (always a change, even when the values are equal: a "touch"),
 * - `markToBeDeleted` (status → `tobedeleted`; the record stays listed, as a soft delete),
 * - `hardDelete` (the record vanishes without a trace, so only a full listing notices).
 * They do not cascade (hard-deleting a user leaves its enrollments), as on a real server
 * where each record changes on its own; only org and session `children` follow `parent`.
 */
import { Clock } from "../FakeClever/CleverDistrict.ts"
import { type ConvertOptions, convertOneRosterCsv, type DistrictData, Refs } from "./Csv.ts"
import { Table } from "./Table.ts"
import type { AcademicSession, Class, Course, Demographics, Enrollment, GUIDRef, Org, Records, RefType, TableName, User } from "./Types.ts"

export { Clock }

export interface OneRosterDistrictOptions {
  /** Freeze the clock at this time; default real time. */
  readonly now?: number | Date
}

/** What a test passes to create a record: `status` (active) and `dateLastModified` (the clock) unless given; `children` are derived. */
export type NewRecord<K extends TableName> =
  & Omit<Records[K], "status" | "dateLastModified" | "children">
  & { readonly status?: Records[K]["status"]; readonly dateLastModified?: string }

/**
 * A change: top-level fields to replace (an `undefined` value removes the field) or a
 * function from the current record to the next. `dateLastModified` becomes the clock's
 * time unless the change sets it.
 */
export type Patch<A> = { readonly [K in keyof A]?: A[K] | undefined } | ((current: A) => A)

const HIERARCHIES: ReadonlySet<TableName> = new Set(["orgs", "academicSessions"])

export class OneRosterDistrict {
  readonly clock: Clock
  /** Builds the shared GUIDRefs; tests use {@link ref}. */
  readonly refs: Refs
  readonly orgs: Table<Org>
  readonly academicSessions: Table<AcademicSession>
  readonly courses: Table<Course>
  readonly classes: Table<Class>
  readonly users: Table<User>
  readonly enrollments: Table<Enrollment>
  readonly demographics: Table<Demographics>

  constructor(data: DistrictData, options: OneRosterDistrictOptions = {}, refs = new Refs()) {
    this.clock = new Clock(options.now)
    this.refs = refs
    this.orgs = new Table(data.orgs)
    this.academicSessions = new Table(data.academicSessions)
    this.courses = new Table(data.courses)
    this.classes = new Table(data.classes)
    this.users = new Table(data.users)
    this.enrollments = new Table(data.enrollments)
    this.demographics = new Table(data.demographics)
  }

  /** A district with no records; tests add them through {@link create}. */
  static empty(options: OneRosterDistrictOptions = {}): OneRosterDistrict {
    return new OneRosterDistrict({ orgs: [], academicSessions: [], courses: [], classes: [], users: [], enrollments: [], demographics: [] }, options)
  }

  table<K extends TableName>(name: K): Table<Records[K]> {
    return this[name] as unknown as Table<Records[K]>
  }

  /** Record counts per table. */
  counts(): Record<TableName, number> {
    return {
      orgs: this.orgs.length,
      academicSessions: this.academicSessions.length,
      courses: this.courses.length,
      classes: this.classes.length,
      users: this.users.length,
      enrollments: this.enrollments.length,
      demographics: this.demographics.length
    }
  }

  /** A GUIDRef to a record of `table` (which need not exist: dangling references are normal). */
  ref(table: TableName, sourcedId: string, type?: RefType): GUIDRef {
    return this.refs.to(table, sourcedId, type)
  }

  /** The clock's time as a `dateLastModified` value. */
  now(): string {
    return new Date(this.clock.now()).toISOString()
  }

  create<K extends TableName>(name: K, input: NewRecord<K>): Records[K] {
    const table = this.table(name)
    if (table.has(input.sourcedId)) throw new Error(`${name}/${input.sourcedId} already exists`)
    const record = {
      ...input,
      status: input.status ?? "active",
      dateLastModified: input.dateLastModified ?? this.now(),
      ...(HIERARCHIES.has(name) ? { children: this.childrenOf(name, input.sourcedId) } : {})
    } as unknown as Records[K]
    table.put(record)
    this.afterChange(name, undefined, record)
    return record
  }

  update<K extends TableName>(name: K, sourcedId: string, patch: Patch<Records[K]>): Records[K] {
    const table = this.table(name)
    const current = table.get(sourcedId)
    if (current === undefined) throw new Error(`${name}/${sourcedId} does not exist`)
    let next: Record<string, unknown>
    if (typeof patch === "function") next = { ...(patch(current) as object) }
    else {
      next = { ...current }
      for (const [key, value] of Object.entries(patch)) {
        if (value === undefined) delete next[key]
        else next[key] = value
      }
    }
    if (next["sourcedId"] !== sourcedId) throw new Error(`an update may not change the sourcedId (${sourcedId} → ${String(next["sourcedId"])})`)
    if (next["dateLastModified"] === current.dateLastModified) next["dateLastModified"] = this.now()
    const record = next as unknown as Records[K]
    table.put(record)
    this.afterChange(name, current, record)
    return record
  }

  /** The soft delete: status `tobedeleted`, dateLastModified now; still listed. */
  markToBeDeleted<K extends TableName>(name: K, sourcedId: string): Records[K] {
    return this.update(name, sourcedId, { status: "tobedeleted" } as Patch<Records[K]>)
  }

  /** The hard delete: the record is gone from every listing, with no tombstone. */
  hardDelete<K extends TableName>(name: K, sourcedId: string): Records[K] {
    const record = this.table(name).delete(sourcedId)
    if (record === undefined) throw new Error(`${name}/${sourcedId} does not exist`)
    this.afterChange(name, record, undefined)
    return record
  }

  /** Keeps `children` of org and session parents in step (without touching their dateLastModified). */
  private afterChange(name: TableName, before: Records[TableName] | undefined, after: Records[TableName] | undefined): void {
    if (!HIERARCHIES.has(name)) return
    const parentOf = (record: Records[TableName] | undefined) => (record as { readonly parent?: GUIDRef } | undefined)?.parent?.sourcedId
    for (const parent of new Set([parentOf(before), parentOf(after)])) {
      if (parent === undefined) continue
      const table = this.table(name as "orgs")
      const record = table.get(parent)
      if (record !== undefined) table.put({ ...record, children: this.childrenOf(name, parent) })
    }
  }

  private childrenOf(name: TableName, sourcedId: string): Array<GUIDRef> {
    const table = this.table(name as "orgs")
    return table.all().filter((record) => record.parent?.sourcedId === sourcedId).map((record) => this.refs.to(name, record.sourcedId))
  }
}

/** Reads a OneRoster CSV set (see Csv.ts for the conversion) into a district. */
export const fromOneRosterCsv = async (dir: string, options: OneRosterDistrictOptions & ConvertOptions = {}): Promise<OneRosterDistrict> => {
  const refs = new Refs()
  return new OneRosterDistrict(await convertOneRosterCsv(dir, { ...options, refs }), options, refs)
}
