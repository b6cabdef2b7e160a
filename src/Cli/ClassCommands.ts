import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { Classes, InvalidInput, type Member, memberText } from "../Classes/Classes.ts"

/** `rosterd class …` and `rosterd user rename`: see src/Classes/Classes.ts. */

const classArg = Args.integer({ name: "class-id" }).pipe(Args.withDescription("the class id"))
const userArg = Args.integer({ name: "user-id" }).pipe(Args.withDescription("the rostered user's id"))

const create = Command.make(
  "create",
  {
    owner: Options.integer("owner").pipe(Options.withDescription("the account of the teacher who owns the class")),
    title: Options.text("title").pipe(Options.withDescription("the class title"))
  },
  (args) =>
    Effect.gen(function*() {
      const id = yield* Effect.flatMap(Classes, (classes) => classes.create(args.owner, args.title))
      yield* Console.log(`created teacher-made class ${id} (owner: account ${args.owner})`)
    })
).pipe(Command.withDescription("create a teacher-made class"))

const rename = Command.make(
  "rename",
  { classId: classArg, title: Args.text({ name: "title" }).pipe(Args.withDescription("the new title")) },
  (args) =>
    Effect.gen(function*() {
      yield* Effect.flatMap(Classes, (classes) => classes.rename(args.classId, args.title))
      yield* Console.log(`renamed class ${args.classId}`)
    })
).pipe(Command.withDescription("rename a class (refused for district-synced classes)"))

/** A student is a rostered user (`<user-id>`) or a platform account without one (`--account <id>`). */
const memberArgs = {
  userId: userArg.pipe(Args.optional),
  account: Options.integer("account").pipe(
    Options.withDescription("a platform account instead of a rostered user: a student who is not rostered in the district"),
    Options.optional
  )
}

const memberOf = (args: { readonly userId: Option.Option<number>; readonly account: Option.Option<number> }) =>
  Option.isSome(args.userId) === Option.isSome(args.account)
    ? Effect.fail(new InvalidInput({ problem: "give the rostered user's id or --account <id>, one of the two" }))
    : Effect.succeed<Member>(Option.isSome(args.account) ? { accountId: args.account.value } : { userId: Option.getOrThrow(args.userId) })

const addStudent = Command.make("add-student", { classId: classArg, ...memberArgs }, (args) =>
  Effect.gen(function*() {
    const member = yield* memberOf(args)
    const outcome = yield* Effect.flatMap(Classes, (classes) => classes.addStudent(args.classId, member))
    yield* Console.log(
      outcome === "added" ? `added ${memberText(member)} to class ${args.classId}` : `${memberText(member)} is already in class ${args.classId}`
    )
  })).pipe(Command.withDescription("add a student (a rostered user, or --account: a platform account) to a class (refused for district-synced classes)"))

const removeStudent = Command.make("remove-student", { classId: classArg, ...memberArgs }, (args) =>
  Effect.gen(function*() {
    const member = yield* memberOf(args)
    yield* Effect.flatMap(Classes, (classes) => classes.removeMember(args.classId, member, "student"))
    yield* Console.log(`removed ${memberText(member)} from class ${args.classId}`)
  })).pipe(Command.withDescription("remove a student (a rostered user, or --account) from a class (refused for district-synced classes)"))

const removeTeacher = Command.make("remove-teacher", { classId: classArg, userId: userArg }, (args) =>
  Effect.gen(function*() {
    yield* Effect.flatMap(Classes, (classes) => classes.removeMember(args.classId, args.userId, "teacher"))
    yield* Console.log(`removed teacher ${args.userId} from class ${args.classId}`)
  })).pipe(Command.withDescription("remove a teacher from a class, as a student leaving a teacher would (refused for district teachers)"))

const attachIntegration = Command.make(
  "attach-integration",
  { classId: classArg, integration: Args.text({ name: "integration" }).pipe(Args.withDescription("e.g. google-classroom")) },
  (args) =>
    Effect.gen(function*() {
      const outcome = yield* Effect.flatMap(Classes, (classes) => classes.attachIntegration(args.classId, args.integration))
      yield* Console.log(`${outcome === "attached" ? "attached" : "already attached:"} ${args.integration} to class ${args.classId}`)
    })
).pipe(Command.withDescription("attach another product to a class (refused for district-synced classes)"))

const deleteClass = Command.make("delete", { classId: classArg }, (args) =>
  Effect.gen(function*() {
    yield* Effect.flatMap(Classes, (classes) => classes.remove(args.classId))
    yield* Console.log(`deleted class ${args.classId} with its memberships and integrations`)
  })).pipe(Command.withDescription("delete a teacher-made class (district-synced classes are never deleted)"))

export const classCommand = Command.make("class").pipe(
  Command.withDescription("teacher-made classes, and what the product may do to classes (the database's locks decide)"),
  Command.withSubcommands([create, rename, addStudent, removeStudent, removeTeacher, attachIntegration, deleteClass]),
  Command.provide(Classes.Default)
)

const renameUser = Command.make(
  "rename",
  {
    userId: userArg,
    givenName: Options.text("given-name").pipe(Options.withDescription("the new given name"), Options.optional),
    familyName: Options.text("family-name").pipe(Options.withDescription("the new family name"), Options.optional)
  },
  (args) =>
    Effect.gen(function*() {
      yield* Effect.flatMap(Classes, (classes) => classes.renameUser(args.userId, args))
      yield* Console.log(`renamed user ${args.userId}`)
    })
).pipe(Command.withDescription("rename a user (refused for rostered users: names follow the district roster)"))

export const userCommand = Command.make("user").pipe(
  Command.withDescription("what the product may do to users (the database's locks decide)"),
  Command.withSubcommands([renameUser]),
  Command.provide(Classes.Default)
)
