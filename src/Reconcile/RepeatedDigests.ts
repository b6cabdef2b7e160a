import { BlockedBloom } from "./BlockedBloom.ts"

/**
 * The lines of a scan whose digest an earlier line of the same scan may have listed: a
 * record repeated in the file (Findings.ts needs them; DigestStaging.ts takes them while
 * scanning).
 *
 * Why: a digest set whose rows have distinct keys (`keys_distinct`, migrations/0023) lets
 * the duplicate checks look only at keys of the records a resync decoded — the rows it
 * restores from the set cannot repeat each other's keys. Except that a record listed twice
 * in the file is restored twice, from one stored row: those lines must be checked too.
 *
 * A blocked Bloom filter over the digests (BlockedBloom.ts), 32 bits per expected digest (at
 * most 32 MB, from eight million digests on). A repeat is never missed, and a new digest is
 * reported as a possible repeat rarely (4 in 100,000; about 1 % past twenty million): a
 * line reported is only checked, never changed. Past `cap` lines it gives up (`lines`
 * null) and the checks read every row, as without a distinct set.
 */
export class RepeatedDigests {
  private readonly filter: BlockedBloom
  private found: Array<number> | null = []

  constructor(expected: number, private readonly cap: number) {
    this.filter = new BlockedBloom(expected, 32)
  }

  /** Notes a line's digest (its two 32-bit halves, well mixed: Domain/Digest.ts). */
  add(line: number, hi: number, lo: number): void {
    if (!this.filter.add(hi, lo) || this.found === null) return
    if (this.found.length < this.cap) this.found.push(line)
    else this.found = null
  }

  /** The lines that may repeat an earlier one; null when there were more than `cap`. */
  get lines(): ReadonlyArray<number> | null {
    return this.found
  }
}
