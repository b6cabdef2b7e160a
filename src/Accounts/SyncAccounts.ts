import { Effect, Layer } from "effect"
import { RunAccounts } from "../Reconcile/RunAccounts.ts"
import { Sync } from "../Reconcile/SyncRun.ts"
import { Activation, activationNote } from "./Activation.ts"
import { linkAccounts, refreshStudentActivation } from "./Linking.ts"

/**
 * The accounts step of every sync run (the reconcile's port `RunAccounts`): linking
 * (Linking.ts, with the district's rules `syncAdmins` and `accounts.reuseWindowDays`),
 * students' activation, and the activation e-mails now due (Activation.ts). Without a
 * credentials key the e-mails wait, with a note; the run applies all the same.
 */
export const RunAccountsLive = Layer.effect(
  RunAccounts,
  Effect.gen(function*() {
    const activation = yield* Activation
    return RunAccounts.of({
      afterApply: (context, district) =>
        Effect.gen(function*() {
          yield* linkAccounts(context, { syncAdmins: district.rules.syncAdmins, reuseWindowDays: district.rules.accounts.reuseWindowDays })
          yield* refreshStudentActivation(context)
          const wait = activationNote(yield* activation.issueForRun(district.id))
          return wait === undefined ? [] : [wait]
        })
    })
  })
).pipe(Layer.provide(Activation.Default))

/** The sync with its accounts step: what the daemon, the CLI and the tests run. */
export const SyncLive = Sync.Default.pipe(Layer.provide(RunAccountsLive))
