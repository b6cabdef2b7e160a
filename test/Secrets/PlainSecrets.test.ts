import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import { declaredDistricts } from "../../src/Config/Districts.ts"
import { isSecretName, plainSecretIn } from "../../src/Config/PlainSecrets.ts"

/** Literal secrets in the config file are refused, naming the key path and the way to do it instead. */
describe("plain secrets in the config file", () => {
  it("secret-like names are those whose last word is a secret; file and variable references are not", () => {
    for (const name of ["token", "secret", "key", "bearer", "password", "clientSecret", "apiKey", "access_token", "consumer-key"]) {
      assert.isTrue(isSecretName(name), name)
    }
    for (const name of ["tokenFile", "tokenEnv", "keyFile", "secretEnv", "passwordFile", "keyId", "districtId", "previousKeyFiles", "path"]) {
      assert.isFalse(isSecretName(name), name)
    }
  })

  it("a district's literal token is refused, at any depth, with the district named", () => {
    const top = plainSecretIn({ districts: [{ id: "csv", provider: "oneroster-csv", path: "x" }, { id: "cl", provider: "clever", token: "abc123" }] })
    assert.include(top!, "districts[cl].token holds a secret in plain text")
    assert.include(top!, "rosterd district set-credentials cl")
    assert.include(top!, "tokenFile/tokenEnv")
    assert.notInclude(top!, "abc123")
    const deep = plainSecretIn({ districts: [{ id: "rest", provider: "oneroster-rest", settings: { auth: { clientSecret: 42 } } }] })
    assert.include(deep!, "districts[rest].settings.auth.clientSecret")
    // References and empty values are fine.
    assert.isUndefined(plainSecretIn({ districts: [{ id: "cl", provider: "clever", tokenFile: "/run/secrets/t", settings: { keyEnv: "K", token: "" } }] }))
    assert.isUndefined(plainSecretIn({ districts: null }))
  })

  it("a literal SMTP password or credentials key is refused; their file and variable settings are not", () => {
    const smtp = plainSecretIn({ rosterd: { mail: { smtp: { host: "h", user: "u", password: "hunter2" } } } })
    assert.include(smtp!, "rosterd.mail.smtp.password holds a secret in plain text")
    assert.include(smtp!, "passwordFile")
    assert.notInclude(smtp!, "hunter2")
    const key = plainSecretIn({ rosterd: { secrets: { key: "c2VjcmV0" } } })
    assert.include(key!, "rosterd.secrets.key holds a key in plain text")
    assert.isUndefined(plainSecretIn({
      rosterd: { mail: { smtp: { host: "h", user: "u", passwordFile: "/p" } }, secrets: { keyFile: "/k", keyId: "prod-2026", previousKeyFiles: ["/o"] } }
    }))
  })

  it.effect("declared districts given as a document are refused the same way", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(declaredDistricts.pipe(
        Effect.provide(ConfigFile.fromDocument({ districts: [{ id: "cl", provider: "clever", token: "abc123" }] }))
      ))
      assert.strictEqual(error._tag, "ConfigFileError")
      assert.include(error.message, "districts[cl].token")
    }))
})
