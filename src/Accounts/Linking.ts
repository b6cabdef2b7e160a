import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { ApplyContext } from "../Reconcile/Apply.ts"
import type { FindingsContext } from "../Reconcile/Findings.ts"
import { insertFindings } from "../Reconcile/Findings.ts"
import { writeReferencesBySet } from "../Reconcile/ReferencesBySet.ts"
import { districtEmailMasked, districtNamesMasked, MASK_SHARED_MIN, maskedEmail, sharedAddressKeys } from "../Reconcile/Quality.ts"
import { ENROLLED, studentActivationSql } from "../Reconcile/Rules/People.ts"
import { ADMIN_ROLES_SQL, CONFIRMING_ROLES_SQL, studentOnlySql } from "../Domain/Roles.ts"

/**
 * Account linking and activation (seeds 001, 002; issue 15), run in every sync's
 * transaction after the roster is applied. README "Accounts, linking and activation".
 *
 * **Address changes** first: a linked person whose district address is not a current
 * address of their account gets it added (`added_by` sync, `source_user_id` the person);
 * the address that was theirs before becomes *former* (`former_at`): kept on the account,
 * no longer used for linking. No new activation. One audit row per run that changed any
 * (`sync.addresses`: counts and account ids, never an address). A masked address is never
 * added.
 *
 * Then every active teacher and student (and roster admin, when the district's rule
 * `syncAdmins` is on: handled like a teacher) without an account, in this order — the first
 * rule that applies decides:
 *
 * 1. **Identity.** An account known by one of the person's login identities
 *    (`account_identities`, from `accounts import`): their source ID first, then a `userIds`
 *    entry. Exactly one such account, not linked to another active rostered user (in any
 *    district: a OneRoster sourcedId is unique only within its source) → linked
 *    (`identity`), whatever the address says. Several, or one taken → review
 *    (`identity_conflict`).
 * 2. **Masked.** The district's e-mail field is masked, or this address looks masked (or is
 *    given to ten people or more): no account, no link, no activation e-mail, no review —
 *    the person waits (reported) until the district shares the address.
 * 3. **One person, two records.** Active staff records (teachers, administrators — never a
 *    student record) of the district with the same address and the same given and family
 *    names (names not masked), whose roles do not overlap (a teacher at one school, an
 *    administrator at another), and which no other record of the district shares the
 *    address with: one account for all of them (`same_person`) — the one a record of them
 *    is linked to already, or one new account made for the teacher record, whose activation
 *    e-mail is the person's only one (the others follow its confirmation). Records that
 *    merely share an address are never merged.
 * 4. **No address.** A teacher (or roster admin) with none gets no account — nobody could
 *    activate it — and a finding; the account comes with the address. (A student without
 *    one gets an account: students are activated by enrolment.)
 * 5. **Reuse.** The address is (or, as a former address, was within
 *    `rules.accounts.reuseWindowDays` days) the address of **another** rostered person of
 *    the district, active or deactivated → review (`address_reused`, with both source IDs),
 *    no account and no e-mail until an operator decides. (A returning person is the same
 *    user, still linked: never a review.)
 * 6. **The address.** Several people of this run share it → review (`email_shared`);
 *    several accounts have it as a current address → review (`several_accounts`); its one
 *    account is linked to another active rostered user (in any district) → review
 *    (`email_linked_elsewhere`); exactly one account → linked (`email`); none → a new
 *    district account (`created`), a teacher's pending until confirmed (Activation.ts).
 *
 * Links are permanent (a trigger refuses removing or moving them once the account is in
 * use); a deactivated user keeps its link, so a returning source ID comes back linked.
 * Students are active while enrolled in at least one active class, pending otherwise.
 * Other roles (aides, guardians…) get no account here. Everything is set-based: a handful of
 * statements whatever the size of the district.
 */

export interface LinkCounts {
  readonly linked: number
  readonly created: number
  readonly queued: number
  /** People left without an account this run: masked addresses, teachers without one. */
  readonly waiting: number
  /** Linked people whose account gained their (new) district address. */
  readonly addressesAdded: number
}

const PEOPLE = `ARRAY['teacher', 'student']`
/** Everyone whose address is theirs for the reuse rule, whatever `syncAdmins` says. */
const PERSONS = `(${PEOPLE} || ${ADMIN_ROLES_SQL})`

export interface LinkOptions {
  /** The district rule `syncAdmins`: roster admins are linked (like teachers) too. */
  readonly syncAdmins: boolean
  /** The district rule `accounts.reuseWindowDays`. */
  readonly reuseWindowDays: number
}

/**
 * The accounts' id sequence, looked up once a statement (an InitPlan): called per row,
 * `pg_get_serial_sequence` parses the name and reads the catalog each time (4–5 µs: half a
 * second for a first sync's 108,000 new accounts).
 */
const NEXT_ACCOUNT_SEQUENCE = `(SELECT pg_get_serial_sequence('accounts', 'id')::regclass)`

const REVIEW_REASONS = `('identity_conflict', 'address_reused', 'email_shared', 'several_accounts', 'email_linked_elsewhere')`

export const linkAccounts = (context: ApplyContext & FindingsContext, options: LinkOptions = { syncAdmins: true, reuseWindowDays: 365 }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const district = context.districtId
    const people = options.syncAdmins ? PERSONS : PEOPLE
    const addressesAdded = yield* updateAddresses(context)

    // 1. Who is to be linked, with what we know of their address and names.
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.link_people`)
    yield* sql.unsafe(
      // (The addresses shared by many are counted among the people to link only: counted over
      // every user, for the 250 a 1 % resync at 100k links, it took half of this statement.)
      `CREATE TEMP TABLE link_people AS
       WITH unlinked AS MATERIALIZED (
         SELECT u.id, u.roles, u.email, u.given_name, u.family_name FROM users u
         WHERE u.district_id = $1 AND u.active AND u.roles && ${people}
           AND NOT EXISTS (SELECT 1 FROM account_links l WHERE l.user_id = u.id)),
       shared_keys AS ${sharedAddressKeys("$1", "(SELECT lower(btrim(p.email)) FROM unlinked p)")}
       SELECT u.id AS user_id, u.roles, btrim(u.email) AS email,
              nullif(lower(btrim(u.email)), '') AS email_key,
              ${districtEmailMasked("$1")} OR (coalesce(btrim(u.email), '') <> '' AND (${maskedEmail("u.email")}
                OR lower(btrim(u.email)) IN (SELECT email_key FROM shared_keys))) AS masked,
              ${districtEmailMasked("$1")} AS district_masked,
              CASE WHEN NOT ${districtNamesMasked("$1")} THEN nullif(lower(btrim(u.given_name)), '') END AS given_key,
              CASE WHEN NOT ${districtNamesMasked("$1")} THEN nullif(lower(btrim(u.family_name)), '') END AS family_key,
              -- "teacher": confirms by e-mail (teachers, and roster admins when linked)
              u.roles && ${CONFIRMING_ROLES_SQL} AS teacher,
              u.id IN ${ENROLLED} AS enrolled
       FROM unlinked u`,
      [district]
    ).pipe(Effect.withSpan("Linking.people"))
    const [pending] = yield* sql.unsafe<{ readonly n: number }>(`SELECT count(*)::int AS n FROM pg_temp.link_people`)
    if ((pending?.n ?? 0) === 0) {
      yield* followPartners(district)
      yield* reportReviews(context, options)
      return { linked: 0, created: 0, queued: 0, waiting: 0, addressesAdded } satisfies LinkCounts
    }
    yield* sql.unsafe(`ANALYZE pg_temp.link_people`)

    // 2. Accounts known by a login identity of the person: their source ID before a userIds entry.
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.link_identity`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE link_identity AS
       WITH m AS (
         SELECT p.user_id, CASE WHEN i.kind = 'source_id' THEN 1 ELSE 2 END AS rank, a.id AS account_id
         FROM account_identities ai
         JOIN accounts a ON a.id = ai.account_id AND a.state <> 'merged'
         JOIN user_identities i ON i.value = ai.subject AND i.district_id = $1 AND i.ended_at IS NULL
           AND i.kind IN ('source_id', 'user_id')
           AND ai.provider = CASE WHEN i.provider = 'clever' THEN 'clever' ELSE 'oneroster' END
           AND (ai.kind = 'login' OR i.kind = 'source_id')
         JOIN pg_temp.link_people p ON p.user_id = i.user_id),
       best AS (SELECT user_id, min(rank) AS rank FROM m GROUP BY user_id)
       SELECT m.user_id, array_agg(DISTINCT m.account_id ORDER BY m.account_id) AS ids
       FROM m JOIN best b ON b.user_id = m.user_id AND b.rank = m.rank
       GROUP BY m.user_id`,
      [district]
    ).pipe(Effect.withSpan("Linking.identities"))

    // 3. One person with several records: same address, same names, roles that do not overlap.
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.link_same`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE link_same AS
       WITH keys AS (
         SELECT DISTINCT email_key FROM pg_temp.link_people
         WHERE NOT masked AND email_key IS NOT NULL AND given_key IS NOT NULL AND family_key IS NOT NULL
           AND user_id NOT IN (SELECT user_id FROM pg_temp.link_identity)),
       -- (addresses of the district's records that more than one record has: few)
       shared AS (
         SELECT lower(btrim(u.email)) AS email_key FROM users u
         WHERE u.district_id = $1 AND u.roles && ${PERSONS} AND lower(btrim(u.email)) IN (SELECT email_key FROM keys)
         GROUP BY 1 HAVING count(*) >= 2),
       members AS (
         SELECT u.id AS user_id, u.source_id, lower(btrim(u.email)) AS email_key, u.roles, u.active,
                lower(btrim(u.given_name)) AS given_key, lower(btrim(u.family_name)) AS family_key, l.account_id
         FROM users u LEFT JOIN account_links l ON l.user_id = u.id
         WHERE u.district_id = $1 AND u.roles && ${PERSONS} AND lower(btrim(u.email)) IN (SELECT email_key FROM shared)),
       -- no role twice: the person holds each role in one record
       roles AS (
         SELECT m.email_key, count(*) = count(DISTINCT r) AS disjoint FROM members m CROSS JOIN LATERAL unnest(m.roles) r GROUP BY m.email_key),
       -- Staff records only (teachers, administrators): a student record is never merged with
       -- another (its account activates by enrolment, a teacher's only by confirming).
       groups AS (
         SELECT m.email_key, min(m.account_id) AS account_id FROM members m JOIN roles r ON r.email_key = m.email_key AND r.disjoint
         GROUP BY m.email_key
         HAVING bool_and(m.active) AND bool_and(NOT 'student' = ANY (m.roles))
            AND count(DISTINCT (m.given_key, m.family_key)) = 1 AND bool_and(m.given_key <> '' AND m.family_key <> '')
            AND count(DISTINCT m.account_id) <= 1
            AND bool_and(m.user_id NOT IN (SELECT user_id FROM pg_temp.link_identity))),
       numbered AS (
         SELECT g.email_key, coalesce(g.account_id, nextval(${NEXT_ACCOUNT_SEQUENCE})) AS account_id,
                g.account_id IS NULL AS new_account
         FROM groups g)
       SELECT m.user_id, n.account_id, n.new_account,
              -- a new account is created for the teacher record (else the first by source ID), the others follow
              n.new_account AND m.user_id = first_value(m.user_id) OVER (
                PARTITION BY m.email_key ORDER BY 'teacher' = ANY (m.roles) DESC, m.source_id) AS leader,
              (SELECT array_agg(o.user_id ORDER BY o.user_id) FROM members o WHERE o.email_key = m.email_key AND o.user_id <> m.user_id) AS partners
       FROM members m JOIN numbered n ON n.email_key = m.email_key
       WHERE m.user_id IN (SELECT user_id FROM pg_temp.link_people)`,
      [district]
    ).pipe(Effect.withSpan("Linking.samePerson"))

    // 4. Addresses that are, or were lately, another rostered person's.
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.link_reuse`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE link_reuse AS
       WITH holders AS (
         -- their current address (a deactivated person's too; an active one's once linked:
         -- people of this run sharing one are email_shared)
         SELECT x.id AS user_id, lower(btrim(x.email)) AS email_key FROM users x
         WHERE x.district_id = $1 AND x.roles && ${PERSONS} AND lower(btrim(x.email)) IN (SELECT email_key FROM pg_temp.link_people)
           AND (NOT x.active OR EXISTS (SELECT 1 FROM account_links l WHERE l.user_id = x.id))
         UNION
         -- a current address of their account (an imported one too)
         SELECT x.id, e.email_key FROM account_emails e
         JOIN account_links l ON l.account_id = e.account_id JOIN users x ON x.id = l.user_id AND x.district_id = $1
         WHERE e.former_at IS NULL AND e.email_key IN (SELECT email_key FROM pg_temp.link_people)
         UNION
         -- a former address of theirs, within the window
         SELECT e.source_user_id, e.email_key FROM account_emails e JOIN users x ON x.id = e.source_user_id AND x.district_id = $1
         WHERE e.former_at > now() - make_interval(days => $2) AND e.email_key IN (SELECT email_key FROM pg_temp.link_people))
       SELECT p.user_id, array_agg(DISTINCT h.user_id ORDER BY h.user_id) AS related
       FROM pg_temp.link_people p JOIN holders h ON h.email_key = p.email_key AND h.user_id <> p.user_id
       WHERE NOT p.masked
       GROUP BY p.user_id`,
      [district, options.reuseWindowDays]
    ).pipe(Effect.withSpan("Linking.reuse"))

    // 5. The decisions.
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.link_decisions`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE link_decisions AS
       WITH candidates AS (
         SELECT e.email_key, array_agg(DISTINCT e.account_id ORDER BY e.account_id) AS ids
         FROM account_emails e JOIN accounts a ON a.id = e.account_id AND a.state <> 'merged'
         WHERE e.former_at IS NULL AND e.email_key IN (SELECT email_key FROM pg_temp.link_people WHERE email_key IS NOT NULL AND NOT masked)
         GROUP BY e.email_key),
       -- The one-candidate accounts already linked to an active person (in any district: a
       -- OneRoster sourcedId is unique within its source only). Looked up for those accounts
       -- only: asked per person, the planner (nested loops off, SyncRun.ts) joined every link
       -- with every user twice to answer a few hundred (0.19 s of a 1 % resync at 100k).
       linked AS (
         SELECT DISTINCT o.account_id FROM account_links o JOIN users x ON x.id = o.user_id AND x.active
         WHERE o.account_id IN (SELECT ids[1] FROM candidates WHERE cardinality(ids) = 1
                                UNION ALL SELECT ids[1] FROM pg_temp.link_identity WHERE cardinality(ids) = 1)),
       judged AS (
         SELECT p.*, coalesce(c.ids, '{}') AS email_ids, i.ids AS identity_ids,
                cardinality(i.ids) = 1 AND i.ids[1] IN (SELECT account_id FROM linked) AS identity_taken,
                s.account_id AS same_account, s.leader, s.partners, r.related,
                p.email_key IS NOT NULL AND NOT p.masked AND s.user_id IS NULL
                  AND count(*) FILTER (WHERE s.user_id IS NULL) OVER (PARTITION BY CASE WHEN p.masked THEN NULL ELSE p.email_key END) > 1 AS shared,
                cardinality(c.ids) = 1 AND c.ids[1] IN (SELECT account_id FROM linked) AS taken
         FROM pg_temp.link_people p
         LEFT JOIN candidates c ON c.email_key = p.email_key AND NOT p.masked
         LEFT JOIN pg_temp.link_identity i ON i.user_id = p.user_id
         LEFT JOIN pg_temp.link_same s ON s.user_id = p.user_id
         LEFT JOIN pg_temp.link_reuse r ON r.user_id = p.user_id),
       decided AS (
         SELECT j.*,
                CASE WHEN identity_ids IS NOT NULL THEN CASE WHEN cardinality(identity_ids) = 1 AND NOT identity_taken THEN 'identity' ELSE 'identity_conflict' END
                     WHEN masked THEN 'masked'
                     WHEN same_account IS NOT NULL THEN CASE WHEN leader THEN 'create' ELSE 'same_person' END
                     WHEN email_key IS NULL AND teacher THEN 'no_address'
                     WHEN related IS NOT NULL THEN 'address_reused'
                     WHEN shared THEN 'email_shared'
                     WHEN cardinality(email_ids) > 1 THEN 'several_accounts'
                     WHEN taken THEN 'email_linked_elsewhere'
                     WHEN cardinality(email_ids) = 1 THEN 'link'
                     ELSE 'create' END AS decision
         FROM judged j)
       SELECT user_id, email, email_key, teacher, enrolled, masked, district_masked, decision, related, partners,
              CASE decision WHEN 'identity_conflict' THEN identity_ids ELSE email_ids END AS candidate_ids,
              CASE decision WHEN 'identity' THEN identity_ids[1]
                            WHEN 'link' THEN email_ids[1]
                            WHEN 'same_person' THEN same_account
                            WHEN 'create' THEN coalesce(same_account, nextval(${NEXT_ACCOUNT_SEQUENCE}))
              END AS account_id
       FROM decided`
    ).pipe(Effect.withSpan("Linking.decide"))
    const [counts] = yield* sql.unsafe<{ readonly linked: number; readonly created: number; readonly queued: number; readonly waiting: number }>(
      `SELECT count(*) FILTER (WHERE decision IN ('link', 'identity', 'same_person'))::int AS linked,
              count(*) FILTER (WHERE decision = 'create')::int AS created,
              count(*) FILTER (WHERE decision IN ${REVIEW_REASONS})::int AS queued,
              count(*) FILTER (WHERE decision IN ('masked', 'no_address'))::int AS waiting
       FROM pg_temp.link_decisions`
    )

    if ((counts?.linked ?? 0) + (counts?.created ?? 0) > 0) {
      // The new accounts are the district's, their addresses and links point at accounts this
      // run created or read, and each link's user is one of the district's (link_people):
      // checked as a set, once (src/Reconcile/ReferencesBySet.ts).
      const linkedOutside = `SELECT count(*)::int AS n FROM pg_temp.link_decisions d
        WHERE d.decision IN ('link', 'identity', 'same_person', 'create')
          AND (d.user_id NOT IN (SELECT id FROM users WHERE district_id = $1) OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = d.account_id))`
      const bySet = context.referencesBySet === true
      yield* writeReferencesBySet({ bySet, table: "accounts", districtId: district, write: sql.unsafe(
        `WITH created AS (
           INSERT INTO accounts (id, origin, state, district_id, activated_at)
           SELECT account_id, 'district', x.state, $1, CASE WHEN x.state = 'active' THEN now() END
           FROM pg_temp.link_decisions
           CROSS JOIN LATERAL (SELECT CASE WHEN teacher THEN 'pending' ELSE ${studentActivationSql("enrolled")} END AS state) x
           WHERE decision = 'create'
         )
         INSERT INTO account_emails (account_id, email, email_key, added_by, source_user_id)
         SELECT account_id, email, email_key, 'sync', user_id FROM pg_temp.link_decisions WHERE decision = 'create' AND email_key IS NOT NULL`,
        [district]
      ) })
      // An account linked by identity gains the person's district address (a same-person one has it).
      yield* sql.unsafe(
        `INSERT INTO account_emails (account_id, email, email_key, added_by, source_user_id)
         SELECT account_id, email, email_key, 'sync', user_id FROM pg_temp.link_decisions
         WHERE decision IN ('identity', 'same_person') AND email_key IS NOT NULL AND NOT masked
         ON CONFLICT (account_id, email_key) DO NOTHING`
      )
      yield* writeReferencesBySet({ bySet, table: "account_links", districtId: district, dangling: linkedOutside, write: sql.unsafe(
        `INSERT INTO account_links (user_id, account_id, method, activation, activated_at)
         SELECT d.user_id, d.account_id,
                CASE d.decision WHEN 'link' THEN 'email' WHEN 'identity' THEN 'identity' WHEN 'same_person' THEN 'same_person' ELSE 'created' END,
                x.activation, CASE WHEN x.activation = 'active' THEN now() END
         FROM pg_temp.link_decisions d
         LEFT JOIN accounts a ON a.id = d.account_id
         CROSS JOIN LATERAL (SELECT CASE
           WHEN NOT d.teacher THEN ${studentActivationSql("d.enrolled")}
           WHEN d.decision IN ('link', 'identity') THEN 'active'
           WHEN d.decision = 'same_person' AND a.state = 'active' THEN 'active'
           ELSE 'pending' END AS activation) x
         WHERE d.decision IN ('link', 'identity', 'same_person', 'create')`
      ) })
    }
    // Reviews: one open item per user, kept current; items whose user is now linked are closed.
    yield* sql.unsafe(
      `INSERT INTO account_reviews (district_id, user_id, reason, candidate_account_ids, related_user_ids)
       SELECT $1, user_id, decision, candidate_ids, coalesce(related, '{}') FROM pg_temp.link_decisions WHERE decision IN ${REVIEW_REASONS}
       ON CONFLICT (user_id) WHERE state = 'open' DO UPDATE
         SET reason = excluded.reason, candidate_account_ids = excluded.candidate_account_ids,
             related_user_ids = excluded.related_user_ids, updated_at = now()
         WHERE (account_reviews.reason, account_reviews.candidate_account_ids, account_reviews.related_user_ids)
               IS DISTINCT FROM (excluded.reason, excluded.candidate_account_ids, excluded.related_user_ids)`,
      [district]
    )
    yield* followPartners(district)
    yield* reportWaiting(context)
    yield* reportReviews(context, options)
    return { ...(counts ?? { linked: 0, created: 0, queued: 0, waiting: 0 }), addressesAdded } satisfies LinkCounts
  }).pipe(Effect.withSpan("Linking.linkAccounts"))

/**
 * Address changes of linked people (see the top of the file): returns how many accounts
 * gained an address. Writes only what changes.
 */
const updateAddresses = (context: ApplyContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.address_changes`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE address_changes AS
       SELECT l.user_id, l.account_id, btrim(u.email) AS email, lower(btrim(u.email)) AS email_key
       FROM account_links l JOIN users u ON u.id = l.user_id
       JOIN accounts a ON a.id = l.account_id AND a.state <> 'merged'
       WHERE u.district_id = $1 AND u.active AND coalesce(btrim(u.email), '') <> '' AND NOT ${districtEmailMasked("$1")}
         AND NOT EXISTS (SELECT 1 FROM account_emails e WHERE e.account_id = l.account_id AND e.email_key = lower(btrim(u.email))
                         AND e.former_at IS NULL)`,
      [context.districtId]
    )
    const [any] = yield* sql.unsafe<{ readonly n: number }>(`SELECT count(*)::int AS n FROM pg_temp.address_changes`)
    if ((any?.n ?? 0) === 0) return 0
    // A masked address is never added: one that looks masked, or is given to many people at
    // once (a placeholder, not theirs: Quality.ts). Judged on the few changed rows only.
    yield* sql.unsafe(
      `DELETE FROM pg_temp.address_changes c
       WHERE ${maskedEmail("c.email")} OR c.email_key IN ${sharedAddressKeys("$1", "(SELECT email_key FROM pg_temp.address_changes)")}`,
      [context.districtId]
    )
    // The person's previous district address becomes former — unless another active person
    // linked to the same account (another district, or a record of the same person) still has it.
    const [retired] = yield* sql.unsafe<{ readonly n: number }>(
      `WITH retired AS (
         UPDATE account_emails e SET former_at = now()
         FROM pg_temp.address_changes c
         WHERE e.account_id = c.account_id AND e.former_at IS NULL AND e.email_key <> c.email_key
           AND (e.source_user_id = c.user_id OR (e.source_user_id IS NULL AND e.added_by IN ('sync', 'confirm')))
           AND NOT EXISTS (SELECT 1 FROM account_links o JOIN users x ON x.id = o.user_id AND x.active
                           WHERE o.account_id = e.account_id AND lower(btrim(x.email)) = e.email_key)
         RETURNING e.account_id)
       SELECT count(*)::int AS n FROM retired`
    )
    const added = yield* sql.unsafe<{ readonly accountId: number }>(
      `INSERT INTO account_emails (account_id, email, email_key, added_by, source_user_id)
       SELECT DISTINCT ON (account_id, email_key) account_id, email, email_key, 'sync', user_id FROM pg_temp.address_changes
       ORDER BY account_id, email_key, user_id
       ON CONFLICT (account_id, email_key) DO UPDATE SET former_at = NULL, source_user_id = excluded.source_user_id
       RETURNING account_id`
    )
    if (added.length + (retired?.n ?? 0) > 0) {
      const ids = [...new Set(added.map((r) => Number(r.accountId)))].sort((a, b) => a - b)
      yield* sql`
        INSERT INTO audit_log (actor, action, district_id, subject, details)
        VALUES ('sync', 'sync.addresses', ${context.districtId}, ${`run ${context.runId}`},
                ${JSON.stringify({ addressesAdded: added.length, addressesRetired: retired?.n ?? 0, accounts: ids.slice(0, 1000), more: Math.max(0, ids.length - 1000) })}::jsonb)`
    }
    return added.length
  }).pipe(Effect.withSpan("Linking.updateAddresses"))

/**
 * A record linked as the same person as another (`same_person`) is active once their
 * account is: the person confirmed through the other record's activation e-mail (one
 * e-mail per person, see Activation.ts).
 */
const followPartners = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(
      `UPDATE account_links l SET activation = 'active', activated_at = coalesce(l.activated_at, now())
       FROM users u, accounts a
       WHERE u.id = l.user_id AND u.district_id = $1 AND a.id = l.account_id AND a.state = 'active'
         AND l.method = 'same_person' AND l.activation = 'pending' AND u.roles && ${CONFIRMING_ROLES_SQL}`,
      [district]
    ))

/** People left without an account this run, and records linked as one person: reported by source ID. */
const reportWaiting = (context: ApplyContext & FindingsContext) =>
  insertFindings(
    context,
    `SELECT 'warning' AS severity, 'teacher_without_address' AS code, 'users' AS entity, u.source_id, NULL AS file, NULL::int AS line,
            'no e-mail address: no account until the roster gives one (nobody could activate it)' AS detail
     FROM pg_temp.link_decisions d JOIN users u ON u.id = d.user_id WHERE d.decision = 'no_address'
     UNION ALL
     SELECT 'warning', 'masked_email', 'users', u.source_id, NULL, NULL::int,
            'its e-mail address looks masked (hashed, a placeholder, or given to ${MASK_SHARED_MIN} people or more): ' ||
            'no account, link or activation e-mail from it until the district shares the real one'
     FROM pg_temp.link_decisions d JOIN users u ON u.id = d.user_id WHERE d.decision = 'masked' AND NOT d.district_masked
     UNION ALL
     SELECT 'error', 'accounts_wait_masked', 'users', NULL, NULL, NULL::int,
            count(*) || ' people get no account while the district''s e-mail addresses are masked (see masked_pii); ' ||
            'they are linked by the first run after it shares them'
     FROM pg_temp.link_decisions d WHERE d.decision = 'masked' AND d.district_masked HAVING count(*) > 0
     UNION ALL
     SELECT 'info', 'same_person', 'users', u.source_id, NULL, NULL::int,
            'one person with ' || (SELECT string_agg(o.source_id, ', ' ORDER BY o.source_id) FROM users o WHERE o.id = ANY (d.partners)) ||
            ' (same address and names, different roles): linked to account ' || d.account_id
     FROM pg_temp.link_decisions d JOIN users u ON u.id = d.user_id
     WHERE d.partners IS NOT NULL AND d.decision IN ('same_person', 'create')`
  )

/** Open review items: closed when their user got linked (by an operator, or the sync) or left; the rest reported. */
const reportReviews = (context: ApplyContext & FindingsContext, options: LinkOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `UPDATE account_reviews r SET state = 'resolved', resolution = 'closed', resolved_by = 'sync', resolved_at = now(), updated_at = now()
       WHERE r.district_id = $1 AND r.state = 'open'
         AND (EXISTS (SELECT 1 FROM account_links l WHERE l.user_id = r.user_id)
              OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id AND u.active))`,
      [context.districtId]
    )
    yield* insertFindings(
      context,
      `SELECT 'warning' AS severity, 'account_review' AS code, 'users' AS entity, u.source_id, NULL AS file, NULL::int AS line,
              CASE r.reason
                WHEN 'several_accounts' THEN 'its e-mail belongs to ' || cardinality(r.candidate_account_ids) || ' accounts ('
                                             || array_to_string(r.candidate_account_ids, ', ') || ')'
                WHEN 'email_linked_elsewhere' THEN 'its e-mail belongs to account ' || array_to_string(r.candidate_account_ids, ', ')
                                                   || ', already linked to another rostered user'
                WHEN 'address_reused' THEN 'its e-mail is (or was within ${options.reuseWindowDays} days) the address of rostered user ' ||
                  coalesce((SELECT string_agg(o.source_id, ', ' ORDER BY o.source_id) FROM users o WHERE o.id = ANY (r.related_user_ids)), '?') ||
                  ': never linked to that person''s account by itself'
                WHEN 'identity_conflict' THEN 'its provider identity names account ' || array_to_string(r.candidate_account_ids, ', ') ||
                  CASE WHEN cardinality(r.candidate_account_ids) > 1 THEN ' (several accounts)' ELSE ', already linked to another rostered user' END
                ELSE 'its e-mail is shared with other rostered users' END ||
              '; not linked until reviewed: rosterd accounts review link|create ' || r.id AS detail
       FROM account_reviews r JOIN users u ON u.id = r.user_id
       WHERE r.district_id = $2 AND r.state = 'open'`
    )
  })

/**
 * Students are active while enrolled in at least one active class (seed 001; the rule:
 * src/Reconcile/Rules/People.ts); their account becomes active the first time. Writes only
 * what changes. (Run after `snapshotEnrolled`, like `linkAccounts`.)
 */
export const refreshStudentActivation = (context: ApplyContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `WITH wanted AS (
         SELECT l.user_id, l.account_id, ${studentActivationSql(`u.id IN ${ENROLLED}`)} AS activation
         FROM account_links l JOIN users u ON u.id = l.user_id
         WHERE u.district_id = $1 AND ${studentOnlySql("u.roles")}),
       changed AS (
         UPDATE account_links l SET activation = w.activation,
                activated_at = CASE WHEN w.activation = 'active' THEN coalesce(l.activated_at, now()) ELSE l.activated_at END
         FROM wanted w WHERE l.user_id = w.user_id AND l.activation <> w.activation
         RETURNING l.account_id, l.activation)
       UPDATE accounts a SET state = 'active', activated_at = coalesce(a.activated_at, now()), updated_at = now()
       FROM changed c WHERE a.id = c.account_id AND c.activation = 'active' AND a.state = 'pending'`,
      [context.districtId]
    )
  }).pipe(Effect.withSpan("Linking.refreshStudentActivation"))
