/**
 * `npx tsx bench/prepare-copy.ts --data DIR --out DIR --district ID --roster-source csv`
 * writes the COPY text of the benchmark's baseline (see Baseline.ts) and prints what it
 * wrote as one JSON line. bench/run.ts runs it as a child process, so that reading and
 * converting the CSV files does not count in the benchmark process's peak RSS.
 */
import { parseArgs } from "node:util"
import { prepareCopy } from "./Baseline.ts"

const { values } = parseArgs({
  options: {
    data: { type: "string" },
    out: { type: "string" },
    district: { type: "string" },
    "roster-source": { type: "string", default: "csv" }
  }
})
if (values.data === undefined || values.out === undefined || values.district === undefined) {
  console.error("usage: prepare-copy --data DIR --out DIR --district ID [--roster-source csv]")
  process.exit(2)
}
const prepared = await prepareCopy({
  dataDir: values.data,
  outDir: values.out,
  districtId: values.district,
  rosterSource: values["roster-source"]
})
process.stdout.write(JSON.stringify(prepared) + "\n")
