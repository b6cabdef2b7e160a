/**
 * `npx tsx bench/generate.ts --students 100000 --seed bench --out bench/.data/district-100k`
 * writes a deterministic OneRoster 1.1 CSV bulk set (see OneRosterGenerator.ts).
 */
import { parseArgs } from "node:util"
import { generateDistrict } from "./OneRosterGenerator.ts"

const { values } = parseArgs({
  options: {
    students: { type: "string", default: "1000" },
    seed: { type: "string", default: "rosterd" },
    out: { type: "string" },
    "missing-birth-dates": { type: "string", default: "0" },
    "school-size": { type: "string", default: "500" }
  }
})
if (values.out === undefined) {
  console.error("usage: generate --students N --seed S --out DIR [--missing-birth-dates 0.01] [--school-size 500]")
  process.exit(2)
}
const counts = generateDistrict(values.out, {
  students: Number(values.students),
  seed: values.seed,
  missingBirthDates: Number(values["missing-birth-dates"]),
  schoolSize: Number(values["school-size"])
})
console.log(JSON.stringify(counts))
