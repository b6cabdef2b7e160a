import { ValidationError } from "@effect/cli"
import { Cause, Exit, Option, Schema } from "effect"
import { describeFailure } from "../Domain/Failure.ts"
import { terminalText } from "./Output.ts"

/**
 * How a command's end becomes the process's: an exit code, and at most one line on stderr.
 *
 * | end | code | stderr |
 * | --- | --- | --- |
 * | success | 0 | — |
 * | a usage error (unknown command or option, bad value) | 2 | the CLI has already printed what was wrong |
 * | `rosterd sync` deferred (the source is not ready) | 75 (EX_TEMPFAIL, "try again later") | — (stdout says why) |
 * | interrupted (SIGINT, SIGTERM: the daemon's graceful stop) | 0 | — |
 * | any other failure (`rosterd doctor` with a failed check too) | 1 | `rosterd: <reason>` |
 *
 * The reason is `describeFailure`'s: a tagged error's message, a database error without the
 * values it may quote; escaped for the terminal, like everything commands print.
 */

/** `rosterd sync`'s exit code for a deferred run (sysexits' EX_TEMPFAIL). */
export const DEFERRED_EXIT_CODE = 75

/**
 * `rosterd sync` ended with a deferred run: not a failure (nothing was applied; the daemon
 * tries again by itself), but a script must be able to tell, so the process exits 75.
 */
export class SyncDeferred extends Schema.TaggedError<SyncDeferred>()("SyncDeferred", { runId: Schema.Number }) {
  override get message() {
    return `run ${this.runId} deferred: the source is not ready`
  }
}

export interface CliExit {
  readonly code: number
  /** The line for stderr, when there is one. */
  readonly line: string | undefined
}

export const cliExit = (exit: Exit.Exit<unknown, unknown>): CliExit => {
  if (Exit.isSuccess(exit)) return { code: 0, line: undefined }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    if (ValidationError.isValidationError(failure.value)) return { code: 2, line: undefined }
    if (failure.value instanceof SyncDeferred) return { code: DEFERRED_EXIT_CODE, line: undefined }
  }
  if (Cause.isInterruptedOnly(exit.cause)) return { code: 0, line: undefined }
  return { code: 1, line: `rosterd: ${terminalText(describeFailure(exit.cause).message)}` }
}
