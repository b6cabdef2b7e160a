import { SqlClient } from "@effect/sql"
import type { Connection } from "@effect/sql/SqlConnection"
import { Effect } from "effect"
import { DistrictBusy } from "../Domain/Errors.ts"
import { Metrics } from "../Metrics/Metrics.ts"
import { sessionUnlock, trySessionLock } from "../Store/Session.ts"

/**
 * Advisory-lock namespace of district leases ("ROST"); the district id hashed
 * (`hashtext`) is the second key. A sync holds it for its session (`DistrictLease.hold`);
 * an approval of held changes for its transaction (Holds.ts): the same key, so they
 * exclude each other.
 */
export const LEASE_NAMESPACE = 0x524f5354

/**
 * Advisory-lock namespace of the cluster's run slots ("RSLT"), keys 0 … limit-1: a run
 * holds one while it runs, so all replicas together run at most `limit` districts at once.
 */
export const RUN_SLOT_NAMESPACE = 0x52534c54

/** A district's lease, held on this connection for as long as its scope is open. */
export interface HeldLease {
  readonly district: string
  readonly connection: Connection
}

/**
 * The lease that makes one process at a time sync a district: a Postgres **session
 * advisory lock** taken on a connection reserved for the lease's scope.
 *
 * Why this mechanism: Postgres releases a session lock the moment the session ends, so a
 * process that dies (SIGKILL, OOM, a lost host) loses its leases with its connections —
 * no lease table, no expiry to tune, no clock to trust. The failure mode to know: a
 * *network partition* leaves the server holding the dead client's session until TCP
 * notices (the server's `tcp_keepalives_*` settings bound that; see the README).
 */
export class DistrictLease extends Effect.Service<DistrictLease>()("rosterd/DistrictLease", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /** Takes the district's lease or fails with `DistrictBusy` at once (never waits). */
    const hold = Effect.fn("DistrictLease.hold")(function*(district: string) {
      const connection = yield* sql.reserve
      if (!(yield* trySessionLock(connection, LEASE_NAMESPACE, district))) return yield* new DistrictBusy({ district })
      // Counted while held (`rosterd_leases_held`): taken here, let go with the scope.
      const metrics = yield* Metrics
      yield* Effect.uninterruptible(Effect.zipRight(
        metrics.leaseTaken,
        Effect.addFinalizer(() =>
          sessionUnlock(connection, LEASE_NAMESPACE, district).pipe(
            Effect.ignore,
            Effect.ensuring(metrics.leaseReleased)
          )
        )
      ))
      return { district, connection } satisfies HeldLease
    })

    /**
     * One of the cluster's `limit` run slots, taken on the lease's connection for the
     * caller's scope; none free: `false` at once (the district stays due). Like the lease,
     * a slot dies with its holder's session.
     */
    const holdRunSlot = Effect.fn("DistrictLease.holdRunSlot")(function*(lease: HeldLease, limit: number) {
      // One statement per key, in order: a single query with the lock call in its WHERE clause
      // could take locks on rows a LIMIT then drops (the Postgres manual's warning).
      for (let slot = 0; slot < limit; slot++) {
        if (!(yield* trySessionLock(lease.connection, RUN_SLOT_NAMESPACE, slot))) continue
        yield* Effect.addFinalizer(() => sessionUnlock(lease.connection, RUN_SLOT_NAMESPACE, slot).pipe(Effect.ignore))
        return true
      }
      return false
    })

    return { hold, holdRunSlot } as const
  })
}) {}
