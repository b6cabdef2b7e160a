import type { EntityKind } from "../Domain/Roster.ts"
import { EntityKinds } from "../Domain/Roster.ts"

/**
 * The digest store's tables (migrations/0022; what they hold: src/Reconcile/Digests.ts):
 * one per entity kind, each row a record's digest and the staging row it produced.
 */
export const digestTable = (kind: EntityKind): string => `roster_digests_${kind}`

export const DIGEST_TABLES: ReadonlyArray<string> = EntityKinds.map(digestTable)
