import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { makeCli } from "./Cli/Cli.ts"
import { SignalsLive } from "./Cli/Signals.ts"
import { Stdio } from "./Cli/Stdio.ts"
import { ProcessEnv } from "./Config/Environment.ts"

/**
 * Entry: argv → the CLI over this process → its exit code (src/Cli/Exit.ts: 0, 1 with one
 * line `rosterd: <reason>` on stderr, 2 for a usage error, 75 for a deferred sync).
 */

/** This process: its environment and standard streams, Node's platform, and its signals. */
const ProcessLive = Layer.mergeAll(
  NodeContext.layer,
  Layer.succeed(ProcessEnv, process.env),
  Layer.succeed(Stdio, Stdio.defaultValue()),
  SignalsLive
)

makeCli(ProcessLive)(process.argv).pipe(
  Effect.flatMap((code) =>
    Effect.sync(() => {
      process.exitCode = code
    })
  ),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
