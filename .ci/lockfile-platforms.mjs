#!/usr/bin/env node
// Why this exists: the npm registry reachable from our build machines only serves the
// platform builds of native packages for the platforms it hosts. `npm install` therefore
// leaves other platforms' optional packages (rollup-darwin-*, msgpackr-extract-win32-*, ...)
// out of package-lock.json, and `npm ci` then refuses the lockfile as "out of sync".
// This script adds the missing optional entries with their os/cpu/libc constraints, so
// `npm ci` validates the lockfile and skips them as incompatible on this platform, exactly
// as it does with a lockfile written against the public registry.
// Run it after every `npm install` that changes dependencies: `npm run lock`.
import { readFileSync, writeFileSync } from "node:fs"

const lockPath = new URL("../package-lock.json", import.meta.url)
const lock = JSON.parse(readFileSync(lockPath, "utf8"))
const packages = lock.packages

const OS = ["android", "darwin", "freebsd", "linux", "win32", "openbsd", "openharmony", "netbsd", "sunos", "aix"]
const CPU = ["arm64", "arm", "x64", "ia32", "loong64", "ppc64", "riscv64", "s390x", "mips64el"]

const constraintsOf = (name) => {
  const parts = name.split("/").pop().split("-")
  const os = parts.find((p) => OS.includes(p))
  const cpu = parts.find((p) => CPU.includes(p))
  const libc = parts.includes("musl") ? "musl" : parts.includes("gnu") || parts.includes("gnueabihf") ? "glibc" : undefined
  return { os, cpu, libc }
}

let added = 0
for (const [path, entry] of Object.entries(packages)) {
  for (const [dep, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    const base = path === "" ? "" : `${path}/`
    const candidates = [`${base}node_modules/${dep}`, `node_modules/${dep}`]
    if (candidates.some((c) => packages[c])) continue
    const { os, cpu, libc } = constraintsOf(dep)
    if (!os || !cpu) continue // not a platform package: leave npm's judgement alone
    packages[`node_modules/${dep}`] = {
      version: spec.replace(/^[\^~=]/, ""),
      optional: true,
      os: [os],
      cpu: [cpu],
      ...(os === "linux" && libc ? { libc: [libc] } : {})
    }
    added++
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))))
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + "\n")
console.log(`lockfile-platforms: added ${added} optional platform entries`)
