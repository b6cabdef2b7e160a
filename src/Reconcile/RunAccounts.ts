import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import type { Effect } from "effect"
import { Context } from "effect"
import type { District } from "../Domain/District.ts"
import type { ApplyContext } from "./Apply.ts"
import type { FindingsContext } from "./Findings.ts"

/**
 * What a sync run asks of the accounts feature in its transaction, once the roster is
 * applied (and the enrolled users are known: Rules/People.ts `snapshotEnrolled`): link the
 * people to accounts, keep each student's activation in step with their enrolment, issue
 * the activation e-mails that are due. It returns the notes the run should carry (e-mails
 * waiting for a credentials key).
 *
 * A port, because imports run downward (README "Layout"): the reconcile does not import
 * src/Accounts, which implements it (src/Accounts/SyncAccounts.ts) and provides it to the
 * `Sync` service there.
 */
export class RunAccounts extends Context.Tag("rosterd/RunAccounts")<RunAccounts, {
  readonly afterApply: (
    context: ApplyContext & FindingsContext,
    district: District
  ) => Effect.Effect<ReadonlyArray<string>, SqlError, SqlClient.SqlClient>
}>() {}
