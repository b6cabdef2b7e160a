/**
 * A 64-bit digest of a source record's cells, as two unsigned 32-bit halves.
 *
 * Used to tell, before decoding, whether a record is exactly what an earlier run read
 * (src/Reconcile/Digests.ts). Plain JavaScript over char codes (two independent lanes,
 * an FNV-1a and a MurmurHash-style one, each finalised with Murmur3's mixer): about
 * 0.4 µs for an enrollment row, several times cheaper than a crypto hash through
 * node:crypto, which costs more in call overhead than in hashing.
 *
 * Not a cryptographic hash: a source that crafted a collision could only make rosterd
 * read one of its records as another of its own records, which it can do anyway by
 * sending that record twice.
 */
export interface Digest {
  readonly hi: number
  readonly lo: number
}

const UNIT = 0x1f

/** The digest of `cells` under `seed` (a feed's mapping version, see `seedOf`). */
export const digestCells = (seed: number, cells: ReadonlyArray<string>): Digest => {
  let a = (seed ^ 0x811c9dc5) | 0
  let b = (seed ^ 0x9e3779b9) | 0
  for (let c = 0; c < cells.length; c++) {
    const text = cells[c]!
    for (let i = 0; i < text.length; i++) {
      const k = text.charCodeAt(i)
      a = Math.imul(a ^ k, 0x01000193)
      b = Math.imul(b ^ k, 0x5bd1e995)
      b ^= b >>> 15
    }
    // A separator after every cell: ["ab", "c"] and ["a", "bc"] differ.
    a = Math.imul(a ^ UNIT, 0x01000193)
    b = Math.imul(b ^ (UNIT + text.length), 0x5bd1e995)
    b ^= b >>> 15
  }
  return { hi: fmix(a ^ cells.length) >>> 0, lo: fmix(b ^ Math.imul(cells.length, 0x27d4eb2d)) >>> 0 }
}

const fmix = (h: number) => {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return h ^ (h >>> 16)
}

/** A 32-bit seed from a version text (a mapping's name and version, a feed's header). */
export const seedOf = (text: string): number => digestCells(0x5eed, [text]).hi

/** The digest as 16 hex digits (how it is stored: bytea). */
export const digestHex = (digest: Digest): string =>
  digest.hi.toString(16).padStart(8, "0") + digest.lo.toString(16).padStart(8, "0")

/**
 * A digest over raw bytes, fed in pieces (a record may span two chunks of a file): the
 * same two lanes as `digestCells`, one step per byte. `start(seed)`, then `update` for each
 * piece, then `finish` for the record's digest. Reused from record to record: no
 * allocation per record on the hot path.
 */
export class BytesDigest {
  private a = 0
  private b = 0
  private n = 0

  start(seed: number): void {
    this.a = (seed ^ 0x811c9dc5) | 0
    this.b = (seed ^ 0x9e3779b9) | 0
    this.n = 0
  }

  update(bytes: Uint8Array, from: number, to: number): void {
    let a = this.a
    let b = this.b
    for (let i = from; i < to; i++) {
      const k = bytes[i]!
      a = Math.imul(a ^ k, 0x01000193)
      b = Math.imul(b ^ k, 0x5bd1e995)
      b ^= b >>> 15
    }
    this.a = a
    this.b = b
    this.n += to - from
  }

  finish(): Digest {
    return { hi: fmix(this.a ^ this.n) >>> 0, lo: fmix(this.b ^ Math.imul(this.n, 0x27d4eb2d)) >>> 0 }
  }
}
