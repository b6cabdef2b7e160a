/**
 * An in-memory Clever district: one district, its schools, terms, courses, sections and
 * users, each collection sorted by id, plus the event log the Events API serves.
 *
 * Mutations (for tests) change a record and append the event Clever would emit:
 * `<collection>.created` / `.updated` (with `previous_attributes`) / `.deleted` (with the
 * last snapshot). They do not cascade: deleting a user leaves it in its sections' arrays
 * until the test updates the sections too — as Clever, where each change is its own event.
 */
import { Collection } from "./Collection.ts"
import { cleverIdFor, IdMap, ObjectIdGenerator } from "./Ids.ts"
import { type ConvertOptions, convertOneRosterCsv, type DistrictData } from "./OneRosterCsv.ts"
import type { CleverEvent, CollectionName, Course, District, EventType, Records, School, Section, Term, User } from "./Types.ts"

/** The clock events are stamped with and the event window is measured against. */
export class Clock {
  private fixed: number | undefined

  constructor(now?: number | Date) {
    this.fixed = now === undefined ? undefined : Number(now)
  }

  /** Real time unless {@link set} or {@link advance} froze it. */
  now(): number {
    return this.fixed ?? Date.now()
  }

  set(now: number | Date): void {
    this.fixed = Number(now)
  }

  /** Freezes the clock `ms` after the current time (e.g. 31 days, to age an event cursor). */
  advance(ms: number): void {
    this.fixed = this.now() + ms
  }

  /** Follows real time again. */
  unfreeze(): void {
    this.fixed = undefined
  }
}

export interface CleverDistrictOptions {
  /**
   * Where `*.updated` events carry `previous_attributes`: inside `data` beside `object`
   * (Stripe-style, the default) or beside `data` (as the swagger draws it).
   */
  readonly previousAttributes?: "inData" | "beside"
  /** Freeze the clock at this time; default real time. */
  readonly now?: number | Date
}

/** Collections tests may create records in and delete records from (the district is fixed). */
export type MutableCollection = Exclude<CollectionName, "districts">

/** What a test passes to create a record: `id`, `district` and timestamps are filled in unless given. */
export type NewRecord<K extends CollectionName> =
  & Omit<Records[K], "id" | "district" | "created" | "last_modified">
  & { readonly id?: string; readonly district?: string; readonly created?: string; readonly last_modified?: string }

/**
 * A change: either a deep partial (plain objects merge, arrays and scalars replace, an
 * `undefined` value removes the field) or a function from the current record to the next.
 */
export type Patch<A> = DeepPartial<A> | ((current: A) => A)

export type DeepPartial<A> = {
  readonly [K in keyof A]?: (A[K] extends ReadonlyArray<unknown> ? A[K] : A[K] extends object ? DeepPartial<A[K]> : A[K]) | undefined
}

export interface UpdateResult<A> {
  readonly record: A
  /** Old values of the changed top-level fields (`null` for a field that was absent); `{}` when nothing changed. */
  readonly previous_attributes: Readonly<Record<string, unknown>>
  /** The `*.updated` event, or undefined when the patch changed nothing (no event then). */
  readonly event: CleverEvent | undefined
}

const TIMESTAMPED: ReadonlySet<CollectionName> = new Set(["schools", "sections", "users"])

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const deepMerge = (base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) delete out[key]
    else if (isPlainObject(value) && isPlainObject(base[key])) out[key] = deepMerge(base[key], value)
    else out[key] = Array.isArray(value) ? [...value] : value
  }
  return out
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)

export class CleverDistrict {
  readonly clock: Clock
  /** CSV sourcedId ↔ Clever id (empty for districts not made from CSV). */
  readonly ids: IdMap
  readonly districts: Collection<District>
  readonly schools: Collection<School>
  readonly terms: Collection<Term>
  readonly courses: Collection<Course>
  readonly sections: Collection<Section>
  readonly users: Collection<User>
  /** Every event ever appended, ascending; the server hides those older than its window. */
  readonly events = new Collection<CleverEvent>()
  private readonly idGenerator: ObjectIdGenerator
  private readonly previousAttributes: "inData" | "beside"

  constructor(data: DistrictData, options: CleverDistrictOptions = {}) {
    this.clock = new Clock(options.now)
    this.ids = data.ids
    this.idGenerator = new ObjectIdGenerator(data.ids.importedAt)
    this.previousAttributes = options.previousAttributes ?? "inData"
    this.districts = new Collection([data.district])
    this.schools = new Collection(data.schools)
    this.terms = new Collection(data.terms)
    this.courses = new Collection(data.courses)
    this.sections = new Collection(data.sections)
    this.users = new Collection(data.users)
  }

  /** A district with only the district record; tests add the rest through the mutations. */
  static empty(district: Partial<District> & { readonly name: string }, options: CleverDistrictOptions = {}): CleverDistrict {
    const ids = new IdMap()
    const record: District = {
      id: district.id ?? cleverIdFor("orgs", district.name, ids.importedAt),
      sis_type: "sftp",
      launch_date: "2024-01-01",
      portal_url: "https://clever.com/in/fake",
      login_methods: ["clever"],
      state: "running",
      ...district
    }
    return new CleverDistrict({ district: record, schools: [], terms: [], courses: [], sections: [], users: [], ids }, options)
  }

  /** The one district record. */
  get district(): District {
    return this.districts.first()!
  }

  collection<K extends CollectionName>(name: K): Collection<Records[K]> {
    return this[name] as unknown as Collection<Records[K]>
  }

  /** A fresh ObjectID-like id, greater than every existing record and event id. */
  newId(): string {
    return this.idGenerator.next(this.clock.now())
  }

  /** The newest event's id (what `ending_before=last&limit=1` returns, window permitting). */
  latestEventId(): string | undefined {
    return this.events.last()?.id
  }

  /**
   * Appends an event as it is. Tests use it for events the mutations do not produce
   * (e.g. `resources.created`, or an event about a record the district never had).
   */
  appendEvent(type: EventType | (string & {}), object: CleverEvent["data"]["object"], previous?: Readonly<Record<string, unknown>>): CleverEvent {
    const base = { id: this.newId(), type, created: new Date(this.clock.now()).toISOString() }
    const event: CleverEvent = previous === undefined
      ? { ...base, data: { object } }
      : this.previousAttributes === "beside"
      ? { ...base, data: { object }, previous_attributes: previous }
      : { ...base, data: { object, previous_attributes: previous } }
    this.events.put(event)
    return event
  }

  create<K extends MutableCollection>(name: K, input: NewRecord<K>): Records[K] {
    const now = new Date(this.clock.now()).toISOString()
    const stamps = TIMESTAMPED.has(name) ? { created: now, last_modified: now } : {}
    const record = { ...stamps, ...input, id: input.id ?? this.newId(), district: input.district ?? this.district.id } as unknown as Records[K]
    const collection = this.collection(name)
    if (collection.has(record.id)) throw new Error(`${name}/${record.id} already exists`)
    collection.put(record)
    this.appendEvent(`${name}.created`, record)
    return record
  }

  update<K extends CollectionName>(name: K, id: string, patch: Patch<Records[K]>): UpdateResult<Records[K]> {
    const collection = this.collection(name)
    const current = collection.get(id)
    if (current === undefined) throw new Error(`${name}/${id} does not exist`)
    const proposed = (typeof patch === "function"
      ? patch(current)
      : deepMerge(current as unknown as Record<string, unknown>, patch as Record<string, unknown>)) as Records[K]
    const before = current as unknown as Record<string, unknown>
    const after = proposed as unknown as Record<string, unknown>
    const previous: Record<string, unknown> = {}
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (key !== "last_modified" && !same(before[key], after[key])) previous[key] = before[key] ?? null
    }
    if (Object.keys(previous).length === 0) return { record: current, previous_attributes: {}, event: undefined }
    const record = (TIMESTAMPED.has(name) && same(before["last_modified"], after["last_modified"])
      ? { ...after, last_modified: new Date(this.clock.now()).toISOString() }
      : after) as unknown as Records[K]
    if (record.id !== id) throw new Error(`an update may not change the id (${id} → ${record.id})`)
    collection.put(record)
    const event = this.appendEvent(`${name}.updated`, record, previous)
    return { record, previous_attributes: previous, event }
  }

  remove<K extends MutableCollection>(name: K, id: string): Records[K] {
    const record = this.collection(name).delete(id)
    if (record === undefined) throw new Error(`${name}/${id} does not exist`)
    this.appendEvent(`${name}.deleted`, record)
    return record
  }

  createUser(user: NewRecord<"users">): User {
    return this.create("users", user)
  }
  updateUser(id: string, patch: Patch<User>): UpdateResult<User> {
    return this.update("users", id, patch)
  }
  deleteUser(id: string): User {
    return this.remove("users", id)
  }

  createSection(section: NewRecord<"sections">): Section {
    return this.create("sections", section)
  }
  updateSection(id: string, patch: Patch<Section>): UpdateResult<Section> {
    return this.update("sections", id, patch)
  }
  deleteSection(id: string): Section {
    return this.remove("sections", id)
  }

  createSchool(school: NewRecord<"schools">): School {
    return this.create("schools", school)
  }
  updateSchool(id: string, patch: Patch<School>): UpdateResult<School> {
    return this.update("schools", id, patch)
  }
  deleteSchool(id: string): School {
    return this.remove("schools", id)
  }

  createTerm(term: NewRecord<"terms">): Term {
    return this.create("terms", term)
  }
  updateTerm(id: string, patch: Patch<Term>): UpdateResult<Term> {
    return this.update("terms", id, patch)
  }
  deleteTerm(id: string): Term {
    return this.remove("terms", id)
  }

  createCourse(course: NewRecord<"courses">): Course {
    return this.create("courses", course)
  }
  updateCourse(id: string, patch: Patch<Course>): UpdateResult<Course> {
    return this.update("courses", id, patch)
  }
  deleteCourse(id: string): Course {
    return this.remove("courses", id)
  }

  /** E.g. `{ state: "paused", pause_start, pause_end }` for a district frozen over the summer. */
  updateDistrict(patch: Patch<District>): UpdateResult<District> {
    return this.update("districts", this.district.id, patch)
  }
}

/**
 * Reads a OneRoster CSV set (see OneRosterCsv.ts for the mapping) into a Clever district.
 * `district.ids` relates the Clever ids to the CSV sourcedIds.
 */
export const fromOneRosterCsv = async (dir: string, options: CleverDistrictOptions & ConvertOptions = {}): Promise<CleverDistrict> =>
  new CleverDistrict(await convertOneRosterCsv(dir, options), options)
