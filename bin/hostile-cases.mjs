#!/usr/bin/env node
// Rewrites the README's hostile-input table from the suite itself: every test titled
// `<input> → <expected outcome>` under a `hostile: <area>` describe (test/Hostile, test/Security).
// Run `npm run hostile-cases` after adding a case; the table sits between the two markers.
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"

const listed = execFileSync("npx", ["vitest", "list", "test/Hostile", "test/Security"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
const rows = []
for (const line of listed.split("\n")) {
  const parts = line.split(" > ")
  if (parts.length < 3) continue
  const [file, ...names] = parts
  const title = names.at(-1)
  const area = names.find((n) => n.startsWith("hostile: "))
  if (area === undefined || !title.includes(" → ")) continue
  const at = title.indexOf(" → ")
  const cell = (text) => text.replace(/\|/g, "\\|").trim()
  rows.push(`| ${cell(area.slice("hostile: ".length))} | ${cell(title.slice(0, at))} | ${cell(title.slice(at + 3))} | \`${file.replace(/^test\//, "")}\` |`)
}
const table = [
  `${rows.length} cases, each one test of the suite (\`npm run hostile-cases\` rewrites this table from it):`,
  "",
  "| area | input | expected outcome | test |",
  "| --- | --- | --- | --- |",
  ...rows
].join("\n")
const readme = Fs.readFileSync("README.md", "utf8")
const start = "<!-- hostile-cases:start -->"
const end = "<!-- hostile-cases:end -->"
const from = readme.indexOf(start)
const to = readme.indexOf(end)
if (from < 0 || to < from) throw new Error("README.md has no hostile-cases markers")
Fs.writeFileSync("README.md", `${readme.slice(0, from + start.length)}\n${table}\n${readme.slice(to)}`)
console.log(`${rows.length} hostile cases written to README.md`)
