import { Effect } from "effect"
import * as Fs from "node:fs"
import { ProcessEnv } from "../Config/Environment.ts"
import { InvalidDistrict } from "../Domain/Errors.ts"

/**
 * A secret named by the settings rather than stored: a file or an environment variable,
 * read at each use (so rotating it there needs no rosterd change). Providers read their
 * credentials this way when none is stored (src/Providers/Credentials.ts), the SMTP mailer
 * its password. Messages name the file or variable, never the value.
 */
export interface SecretRef {
  readonly file?: string | undefined
  readonly env?: string | undefined
}

export const readSecret = (districtId: string, ref: SecretRef, what: string) =>
  Effect.gen(function*() {
    const fail = (message: string) => new InvalidDistrict({ district: districtId, message })
    if (ref.file !== undefined) {
      const value = yield* Effect.try({
        try: () => Fs.readFileSync(ref.file!, "utf8").trim(),
        catch: () => fail(`cannot read the ${what} file ${ref.file}`)
      })
      if (value.length === 0) return yield* fail(`the ${what} file ${ref.file} is empty`)
      return value
    }
    if (ref.env !== undefined) {
      const value = (yield* ProcessEnv)[ref.env]?.trim() ?? ""
      if (value.length === 0) return yield* fail(`the environment variable ${ref.env} (the ${what}) is not set`)
      return value
    }
    return yield* fail(`no ${what} configured (a file or an environment variable)`)
  })
