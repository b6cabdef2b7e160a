import { Cause, Option } from "effect"

/** A one-line, PII-free reason for the run record and the CLI. */
export const describeFailure = (cause: Cause.Cause<unknown>): { reason: string; message: string } => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value as { _tag?: string; reason?: string; message?: string; where?: string; cause?: unknown }
    if (error._tag === "ProviderError") return { reason: error.reason ?? "Provider", message: `${error.where ?? ""}${error.message}` }
    if (error._tag === "SqlError") {
      const inner = error.cause instanceof Error ? `: ${error.cause.message}` : ""
      return { reason: "Database", message: `${error.message}${inner}` }
    }
    return { reason: error._tag ?? "Error", message: error.message ?? String(error) }
  }
  if (Cause.isInterruptedOnly(cause)) return { reason: "Interrupted", message: "the run was interrupted (shutdown)" }
  const defect = Cause.dieOption(cause)
  return {
    reason: "Defect",
    message: Option.match(defect, {
      onNone: () => "unexpected failure",
      onSome: (d) => (d instanceof Error ? d.message : String(d))
    })
  }
}
