import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { describe, expect, it } from "vitest"
import { ROOT } from "../support/Cli.ts"

/**
 * The deployment files: the systemd unit checked by systemd itself (`systemd-analyze
 * verify`, and its offline security assessment), the container build file by a Dockerfile
 * linter (dockerfile-utils, the parser behind VS Code's Docker support). Container builds
 * cannot run on the test machines; what is checked here is what can be.
 */
const unitPath = NodePath.join(ROOT, "deploy/rosterd.service")
const dockerfilePath = NodePath.join(ROOT, "deploy/Dockerfile")
const hasSystemdAnalyze = spawnSync("systemd-analyze", ["--version"]).status === 0

/** `Key=value` lines of a unit file section. */
const directives = (text: string) =>
  text.split("\n").filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const)

describe("the systemd unit", () => {
  const unit = Fs.readFileSync(unitPath, "utf8")
  const keys = new Map(directives(unit))

  it("runs as a dedicated user, restarts on failure, reads an environment file, migrates before starting, and is hardened", () => {
    expect(keys.get("User")).toBe("rosterd")
    expect(keys.get("Restart")).toBe("on-failure")
    expect(keys.get("EnvironmentFile")).toBe("/etc/rosterd/rosterd.env")
    expect(keys.get("ExecStartPre")).toMatch(/bin\/rosterd\.mjs migrate$/)
    expect(keys.get("ExecStart")).toMatch(/bin\/rosterd\.mjs daemon$/)
    for (const [key, value] of [["NoNewPrivileges", "yes"], ["ProtectSystem", "strict"], ["PrivateTmp", "yes"], ["ProtectHome", "yes"], ["KillMode", "mixed"]]) {
      expect(keys.get(key!), key).toBe(value)
    }
    expect(keys.get("ReadWritePaths")).toBe("/var/lib/rosterd")
    // Longer than the daemon's default grace period (60 s) plus stopping the embedded Postgres.
    expect(Number.parseInt(keys.get("TimeoutStopSec")!)).toBeGreaterThan(60)
  })

  it.skipIf(!hasSystemdAnalyze)("passes systemd-analyze verify, and its security exposure is low", () => {
    const verify = spawnSync("systemd-analyze", ["verify", unitPath], { encoding: "utf8" })
    const problems = `${verify.stdout}${verify.stderr}`.split("\n").filter((l) => /Unknown|Invalid|Failed|error|not/i.test(l))
    expect(problems).toEqual([])
    const security = spawnSync("systemd-analyze", ["security", "--offline=yes", "--no-pager", unitPath], { encoding: "utf8" })
    const exposure = /Overall exposure level for rosterd\.service: ([\d.]+)/.exec(`${security.stdout}${security.stderr}`)
    expect(exposure).not.toBeNull()
    expect(Number(exposure![1])).toBeLessThanOrEqual(3)
  })

  it("systemd-analyze would catch a mistake (the check can fail)", { skip: !hasSystemdAnalyze }, () => {
    const bad = NodePath.join(Fs.mkdtempSync("/tmp/rosterd-unit-"), "rosterd.service")
    Fs.writeFileSync(bad, unit.replace("NoNewPrivileges=yes", "NoNewPrivilegs=yes"))
    const verify = spawnSync("systemd-analyze", ["verify", bad], { encoding: "utf8" })
    expect(`${verify.stdout}${verify.stderr}`).toMatch(/Unknown key 'NoNewPrivilegs'/)
    Fs.rmSync(NodePath.dirname(bad), { recursive: true })
  })
})

describe("the container build file", () => {
  /** The linter's findings (it exits non-zero when there are errors). */
  const lint = (path: string) => {
    const result = spawnSync(process.execPath, [NodePath.join(ROOT, "node_modules/dockerfile-utils/bin/dockerfile-utils"), "lint", path], { encoding: "utf8" })
    return `${result.stdout}${result.stderr}`
  }
  const text = Fs.readFileSync(dockerfilePath, "utf8")

  it("is multi-stage, runs as a non-root user, checks /healthz, keeps data in a volume, and lints clean", () => {
    expect(text.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2)
    expect(text).toMatch(/^USER node$/m)
    expect(text).toMatch(/^HEALTHCHECK [\s\S]*\/healthz/m)
    expect(text).toMatch(/^VOLUME \["\/var\/lib\/rosterd"\]$/m)
    expect(text).toMatch(/npm ci --omit=dev/)
    expect(lint(dockerfilePath).trim()).toBe("")
  })

  it("the linter would catch a mistake (the check can fail)", () => {
    const bad = NodePath.join(Fs.mkdtempSync("/tmp/rosterd-docker-"), "Dockerfile")
    Fs.writeFileSync(bad, text.replace("HEALTHCHECK --interval=30s", "HEALTHCHECK --interva=30s"))
    expect(lint(bad)).toMatch(/Unknown flag: interva/)
    Fs.rmSync(NodePath.dirname(bad), { recursive: true })
  })
})
