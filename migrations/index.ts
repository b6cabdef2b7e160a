import { Migrator } from "@effect/sql"
import roster from "./0001_roster.ts"
import districtRules from "./0002_district_rules.ts"
import safety from "./0003_safety.ts"
import admins from "./0004_admins.ts"
import schedule from "./0005_schedule.ts"
import credentials from "./0006_credentials.ts"
import erase from "./0007_erase.ts"
import trustBoundary from "./0008_trust_boundary.ts"
import outboxLinks from "./0009_outbox_links.ts"
import deferredRuns from "./0010_deferred_runs.ts"
import identities from "./0011_identities.ts"
import rekey from "./0012_rekey.ts"
import mergesFollowup from "./0013_merges_followup.ts"
import adminScope from "./0014_admin_scope.ts"
import oneRoster12Contacts from "./0016_oneroster12_contacts.ts"
import notifications from "./0017_notifications.ts"
import undo from "./0018_undo.ts"
import digestSets from "./0019_digest_sets.ts"
import rosterApplied from "./0020_roster_applied.ts"
import changeParts from "./0021_change_parts.ts"
import typedDigests from "./0022_typed_digests.ts"
import digestKeys from "./0023_digest_keys.ts"
import maskingBits from "./0024_masking_bits.ts"
import digests from "./0015_digests.ts"

/**
 * A static index of the migrations, loaded with `Migrator.fromRecord`: it works the same
 * under tsx, node and vitest (a file-system loader would `import()` `.ts` files from inside
 * @effect/sql, which vitest cannot follow). Add each new migration here.
 */
const all = {
  "0001_roster": roster,
  "0002_district_rules": districtRules,
  "0003_safety": safety,
  "0004_admins": admins,
  "0005_schedule": schedule,
  "0006_credentials": credentials,
  "0007_erase": erase,
  "0008_trust_boundary": trustBoundary,
  "0009_outbox_links": outboxLinks,
  "0010_deferred_runs": deferredRuns,
  "0011_identities": identities,
  "0012_rekey": rekey,
  "0013_merges_followup": mergesFollowup,
  "0014_admin_scope": adminScope,
  "0015_digests": digests,
  "0016_oneroster12_contacts": oneRoster12Contacts,
  "0017_notifications": notifications,
  "0018_undo": undo,
  "0019_digest_sets": digestSets,
  "0020_roster_applied": rosterApplied,
  "0021_change_parts": changeParts,
  "0022_typed_digests": typedDigests,
  "0023_digest_keys": digestKeys,
  "0024_masking_bits": maskingBits
}

export const migrations = Migrator.fromRecord(all)

/** The newest migration id: `/readyz` is ready only when the database has it. */
export const latestMigration = Math.max(...Object.keys(all).map((key) => Number(key.split("_")[0])))
