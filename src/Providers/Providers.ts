import { FetchHttpClient, HttpClient } from "@effect/platform"
import { Effect, Layer } from "effect"
import { cleverSnapshot } from "./Clever/CleverProvider.ts"
import { ProviderBudgets, RetryPolicyConfig } from "./Http.ts"
import { oneRosterCsvSnapshot } from "./OneRosterCsv/OneRosterCsvProvider.ts"
import { oneRosterRestSnapshot } from "./OneRosterRest/OneRosterRestProvider.ts"
import { RosterProvider } from "./RosterProvider.ts"

/**
 * The live `RosterProvider`: dispatches each district to the implementation of its
 * provider kind. REST providers share one HTTP client and the per-credential request
 * budgets of this process.
 */
export const RosterProviderLive = Layer.effect(
  RosterProvider,
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const budgets = yield* ProviderBudgets
    const retry = yield* RetryPolicyConfig
    const clever = cleverSnapshot({ client, budgets, retry })
    const oneRosterRest = oneRosterRestSnapshot({ client, budgets, retry })
    return RosterProvider.of({
      snapshot: (district, request, state) => {
        switch (district.provider) {
          case "oneroster-csv":
            return oneRosterCsvSnapshot(district, request)
          case "clever":
            return clever(district, request, state)
          case "oneroster-rest":
            return oneRosterRest(district, request, state)
        }
      }
    })
  })
).pipe(Layer.provide([FetchHttpClient.layer, ProviderBudgets.Default]))
