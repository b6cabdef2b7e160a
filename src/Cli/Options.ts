import { Args, Options } from "@effect/cli"
import { defaultActor } from "../Audit/Audit.ts"

/** Arguments and options several commands take, defined once so they read (and `--help` shows them) alike. */

/** `<district>`: the district a command is about. */
export const districtArg = Args.text({ name: "district" }).pipe(Args.withDescription("the district id"))

/** `--json`: machine-readable output; `description` where it says more than "print JSON". */
export const jsonFlag = (description = "print JSON") => Options.boolean("json").pipe(Options.withDescription(description))
export const jsonOption = jsonFlag()

/** `--by <name>` where a command had none: who acts, by default the operating-system user. */
export const actorOption = Options.text("by").pipe(
  Options.withDescription("who does this (recorded in the audit log; default: the operating-system user)"),
  Options.withDefault(defaultActor())
)

/** `--by <name>` required: a decision someone must own (a hold, a review, a re-key). */
export const byOption = (description: string) => Options.text("by").pipe(Options.withDescription(description))
