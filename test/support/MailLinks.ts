import { SqlClient } from "@effect/sql"
import { ConfigProvider, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type pg from "pg"
import { deriveKeyId, openLink } from "../../src/Secrets/Cipher.ts"
import { type SealedLinkRow, Secrets } from "../../src/Secrets/Secrets.ts"
import { testDataDir } from "./Layers.ts"

/**
 * Activation and invitation tokens in tests. The database holds no token in clear: a queued
 * message keeps its token sealed with the credentials key (migration 0009), and only the
 * delivered message carries it. Tests that confirm without delivering open the seal as the
 * outbox worker would: in process with the development key under the tests' data dir
 * (`sealedToken`), or, for spawned processes with `DATABASE_URL`, with the key file the test
 * gave them (`testKeyFile`, `sealedTokenWith`).
 */

const LINK_COLUMNS = `id, kind, idempotency_key, recipient, subject, body_text, body_html, link_url,
                      link_key_id, link_iv, link_ciphertext, link_auth_tag`

/** The token sealed in the outbox message with this idempotency key (`teacher-activation:12`, `admin-invitation:3`). */
export const sealedToken = (idempotencyKey: string, settings: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql.unsafe<SealedLinkRow>(`SELECT ${LINK_COLUMNS} FROM outbox WHERE idempotency_key = $1`, [idempotencyKey])
    if (row === undefined || row.linkCiphertext === null) return yield* Effect.dieMessage(`no sealed link in outbox message ${idempotencyKey}`)
    const config = ConfigProvider.fromMap(new Map([...testDataDir, ...Object.entries(settings)]))
    return yield* Effect.flatMap(Secrets, (secrets) => secrets.openLink(row)).pipe(
      Effect.provide(Secrets.Default.pipe(Layer.provide(Layer.setConfigProvider(config)))),
      Effect.orDie
    )
  }).pipe(Effect.orDie)

/** A credentials key file for spawned processes (`ROSTERD_SECRETS_KEY_FILE`). */
export const testKeyFile = (dir: string, name = "secrets.key") => {
  const bytes = randomBytes(32)
  const path = NodePath.join(dir, name)
  Fs.writeFileSync(path, `${bytes.toString("base64")}\n`, { mode: 0o600 })
  return { path, key: { id: deriveKeyId(bytes), bytes } }
}

/** The same over a plain `pg` client, with the key the test gave the process that sealed it. */
export const sealedTokenWith = async (client: pg.Client, key: { readonly id: string; readonly bytes: Buffer }, idempotencyKey: string) => {
  const { rows } = await client.query(
    `SELECT id::int, kind, idempotency_key AS "idempotencyKey", recipient, subject, body_text AS "bodyText", body_html AS "bodyHtml",
            link_url AS "linkUrl", link_key_id AS "linkKeyId", link_iv AS "linkIv", link_ciphertext AS "linkCiphertext",
            link_auth_tag AS "linkAuthTag"
     FROM outbox WHERE idempotency_key = $1`,
    [idempotencyKey]
  )
  const row = rows[0] as SealedLinkRow | undefined
  if (row === undefined || row.linkCiphertext === null) throw new Error(`no sealed link in outbox message ${idempotencyKey}`)
  const token = openLink(key, row, { keyId: row.linkKeyId, iv: row.linkIv, ciphertext: row.linkCiphertext, authTag: row.linkAuthTag })
  if (token === undefined) throw new Error(`the link of outbox message ${idempotencyKey} does not open with key ${key.id}`)
  return token
}
