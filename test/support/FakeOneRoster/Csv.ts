/**
 * Reads a OneRoster 1.1 CSV set (bench/OneRosterGenerator.ts, writeSmallDistrict, or any
 * set with the standard headers, providers.md §3) into 1.1 REST records (§2.6):
 *
 * - plain sourcedId columns become GUIDRefs (`orgSourcedIds` → `orgs[]`, `termSourcedIds` →
 *   `terms[]`, …); org and session `children` are derived from `parentSourcedId`;
 * - list cells (`grades`, `subjects`, …) become arrays; `userIds` `{LDAP:12},{LTI:15}` →
 *   `[{type:"LDAP",identifier:"12"}, …]`; `metadata.<name>` columns → `metadata`;
 * - `true`/`TRUE`/`false` become booleans (`enabledUser` blank → true, `primary` blank →
 *   false, race flags blank → left out);
 * - `status` blank → `active`, `inactive` (1.0) → `tobedeleted`; rows stay whatever their
 *   status (a delta set's `tobedeleted` rows are served as such);
 * - `dateLastModified` → ISO with milliseconds; blank → the import time.
 *
 * Built for 100,000 students (≈108k users, 837k enrollments): rows are streamed, cells are
 * read by column index, repeated values (dates, roles, grades) and GUIDRefs are shared
 * objects, and every record of a table has the same shape.
 */
import { parse } from "csv-parse"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { DEFAULT_IMPORTED_AT } from "../FakeClever/Ids.ts"
import {
  type AcademicSession, API_PATH, type Class, type Course, type Demographics, type Enrollment, type GUIDRef, type Org,
  RACE_FLAGS, REF_TYPE, type RefType, type Status, type TableName, type User, type UserId
} from "./Types.ts"

export interface DistrictData {
  readonly orgs: ReadonlyArray<Org>
  readonly academicSessions: ReadonlyArray<AcademicSession>
  readonly courses: ReadonlyArray<Course>
  readonly classes: ReadonlyArray<Class>
  readonly users: ReadonlyArray<User>
  readonly enrollments: ReadonlyArray<Enrollment>
  readonly demographics: ReadonlyArray<Demographics>
}

export interface ConvertOptions {
  /** `dateLastModified` of rows that leave it blank (default 2024-01-01T00:00:00Z). */
  readonly importedAt?: number
  /** Where the GUIDRefs come from (the district's, so refs made later by tests are the same objects). */
  readonly refs?: Refs
}

/**
 * Shared, frozen GUIDRefs: 837k enrollments point at ~140k distinct records, so one
 * object per target instead of three per enrollment.
 */
export class Refs {
  /** By table, then type, then sourcedId: no composite key strings to build per lookup. */
  private readonly refs = new Map<TableName, Map<RefType, Map<string, GUIDRef>>>()

  to(table: TableName, sourcedId: string, type: RefType = REF_TYPE[table]): GUIDRef {
    let byType = this.refs.get(table)
    if (byType === undefined) this.refs.set(table, byType = new Map())
    let byId = byType.get(type)
    if (byId === undefined) byType.set(type, byId = new Map())
    let ref = byId.get(sourcedId)
    if (ref === undefined) {
      ref = Object.freeze({ href: `${API_PATH}/${table}/${encodeURIComponent(sourcedId)}`, sourcedId, type })
      byId.set(sourcedId, ref)
    }
    return ref
  }
}

/** One CSV row, read by column name; the same object is reused for every row of a file. */
export class Row {
  cells: ReadonlyArray<string> = []
  /** `metadata.<name>` columns: `[name, index]`. */
  readonly metadataColumns: ReadonlyArray<readonly [string, number]>
  constructor(readonly columns: ReadonlyMap<string, number>) {
    this.metadataColumns = [...columns].flatMap(([name, index]) => (name.startsWith("metadata.") ? [[name.slice("metadata.".length), index] as const] : []))
  }

  /** The trimmed cell, `""` when blank or the column is absent. */
  get(name: string): string {
    return this.cell(this.columns.get(name) ?? -1)
  }

  /** Index of a column, -1 when absent: for the hot loop of a large file. */
  index(name: string): number {
    return this.columns.get(name) ?? -1
  }

  /** The trimmed cell at an {@link index}. */
  cell(index: number): string {
    const value = this.cells[index]
    return value === undefined ? "" : value.trim()
  }
}

/** Streams `<dir>/<file>.csv` (a missing file has no rows), draining the parser per batch. */
export const readCsv = (dir: string, file: string, onRow: (row: Row) => void): Promise<void> => {
  const path = NodePath.join(dir, `${file}.csv`)
  if (!Fs.existsSync(path)) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const parser = Fs.createReadStream(path, { highWaterMark: 1 << 20 })
      .on("error", reject)
      .pipe(parse({ bom: true, skip_empty_lines: true, relax_column_count: true }))
    let row: Row | undefined
    parser.on("readable", () => {
      let cells: Array<string> | null
      while ((cells = parser.read() as Array<string> | null) !== null) {
        if (row === undefined) row = new Row(new Map(cells.map((name, i) => [name.trim(), i])))
        else {
          row.cells = cells
          onRow(row)
        }
      }
    })
    parser.on("error", reject)
    parser.on("end", () => resolve())
  })
}

export const convertOneRosterCsv = async (dir: string, options: ConvertOptions = {}): Promise<DistrictData> => {
  const refs = options.refs ?? new Refs()
  const pool = new Map<string, string>()
  /** One string per distinct value: the 837k enrollments share a handful of dates and roles. */
  const intern = (value: string): string => {
    const known = pool.get(value)
    if (known !== undefined) return known
    pool.set(value, value)
    return value
  }
  const importStamp = new Date(options.importedAt ?? DEFAULT_IMPORTED_AT).toISOString()
  const stamps = new Map<string, string>()
  const stamp = (row: Row): string => {
    const raw = row.get("dateLastModified")
    let value = stamps.get(raw)
    if (value === undefined) {
      const ms = Date.parse(raw)
      value = raw === "" ? importStamp : Number.isNaN(ms) ? raw : new Date(ms).toISOString()
      stamps.set(raw, value)
    }
    return value
  }
  const status = (row: Row): Status => {
    const value = row.get("status").toLowerCase()
    return value === "tobedeleted" || value === "inactive" ? "tobedeleted" : "active"
  }
  const list = (value: string): Array<string> => {
    const out: Array<string> = []
    for (const item of value.split(",")) if (item.trim() !== "") out.push(intern(item.trim()))
    return out
  }
  const ref = (table: TableName, sourcedId: string) => (sourcedId === "" ? undefined : refs.to(table, sourcedId))
  const refList = (table: TableName, value: string) => list(value).map((id) => refs.to(table, id))
  /** `metadata.<name>` columns of the file, if it has any. */
  const metadata = (row: Row): Record<string, string> | undefined => {
    let out: Record<string, string> | undefined
    for (const [name, index] of row.metadataColumns) {
      const value = row.cells[index]?.trim() ?? ""
      if (value !== "") (out ??= {})[name] = value
    }
    return out
  }
  const base = (row: Row) => {
    const meta = metadata(row)
    return { sourcedId: row.get("sourcedId"), status: status(row), dateLastModified: stamp(row), ...(meta === undefined ? {} : { metadata: meta }) }
  }

  const orgs: Array<Omit<Org, "children">> = []
  await readCsv(dir, "orgs", (row) => {
    const parent = ref("orgs", row.get("parentSourcedId"))
    orgs.push({ ...base(row), name: row.get("name"), type: intern(row.get("type")), identifier: row.get("identifier"), ...(parent === undefined ? {} : { parent }) })
  })

  const sessions: Array<Omit<AcademicSession, "children">> = []
  await readCsv(dir, "academicSessions", (row) => {
    const parent = ref("academicSessions", row.get("parentSourcedId"))
    sessions.push({
      ...base(row),
      title: row.get("title"),
      type: intern(row.get("type")),
      startDate: intern(row.get("startDate")),
      endDate: intern(row.get("endDate")),
      ...(parent === undefined ? {} : { parent }),
      schoolYear: intern(row.get("schoolYear"))
    })
  })

  const courses: Array<Course> = []
  await readCsv(dir, "courses", (row) => {
    const schoolYear = ref("academicSessions", row.get("schoolYearSourcedId"))
    const org = ref("orgs", row.get("orgSourcedId"))
    courses.push({
      ...base(row),
      title: row.get("title"),
      courseCode: row.get("courseCode"),
      ...(schoolYear === undefined ? {} : { schoolYear }),
      grades: list(row.get("grades")),
      subjects: list(row.get("subjects")),
      subjectCodes: list(row.get("subjectCodes")),
      ...(org === undefined ? {} : { org })
    })
  })

  const classes: Array<Class> = []
  await readCsv(dir, "classes", (row) => {
    const course = ref("courses", row.get("courseSourcedId"))
    const school = ref("orgs", row.get("schoolSourcedId"))
    classes.push({
      ...base(row),
      title: row.get("title"),
      classCode: row.get("classCode"),
      classType: intern(row.get("classType")),
      location: intern(row.get("location")),
      grades: list(row.get("grades")),
      subjects: list(row.get("subjects")),
      subjectCodes: list(row.get("subjectCodes")),
      ...(course === undefined ? {} : { course }),
      ...(school === undefined ? {} : { school }),
      terms: refList("academicSessions", row.get("termSourcedIds")),
      periods: intern(row.get("periods"))
    })
  })

  const users: Array<User> = []
  await readCsv(dir, "users", (row) => {
    const password = row.get("password")
    users.push({
      ...base(row),
      username: row.get("username"),
      userIds: userIds(row.get("userIds")),
      enabledUser: bool(row.get("enabledUser")) ?? true,
      givenName: row.get("givenName"),
      familyName: row.get("familyName"),
      middleName: row.get("middleName"),
      role: intern(row.get("role")),
      identifier: row.get("identifier"),
      email: row.get("email"),
      sms: row.get("sms"),
      phone: row.get("phone"),
      agents: refList("users", row.get("agentSourcedIds")),
      orgs: refList("orgs", row.get("orgSourcedIds")),
      grades: list(row.get("grades")),
      ...(password === "" ? {} : { password })
    })
  })

  // The bulk of a large district: columns looked up once, a fixed-shape literal.
  const enrollments: Array<Enrollment> = []
  let column: Record<string, number> | undefined
  await readCsv(dir, "enrollments", (row) => {
    const c = column ??= Object.fromEntries(
      ["sourcedId", "status", "dateLastModified", "userSourcedId", "classSourcedId", "schoolSourcedId", "role", "primary", "beginDate", "endDate"]
        .map((name) => [name, row.index(name)])
    )
    const rawStatus = row.cell(c["status"]!)
    enrollments.push({
      sourcedId: row.cell(c["sourcedId"]!),
      status: rawStatus === "" ? "active" : status(row),
      dateLastModified: stamp(row),
      user: refs.to("users", row.cell(c["userSourcedId"]!)),
      class: refs.to("classes", row.cell(c["classSourcedId"]!)),
      school: refs.to("orgs", row.cell(c["schoolSourcedId"]!)),
      role: intern(row.cell(c["role"]!)),
      primary: bool(row.cell(c["primary"]!)) ?? false,
      beginDate: intern(row.cell(c["beginDate"]!)),
      endDate: intern(row.cell(c["endDate"]!))
    })
  })

  const demographics: Array<Demographics> = []
  await readCsv(dir, "demographics", (row) => {
    const flags: Record<string, boolean> = {}
    for (const flag of RACE_FLAGS) {
      const value = bool(row.get(flag))
      if (value !== undefined) flags[flag] = value
    }
    demographics.push({
      ...base(row),
      birthDate: row.get("birthDate"),
      sex: intern(row.get("sex")),
      ...flags,
      countryOfBirthCode: intern(row.get("countryOfBirthCode")),
      stateOfBirthAbbreviation: intern(row.get("stateOfBirthAbbreviation")),
      cityOfBirth: intern(row.get("cityOfBirth")),
      publicSchoolResidenceStatus: intern(row.get("publicSchoolResidenceStatus"))
    })
  })

  return {
    orgs: withChildren(orgs, (id) => refs.to("orgs", id)),
    academicSessions: withChildren(sessions, (id) => refs.to("academicSessions", id)),
    courses,
    classes,
    users,
    enrollments,
    demographics
  }
}

/** `true`/`false` in any case; anything else undefined. */
export const bool = (value: string): boolean | undefined => {
  const lower = value.toLowerCase()
  return lower === "true" ? true : lower === "false" ? false : undefined
}

/** `{LDAP:12},{LTI:15}` → `[{type:"LDAP",identifier:"12"},{type:"LTI",identifier:"15"}]`. */
export const userIds = (value: string): Array<UserId> =>
  value === "" ? [] : (value.match(/\{[^}]*\}|[^,{}]+/g) ?? []).flatMap((item) => {
    const inner = item.replace(/^\{|\}$/g, "").trim()
    if (inner === "") return []
    const colon = inner.indexOf(":")
    return [colon < 0 ? { type: "", identifier: inner } : { type: inner.slice(0, colon).trim(), identifier: inner.slice(colon + 1).trim() }]
  })

/** Adds `children` (refs of the records naming each one as parent, in sourcedId order). */
export const withChildren = <A extends { readonly sourcedId: string; readonly parent?: GUIDRef }>(
  records: ReadonlyArray<A>,
  refTo: (sourcedId: string) => GUIDRef
): Array<A & { readonly children: ReadonlyArray<GUIDRef> }> => {
  const children = new Map<string, Array<string>>()
  for (const record of records) {
    if (record.parent === undefined) continue
    const list = children.get(record.parent.sourcedId)
    if (list === undefined) children.set(record.parent.sourcedId, [record.sourcedId])
    else list.push(record.sourcedId)
  }
  return records.map((record) => ({ ...record, children: (children.get(record.sourcedId) ?? []).sort().map(refTo) }))
}
