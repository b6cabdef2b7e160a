/**
 * Runs the fake OneRoster 1.1 REST server as its own process (the benchmark starts it as a
 * child so its memory is not counted against rosterd):
 *
 *   npx tsx test/support/FakeOneRoster/cli.ts --csv <dir> (--bearer <t> | --key <k> --secret <s>)
 *     [--port N] [--max-limit N] [--default-limit N] [--rate-limit N|off] [--booleans-as-strings]
 *
 * `--bearer` and `--key/--secret` may both be given (either is then accepted). Prints one
 * JSON line `{"baseUrl":…,"port":…,"counts":{…}}` on stdout once listening (the API is at
 * `<baseUrl>/ims/oneroster/v1p1`); stops on SIGTERM or SIGINT.
 */
import { parseArgs } from "node:util"
import { start } from "./FakeOneRosterServer.ts"
import { fromOneRosterCsv } from "./OneRosterDistrict.ts"

const { values } = parseArgs({
  options: {
    csv: { type: "string" },
    bearer: { type: "string" },
    key: { type: "string" },
    secret: { type: "string" },
    port: { type: "string", default: "0" },
    "max-limit": { type: "string" },
    "default-limit": { type: "string" },
    "rate-limit": { type: "string" },
    "booleans-as-strings": { type: "boolean", default: false }
  }
})
const oauthGiven = values.key !== undefined || values.secret !== undefined
if (values.csv === undefined || (values.bearer === undefined && !oauthGiven) || (oauthGiven && (values.key === undefined || values.secret === undefined))) {
  console.error(
    "usage: cli.ts --csv DIR (--bearer TOKEN | --key KEY --secret SECRET) [--port N] [--max-limit N] [--default-limit N] [--rate-limit N|off] [--booleans-as-strings]"
  )
  process.exit(2)
}

const rateLimit = values["rate-limit"]
const district = await fromOneRosterCsv(values.csv)
const fake = await start(district, {
  ...(values.bearer === undefined ? {} : { bearer: values.bearer }),
  ...(values.key === undefined || values.secret === undefined ? {} : { oauth: { key: values.key, secret: values.secret } }),
  port: Number(values.port),
  ...(rateLimit === undefined || rateLimit === "off" ? {} : { rateLimit: { limit: Number(rateLimit) } }),
  ...(values["max-limit"] === undefined ? {} : { maxLimit: Number(values["max-limit"]) }),
  ...(values["default-limit"] === undefined ? {} : { defaultLimit: Number(values["default-limit"]) }),
  booleansAsStrings: values["booleans-as-strings"]
})
process.stdout.write(JSON.stringify({ baseUrl: fake.baseUrl, port: fake.port, counts: district.counts() }) + "\n")

const stop = () => {
  fake.close().then(() => process.exit(0), () => process.exit(1))
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
