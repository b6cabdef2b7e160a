import { NodeContext } from "@effect/platform-node"
import type { Console as ConsoleService } from "effect"
import { Console, Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { makeCli, rosterdTree } from "../../src/Cli/Cli.ts"
import { GROUPS } from "../../src/Cli/HelpText.ts"
import type { CommandNode } from "../../src/Cli/HelpTree.ts"
import { consoleOf } from "../../src/Cli/Output.ts"
import { Stdio } from "../../src/Cli/Stdio.ts"
import { ProcessEnv } from "../../src/Config/Environment.ts"
import { rosterd as rosterdProcess } from "../support/Cli.ts"
import { rosterd } from "../support/CliFixture.ts"

/**
 * `rosterd --help` reads like a well-kept Unix tool: a grouped overview, group and command
 * help with real descriptions and examples, 80 columns, colour only on a terminal and never
 * with NO_COLOR. In process through the CLI fixture (no terminal there), one test on a
 * terminal of its own, one process piped.
 */

const all = (node: CommandNode): ReadonlyArray<CommandNode> => [node, ...node.children.flatMap(all)]
const commands = all(rosterdTree()).filter((n) => n.path.length > 0)

/** Everything help may print, for the checks every page must pass. */
const pages = async () => {
  const argvs = [[], ["--help"], ...GROUPS.map((g) => [g.key, "--help"]), ...commands.map((c) => [...c.path, "--help"])]
  return Promise.all(argvs.map(async (argv) => ({ argv: argv.join(" "), result: await rosterd(argv, {}) })))
}

const ESC = "\x1b"

describe("rosterd --help", () => {
  it("every page fits 80 columns, has no escape codes without a terminal, no boilerplate, no repeated prefix", async () => {
    for (const { argv, result } of await pages()) {
      expect(result.code, argv).toBe(0)
      expect(result.stderr, argv).toBe("")
      for (const line of result.stdout.split("\n")) expect(line.length, `${argv}: ${line}`).toBeLessThanOrEqual(80)
      expect(result.stdout, argv).not.toContain(ESC)
      expect(result.stdout, argv).not.toMatch(/A user-defined piece of text|This setting is optional|A true or false value/)
      expect(result.stdout, argv).not.toMatch(/rosterd ([\w-]+) \1\b/)
    }
  })

  it("the overview groups every top-level command; each command has a purpose, described arguments and options, and an example", async () => {
    const overview = await rosterd(["--help"], {})
    expect(overview.stdout).not.toMatch(/^Other/m)
    for (const group of GROUPS) expect(overview.stdout).toContain(`(rosterd ${group.key} --help)`)
    for (const top of rosterdTree().children) expect(overview.stdout).toMatch(new RegExp(`^  ${top.path[0]} `, "m"))
    for (const command of commands) {
      const name = command.path.join(" ")
      expect(command.description, name).not.toBe("")
      for (const entry of [...command.args, ...command.options]) expect(entry.description, `${name} ${entry.label}`).not.toBe("")
      const help = (await rosterd([...command.path, "--help"], {})).stdout
      // A command named as a group (`districts`) shows the group, where the command is listed with its purpose.
      const group = GROUPS.find((g) => g.key === name)
      if (group === undefined) expect(help, name).toMatch(new RegExp(`^rosterd ${name}: `))
      else expect(help, name).toContain(`${group.title}: ${group.about}`)
      expect(help, name).toMatch(/^Examples:\n {2}(\S.* )?rosterd\b/m)
    }
  })

  it("snapshots: the overview, a group, a command with subcommands, a command", async () => {
    expect((await rosterd(["--help"], {})).stdout).toMatchSnapshot("rosterd --help")
    expect((await rosterd(["schedule", "--help"], {})).stdout).toMatchSnapshot("rosterd schedule --help")
    expect((await rosterd(["holds", "--help"], {})).stdout).toMatchSnapshot("rosterd holds --help")
    expect((await rosterd(["holds", "approve", "--help"], {})).stdout).toMatchSnapshot("rosterd holds approve --help")
  })

  it("`-h` and arguments after the command are help too; an unknown name is a usage error (2)", async () => {
    expect((await rosterd(["pause", "lincoln", "-h"], {})).stdout).toBe((await rosterd(["pause", "--help"], {})).stdout)
    expect((await rosterd(["--log-level", "debug", "pause", "--help"], {})).stdout).toBe((await rosterd(["pause", "--help"], {})).stdout)
    const unknown = await rosterd(["frobnicate", "--help"], {})
    expect(unknown.code).toBe(2)
    expect(unknown.stdout).toBe("")
    expect(unknown.stderr).toMatch(/^rosterd: no command or group "frobnicate"/)
  })

  it("usage errors, completions and --version are still @effect/cli's", async () => {
    const missing = await rosterd(["sync"], {})
    expect(missing.code).toBe(2)
    expect(missing.stderr + missing.stdout).toContain("Missing argument <district>")
    const completions = await rosterd(["--completions", "bash"], {})
    expect(completions.code).toBe(0)
    expect(completions.stdout).toContain("rosterd")
    expect(completions.stdout).toContain("holds")
    expect((await rosterd(["--version"], {})).stdout).toMatch(/0\.1\.0/)
  })

  it("colour on a terminal only, and never with NO_COLOR or TERM=dumb", async () => {
    const onTerminal = async (env: Record<string, string>) => {
      const out: Array<string> = []
      const unsafe = new Proxy({} as ConsoleService.UnsafeConsole, {
        get: (_target, key) => (key === "log" || key === "error" ? (...args: Array<unknown>) => void out.push(args.join(" ")) : () => undefined)
      })
      const host = Layer.mergeAll(
        NodeContext.layer,
        Layer.succeed(ProcessEnv, env),
        Layer.succeed(Stdio, { readInput: async () => "", inputIsTerminal: () => false, errorIsTerminal: () => true, outputIsTerminal: () => true, writeError: () => undefined }),
        Console.setConsole(consoleOf(unsafe))
      )
      const code = await Effect.runPromise(makeCli(host)(["node", "rosterd", "--help"]))
      expect(code).toBe(0)
      return out.join("\n")
    }
    expect(await onTerminal({})).toContain(`${ESC}[1mSyncing${ESC}[0m`)
    expect(await onTerminal({ NO_COLOR: "1" })).not.toContain(ESC)
    expect(await onTerminal({ TERM: "dumb" })).not.toContain(ESC)
    // NO_COLOR set but empty does not count (no-color.org).
    expect(await onTerminal({ NO_COLOR: "" })).toContain(ESC)
  })

  it("a piped rosterd process prints plain help that fits 80 columns", async () => {
    const piped = await rosterdProcess(["--help"], {})
    expect(piped.code).toBe(0)
    expect(piped.stdout).not.toContain(ESC)
    expect(Math.max(...piped.stdout.split("\n").map((l) => l.length))).toBeLessThanOrEqual(80)
    expect(piped.stdout).toMatch(/^Syncing \(rosterd syncing --help\)$/m)
  }, 120_000)
})
