import { FetchHttpClient, HttpClient } from "@effect/platform"
import { Effect, Layer } from "effect"
import { InvalidDistrict } from "../Domain/Errors.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import { cleverProbe, cleverSnapshot } from "./Clever/CleverProvider.ts"
import type { StoredCredentials } from "./Credentials.ts"
import { ProviderBudgets, RetryPolicyConfig } from "./Http.ts"
import { ProviderLimitsConfig } from "./Limits.ts"
import { CsvLimitsConfig } from "./OneRosterCsv/CsvLimits.ts"
import { oneRosterCsvProbe, oneRosterCsvSnapshot } from "./OneRosterCsv/OneRosterCsvProvider.ts"
import { oneRosterRestProbe, oneRosterRestSnapshot } from "./OneRosterRest/OneRosterRestProvider.ts"
import { RosterProvider } from "./RosterProvider.ts"

/**
 * The live `RosterProvider`: dispatches each district to the implementation of its
 * provider kind. REST providers share one HTTP client and the per-credential request
 * budgets of this process, and read credentials stored encrypted in the database first.
 */
export const RosterProviderLive = Layer.effect(
  RosterProvider,
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const budgets = yield* ProviderBudgets
    const retry = yield* RetryPolicyConfig
    const limits = yield* ProviderLimitsConfig
    const csvLimits = yield* CsvLimitsConfig
    const secrets = yield* Secrets
    // A credential that cannot be opened fails the district's run, with the store's message.
    const credentials: StoredCredentials = {
      read: (districtId, name) =>
        secrets.read(districtId, name).pipe(Effect.mapError((error) => new InvalidDistrict({ district: districtId, message: error.message })))
    }
    const dependencies = { client, budgets, retry, credentials, limits }
    const clever = cleverSnapshot(dependencies)
    const oneRosterRest = oneRosterRestSnapshot(dependencies)
    const probes = { clever: cleverProbe(dependencies), oneRosterRest: oneRosterRestProbe(dependencies) }
    return RosterProvider.of({
      snapshot: (district, request, state) => {
        switch (district.provider) {
          case "oneroster-csv":
            return oneRosterCsvSnapshot(district, request, csvLimits)
          case "clever":
            return clever(district, request, state)
          case "oneroster-rest":
            return oneRosterRest(district, request, state)
        }
      },
      probe: (district) => {
        switch (district.provider) {
          case "oneroster-csv":
            return oneRosterCsvProbe(district, csvLimits)
          case "clever":
            return Effect.scoped(probes.clever(district))
          case "oneroster-rest":
            return Effect.scoped(probes.oneRosterRest(district))
        }
      }
    })
  })
).pipe(Layer.provide([FetchHttpClient.layer, ProviderBudgets.Default, Secrets.Default]))
