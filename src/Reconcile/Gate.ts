import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { DistrictRules, GateRules } from "../Domain/DistrictRules.ts"
import { schoolGate } from "../Domain/DistrictRules.ts"
import { roleGroupSql } from "../Domain/Roles.ts"
import type { ApplyContext, GateHook } from "./Apply.ts"
import { planTable } from "./Apply.ts"
import type { KeyedKind } from "./Entities.ts"
import { Entities } from "./Entities.ts"

/**
 * The safety gate: the most common disaster of roster sync is a failed, empty or partial
 * pull read as "everyone left". Between planning and writing each entity type, the gate
 * compares what the plan would do with what the district has, per type (users per role):
 *
 * - deactivations over `maxDeactivations`, or over `maxDeactivatePercent` of the active
 *   records (from `minRecords` up), or leaving a non-empty type with none (`holdEmptying`)
 *   → the type's deactivations are held;
 * - updates over `maxUpdatePercent` of the active records (from `minRecords` up) → its
 *   updates are held;
 * - enrollments: the same, and a class of at least `classMinSize` losing
 *   `maxClassCutPercent` or more of its members → that class's enrollment ends are held.
 *   Ends that follow a class or person removed by this run are never held: they follow a
 *   decision already taken (an open enrollment always points at an active class and user).
 *
 * Held rows stay in the plan marked `held`; creates and the other changes apply. SyncRun
 * turns the held rows into the run's hold (Holds.ts).
 *
 * **Per school** (`gate.perSchool`, or a school's own `schools.<id>.gate`): after the
 * district's verdict, users (by each school they belong to), classes and enrollments (by
 * their class's school) are judged again school by school, with that school's thresholds,
 * over the rows the district's verdict left: a school of ten losing 60 % of its students
 * trips its own percentage while the district's 6 % does not, and only that school's rows
 * are held. A person in two schools is held when either school trips.
 */

/** The gate's rules, and `rekey_suspected`: a run held whole as a suspected re-key (src/Reconcile/Rekey.ts). */
export type GateRule = "deactivate_count" | "deactivate_percent" | "emptied" | "update_percent" | "class_cut" | "rekey_suspected"

/** One tripped threshold, for the run record and `holds show`: never personal values. */
export interface Tripped {
  readonly kind: string
  /** The role for users; the type's name otherwise; for class_cut the number of classes is `count`. */
  readonly group: string
  readonly rule: GateRule
  readonly count: number
  readonly of: number
  readonly limit: number
}

/** What the gate knows of one group (a type, or the users of one role group) before a run writes it. */
export interface GroupFigures {
  readonly grp: string
  /** Its active records before the run. */
  readonly active: number
  /** What the run would deactivate, update (of the active ones), and add (create, or bring back). */
  readonly deactivations: number
  readonly updates: number
  readonly additions: number
}

/**
 * The gate's rules, pure: which threshold a group's figures trip, for its deactivations
 * (`deactivate_count`, else `deactivate_percent`, else `emptied`) and for its updates
 * (`update_percent`). The percentages apply from `minRecords` changes up; a group is
 * emptied when it has active records and none would be left (additions count). The same
 * judge decides whether the classes of ended terms may be deactivated (Rules/Scope.ts).
 */
export const judge = (g: GroupFigures, rules: GateRules, kind: string): { readonly deactivations?: Tripped; readonly updates?: Tripped } => {
  const trip = (rule: GateRule, count: number, limit: number): Tripped => ({ kind, group: g.grp, rule, count, of: g.active, limit })
  let deactivations: Tripped | undefined
  if (g.deactivations > 0) {
    if (g.deactivations > rules.maxDeactivations) deactivations = trip("deactivate_count", g.deactivations, rules.maxDeactivations)
    else if (g.deactivations >= rules.minRecords && g.deactivations * 100 > g.active * rules.maxDeactivatePercent) {
      deactivations = trip("deactivate_percent", g.deactivations, rules.maxDeactivatePercent)
    } else if (rules.holdEmptying && g.active > 0 && g.active - g.deactivations + g.additions <= 0) {
      deactivations = trip("emptied", g.deactivations, 0)
    }
  }
  const updates = g.updates >= rules.minRecords && g.updates * 100 > g.active * rules.maxUpdatePercent
    ? trip("update_percent", g.updates, rules.maxUpdatePercent)
    : undefined
  return { ...(deactivations === undefined ? {} : { deactivations }), ...(updates === undefined ? {} : { updates }) }
}

/** Which schools are judged on their own, and with what (the pure part: src/Domain/DistrictRules.ts `schoolGate`). */
export interface SchoolJudging {
  /** Every school (`gate.perSchool`), or only `listed`. */
  readonly all: boolean
  readonly listed: ReadonlyArray<string>
  readonly rulesOf: (school: string) => GateRules | null
}

export const schoolJudging = (rules: Pick<DistrictRules, "gate" | "schools">): SchoolJudging => ({
  all: rules.gate.perSchool,
  listed: Object.entries(rules.schools).filter(([, school]) => school.gate !== undefined).map(([id]) => id),
  rulesOf: (school) => schoolGate(rules, school)
})

const judgesSchools = (judging: SchoolJudging | undefined): judging is SchoolJudging =>
  judging !== undefined && (judging.all || judging.listed.length > 0)

/** The per-school verdicts of a kind's figures (pure): the tripped thresholds, each with its school. */
export const judgeSchools = (
  figures: ReadonlyArray<GroupFigures & { readonly school: string }>,
  judging: SchoolJudging,
  kind: string
): Array<{ readonly school: string; readonly grp: string; readonly deactivations?: Tripped; readonly updates?: Tripped }> =>
  figures.flatMap((g) => {
    const rules = judging.rulesOf(g.school)
    if (rules === null) return []
    const verdict = judge(g, rules, kind)
    const atSchool = (t: Tripped | undefined) => (t === undefined ? {} : { ...t, group: `${g.grp} at school ${g.school}` })
    if (verdict.deactivations === undefined && verdict.updates === undefined) return []
    return [{
      school: g.school,
      grp: g.grp,
      ...(verdict.deactivations === undefined ? {} : { deactivations: atSchool(verdict.deactivations) as Tripped }),
      ...(verdict.updates === undefined ? {} : { updates: atSchool(verdict.updates) as Tripped })
    }]
  })

/** The schools a row belongs to, as an array expression: a user's orgs, a class's (or an enrollment's class's) school. */
const schoolsOf = (kind: KeyedKind, alias: string) => (kind === "users" ? `${alias}.org_source_ids` : `ARRAY[${alias}.school_source_id]`)

/** Marks the rows of one (school, group) held: rows the district's verdict left. */
const holdSchoolRows = (
  plan: string,
  from: string,
  rowSchools: string,
  rowGroup: string,
  action: "deactivate" | "update",
  school: string,
  grp: string,
  rule: GateRule,
  extra = ""
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly n: number }>(
      `WITH marked AS (
         UPDATE ${plan} p SET held = true, rule = $3
         FROM (SELECT p2.ctid AS row FROM ${plan} p2 ${from}
               WHERE p2.action = $1 AND NOT p2.held AND $4 = ANY (${rowSchools}) AND ${rowGroup} = $2 ${extra}) x
         WHERE p.ctid = x.row
         RETURNING 1)
       SELECT count(*)::int AS n FROM marked`,
      [action, grp, rule, school]
    )).pipe(Effect.map((rows) => rows[0]?.n ?? 0))

/** The per-school pass of a keyed kind (users, classes), after the district's verdict. */
const gateSchoolsKeyed = (kind: "users" | "classes", context: ApplyContext, judging: SchoolJudging, tripped: Array<Tripped>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = Entities[kind].table!
    const label = Entities[kind].label
    const plan = planTable(kind)
    const group = (roles: string) => (kind === "users" ? roleGroupSql(roles) : `'${label}'`)
    // Schools only (a user's orgs include the district's own org in OneRoster).
    const judged = `sch IN (SELECT o.source_id FROM schools o WHERE o.district_id = $1 AND o.org_type <> 'district')
                    AND ($2 OR sch = ANY ($3::text[]))`
    const figures = yield* sql.unsafe<GroupFigures & { readonly school: string }>(
      `WITH live AS (
         SELECT sch, ${group("t.roles")} AS grp, count(*) AS active
         FROM ${table} t CROSS JOIN LATERAL unnest(${schoolsOf(kind, "t")}) sch
         WHERE t.district_id = $1 AND t.active AND ${judged} GROUP BY 1, 2),
       planned AS (
         SELECT sch, ${group("coalesce(l.roles, p.roles)")} AS grp,
                count(*) FILTER (WHERE p.action = 'deactivate' AND NOT p.held) AS deactivations,
                count(*) FILTER (WHERE p.action = 'update' AND l.active AND NOT p.held) AS updates,
                count(*) FILTER (WHERE p.action = 'create' OR (p.action = 'update' AND NOT l.active)) AS additions
         FROM ${plan} p LEFT JOIN ${table} l ON l.id = p.live_id
              CROSS JOIN LATERAL unnest(coalesce(${schoolsOf(kind, "l")}, ${schoolsOf(kind, "p")})) sch
         WHERE ${judged} GROUP BY 1, 2)
       SELECT coalesce(live.sch, planned.sch) AS school, coalesce(live.grp, planned.grp) AS grp,
              coalesce(active, 0)::int AS active, coalesce(deactivations, 0)::int AS deactivations,
              coalesce(updates, 0)::int AS updates, coalesce(additions, 0)::int AS additions
       FROM live FULL JOIN planned ON planned.sch = live.sch AND planned.grp = live.grp`,
      [context.districtId, judging.all, judging.listed]
    )
    let deactivated = 0
    let updated = 0
    const from = `LEFT JOIN ${table} l ON l.id = p2.live_id`
    const rowGroup = group("coalesce(l.roles, p2.roles)")
    const rowSchools = kind === "users" ? "coalesce(l.org_source_ids, p2.org_source_ids)" : "ARRAY[coalesce(l.school_source_id, p2.school_source_id)]"
    for (const verdict of judgeSchools(figures, judging, label)) {
      if (verdict.deactivations !== undefined) {
        tripped.push(verdict.deactivations)
        deactivated += yield* holdSchoolRows(plan, from, rowSchools, rowGroup, "deactivate", verdict.school, verdict.grp, verdict.deactivations.rule)
      }
      if (verdict.updates !== undefined) {
        tripped.push(verdict.updates)
        updated += yield* holdSchoolRows(plan, from, rowSchools, rowGroup, "update", verdict.school, verdict.grp, "update_percent", "AND l.active")
      }
    }
    return { deactivated, updated }
  }).pipe(Effect.withSpan("Gate.gateSchoolsKeyed", { attributes: { kind } }))

const holdGroup = (plan: string, from: string, group: string, action: "deactivate" | "update", grp: string, rule: GateRule, extra = "") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly n: number }>(
      `WITH marked AS (
         UPDATE ${plan} p SET held = true, rule = $3
         FROM (SELECT p2.ctid AS row FROM ${plan} p2 ${from} WHERE p2.action = $1 AND ${group} = $2 ${extra}) x
         WHERE p.ctid = x.row
         RETURNING 1)
       SELECT count(*)::int AS n FROM marked`,
      [action, grp, rule]
    )).pipe(Effect.map((rows) => rows[0]?.n ?? 0))

/** The gate of a keyed kind (schools, terms, courses, classes, users). */
export const gateKeyed = (kind: KeyedKind, context: ApplyContext, rules: GateRules, tripped: Array<Tripped>, schools?: SchoolJudging): GateHook =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = Entities[kind].table!
    const label = Entities[kind].label
    const plan = planTable(kind)
    const group = (roles: string) => (kind === "users" ? roleGroupSql(roles) : `'${label}'`)
    const figures = yield* sql.unsafe<GroupFigures>(
      `WITH live AS (
         SELECT ${group("t.roles")} AS grp, count(*) AS active FROM ${table} t WHERE t.district_id = $1 AND t.active GROUP BY 1),
       planned AS (
         SELECT ${group("coalesce(l.roles, p.roles)")} AS grp,
                count(*) FILTER (WHERE p.action = 'deactivate') AS deactivations,
                count(*) FILTER (WHERE p.action = 'update' AND l.active) AS updates,
                count(*) FILTER (WHERE p.action = 'create' OR (p.action = 'update' AND NOT l.active)) AS additions
         FROM ${plan} p LEFT JOIN ${table} l ON l.id = p.live_id GROUP BY 1)
       SELECT coalesce(live.grp, planned.grp) AS grp, coalesce(active, 0)::int AS active,
              coalesce(deactivations, 0)::int AS deactivations, coalesce(updates, 0)::int AS updates,
              coalesce(additions, 0)::int AS additions
       FROM live FULL JOIN planned ON planned.grp = live.grp`,
      [context.districtId]
    )
    let deactivated = 0
    let updated = 0
    const from = `LEFT JOIN ${table} l ON l.id = p2.live_id`
    const rowGroup = group("coalesce(l.roles, p2.roles)")
    for (const g of figures) {
      const verdict = judge(g, rules, label)
      if (verdict.deactivations !== undefined) {
        tripped.push(verdict.deactivations)
        deactivated += yield* holdGroup(plan, from, rowGroup, "deactivate", g.grp, verdict.deactivations.rule)
      }
      if (verdict.updates !== undefined) {
        tripped.push(verdict.updates)
        updated += yield* holdGroup(plan, from, rowGroup, "update", g.grp, "update_percent", "AND l.active")
      }
    }
    if ((kind === "users" || kind === "classes") && judgesSchools(schools)) {
      const bySchool = yield* gateSchoolsKeyed(kind, context, schools, tripped)
      deactivated += bySchool.deactivated
      updated += bySchool.updated
    }
    return { deactivated, updated }
  }).pipe(Effect.withSpan("Gate.gateKeyed", { attributes: { kind } }))

/** Enrollment ends that follow a class or person this run removed: never held. */
const FOLLOWS_REMOVAL = `('class_removed', 'user_removed')`

/** The gate of enrollments: the type's thresholds, then the per-class cut. */
export const gateEnrollments = (context: ApplyContext, rules: GateRules, tripped: Array<Tripped>, schools?: SchoolJudging): GateHook =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const plan = planTable("enrollments")
    const [figures] = yield* sql.unsafe<GroupFigures>(
      `SELECT 'enrollments' AS grp,
              (SELECT count(*) FROM enrollments WHERE district_id = $1 AND ended_at IS NULL)::int AS active,
              count(*) FILTER (WHERE action = 'deactivate' AND reason NOT IN ${FOLLOWS_REMOVAL})::int AS deactivations,
              count(*) FILTER (WHERE action = 'update')::int AS updates,
              count(*) FILTER (WHERE action = 'create')::int AS additions
       FROM ${plan}`,
      [context.districtId]
    )
    let deactivated = 0
    let updated = 0
    const judged = `AND p2.reason NOT IN ${FOLLOWS_REMOVAL}`
    if (figures !== undefined) {
      const verdict = judge(figures, rules, "enrollments")
      if (verdict.deactivations !== undefined) {
        tripped.push(verdict.deactivations)
        deactivated += yield* holdGroup(plan, "", "'enrollments'", "deactivate", "enrollments", verdict.deactivations.rule, judged)
      }
      if (verdict.updates !== undefined) {
        tripped.push(verdict.updates)
        updated += yield* holdGroup(plan, "", "'enrollments'", "update", "enrollments", "update_percent")
      }
    }
    // A class losing half its members or more (classes of at least classMinSize).
    // Only a class losing at least minSize × percent / 100 members can be cut (it has at
    // least minSize): the others' sizes are not read. A 1 % resync ends one or two
    // memberships in each of 7,000 classes, and reading their sizes took 0.22 s at 100k.
    const [cut] = yield* sql.unsafe<{ readonly classes: number; readonly ends: number; readonly of: number }>(
      `WITH ends AS (
         SELECT class_id, count(*) AS n FROM ${plan}
         WHERE action = 'deactivate' AND NOT held AND reason NOT IN ${FOLLOWS_REMOVAL} GROUP BY class_id
         HAVING count(*) * 100 >= $2::int * $3::numeric),
       sizes AS (
         SELECT e.class_id, count(*) AS members FROM enrollments e
         WHERE e.district_id = $1 AND e.ended_at IS NULL AND e.class_id = ANY (ARRAY(SELECT class_id FROM ends)) GROUP BY e.class_id),
       cut AS (
         SELECT ends.class_id, ends.n, sizes.members FROM ends JOIN sizes USING (class_id)
         WHERE sizes.members >= $2 AND ends.n * 100 >= sizes.members * $3),
       marked AS (
         UPDATE ${plan} p SET held = true, rule = 'class_cut' FROM cut
         WHERE p.class_id = cut.class_id AND p.action = 'deactivate' AND NOT p.held AND p.reason NOT IN ${FOLLOWS_REMOVAL}
         RETURNING 1)
       SELECT (SELECT count(*) FROM cut)::int AS classes, (SELECT count(*) FROM marked)::int AS ends,
              (SELECT coalesce(sum(members), 0) FROM cut)::int AS of`,
      [context.districtId, rules.classMinSize, rules.maxClassCutPercent]
    )
    if (cut !== undefined && cut.classes > 0) {
      tripped.push({ kind: "enrollments", group: `${cut.classes} classes`, rule: "class_cut", count: cut.ends, of: cut.of, limit: rules.maxClassCutPercent })
      deactivated += cut.ends
    }
    if (judgesSchools(schools)) {
      // By the school of each enrollment's class: the ends the district's verdict left.
      const figuresBySchool = yield* sql.unsafe<GroupFigures & { readonly school: string }>(
        `WITH live AS (
           SELECT c.school_source_id AS sch, count(*) AS active FROM enrollments e JOIN classes c ON c.id = e.class_id
           WHERE e.district_id = $1 AND e.ended_at IS NULL AND ($2 OR c.school_source_id = ANY ($3::text[])) GROUP BY 1),
         planned AS (
           SELECT c.school_source_id AS sch,
                  count(*) FILTER (WHERE p.action = 'deactivate' AND NOT p.held AND p.reason NOT IN ${FOLLOWS_REMOVAL}) AS deactivations,
                  count(*) FILTER (WHERE p.action = 'update' AND NOT p.held) AS updates,
                  count(*) FILTER (WHERE p.action = 'create') AS additions
           FROM ${plan} p JOIN classes c ON c.id = p.class_id
           WHERE $2 OR c.school_source_id = ANY ($3::text[]) GROUP BY 1)
         SELECT coalesce(live.sch, planned.sch) AS school, 'enrollments' AS grp, coalesce(active, 0)::int AS active,
                coalesce(deactivations, 0)::int AS deactivations, coalesce(updates, 0)::int AS updates,
                coalesce(additions, 0)::int AS additions
         FROM live FULL JOIN planned ON planned.sch = live.sch`,
        [context.districtId, schools.all, schools.listed]
      )
      const rowSchools = `ARRAY[(SELECT c.school_source_id FROM classes c WHERE c.id = p2.class_id)]`
      for (const verdict of judgeSchools(figuresBySchool, schools, "enrollments")) {
        if (verdict.deactivations !== undefined) {
          tripped.push(verdict.deactivations)
          deactivated += yield* holdSchoolRows(plan, "", rowSchools, "'enrollments'", "deactivate", verdict.school, "enrollments", verdict.deactivations.rule, judged)
        }
        if (verdict.updates !== undefined) {
          tripped.push(verdict.updates)
          updated += yield* holdSchoolRows(plan, "", rowSchools, "'enrollments'", "update", verdict.school, "enrollments", "update_percent")
        }
      }
    }
    return { deactivated, updated }
  }).pipe(Effect.withSpan("Gate.gateEnrollments"))
