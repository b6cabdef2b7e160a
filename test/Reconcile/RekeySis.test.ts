import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as NodePath from "node:path"
import { generated, readRows, tempDir, writeCsv } from "../support/Fixtures.ts"
import { addCsvDistrict, rekeyEverythingButUsers, rekeyUsers, syncCsv } from "./RekeySupport.ts"
import { furnish, rekeyAndCompare, STUDENTS, TestLayer } from "./RekeyScenario.ts"

/** Re-keyed sources: the scenario is described in RekeyScenario.ts. */
layer(TestLayer, { timeout: "600 seconds", excludeTestServices: true })("re-keyed sources", (it) => {
  it.effect("an SIS migration as CSV: users by e-mail and birth date (staff by e-mail and name), then schools, terms, courses and classes", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tmp = tempDir("rekey-sis-")
      const dir = NodePath.join(tmp.dir, "sis")
      generated(dir, STUDENTS, "sis")
      // This SIS sends no identifier: e-mail and birth date are all a migration keeps.
      writeCsv(dir, "users", readRows(dir, "users").map((u) => ({ ...u, identifier: "" })))
      yield* addCsvDistrict("sis", dir)
      const sync = () => syncCsv("sis")
      assert.strictEqual((yield* sync()).status, "succeeded")
      yield* furnish("sis", dir, sync)
      const [counts] = yield* sql<{ readonly students: number; readonly staff: number; readonly enrollments: number }>`
        SELECT count(*) FILTER (WHERE 'student' = ANY (roles))::int AS students, count(*) FILTER (WHERE NOT 'student' = ANY (roles))::int AS staff,
               (SELECT count(*) FROM enrollments WHERE district_id = 'sis' AND ended_at IS NULL)::int AS enrollments
        FROM users WHERE district_id = 'sis' AND active`

      // New IDs of another shape; the new set has nothing else in common with the old.
      rekeyUsers(dir, (id) => `P${Buffer.from(id).toString("hex")}`, { legacy: false })
      yield* addCsvDistrict("sis-clean-users", dir)
      yield* rekeyAndCompare({
        district: "sis",
        sync,
        cleanSync: () => syncCsv("sis-clean-users"),
        clean: "sis-clean-users",
        suspected: ["users"],
        matched: {
          users: { email_birth_date: counts!.students, email_name: counts!.staff },
          enrollments: { class_user: counts!.enrollments }
        }
      })

      // Everything but the people: every reference follows, matched through the pairs already made.
      const [kinds] = yield* sql<{ readonly schools: number; readonly courses: number; readonly classes: number }>`
        SELECT (SELECT count(*) FROM schools WHERE district_id = 'sis' AND active)::int AS schools,
               (SELECT count(*) FROM courses WHERE district_id = 'sis' AND active)::int AS courses,
               (SELECT count(*) FROM classes WHERE district_id = 'sis' AND active)::int AS classes`
      rekeyEverythingButUsers(dir, (id) => `mig-${id}`)
      yield* addCsvDistrict("sis-clean-all", dir)
      const all = yield* rekeyAndCompare({
        district: "sis",
        sync,
        cleanSync: () => syncCsv("sis-clean-all"),
        clean: "sis-clean-all",
        // Three terms are too few to be suspect on their own (rekey.minRecords); they are paired all the same.
        suspected: ["schools", "courses", "classes"],
        matched: {
          schools: { identifier: kinds!.schools },
          terms: { title_dates: 3 },
          courses: { course_code: kinds!.courses },
          classes: { class_code_term: kinds!.classes }
        }
      })
      assert.deepStrictEqual(all.done.records.map((r) => r.kind), ["schools", "terms", "courses", "classes"])
      // References rewritten: users' schools, the in-product admin's school.
      const [refs] = yield* sql<{ readonly users: number; readonly admin: ReadonlyArray<string> }>`
        SELECT (SELECT count(*) FROM users WHERE district_id = 'sis' AND EXISTS (SELECT 1 FROM unnest(org_source_ids) o WHERE o NOT LIKE 'mig-%'))::int AS users,
               (SELECT school_source_ids FROM admins WHERE district_id = 'sis') AS admin`
      assert.deepStrictEqual(refs, { users: 0, admin: ["mig-org-sch-0001"] })
      tmp.remove()
    }), 600_000)
})
