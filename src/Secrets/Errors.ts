import { Schema } from "effect"

/**
 * Errors of the credentials store. They cross to the CLI and to run records, so their
 * messages name the district, the credential name and key ids — never a value, never a key.
 */

const KEY_SETTINGS = "rosterd.secrets.keyFile (ROSTERD_SECRETS_KEY_FILE) or rosterd.secrets.keyEnv (ROSTERD_SECRETS_KEY_ENV)"

/** A credential is to be stored (or one read) and no key is configured. */
export class SecretsKeyMissing extends Schema.TaggedError<SecretsKeyMissing>()("SecretsKeyMissing", {
  /** What needed the key: `store credential token of district x`, `read credential …`, `rotate`. */
  purpose: Schema.String,
  /** The key id of the stored value, when reading one. */
  keyId: Schema.optional(Schema.String)
}) {
  override get message() {
    const stored = this.keyId === undefined ? "" : ` (it is stored with key ${this.keyId})`
    return `cannot ${this.purpose}${stored}: no credentials key is configured; set ${KEY_SETTINGS}` +
      " (only the embedded development database, without DATABASE_URL, generates one by itself)"
  }
}

/** A configured key cannot be used: unreadable file, unset variable, not 32 bytes, conflicting settings. */
export class SecretsKeyInvalid extends Schema.TaggedError<SecretsKeyInvalid>()("SecretsKeyInvalid", {
  /** Where the key was to come from: `the key file /etc/rosterd/key`, `rosterd.secrets`. */
  source: Schema.String,
  problem: Schema.String
}) {
  override get message() {
    return `credentials key: ${this.source} ${this.problem}`
  }
}

/** A stored credential was sealed with a key that is not configured (neither current nor previous). */
export class CredentialKeyUnknown extends Schema.TaggedError<CredentialKeyUnknown>()("CredentialKeyUnknown", {
  district: Schema.String,
  name: Schema.String,
  keyId: Schema.String,
  configured: Schema.Array(Schema.String)
}) {
  override get message() {
    const configured = this.configured.length === 0 ? "none" : this.configured.join(", ")
    return `credential ${this.name} of district ${this.district} is stored with key ${this.keyId}, which is not configured ` +
      `(configured keys: ${configured}); list the old key in rosterd.secrets.previousKeyFiles, or store the credential again ` +
      `with rosterd district set-credentials ${this.district}`
  }
}

/** The key id matches but the value does not authenticate: the key under that id changed, or the row was altered or moved. */
export class CredentialUndecryptable extends Schema.TaggedError<CredentialUndecryptable>()("CredentialUndecryptable", {
  district: Schema.String,
  name: Schema.String,
  keyId: Schema.String
}) {
  override get message() {
    return `credential ${this.name} of district ${this.district} does not decrypt with key ${this.keyId}: wrong key or tampered ` +
      `(store it again with rosterd district set-credentials ${this.district})`
  }
}

export type SecretsError = SecretsKeyMissing | SecretsKeyInvalid | CredentialKeyUnknown | CredentialUndecryptable
