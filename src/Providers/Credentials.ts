import { Effect, Option } from "effect"
import { InvalidDistrict } from "../Domain/Errors.ts"
import { readSecret, type SecretRef } from "../Secrets/SecretRef.ts"

/**
 * Where a provider's secrets come from, in order:
 * 1. a credential stored encrypted in the database (`rosterd district set-credentials`,
 *    src/Secrets/Secrets.ts), when the district has one under that name;
 * 2. the file or environment variable its settings name (src/Secrets/SecretRef.ts).
 * Messages name the credential, file or variable, never the value.
 */

/** Stored credentials as providers see them: a failure is the district's problem, with a message naming no value. */
export interface StoredCredentials {
  readonly read: (districtId: string, name: string) => Effect.Effect<Option.Option<string>, InvalidDistrict>
}

/** No stored credentials (processes without a database, and tests of providers alone). */
export const noStoredCredentials: StoredCredentials = { read: () => Effect.succeed(Option.none()) }

/**
 * The credential `name` of a district: the stored one when there is one, else the file or
 * variable of its settings. `source` says which, for budgets keyed by credential.
 */
export const readCredential = (stored: StoredCredentials, districtId: string, name: string, ref: SecretRef, what: string) =>
  Effect.flatMap(stored.read(districtId, name), (value) => {
    if (Option.isSome(value)) return Effect.succeed({ value: value.value, source: `stored:${districtId}:${name}` })
    if (ref.file === undefined && ref.env === undefined) {
      return Effect.fail(
        new InvalidDistrict({
          district: districtId,
          message: `no ${what}: store it with rosterd district set-credentials ${districtId}, or name a file or an environment variable in the settings`
        })
      )
    }
    return Effect.map(readSecret(districtId, ref, what), (secret) => ({ value: secret, source: ref.file ?? ref.env! }))
  })
