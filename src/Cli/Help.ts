import type { CommandNode } from "./HelpTree.ts"
import { EXAMPLES, GROUPS, type HelpGroup, SUMMARIES } from "./HelpText.ts"

/**
 * `rosterd --help`, `rosterd <group> --help` and `rosterd <command> --help`, rendered from the
 * command tree (HelpTree.ts) and the groups and examples of HelpText.ts. Plain text that fits
 * 80 columns; bold headings only on a terminal, and never with NO_COLOR (see Cli.ts).
 */

export const WIDTH = 80

export interface HelpStyle {
  readonly colour: boolean
}

export interface HelpAnswer {
  readonly text: string
  /** 0, or 2 for a name that is neither a command nor a group (a usage error). */
  readonly code: 0 | 2
}

/** Whether help may colour: a terminal, NO_COLOR unset or empty (no-color.org), and a TERM that is not `dumb`. */
export const helpColour = (env: Readonly<Record<string, string | undefined>>, terminal: boolean) =>
  terminal && (env["NO_COLOR"] ?? "") === "" && env["TERM"] !== "dumb"

const heading = (style: HelpStyle, text: string) => (style.colour ? `\x1b[1m${text}\x1b[0m` : text)

/** Words of `text` in lines of at most `width`, the first after `first`, the rest after `rest`. */
export const wrap = (text: string, width: number, first: string, rest: string = first): ReadonlyArray<string> => {
  const lines: Array<string> = []
  let line = first
  let empty = true
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line)
      line = rest + word
    } else line = empty ? line + word : `${line} ${word}`
    empty = false
  }
  lines.push(line)
  return lines
}

/** An example too long for a line continues with ` \` and four spaces, as a shell reads it. */
const example = (command: string): ReadonlyArray<string> => {
  const lines = wrap(command, WIDTH - 2, "  ", "      ")
  return lines.map((l, i) => (i < lines.length - 1 ? `${l} \\` : l))
}

/** A two-column list: labels padded to one width (at most 24), descriptions wrapped beside them or below a long label. */
const table = (rows: ReadonlyArray<readonly [string, string]>, indent = "  "): ReadonlyArray<string> => {
  const column = Math.min(24, Math.max(0, ...rows.map(([label]) => label.length)) + 2)
  return rows.flatMap(([label, description]) => {
    const pad = indent + " ".repeat(column)
    if (description === "") return [indent + label]
    if (label.length + 2 > column) return [indent + label, ...wrap(description, WIDTH, pad)]
    return wrap(description, WIDTH, indent + label.padEnd(column), pad)
  })
}

/**
 * A description in one line of at most `width`: without its parentheses, then up to a colon
 * or semicolon when what comes before says enough, then cut at a word with "…".
 */
export const summary = (description: string, width: number) => {
  const plain = description.replace(/\s*\([^()]*\)/g, "").replace(/\s+/g, " ").trim()
  if (plain.length <= width) return plain
  const head = plain.split(/: |; /)[0]!.trim()
  if (head.length >= 16 && head.length <= width) return head
  // Else up to the last comma that fits, else words and "…".
  const comma = plain.slice(0, width + 1).lastIndexOf(", ")
  if (comma >= 16) return plain.slice(0, comma)
  return `${wrap(plain, width - 1, "")[0]!}…`
}

const pathOf = (node: CommandNode) => node.path.join(" ")

const all = (node: CommandNode): ReadonlyArray<CommandNode> => [node, ...node.children.flatMap(all)]

/** The group of a command: the one listing the longest prefix of its path. */
export const groupOf = (path: ReadonlyArray<string>): HelpGroup | undefined => {
  let best: { readonly group: HelpGroup; readonly length: number } | undefined
  for (const group of GROUPS) {
    for (const listed of group.commands) {
      const words = listed.split(" ")
      if (words.length <= path.length && words.every((w, i) => path[i] === w) && (best === undefined || words.length > best.length)) {
        best = { group, length: words.length }
      }
    }
  }
  return best?.group
}

const find = (tree: CommandNode, path: string) => all(tree).find((n) => pathOf(n) === path)

/** `rosterd --help`: the groups and their commands, one line each. */
export const overview = (tree: CommandNode, style: HelpStyle): string => {
  const lines: Array<string> = [
    ...wrap(`rosterd: ${tree.description} (Clever, OneRoster REST, OneRoster CSV)`, WIDTH, ""),
    "",
    `${heading(style, "Usage:")} rosterd <command> [arguments] [options]`,
    "       rosterd <group | command> --help",
    ""
  ]
  const ungrouped = tree.children.filter((c) => groupOf(c.path) === undefined)
  const sections = [
    ...GROUPS.map((group) => ({
      title: `${heading(style, group.title)} (rosterd ${group.key} --help)`,
      nodes: group.commands.flatMap((path) => {
        const node = find(tree, path)
        return node === undefined || groupOf(node.path) !== group ? [] : [node]
      })
    })),
    { title: heading(style, "Other"), nodes: ungrouped }
  ].filter((section) => section.nodes.length > 0)
  // One column for every group, so the summaries line up down the page.
  const column = Math.max(...sections.flatMap((section) => section.nodes.map((n) => pathOf(n).length))) + 2
  for (const section of sections) {
    lines.push(section.title)
    lines.push(...section.nodes.map((n) => `  ${pathOf(n).padEnd(column)}${summary(SUMMARIES[pathOf(n)] ?? n.description, WIDTH - 2 - column)}`))
    lines.push("")
  }
  lines.push(
    `${heading(style, "Options:")} --help, --version, --completions bash|zsh|fish|sh, --log-level <level>`,
    ...wrap("Exit codes: 0 done, 1 failed (one line on stderr), 2 usage error, 75 a sync deferred (its CSV set is still being written).", WIDTH, ""),
    "Configuration: config/rosterd.yaml or ROSTERD_CONFIG; every setting also by",
    "environment variable (README: Configuration)."
  )
  return lines.join("\n")
}

/**
 * A usage fragment in the pieces a line may not break inside: `[--limit <n>]`, `(a | b)`,
 * and a required option with its value (`--by <name>`).
 */
export const usageTokens = (usage: string): ReadonlyArray<string> => {
  const tokens: Array<string> = []
  let depth = 0
  let current = ""
  for (const c of usage) {
    if (c === "[" || c === "(") depth++
    if (c === "]" || c === ")") depth--
    if (c === " " && depth === 0) {
      if (current !== "") tokens.push(current)
      current = ""
    } else current += c
  }
  if (current !== "") tokens.push(current)
  return tokens.reduce<Array<string>>((out, token) => {
    const previous = out[out.length - 1]
    if (previous !== undefined && /^--[A-Za-z0-9-]+$/.test(previous) && !/^[-[(]/.test(token)) out[out.length - 1] = `${previous} ${token}`
    else out.push(token)
    return out
  }, [])
}

/** Usage lines of a command: `rosterd <path> <usage>`, wrapped under itself between its pieces. */
const usage = (node: CommandNode): ReadonlyArray<string> => {
  const head = `  rosterd ${pathOf(node)}`
  if (node.usage === "") return [head]
  const indent = " ".repeat(Math.min(head.length + 1, 28))
  const lines: Array<string> = []
  let line = head
  for (const token of usageTokens(node.usage)) {
    if (line.trim() !== "" && line !== indent && line.length + 1 + token.length > WIDTH) {
      lines.push(line)
      line = indent + token
    } else line = `${line} ${token}`
  }
  lines.push(line)
  return lines
}

const examplesOf = (node: CommandNode, style: HelpStyle): ReadonlyArray<string> => {
  const examples = EXAMPLES[pathOf(node)] ?? []
  return examples.length === 0 ? [] : ["", heading(style, "Examples:"), ...examples.flatMap(example)]
}

/** `rosterd <group> --help`: each command of the group with its usage and purpose. */
export const groupHelp = (tree: CommandNode, group: HelpGroup, style: HelpStyle): string => {
  const members = all(tree).filter((n) => n.path.length > 0 && groupOf(n.path) === group && (n.usage !== "" || n.children.length === 0 || isRunnable(n)))
  const lines: Array<string> = [`${heading(style, group.title)}: ${group.about}`, ""]
  for (const node of members) {
    lines.push(...usage(node))
    lines.push(...wrap(node.description, WIDTH, "      "))
  }
  const examples = members.flatMap((n) => (EXAMPLES[pathOf(n)] ?? []).slice(0, 1)).slice(0, 4)
  if (examples.length > 0) lines.push("", heading(style, "Examples:"), ...examples.flatMap(example))
  lines.push("", `More: rosterd <command> --help, e.g. rosterd ${pathOf(members[0] ?? tree)} --help`)
  return lines.join("\n")
}

/** A parent with a handler of its own (`runs`, `district` lists): shown with its own usage. */
const isRunnable = (node: CommandNode) => node.usage !== "" || node.args.length > 0 || node.options.length > 0

/** `rosterd <command> --help`: purpose, usage, arguments, options, subcommands, examples. */
export const commandHelp = (node: CommandNode, style: HelpStyle): string => {
  const lines: Array<string> = [...wrap(node.description, WIDTH, `rosterd ${pathOf(node)}: `, "  "), ""]
  if (isRunnable(node) || node.children.length === 0) lines.push(heading(style, "Usage:"), ...usage(node))
  if (node.children.length > 0) {
    if (isRunnable(node) || node.children.length === 0) lines.push("")
    lines.push(heading(style, `Commands (rosterd ${pathOf(node)} <command>):`))
    const name = (c: CommandNode) => c.path[c.path.length - 1]!
    const column = Math.max(...node.children.map((c) => name(c).length)) + 2
    lines.push(...node.children.map((c) => `  ${name(c).padEnd(column)}${summary(SUMMARIES[pathOf(c)] ?? c.description, WIDTH - 2 - column)}`))
  }
  if (node.args.length > 0) lines.push("", heading(style, "Arguments:"), ...table(node.args.map((a) => [a.label, a.description])))
  if (node.options.length > 0) lines.push("", heading(style, "Options:"), ...table(node.options.map((o) => [o.label, o.description])))
  lines.push(...examplesOf(node, style))
  const group = groupOf(node.path)
  if (node.children.length > 0) lines.push("", `More: rosterd ${pathOf(node)} <command> --help`)
  else if (group !== undefined) lines.push("", `See also: rosterd ${group.key} --help`)
  return lines.join("\n")
}

/**
 * The help for the words given with `--help` (flags and their values left out): none → the
 * overview; a group's key → the group; a command path (arguments after it are ignored) → the
 * command; anything else → a usage error naming it.
 */
export const helpFor = (tree: CommandNode, words: ReadonlyArray<string>, style: HelpStyle): HelpAnswer => {
  // The global option with a value (`rosterd --log-level debug sync --help`) is no command word.
  const positional = words.filter((w, i) => !w.startsWith("-") && words[i - 1] !== "--log-level")
  if (positional.length === 0) return { text: overview(tree, style), code: 0 }
  let node: CommandNode | undefined
  let level = tree
  for (const word of positional) {
    const child = level.children.find((c) => c.path[c.path.length - 1] === word)
    if (child === undefined) break
    node = child
    level = child
  }
  // A group's key alone is the group, even where a command has the same name (`districts`):
  // the group's help shows that command too.
  const group = GROUPS.find((g) => g.key === positional[0])
  if (group !== undefined && positional.length === 1) return { text: groupHelp(tree, group, style), code: 0 }
  if (node !== undefined) return { text: commandHelp(node, style), code: 0 }
  if (group !== undefined) return { text: groupHelp(tree, group, style), code: 0 }
  return {
    text: wrap(`rosterd: no command or group "${positional[0]}" (groups: ${GROUPS.map((g) => g.key).join(", ")}); see rosterd --help`, WIDTH, "", "  ")
      .join("\n"),
    code: 2
  }
}
