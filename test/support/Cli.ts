import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as NodePath from "node:path"

/** Runs the real `rosterd` CLI (the same entry as `npx rosterd`) in a child process. */
export const ROOT = NodePath.resolve(import.meta.dirname, "../..")
const entry = [NodePath.join(ROOT, "bin/rosterd.mjs")]

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/**
 * Where spawned processes keep their data (mail spool, development key) unless a test names
 * a place: never the checkout's own `.rosterd`, which `npm start` uses.
 */
const testDataDir = NodePath.join(Os.tmpdir(), `rosterd-test-data-${process.pid}`)
process.once("exit", () => Fs.rmSync(testDataDir, { recursive: true, force: true }))

/** Database settings a spawned rosterd only gets when a test gives them. */
const DATABASE_SETTINGS = new Set(["DATABASE_URL", "DATABASE_OWNER_URL", "DATABASE_ADMIN_URL"])

/** An environment for a spawned rosterd: no inherited DATABASE_*_URL/ROSTERD_* settings unless given. */
export const cleanEnv = (env: Record<string, string>): NodeJS.ProcessEnv => {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith("ROSTERD_") && !DATABASE_SETTINGS.has(key) && !key.startsWith("npm_"))
  )
  // ROSTERD_CSV_SETTLE_SECONDS: fixtures are written moments before a sync (a test of settling gives its own).
  return { ...base, NODE_NO_WARNINGS: "1", ROSTERD_DATA_DIR: testDataDir, ROSTERD_CSV_SETTLE_SECONDS: "0", ...env }
}

export const rosterd = (args: ReadonlyArray<string>, env: Record<string, string>, cwd = ROOT): Promise<CliResult> =>
  new Promise((resolve) => {
    execFile(process.execPath, [...entry, ...args], { env: cleanEnv(env), cwd, timeout: 90_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    })
  })

/** Runs the CLI with `input` on its standard input (e.g. a token for `--token-stdin`). */
export const rosterdWithInput = (args: ReadonlyArray<string>, env: Record<string, string>, input: string): Promise<CliResult> =>
  new Promise((resolve) => {
    const child = execFile(process.execPath, [...entry, ...args], { env: cleanEnv(env), cwd: ROOT, timeout: 90_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    })
    child.stdin!.end(input)
  })

/** Starts `rosterd daemon` in the background; stdout lines are collected. */
export const startDaemon = (env: Record<string, string>) => {
  const child: ChildProcess = spawn(process.execPath, [...entry, "daemon"], { env: cleanEnv(env), cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
  const lines: Array<string> = []
  const errors: Array<string> = []
  child.stdout!.on("data", (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter((l) => l.length > 0)))
  child.stderr!.on("data", (chunk: Buffer) => errors.push(chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return {
    child,
    lines,
    errors,
    exited,
    stop: async (signal: NodeJS.Signals = "SIGTERM") => {
      if (child.exitCode === null) child.kill(signal)
      return exited
    }
  }
}

/** Polls `probe` until it returns a value (not undefined) or the time is up. */
export const eventually = async <A>(probe: () => Promise<A | undefined>, timeoutMs = 60_000, everyMs = 250): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      lastError = error
    }
    await new Promise((r) => setTimeout(r, everyMs))
  }
  throw new Error(`timed out${lastError ? `: ${String(lastError)}` : ""}`)
}

/** A config file for a spawned rosterd. */
export const writeConfig = (dir: string, yaml: string) => {
  const path = NodePath.join(dir, "rosterd.yaml")
  Fs.writeFileSync(path, yaml)
  return path
}

/** A loopback port nothing listens on (yet): for a daemon's HTTP server or a fake service. */
export const freePort = () =>
  new Promise<number>((resolve) => {
    const server = Net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })
