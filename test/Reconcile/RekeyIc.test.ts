import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as NodePath from "node:path"
import { generated, tempDir } from "../support/Fixtures.ts"
import { addRestDistrict, rekeyClasses, rekeyUsers, syncRest } from "./RekeySupport.ts"
import { furnish, rekeyAndCompare, STUDENTS, TestLayer } from "./RekeyScenario.ts"

/** Re-keyed sources: the scenario is described in RekeyScenario.ts. */
layer(TestLayer, { timeout: "600 seconds", excludeTestServices: true })("re-keyed sources", (it) => {
  it.effect("Infinite Campus 1.1 → 1.2 through OneRoster REST: users (legacy source IDs), then classes", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tmp = tempDir("rekey-ic-")
      const dir = NodePath.join(tmp.dir, "ic")
      generated(dir, STUDENTS, "ic")
      yield* addRestDistrict("ic", tmp.dir)
      yield* addRestDistrict("ic-clean-users", tmp.dir)
      yield* addRestDistrict("ic-clean-classes", tmp.dir)
      const sync = () => syncRest("ic", dir)
      assert.strictEqual((yield* sync()).status, "succeeded")
      const people = yield* furnish("ic", dir, sync)
      const [counts] = yield* sql<{ readonly users: number; readonly enrollments: number; readonly classes: number }>`
        SELECT (SELECT count(*) FROM users WHERE district_id = 'ic' AND active)::int AS users,
               (SELECT count(*) FROM enrollments WHERE district_id = 'ic' AND ended_at IS NULL)::int AS enrollments,
               (SELECT count(*) FROM classes WHERE district_id = 'ic' AND active)::int AS classes`

      // The users: new sourcedIds, the old ones in metadata.ic.legacysourceId; enrollments follow.
      rekeyUsers(dir, (id) => `ic2-${id}`, { legacy: true })
      const users = yield* rekeyAndCompare({
        district: "ic",
        sync,
        cleanSync: () => syncRest("ic-clean-users", dir),
        clean: "ic-clean-users",
        suspected: ["users"],
        matched: { users: { legacy_source_id: counts!.users }, enrollments: { class_user: counts!.enrollments } }
      })
      assert.deepStrictEqual(users.done.records, [{ kind: "users", n: counts!.users }, { kind: "enrollments", n: counts!.enrollments }])
      // The activated teacher is the same account, still active, now under the new ID.
      const [teacher] = yield* sql<{ readonly sourceId: string; readonly activation: string; readonly accountId: number }>`
        SELECT u.source_id, l.activation, l.account_id FROM users u JOIN account_links l ON l.user_id = u.id WHERE u.id = ${people.teacherUser}`
      assert.match(teacher!.sourceId, /^ic2-usr-t-/)
      assert.deepStrictEqual({ activation: teacher!.activation, account: Number(teacher!.accountId) }, { activation: "active", account: people.teacherAccount })
      // The platform resolves the ClassLink login by the new sourcedId to the same account.
      const [login] = yield* sql<{ readonly accountId: number }>`SELECT account_id FROM rosterd_resolve_login('oneroster', ${teacher!.sourceId}, 'ic')`
      assert.strictEqual(Number(login!.accountId), people.teacherAccount)
      // Enrollment history followed: the ended periods carry the new user IDs too.
      const [history] = yield* sql<{ readonly old: number; readonly ended: number }>`
        SELECT count(*) FILTER (WHERE user_source_id NOT LIKE 'ic2-%')::int AS old, count(*) FILTER (WHERE ended_at IS NOT NULL)::int AS ended
        FROM enrollments WHERE district_id = 'ic'`
      assert.deepStrictEqual(history, { old: 0, ended: 5 })

      // Then the classes, separately: matched on class code and term.
      rekeyClasses(dir, (id) => `ic2-${id}`, { legacy: true })
      yield* rekeyAndCompare({
        district: "ic",
        sync,
        cleanSync: () => syncRest("ic-clean-classes", dir),
        clean: "ic-clean-classes",
        suspected: ["classes"],
        matched: { classes: { class_code_term: counts!.classes }, enrollments: { class_user: counts!.enrollments } }
      })
      const [own] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM enrollments WHERE class_id = ${people.ownClass} AND ended_at IS NULL`
      assert.strictEqual(own!.n, 4)
      tmp.remove()
    }), 600_000)
})
