import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { to as copyTo } from "pg-copy-streams"
import { deriveKeyId } from "../../src/Secrets/Cipher.ts"
import { Secrets } from "../../src/Secrets/Secrets.ts"
import { TestDatabase, TestDatabaseUrl } from "../support/Database.ts"
import { tempDir } from "../support/Fixtures.ts"

/**
 * The credentials store against a real Postgres: AES-256-GCM round trips, and every way a
 * stored value must refuse to open (altered bytes, moved to another district or name, a key
 * that is not the one it was sealed with), rotation, and no plaintext anywhere in the table.
 */

const TOKEN = "tok-canary-7f3a9c21e5"
const work = tempDir("rosterd-secrets-")
const keyFile = (name: string, encoding: "base64" | "hex" = "base64", bytes = randomBytes(32)) => {
  const path = NodePath.join(work.dir, name)
  Fs.writeFileSync(path, `${bytes.toString(encoding)}\n`)
  return { path, id: deriveKeyId(bytes), bytes }
}
const keyA = keyFile("a.key")
const keyB = keyFile("b.key", "hex")

/** Runs `effect` with a Secrets service built from these `rosterd.secrets.*` settings. */
const withSettings = (settings: Record<string, string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, Secrets.Default.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(settings)))))))
const withKey = (key: { path: string }, more: Record<string, string> = {}) =>
  withSettings({ databaseUrl: "postgres://external", "rosterd.secrets.keyFile": key.path, ...more })

const district = (id: string) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO districts (id, name, provider) VALUES (${id}, ${id}, 'clever') ON CONFLICT DO NOTHING`)
const store = (d: string, name: string, value: string) => Effect.flatMap(Secrets, (s) => s.store(d, name, value))
const read = (d: string, name: string) => Effect.flatMap(Secrets, (s) => s.read(d, name))
const failureOf = <A, E extends { _tag: string; message: string }, R>(effect: Effect.Effect<A, E, R>) => Effect.flip(effect)

describe("Secrets", () => {
  layer(TestDatabase, { timeout: "60 seconds" })((it) => {
    it.effect("a round trip gives the value back; the row holds the key id, a 12-byte IV and a 16-byte tag", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* district("rt")
        const stored = yield* store("rt", "token", TOKEN)
        assert.strictEqual(stored.keyId, keyA.id)
        assert.deepStrictEqual(yield* read("rt", "token"), Option.some(TOKEN))
        assert.deepStrictEqual(yield* read("rt", "bearer"), Option.none())
        const [row] = yield* sql<{ keyId: string; iv: Buffer; authTag: Buffer }>`SELECT key_id, iv, auth_tag FROM district_credentials WHERE district_id = 'rt'`
        assert.strictEqual(row!.keyId, keyA.id)
        assert.strictEqual(row!.iv.length, 12)
        assert.strictEqual(row!.authTag.length, 16)
        // A fresh IV per value: the same value stored again is another ciphertext.
        const before = yield* sql<{ ciphertext: Buffer }>`SELECT ciphertext FROM district_credentials WHERE district_id = 'rt'`
        yield* store("rt", "token", TOKEN)
        const after = yield* sql<{ ciphertext: Buffer }>`SELECT ciphertext FROM district_credentials WHERE district_id = 'rt'`
        assert.isFalse(before[0]!.ciphertext.equals(after[0]!.ciphertext))
        // The same key written in hex is the same key (same id).
        const hex = keyFile("a.hex", "hex", keyA.bytes)
        assert.deepStrictEqual(yield* read("rt", "token").pipe(withKey(hex)), Option.some(TOKEN))
      }).pipe(withKey(keyA)))

    it.effect("a flipped ciphertext or tag byte does not decrypt: the message names district, credential and key, not the value", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* district("tamper")
        yield* store("tamper", "token", TOKEN)
        yield* sql`UPDATE district_credentials SET ciphertext = set_byte(ciphertext, 3, get_byte(ciphertext, 3) # 1) WHERE district_id = 'tamper'`
        const error = yield* failureOf(read("tamper", "token"))
        assert.strictEqual(error._tag, "CredentialUndecryptable")
        assert.include(error.message, `credential token of district tamper does not decrypt with key ${keyA.id}: wrong key or tampered`)
        assert.notInclude(error.message, TOKEN)

        yield* store("tamper", "token", TOKEN)
        yield* sql`UPDATE district_credentials SET auth_tag = set_byte(auth_tag, 15, get_byte(auth_tag, 15) # 128) WHERE district_id = 'tamper'`
        assert.strictEqual((yield* failureOf(read("tamper", "token")))._tag, "CredentialUndecryptable")
      }).pipe(withKey(keyA)))

    it.effect("a row copied to another district or renamed does not decrypt (district and name are authenticated)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* district("aad-from")
        yield* district("aad-to")
        yield* store("aad-from", "token", TOKEN)
        yield* sql`INSERT INTO district_credentials (district_id, name, key_id, iv, ciphertext, auth_tag)
                   SELECT 'aad-to', name, key_id, iv, ciphertext, auth_tag FROM district_credentials WHERE district_id = 'aad-from'`
        yield* sql`INSERT INTO district_credentials (district_id, name, key_id, iv, ciphertext, auth_tag)
                   SELECT district_id, 'bearer', key_id, iv, ciphertext, auth_tag FROM district_credentials WHERE district_id = 'aad-from'`
        const moved = yield* failureOf(read("aad-to", "token"))
        assert.strictEqual(moved._tag, "CredentialUndecryptable")
        assert.include(moved.message, "district aad-to")
        assert.strictEqual((yield* failureOf(read("aad-from", "bearer")))._tag, "CredentialUndecryptable")
        assert.deepStrictEqual(yield* read("aad-from", "token"), Option.some(TOKEN))
      }).pipe(withKey(keyA)))

    it.effect("another key: unknown key id named in the message; a custom id on the wrong key: wrong key or tampered", () =>
      Effect.gen(function*() {
        yield* district("wrong")
        yield* store("wrong", "token", TOKEN).pipe(withKey(keyA))
        const unknown = yield* failureOf(read("wrong", "token").pipe(withKey(keyB)))
        assert.strictEqual(unknown._tag, "CredentialKeyUnknown")
        assert.include(unknown.message, `credential token of district wrong is stored with key ${keyA.id}, which is not configured`)
        assert.include(unknown.message, keyB.id)
        const mislabelled = yield* failureOf(read("wrong", "token").pipe(withKey(keyB, { "rosterd.secrets.keyId": keyA.id })))
        assert.strictEqual(mislabelled._tag, "CredentialUndecryptable")
        // No key at all (external database): the store says so, and names what it was doing.
        const none = withSettings({ databaseUrl: "postgres://external" })
        const missing = yield* failureOf(read("wrong", "token").pipe(none))
        assert.strictEqual(missing._tag, "SecretsKeyMissing")
        assert.include(missing.message, `read credential token of district wrong (it is stored with key ${keyA.id})`)
        const cannotStore = yield* failureOf(store("wrong", "secret", "x").pipe(none))
        assert.include(cannotStore.message, "cannot store credential secret of district wrong: no credentials key is configured")
        assert.include(cannotStore.message, "ROSTERD_SECRETS_KEY_FILE")
        // A key file that is not a key is reported as such, naming the file only.
        const bad = NodePath.join(work.dir, "bad.key")
        Fs.writeFileSync(bad, "not-a-key")
        const invalid = yield* failureOf(read("wrong", "token").pipe(withKey({ path: bad })))
        assert.strictEqual(invalid.message, `credentials key: the key file ${bad} does not hold a 32-byte key in base64 or hex`)
      }))

    it.effect("rotate re-encrypts everything under the current key in one transaction; an unreadable row rolls it all back", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`DELETE FROM district_credentials`
        yield* district("rot1")
        yield* district("rot2")
        yield* store("rot1", "token", TOKEN).pipe(withKey(keyA))
        yield* store("rot2", "key", "k-2").pipe(withKey(keyA))
        yield* store("rot2", "secret", "s-2").pipe(withKey(keyB))
        const both = withKey(keyB, { "rosterd.secrets.previousKeyFiles": keyA.path })
        const status = yield* Effect.flatMap(Secrets, (s) => s.status()).pipe(both)
        assert.strictEqual(status.keyId, keyB.id)
        assert.deepStrictEqual(status.previousKeyIds, [keyA.id])
        assert.sameDeepMembers([...status.byKey], [{ keyId: keyA.id, count: 2, configured: true }, { keyId: keyB.id, count: 1, configured: true }])

        // Under key B alone, the rows of key A cannot be opened: nothing changes.
        const rolledBack = yield* failureOf(Effect.flatMap(Secrets, (s) => s.rotate()).pipe(withKey(keyB)))
        assert.strictEqual(rolledBack._tag, "CredentialKeyUnknown")
        const keysBefore = yield* sql<{ keyId: string }>`SELECT key_id FROM district_credentials ORDER BY district_id, name`
        assert.deepStrictEqual(keysBefore.map((r) => r.keyId), [keyA.id, keyA.id, keyB.id])

        const result = yield* Effect.flatMap(Secrets, (s) => s.rotate()).pipe(both)
        assert.deepStrictEqual(result, { keyId: keyB.id, reencrypted: 3, fromKeys: { [keyA.id]: 2, [keyB.id]: 1 }, links: 0, linksFailed: 0 })
        const keysAfter = yield* sql<{ keyId: string }>`SELECT DISTINCT key_id FROM district_credentials`
        assert.deepStrictEqual(keysAfter.map((r) => r.keyId), [keyB.id])
        // The previous key is no longer needed.
        assert.deepStrictEqual(yield* read("rot1", "token").pipe(withKey(keyB)), Option.some(TOKEN))
        assert.deepStrictEqual(yield* read("rot2", "secret").pipe(withKey(keyB)), Option.some("s-2"))
      }))

    it.effect("without DATABASE_URL and without a key, a development key is generated once under dataDir, mode 0600", () =>
      Effect.gen(function*() {
        const dataDir = NodePath.join(work.dir, "data")
        const dev = withSettings({ "rosterd.dataDir": dataDir })
        yield* district("dev")
        const status = yield* Effect.flatMap(Secrets, (s) => s.status()).pipe(dev)
        assert.include(status.problem!, "is created when a credential is stored")
        const first = yield* store("dev", "token", TOKEN).pipe(dev)
        const path = NodePath.join(dataDir, "secrets.key")
        assert.strictEqual(Fs.statSync(path).mode & 0o777, 0o600)
        const second = yield* store("dev", "token", TOKEN).pipe(dev)
        assert.strictEqual(first.keyId, second.keyId)
        assert.deepStrictEqual(yield* read("dev", "token").pipe(dev), Option.some(TOKEN))
      }))

    it.effect("the database holds no plaintext: not in the bytes, not in a COPY of the table (what a dump holds)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { url } = yield* TestDatabaseUrl
        yield* district("plain")
        yield* store("plain", "token", TOKEN).pipe(withKey(keyA))
        const [hits] = yield* sql<{ count: number }>`
          SELECT count(*)::int AS count FROM district_credentials
          WHERE position(convert_to(${TOKEN}, 'UTF8') IN iv || ciphertext || auth_tag) > 0
             OR position(${TOKEN} IN district_credentials::text) > 0`
        assert.strictEqual(hits!.count, 0)
        const dump = yield* Effect.promise(async () => {
          const client = new pg.Client({ connectionString: url })
          await client.connect()
          try {
            const chunks: Array<Buffer> = []
            for await (const chunk of client.query(copyTo("COPY district_credentials TO STDOUT"))) chunks.push(chunk as Buffer)
            return Buffer.concat(chunks).toString("utf8")
          } finally {
            await client.end()
          }
        })
        assert.include(dump, "plain\ttoken")
        for (const form of [TOKEN, Buffer.from(TOKEN).toString("hex"), Buffer.from(TOKEN).toString("base64")]) assert.notInclude(dump, form)
      }))
  })
})
