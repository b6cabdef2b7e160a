/**
 * The benchmark's baseline: the rows a full sync writes, loaded with plain `COPY`.
 *
 * `prepareCopy` reads the district's CSV files (csv-parse), decodes every row exactly as the
 * OneRoster CSV provider does (the same row schemas and `toRecord`), and writes one COPY
 * text file per live table, with explicit surrogate ids so that enrollments can carry
 * their `class_id`/`user_id`. Files are streamed out in ~1 MB writes, so memory stays flat
 * (only the class and user id maps are kept). `loadCopy` then streams those files into
 * the live tables in one transaction: that, and only that, is what the baseline times.
 */
import { parse } from "csv-parse"
import { Either, Schema } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { pipeline } from "node:stream/promises"
import type pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import type { EntityKind } from "../src/Domain/Roster.ts"
import type { CsvFileSpec } from "../src/Providers/OneRosterCsv/Files.ts"
import { CsvFiles } from "../src/Providers/OneRosterCsv/Files.ts"
import { Entities } from "../src/Reconcile/Entities.ts"
import { copyValue } from "../src/Store/Copy.ts"

export interface CopyTable {
  readonly table: string
  readonly columns: ReadonlyArray<string>
  readonly file: string
  /** Rows in the file. */
  readonly rows: number
}

export interface PreparedCopy {
  /** In load (foreign-key) order. */
  readonly tables: ReadonlyArray<CopyTable>
  /** CSV rows the sync would not write either (invalid, `tobedeleted`, dangling enrollments). */
  readonly skipped: number
}

/** Buffered synchronous writer: ~1 MB per write(2). */
class TextWriter {
  private buffer: Array<string> = []
  private size = 0
  private readonly fd: number
  rows = 0
  constructor(readonly path: string) {
    this.fd = Fs.openSync(path, "w")
  }
  line(text: string) {
    this.buffer.push(text)
    this.size += text.length + 1
    this.rows++
    if (this.size > 1 << 20) this.flush()
  }
  flush() {
    if (this.buffer.length > 0) Fs.writeSync(this.fd, this.buffer.join("\n") + "\n")
    this.buffer = []
    this.size = 0
  }
  close() {
    this.flush()
    Fs.closeSync(this.fd)
  }
}

/** The valid records of one CSV file of the set, decoded as the provider decodes them. */
async function* records<K extends EntityKind>(dir: string, kind: K, onInvalid: () => void): AsyncGenerator<any> {
  const spec = CsvFiles[kind].spec as unknown as CsvFileSpec<K, unknown>
  const decode = Schema.decodeUnknownEither(spec.row)
  const names = [...spec.required, ...spec.optional]
  const parser = Fs.createReadStream(NodePath.join(dir, spec.file), { highWaterMark: 1 << 20 })
    .pipe(parse({ bom: true, relax_column_count: true, skip_empty_lines: true }))
  let positions: ReadonlyArray<readonly [string, number]> | undefined
  let width = 0
  for await (const row of parser as AsyncIterable<Array<string>>) {
    if (positions === undefined) {
      const header = row.map((cell) => cell.trim())
      width = header.length
      positions = names.map((name) => [name, header.indexOf(name)] as const)
      continue
    }
    if (row.length !== width) {
      onInvalid()
      continue
    }
    const cells: Record<string, string> = {}
    for (const [name, index] of positions) cells[name] = index >= 0 ? row[index]! : ""
    const decoded = decode(cells)
    if (Either.isLeft(decoded)) {
      onInvalid()
      continue
    }
    yield spec.toRecord(decoded.right)
  }
}

export const prepareCopy = async (options: {
  readonly dataDir: string
  readonly outDir: string
  readonly districtId: string
  readonly rosterSource: string
}): Promise<PreparedCopy> => {
  const { dataDir, districtId, outDir, rosterSource } = options
  let skipped = 0
  const invalid = () => {
    skipped++
  }
  const prefix = `${copyValue(districtId)}\t`
  const source = copyValue(rosterSource)

  // Birth dates, as the sync merges a bulk demographics feed into users.
  const birthDates = new Map<string, string | null>()
  if (Fs.existsSync(NodePath.join(dataDir, CsvFiles.demographics.spec.file))) {
    for await (const record of records(dataDir, "demographics", invalid)) {
      birthDates.set(record.userSourceId, record.status === "active" ? record.birthDate : null)
    }
  }

  const tables: Array<CopyTable> = []
  const ids: Partial<Record<EntityKind, Map<string, number>>> = { classes: new Map(), users: new Map() }
  for (const kind of ["orgs", "terms", "courses", "classes", "users"] as const) {
    const spec = Entities[kind] as unknown as (typeof Entities)["orgs"]
    const table = spec.table!
    const writer = new TextWriter(NodePath.join(outDir, `${table}.copy`))
    const idMap = ids[kind]
    let id = 0
    for await (const record of records(dataDir, kind, invalid)) {
      if (record.status !== "active") {
        skipped++
        continue
      }
      id++
      const sourceId: string = spec.sourceId(record)
      idMap?.set(sourceId, id)
      let line = `${id}\t${prefix}${copyValue(sourceId)}\t${source}`
      for (const column of spec.columns) line += `\t${copyValue(column.get(record))}`
      if (kind === "users") line += `\t${copyValue(birthDates.get(sourceId) ?? null)}`
      writer.line(line)
    }
    writer.close()
    tables.push({
      table,
      columns: ["id", "district_id", "source_id", "roster_source", ...spec.columns.map((c) => c.name), ...(kind === "users" ? ["birth_date"] : [])],
      file: writer.path,
      rows: writer.rows
    })
  }
  birthDates.clear()

  const classIds = ids.classes!
  const userIds = ids.users!
  const enrollment = Entities.enrollments
  const writer = new TextWriter(NodePath.join(outDir, "enrollments.copy"))
  let id = 0
  for await (const record of records(dataDir, "enrollments", invalid)) {
    const classId = classIds.get(record.classSourceId)
    const userId = userIds.get(record.userSourceId)
    if (record.status !== "active" || classId === undefined || userId === undefined) {
      skipped++
      continue
    }
    id++
    let line = `${id}\t${prefix}${classId}\t${userId}\t${copyValue(record.sourceId)}\t${source}`
    for (const column of enrollment.columns) line += `\t${copyValue(column.get(record))}`
    writer.line(line)
  }
  writer.close()
  tables.push({
    table: "enrollments",
    columns: ["id", "district_id", "class_id", "user_id", "source_id", "roster_source", ...enrollment.columns.map((c) => c.name)],
    file: writer.path,
    rows: id
  })
  return { tables, skipped }
}

/** Streams the prepared files into their tables in one transaction; returns rows and milliseconds per table. */
export const loadCopy = async (client: pg.Client, prepared: PreparedCopy): Promise<Record<string, { rows: number; ms: number }>> => {
  const loaded: Record<string, { rows: number; ms: number }> = {}
  await client.query("BEGIN")
  // Written as the sync writes: the lock triggers on district-synced rows let it through.
  await client.query("SELECT set_config('rosterd.writer', 'sync', true)")
  try {
    for (const { columns, file, table } of prepared.tables) {
      const started = performance.now()
      const copy = client.query(copyFrom(`COPY ${table} (${columns.join(", ")}) FROM STDIN`))
      await pipeline(Fs.createReadStream(file, { highWaterMark: 1 << 20 }), copy)
      loaded[table] = { rows: copy.rowCount, ms: performance.now() - started }
    }
    await client.query("COMMIT")
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined)
    throw error
  }
  return loaded
}

/** After the load (untimed): move the identity sequences past the explicit ids. */
export const advanceSequences = async (client: pg.Client, prepared: PreparedCopy) => {
  for (const { table } of prepared.tables) {
    await client.query(
      `SELECT setval(pg_get_serial_sequence('${table}', 'id'), greatest((SELECT max(id) FROM ${table}), 1))`
    )
  }
}
