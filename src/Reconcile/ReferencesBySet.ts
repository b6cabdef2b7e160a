import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Config, Data, Effect } from "effect"
import { parameterGrants } from "../Store/Roles.ts"

/**
 * The sync's bulk inserts check their foreign keys once per set instead of once per row.
 *
 * Postgres checks a foreign key with a trigger per written row: a look-up and a row lock in
 * the referenced table, 5–7 µs each. A first sync of ten million enrollments runs thirty
 * million of them (district, class, user): three minutes at 1.2 million students, two
 * thirds of the enrollments' insert. Yet what these inserts reference is known: the run's
 * district, and classes and users of that district that the plan's joins read in this very
 * transaction. Nothing in the run deletes a row (rostered data is deactivated), and only a
 * run holding the district's lease or `district erase` (which holds it too) may delete the
 * district's rows: the lock triggers refuse every other writer, and the platform's role
 * may not claim to be rosterd's (migrations/0008).
 *
 * So such an insert runs with the per-row triggers off (`session_replication_role =
 * replica`, as logical replication's apply and `pg_restore --disable-triggers` load) and
 * is checked as a set first: the district's row is locked as the triggers would lock it
 * (`FOR KEY SHARE`, once), and one statement counts the rows to write whose class or user
 * is not the district's (a stronger rule than the keys': any class or user would do for
 * them). Any such row fails the run: nothing of it is applied. The constraints stay
 * declared and valid, and every other writer's rows are checked row by row as before.
 * Used by the roster inserts (Apply.ts) and by linking's accounts and links
 * (src/Accounts/Linking.ts: accounts this run created or read, users of the district).
 *
 * It applies where the app role may set `session_replication_role` (PostgreSQL 15 and
 * later: `rosterd db setup-roles` grants it, the embedded default has it; a superuser may)
 * and `rosterd.sync.referencesBySet` is on (the default). Elsewhere Postgres checks each row.
 * The platform's role is never granted it.
 */

/** `rosterd.sync.referencesBySet`: off, Postgres checks every row's foreign keys itself (slower at scale). */
export const ReferencesBySetConfig = Config.boolean("referencesBySet").pipe(
  Config.withDefault(true),
  Config.nested("sync"),
  Config.nested("rosterd")
)

/** Rows about to be written that reference what is not the district's (a defect: the run dies, nothing applied). */
export class DanglingReferences extends Data.TaggedError("DanglingReferences")<{ readonly message: string }> {}

/**
 * Counts (`n`) the memberships of `plan` (the enrollments' plan table) to create whose class
 * or user is not the district's (`$1`): each side hashed once, one pass over the plan.
 */
export const membershipsOutsideDistrict = (plan: string) =>
  `SELECT count(*)::int AS n FROM ${plan} p WHERE p.action = 'create'
     AND (p.class_id NOT IN (SELECT id FROM classes WHERE district_id = $1) OR p.user_id NOT IN (SELECT id FROM users WHERE district_id = $1))`

/** Whether this session may turn the per-row triggers off (PostgreSQL 15+: granted; before: a superuser). */
export const mayWriteAsSet = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = (yield* parameterGrants)
    ? yield* sql<{ readonly may: boolean }>`SELECT has_parameter_privilege('session_replication_role', 'SET') AS may`
    : yield* sql<{ readonly may: boolean }>`SELECT rolsuper AS may FROM pg_roles WHERE rolname = current_user`
  return row?.may === true
})

/**
 * Runs `write` (statements of the run's transaction that insert rows referencing the
 * district, its classes and its users) with the per-row triggers off, then checks the set:
 * the district's row is locked against deletion until the run commits, and `dangling`, a
 * query counting the rows to write whose reference is not the district's (`n`), must find
 * none. With `bySet` false, `write` runs as is and Postgres checks each row.
 */
export const writeReferencesBySet = <A, E, R>(options: {
  readonly bySet: boolean
  readonly table: string
  readonly districtId: string
  readonly dangling?: string
  readonly write: Effect.Effect<A, E, R>
}): Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    if (!options.bySet) return yield* options.write
    const sql = yield* SqlClient.SqlClient
    const [district] = yield* sql<{ readonly id: string }>`SELECT id FROM districts WHERE id = ${options.districtId} FOR KEY SHARE`
    if (district === undefined) {
      return yield* Effect.die(new DanglingReferences({ message: `${options.table}: the district to write is not in the store; nothing was applied` }))
    }
    if (options.dangling !== undefined) {
      const [found] = yield* sql.unsafe<{ readonly n: number }>(options.dangling, [options.districtId])
      const n = found?.n ?? 0
      if (n > 0) {
        return yield* Effect.die(new DanglingReferences({ message: `${options.table}: ${n} rows to write reference a class or user that is not the district's; nothing was applied` }))
      }
    }
    yield* sql`SET LOCAL session_replication_role = replica`
    // (A failed write aborts the transaction, which ends the setting with it.)
    const result = yield* options.write
    yield* sql`SET LOCAL session_replication_role = origin`
    return result
  }).pipe(Effect.withSpan("ReferencesBySet.write", { attributes: { table: options.table, bySet: options.bySet } }))
