import { Args, type Command, HelpDoc, Options, Usage } from "@effect/cli"
import type { Span } from "@effect/cli/HelpDoc/Span"

/**
 * The command tree as help reads it: each command's name, the purpose its own
 * `Command.withDescription` gives, its arguments and options (names, placeholders, what
 * `withDescription` says of them) and its subcommands. Read from the @effect/cli descriptor
 * (pinned: 0.77.2) — the descriptor's instructions are walked by their `_tag`, the options'
 * and arguments' help through the public `getHelp`/`getUsage` — so help never drifts from
 * what the parser accepts. test/Cli/Help.test.ts snapshots the result.
 */

export interface HelpEntry {
  /** As shown: `--limit <n>`, `-b, --by <name>`, `<district>`. */
  readonly label: string
  /** The option's or argument's own description, without @effect/cli's type boilerplate; "" when none. */
  readonly description: string
  /** `--limit`, `district`: the key help texts are looked up by. */
  readonly key: string
}

export interface CommandNode {
  /** Names from the root's child on: `["holds", "approve"]`. */
  readonly path: ReadonlyArray<string>
  readonly description: string
  /** Arguments and options as one usage fragment: `<run> --by <name> [--reason <text>]`. */
  readonly usage: string
  readonly args: ReadonlyArray<HelpEntry>
  readonly options: ReadonlyArray<HelpEntry>
  readonly children: ReadonlyArray<CommandNode>
}

/** The descriptor's instructions (internal to @effect/cli, stable across its 0.x line). */
type Instruction =
  | { readonly _tag: "Standard"; readonly name: string; readonly description: HelpDoc.HelpDoc; readonly options: Options.Options<unknown>; readonly args: Args.Args<unknown> }
  | { readonly _tag: "GetUserInput"; readonly name: string; readonly description: HelpDoc.HelpDoc }
  | { readonly _tag: "Map"; readonly command: Instruction }
  | { readonly _tag: "Subcommands"; readonly parent: Instruction; readonly children: ReadonlyArray<Instruction> }

export const spanText = (span: Span): string => {
  switch (span._tag) {
    case "Text":
      return span.value
    case "URI":
      return span.value
    case "Sequence":
      return spanText(span.left) + spanText(span.right)
    case "Strong":
    case "Weak":
    case "Highlight":
      return spanText(span.value)
  }
}

/** Paragraphs of a help document as plain text. */
const paragraphs = (doc: HelpDoc.HelpDoc): ReadonlyArray<string> => {
  switch (doc._tag) {
    case "Empty":
      return []
    case "Header":
    case "Paragraph":
      return [spanText(doc.value)]
    case "Sequence":
      return [...paragraphs(doc.left), ...paragraphs(doc.right)]
    case "Enumeration":
      return doc.elements.flatMap(paragraphs)
    case "DescriptionList":
      return doc.definitions.flatMap(([span, d]) => [spanText(span), ...paragraphs(d)])
  }
}

/** @effect/cli's own sentences about a value's type and optionality: help says these once, in the usage line. */
const BOILERPLATE = [
  /^A true or false value\.$/,
  /^This setting is optional\.$/,
  /^An integer\.$/,
  /^A floating point number\.$/,
  /^A user-defined piece of text\.$/,
  /^One of the following: /,
  /^A date without a time-zone/,
  /^This option can be repeated/,
  /^A (file|directory|path)/,
  /^This value may be a /,
  /^An? .* value\.$/
]

const own = (texts: ReadonlyArray<string>) => texts.filter((t) => t.trim() !== "" && !BOILERPLATE.some((re) => re.test(t.trim()))).join(" ")

/** The placeholder @effect/cli gives a value (`integer`, `text`, `a | b`) as a reader expects it. */
const placeholder = (name: string, type: string) => {
  const t = type.trim()
  if (t === "") return ""
  // A short choice reads best in place (`--format table|json`); a long one is named, its choices listed with the option.
  if (t.includes("|")) return t.length <= 40 ? ` ${t.replace(/\s*\|\s*/g, "|")}` : ` <${name.replace(/^-+/, "")}>`
  if (t === "integer" || t === "float") return " <n>"
  if (t === "date") return " <yyyy-mm-dd>"
  const bare = name.replace(/^-+/, "")
  if (/-file$|^file$|^out$|^map$|^path$/.test(bare)) return " <file>"
  if (/-env$/.test(bare)) return " <var>"
  if (/-url$/.test(bare)) return " <url>"
  if (bare === "by" || bare === "name") return " <name>"
  if (bare === "reason") return " <text>"
  return ` <${bare}>`
}

/** `(-b, --by text)` → `-b, --by <by>`; `--limit integer` → `--limit <n>`. */
const optionLabel = (raw: string) => {
  const text = raw.replace(/^\(/, "").replace(/\)$/, "").trim()
  const match = /^((?:-[A-Za-z0-9], )*--[A-Za-z0-9-]+)(.*)$/.exec(text)
  if (match === null) return { label: text, key: text, choices: "" }
  const names = match[1]!
  const long = names.split(", ").find((n) => n.startsWith("--")) ?? names
  const type = (match[2] ?? "").trim()
  const label = names + placeholder(long, type)
  return { label, key: long, choices: type.includes("|") && !label.includes("|") ? type.split(/\s*\|\s*/).join(", ") : "" }
}

/** The (term, description) pairs of a help document, in order (its description lists, however nested). */
const definitionsOf = (doc: HelpDoc.HelpDoc): ReadonlyArray<readonly [Span, HelpDoc.HelpDoc]> =>
  doc._tag === "Sequence"
    ? [...definitionsOf(doc.left), ...definitionsOf(doc.right)]
    : doc._tag === "DescriptionList"
    ? doc.definitions
    : []

const optionEntries = (options: Options.Options<unknown>): ReadonlyArray<HelpEntry> =>
  definitionsOf(Options.getHelp(options)).map(([span, description]) => {
    const { choices, key, label } = optionLabel(spanText(span))
    const text = own(paragraphs(description))
    return { label, key, description: choices === "" ? text : `${text}${text === "" ? "" : " "}(one of: ${choices})` }
  })

const argEntries = (args: Args.Args<unknown>): ReadonlyArray<HelpEntry> =>
  definitionsOf(Args.getHelp(args)).map(([span, description]) => {
    const label = spanText(span).trim()
    return { label, key: label.replace(/^<|>(\.\.\.)?$/g, "").replace(/\.\.\.$/, ""), description: own(paragraphs(description)) }
  })

/** A usage fragment in the forms help uses: `[--limit <n>]`, `--by <by>`, `<district>`. */
const usageText = (usage: Usage.Usage) =>
  paragraphs(Usage.getHelp(usage)).join(" ")
    .replace(/\(([^()]*?--[A-Za-z0-9-]+)( [^()]*)?\)/g, (_m, names: string, type: string | undefined) => optionLabel(`${names}${type ?? ""}`).label)
    .replace(/(--[A-Za-z0-9-]+)( (?:integer|float|text|date|[a-z0-9.-]+(?: \| [a-z0-9.-]+)+))(?=[\]\s)]|$)/g, (_m, name: string, type: string) => name + placeholder(name, type))
    .replace(/\s+/g, " ")
    .trim()

const standardOf = (instruction: Instruction): Extract<Instruction, { _tag: "Standard" | "GetUserInput" }> => {
  switch (instruction._tag) {
    case "Map":
      return standardOf(instruction.command)
    case "Subcommands":
      return standardOf(instruction.parent)
    default:
      return instruction
  }
}

const childrenOf = (instruction: Instruction): ReadonlyArray<Instruction> =>
  instruction._tag === "Map" ? childrenOf(instruction.command) : instruction._tag === "Subcommands" ? instruction.children : []

const nodeOf = (instruction: Instruction, parent: ReadonlyArray<string>): CommandNode => {
  const standard = standardOf(instruction)
  const path = [...parent, standard.name]
  const description = own(paragraphs(standard.description))
  if (standard._tag === "GetUserInput") return { path, description, usage: "", args: [], options: [], children: [] }
  const usage = [usageText(Args.getUsage(standard.args)), usageText(Options.getUsage(standard.options))].filter((u) => u !== "").join(" ")
  return {
    path,
    description,
    usage,
    args: argEntries(standard.args),
    options: optionEntries(standard.options),
    children: childrenOf(instruction).map((child) => nodeOf(child, path))
  }
}

/** The tree under the root command (the root itself is not part of any path). */
export const commandTree = <Name extends string, R, E, A>(root: Command.Command<Name, R, E, A>): CommandNode => {
  const node = nodeOf(root.descriptor as unknown as Instruction, [])
  const strip = (n: CommandNode): CommandNode => ({ ...n, path: n.path.slice(1), children: n.children.map(strip) })
  return strip(node)
}
