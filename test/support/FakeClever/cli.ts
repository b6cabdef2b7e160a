/**
 * Runs the fake Clever API as its own process (the benchmark starts it as a child so its
 * memory is not counted against rosterd):
 *
 *   npx tsx test/support/FakeClever/cli.ts --csv <dir> --token <t> [--port N] [--rate-limit N]
 *     [--forbidden-token T] [--default-limit N]
 *
 * Prints one JSON line `{"baseUrl":…,"port":…,"districtId":…,"counts":{…}}` on stdout once listening;
 * stops on SIGTERM or SIGINT.
 */
import { parseArgs } from "node:util"
import { fromOneRosterCsv } from "./CleverDistrict.ts"
import { start } from "./FakeCleverServer.ts"

const { values } = parseArgs({
  options: {
    csv: { type: "string" },
    token: { type: "string" },
    port: { type: "string", default: "0" },
    "rate-limit": { type: "string" },
    "forbidden-token": { type: "string" },
    "default-limit": { type: "string" }
  }
})
if (values.csv === undefined || values.token === undefined) {
  console.error("usage: cli.ts --csv DIR --token TOKEN [--port N] [--rate-limit N|off] [--forbidden-token T] [--default-limit N]")
  process.exit(2)
}

const rateLimit = values["rate-limit"]
const district = await fromOneRosterCsv(values.csv)
const fake = await start(district, {
  token: values.token,
  port: Number(values.port),
  ...(rateLimit === undefined ? {} : { rateLimit: rateLimit === "off" ? false : { limit: Number(rateLimit) } }),
  ...(values["forbidden-token"] === undefined ? {} : { forbiddenToken: values["forbidden-token"] }),
  ...(values["default-limit"] === undefined ? {} : { defaultLimit: Number(values["default-limit"]) })
})
const counts = Object.fromEntries((["schools", "terms", "courses", "sections", "users"] as const).map((name) => [name, district[name].length]))
process.stdout.write(JSON.stringify({ baseUrl: fake.baseUrl, port: fake.port, districtId: district.districts.first()?.id, counts }) + "\n")

const stop = () => {
  fake.close().then(() => process.exit(0), () => process.exit(1))
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
