import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { rosterd as rosterdProcess, rosterdWithInput as rosterdProcessWithInput } from "../support/Cli.ts"
import { cliFixture } from "../support/CliFixture.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * What only a real `rosterd` process shows: the exit codes as the shell sees them through
 * bin/rosterd.mjs and main.ts (0; 1 with exactly one `rosterd: <reason>` line on stderr; 2
 * for a usage error; 75 for a deferred sync), and a token read from the process's own
 * standard input. Everything else about commands is tested in process
 * (test/support/CliFixture.ts), with the same exit-code mapping (src/Cli/Exit.ts).
 */
describe("rosterd as a process", () => {
  const cli = cliFixture()
  const districtDir = NodePath.join(cli.work.dir, "small")

  beforeAll(async () => {
    writeSmallDistrict(districtDir)
    expect((await cli.rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", districtDir])).code).toBe(0)
  })

  it("exits 0 on success, 1 with one `rosterd:` line on a failure, 2 on a usage error", async () => {
    const migrated = await rosterdProcess(["migrate"], cli.env)
    expect(migrated).toEqual({ code: 0, stdout: "the database is up to date\n", stderr: "" })

    const missing = await rosterdProcess(["status", "nope"], cli.env)
    expect({ code: missing.code, stdout: missing.stdout }).toEqual({ code: 1, stdout: "" })
    expect(missing.stderr).toBe(`rosterd: no district "nope" (see \`rosterd district list\`)\n`)

    const unknown = await rosterdProcess(["frobnicate"], cli.env)
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("Invalid subcommand for rosterd")
  })

  it("exits 75 when the sync is deferred (the set is still being written), having printed why", async () => {
    Fs.appendFileSync(NodePath.join(districtDir, "users.csv"), "s-9,,,true,org-s1,student,,,Nia,Nine,,,,,,,07,\n")
    const deferred = await rosterdProcess(["sync", "small"], { ...cli.env, ROSTERD_CSV_SETTLE_SECONDS: "60" })
    expect({ code: deferred.code, stderr: deferred.stderr }).toEqual({ code: 75, stderr: "" })
    expect(deferred.stdout).toMatch(/^small: run \d+ deferred — nothing was applied; the source is not ready/)
  })

  it("reads a token from its standard input, and never prints it back", async () => {
    const token = "not-a-token-7f3a9c21d0e4b6a8"
    const refused = await rosterdProcessWithInput(["accounts", "confirm", "--token-stdin"], cli.env, `${token}\n`)
    // Refused by the database, so it was read: a token missing from stdin is "no token in standard input".
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 1, stderr: "rosterd: activation refused: unknown activation token\n" })
    expect(refused.stdout + refused.stderr).not.toContain(token)
  })
})
