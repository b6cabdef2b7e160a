import { Effect, Layer } from "effect"

/**
 * The process's signals, beyond what the runtime does with them (NodeRuntime.runMain: the
 * first SIGINT or SIGTERM interrupts the command, which for the daemon is its graceful
 * stop). Scoped: installed while a command runs, removed when it ends. Only a process has
 * them: main.ts provides this layer, the in-process tests do not.
 */

/**
 * A Ctrl-C reaches us more than once (from the terminal's process group, and relayed by npm
 * and tsx); without a listener, the second one would kill the process in the middle of its
 * graceful stop (before the embedded Postgres is shut down). The runtime handles the first
 * signal; repeats within a few seconds are ignored, a later one forces the exit.
 */
const RepeatedSignalsLive = Layer.scopedDiscard(
  Effect.acquireRelease(
    Effect.sync(() => {
      let firstSignalAt: number | undefined
      const onSignal = (signal: NodeJS.Signals) => {
        const now = Date.now()
        if (firstSignalAt === undefined) firstSignalAt = now
        else if (now - firstSignalAt > 3000) process.exit(signal === "SIGINT" ? 130 : 143)
      }
      process.on("SIGINT", onSignal)
      process.on("SIGTERM", onSignal)
      return onSignal
    }),
    (onSignal) =>
      Effect.sync(() => {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
      })
  )
)

/**
 * Under `npm start`, a SIGTERM sent to npm reaches only the `sh` that npm runs the script
 * with, which dies without passing it on: we would keep running as an orphan. So when our
 * parent goes away, we stop as if we had been sent SIGTERM ourselves.
 */
const ParentWatchdogLive = Layer.scopedDiscard(
  Effect.suspend(() => {
    if (process.env.npm_lifecycle_event === undefined) return Effect.void
    const parent = process.ppid
    return Effect.acquireRelease(
      Effect.sync(() =>
        setInterval(() => {
          if (process.ppid !== parent) process.kill(process.pid, "SIGTERM")
        }, 1000).unref()
      ),
      (timer) => Effect.sync(() => clearInterval(timer))
    )
  })
)

export const SignalsLive = Layer.merge(RepeatedSignalsLive, ParentWatchdogLive)
