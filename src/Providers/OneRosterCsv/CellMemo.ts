import { Either, Option, Schema, SchemaAST } from "effect"
import { CELL_REFUSED, type CellDecoder, CellDecoderId } from "./Columns.ts"

/**
 * Decoding a file's rows column by column, remembering each column's recent cells.
 *
 * A roster file repeats itself down its columns: every enrollment of a class names the
 * same class, school, role, status and dates; ten million enrollments hold a few hundred
 * thousand distinct values outside their own IDs. Decoding a row with its file's
 * `Schema.Struct` runs every column's decoder again each time (about 5 µs an enrollment,
 * the largest single cost of staging one). Here each column is decoded on its own, by its
 * own schema from the Struct, and a cell seen lately in that column is answered from a
 * small memo. A column whose cells rarely repeat (a row's own ID) stops remembering.
 *
 * The result is the Struct's own: a Struct of required properties decodes each property
 * from its cell with the property's schema, independently, into an object of those
 * properties in the Struct's order — which is what this builds. Only values that are not
 * objects are remembered (an array or object from a memo would be shared by every row
 * that repeats the cell). A row with any cell that fails to decode is given back undecoded
 * (`undefined`): the caller decodes it with the Struct, which says what is wrong with it
 * exactly as before. Checked against the Struct by a property test (CellMemo.test.ts).
 */

/** Where a row's cells are: each column name's position in the row, -1 when the file lacks it. */
export type CellPositions = ReadonlyArray<readonly [name: string, index: number]>

export type ColumnwiseDecoder = (positions: CellPositions) => (row: ReadonlyArray<string>) => Record<string, unknown> | undefined

const FAILED = CELL_REFUSED
/** Cells remembered per column, at most (the memo is emptied when full). */
const MEMO_SIZE = 2048
/** Look-ups after which a column that found less than a quarter of its cells in the memo stops remembering. */
const PROBE = 4096

class Column {
  private memo: Map<string, unknown> | null = new Map()
  private lookups = 0
  private hits = 0
  private readonly decodeCell: (cell: string) => unknown

  constructor(readonly name: string, schema: Schema.Schema<unknown, string>) {
    // The column's own cell decoder when it has one (Columns.ts: the schema decodes through
    // it), else the schema.
    const direct = SchemaAST.getAnnotation<CellDecoder<unknown>>(schema.ast, CellDecoderId)
    if (Option.isSome(direct)) this.decodeCell = direct.value
    else {
      const decode = Schema.decodeUnknownEither(schema)
      this.decodeCell = (cell) => {
        const decoded = decode(cell)
        return Either.isRight(decoded) ? decoded.right : FAILED
      }
    }
  }

  /** The cell's value, or `FAILED`. */
  value(cell: string): unknown {
    const memo = this.memo
    if (memo === null) return this.decodeCell(cell)
    this.lookups += 1
    const known = memo.get(cell)
    if (known !== undefined || memo.has(cell)) {
      this.hits += 1
      return known
    }
    const value = this.decodeCell(cell)
    if ((value !== FAILED && typeof value === "object" && value !== null) || (this.lookups >= PROBE && this.hits * 4 < this.lookups)) {
      // Objects are never shared between rows, and cells that rarely repeat are not worth
      // remembering: this column is decoded afresh from now on.
      this.memo = null
      return value
    }
    if (memo.size >= MEMO_SIZE) memo.clear()
    memo.set(cell, value)
    return value
  }

}

/**
 * The column-wise decoder of `schema`, or null when it is not a Struct of required
 * properties (each then decoded by the Struct as a whole, as before).
 */
export const columnwise = (schema: Schema.Schema.Any): ColumnwiseDecoder | null => {
  const ast = schema.ast
  if (!SchemaAST.isTypeLiteral(ast) || ast.indexSignatures.length > 0) return null
  if (ast.propertySignatures.some((property) => property.isOptional || typeof property.name !== "string")) return null
  const columns = ast.propertySignatures.map((property) => new Column(property.name as string, Schema.make(property.type)))
  return (positions) => {
    const index = new Map(positions)
    // A property the positions do not name at all would be missing from the Struct's input (not
    // an empty cell): such rows are left to the Struct.
    if (columns.some((column) => !index.has(column.name))) return () => undefined
    const at = columns.map((column) => index.get(column.name)!)
    return (row) => {
      const out: Record<string, unknown> = {}
      for (let i = 0; i < columns.length; i++) {
        const position = at[i]!
        // A column the file lacks, or a short row, reads as an empty cell (as the Struct's input has it).
        const value = columns[i]!.value(position >= 0 && position < row.length ? row[position]! : "")
        if (value === FAILED) return undefined
        out[columns[i]!.name] = value
      }
      return out
    }
  }
}
