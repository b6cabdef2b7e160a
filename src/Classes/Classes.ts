import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { AccountMerged, AccountNotFound, refuseOnLock, UserNotFound } from "../Accounts/Accounts.ts"

/**
 * What the platform does to classes and users in the product — teacher-made classes and
 * their students, integrations, renames — as plain SQL, the way the platform itself writes.
 * These statements do NOT identify as the sync (`rosterd.writer`), so the database's lock
 * triggers decide: on district-synced classes and users they refuse with SQLSTATE RSLCK,
 * reported as `refused: <the rule and why>`. The rules live only in the database
 * (migrations/0002); nothing here repeats them.
 */

export class ClassNotFound extends Schema.TaggedError<ClassNotFound>()("ClassNotFound", {
  classId: Schema.Number
}) {
  override get message() {
    return `no class ${this.classId}`
  }
}

export class NotEnrolled extends Schema.TaggedError<NotEnrolled>()("NotEnrolled", {
  classId: Schema.Number,
  userId: Schema.Number,
  role: Schema.String
}) {
  override get message() {
    return `user ${this.userId} has no open ${this.role} enrollment in class ${this.classId}`
  }
}

export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  problem: Schema.String
}) {
  override get message() {
    return this.problem
  }
}

const INTEGRATION = /^[a-z0-9][a-z0-9_.-]{0,62}$/

export class Classes extends Effect.Service<Classes>()("rosterd/Classes", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const findClass = (classId: number) =>
      Effect.flatMap(
        sql<{ readonly id: number; readonly rosterSource: string }>`SELECT id, roster_source FROM classes WHERE id = ${classId}`,
        ([row]) => (row === undefined ? Effect.fail(new ClassNotFound({ classId })) : Effect.succeed(row))
      )

    const findUser = (userId: number) =>
      Effect.flatMap(
        sql<{ readonly id: number; readonly active: boolean }>`SELECT id, active FROM users WHERE id = ${userId}`,
        ([row]) => (row === undefined ? Effect.fail(new UserNotFound({ userId })) : Effect.succeed(row))
      )

    const title = (text: string) =>
      text.trim() === "" ? Effect.fail(new InvalidInput({ problem: "the title is empty" })) : Effect.succeed(text.trim())

    /** A teacher-made class owned by an account. */
    const create = Effect.fn("Classes.create")(function*(ownerAccountId: number, classTitle: string) {
      const name = yield* title(classTitle)
      const [owner] = yield* sql<{ readonly state: string; readonly mergedInto: number | null }>`
        SELECT state, merged_into FROM accounts WHERE id = ${ownerAccountId}`
      if (owner === undefined) return yield* new AccountNotFound({ accountId: ownerAccountId })
      if (owner.state === "merged") return yield* new AccountMerged({ accountId: ownerAccountId, mergedInto: owner.mergedInto ?? 0 })
      const [row] = yield* refuseOnLock(sql<{ readonly id: number }>`
        INSERT INTO classes (roster_source, title, owner_account_id) VALUES ('manual', ${name}, ${ownerAccountId}) RETURNING id`)
      return row!.id
    })

    const rename = Effect.fn("Classes.rename")(function*(classId: number, classTitle: string) {
      const name = yield* title(classTitle)
      const rows = yield* refuseOnLock(sql`UPDATE classes SET title = ${name}, updated_at = now() WHERE id = ${classId} RETURNING id`)
      if (rows.length === 0) return yield* new ClassNotFound({ classId })
    })

    /** A manual enrollment; re-adding after a removal opens a new period (the old one is kept). */
    const addStudent = Effect.fn("Classes.addStudent")(function*(classId: number, userId: number) {
      yield* findClass(classId)
      const user = yield* findUser(userId)
      if (!user.active) return yield* new InvalidInput({ problem: `user ${userId} is no longer active in the roster` })
      const rows = yield* refuseOnLock(sql`
        INSERT INTO enrollments (class_id, user_id, roster_source, role)
        VALUES (${classId}, ${userId}, 'manual', 'student')
        ON CONFLICT (class_id, user_id) WHERE ended_at IS NULL DO NOTHING
        RETURNING id`)
      return rows.length === 1 ? "added" as const : "already a member" as const
    })

    /** Ends the open period of the user's enrollment with that role (a student removing a teacher, a teacher removing a student). */
    const removeMember = Effect.fn("Classes.removeMember")(function*(classId: number, userId: number, role: "student" | "teacher") {
      yield* findClass(classId)
      yield* findUser(userId)
      const rows = yield* refuseOnLock(sql`
        UPDATE enrollments SET ended_at = now(), end_reason = 'removed_in_product', updated_at = now()
        WHERE class_id = ${classId} AND user_id = ${userId} AND role = ${role} AND ended_at IS NULL
        RETURNING id`)
      if (rows.length === 0) return yield* new NotEnrolled({ classId, userId, role })
    })

    const attachIntegration = Effect.fn("Classes.attachIntegration")(function*(classId: number, integration: string) {
      if (!INTEGRATION.test(integration)) {
        return yield* new InvalidInput({ problem: "an integration name is 1-63 characters of a-z, 0-9, _, . and -, starting with a letter or digit" })
      }
      yield* findClass(classId)
      const rows = yield* refuseOnLock(sql`
        INSERT INTO class_integrations (class_id, integration) VALUES (${classId}, ${integration})
        ON CONFLICT DO NOTHING RETURNING 1`)
      return rows.length === 1 ? "attached" as const : "already attached" as const
    })

    /**
     * Deletes a class with its integrations and the memberships made in the product. The
     * database refuses a district-synced class (they are deactivated by the sync, never deleted).
     */
    const remove = Effect.fn("Classes.remove")(function*(classId: number) {
      yield* findClass(classId)
      yield* sql.withTransaction(refuseOnLock(Effect.gen(function*() {
        yield* sql`DELETE FROM class_integrations WHERE class_id = ${classId}`
        yield* sql`DELETE FROM enrollments WHERE class_id = ${classId} AND NOT rosterd_synced(roster_source)`
        yield* sql`DELETE FROM classes WHERE id = ${classId}`
      })))
    })

    const renameUser = Effect.fn("Classes.renameUser")(function*(
      userId: number,
      names: { readonly givenName: Option.Option<string>; readonly familyName: Option.Option<string> }
    ) {
      if (Option.isNone(names.givenName) && Option.isNone(names.familyName)) {
        return yield* new InvalidInput({ problem: "give --given-name, --family-name or both" })
      }
      const rows = yield* refuseOnLock(sql`
        UPDATE users
        SET given_name = coalesce(${Option.getOrNull(names.givenName)}::text, given_name),
            family_name = coalesce(${Option.getOrNull(names.familyName)}::text, family_name),
            updated_at = now()
        WHERE id = ${userId} RETURNING id`)
      if (rows.length === 0) return yield* new UserNotFound({ userId })
    })

    return { create, rename, addStudent, removeMember, attachIntegration, remove, renameUser } as const
  })
}) {}
