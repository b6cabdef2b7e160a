import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Notifications and webhooks, and the districts Clever says have authorised the app
 * (issue 19; src/Notify, src/Districts/Discovery.ts).
 *
 * - `notifications`: one row per event and occurrence (`UNIQUE (event, occurrence)`: a run,
 *   a hold's decision, a stale episode…), so replicas that see the same event write it
 *   once. The summary holds ids and counts only, never personal values.
 * - `notify_state`: when rosterd started announcing (events before it are not announced),
 *   and per district whether it was stale at the last look, with the episode number.
 * - `webhook_deliveries`: one per notification and hook URL, retried with the outbox's
 *   backoff; the body is rebuilt from the notification at each attempt and signed with the
 *   hook's secret read from its file then — no secret is stored. `webhooks_disabled`: a
 *   hook whose receiver answered 410 Gone is not called again until an operator enables it.
 * - `discovered_districts`: Clever districts seen in the app's token list, when first and
 *   last seen, and when they went missing (disconnected); the token itself is never kept
 *   here (`district add --from-discovery` stores it sealed, like other credentials).
 * E-mail notifications go through `outbox` (kind `notification`).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE notifications (
      id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      event        text NOT NULL,
      occurrence   text NOT NULL,
      district_id  text,
      run_id       bigint,
      summary      jsonb NOT NULL DEFAULT '{}',
      at           timestamptz NOT NULL DEFAULT now(),
      UNIQUE (event, occurrence)
    );
    CREATE INDEX notifications_by_time ON notifications (at);

    CREATE TABLE notify_state (
      only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
      since     timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE notify_district_state (
      district_id  text PRIMARY KEY REFERENCES districts (id) ON DELETE CASCADE,
      stale        boolean NOT NULL,
      episode      integer NOT NULL DEFAULT 0,
      changed_at   timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE webhook_deliveries (
      id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      notification_id  bigint NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
      url              text NOT NULL,
      state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'disabled')),
      attempts         integer NOT NULL DEFAULT 0,
      next_attempt_at  timestamptz NOT NULL DEFAULT now(),
      last_status      integer,
      last_error       text,
      created_at       timestamptz NOT NULL DEFAULT now(),
      sent_at          timestamptz,
      UNIQUE (notification_id, url)
    );
    CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

    CREATE TABLE webhooks_disabled (
      url          text PRIMARY KEY,
      status       integer NOT NULL,
      disabled_at  timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE discovered_districts (
      provider          text NOT NULL,
      source_district   text NOT NULL,
      name              text,
      first_seen_at     timestamptz NOT NULL DEFAULT now(),
      last_seen_at      timestamptz NOT NULL DEFAULT now(),
      missing_since     timestamptz,
      episode           integer NOT NULL DEFAULT 1,
      PRIMARY KEY (provider, source_district)
    );
  `)
})
