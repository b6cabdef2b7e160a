import { Args, Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import * as Fs from "node:fs"
import { Stdio } from "./Stdio.ts"

/**
 * How `accounts confirm` and `admin confirm` take a token: from standard input
 * (`--token-stdin`) or a file (`--token-file <path>`), never as an argument, where it would
 * stay in the shell's history and show in `ps` to every user of the machine. The token is
 * never printed back, not even in an error.
 */

export class TokenInputError extends Schema.TaggedError<TokenInputError>()("TokenInputError", { message: Schema.String }) {}

export const tokenOptions = {
  // Accepted only to be refused without echoing it (a usage error would print it back).
  token: Args.text({ name: "token" }).pipe(
    Args.withDescription("not accepted: a token on the command line stays in the shell's history and shows in ps; use --token-stdin or --token-file"),
    Args.optional
  ),
  tokenStdin: Options.boolean("token-stdin").pipe(
    Options.withDescription("read the token from standard input (e.g. `printf %s \"$TOKEN\" | rosterd … --token-stdin`)")
  ),
  tokenFile: Options.text("token-file").pipe(
    Options.withDescription("read the token from this file (its only content; surrounding whitespace is ignored)"),
    Options.optional
  )
}

const fromText = (text: string, where: string) => {
  const token = text.trim()
  if (token.length === 0) return Effect.fail(new TokenInputError({ message: `no token in ${where}` }))
  if (/\s/.test(token) || token.length > 512) {
    return Effect.fail(new TokenInputError({ message: `${where} holds more than one token-like word: give the token alone` }))
  }
  return Effect.succeed(token)
}

/** The token from where the options say. */
export const readToken = (options: { readonly token: Option.Option<string>; readonly tokenStdin: boolean; readonly tokenFile: Option.Option<string> }) =>
  Effect.gen(function*() {
    if (Option.isSome(options.token)) {
      return yield* new TokenInputError({
        message: "a token is never taken from the command line (it would stay in the shell's history and show in ps): " +
          "pipe it with --token-stdin or give --token-file <path>; treat the one given as seen by others and send a new one"
      })
    }
    if (options.tokenStdin && Option.isSome(options.tokenFile)) {
      return yield* new TokenInputError({ message: "give --token-stdin or --token-file, not both" })
    }
    if (Option.isSome(options.tokenFile)) {
      const path = options.tokenFile.value
      const text = yield* Effect.try({
        try: () => Fs.readFileSync(path, "utf8"),
        catch: () => new TokenInputError({ message: `cannot read the token file ${path}` })
      })
      return yield* fromText(text, `the token file ${path}`)
    }
    if (options.tokenStdin) {
      const stdio = yield* Stdio
      const text = yield* Effect.tryPromise({
        try: () => stdio.readInput(),
        catch: () => new TokenInputError({ message: "cannot read the token from standard input" })
      })
      return yield* fromText(text, "standard input")
    }
    return yield* new TokenInputError({
      message: "give the token on standard input (--token-stdin) or in a file (--token-file <path>); it is never taken from the command line"
    })
  })
