/**
 * How one user's personal fields look to the masking check (src/Reconcile/Quality.ts says
 * what masked means and what follows from it): a few bits, taken once when a record is
 * decoded and staged (`masking`, src/Reconcile/Entities.ts). They are kept with the record's
 * staging row in the digest store, so a resync counts the bits of the users it restores
 * instead of matching three patterns against each of them (0.7 s at 108,000 users, 11 s at
 * 1.2 million, every run).
 *
 * The values are judged as the check reads them: lower-cased (ASCII letters only, as
 * Postgres' `lower()` under the C locale; every pattern is ASCII, so no other letter could
 * match either way), an address by its local part and its domain (the text before the
 * first `@`, and between the first and the second).
 */

/**
 * Words that make a domain (one of its labels) a placeholder: `example.invalid`,
 * `masked.school.org`. Letters, and bracketed classes after a fixed part (Quality.ts's SQL
 * test takes what comes before the first `[` as the part every match holds).
 */
export const PLACEHOLDER_WORDS = ["invalid", "masked", "redacted", "hidden", "anonymi[sz]ed", "obfuscated"]

/** The bits of a user's `masking`. */
export const MaskingBit = {
  /** The address has a placeholder domain. */
  emailPlaceholder: 1,
  /** The address's local part looks hashed (and its domain is no placeholder). */
  emailHashed: 2,
  givenNameHashed: 4,
  familyNameHashed: 8
} as const

const PLACEHOLDER_DOMAIN = new RegExp(`(^|\\.)(${PLACEHOLDER_WORDS.join("|")})(\\.|$)`)
const HASHED = /^(?:[0-9a-f]{8,}|[a-z0-9+/]{40,}={0,2}|[*x#]+)$/
const HEX = /^[0-9a-f]+$/
const DIGIT = /[0-9]/
const UPPER = /[A-Z]/g

const lower = (text: string) => text.replace(UPPER, (c) => String.fromCharCode(c.charCodeAt(0) + 32))

/**
 * Hex of any length once it holds a digit (no name or local part is "3f"); without one,
 * eight digits or more (names such as "Abe", "Dee" or an initial "C" are hex too); a long
 * base64 string; only `*`, `#` or `x` characters.
 */
const hashed = (text: string) => HASHED.test(text) || (HEX.test(text) && DIGIT.test(text))

/** The `masking` bits of a user's e-mail address, given name and family name (null: none). */
export const maskingBits = (email: string | null, givenName: string | null, familyName: string | null): number => {
  let bits = 0
  if (email !== null) {
    const parts = lower(email).split("@")
    if (PLACEHOLDER_DOMAIN.test(parts[1] ?? "")) bits |= MaskingBit.emailPlaceholder
    else if (hashed(parts[0]!)) bits |= MaskingBit.emailHashed
  }
  if (givenName !== null && hashed(lower(givenName))) bits |= MaskingBit.givenNameHashed
  if (familyName !== null && hashed(lower(familyName))) bits |= MaskingBit.familyNameHashed
  return bits
}
