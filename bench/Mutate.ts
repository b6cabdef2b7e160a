import * as Fs from "node:fs"
import * as NodePath from "node:path"
import * as Readline from "node:readline"

/**
 * The bench's 1 % resync: a copy of a generated district with about 1 % of its records
 * changed, and the counts a sync of it must report.
 *
 * Chosen by a hash of each source ID (deterministic for a district):
 * - of the students, 1 in 200 renamed (given name), 1 in 400 removed (with their
 *   demographics and enrollments), and for 1 in 400 a new student added (with birth date
 *   and one enrollment, in the class of the student it is made beside);
 * - of the students' enrollments, 1 in 100 moved to a class of the same school the student
 *   is not in (a move is a membership ended and one begun).
 *
 * Every other line is copied as it is. Reads and writes line by line: flat memory for the
 * 1.2-million-student district. The generator writes no quoted cells; a quote stops it.
 */

export interface ResyncExpectation {
  readonly users: { readonly created: number; readonly updated: number; readonly deactivated: number }
  readonly enrollments: { readonly created: number; readonly deactivated: number }
  readonly changedRecords: number
}

const bucket = (id: string, of: number) => {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  return (h >>> 0) % of
}

type Fate = "renamed" | "removed" | "twin" | "kept"
const fateOf = (userId: string): Fate => {
  const b = bucket(userId, 400)
  return b < 2 ? "renamed" : b === 2 ? "removed" : b === 3 ? "twin" : "kept"
}

const lines = (file: string) => Readline.createInterface({ input: Fs.createReadStream(file), crlfDelay: Infinity })

const writer = (file: string) => {
  const out = Fs.createWriteStream(file)
  let buffer: Array<string> = []
  return {
    write: async (line: string) => {
      buffer.push(line)
      if (buffer.length >= 4096) {
        const text = buffer.join("\n") + "\n"
        buffer = []
        if (!out.write(text)) await new Promise<void>((resolve) => out.once("drain", () => resolve()))
      }
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        out.end(buffer.length > 0 ? buffer.join("\n") + "\n" : "", () => resolve())
        out.once("error", reject)
      })
  }
}

const rewrite = async (
  from: string,
  to: string,
  each: (cells: Array<string>, names: ReadonlyArray<string>) => ReadonlyArray<Array<string>>,
  end: () => ReadonlyArray<Array<string>> = () => []
) => {
  const out = writer(to)
  let names: ReadonlyArray<string> | undefined
  for await (const line of lines(from)) {
    if (names === undefined) {
      names = line.split(",")
      await out.write(line)
      continue
    }
    if (line === "") continue
    if (line.includes("\"")) throw new Error(`${from}: a quoted cell; the bench's mutation reads plain generated files only`)
    for (const cells of each(line.split(","), names)) await out.write(cells.join(","))
  }
  for (const cells of end()) await out.write(cells.join(","))
  await out.close()
}

/** Writes the changed copy of `from` into `to` and returns the counts its sync must report. */
export const mutateDistrict = async (from: string, to: string): Promise<ResyncExpectation> => {
  Fs.mkdirSync(to, { recursive: true })
  for (const file of Fs.readdirSync(from)) {
    if (!["users.csv", "demographics.csv", "enrollments.csv"].includes(file) && file.endsWith(".csv")) {
      Fs.copyFileSync(NodePath.join(from, file), NodePath.join(to, file))
    }
  }
  let renamed = 0
  let removed = 0
  let twins = 0
  await rewrite(NodePath.join(from, "users.csv"), NodePath.join(to, "users.csv"), (cells, names) => {
    const id = cells[names.indexOf("sourcedId")]!
    if (cells[names.indexOf("role")] !== "student") return [cells]
    const fate = fateOf(id)
    if (fate === "renamed") {
      renamed++
      const at = names.indexOf("givenName")
      return [cells.map((c, i) => (i === at ? `${c}a` : c))]
    }
    if (fate === "removed") {
      removed++
      return []
    }
    if (fate === "twin") {
      twins++
      const email = names.indexOf("email")
      const twin = cells.map((c, i) => (i === 0 ? `${id}-new` : i === email ? c.replace("@", ".new@") : c))
      return [cells, twin]
    }
    return [cells]
  })
  await rewrite(NodePath.join(from, "demographics.csv"), NodePath.join(to, "demographics.csv"), (cells) => {
    const id = cells[0]!
    const fate = fateOf(id)
    if (fate === "removed") return []
    if (fate === "twin") return [cells, [`${id}-new`, ...cells.slice(1)]]
    return [cells]
  })
  // Enrollments: a student's rows are consecutive in a generated file; each student's
  // block is decided whole, so a move never lands in a class the student is already in.
  let ended = 0
  let begun = 0
  let moved = 0
  const recent = new Map<string, Array<string>>() // school → classes seen lately
  let names: ReadonlyArray<string> = []
  let block: Array<Array<string>> = []
  const col = (cells: ReadonlyArray<string>, name: string) => cells[names.indexOf(name)]!
  const flush = (): Array<Array<string>> => {
    const rows = block
    block = []
    if (rows.length === 0) return []
    const userId = col(rows[0]!, "userSourcedId")
    const fate = fateOf(userId)
    if (fate === "removed") {
      ended += rows.length
      return []
    }
    if (fate === "twin") {
      begun++
      const twin = rows[0]!.map((c, i) =>
        i === names.indexOf("sourcedId") ? `${c}-new` : i === names.indexOf("userSourcedId") ? `${userId}-new` : c)
      return [...rows, twin]
    }
    if (fate !== "kept") return rows
    const classes = new Set(rows.map((r) => col(r, "classSourcedId")))
    return rows.map((cells) => {
      if (bucket(col(cells, "sourcedId"), 100) !== 0) return cells
      const target = (recent.get(col(cells, "schoolSourcedId")) ?? []).find((k) => !classes.has(k))
      if (target === undefined) return cells
      classes.add(target)
      moved++
      return cells.map((c, i) => (i === names.indexOf("classSourcedId") ? target : c))
    })
  }
  await rewrite(NodePath.join(from, "enrollments.csv"), NodePath.join(to, "enrollments.csv"), (cells, header) => {
    names = header
    const klass = col(cells, "classSourcedId")
    const school = col(cells, "schoolSourcedId")
    let pool = recent.get(school)
    if (pool === undefined) recent.set(school, pool = [])
    if (!pool.includes(klass)) {
      pool.push(klass)
      if (pool.length > 64) pool.shift()
    }
    if (col(cells, "role") !== "student") return [...flush(), cells]
    const out = block.length > 0 && col(block[0]!, "userSourcedId") !== col(cells, "userSourcedId") ? flush() : []
    block.push(cells)
    return out
  }, flush)
  return {
    users: { created: twins, updated: renamed, deactivated: removed },
    enrollments: { created: begun + moved, deactivated: ended + moved },
    changedRecords: twins + renamed + removed + begun + moved + ended
  }
}
