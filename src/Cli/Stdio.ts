import { Context } from "effect"

/**
 * What commands use of the process's standard streams besides the Console: standard input
 * (a token or a credential piped in: `--token-stdin`, `--token-stdin` of set-credentials),
 * and standard error when it is a terminal (the progress line of a long sync, a hint that
 * the value is read from the keyboard).
 *
 * The process's own unless given: the CLI's in-process tests give the input text and no
 * terminal (test/support/CliFixture.ts).
 */
export interface StdioShape {
  /** Everything on standard input, up to its end. */
  readonly readInput: () => Promise<string>
  /** Whether standard input is a terminal: someone types the value. */
  readonly inputIsTerminal: () => boolean
  /** Whether standard error is a terminal (not a pipe or a log file): what a progress line needs. */
  readonly errorIsTerminal: () => boolean
  /** Whether standard output is a terminal: help colours its headings only then. Absent: not a terminal. */
  readonly outputIsTerminal?: () => boolean
  /** Writes to standard error as it is, beside the Console (a progress line, a prompt). */
  readonly writeError: (text: string) => void
}

export class Stdio extends Context.Reference<Stdio>()("rosterd/Stdio", {
  defaultValue: (): StdioShape => ({
    readInput: async () => {
      const chunks: Array<Buffer> = []
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks).toString("utf8")
    },
    inputIsTerminal: () => process.stdin.isTTY === true,
    errorIsTerminal: () => process.stderr.isTTY === true,
    outputIsTerminal: () => process.stdout.isTTY === true,
    writeError: (text) => void process.stderr.write(text)
  })
}) {}
