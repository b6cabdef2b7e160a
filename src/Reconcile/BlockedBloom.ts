/**
 * A blocked Bloom filter over 64-bit hashes (two well-mixed 32-bit halves: Domain/Digest.ts):
 * one 64-byte block per hash, eight bits in it. `add` says whether every bit was set
 * already: a hash it reports as new is new — a repeat is never missed — and it reports a
 * new one as a possible repeat rarely (4 in 100,000 at 32 bits per expected hash, about
 * 0.1 % at 16, about 1 % at 13). Used to find what may repeat in a stream, in memory that
 * does not grow with the keys' length (RepeatedDigests.ts, RepeatedKeys.ts).
 */
export class BlockedBloom {
  private readonly words: Uint32Array
  private readonly blockMask: number

  /** Room for `expected` hashes at `bitsPer` bits each (rounded up to a power of two, 64 Kbit to 256 Mbit). */
  constructor(expected: number, bitsPer: number) {
    const bits = Math.min(2 ** 28, Math.max(2 ** 16, 2 ** Math.ceil(Math.log2(Math.max(1, expected) * bitsPer))))
    this.words = new Uint32Array(bits / 32)
    this.blockMask = bits / 512 - 1
  }

  /** Notes a hash; true when every one of its bits was set already (it may have been added before). */
  add(hi: number, lo: number): boolean {
    return this.visit(hi, lo, true)
  }

  /** Whether the hash may have been added (nothing is set). */
  has(hi: number, lo: number): boolean {
    return this.visit(hi, lo, false)
  }

  private visit(hi: number, lo: number, set: boolean): boolean {
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
        if (!set) return false
        known = false
        this.words[word]! |= mask
      }
      h = (h + step) | 0
    }
    return known
  }
}
