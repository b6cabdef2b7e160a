import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { RekeyRules } from "../Domain/DistrictRules.ts"
import { roleGroupSql } from "../Domain/Roles.ts"
import type { ApplyContext } from "./Apply.ts"
import type { KeyedKind } from "./Entities.ts"
import { Entities, KeyedKinds, stageTable } from "./Entities.ts"
import type { FindingsContext } from "./Findings.ts"
import type { Tripped } from "./Gate.ts"
import { STAGED_IDENTITIES } from "./Identities.ts"

/**
 * Re-keyed sources (README "Re-keyed sources"; migrations/0012_rekey.ts).
 *
 * When a district's SIS or provider gives its records new source IDs (Infinite Campus moving
 * from OneRoster 1.1 to 1.2 keeps the old one in `metadata.ic.legacysourceId`; an SIS
 * migration keeps only e-mail and birth date), a plain full run would deactivate every
 * record and create it again: new accounts, ended enrollment history. The gate would hold
 * the deactivations, but not say "these are the same people", and the creates would apply.
 *
 * **Detection**, in a full run, on the staged snapshot, before anything is applied, per kind
 * read as a complete (bulk) feed, set-based:
 *
 * 1. *disappeared*: active records the snapshot no longer lists (what the plan would
 *    deactivate as missing or `tobedeleted`); *appeared*: listed records with a source ID the
 *    district has never had (what it would create).
 * 2. A kind is a candidate when at least `rekey.minPercent` of its active records, and at
 *    least `rekey.minRecords`, disappeared. Without a candidate detection stops here: one
 *    count per kind is all an ordinary run pays.
 * 3. Otherwise the appeared records are matched to the disappeared ones on stable
 *    identities, strongest first — people: a legacy source ID naming the old source ID; an
 *    SIS/state/login id (`identifier`, `userIds`, Clever `sis_id` …) of the same role group;
 *    e-mail + birth date; e-mail + name (both without a birth date); schools: identifier,
 *    then name; terms: title + type + dates; courses: code + school; classes: code + school +
 *    terms, then title + school + course + terms + periods. References of the appeared
 *    records (a class's school, course, terms) are read through the pairs already made, in
 *    dependency order, so a source that re-keyed everything still matches. A key counts only
 *    where it is unique on both sides, and a pair only where both its records have no other
 *    candidate: **one-to-one**, never a guess.
 * 4. A candidate kind is *suspected* when the appeared records are about as many as the
 *    disappeared ones (within `rekey.tolerancePercent`) and at least `rekey.minMatchPercent`
 *    of the disappeared ones are paired.
 *
 * **A suspected run applies nothing** (SyncRun): every other kind refers to the re-keyed
 * IDs (classes to schools, courses and terms; enrollments to classes and people; people to
 * schools), so applying "the rest" would write the new IDs into references half-way and end
 * enrollment history. The run is `held`: its hold (`tripped` rule `rekey_suspected`) keeps
 * the disappeared records of the suspected kinds as held deactivations (approving it means
 * "they really left"), the figures per kind (`rekey_suspicions`) and the **proposed
 * mapping** of every kind's one-to-one pairs (`rekey_proposals`; enrollments' own source
 * IDs paired by class and person). `rosterd district rekey <district> --run <run>` applies
 * it (src/Districts/Rekey.ts); the next run then applies the source's other changes.
 */

/** The identity kinds of people that are stable across a re-key besides the legacy source ID. */
const STABLE_IDENTITY_KINDS = ["identifier", "user_id", "sis_id", "state_id", "student_number", "teacher_number", "staff_id"] as const

/** What a proposed pair matched on: kept with the proposal, never the value. */
export const MATCH_KINDS = [
  "legacy_source_id",
  ...STABLE_IDENTITY_KINDS,
  "email_birth_date",
  "email_name",
  "identifier",
  "name",
  "title_dates",
  "course_code",
  "title",
  "class_code_term",
  "title_term",
  "class_user"
] as const

export interface RekeyFigures {
  readonly kind: KeyedKind
  readonly suspected: boolean
  readonly active: number
  readonly disappeared: number
  readonly appeared: number
  readonly matched: number
}

/** A suspected re-key: the figures of every kind judged. The pairs are in `pg_temp.rekey_pairs`. */
export interface RekeySuspicion {
  readonly figures: ReadonlyArray<RekeyFigures>
  readonly rules: RekeyRules
}

type Context = ApplyContext & FindingsContext

const gone = (kind: KeyedKind) => `pg_temp.rekey_gone_${kind}`
const fresh = (kind: KeyedKind) => `pg_temp.rekey_new_${kind}`

const norm = (expr: string) => `nullif(lower(btrim(${expr})), '')`

/** An appeared record's reference, read through the pairs of `kind` already made (new → old). */
const asOld = (kind: KeyedKind, expr: string) =>
  `coalesce((SELECT p.old_source_id FROM pg_temp.rekey_pairs p WHERE p.kind = '${kind}' AND p.new_source_id = ${expr}), ${expr})`
const asOldSorted = (kind: KeyedKind, expr: string) =>
  `ARRAY(SELECT coalesce(p.old_source_id, x) FROM unnest(${expr}) x
         LEFT JOIN pg_temp.rekey_pairs p ON p.kind = '${kind}' AND p.new_source_id = x ORDER BY 1)`
const sorted = (expr: string) => `ARRAY(SELECT x FROM unnest(${expr}) x ORDER BY 1)`

/**
 * One way of pairing records: for each side, a SELECT of `(source_id, key)` — the
 * disappeared side with `live_id` and `label` (the match kind) too. `key` is null where the
 * record has nothing to match on.
 */
interface Matcher {
  readonly priority: number
  readonly gone: string
  readonly fresh: string
}

/** A key of required parts (null when one is missing) and optional ones. */
const key = (required: ReadonlyArray<string>, optional: ReadonlyArray<string> = []) =>
  `CASE WHEN ${required.map((r) => `(${r}) IS NOT NULL`).join(" AND ")} THEN jsonb_build_array(${[...required, ...optional].join(", ")})::text END`

const simple = (kind: KeyedKind, priority: number, label: string, goneKey: string, freshKey: string): Matcher => ({
  priority,
  gone: `SELECT g.id AS live_id, g.source_id, ${goneKey} AS key, '${label}' AS label FROM ${gone(kind)} g`,
  fresh: `SELECT n.source_id, ${freshKey} AS key FROM ${fresh(kind)} n`
})

const matchers = (kind: KeyedKind): ReadonlyArray<Matcher> => {
  switch (kind) {
    case "orgs":
      return [
        simple(kind, 1, "identifier", key(["g.org_type", "nullif(btrim(g.identifier), '')"]), key(["n.org_type", "nullif(btrim(n.identifier), '')"])),
        simple(kind, 2, "name", key(["g.org_type", norm("g.name")]), key(["n.org_type", norm("n.name")]))
      ]
    case "terms":
      return [
        simple(
          kind,
          1,
          "title_dates",
          key(["g.session_type", norm("g.title"), "g.start_date", "g.end_date"]),
          key(["n.session_type", norm("n.title"), "n.start_date", "n.end_date"])
        )
      ]
    case "courses":
      return [
        simple(
          kind,
          1,
          "course_code",
          key(["nullif(btrim(g.course_code), '')"], ["g.org_source_id"]),
          key(["nullif(btrim(n.course_code), '')"], [asOld("orgs", "n.org_source_id")])
        ),
        simple(
          kind,
          2,
          "title",
          key([norm("g.title")], ["g.org_source_id", "g.school_year_source_id"]),
          key([norm("n.title")], [asOld("orgs", "n.org_source_id"), asOld("terms", "n.school_year_source_id")])
        )
      ]
    case "classes":
      return [
        simple(
          kind,
          1,
          "class_code_term",
          key(["nullif(btrim(g.class_code), '')", "g.school_source_id"], [sorted("g.term_source_ids")]),
          key(["nullif(btrim(n.class_code), '')", asOld("orgs", "n.school_source_id")], [asOldSorted("terms", "n.term_source_ids")])
        ),
        simple(
          kind,
          2,
          "title_term",
          key([norm("g.title"), "g.school_source_id"], ["g.course_source_id", sorted("g.term_source_ids"), sorted("g.periods")]),
          key(
            [norm("n.title"), asOld("orgs", "n.school_source_id")],
            [asOld("courses", "n.course_source_id"), asOldSorted("terms", "n.term_source_ids"), sorted("n.periods")]
          )
        )
      ]
    case "users": {
      const stable = STABLE_IDENTITY_KINDS.map((k) => `'${k}'`).join(", ")
      return [
        {
          // The new record names the old one.
          priority: 1,
          gone: `SELECT g.id AS live_id, g.source_id, g.source_id AS key, 'legacy_source_id' AS label FROM ${gone(kind)} g`,
          fresh: `SELECT i.source_id, i.value AS key FROM ${STAGED_IDENTITIES} i
                  JOIN ${fresh(kind)} n ON n.source_id = i.source_id WHERE i.kind = 'legacy_source_id'`
        },
        {
          // An SIS, state or login id, within the role group; the label is the identity's kind.
          priority: 2,
          gone: `SELECT g.id AS live_id, g.source_id, jsonb_build_array(${roleGroupSql("g.roles")}, i.kind, i.type, i.value)::text AS key,
                        i.kind AS label
                 FROM ${gone(kind)} g JOIN user_identities i ON i.user_id = g.id AND i.ended_at IS NULL AND i.kind IN (${stable})
                 UNION
                 SELECT g.id, g.source_id, jsonb_build_array(${roleGroupSql("g.roles")}, 'identifier', '', btrim(g.identifier))::text, 'identifier'
                 FROM ${gone(kind)} g WHERE nullif(btrim(g.identifier), '') IS NOT NULL`,
          fresh: `SELECT i.source_id, jsonb_build_array(${roleGroupSql("n.roles")}, i.kind, i.type, i.value)::text AS key
                  FROM ${STAGED_IDENTITIES} i JOIN ${fresh(kind)} n ON n.source_id = i.source_id WHERE i.kind IN (${stable})`
        },
        simple(
          kind,
          3,
          "email_birth_date",
          key([roleGroupSql("g.roles"), norm("g.email"), "g.birth_date"]),
          key([roleGroupSql("n.roles"), norm("n.email"), "n.birth_date"])
        ),
        // People without a birth date on either side (teachers, mostly): e-mail and name.
        simple(
          kind,
          4,
          "email_name",
          `CASE WHEN g.birth_date IS NULL THEN ${key([roleGroupSql("g.roles"), norm("g.email"), norm("g.given_name"), norm("g.family_name")])} END`,
          `CASE WHEN n.birth_date IS NULL THEN ${key([roleGroupSql("n.roles"), norm("n.email"), norm("n.given_name"), norm("n.family_name")])} END`
        )
      ]
    }
  }
}

/** Records the snapshot no longer lists (what the plan would deactivate), as a predicate on the live row `l`. */
const disappearedWhere = (kind: KeyedKind) =>
  `l.district_id = $1 AND l.active
   AND l.source_id NOT IN (SELECT s.source_id FROM ${stageTable(kind)} s WHERE s.source_id IS NOT NULL AND (s.invalid OR s.status = 'active'))`

/** Staged records with a source ID the district has never had (what the plan would create). */
const appearedFrom = (kind: KeyedKind) =>
  `FROM ${stageTable(kind)} s
   WHERE NOT s.invalid AND NOT s.shadowed AND s.status = 'active' AND s.excluded IS NULL
     AND NOT EXISTS (SELECT 1 FROM ${Entities[kind].table} l WHERE l.district_id = $1 AND l.source_id = s.source_id)`

/**
 * Detection (see above), in the run's transaction, before the apply. Returns null when the
 * run is no re-key; otherwise the figures, with the pairs left in `pg_temp.rekey_pairs`
 * (dropped at the end of the transaction) for `holdRekey`.
 */
export const detectRekey = (context: Context, rules: RekeyRules) =>
  Effect.gen(function*() {
    if (!rules.detect) return null
    const sql = yield* SqlClient.SqlClient
    const kinds = KeyedKinds.filter((kind) => context.modes[kind] === "bulk")
    // 1–2. One pass per kind: its active records, and how many the snapshot no longer lists.
    const counted: Array<{ readonly kind: KeyedKind; readonly active: number; readonly disappeared: number }> = []
    for (const kind of kinds) {
      const [row] = yield* sql.unsafe<{ readonly active: number; readonly disappeared: number }>(
        `SELECT count(*)::int AS active,
                count(*) FILTER (WHERE l.source_id NOT IN (
                  SELECT s.source_id FROM ${stageTable(kind)} s WHERE s.source_id IS NOT NULL AND (s.invalid OR s.status = 'active')))::int AS disappeared
         FROM ${Entities[kind].table} l WHERE l.district_id = $1 AND l.active`,
        [context.districtId]
      )
      counted.push({ kind, active: row?.active ?? 0, disappeared: row?.disappeared ?? 0 })
    }
    const candidate = (c: { readonly active: number; readonly disappeared: number }) =>
      c.disappeared >= rules.minRecords && c.disappeared * 100 >= c.active * rules.minPercent
    if (!counted.some(candidate)) return null

    // 3. Pair the appeared records with the disappeared ones, kind by kind in dependency order.
    yield* sql.unsafe(`
      DROP TABLE IF EXISTS pg_temp.rekey_candidates;
      DROP TABLE IF EXISTS pg_temp.rekey_pairs;
      CREATE TEMP TABLE rekey_candidates (kind text NOT NULL, live_id bigint NOT NULL, old_source_id text NOT NULL,
        new_source_id text NOT NULL, matched_on text NOT NULL, priority int NOT NULL) ON COMMIT DROP;
      CREATE TEMP TABLE rekey_pairs (kind text NOT NULL, live_id bigint NOT NULL, old_source_id text NOT NULL,
        new_source_id text NOT NULL, matched_on text NOT NULL) ON COMMIT DROP;
      CREATE INDEX ON pg_temp.rekey_pairs (kind, new_source_id);`)
    const figures: Array<RekeyFigures> = []
    for (const { active, disappeared, kind } of counted) {
      const table = Entities[kind].table!
      yield* sql.unsafe(`DROP TABLE IF EXISTS ${gone(kind)}; DROP TABLE IF EXISTS ${fresh(kind)};`)
      yield* sql.unsafe(`CREATE TEMP TABLE ${gone(kind).slice("pg_temp.".length)} ON COMMIT DROP AS SELECT l.* FROM ${table} l WHERE ${disappearedWhere(kind)}`, [
        context.districtId
      ])
      // The appeared people carry the birth date their demographics row gives them.
      const birthDate = kind !== "users" || context.modes.demographics === null
        ? ""
        : `, (SELECT d.birth_date FROM ${stageTable("demographics")} d
              WHERE d.source_id = s.source_id AND NOT d.invalid AND NOT d.shadowed AND d.status = 'active' LIMIT 1) AS birth_date`
      const noBirthDate = kind === "users" && context.modes.demographics === null ? ", NULL::date AS birth_date" : ""
      yield* sql.unsafe(`CREATE TEMP TABLE ${fresh(kind).slice("pg_temp.".length)} ON COMMIT DROP AS SELECT s.*${birthDate}${noBirthDate} ${appearedFrom(kind)}`, [
        context.districtId
      ])
      const [fresher] = yield* sql.unsafe<{ readonly n: number }>(`SELECT count(*)::int AS n FROM ${fresh(kind)}`)
      const appeared = fresher?.n ?? 0
      let matched = 0
      if (disappeared > 0 && appeared > 0) {
        for (const m of matchers(kind)) {
          yield* sql.unsafe(
            `WITH g AS (SELECT DISTINCT live_id, source_id, key, label FROM (${m.gone}) x WHERE key IS NOT NULL),
                  gu AS (SELECT key FROM g GROUP BY key HAVING count(*) = 1),
                  n AS (SELECT DISTINCT source_id, key FROM (${m.fresh}) x WHERE key IS NOT NULL),
                  nu AS (SELECT key FROM n GROUP BY key HAVING count(*) = 1)
             INSERT INTO pg_temp.rekey_candidates (kind, live_id, old_source_id, new_source_id, matched_on, priority)
             SELECT '${kind}', g.live_id, g.source_id, n.source_id, g.label, ${m.priority}
             FROM g JOIN gu USING (key) JOIN n USING (key) JOIN nu USING (key)
             WHERE g.source_id <> n.source_id`
          )
        }
        // One-to-one: a record with candidates pointing two ways is paired with neither.
        const [row] = yield* sql.unsafe<{ readonly n: number }>(
          `WITH best AS (
             SELECT DISTINCT ON (live_id, new_source_id) live_id, old_source_id, new_source_id, matched_on
             FROM pg_temp.rekey_candidates WHERE kind = $1 ORDER BY live_id, new_source_id, priority, matched_on),
           counted AS (
             SELECT b.*, count(*) OVER (PARTITION BY live_id) AS per_old, count(*) OVER (PARTITION BY new_source_id) AS per_new FROM best b),
           paired AS (
             INSERT INTO pg_temp.rekey_pairs (kind, live_id, old_source_id, new_source_id, matched_on)
             SELECT $1, live_id, old_source_id, new_source_id, matched_on FROM counted WHERE per_old = 1 AND per_new = 1
             RETURNING 1)
           SELECT count(*)::int AS n FROM paired`,
          [kind]
        )
        matched = row?.n ?? 0
        yield* sql.unsafe(`ANALYZE pg_temp.rekey_pairs`)
      }
      const suspected = candidate({ active, disappeared }) &&
        Math.abs(appeared - disappeared) * 100 <= disappeared * rules.tolerancePercent &&
        matched * 100 >= disappeared * rules.minMatchPercent
      figures.push({ kind, suspected, active, disappeared, appeared, matched })
    }
    if (!figures.some((f) => f.suspected)) {
      yield* dropDetection(kinds)
      return null
    }
    // Enrollments' own source IDs: the same class and person, once those are mapped.
    if (context.modes.enrollments === "bulk") {
      yield* sql.unsafe(
        `WITH staged AS (
           SELECT s.source_id, ${asOld("classes", "s.class_source_id")} AS class_source_id, ${asOld("users", "s.user_source_id")} AS user_source_id
           FROM ${stageTable("enrollments")} s
           WHERE NOT s.invalid AND NOT s.shadowed AND s.status = 'active' AND s.excluded IS NULL AND s.source_id IS NOT NULL),
         found AS (
           SELECT e.id AS live_id, e.source_id AS old_source_id, s.source_id AS new_source_id,
                  count(*) OVER (PARTITION BY e.id) AS per_old, count(*) OVER (PARTITION BY s.source_id) AS per_new
           FROM staged s JOIN enrollments e
             ON e.district_id = $1 AND e.ended_at IS NULL AND e.class_source_id = s.class_source_id AND e.user_source_id = s.user_source_id
           WHERE e.source_id <> s.source_id)
         INSERT INTO pg_temp.rekey_pairs (kind, live_id, old_source_id, new_source_id, matched_on)
         SELECT 'enrollments', live_id, old_source_id, new_source_id, 'class_user' FROM found WHERE per_old = 1 AND per_new = 1`,
        [context.districtId]
      )
    }
    return { figures, rules } satisfies RekeySuspicion as RekeySuspicion
  }).pipe(Effect.withSpan("Rekey.detectRekey"))

const dropDetection = (kinds: ReadonlyArray<KeyedKind>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(
      [
        "DROP TABLE IF EXISTS pg_temp.rekey_candidates;",
        "DROP TABLE IF EXISTS pg_temp.rekey_pairs;",
        ...kinds.map((kind) => `DROP TABLE IF EXISTS ${gone(kind)}; DROP TABLE IF EXISTS ${fresh(kind)};`)
      ].join("\n")
    ))

/** `users 2000 of 2000 disappeared, 2000 appeared, 1990 paired (legacy_source_id 1990)`. */
export const describeFigures = (f: Pick<RekeyFigures, "kind" | "active" | "disappeared" | "appeared" | "matched">, byMatch: ReadonlyArray<MatchCount>) =>
  `${Entities[f.kind].label} ${f.disappeared} of ${f.active} disappeared, ${f.appeared} appeared, ${f.matched} paired` +
  (byMatch.length === 0 ? "" : ` (${byMatch.map((m) => `${m.matchedOn} ${m.n}`).join(", ")})`)

export interface MatchCount {
  readonly kind: string
  readonly matchedOn: string
  readonly n: number
}

/**
 * Records a suspected re-key as the run's hold: the disappeared records of the suspected
 * kinds as held deactivations, the figures and the proposed mapping. Returns the tripped
 * entries and the held counts for the run summary, and a note.
 */
export const holdRekey = (context: Context, suspicion: RekeySuspicion, dryRun: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const suspected = suspicion.figures.filter((f) => f.suspected)
    const tripped: Array<Tripped> = suspected.map((f) => ({
      kind: Entities[f.kind].label,
      group: Entities[f.kind].label,
      rule: "rekey_suspected",
      count: f.matched,
      of: f.active,
      limit: suspicion.rules.minPercent
    }))
    yield* sql`INSERT INTO holds (run_id, district_id, tripped) VALUES (${context.runId}, ${context.districtId}, ${JSON.stringify(tripped)}::jsonb)`
    for (const f of suspected) {
      yield* sql.unsafe(
        `INSERT INTO held_changes (run_id, kind, action, live_id, source_id, reason, rule)
         SELECT $1, '${f.kind}', 'deactivate', g.id, g.source_id, 'missing_from_source', 'rekey_suspected' FROM ${gone(f.kind)} g`,
        [context.runId]
      )
    }
    for (const f of suspicion.figures) {
      yield* sql`INSERT INTO rekey_suspicions (run_id, kind, suspected, active, disappeared, appeared, matched)
                 VALUES (${context.runId}, ${f.kind}, ${f.suspected}, ${f.active}, ${f.disappeared}, ${f.appeared}, ${f.matched})`
    }
    yield* sql.unsafe(
      `INSERT INTO rekey_proposals (run_id, kind, live_id, old_source_id, new_source_id, matched_on)
       SELECT $1, kind, live_id, old_source_id, new_source_id, matched_on FROM pg_temp.rekey_pairs`,
      [context.runId]
    )
    const byMatch = yield* matchCounts(context.runId)
    const held: Partial<Record<"schools" | "terms" | "courses" | "classes" | "users", { deactivated: number; updated: number }>> = {}
    for (const f of suspected) held[f.kind === "orgs" ? "schools" : f.kind] = { deactivated: f.disappeared, updated: 0 }
    const describe = suspected.map((f) => describeFigures(f, byMatch.filter((m) => m.kind === Entities[f.kind].label))).join("; ")
    const note = dryRun
      ? `would be held as a suspected re-key, nothing applied: ${describe}`
      : `held as a suspected re-key, nothing applied: ${describe}. Review: rosterd holds show ${context.runId}; ` +
        `same records: rosterd district rekey ${context.districtId} --run ${context.runId} --by <name>; ` +
        `they really left: rosterd holds approve ${context.runId} --by <name>`
    return { tripped, held, note }
  }).pipe(Effect.withSpan("Rekey.holdRekey"))

/** The proposed pairs of a run per kind and match kind. */
export const matchCounts = (runId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly kind: string; readonly matchedOn: string; readonly n: number }>`
      SELECT kind, matched_on, count(*)::int AS n FROM rekey_proposals WHERE run_id = ${runId}
      GROUP BY kind, matched_on ORDER BY kind, count(*) DESC, matched_on`.pipe(
      Effect.map((rows) => rows.map((r) => ({ ...r, kind: r.kind === "enrollments" ? "enrollments" : Entities[r.kind as KeyedKind].label })))
    ))

export interface RekeySummary {
  readonly runId: number
  readonly state: string
  readonly kinds: ReadonlyArray<RekeyFigures & { readonly label: string }>
  /** Pairs proposed per kind and match kind (enrollments too). */
  readonly proposed: ReadonlyArray<MatchCount>
}

/**
 * The suspicion a hold records, for `holds show` and `rosterd report`: counts per kind and
 * match kind, no value. `undefined` when the run held no re-key.
 */
export const rekeySummary = (runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<Omit<RekeyFigures, "kind"> & { readonly kind: KeyedKind; readonly state: string }>`
      SELECT r.kind, r.suspected, r.active, r.disappeared, r.appeared, r.matched, h.state
      FROM rekey_suspicions r JOIN holds h ON h.run_id = r.run_id WHERE r.run_id = ${runId}`
    if (rows.length === 0) return undefined
    const order = (kind: KeyedKind) => KeyedKinds.indexOf(kind)
    return {
      runId,
      state: rows[0]!.state,
      kinds: [...rows].sort((a, b) => order(a.kind) - order(b.kind)).map(({ state: _, ...r }) => ({ ...r, label: Entities[r.kind].label })),
      proposed: yield* matchCounts(runId)
    } satisfies RekeySummary as RekeySummary
  })

/** The district's pending hold that suspects a re-key, if any: for `rosterd report`. */
export const pendingRekey = (districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly runId: number }>`
      SELECT h.run_id FROM holds h WHERE h.district_id = ${districtId} AND h.state = 'pending'
        AND EXISTS (SELECT 1 FROM rekey_suspicions r WHERE r.run_id = h.run_id)`
    return row === undefined ? undefined : yield* rekeySummary(Number(row.runId))
  })
