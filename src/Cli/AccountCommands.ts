import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Option, Schema } from "effect"
import { Accounts } from "../Accounts/Accounts.ts"
import { Duplicates } from "../Accounts/Duplicates.ts"
import { Merge } from "../Accounts/Merge.ts"
import { Reminders } from "../Accounts/Reminders.ts"
import { Reviews } from "../Accounts/Reviews.ts"
import { actorOption, byOption, districtArg, jsonOption } from "./Options.ts"
import { json, table, when } from "./Output.ts"
import { readToken, tokenOptions } from "./TokenInput.ts"

/**
 * `rosterd accounts …`: the platform's accounts and the review queue. Output carries ids,
 * states and counts — never names, e-mail addresses or tokens.
 */

/** Arguments that do not go together (the CLI library cannot say "one of"). */
class InvalidArguments extends Schema.TaggedError<InvalidArguments>()("InvalidArguments", { problem: Schema.String }) {
  override get message() {
    return this.problem
  }
}

const accountArg = Args.integer({ name: "account-id" }).pipe(Args.withDescription("the account id"))
const reviewArg = Args.integer({ name: "review-id" }).pipe(Args.withDescription("the review id (see `rosterd accounts review list`)"))
const reviewByOption = byOption("who resolves the review (recorded as resolved_by)")

const importCommand = Command.make(
  "import",
  { file: Args.text({ name: "csv" }).pipe(Args.withDescription(
    "CSV with a header: external_id (required), email, display_name, and the optional identities clever_id, oneroster_sourced_id, " +
      "classlink_login; one row per address"
  )) },
  (args) =>
    Effect.gen(function*() {
      const counts = yield* Effect.flatMap(Accounts, (accounts) => accounts.importCsv(args.file))
      yield* Console.log(
        `imported ${args.file}: ${counts.rows} rows, ${counts.accounts} accounts (${counts.accountsCreated} created, ` +
          `${counts.accounts - counts.accountsCreated} already present), ${counts.addressesAdded} addresses added` +
          (counts.identitiesAdded > 0 ? `, ${counts.identitiesAdded} provider identities added` : "")
      )
    })
).pipe(Command.withDescription("import the platform's existing (grassroots) accounts; all or nothing, safe to repeat"))

const addEmail = Command.make(
  "add-email",
  { accountId: accountArg, email: Args.text({ name: "email" }).pipe(Args.withDescription("the address to add")) },
  (args) =>
    Effect.gen(function*() {
      const added = yield* Effect.flatMap(Accounts, (accounts) => accounts.addEmail(args.accountId, args.email))
      yield* Console.log(added ? `added the address to account ${args.accountId}` : `account ${args.accountId} already has that address`)
    })
).pipe(Command.withDescription("add an address to an account, so a later sync links the rostered user with that district address"))

const list = Command.make(
  "list",
  {
    district: Options.text("district").pipe(Options.withDescription("only this district"), Options.optional),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const reviews = yield* Effect.flatMap(Reviews, (r) => r.list(args.district))
      if (args.json) return yield* json(reviews.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() })))
      if (reviews.length === 0) return yield* Console.log("no open account reviews")
      yield* Console.log(table(
        ["review", "district", "user", "source id", "reason", "candidate accounts", "other people", "opened"],
        reviews.map((r) => [
          r.id, r.district, r.userId, r.sourceId, r.reason, r.candidateAccountIds.join(" ") || "-", r.relatedSourceIds.join(" ") || "-", when(r.createdAt)
        ])
      ))
    })
).pipe(Command.withDescription("open account reviews (rostered users the sync could not link on its own)"))

const link = Command.make(
  "link",
  {
    reviewId: reviewArg,
    account: Options.integer("account").pipe(Options.withDescription("the existing account to link the rostered user to")),
    by: reviewByOption
  },
  (args) =>
    Effect.gen(function*() {
      const outcome = yield* Effect.flatMap(Reviews, (r) => r.link(args.reviewId, args.account, args.by))
      yield* Console.log(
        `review ${outcome.reviewId} resolved: user ${outcome.userId} linked to account ${outcome.accountId} (activation ${outcome.activation})` +
          (outcome.movedFrom === null ? "" : `; pending account ${outcome.movedFrom} merged into it`)
      )
    })
).pipe(Command.withDescription("resolve a review by linking the rostered user to an existing account"))

const create = Command.make("create", { reviewId: reviewArg, by: reviewByOption }, (args) =>
  Effect.gen(function*() {
    const outcome = yield* Effect.flatMap(Reviews, (r) => r.create(args.reviewId, args.by))
    yield* Console.log(
      `review ${outcome.reviewId} resolved: user ${outcome.userId} linked to new district account ${outcome.accountId} ` +
        `(account ${outcome.accountState}, activation ${outcome.activation}` +
        (outcome.student || outcome.activation === "active"
          ? ")"
          : outcome.activationMails > 0
          ? "; activation e-mail queued)"
          : "; no activation e-mail: the roster gives this user no address)")
    )
  })).pipe(Command.withDescription("resolve a review by creating a new district account for the rostered user"))

const review = Command.make("review").pipe(
  Command.withDescription("the account review queue"),
  Command.withSubcommands([list, link, create])
)

const confirm = Command.make(
  "confirm",
  {
    ...tokenOptions,
    linkAccount: Options.integer("link-account").pipe(
      Options.withDescription("link the teacher to this existing account instead (\"log into my existing account\")"),
      Options.optional
    )
  },
  (args) =>
    Effect.gen(function*() {
      const token = yield* readToken(args)
      const result = yield* Effect.flatMap(Accounts, (accounts) => accounts.confirm(token, args.linkAccount))
      yield* Console.log(
        result.outcome === "linked"
          ? `linked: user ${result.userId} is now linked to account ${result.accountId}, active`
          : `activated: user ${result.userId}, account ${result.accountId}`
      )
    })
).pipe(Command.withDescription("confirm a teacher's activation token (read from --token-stdin or --token-file), as the platform's confirmation page does"))

/**
 * `resend-activation <district> --user <source id> | --all-pending`, and the older
 * `resend-activation <user-id>` (a rostered user's id, without either option).
 */
const resend = Command.make(
  "resend-activation",
  {
    target: Args.text({ name: "district|user-id" }).pipe(
      Args.withDescription("the district (with --user or --all-pending), or a teacher's rostered user id")
    ),
    user: Options.text("user").pipe(Options.withDescription("the teacher's source ID in the district"), Options.optional),
    allPending: Options.boolean("all-pending").pipe(Options.withDescription("every teacher of the district who has not activated yet")),
    by: actorOption
  },
  (args) =>
    Effect.gen(function*() {
      if (Option.isNone(args.user) && !args.allPending) {
        if (!/^[0-9]+$/.test(args.target)) {
          return yield* new InvalidArguments({ problem: "give --user <source id> or --all-pending after the district, or a rostered user id alone" })
        }
        const userId = Number(args.target)
        yield* Effect.flatMap(Accounts, (accounts) => accounts.resendActivation(userId, args.by))
        return yield* Console.log(`activation e-mail queued for user ${userId}; earlier activation links no longer work`)
      }
      if (Option.isSome(args.user) && args.allPending) return yield* new InvalidArguments({ problem: "give --user or --all-pending, not both" })
      const outcome = yield* Effect.flatMap(Reminders, (reminders) =>
        reminders.resend(args.target, Option.isSome(args.user) ? { sourceId: args.user.value } : "all-pending", args.by))
      yield* Console.log(
        Option.isSome(args.user)
          ? `activation e-mail queued for ${args.user.value} (user ${outcome.users[0]}) of ${outcome.districtId}; earlier activation links no longer work`
          : `${outcome.issued} activation e-mail${outcome.issued === 1 ? "" : "s"} queued in ${outcome.districtId} ` +
            `(${outcome.users.length} waiting to activate); earlier activation links no longer work`
      )
    })
).pipe(Command.withDescription("send a pending teacher (--user <source id>) or all of a district's (--all-pending) a new activation e-mail; earlier links stop working"))

const pending = Command.make(
  "pending",
  { district: districtArg, json: jsonOption },
  (args) =>
    Effect.gen(function*() {
      const people = yield* Effect.flatMap(Reminders, (reminders) => reminders.pending(args.district))
      const iso = (date: Date | null) => (date === null ? null : date.toISOString())
      if (args.json) {
        return yield* json(people.map((p) => ({
          ...p,
          firstMailAt: iso(p.firstMailAt),
          lastMailAt: iso(p.lastMailAt),
          linkExpiresAt: iso(p.linkExpiresAt),
          nextReminderAt: iso(p.nextReminderAt)
        })))
      }
      if (people.length === 0) return yield* Console.log(`nobody in ${args.district} is waiting to activate`)
      yield* Console.log(table(
        ["source id", "user", "roles", "account", "days since first e-mail", "reminders", "link works until", "next reminder"],
        people.map((p) => [
          p.sourceId,
          p.userId,
          p.roles.join(","),
          p.accountId,
          p.hasAddress ? (p.daysSinceFirstMail === null ? "no e-mail yet" : p.daysSinceFirstMail) : "no address",
          p.remindersSent,
          p.linkExpiresAt === null ? "-" : when(p.linkExpiresAt),
          p.nextReminderAt === null ? "-" : when(p.nextReminderAt)
        ])
      ))
    })
).pipe(Command.withDescription("teachers and roster admins of a district who have not activated: days since the first e-mail, reminders sent"))

const merge = Command.make(
  "merge",
  {
    from: Args.integer({ name: "from-account" }).pipe(Args.withDescription("the account that is merged (kept, pointing to the survivor)")),
    into: Args.integer({ name: "into-account" }).pipe(Args.withDescription("the account that survives")),
    by: Options.text("by").pipe(Options.withDescription("who merges (recorded in the audit log)")),
    reason: Options.text("reason").pipe(Options.withDescription("why (recorded in the audit log)"), Options.optional)
  },
  (args) =>
    Effect.gen(function*() {
      const outcome = yield* Effect.flatMap(Merge, (m) => m.merge(args.from, args.into, { by: args.by, reason: Option.getOrNull(args.reason) }))
      const moved = outcome.moved
      yield* Console.log(
        `account ${outcome.from} merged into account ${outcome.into} (${outcome.state}): moved ${moved.links} link${moved.links === 1 ? "" : "s"}, ` +
          `${moved.addresses} address${moved.addresses === 1 ? "" : "es"}, ${moved.identities} identit${moved.identities === 1 ? "y" : "ies"}, ` +
          `${moved.classes} teacher-made class${moved.classes === 1 ? "" : "es"}, ` +
          `${moved.memberships} membership${moved.memberships === 1 ? "" : "s"}, ${moved.admins} admin record${moved.admins === 1 ? "" : "s"}` +
          (outcome.activated === 0 ? "" : `; ${outcome.activated} waiting teacher${outcome.activated === 1 ? "" : "s"} now active`)
      )
    })
).pipe(Command.withDescription("merge one account into another: links, addresses, identities, teacher-made classes, memberships and admin rights move; audited"))

const duplicates = Command.make(
  "duplicates",
  { district: Options.text("district").pipe(Options.withDescription("only groups touching this district"), Options.optional), json: jsonOption },
  (args) =>
    Effect.gen(function*() {
      const groups = yield* Effect.flatMap(Duplicates, (d) => d.find(args.district))
      if (args.json) return yield* json(groups)
      if (groups.length === 0) return yield* Console.log("no duplicate accounts found")
      yield* Console.log(table(
        ["accounts", "match", "shared", "linked people (district:source id)"],
        groups.map((g) => [
          g.accounts.join(" "),
          g.match,
          g.shared,
          g.people.map((p) => `${p.accountId}→${p.district}:${p.sourceId}${p.active ? "" : " (inactive)"}`).join(", ") || "-"
        ])
      ))
    })
).pipe(Command.withDescription("accounts that share an address, a provider identity, or a name and birth date, for review (ids and source IDs only)"))

const show = Command.make("show", { accountId: accountArg, json: jsonOption }, (args) =>
  Effect.gen(function*() {
    const account = yield* Effect.flatMap(Accounts, (accounts) => accounts.show(args.accountId))
    const view = {
      id: account.id,
      origin: account.origin,
      state: account.state,
      externalId: account.externalId,
      district: account.districtId,
      mergedInto: account.mergedInto,
      addresses: account.addresses,
      createdAt: account.createdAt.toISOString(),
      activatedAt: account.activatedAt === null ? null : account.activatedAt.toISOString(),
      links: account.links.map((l) => ({
        userId: l.userId,
        district: l.districtId,
        sourceId: l.sourceId,
        roles: l.roles,
        active: l.active,
        method: l.method,
        activation: l.activation
      }))
    }
    if (args.json) return yield* json(view)
    yield* Console.log(
      `account ${view.id}: ${view.origin}, ${view.state}` +
        (view.mergedInto === null ? "" : ` (merged into account ${view.mergedInto})`) +
        (view.externalId === null ? "" : `, external id ${view.externalId}`) +
        (view.district === null ? "" : `, district ${view.district}`) +
        `, ${view.addresses} address${view.addresses === 1 ? "" : "es"}`
    )
    if (view.links.length === 0) return yield* Console.log("no linked rostered users")
    yield* Console.log(table(
      ["user", "district", "source id", "roles", "active", "linked by", "activation"],
      view.links.map((l) => [l.userId, l.district, l.sourceId, l.roles.join(","), l.active ? "yes" : "no", l.method, l.activation])
    ))
  })).pipe(Command.withDescription("an account: origin, state, how many addresses, linked rostered users"))

const resolve = Command.make(
  "resolve",
  {
    provider: Options.choice("provider", ["clever", "classlink", "oneroster"]).pipe(
      Options.withDescription("the sign-in's provider: clever (a Clever user id), classlink or oneroster (a sourcedId or a userIds identifier)")
    ),
    subject: Options.text("subject").pipe(Options.withDescription("the id the sign-in carries")),
    district: Options.text("district").pipe(Options.withDescription("only this district (needed when the subject names people of several)"), Options.optional),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const rows = yield* Effect.flatMap(Accounts, (accounts) => accounts.resolve(args.provider, args.subject, args.district))
      if (args.json) return yield* json(rows)
      if (rows.length === 0) return yield* Console.log("no account: nothing rostered or imported has that identity")
      yield* Console.log(table(
        ["account", "usable", "account state", "district", "user", "source id", "user active", "matched by"],
        rows.map((r) => [
          r.accountId ?? "- (not linked yet)", r.active ? "yes" : "no", r.accountState ?? "-", r.districtId ?? "-", r.userId ?? "-",
          r.sourceId ?? "-", r.userActive === null ? "-" : r.userActive ? "yes" : "no", r.matchedBy
        ])
      ))
    })
).pipe(Command.withDescription("the account a Clever or ClassLink sign-in resolves to (what the platform's rosterd_resolve_login returns)"))

export const accountsCommand = Command.make("accounts").pipe(
  Command.withDescription("the platform's accounts: import, addresses, reviews, activation"),
  Command.withSubcommands([importCommand, addEmail, review, confirm, resend, show, pending, merge, duplicates, resolve]),
  Command.provide(Layer.mergeAll(Accounts.Default, Reviews.Default, Merge.Default, Duplicates.Default, Reminders.Default))
)

