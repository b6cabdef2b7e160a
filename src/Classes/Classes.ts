import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { AccountMerged, AccountNotFound, refuseOnLock, UserNotFound } from "../Accounts/Accounts.ts"

/**
 * What the platform does to classes and users in the product — teacher-made classes and
 * their students, integrations, renames — as plain SQL, the way the platform itself writes.
 * These statements do NOT identify as the sync (`rosterd.writer`), so the database's lock
 * triggers decide: on district-synced classes and users they refuse with SQLSTATE RSLCK,
 * reported as `refused: <the rule and why>`. The rules live only in the database
 * (migrations/0002); nothing here repeats them. A student of a teacher-made class is a
 * rostered user or a platform account with no rostered user (migrations/0013).
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
  /** `user 12` or `account 34`. */
  member: Schema.String,
  role: Schema.String
}) {
  override get message() {
    return `${this.member} has no open ${this.role} enrollment in class ${this.classId}`
  }
}

/** Who a membership is: a rostered user, or a platform account without a rostered user (a non-district student). */
export type Member = { readonly userId: number } | { readonly accountId: number }

/** A bare number is a rostered user's id (as before accounts could be members). */
const asMember = (who: number | Member): Member => (typeof who === "number" ? { userId: who } : who)

export const memberText = (member: Member) => ("accountId" in member ? `account ${member.accountId}` : `user ${member.userId}`)

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

    /** A live account (merged accounts are refused: their memberships moved to the survivor). */
    const findAccount = (accountId: number) =>
      Effect.gen(function*() {
        const [row] = yield* sql<{ readonly state: string; readonly mergedInto: number | null }>`
          SELECT state, merged_into FROM accounts WHERE id = ${accountId}`
        if (row === undefined) return yield* new AccountNotFound({ accountId })
        if (row.state === "merged") return yield* new AccountMerged({ accountId, mergedInto: row.mergedInto ?? 0 })
      })

    /**
     * A manual enrollment; re-adding after a removal opens a new period (the old one is kept).
     * The member is a rostered user, or a platform account with no rostered user in the
     * district (a Basic or Portfolio student): such a membership names the account
     * (`enrollments.account_id`), and only a teacher-made class takes it — the lock trigger
     * refuses it on a district-synced class, like any other added student.
     */
    const addStudent = Effect.fn("Classes.addStudent")(function*(classId: number, who: number | Member) {
      const member = asMember(who)
      yield* findClass(classId)
      if ("accountId" in member) {
        yield* findAccount(member.accountId)
        const rows = yield* refuseOnLock(sql`
          INSERT INTO enrollments (class_id, account_id, roster_source, role)
          VALUES (${classId}, ${member.accountId}, 'manual', 'student')
          ON CONFLICT (class_id, account_id) WHERE ended_at IS NULL AND account_id IS NOT NULL DO NOTHING
          RETURNING id`)
        return rows.length === 1 ? "added" as const : "already a member" as const
      }
      const user = yield* findUser(member.userId)
      if (!user.active) return yield* new InvalidInput({ problem: `user ${member.userId} is no longer active in the roster` })
      const rows = yield* refuseOnLock(sql`
        INSERT INTO enrollments (class_id, user_id, roster_source, role)
        VALUES (${classId}, ${member.userId}, 'manual', 'student')
        ON CONFLICT (class_id, user_id) WHERE ended_at IS NULL DO NOTHING
        RETURNING id`)
      return rows.length === 1 ? "added" as const : "already a member" as const
    })

    /** Ends the open period of the member's enrollment with that role (a student removing a teacher, a teacher removing a student). */
    const removeMember = Effect.fn("Classes.removeMember")(function*(classId: number, who: number | Member, role: "student" | "teacher") {
      const member = asMember(who)
      yield* findClass(classId)
      if ("accountId" in member) {
        yield* findAccount(member.accountId)
      } else {
        yield* findUser(member.userId)
      }
      const rows = yield* refuseOnLock(sql`
        UPDATE enrollments SET ended_at = now(), end_reason = 'removed_in_product', updated_at = now()
        WHERE class_id = ${classId} AND role = ${role} AND ended_at IS NULL
          AND ${"accountId" in member ? sql`account_id = ${member.accountId}` : sql`user_id = ${member.userId}`}
        RETURNING id`)
      if (rows.length === 0) return yield* new NotEnrolled({ classId, member: memberText(member), role })
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
