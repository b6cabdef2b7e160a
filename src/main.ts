import { ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect, Option } from "effect"
import { runCli } from "./Cli/Cli.ts"
import { terminalText } from "./Cli/Output.ts"
import { describeFailure } from "./Domain/Failure.ts"

/**
 * Entry: argv → CLI → runtime. A failure prints one line (`rosterd: <reason>`) on stderr and
 * exits 1; a usage error exits 2 (the CLI has already printed what was wrong).
 */
/**
 * A Ctrl-C reaches us more than once (from the terminal's process group, and relayed by npm
 * and tsx); without a listener, the second one would kill the process in the middle of its
 * graceful stop (before the embedded Postgres is shut down). The runtime handles the first
 * signal; repeats within a few seconds are ignored, a later one forces the exit.
 */
let firstSignalAt: number | undefined
const onRepeatedSignal = (signal: NodeJS.Signals) => {
  const now = Date.now()
  if (firstSignalAt === undefined) firstSignalAt = now
  else if (now - firstSignalAt > 3000) process.exit(signal === "SIGINT" ? 130 : 143)
}
process.on("SIGINT", onRepeatedSignal)
process.on("SIGTERM", onRepeatedSignal)

/**
 * Under `npm start`, a SIGTERM sent to npm reaches only the `sh` that npm runs the script
 * with, which dies without passing it on: we would keep running as an orphan. So when our
 * parent goes away, we stop as if we had been sent SIGTERM ourselves.
 */
if (process.env.npm_lifecycle_event !== undefined) {
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, "SIGTERM")
  }, 1000).unref()
}

runCli(process.argv).pipe(
  Effect.catchAllCause((cause) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && ValidationError.isValidationError(failure.value)) {
      return Effect.sync(() => {
        process.exitCode = 2
      })
    }
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    return Console.error(`rosterd: ${terminalText(describeFailure(cause).message)}`).pipe(
      Effect.zipRight(Effect.sync(() => {
        process.exitCode = 1
      }))
    )
  }),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
