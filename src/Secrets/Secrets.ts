import { SqlClient } from "@effect/sql"
import { Effect, Either, Option, Schema } from "effect"
import { type Key, type LinkContext, open, openLink, seal, type Sealed, sealLink } from "./Cipher.ts"
import { CredentialKeyUnknown, CredentialUndecryptable, SecretsKeyInvalid, SecretsKeyMissing } from "./Errors.ts"
import { ensureDevKey, loadKeyring, SecretsSettings } from "./Keyring.ts"

/**
 * Provider credentials encrypted at rest in `district_credentials` (migration 0006):
 * AES-256-GCM with the key from outside the database (src/Secrets/Keyring.ts), one row per
 * district and credential name (`token`, `key`, `secret`, `bearer`).
 *
 * Providers prefer a stored credential to their settings' file or variable
 * (src/Providers/Credentials.ts). Values are decrypted when a sync needs them and never
 * logged or returned by anything but `read`.
 *
 * The same key seals the tokens of activation and invitation links waiting in the outbox
 * (`outbox.link_*`, migration 0009): `sealingKey` for the code that issues them,
 * `openLink` for the worker that sends them. A rotation re-seals those too, so a pending
 * link keeps working when the old key is dropped.
 */

/** A sealed outbox link that cannot be opened: its key is not configured, or the row was altered. */
export class LinkUnreadable extends Schema.TaggedError<LinkUnreadable>()("LinkUnreadable", {
  outboxId: Schema.Number,
  keyId: Schema.String,
  problem: Schema.Literal("key not configured", "does not authenticate")
}) {
  override get message() {
    return this.problem === "key not configured"
      ? `the link of outbox message ${this.outboxId} is sealed with key ${this.keyId}, which is not configured ` +
        "(rosterd.secrets.keyFile, or previousKeyFiles after a rotation)"
      : `the link of outbox message ${this.outboxId} does not open with key ${this.keyId}: the row was altered ` +
        "(recipient, text or link page changed) or the key under that id changed; resend the message"
  }
}

/** An outbox row's sealed link, with what its seal is bound to. */
export interface SealedLinkRow extends LinkContext {
  readonly id: number
  readonly linkKeyId: string
  readonly linkIv: Uint8Array
  readonly linkCiphertext: Uint8Array
  readonly linkAuthTag: Uint8Array
}

const sealedOf = (row: SealedLinkRow): Sealed => ({ keyId: row.linkKeyId, iv: row.linkIv, ciphertext: row.linkCiphertext, authTag: row.linkAuthTag })

/** Credential names: what the table's check allows. */
export const CREDENTIAL_NAME = /^[a-z][a-z0-9_]{0,31}$/

export interface StoredCredential {
  readonly districtId: string
  readonly name: string
  readonly keyId: string
  readonly updatedAt: Date
}

export interface RotateResult {
  /** The key every credential is now sealed with. */
  readonly keyId: string
  readonly reencrypted: number
  /** How many credentials each key held before. */
  readonly fromKeys: Readonly<Record<string, number>>
  /** Links of outbox messages not sent yet (or failed, to be retried), re-sealed under the key. */
  readonly links: number
  /** Links that no longer opened (their row altered): their messages failed. */
  readonly linksFailed: number
}

export interface SecretsStatus {
  /** The current key's id, `null` when none is configured (or it cannot be read: see `problem`). */
  readonly keyId: string | null
  readonly source: string | null
  readonly previousKeyIds: ReadonlyArray<string>
  readonly problem: string | null
  /** Whether new links (activation, invitation) can be sealed: a key is configured, or the embedded default can make one. */
  readonly canSeal: boolean
  readonly byKey: ReadonlyArray<{ readonly keyId: string; readonly count: number; readonly configured: boolean }>
  /** Sealed links waiting in the outbox, by key. */
  readonly linksByKey: ReadonlyArray<{ readonly keyId: string; readonly count: number; readonly configured: boolean }>
}

interface Row extends Sealed {
  readonly districtId: string
  readonly name: string
}

export class Secrets extends Effect.Service<Secrets>()("rosterd/Secrets", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // A bad setting must not stop commands that never touch credentials: kept, reported at use.
    const settings = yield* Effect.either(SecretsSettings)
    const keyring = Effect.suspend(() =>
      Either.match(settings, {
        onLeft: (error) => Effect.fail(new SecretsKeyInvalid({ source: "rosterd.secrets", problem: `is not valid: ${error.message}` })),
        onRight: loadKeyring
      })
    )

    const currentKey = (purpose: string): Effect.Effect<Key, SecretsKeyInvalid | SecretsKeyMissing> =>
      Effect.gen(function*() {
        const ring = yield* keyring
        if (ring.current !== undefined) return ring.current
        if (ring.devKeyFile !== undefined) return yield* ensureDevKey(ring.devKeyFile)
        return yield* new SecretsKeyMissing({ purpose })
      })

    const encrypt = Effect.fn("Secrets.encrypt")(function*(districtId: string, name: string, value: string) {
      const key = yield* currentKey(`store credential ${name} of district ${districtId}`)
      return seal(key, districtId, name, value)
    })

    const decrypt = Effect.fn("Secrets.decrypt")(function*(districtId: string, name: string, sealed: Sealed) {
      const ring = yield* keyring
      const key = ring.keys.get(sealed.keyId)
      if (key === undefined) {
        if (ring.keys.size === 0) return yield* new SecretsKeyMissing({ purpose: `read credential ${name} of district ${districtId}`, keyId: sealed.keyId })
        return yield* new CredentialKeyUnknown({ district: districtId, name, keyId: sealed.keyId, configured: [...ring.keys.keys()] })
      }
      const value = open(key, districtId, name, sealed)
      if (value === undefined) return yield* new CredentialUndecryptable({ district: districtId, name, keyId: sealed.keyId })
      return value
    })

    const store = Effect.fn("Secrets.store")(function*(districtId: string, name: string, value: string) {
      if (!CREDENTIAL_NAME.test(name)) return yield* Effect.dieMessage(`not a credential name: ${name}`)
      const sealed = yield* encrypt(districtId, name, value)
      yield* sql`
        INSERT INTO district_credentials (district_id, name, key_id, iv, ciphertext, auth_tag)
        VALUES (${districtId}, ${name}, ${sealed.keyId}, ${sealed.iv}, ${sealed.ciphertext}, ${sealed.authTag})
        ON CONFLICT (district_id, name) DO UPDATE
          SET key_id = EXCLUDED.key_id, iv = EXCLUDED.iv, ciphertext = EXCLUDED.ciphertext,
              auth_tag = EXCLUDED.auth_tag, updated_at = now()`.pipe(Effect.orDie)
      return { keyId: sealed.keyId }
    })

    const read = Effect.fn("Secrets.read")(function*(districtId: string, name: string) {
      const rows = yield* sql<Row>`
        SELECT district_id, name, key_id, iv, ciphertext, auth_tag FROM district_credentials
        WHERE district_id = ${districtId} AND name = ${name}`.pipe(Effect.orDie)
      const row = rows[0]
      if (row === undefined) return Option.none<string>()
      return Option.some(yield* decrypt(districtId, name, row))
    })

    /** Removes a district's stored credentials (all, or the names given); returns the names removed. */
    const remove = Effect.fn("Secrets.remove")(function*(districtId: string, names?: ReadonlyArray<string>) {
      const rows = yield* sql<{ readonly name: string }>`
        DELETE FROM district_credentials
        WHERE district_id = ${districtId} AND ${names === undefined ? sql`true` : names.length === 0 ? sql`false` : sql.in("name", names)}
        RETURNING name`.pipe(Effect.orDie)
      return rows.map((r) => r.name).sort()
    })

    const list = Effect.fn("Secrets.list")(function*(districtId?: string) {
      return yield* sql<StoredCredential>`
        SELECT district_id, name, key_id, updated_at FROM district_credentials
        WHERE ${districtId === undefined ? sql`true` : sql`district_id = ${districtId}`}
        ORDER BY district_id, name`.pipe(Effect.orDie)
    })

    /**
     * The key to seal new links with (the development key is created here when it is the
     * embedded default's first need of one). `purpose` names what waits for it in the error.
     */
    const sealingKey = (purpose: string) => currentKey(purpose)

    /** The token of an outbox row's sealed link. */
    const openLink_ = (row: SealedLinkRow) =>
      Effect.gen(function*() {
        const ring = yield* keyring
        const key = ring.keys.get(row.linkKeyId)
        if (key === undefined) return yield* new LinkUnreadable({ outboxId: row.id, keyId: row.linkKeyId, problem: "key not configured" })
        const token = openLink(key, row, sealedOf(row))
        if (token === undefined) return yield* new LinkUnreadable({ outboxId: row.id, keyId: row.linkKeyId, problem: "does not authenticate" })
        return token
      })

    /**
     * Re-encrypts every stored credential, and re-seals every outbox link still sealed, under
     * the current key, in one transaction: a value under a key that is not configured (or a
     * credential that does not open) rolls everything back, so a rotation never leaves a mix
     * it could not finish. A link whose row was altered since it was sealed never opens with
     * any key: its message fails instead. The links are re-sealed with one statement.
     */
    const rotate = Effect.fn("Secrets.rotate")(function*() {
      const key = yield* currentKey("re-encrypt the stored credentials")
      return yield* sql.withTransaction(Effect.gen(function*() {
        const rows = yield* sql<Row>`
          SELECT district_id, name, key_id, iv, ciphertext, auth_tag FROM district_credentials
          ORDER BY district_id, name FOR UPDATE`
        const fromKeys: Record<string, number> = {}
        for (const row of rows) {
          const value = yield* decrypt(row.districtId, row.name, row)
          const sealed = seal(key, row.districtId, row.name, value)
          yield* sql`
            UPDATE district_credentials
            SET key_id = ${sealed.keyId}, iv = ${sealed.iv}, ciphertext = ${sealed.ciphertext}, auth_tag = ${sealed.authTag}, updated_at = now()
            WHERE district_id = ${row.districtId} AND name = ${row.name}`
          fromKeys[row.keyId] = (fromKeys[row.keyId] ?? 0) + 1
        }
        const links = yield* sql<SealedLinkRow>`
          SELECT id, kind, idempotency_key, recipient, subject, body_text, body_html, link_url,
                 link_key_id, link_iv, link_ciphertext, link_auth_tag
          FROM outbox WHERE link_ciphertext IS NOT NULL ORDER BY id FOR UPDATE`
        const resealed: Array<{ readonly id: number; readonly sealed: Sealed }> = []
        const altered: Array<number> = []
        for (const row of links) {
          // A key that is not configured stops the rotation (its links would be lost); a row
          // altered since it was sealed could never be sent: it fails, its seal dropped.
          const token = yield* openLink_(row).pipe(
            Effect.map(Option.some),
            Effect.catchIf((e) => e._tag === "LinkUnreadable" && e.problem === "does not authenticate", () => Effect.succeed(Option.none<string>()))
          )
          if (Option.isSome(token)) resealed.push({ id: row.id, sealed: sealLink(key, row, token.value) })
          else altered.push(row.id)
        }
        if (altered.length > 0) {
          yield* sql`
            UPDATE outbox SET state = 'failed', link_key_id = NULL, link_iv = NULL, link_ciphertext = NULL, link_auth_tag = NULL,
                   last_error = 'its link did not open at the key rotation (the row was altered); send a new message'
            WHERE id = ANY (${altered}::bigint[])`
        }
        if (resealed.length > 0) {
          yield* sql.unsafe(
            `UPDATE outbox o SET link_key_id = r.key_id, link_iv = r.iv, link_ciphertext = r.ciphertext, link_auth_tag = r.auth_tag
             FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[]) AS r(id, key_id, iv, ciphertext, auth_tag)
             WHERE o.id = r.id`,
            [
              resealed.map((r) => r.id),
              resealed.map((r) => r.sealed.keyId),
              resealed.map((r) => Buffer.from(r.sealed.iv)),
              resealed.map((r) => Buffer.from(r.sealed.ciphertext)),
              resealed.map((r) => Buffer.from(r.sealed.authTag))
            ]
          )
        }
        return { keyId: key.id, reencrypted: rows.length, fromKeys, links: resealed.length, linksFailed: altered.length } satisfies RotateResult
      })).pipe(Effect.catchTag("SqlError", Effect.die))
    })

    const status = Effect.fn("Secrets.status")(function*() {
      const ring = yield* Effect.either(keyring)
      const counts = yield* sql<{ readonly keyId: string; readonly count: number }>`
        SELECT key_id, count(*)::int AS count FROM district_credentials GROUP BY key_id ORDER BY key_id`.pipe(Effect.orDie)
      const links = yield* sql<{ readonly keyId: string; readonly count: number }>`
        SELECT link_key_id AS key_id, count(*)::int AS count FROM outbox WHERE link_ciphertext IS NOT NULL
        GROUP BY link_key_id ORDER BY link_key_id`.pipe(Effect.orDie)
      const keys = Either.match(ring, { onLeft: () => new Map<string, Key>(), onRight: (r) => r.keys })
      const current = Either.getOrUndefined(ring)?.current
      return {
        keyId: current?.id ?? null,
        source: Either.getOrUndefined(ring)?.source ?? null,
        previousKeyIds: [...keys.keys()].filter((id) => id !== current?.id),
        problem: Either.match(ring, {
          onLeft: (e) => e.message,
          onRight: (r) =>
            r.current !== undefined ? null : r.devKeyFile !== undefined
              ? `no key yet: the development key ${r.devKeyFile} is created when a credential is stored`
              : "no credentials key is configured (rosterd.secrets.keyFile or rosterd.secrets.keyEnv); " +
                "activation e-mails and administrator invitations wait for one"
        }),
        canSeal: Either.match(ring, { onLeft: () => false, onRight: (r) => r.current !== undefined || r.devKeyFile !== undefined }),
        byKey: counts.map((c) => ({ keyId: c.keyId, count: c.count, configured: keys.has(c.keyId) })),
        linksByKey: links.map((c) => ({ keyId: c.keyId, count: c.count, configured: keys.has(c.keyId) }))
      } satisfies SecretsStatus
    })

    return { encrypt, decrypt, store, read, remove, list, rotate, status, sealingKey, openLink: openLink_ } as const
  })
}) {}
