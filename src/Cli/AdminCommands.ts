import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Option } from "effect"
import { Admins } from "../Admins/Admins.ts"
import type { AdminListing, EditChanges, Role, Who } from "../Admins/Model.ts"
import { InvalidAdmin } from "../Admins/Model.ts"
import { describeScope } from "../Admins/Permissions.ts"
import { Partnerships } from "../Admins/Partnerships.ts"
import { defaultActor } from "../Audit/Audit.ts"
import { actorOption, districtArg, jsonOption } from "./Options.ts"
import { json, table, when } from "./Output.ts"
import { readToken, tokenOptions } from "./TokenInput.ts"

/**
 * `rosterd admin …`: the district's administrators (src/Admins). Output carries admin ids,
 * districts, school source IDs and states — never names or addresses, except in
 * `admin list`, the operator's listing of administrators (name and e-mail are what it is
 * for). Tokens are never printed.
 *
 * Who acts: an operator (`--by <name>`, default the operating-system user), or an
 * in-product admin (`--as <admin-id>`), whose permission and scope are enforced.
 */

const adminArg = Args.integer({ name: "admin-id" }).pipe(Args.withDescription("the admin id (see `rosterd admin list <district>`)"))

const asOption = Options.integer("as").pipe(
  Options.withDescription("act as this in-product admin: its permission and scope are enforced (default: as an operator)"),
  Options.optional
)
const byOption = Options.text("by").pipe(
  Options.withDescription("the operator acting (recorded in the audit log; default: the operating-system user)"),
  Options.optional
)

const who = (args: { readonly as: Option.Option<number>; readonly by: Option.Option<string> }) =>
  Option.isSome(args.as) && Option.isSome(args.by)
    ? Effect.fail(new InvalidAdmin({ message: "give --as <admin-id> (an admin acts) or --by <name> (an operator acts), not both" }))
    : Effect.succeed<Who>(Option.isSome(args.as) ? { by: defaultActor(), as: args.as.value } : { by: Option.getOrElse(args.by, defaultActor) })

const permissionOption = Options.choice("permission", ["view", "manage"]).pipe(
  Options.withDescription("view: the administrator dashboards; manage: also the users of its schools")
)
const schoolsOption = Options.text("schools").pipe(
  Options.withDescription("school role: the schools (source IDs, comma-separated) the admin administers"),
  Options.optional
)
const allSchoolsOption = Options.boolean("all-schools").pipe(Options.withDescription("school role: every school of the district (district-level access)"))
const roleOption = Options.choice("role", ["school", "region", "partnership"]).pipe(
  Options.withDescription("for a district in a partnership: school (default), region (every school of --region) or partnership (every district)")
)
const regionOption = Options.text("region").pipe(
  Options.withDescription("region role: the region of the district's partnership"),
  Options.optional
)

const splitSchools = (text: string) => text.split(/[\s,]+/).filter((s) => s.length > 0)

const invite = Command.make(
  "invite",
  {
    district: districtArg,
    name: Options.text("name").pipe(Options.withDescription("the administrator's name (shown in `admin list`)")),
    email: Options.text("email").pipe(Options.withDescription("where the invitation goes; confirming adds it to the admin's account")),
    schools: schoolsOption,
    allSchools: allSchoolsOption,
    permission: permissionOption,
    canManageAdmins: Options.boolean("can-manage-admins").pipe(
      Options.withDescription("may invite, edit and remove administrators of its own schools (use sparingly; needs manage)")
    ),
    role: roleOption.pipe(Options.withDefault("school")),
    region: regionOption,
    as: asOption,
    by: byOption
  },
  (args) =>
    Effect.gen(function*() {
      const outcome = yield* Effect.flatMap(Admins, (admins) =>
        Effect.flatMap(who(args), (actor) =>
          admins.invite({
            districtId: args.district,
            name: args.name,
            email: args.email,
            permission: args.permission,
            canManageAdmins: args.canManageAdmins,
            role: args.role as Role,
            regionId: Option.getOrNull(args.region),
            allSchools: args.allSchools,
            schools: Option.match(args.schools, { onNone: () => [], onSome: splitSchools })
          }, actor)))
      yield* Console.log(
        `invited admin ${outcome.adminId} in district ${outcome.districtId}: ${outcome.permission}` +
          (outcome.canManageAdmins ? ", can manage admins" : "") + `, ${describeScope(outcome.scope)}; ` +
          `invitation e-mail queued (its link works until ${when(outcome.expiresAt)})`
      )
    })
).pipe(Command.withDescription("invite an administrator: an e-mail with a single-use link to confirm the administrator account"))

/** `all`, `org-1 org-2`, `region north (p)`, `partnership p` — with the office-only note of roster admins (no school with classes). */
const schoolsText = (a: AdminListing) =>
  a.role === "partnership"
    ? `partnership ${a.partnership}`
    : a.role === "region"
    ? `region ${a.region} (${a.partnership})`
    : a.allSchools
    ? "all"
    : (a.schools.length === 0 ? "none" : a.schools.join(" ")) + (a.districtOfficeOnly ? " (office only: no classes)" : "")

const recordText = (a: AdminListing) =>
  a.rosterRecord === null
    ? "-"
    : a.kind === "roster"
    ? a.rosterRecord.sourceId
    : `${a.rosterRecord.roles.join(",")} ${a.rosterRecord.sourceId} (${a.rosterRecord.source})${a.rosterRecord.active ? "" : ": gone from the roster"}`

const list = Command.make(
  "list",
  {
    district: districtArg,
    all: Options.boolean("all").pipe(Options.withDescription("removed admins too")),
    stale: Options.boolean("stale").pipe(Options.withDescription("only invitations not confirmed for longer than rosterd.admins.staleAfterDays")),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const admins = yield* Effect.flatMap(Admins, (a) => a.list(args.district, { all: args.all }))
      const shown = args.stale ? admins.filter((a) => a.stale) : admins
      if (args.json) {
        return yield* json(shown.map((a) => ({
          ...a,
          invitedAt: a.invitedAt === null ? null : a.invitedAt.toISOString(),
          confirmedAt: a.confirmedAt === null ? null : a.confirmedAt.toISOString()
        })))
      }
      if (shown.length === 0) return yield* Console.log(args.stale ? `no stale invitations in district ${args.district}` : `no administrators in district ${args.district}`)
      yield* Console.log(table(
        ["admin", "name", "e-mail", "schools", "permission", "manages admins", "source", "invitation", "roster record"],
        shown.map((a) => [
          a.kind === "roster" ? `user ${a.id}` : `admin ${a.id}`,
          a.name ?? "-",
          a.email ?? "-",
          schoolsText(a),
          a.permission,
          a.canManageAdmins ? "yes" : "no",
          a.source,
          a.invitation + (a.stale ? " (stale)" : ""),
          recordText(a)
        ])
      ))
    })
).pipe(Command.withDescription("a district's administrators: in-product and rostered, with schools, permission, source and invitation state"))

const edit = Command.make(
  "edit",
  {
    adminId: adminArg,
    name: Options.text("name").pipe(Options.withDescription("a new name"), Options.optional),
    email: Options.text("email").pipe(Options.withDescription("a new address (an invitation not yet confirmed only: a new invitation goes there)"), Options.optional),
    permission: permissionOption.pipe(Options.optional),
    canManageAdmins: Options.boolean("can-manage-admins").pipe(Options.withDescription("may manage administrators from now on")),
    cannotManageAdmins: Options.boolean("no-can-manage-admins").pipe(Options.withDescription("may no longer manage administrators")),
    schools: schoolsOption,
    allSchools: allSchoolsOption,
    role: roleOption.pipe(Options.optional),
    region: regionOption,
    as: asOption,
    by: byOption
  },
  (args) =>
    Effect.gen(function*() {
      if (args.canManageAdmins && args.cannotManageAdmins) {
        return yield* new InvalidAdmin({ message: "give --can-manage-admins or --no-can-manage-admins, not both" })
      }
      const changes: EditChanges = {
        ...Option.match(args.name, { onNone: () => ({}), onSome: (name) => ({ name }) }),
        ...Option.match(args.email, { onNone: () => ({}), onSome: (email) => ({ email }) }),
        ...Option.match(args.permission, { onNone: () => ({}), onSome: (permission) => ({ permission }) }),
        ...(args.canManageAdmins ? { canManageAdmins: true } : args.cannotManageAdmins ? { canManageAdmins: false } : {}),
        ...Option.match(args.schools, { onNone: () => ({}), onSome: (text) => ({ schools: splitSchools(text) }) }),
        ...(args.allSchools ? { allSchools: true } : {}),
        ...Option.match(args.role, { onNone: () => ({}), onSome: (role) => ({ role: role as Role }) }),
        ...Option.match(args.region, { onNone: () => ({}), onSome: (regionId) => ({ regionId }) })
      }
      const outcome = yield* Effect.flatMap(Admins, (admins) => Effect.flatMap(who(args), (actor) => admins.edit(args.adminId, changes, actor)))
      if (outcome.changed.length === 0) return yield* Console.log(`admin ${outcome.adminId}: nothing to change`)
      yield* Console.log(
        `admin ${outcome.adminId} edited (${outcome.changed.join(", ")}): ${describeScope(outcome.scope)}` +
          (outcome.reinvited ? "; a new invitation e-mail went to the new address, the earlier link no longer works" : "")
      )
    })
).pipe(Command.withDescription("change an administrator's name, permission, schools, role or (before it confirms) address"))

const resend = Command.make("resend", { adminId: adminArg, as: asOption, by: byOption }, (args) =>
  Effect.gen(function*() {
    const outcome = yield* Effect.flatMap(Admins, (admins) => Effect.flatMap(who(args), (actor) => admins.resend(args.adminId, actor)))
    yield* Console.log(`invitation e-mail queued again for admin ${outcome.adminId} (its link works until ${when(outcome.expiresAt)}); earlier links no longer work`)
  })).pipe(Command.withDescription("send an invited administrator a new invitation e-mail (earlier links stop working)"))

const remove = Command.make(
  "remove",
  {
    adminId: adminArg,
    reason: Options.text("reason").pipe(Options.withDescription("why (recorded in the audit log)"), Options.optional),
    as: asOption,
    by: byOption
  },
  (args) =>
    Effect.gen(function*() {
      const outcome = yield* Effect.flatMap(Admins, (admins) =>
        Effect.flatMap(who(args), (actor) => admins.remove(args.adminId, actor, Option.getOrNull(args.reason))))
      yield* Console.log(
        `admin ${outcome.adminId} removed: its administrator access ended` +
          (outcome.was === "invited" ? " (its invitation link no longer works)" : ` (account ${outcome.accountId} keeps its other uses)`) +
          "; a rostered teacher record of the same person is not affected"
      )
    })
).pipe(Command.withDescription("end an administrator's access (kept in the list with --all; the roster is not affected)"))

const confirm = Command.make(
  "confirm",
  {
    ...tokenOptions,
    linkAccount: Options.integer("link-account").pipe(
      Options.withDescription("add the invited address to this existing account (\"log into my existing account\") instead of creating one"),
      Options.optional
    )
  },
  (args) =>
    Effect.gen(function*() {
      const token = yield* readToken(args)
      const result = yield* Effect.flatMap(Admins, (admins) => admins.confirm(token, args.linkAccount))
      yield* Console.log(
        result.outcome === "linked"
          ? `confirmed: admin ${result.adminId}; account ${result.accountId} gained the invited address and the administrator access`
          : result.outcome === "activated"
          ? `confirmed: admin ${result.adminId}; the pending account ${result.accountId} with the invited address is active and holds the administrator access`
          : `confirmed: admin ${result.adminId}; new account ${result.accountId} with the invited address holds the administrator access`
      )
    })
).pipe(Command.withDescription("confirm an administrator invitation (its token read from --token-stdin or --token-file), as the platform's confirmation page does"))

// ---------------------------------------------------------------- partnerships

const partnershipAdd = Command.make(
  "add",
  {
    id: Args.text({ name: "partnership" }).pipe(Args.withDescription("the partnership id (a-z0-9_-)")),
    name: Options.text("name").pipe(Options.withDescription("display name (default: the id)"), Options.optional),
    by: actorOption
  },
  (args) =>
    Effect.gen(function*() {
      yield* Effect.flatMap(Partnerships, (p) => p.add(args.id, Option.getOrElse(args.name, () => args.id), args.by))
      yield* Console.log(`added partnership ${args.id}; place districts in it with: rosterd admin partnership add-district ${args.id} <district> [--region <id>]`)
    })
).pipe(Command.withDescription("a state or regional partnership of districts"))

const partnershipPlace = Command.make(
  "add-district",
  {
    partnership: Args.text({ name: "partnership" }).pipe(Args.withDescription("the partnership id")),
    district: districtArg,
    region: Options.text("region").pipe(Options.withDescription("the region of the partnership the district is in (created if new)"), Options.optional),
    regionName: Options.text("region-name").pipe(Options.withDescription("a new region's display name (default: its id)"), Options.optional),
    by: actorOption
  },
  (args) =>
    Effect.gen(function*() {
      const region = Option.match(args.region, {
        onNone: () => null,
        onSome: (id) => ({ id, name: Option.getOrElse(args.regionName, () => id) })
      })
      const placed = yield* Effect.flatMap(Partnerships, (p) => p.place(args.partnership, args.district, region, args.by))
      yield* Console.log(
        `district ${placed.districtId} is in partnership ${placed.partnershipId}` +
          (placed.regionId === null ? "" : `, region ${placed.regionId}${placed.regionCreated ? " (new)" : ""}`)
      )
    })
).pipe(Command.withDescription("place a district in a partnership (and one of its regions)"))

const partnershipList = Command.make("list", { json: jsonOption }, (args) =>
  Effect.gen(function*() {
    const partnerships = yield* Effect.flatMap(Partnerships, (p) => p.list())
    if (args.json) return yield* json(partnerships)
    if (partnerships.length === 0) return yield* Console.log("no partnerships")
    yield* Console.log(table(
      ["partnership", "name", "region", "districts"],
      partnerships.flatMap((p) => [
        ...p.regions.map((r) => [p.id, p.name, r.id, r.districts.join(" ") || "-"]),
        ...(p.districts.length > 0 || p.regions.length === 0 ? [[p.id, p.name, "-", p.districts.join(" ") || "-"]] : [])
      ])
    ))
  })).pipe(Command.withDescription("partnerships, their regions and districts"))

const partnership = Command.make("partnership").pipe(
  Command.withDescription("partnerships of districts (for partnership and region admin roles)"),
  Command.withSubcommands([partnershipAdd, partnershipPlace, partnershipList])
)

export const adminCommand = Command.make("admin").pipe(
  Command.withDescription("administrators: invite, list, edit, resend, remove, confirm; partnerships"),
  Command.withSubcommands([invite, list, edit, resend, remove, confirm, partnership]),
  Command.provide(Layer.mergeAll(Admins.Default, Partnerships.Default))
)
