import { assert, layer } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { DEFERRED_EXIT_CODE } from "../../src/Cli/Exit.ts"
import { writeConfig } from "../support/Cli.ts"
import { rosterd } from "../support/CliFixture.ts"
import { TestDatabaseUrl } from "../support/Database.ts"
import { assertBoundedMemory, assertNoLeak, assertNothingApplied, withPeakMemory } from "../support/Hostile.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { expectDeferred, expectRefused, personal, syncNow, syncWith, withSyncedDistrict } from "./CsvHostile.ts"

/**
 * Hostile drop folders through a real sync: links, special files, a folder that is not one,
 * and a set still being written. Inside a set nothing is followed and only regular files are
 * read; the district's own path (the operator's) may be a link. A set still being written is
 * not read: the run is `deferred` — no failure, nothing applied — and tried again later.
 */

/** Waits for the set to settle as production does (the suite's default does not). */
const settling = syncWith({ "rosterd.csv.settleSeconds": "60", "rosterd.csv.settleRecheckMillis": "400" })

/** Moves every file of the folder (and the folder) `seconds` into the past. */
const age = (dir: string, seconds: number) => {
  const then = new Date(Date.now() - seconds * 1000)
  for (const name of Fs.readdirSync(dir)) Fs.utimesSync(NodePath.join(dir, name), then, then)
  Fs.utimesSync(dir, then, then)
}

const PASSWD_LINE = /^root:x:0:0:/

layer(SyncTestLayer, { timeout: "300 seconds", excludeTestServices: true })("hostile: drop folders", (it) => {
  it.effect("users.csv a symbolic link to /etc/passwd → Unsafe, the link not followed (nothing of the target read)", () =>
    withSyncedDistrict("passwd", (set) =>
      Effect.gen(function*() {
        Fs.rmSync(NodePath.join(set.dir, "users.csv"))
        Fs.symlinkSync("/etc/passwd", NodePath.join(set.dir, "users.csv"))
        assert.match(Fs.readFileSync("/etc/passwd", "utf8"), PASSWD_LINE)
        yield* expectRefused(set, { reason: "Unsafe", names: ["users.csv", "a symbolic link"], leaks: ["root:x:0", "/bin/"] })
      })))

  it.effect("users.csv a symbolic link to another district's users.csv → Unsafe (no reading across drops)", () =>
    withSyncedDistrict("crosslink", (set) =>
      Effect.gen(function*() {
        const other = NodePath.join(set.scratch, "other-district")
        Fs.mkdirSync(other)
        Fs.writeFileSync(NodePath.join(other, "users.csv"), Fs.readFileSync(NodePath.join(set.dir, "users.csv"), "utf8").replaceAll("Tess", "Otto"))
        Fs.rmSync(NodePath.join(set.dir, "users.csv"))
        Fs.symlinkSync(NodePath.join(other, "users.csv"), NodePath.join(set.dir, "users.csv"))
        yield* expectRefused(set, { reason: "Unsafe", names: ["users.csv", "a symbolic link"], leaks: ["Otto"] })
      })))

  it.effect("manifest.csv a symbolic link → Unsafe, refused before the set is read", () =>
    withSyncedDistrict("manifestlink", (set) =>
      Effect.gen(function*() {
        const real = NodePath.join(set.scratch, "manifest.csv")
        Fs.renameSync(NodePath.join(set.dir, "manifest.csv"), real)
        Fs.symlinkSync(real, NodePath.join(set.dir, "manifest.csv"))
        yield* expectRefused(set, { reason: "Unsafe", names: ["manifest.csv", "a symbolic link"] })
      })))

  it.effect("users.csv a directory → Unsafe (a directory, not a regular file)", () =>
    withSyncedDistrict("isdir", (set) =>
      Effect.gen(function*() {
        Fs.rmSync(NodePath.join(set.dir, "users.csv"))
        Fs.mkdirSync(NodePath.join(set.dir, "users.csv"))
        yield* expectRefused(set, { reason: "Unsafe", names: ["users.csv", "a directory"] })
      })))

  it.effect("users.csv a FIFO nobody writes to → Unsafe at once, the run does not wait on it", () =>
    withSyncedDistrict("fifo", (set) =>
      Effect.gen(function*() {
        Fs.rmSync(NodePath.join(set.dir, "users.csv"))
        execFileSync("mkfifo", [NodePath.join(set.dir, "users.csv")])
        yield* expectRefused(set, { reason: "Unsafe", names: ["users.csv", "a FIFO"] })
      })))

  it.effect("the district's path a FIFO instead of a folder or zip → Unsafe, naming what to give", () =>
    withSyncedDistrict("pathfifo", (set) =>
      Effect.gen(function*() {
        Fs.rmSync(set.dir, { recursive: true })
        execFileSync("mkfifo", [set.dir])
        yield* expectRefused(set, { reason: "Unsafe", names: ["is a FIFO (named pipe)", "give a folder or a zip file"] })
      })))

  it.effect("the district's path a symbolic link to the set (a release link the operator switches) → read as the set: nothing changes", () =>
    withSyncedDistrict("toplink", (set) =>
      Effect.gen(function*() {
        // The district was added with `path` = set.dir; make set.dir the link, to a copy.
        const release = NodePath.join(set.scratch, "release-1")
        Fs.cpSync(set.dir, release, { recursive: true })
        Fs.rmSync(set.dir, { recursive: true })
        Fs.symlinkSync(release, set.dir)
        const { exit, grewMiB } = yield* withPeakMemory(assertNothingApplied(syncNow(set.id)))
        assertBoundedMemory(grewMiB)
        const inner = Exit.isSuccess(exit) ? exit.value : undefined
        const summary = inner !== undefined && Exit.isSuccess(inner) ? inner.value : undefined
        assert.strictEqual(summary?.status, "succeeded")
        assert.deepStrictEqual(summary?.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      })))

  it.effect("a set with a file written just now (mtime now) → deferred: no failure, nothing applied, a note naming the file; read once settled", () =>
    withSyncedDistrict("writing", (set) =>
      Effect.gen(function*() {
        age(set.dir, 300)
        Fs.appendFileSync(NodePath.join(set.dir, "enrollments.csv"), "e-6,,,cls-2,org-s1,s-1,student,,,\n")
        const deferred = yield* expectDeferred(set, settling, [
          "enrollments.csv",
          /modified \d+ s ago/,
          "rosterd.csv.settleSeconds: 60",
          /tried again in \d+ s/
        ])
        assert.isAbove(deferred.retryAfterMs!, 50_000)
        // Settled (its time moved back, as a minute's wait would), it is read.
        age(set.dir, 300)
        const settled = yield* syncNow(set.id).pipe(Effect.provide(settling))
        assert.strictEqual(settled.status, "succeeded")
        assert.strictEqual(settled.counts.enrollments.created, 1)
      })))

  it.effect("users.csv growing between two looks (its time kept old, as a writer with a slow clock leaves it) → deferred", () =>
    withSyncedDistrict("growing", (set) =>
      Effect.gen(function*() {
        const users = NodePath.join(set.dir, "users.csv")
        age(set.dir, 300)
        const old = Fs.statSync(users).mtime
        let n = 0
        const writer = setInterval(() => {
          n += 1
          Fs.appendFileSync(users, `g-${n},,,true,org-s1,student,,,Gus,Grow,,,,,,,07,\n`)
          Fs.utimesSync(users, old, old)
          Fs.utimesSync(set.dir, old, old)
        }, 50)
        yield* expectDeferred(set, settling, ["users.csv", /changed size \(\d+ → \d+ bytes\) between two looks 400 ms apart|was modified/]).pipe(
          Effect.ensuring(Effect.sync(() => clearInterval(writer)))
        )
      })))

  it.effect("a file dated ahead of this host's clock (clocks disagree) → deferred, saying so", () =>
    withSyncedDistrict("future", (set) =>
      Effect.gen(function*() {
        age(set.dir, 300)
        const ahead = new Date(Date.now() + 30_000)
        Fs.utimesSync(NodePath.join(set.dir, "classes.csv"), ahead, ahead)
        yield* expectDeferred(set, settling, ["classes.csv", /ahead of this host's clock/])
      })))

  it.effect("a zip still being uploaded (written just now) → deferred, the zip not opened", () =>
    withSyncedDistrict("zipwriting", (set) =>
      Effect.gen(function*() {
        // Half an upload: the zip's end record is not there yet.
        const whole = Fs.readFileSync(set.path)
        Fs.writeFileSync(set.path, whole.subarray(0, whole.length >> 1))
        yield* expectDeferred(set, settling, ["set.zip", /modified \d+ s ago/])
      }), { zip: true }))

  it.effect("rosterd sync on a set still being written → exit 75, 'deferred' and the note; status --json: deferred, not failing", () =>
    withSyncedDistrict("clideferred", (set) =>
      Effect.gen(function*() {
        const db = yield* TestDatabaseUrl
        Fs.appendFileSync(NodePath.join(set.dir, "users.csv"), "s-9,,,true,org-s1,student,,,Nia,Nine,,,,,,,07,\n")
        const env = {
          DATABASE_URL: db.url,
          ROSTERD_CONFIG: writeConfig(set.scratch, "rosterd:\n  logLevel: warning\n"),
          ROSTERD_CSV_SETTLE_SECONDS: "60"
        }
        const synced = yield* Effect.promise(() => rosterd(["sync", set.id], env))
        assert.strictEqual(synced.code, DEFERRED_EXIT_CODE, synced.stderr)
        assert.match(synced.stdout, new RegExp(`^${set.id}: run \\d+ deferred — nothing was applied`))
        assert.match(synced.stdout, /note: the folder .* is still being written: users\.csv was modified \d+ s ago/)
        const status = JSON.parse((yield* Effect.promise(() => rosterd(["status", set.id, "--json"], env))).stdout)
        assert.strictEqual(status[0].failing, false)
        assert.strictEqual(status[0].lastRun.status, "succeeded")
        assert.match(status[0].deferred.note, /users\.csv was modified/)
        assertNoLeak(synced.stdout + synced.stderr + JSON.stringify(status), [...personal(set.domain), "Nia"], "the CLI's output")
      })))
})
