import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { writeManifest } from "../../bench/OneRosterGenerator.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { smallDistrictTerm, tempDir, writeCsv } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { clockAt } from "../support/RulesDistrict.ts"

/**
 * The fast path is invisible (src/Reconcile/Digests.ts). fast-check generates small
 * districts and sequences of mutations — people added, removed, renamed and listed twice,
 * enrollments moved, repeated (under another ID, or line for line) and left dangling, classes removed, birth dates changed
 * (around the 13th birthday) or made impossible, lines reordered — and syncs each state
 * into two districts: one with digests (every unchanged record restored from the store),
 * one with `digests: false` (every record decoded), each step a day after the one before.
 * The last state is synced twice more: the digests side must skip its comparison the
 * second time (src/Reconcile/Unchanged.ts). After every step both must hold the same
 * roster, the same run counts, notes and findings, and the same outbox.
 *
 * The two districts differ only in their id and their e-mail domain (so that account
 * linking, which matches addresses across districts, keeps them apart); both are
 * normalised away before comparing.
 */

type Row = Record<string, string>

const RUNS = Number(process.env.FASTPATH_RUNS ?? 5)

interface Model {
  classes: Array<Row>
  users: Array<Row>
  demographics: Array<Row>
  enrollments: Array<Row>
}

const NAMES = ["Ada", "Ben", "Cy", "Dee", "Eli"]
const TITLES = ["Math", "Art", "Music"]

const today = new Date()

/** The date a case's step runs at: noon UTC, `step` days from today. */
const dayOf = (step: number) => new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + step, 12)).toISOString()

/** Whether the district's one term (August to July) begins or ends between two dates: then a run compares. */
const termTurns = (from: string, to: string) => from.slice(0, 4) !== to.slice(0, 4) || (from.slice(5, 10) <= "07-31" && to.slice(5, 10) >= "08-01")
/** Birth dates around a 13th birthday: a few days before and after today, 13 years ago, and plainly older or younger. */
const BIRTH_DATES = [-400, -2, 0, 1, 3, 400].map((days) => {
  const d = new Date(Date.UTC(today.getUTCFullYear() - 13, today.getUTCMonth(), today.getUTCDate() + days))
  return d.toISOString().slice(0, 10)
}).concat(["2014-02-30"])

const initial = (students: number, classes: number): Model => {
  const model: Model = { classes: [], users: [], demographics: [], enrollments: [] }
  for (let c = 1; c <= classes; c++) {
    model.classes.push({ sourcedId: `k-${c}`, title: `${TITLES[c % TITLES.length]} ${c}`, courseSourcedId: "crs-1", classType: "scheduled", schoolSourcedId: "org-s1", termSourcedIds: "term-1" })
    model.users.push({ sourcedId: `t-${c}`, enabledUser: "true", orgSourcedIds: "org-s1", role: "teacher", givenName: NAMES[c % NAMES.length]!, familyName: `T${c}`, email: `t${c}@DOMAIN` })
    model.enrollments.push({ sourcedId: `e-t${c}`, classSourcedId: `k-${c}`, schoolSourcedId: "org-s1", userSourcedId: `t-${c}`, role: "teacher", primary: "true" })
  }
  for (let s = 1; s <= students; s++) {
    model.users.push({ sourcedId: `s-${s}`, enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: NAMES[s % NAMES.length]!, familyName: `S${s}`, email: `s${s}@DOMAIN`, grades: "07" })
    model.demographics.push({ sourcedId: `s-${s}`, birthDate: BIRTH_DATES[s % BIRTH_DATES.length]! })
    model.enrollments.push({ sourcedId: `e-s${s}`, classSourcedId: `k-${1 + (s % classes)}`, schoolSourcedId: "org-s1", userSourcedId: `s-${s}`, role: "student" })
  }
  return model
}

const OPS = [
  "addStudent", "removeUser", "renameUser", "duplicateUser", "moveEnrollment", "removeEnrollment", "repeatEnrollment",
  "repeatLine", "danglingEnrollment", "removeClass", "retitleClass", "birthDate", "reorder", "nothing"
] as const
type Mutation = { readonly op: (typeof OPS)[number]; readonly target: number; readonly variant: number }

const at = <A>(items: Array<A>, target: number): number => (items.length === 0 ? -1 : target % items.length)

const mutate = (model: Model, m: Mutation, step: number): void => {
  const { target, variant } = m
  switch (m.op) {
    case "addStudent": {
      const id = `s-n${step}-${target}`
      if (model.users.some((u) => u.sourcedId === id)) return
      model.users.push({ sourcedId: id, enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: NAMES[variant % NAMES.length]!, familyName: "New", email: `${id}@DOMAIN`, grades: "07" })
      model.demographics.push({ sourcedId: id, birthDate: BIRTH_DATES[variant % BIRTH_DATES.length]! })
      const klass = model.classes[at(model.classes, variant)]
      if (klass !== undefined) model.enrollments.push({ sourcedId: `e-${id}`, classSourcedId: klass.sourcedId!, schoolSourcedId: "org-s1", userSourcedId: id, role: "student" })
      return
    }
    case "removeUser": {
      const i = at(model.users, target)
      if (i >= 0) model.users.splice(i, 1)
      return
    }
    case "renameUser": {
      const i = at(model.users, target)
      if (i >= 0) model.users[i] = { ...model.users[i]!, givenName: NAMES[variant % NAMES.length]! }
      return
    }
    case "duplicateUser": {
      const i = at(model.users, target)
      if (i >= 0) model.users.push({ ...model.users[i]!, familyName: variant % 2 === 0 ? model.users[i]!.familyName! : "Twice" })
      return
    }
    case "moveEnrollment": {
      const i = at(model.enrollments, target)
      const klass = model.classes[at(model.classes, variant)]
      if (i >= 0 && klass !== undefined) model.enrollments[i] = { ...model.enrollments[i]!, classSourcedId: klass.sourcedId! }
      return
    }
    case "removeEnrollment": {
      const i = at(model.enrollments, target)
      if (i >= 0) model.enrollments.splice(i, 1)
      return
    }
    case "repeatEnrollment": {
      const i = at(model.enrollments, target)
      if (i >= 0) model.enrollments.push({ ...model.enrollments[i]!, sourcedId: `${model.enrollments[i]!.sourcedId}-r${step}` })
      return
    }
    case "repeatLine": {
      // The same line again, word for word: restored twice from one stored digest (RepeatedDigests.ts).
      const i = at(model.enrollments, target)
      if (i >= 0) model.enrollments.splice(variant % (model.enrollments.length + 1), 0, { ...model.enrollments[i]! })
      return
    }
    case "danglingEnrollment":
      model.enrollments.push({ sourcedId: `e-d${step}-${target}`, classSourcedId: `k-gone-${variant % 2}`, schoolSourcedId: "org-s1", userSourcedId: "s-1", role: "student" })
      return
    case "removeClass": {
      const i = at(model.classes, target)
      if (i >= 0 && model.classes.length > 1) model.classes.splice(i, 1)
      return
    }
    case "retitleClass": {
      const i = at(model.classes, target)
      if (i >= 0) model.classes[i] = { ...model.classes[i]!, title: `${TITLES[variant % TITLES.length]} ${target}` }
      return
    }
    case "birthDate": {
      const i = at(model.demographics, target)
      if (i >= 0) model.demographics[i] = { ...model.demographics[i]!, birthDate: BIRTH_DATES[variant % BIRTH_DATES.length]! }
      return
    }
    case "reorder":
      model.users.reverse()
      if (variant % 2 === 0) model.enrollments.reverse()
      return
    case "nothing":
      return
  }
}

const writeModel = (dir: string, model: Model, domain: string) => {
  Fs.mkdirSync(dir, { recursive: true })
  writeManifest(dir)
  writeCsv(dir, "orgs", [
    { sourcedId: "org-d", name: "District", type: "district" },
    { sourcedId: "org-s1", name: "School", type: "school", parentSourcedId: "org-d" }
  ])
  writeCsv(dir, "academicSessions", [{ sourcedId: "term-1", type: "schoolYear", ...smallDistrictTerm() }])
  writeCsv(dir, "courses", [{ sourcedId: "crs-1", title: "Course", schoolYearSourcedId: "term-1", orgSourcedId: "org-s1" }])
  writeCsv(dir, "classes", model.classes)
  writeCsv(dir, "users", model.users.map((u) => ({ ...u, email: u.email!.replace("DOMAIN", domain) })))
  writeCsv(dir, "demographics", model.demographics)
  writeCsv(dir, "enrollments", model.enrollments)
}

const scenario = fc.record({
  students: fc.integer({ min: 2, max: 7 }),
  classes: fc.integer({ min: 1, max: 3 }),
  steps: fc.array(
    fc.array(fc.record({ op: fc.constantFrom(...OPS), target: fc.nat(20), variant: fc.nat(20) }), { minLength: 1, maxLength: 5 }),
    { minLength: 2, maxLength: 3 }
  )
})

/** What a district holds, without ids, times and the district's own id and domain. */
const districtState = (district: string, domain: string, runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const normal = (value: unknown) =>
      JSON.parse(JSON.stringify(value).replaceAll(domain, "DOMAIN").replaceAll(district, "DISTRICT")) as unknown
    const rows = (query: string) =>
      Effect.map(sql.unsafe<Record<string, unknown>>(query, [district]), (rs) =>
        rs.map((r) => {
          const out: Record<string, unknown> = {}
          for (const [k, v] of Object.entries(r)) {
            if (/^id$|At$|Id$/.test(k) && !/sourceId/i.test(k)) continue
            out[k] = v
          }
          return JSON.stringify(normal(out))
        }).sort())
    const state: Record<string, unknown> = {}
    for (const table of ["schools", "terms", "courses", "classes", "users"]) {
      state[table] = yield* rows(`SELECT * FROM ${table} WHERE district_id = $1`)
    }
    state.enrollments = yield* rows(
      `SELECT e.*, c.source_id AS class_source, u.source_id AS user_source, e.ended_at IS NULL AS open
       FROM enrollments e JOIN classes c ON c.id = e.class_id JOIN users u ON u.id = e.user_id WHERE e.district_id = $1`
    )
    state.identities = yield* rows(`SELECT i.kind, i.type, i.value, i.ended_at IS NULL AS open, u.source_id FROM user_identities i JOIN users u ON u.id = i.user_id WHERE i.district_id = $1`)
    state.findings = yield* rows(`SELECT severity, code, entity, source_id, file, line, detail FROM findings WHERE district_id = $1 AND run_id = ${runId}`)
    state.outbox = yield* rows(`SELECT kind, recipient, subject, state FROM outbox WHERE district_id = $1`)
    state.links = yield* rows(`SELECT u.source_id, l.method FROM account_links l JOIN users u ON u.id = l.user_id WHERE u.district_id = $1`)
    state.reviews = yield* rows(`SELECT r.reason, r.state, u.source_id FROM account_reviews r JOIN users u ON u.id = r.user_id WHERE r.district_id = $1`)
    return state
  })

layer(SyncTestLayer, { timeout: "240 seconds", excludeTestServices: true })("fast path property", (it) => {
  it.effect("digests and a full comparison leave the same store, counts, notes, findings and outbox", () =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      const sync = yield* Sync
      // A new seed each run (printed with a failure); FASTPATH_RUNS=50 for a longer search.
      const seed = Number(process.env.FASTPATH_SEED ?? Date.now() % 1_000_000)
      const cases = fc.sample(scenario, { numRuns: RUNS, seed })
      let n = 0
      for (const c of cases) {
        n += 1
        const sides = [
          { id: `fpa${n}`, domain: `fpa${n}.example`, digests: true },
          { id: `fpb${n}`, domain: `fpb${n}.example`, digests: false }
        ] as const
        const dirs = sides.map(() => tempDir())
        for (const side of sides) {
          yield* store.addDistrict({ id: side.id as DistrictId, name: side.id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path: dirs[sides.indexOf(side)]!.dir } })
        }
        const model = initial(c.students, c.classes)
        const states = [structuredClone(model)]
        c.steps.forEach((mutations, step) => {
          for (const m of mutations) mutate(model, m, step)
          states.push(structuredClone(model))
        })
        // The last state twice more: the digests side skips the comparison the second time
        // at the latest (src/Reconcile/Unchanged.ts: a run that deactivated leaves no mark).
        states.push(structuredClone(model), structuredClone(model))
        const previous = new Map<string, string>()
        for (const [step, state] of states.entries()) {
          const outcome = []
          for (const [i, side] of sides.entries()) {
            writeModel(NodePath.join(dirs[i]!.dir), state, side.domain)
            // Each step a day later (both sides alike): birthdays around the 13th cross during a
            // case, on runs that compare and on runs that skip their comparison.
            const summary = yield* sync.run(side.id, { request: "auto", trigger: "test", digests: side.digests }).pipe(
              Effect.withClock(clockAt(dayOf(step)))
            )
            const stored = yield* districtState(side.id, side.domain, summary.runId)
            // The repeated last state, after a run that applied all it read: nothing is compared.
            if (
              side.digests && step === states.length - 1 && summary.status === "succeeded" && previous.get(side.id) === "succeeded" &&
              !termTurns(dayOf(step - 1), dayOf(step))
            ) {
              assert.isTrue(summary.notes.some((note) => note.startsWith("unchanged since run")), `seed ${seed}, case ${n}: the repeated state was compared`)
            }
            previous.set(side.id, summary.status)
            outcome.push({
              status: summary.status,
              counts: summary.counts,
              findings: summary.findings,
              // A hold names its run, and the two districts' runs have ids of their own. A
              // skipped comparison says so (only the digests side can skip one).
              notes: summary.notes.filter((note) => !note.startsWith("unchanged since run"))
                .map((note) => note.replace(/holds show \d+/, "holds show RUN").replace(/of run \d+/, "of run RUN")),
              held: summary.held,
              stored
            })
          }
          const where = `seed ${seed}, case ${n} (${JSON.stringify(c)}), step ${step}`
          assert.deepStrictEqual(outcome[0], outcome[1], where)
        }
        for (const dir of dirs) dir.remove()
      }
    }), 30_000 + RUNS * 10_000)
})
