import { digestCells } from "../Domain/Digest.ts"
import { BlockedBloom } from "./BlockedBloom.ts"

/**
 * The lines of a feed decoded whole whose key — its source ID, or an enrollment's class and
 * user — an earlier line of the feed may have had: what the duplicate checks need to look
 * at (Findings.ts `checkStaged`). Taken by the staging encoder as each row goes to COPY
 * (Staging.ts), from the very values staged.
 *
 * Why: every row of a first sync (or of a kind compared in full) is decoded, and the
 * duplicate checks grouped every one of them by source ID, and enrollments again by class
 * and user: two aggregates over 837,000 staged enrollments at 100,000 students, ten million
 * at 1.2 million. A repeated key has a second occurrence, and the filter reports it: the
 * checks then group only the rows sharing a key with a reported line, and find the same
 * groups. (The first occurrence is not reported; the checks find it by its key.)
 *
 * Blocked Bloom filters (BlockedBloom.ts) at 16 bits per key, in a chain that doubles as it
 * fills (from 65,536 keys): a key is looked for in every filter and added to the newest.
 * No repeat is missed, and a line reported is only checked. A key is looked for in every
 * filter of the chain, so false alarms grow with its length: 0.8 % of the lines at 837,000
 * enrollments (two keys each), 1.5 % at ten million. Memory: about 32 bits per key all
 * told (4 MB at 837,000 enrollments; 67 MB at ten million, freed once the feed is staged).
 * Past `cap` lines (`SUSPECTS_LISTED`) it gives up (`lines` null), and the checks read
 * every row as before.
 *
 * Keys are hashed by UTF-16 unit (Domain/Digest.ts). Two staged values that Postgres
 * compares equal are the same JavaScript string: the value guard only stages usable IDs
 * (src/Domain/Values.ts: no lone surrogate, which UTF-8 would turn into U+FFFD), and
 * `text` equality is byte equality.
 */
const BITS_PER_KEY = 16

/**
 * At most this many lines are listed for the checks (an array of 8 MB, and the checks'
 * parameter). 100,000 was too few: ten million enrollments report about 154,000 lines,
 * and the 1.2M-student bench's checks then grouped every row (14.3 + 16.7 s).
 */
export const SUSPECTS_LISTED = 1_000_000
const FIRST_CAPACITY = 65_536

/** Seeds of the two keys, so a source ID never matches a class and user. */
const ID_SEED = 0x1d5eed
const PAIR_SEED = 0xba1275

export class RepeatedKeys {
  private readonly filters: Array<BlockedBloom> = [new BlockedBloom(FIRST_CAPACITY, BITS_PER_KEY)]
  private room = FIRST_CAPACITY
  private found: Array<number> | null = []
  private readonly one: Array<string> = [""]
  private readonly two: Array<string> = ["", ""]

  constructor(private readonly cap: number) {}

  /** A staged row's keys: its source ID, and an enrollment's class and user (null: none). */
  add(line: number, sourceId: string | null, classSourceId: string | null = null, userSourceId: string | null = null): void {
    let repeated = false
    if (sourceId !== null) {
      this.one[0] = sourceId
      repeated = this.note(digestCells(ID_SEED, this.one))
    }
    if (classSourceId !== null && userSourceId !== null) {
      this.two[0] = classSourceId
      this.two[1] = userSourceId
      repeated = this.note(digestCells(PAIR_SEED, this.two)) || repeated
    }
    if (!repeated || this.found === null) return
    if (this.found.length < this.cap) this.found.push(line)
    else this.found = null
  }

  /** The lines that may repeat an earlier line's key; null when there were more than `cap`. */
  get lines(): ReadonlyArray<number> | null {
    return this.found
  }

  private note({ hi, lo }: { readonly hi: number; readonly lo: number }): boolean {
    if (this.room === 0) {
      const capacity = FIRST_CAPACITY * 2 ** this.filters.length
      this.filters.push(new BlockedBloom(capacity, BITS_PER_KEY))
      this.room = capacity
    }
    this.room -= 1
    const newest = this.filters.length - 1
    if (this.filters[newest]!.add(hi, lo)) return true
    for (let i = 0; i < newest; i++) if (this.filters[i]!.has(hi, lo)) return true
    return false
  }
}
