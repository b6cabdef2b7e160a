import type { StaffRules } from "../Domain/DistrictRules.ts"

/**
 * Which rostered roles are administrators (seed 003): OneRoster's `administrator`, and
 * Clever's `district_admin` and `staff` (Clever calls the same user type "School Admins"
 * to applications and "Staff" to districts). Their scope is the orgs they are attached to,
 * or every school of the district for district-level ones (`DISTRICT_LEVEL_SQL`).
 * The view `roster_admins` (migrations/0004, 0014) uses the same list.
 *
 * A Clever staff record is stored as `staff` only when its title says it administers
 * (`staffRoleOf`); every other staff record is an `aide`, which is not in this list: no
 * admin rights and no account from the admin rule.
 */
export const ADMIN_ROLES = ["administrator", "district_admin", "staff"] as const

const literal = (roles: ReadonlyArray<string>) => `ARRAY[${roles.map((role) => `'${role}'`).join(", ")}]`

/** The admin roles as a SQL array literal, for `u.roles && …`. */
export const ADMIN_ROLES_SQL = literal(ADMIN_ROLES)

/**
 * Roles whose account is pending until its holder confirms the activation e-mail (and is
 * active at once when linked to an account already in use): teachers, and roster admins
 * when the district syncs them.
 */
export const CONFIRMING_ROLES_SQL = literal(["teacher", ...ADMIN_ROLES])

export const isAdminRole = (role: string) => (ADMIN_ROLES as ReadonlyArray<string>).includes(role)

/**
 * A student, and only a student: a record with the student role and not the teacher role
 * (a student teacher is a teacher). The rules that hold for students alone — active while
 * enrolled (src/Reconcile/Rules/People.ts), no activation e-mail — ask this, over a row's
 * `roles` array in SQL or a record's roles here.
 */
export const studentOnlySql = (roles: string) => `('student' = ANY (${roles}) AND NOT 'teacher' = ANY (${roles}))`

export const isStudentOnly = (roles: ReadonlyArray<string>) => roles.includes("student") && !roles.includes("teacher")

/**
 * The group a person's roles fall in where people are counted or paired by kind: the safety
 * gate's thresholds per role (src/Reconcile/Gate.ts) and the re-key detection, where a
 * student never pairs with a teacher (src/Reconcile/Rekey.ts).
 */
export const roleGroupSql = (roles: string) =>
  `CASE WHEN 'student' = ANY (${roles}) THEN 'student' WHEN 'teacher' = ANY (${roles}) THEN 'teacher'
        WHEN ${roles} && ARRAY['administrator', 'district_admin'] THEN 'administrator' ELSE 'other' END`

/**
 * "This roster admin is district-level", over a row `u` of `users` (or `roster_admins`)
 * with `district_id`, `roles` and `org_source_ids`: a Clever `district_admin` (district-wide
 * by definition, it has no schools), or an administrator attached to an org of type
 * `district` of its district (OneRoster's district admin). Such an admin covers every school
 * of the district, present and future. An org that is merely without classes — a
 * department, a local office, a "District Office" the SIS calls a school — is not the
 * district. The views (migrations/0014_admin_scope.ts) state the same rule in their own
 * text (a migration never changes once applied); test/Admins/AdminScope.test.ts checks that
 * the view, the listing and the finding agree.
 */
export const districtLevelSql = (u: string) =>
  `('district_admin' = ANY (${u}.roles) OR EXISTS (
     SELECT 1 FROM schools o WHERE o.district_id = ${u}.district_id AND o.org_type = 'district'
       AND o.source_id = ANY (${u}.org_source_ids)))`

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+")

/** Whole words or phrases, any case (as the scope rule's words: src/Reconcile/Rules/Scope.ts). */
const wholeWords = (phrases: ReadonlyArray<string>): RegExp | null => {
  const words = phrases.filter((phrase) => phrase !== "*")
  return words.length === 0 ? null : new RegExp(`(^|[^\\p{L}\\p{N}])(${words.map(escapeRegex).join("|")})($|[^\\p{L}\\p{N}])`, "iu")
}

/**
 * A Clever staff record's role, by the district's rule `staff`: `staff` (a school
 * administrator) when its title or one of its roles names one of `adminTitles` (or the list
 * holds `*`) and none names one of `aideTitles`; otherwise `aide`. A record with neither
 * title nor roles is an aide unless the list holds `*`: Clever makes staff "Portal Access"
 * users by default, and an account that sees a school's students is not given on silence.
 * Built once per snapshot (the patterns are compiled here, not per user).
 */
export const staffRoleOf = (rules: StaffRules) => {
  const aide = wholeWords(rules.aideTitles)
  const everyone = rules.adminTitles.includes("*")
  const admin = wholeWords(rules.adminTitles)
  return (texts: ReadonlyArray<string | null | undefined>): "staff" | "aide" => {
    const named = texts.filter((text): text is string => typeof text === "string" && text.trim().length > 0)
    if (aide !== null && named.some((text) => aide.test(text))) return "aide"
    if (everyone) return "staff"
    return admin !== null && named.some((text) => admin.test(text)) ? "staff" : "aide"
  }
}

export type StaffRoleOf = ReturnType<typeof staffRoleOf>
