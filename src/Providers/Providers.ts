import { Effect, Layer } from "effect"
import { InvalidDistrict } from "../Domain/Errors.ts"
import { oneRosterCsvSnapshot } from "./OneRosterCsv/OneRosterCsvProvider.ts"
import { RosterProvider } from "./RosterProvider.ts"

/**
 * The live `RosterProvider`: dispatches each district to the implementation of its
 * provider kind. New providers (Clever, OneRoster REST) plug in here.
 */
export const RosterProviderLive = Layer.succeed(
  RosterProvider,
  RosterProvider.of({
    snapshot: (district, request) => {
      switch (district.provider) {
        case "oneroster-csv":
          return oneRosterCsvSnapshot(district, request)
        default:
          return Effect.fail(
            new InvalidDistrict({ district: district.id, message: `the ${district.provider} provider is not available yet` })
          )
      }
    }
  })
)
