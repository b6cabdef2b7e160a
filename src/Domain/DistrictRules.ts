import { Either, Schema } from "effect"
import { decodeCalendarOverrides } from "./CalendarRules.ts"
import { ScheduleRules } from "./ScheduleRules.ts"

/**
 * The district rules an operator may tune per district (`rules:` of a district in the
 * config file, `rosterd district rules <id> --file`), stored in `districts.rules`. Every
 * field has a default, so `{}` means "the defaults" and a district states only what
 * differs. The rules themselves live in src/Reconcile/Rules and src/Accounts.
 */

/**
 * Subjects the product is not used for (seed 001: "elective classes like P.E., Art,
 * Chorus, and Band"). Matched case-insensitively as whole words or phrases.
 */
export const DEFAULT_EXCLUSIONS: ReadonlyArray<string> = ["physical education", "phys ed", "P.E.", "PE", "art", "chorus", "band"]

/**
 * Clever gives a section only a category: these two hold the default subjects (and also
 * health and general music — a district using the product there removes them).
 */
export const DEFAULT_EXCLUDED_CODES: ReadonlyArray<string> = ["PE and health", "arts and music"]

export const ScopeRules = Schema.Struct({
  /** Only sections of a current term (by the district's local date); a section with no known term dates is kept. */
  currentTermsOnly: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** Words or phrases that exclude a section when found in its subjects or its course's subjects. */
  excludeSubjects: Schema.optionalWith(Schema.Array(Schema.NonEmptyTrimmedString), { default: () => DEFAULT_EXCLUSIONS }),
  /** Words or phrases that exclude a section when found in its title or its course's title. */
  excludeTitles: Schema.optionalWith(Schema.Array(Schema.NonEmptyTrimmedString), { default: () => DEFAULT_EXCLUSIONS }),
  /**
   * Subject codes that exclude a section, matched whole (any case) against its and its
   * course's subject codes: Clever's section categories, or SCED codes from OneRoster.
   */
  excludeSubjectCodes: Schema.optionalWith(Schema.Array(Schema.NonEmptyTrimmedString), { default: () => DEFAULT_EXCLUDED_CODES }),
  /** Include-only: when not empty, only sections of these schools (source IDs) are rostered. */
  onlySchools: Schema.optionalWith(Schema.Array(Schema.NonEmptyTrimmedString), { default: () => [] })
})

export type ScopeRules = typeof ScopeRules.Type

/**
 * The safety gate (see src/Reconcile/Gate.ts): when a run would change more than these
 * allow, its destructive part is held for an operator. Per entity type (users per role).
 */
export const GateRules = Schema.Struct({
  /** Hold deactivations of a type when they exceed this share of its active records… */
  maxDeactivatePercent: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 100)), { default: () => 10 }),
  /** …or this many records in one run. */
  maxDeactivations: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 500 }),
  /** Hold the updates of a type when they exceed this share of its active records. */
  maxUpdatePercent: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 100)), { default: () => 75 }),
  /**
   * The percentages apply from this many records up: one record of three is not a mass
   * change (an emptied type is always held, see below).
   */
  minRecords: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { default: () => 10 }),
  /** Hold the enrollment ends of a class of at least `classMinSize` losing this share or more. */
  maxClassCutPercent: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 100)), { default: () => 50 }),
  classMinSize: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 5 }),
  /** Hold any run that would bring a non-empty type to zero active records. */
  holdEmptying: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /**
   * Also judge each school on its own, with these thresholds (a school listed under
   * `schools` with a `gate` is judged with its own whatever this says): one school's bad
   * export is then held while the other schools apply.
   */
  perSchool: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
export type GateRules = typeof GateRules.Type

/** A school's own thresholds (`schools.<source id>.gate`): each one it states replaces the district's. */
export const SchoolGateRules = Schema.Struct({
  maxDeactivatePercent: Schema.optional(Schema.Number.pipe(Schema.between(0, 100))),
  maxDeactivations: Schema.optional(Schema.Int.pipe(Schema.positive())),
  maxUpdatePercent: Schema.optional(Schema.Number.pipe(Schema.between(0, 100))),
  minRecords: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  maxClassCutPercent: Schema.optional(Schema.Number.pipe(Schema.between(0, 100))),
  classMinSize: Schema.optional(Schema.Int.pipe(Schema.positive())),
  holdEmptying: Schema.optional(Schema.Boolean)
})
export type SchoolGateRules = typeof SchoolGateRules.Type

/**
 * One school of the district (`schools.<school source id>`): its own gate thresholds, or
 * `exclude: true` to roster none of its sections (src/Reconcile/Rules/Scope.ts).
 */
export const SchoolRules = Schema.Struct({
  gate: Schema.optional(SchoolGateRules),
  exclude: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
export type SchoolRules = typeof SchoolRules.Type

/** The schools whose sections are not rostered (`schools.<id>.exclude: true`). */
export const excludedSchools = (rules: { readonly schools: Readonly<Record<string, SchoolRules>> }): ReadonlyArray<string> =>
  Object.entries(rules.schools).filter(([, school]) => school.exclude).map(([id]) => id)

/**
 * The thresholds a school is judged with on its own, or null when it is not judged apart:
 * the district's, with what the school states in its place (src/Reconcile/Gate.ts).
 */
export const schoolGate = (
  rules: { readonly gate: GateRules; readonly schools: Readonly<Record<string, SchoolRules>> },
  school: string
): GateRules | null => {
  const own = Object.hasOwn(rules.schools, school) ? rules.schools[school]!.gate : undefined
  if (own === undefined && !rules.gate.perSchool) return null
  const merged: Record<string, unknown> = { ...rules.gate }
  for (const [key, value] of Object.entries(own ?? {})) if (value !== undefined) merged[key] = value
  return merged as GateRules
}

/**
 * Re-keyed sources (src/Reconcile/Rekey.ts, README "Re-keyed sources"): a full run in which
 * a kind's records disappear and about as many new ones appear that match them one-to-one on
 * a stable identity is held as a suspected re-key (reason `rekey_suspected`), with the
 * mapping it proposes, instead of deactivating and creating everyone.
 */
export const RekeyRules = Schema.Struct({
  /** Off: no detection (the gate alone judges such a run). */
  detect: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** A kind is suspect when at least this share of its active records disappear… */
  minPercent: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 100)), { default: () => 20 }),
  /** …and at least this many (a few records of a small kind are no re-key). */
  minRecords: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 10 }),
  /** …and the records that appear are as many, within this share of the disappeared ones… */
  tolerancePercent: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 100)), { default: () => 10 }),
  /** …and at least this share of the disappeared ones match an appeared one one-to-one. */
  minMatchPercent: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 100)), { default: () => 90 })
})
export type RekeyRules = typeof RekeyRules.Type

/** An address to write to; only its shape is checked. Never logged. */
const ContactAddress = Schema.Trim.pipe(
  Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "a contact must be an e-mail address" })
)

export const NoticeRules = Schema.Struct({
  /** Who at the district hears of pauses (the roster contacts). None: no notices. */
  contacts: Schema.optionalWith(Schema.Array(ContactAddress), { default: () => [] }),
  /** How many days before a pause starts its notice goes out (it also goes out once when it ends). */
  daysAhead: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 60)), { default: () => 7 })
})
export type NoticeRules = typeof NoticeRules.Type

/**
 * Which Clever staff are administrators (README "Administrators"). Clever's staff are one
 * user type for school admins and every other non-teaching employee (aides, secretaries,
 * coaches); only the `title` and the free-text `roles` of the staff record tell them apart.
 * Matched like the scope words: whole words or phrases, any case.
 */
export const DEFAULT_ADMIN_TITLES: ReadonlyArray<string> = [
  "principal", "superintendent", "administrator", "school admin", "district admin", "dean", "director", "head of school", "headmaster"
]

/** Words that make a title non-administrative even beside an administrative one ("Principal's Secretary", "Aide to the Director"). */
export const DEFAULT_AIDE_TITLES: ReadonlyArray<string> = ["aide", "paraprofessional", "paraeducator", "para", "secretary", "clerk"]

export const StaffRules = Schema.Struct({
  /** A staff record whose title or one of its roles contains one of these is a school administrator; `*`: every staff record. */
  adminTitles: Schema.optionalWith(Schema.Array(Schema.NonEmptyTrimmedString), { default: () => DEFAULT_ADMIN_TITLES }),
  /** …unless its title or one of its roles also contains one of these: then, like every other staff record, an aide. */
  aideTitles: Schema.optionalWith(Schema.Array(Schema.NonEmptyTrimmedString), { default: () => DEFAULT_AIDE_TITLES })
})
export type StaffRules = typeof StaffRules.Type

/** Account linking (src/Accounts/Linking.ts; README "Accounts, linking and activation"). */
export const AccountRules = Schema.Struct({
  /**
   * An address that was another rostered person's within this many days (their former
   * address, kept on their account) still counts as theirs: a new person given it goes to
   * review (`address_reused`) instead of being linked. The current address of another
   * person of the district, active or deactivated, always counts.
   */
  reuseWindowDays: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 3650)), { default: () => 365 })
})
export type AccountRules = typeof AccountRules.Type

/**
 * Activation follow-up (src/Accounts/Reminders.ts): a teacher (or roster admin) who has not
 * confirmed gets a reminder with a fresh link `remindAfterDays` after the last activation
 * e-mail, at most `maxReminders` times; the earlier link stops working.
 */
export const ActivationRules = Schema.Struct({
  remindAfterDays: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 365)), { default: () => 7 }),
  /** 0: no reminders. */
  maxReminders: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 10)), { default: () => 2 })
})
export type ActivationRules = typeof ActivationRules.Type

/**
 * Guardians and contacts (src/Reconcile/Contacts.ts): OneRoster users whose only roles are
 * `parent`, `guardian` or `relative`, and Clever contacts. Off (the default): not stored (one
 * stored before is deactivated, reason `contacts_off`). On: stored as users with that role
 * and linked to their students (`contact_links`), kept in step. `accounts` (accounts for
 * contacts) is not built: setting it is refused.
 */
export const ContactRules = Schema.Struct({
  sync: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  accounts: Schema.optionalWith(
    Schema.Boolean.pipe(Schema.filter((on) => !on || "contacts.accounts is not supported yet: contacts get no accounts (leave it false)")),
    { default: () => false }
  )
})
export type ContactRules = typeof ContactRules.Type

export const DistrictRules = Schema.Struct({
  scope: Schema.optionalWith(ScopeRules, { default: () => Schema.decodeSync(ScopeRules)({}) }),
  /** Co-teachers kept per class beside the primary teacher (seed 001: "up to nine"). */
  coTeacherLimit: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 50)), { default: () => 9 }),
  gate: Schema.optionalWith(GateRules, { default: () => Schema.decodeSync(GateRules)({}) }),
  /** Per school, by source ID: its own gate thresholds, or excluded (`exclude: true`). */
  schools: Schema.optionalWith(Schema.Record({ key: Schema.NonEmptyTrimmedString, value: SchoolRules }), { default: () => ({}) }),
  /** Re-keyed sources: when a full run is held as a suspected re-key (src/Reconcile/Rekey.ts). */
  rekey: Schema.optionalWith(RekeyRules, { default: () => Schema.decodeSync(RekeyRules)({}) }),
  /**
   * Roster admins (OneRoster `administrator`, Clever district admins and staff with an
   * administrative title) get accounts and links like teachers, and admin rights over the
   * orgs they are attached to (all schools for district-level ones). Off: no
   * admin accounts from the sync (seed 004, Classkick); admins are invited in the product.
   */
  syncAdmins: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** Account linking: how long a former address stays its person's (`reuseWindowDays`, default 365). */
  accounts: Schema.optionalWith(AccountRules, { default: () => Schema.decodeSync(AccountRules)({}) }),
  /** Clever staff: which are administrators (`staff`) and which aides (`aide`), by title (src/Domain/Roles.ts). */
  staff: Schema.optionalWith(StaffRules, { default: () => Schema.decodeSync(StaffRules)({}) }),
  /** When the daemon syncs the district (nightly cron in its zone, window, deltas, full cadence): src/Schedule/SyncSchedule.ts. */
  schedule: Schema.optionalWith(ScheduleRules, { default: () => Schema.decodeSync(ScheduleRules)({}) }),
  /** Pause notices to the district's contacts: src/Schedule/PauseNotices.ts. */
  notices: Schema.optionalWith(NoticeRules, { default: () => Schema.decodeSync(NoticeRules)({}) }),
  /** Reminders to teachers who have not confirmed their account: src/Accounts/Reminders.ts. */
  activation: Schema.optionalWith(ActivationRules, { default: () => Schema.decodeSync(ActivationRules)({}) }),
  /** Guardians and contacts: stored and linked to their students, or not stored (ContactRules). */
  contacts: Schema.optionalWith(ContactRules, { default: () => Schema.decodeSync(ContactRules)({}) }),
  /**
   * Changes to the holiday pause windows for this district (`disable`, `replace`, `add`),
   * checked by src/Domain/CalendarRules.ts (see config/calendars.yaml).
   */
  calendar: Schema.optional(Schema.Unknown.pipe(
    Schema.filter((raw) => Either.match(decodeCalendarOverrides(raw), { onLeft: (error) => error.message, onRight: () => true }))
  ))
})
export type DistrictRules = typeof DistrictRules.Type

export const defaultRules: DistrictRules = Schema.decodeSync(DistrictRules)({})
