/**
 * Advisory-lock namespace of district leases ("ROST"); the district id hashed
 * (`hashtext`) is the second key. A sync holds it for its session (SyncRun.ts); an
 * approval of held changes for its transaction (Holds.ts): the same key, so they exclude
 * each other.
 */
export const LEASE_NAMESPACE = 0x524f5354
