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
 * A blocked Bloom filter over the digests: one 64-byte block per digest, eight bits in it,
 * 32 bits per expected digest (at most 32 MB, from eight million digests on). A digest it
 * reports as new is new — a repeat is never missed — and it reports a new one as a possible
 * repeat rarely (4 in 100,000 at 32 bits per digest; about 1 % at 13, past twenty million):
 * a line reported is only checked, never changed. Past `cap` lines it gives up (`lines`
 * null) and the checks read every row, as without a distinct set.
 */
export class RepeatedDigests {
  private readonly words: Uint32Array
  private readonly blockMask: number
  private found: Array<number> | null = []

  constructor(expected: number, private readonly cap: number) {
    const bits = Math.min(2 ** 28, Math.max(2 ** 16, 2 ** Math.ceil(Math.log2(Math.max(1, expected) * 32))))
    this.words = new Uint32Array(bits / 32)
    this.blockMask = bits / 512 - 1
  }

  /** Notes a line's digest (its two 32-bit halves, well mixed: Domain/Digest.ts). */
  add(line: number, hi: number, lo: number): void {
    // The block from the high half's low bits; eight bits of its 512 by double hashing:
    // the top nine bits of the low half, stepped by an odd mix of the high half.
    const base = (hi & this.blockMask) << 4
    const step = Math.imul(hi, 0x9e3779b1) | 1
    let h = lo | 0
    let known = true
    for (let i = 0; i < 8; i++) {
      const bit = h >>> 23
      const word = base + (bit >>> 5)
      const mask = 1 << (bit & 31)
      if ((this.words[word]! & mask) === 0) {
        known = false
        this.words[word]! |= mask
      }
      h = (h + step) | 0
    }
    if (!known || this.found === null) return
    if (this.found.length < this.cap) this.found.push(line)
    else this.found = null
  }

  /** The lines that may repeat an earlier one; null when there were more than `cap`. */
  get lines(): ReadonlyArray<number> | null {
    return this.found
  }
}
