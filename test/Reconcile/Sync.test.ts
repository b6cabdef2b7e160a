import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { rosterFingerprint } from "../support/Database.ts"
import { writeManifest } from "../../bench/OneRosterGenerator.ts"
import { generated, readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

const addCsvDistrict = (id: string, path: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path } }))

const syncNow = (id: string, request: "auto" | "full" | "delta" = "auto") =>
  Effect.flatMap(Sync, (sync) => sync.run(id, { request, trigger: "test" }))

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("sync of a OneRoster CSV district", (it) => {
  const small = tempDir()
  writeSmallDistrict(small.dir)

  it.effect("a first sync creates every record, and stores them as the district gives them", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* addCsvDistrict("small", small.dir)
      const summary = yield* syncNow("small")
      assert.strictEqual(summary.status, "succeeded")
      assert.strictEqual(summary.mode, "full")
      assert.deepStrictEqual(summary.counts.users, { created: 5, updated: 0, deactivated: 0, unchanged: 0 })
      assert.deepStrictEqual(summary.counts.schools, { created: 2, updated: 0, deactivated: 0, unchanged: 0 })
      assert.deepStrictEqual(summary.counts.classes, { created: 2, updated: 0, deactivated: 0, unchanged: 0 })
      assert.deepStrictEqual(summary.counts.enrollments, { created: 5, updated: 0, deactivated: 0, unchanged: 0 })
      assert.strictEqual(summary.findings, 0)

      const users = yield* sql<{ sourceId: string; roles: Array<string>; email: string; birthDate: string | null; rosterSource: string }>`
        SELECT source_id, roles, email, birth_date, roster_source FROM users WHERE district_id = 'small' ORDER BY source_id`
      assert.deepStrictEqual(users.map((u) => u.sourceId), ["s-1", "s-2", "s-3", "t-1", "t-2"])
      assert.deepStrictEqual(users[0]!.roles, ["student"])
      assert.strictEqual(users[0]!.birthDate, "2014-03-01")
      assert.strictEqual(users[3]!.birthDate, null)
      assert.strictEqual(users[0]!.rosterSource, "csv")

      const enrollments = yield* sql<{ classSourceId: string; userSourceId: string; role: string; isPrimary: boolean }>`
        SELECT c.source_id AS class_source_id, u.source_id AS user_source_id, e.role, e.is_primary
        FROM enrollments e JOIN classes c ON c.id = e.class_id JOIN users u ON u.id = e.user_id
        WHERE e.district_id = 'small' AND e.ended_at IS NULL ORDER BY 1, 2`
      assert.deepStrictEqual(enrollments.map((e) => `${e.classSourceId}/${e.userSourceId}/${e.role}/${e.isPrimary}`), [
        "cls-1/s-1/student/false",
        "cls-1/s-2/student/false",
        "cls-1/t-1/teacher/true",
        "cls-2/s-3/student/false",
        "cls-2/t-2/teacher/true"
      ])
    }))

  it.effect("a second sync of the same roster changes nothing and writes no roster row", () =>
    Effect.gen(function*() {
      const before = yield* rosterFingerprint
      const summary = yield* syncNow("small")
      const after = yield* rosterFingerprint
      assert.deepStrictEqual(after, before)
      assert.deepStrictEqual(summary.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      assert.deepStrictEqual(summary.counts.enrollments, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
    }))

  it.effect("a changed roster converges: added, changed and removed user, moved enrollment", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const users = readRows(small.dir, "users")
      const [idBefore] = yield* sql<{ id: number }>`SELECT id FROM users WHERE district_id = 'small' AND source_id = 's-3'`
      writeCsv(small.dir, "users", [
        ...users.filter((u) => u.sourcedId !== "s-3").map((u) => u.sourcedId === "s-2" ? { ...u, familyName: "Renamed" } : u),
        { sourcedId: "s-4", enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: "New", familyName: "D", email: "new@small.example" }
      ])
      writeCsv(small.dir, "enrollments", [
        ...readRows(small.dir, "enrollments")
          .filter((e) => e.userSourcedId !== "s-3")
          .map((e) => e.sourcedId === "e-3" ? { ...e, sourcedId: "e-3b", classSourcedId: "cls-2" } : e),
        { sourcedId: "e-6", classSourcedId: "cls-2", schoolSourcedId: "org-s1", userSourcedId: "s-4", role: "student" }
      ])
      const summary = yield* syncNow("small")
      assert.deepStrictEqual(summary.counts.users, { created: 1, updated: 1, deactivated: 1, unchanged: 3 })
      // s-1 moved from cls-1 to cls-2 (one ended, one created), s-3's enrollment ended, s-4 enrolled.
      assert.deepStrictEqual(summary.counts.enrollments, { created: 2, updated: 0, deactivated: 2, unchanged: 3 })

      const [removed] = yield* sql<{ active: boolean; deactivationReason: string; deactivatedAt: Date | null }>`
        SELECT active, deactivation_reason, deactivated_at FROM users WHERE district_id = 'small' AND source_id = 's-3'`
      assert.strictEqual(removed!.active, false)
      assert.strictEqual(removed!.deactivationReason, "missing_from_source")
      assert.isNotNull(removed!.deactivatedAt)
      const [renamed] = yield* sql<{ familyName: string }>`SELECT family_name FROM users WHERE district_id = 'small' AND source_id = 's-2'`
      assert.strictEqual(renamed!.familyName, "Renamed")
      const history = yield* sql<{ cls: string; ended: boolean; endReason: string | null }>`
        SELECT c.source_id AS cls, e.ended_at IS NOT NULL AS ended, e.end_reason
        FROM enrollments e JOIN classes c ON c.id = e.class_id JOIN users u ON u.id = e.user_id
        WHERE u.source_id = 's-1' ORDER BY e.id`
      assert.deepStrictEqual(history.map((h) => `${h.cls}:${h.ended}:${h.endReason}`), ["cls-1:true:missing_from_source", "cls-2:false:null"])

      // Converged: the next sync is a no-op.
      const again = yield* syncNow("small")
      assert.deepStrictEqual(again.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      assert.deepStrictEqual(again.counts.enrollments, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })

      // A returning source ID is the same row, reactivated; its membership is a new period.
      writeCsv(small.dir, "users", [...readRows(small.dir, "users"), users.find((u) => u.sourcedId === "s-3")!])
      writeCsv(small.dir, "enrollments", [
        ...readRows(small.dir, "enrollments"),
        { sourcedId: "e-5", classSourcedId: "cls-2", schoolSourcedId: "org-s1", userSourcedId: "s-3", role: "student" }
      ])
      const back = yield* syncNow("small")
      assert.deepStrictEqual(back.counts.users, { created: 0, updated: 1, deactivated: 0, unchanged: 5 })
      const [restored] = yield* sql<{ id: number; active: boolean; deactivationReason: string | null }>`
        SELECT id, active, deactivation_reason FROM users WHERE district_id = 'small' AND source_id = 's-3'`
      assert.strictEqual(restored!.id, idBefore!.id)
      assert.strictEqual(restored!.active, true)
      assert.strictEqual(restored!.deactivationReason, null)
      const periods = yield* sql<{ ended: boolean }>`
        SELECT e.ended_at IS NOT NULL AS ended FROM enrollments e JOIN users u ON u.id = e.user_id
        WHERE u.source_id = 's-3' ORDER BY e.id`
      assert.deepStrictEqual(periods.map((p) => p.ended), [true, false])
    }))

  it.effect("a generated district syncs completely, and re-syncs as a no-op", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const counts = generated(dir.dir, 600)
      yield* addCsvDistrict("generated", dir.dir)
      const first = yield* syncNow("generated")
      assert.strictEqual(first.counts.users.created, counts.users)
      assert.strictEqual(first.counts.classes.created, counts.classes)
      assert.strictEqual(first.counts.enrollments.created, counts.enrollments)
      assert.strictEqual(first.counts.schools.created, counts.schools + 1) // + the district org
      assert.strictEqual(first.findings, 0)
      const second = yield* syncNow("generated")
      assert.strictEqual(second.counts.enrollments.unchanged, counts.enrollments)
      assert.strictEqual(second.counts.users.unchanged, counts.users)
      dir.remove()
    }))

  it.effect("a delta run applies changes and tobedeleted removals, but removes nothing for being absent", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeSmallDistrict(dir.dir)
      yield* addCsvDistrict("delta", dir.dir)
      yield* syncNow("delta")

      // `--delta` on a bulk set: s-3 is absent but stays; s-2's change applies.
      const users = readRows(dir.dir, "users")
      writeCsv(dir.dir, "users", users.filter((u) => u.sourcedId !== "s-3").map((u) => u.sourcedId === "s-2" ? { ...u, givenName: "Changed" } : u))
      const delta = yield* syncNow("delta", "delta")
      assert.strictEqual(delta.mode, "delta")
      assert.deepStrictEqual(delta.counts.users, { created: 0, updated: 1, deactivated: 0, unchanged: 3 })
      const [kept] = yield* sql<{ active: boolean }>`SELECT active FROM users WHERE district_id = 'delta' AND source_id = 's-3'`
      assert.strictEqual(kept!.active, true)

      // A delta export: only changed rows, removals marked tobedeleted, other files absent.
      const deltaDir = tempDir()
      writeManifest(deltaDir.dir, { academicSessions: "absent", classes: "absent", courses: "absent", demographics: "absent", orgs: "absent", users: "delta", enrollments: "delta" })
      writeCsv(deltaDir.dir, "users", [{ ...users.find((u) => u.sourcedId === "s-3")!, status: "tobedeleted" }])
      writeCsv(deltaDir.dir, "enrollments", [{ sourcedId: "e-4", status: "tobedeleted", classSourcedId: "cls-1", userSourcedId: "s-2", role: "student" }])
      yield* sql`UPDATE districts SET settings = ${JSON.stringify({ path: deltaDir.dir })}::jsonb WHERE id = 'delta'`
      const exported = yield* syncNow("delta")
      assert.strictEqual(exported.mode, "delta")
      assert.deepStrictEqual(exported.counts.users, { created: 0, updated: 0, deactivated: 1, unchanged: 0 })
      // s-2's enrollment removed explicitly, s-3's ended with its user.
      assert.strictEqual(exported.counts.enrollments.deactivated, 2)
      const [removed] = yield* sql<{ active: boolean; deactivationReason: string }>`
        SELECT active, deactivation_reason FROM users WHERE district_id = 'delta' AND source_id = 's-3'`
      assert.deepStrictEqual([removed!.active, removed!.deactivationReason], [false, "tobedeleted"])
      const [{ n }] = (yield* sql<{ n: number }>`SELECT count(*) AS n FROM users WHERE district_id = 'delta' AND active`) as any
      assert.strictEqual(n, 4)
      // A full sync cannot be asked of a delta export.
      const refused = yield* Effect.flip(syncNow("delta", "full"))
      assert.strictEqual(refused._tag, "ModeNotAvailable")
      dir.remove()
      deltaDir.remove()
    }))
})
