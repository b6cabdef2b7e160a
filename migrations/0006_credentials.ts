import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Provider credentials stored encrypted at rest (src/Secrets/Secrets.ts).
 *
 * Only AES-256-GCM output is kept: the 12-byte IV, the ciphertext and the 16-byte tag.
 * The key never enters the database; `key_id` names which configured key sealed the row,
 * so a key rotation can find what is still under an older key. The district id and the
 * credential name are the additional authenticated data: a row copied to another district
 * or name no longer decrypts.
 *
 * `ON DELETE CASCADE`: districts are normally removed softly (`removed_at`), but erasing a
 * district's row for good must take its credentials with it, not be blocked by them.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE district_credentials (
      district_id  text NOT NULL REFERENCES districts (id) ON DELETE CASCADE,
      -- token (Clever), key / secret / bearer (OneRoster REST)
      name         text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,31}$'),
      key_id       text NOT NULL CHECK (key_id <> ''),
      iv           bytea NOT NULL CHECK (octet_length(iv) = 12),
      ciphertext   bytea NOT NULL,
      auth_tag     bytea NOT NULL CHECK (octet_length(auth_tag) = 16),
      created_at   timestamptz NOT NULL DEFAULT now(),
      updated_at   timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (district_id, name)
    );
    CREATE INDEX district_credentials_by_key ON district_credentials (key_id);
  `)
})
