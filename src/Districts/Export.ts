import { SqlClient } from "@effect/sql"
import { Effect, Ref, Schema, Stream } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Audit } from "../Audit/Audit.ts"
import { DistrictNotFound } from "../Domain/Errors.ts"

/**
 * `rosterd district export`: everything rosterd holds of one district, as JSON lines —
 * what a district asks for at the end of its contract, before `district erase`.
 *
 * - One object per line, `{"kind":"user", ...the row's columns}` (column names as in the
 *   database, in table order), kinds in dependency order.
 * - **One snapshot**: every kind is read in one REPEATABLE READ transaction, so a sync
 *   running meanwhile cannot make the file inconsistent (and needs no lease).
 * - **Streamed**: each kind is one query read through a server-side cursor (`sql.stream`);
 *   the JSON text is made by Postgres, so a line is never parsed here. Memory stays flat
 *   for a million enrollments.
 * - **Never a partial file**: written to a temporary file beside the target (mode 0600)
 *   and moved into place only when complete, in the transaction that writes the audit row;
 *   an existing file is kept unless `force` (checked again when moving, atomically).
 * - The file is personal data by design; the audit row and the result carry counts only.
 */

interface ExportKind {
  readonly kind: string
  /** `FROM …` with alias `t` and the district as `$1`. */
  readonly from: string
  readonly order: string
}

/** What an export contains, in the order it is written. `account_link`: the district's users' links (the accounts are the platform's). */
export const EXPORT_KINDS: ReadonlyArray<ExportKind> = [
  { kind: "district", from: "districts t WHERE t.id = $1", order: "t.id" },
  { kind: "school", from: "schools t WHERE t.district_id = $1", order: "t.id" },
  { kind: "term", from: "terms t WHERE t.district_id = $1", order: "t.id" },
  { kind: "course", from: "courses t WHERE t.district_id = $1", order: "t.id" },
  { kind: "class", from: "classes t WHERE t.district_id = $1", order: "t.id" },
  { kind: "user", from: "users t WHERE t.district_id = $1", order: "t.id" },
  // (Its `kind` is written as `identity_kind`: the line's own `kind` says what the line is.)
  {
    kind: "user_identity",
    from: `(SELECT district_id, user_id, provider, kind AS identity_kind, type, value, first_seen_at, ended_at, ended_reason
            FROM user_identities) t WHERE t.district_id = $1`,
    order: "t.user_id, t.provider, t.identity_kind, t.type, t.value"
  },
  { kind: "enrollment", from: "enrollments t WHERE t.district_id = $1", order: "t.id" },
  // Guardians and contacts and their students (rules.contacts); the contacts themselves are `user` lines.
  { kind: "contact_link", from: "contact_links t WHERE t.district_id = $1", order: "t.contact_user_id, t.student_source_id" },
  { kind: "account_link", from: "account_links t JOIN users u ON u.id = t.user_id WHERE u.district_id = $1", order: "t.user_id" },
  { kind: "account_review", from: "account_reviews t WHERE t.district_id = $1", order: "t.id" },
  { kind: "admin", from: "admins t WHERE t.district_id = $1", order: "t.id" },
  { kind: "sync_run", from: "sync_runs t WHERE t.district_id = $1", order: "t.id" },
  { kind: "finding", from: "findings t WHERE t.district_id = $1", order: "t.id" }
]

export class ExportRefused extends Schema.TaggedError<ExportRefused>()("ExportRefused", { message: Schema.String }) {}

export interface ExportOptions {
  /** The file to write (relative to the working directory). */
  readonly path: string
  /** Replace an existing file. */
  readonly force: boolean
  /** Who exports (the audit row's actor). */
  readonly by: string
}

export interface ExportResult {
  readonly districtId: string
  readonly path: string
  readonly counts: Readonly<Record<string, number>>
  readonly bytes: number
}

const CHUNK_ROWS = 2000

const failure = (what: string, path: string) => (cause: unknown) =>
  new ExportRefused({ message: `cannot ${what} ${path}: ${cause instanceof Error ? cause.message : String(cause)}` })

/** The temporary file, removed unless it was moved into place. */
const tempFile = (path: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const temp = NodePath.join(NodePath.dirname(path), `.${NodePath.basename(path)}.${randomBytes(6).toString("hex")}.tmp`)
        const handle = await Fs.promises.open(temp, "wx", 0o600)
        // The mode given to open() is reduced by the umask; the file must be 0600 whatever it is.
        await handle.chmod(0o600)
        return { temp, handle }
      },
      catch: failure("write in the folder of", path)
    }),
    ({ handle, temp }) => Effect.promise(() => handle.close().catch(() => undefined).then(() => Fs.promises.rm(temp, { force: true })))
  )

/** Moves the complete file into place: `link` refuses an existing target atomically; `rename` replaces it (`force`). */
const publish = (temp: string, path: string, force: boolean) =>
  Effect.tryPromise({
    try: async () => {
      if (force) return Fs.promises.rename(temp, path)
      try {
        await Fs.promises.link(temp, path)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === "EEXIST") throw new ExportRefused({ message: `${path} exists: give --force to replace it` })
        // File systems without hard links: the check is no longer atomic, but still made.
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw error
        if (Fs.existsSync(path)) throw new ExportRefused({ message: `${path} exists: give --force to replace it` })
        await Fs.promises.rename(temp, path)
      }
    },
    catch: (error) => (error instanceof ExportRefused ? error : failure("write", path)(error))
  })

export class DistrictExport extends Effect.Service<DistrictExport>()("rosterd/DistrictExport", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit

    /** Streams one kind's lines into the file; returns how many. */
    const writeKind = (handle: Fs.promises.FileHandle, path: string, districtId: string, kind: ExportKind) =>
      sql.unsafe<{ readonly line: string }>(
        `SELECT '{"kind":"${kind.kind}",' || substr(row_to_json(t)::text, 2) AS line FROM ${kind.from} ORDER BY ${kind.order}`,
        [districtId]
      ).stream.pipe(
        Stream.rechunk(CHUNK_ROWS),
        Stream.mapChunksEffect((chunk) =>
          Effect.tryPromise({
            try: async () => {
              let text = ""
              for (const row of chunk) text += row.line + "\n"
              await handle.write(text)
              return chunk
            },
            catch: failure("write", path)
          })),
        Stream.runCount
      )

    const run = Effect.fn("DistrictExport.run")(function*(districtId: string, options: ExportOptions) {
      const path = NodePath.resolve(options.path)
      if (!options.force && Fs.existsSync(path)) return yield* new ExportRefused({ message: `${path} exists: give --force to replace it` })
      const published = yield* Ref.make(false)
      return yield* Effect.scoped(Effect.gen(function*() {
        const { handle, temp } = yield* tempFile(path)
        return yield* sql.withTransaction(Effect.gen(function*() {
          // Must be the transaction's first statement: one snapshot for every kind.
          yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`
          const [district] = yield* sql`SELECT id FROM districts WHERE id = ${districtId}`
          if (district === undefined) return yield* new DistrictNotFound({ district: districtId })
          const counts: Record<string, number> = {}
          for (const kind of EXPORT_KINDS) counts[kind.kind] = yield* writeKind(handle, path, districtId, kind)
          const { size } = yield* Effect.tryPromise({ try: () => handle.sync().then(() => handle.stat()), catch: failure("write", path) })
          // Counts and size only: never anything from the file.
          yield* audit.record({
            actor: options.by,
            action: "district.export",
            districtId,
            subject: `district ${districtId}`,
            details: { counts, bytes: size, force: options.force }
          })
          yield* publish(temp, path, options.force)
          yield* Ref.set(published, true)
          return { districtId, path, counts, bytes: size } satisfies ExportResult
        }))
      })).pipe(
        // A commit that fails after the move would leave an export without its audit row: take it back.
        Effect.tapErrorCause(() =>
          Effect.flatMap(Ref.get(published), (moved) => (moved ? Effect.promise(() => Fs.promises.rm(path, { force: true })) : Effect.void))
        )
      )
    })

    return {
      run: (districtId: string, options: ExportOptions) =>
        run(districtId, options).pipe(Effect.catchTag("SqlError", Effect.die))
    } as const
  }),
  dependencies: [Audit.Default]
}) {}
