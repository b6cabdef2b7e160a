/**
 * The config file is not a place for secrets: it is read by anyone who can read the
 * deployment, copied into images and pasted into tickets. A literal under a secret-like key
 * is refused — in a declared district at any depth (a `token: abc123` there would
 * otherwise be silently ignored: declared districts take no provider settings), and for
 * the SMTP password and the credentials key — with the way to do it instead.
 */

/** Last word of a key (`clientSecret` → `secret`, `tokenFile` → `file`): only the last one says what the value is. */
const SECRET_WORDS = new Set(["token", "secret", "key", "bearer", "password", "passwd", "passphrase", "credential", "credentials"])

export const isSecretName = (key: string) => {
  const words = key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").split(/[\s_.-]+/).filter((w) => w !== "")
  const last = words.at(-1)?.toLowerCase()
  return last !== undefined && SECRET_WORDS.has(last)
}

const isLiteral = (value: unknown) =>
  (typeof value === "string" && value.trim() !== "") || typeof value === "number" || typeof value === "bigint"

/** Paths (`districts[x].settings.token`) of secret-like keys holding a literal, anywhere under `value`. */
const literalSecrets = (value: unknown, path: string): Array<string> => {
  if (Array.isArray(value)) return value.flatMap((item, index) => literalSecrets(item, `${path}[${index}]`))
  if (typeof value !== "object" || value === null) return []
  return Object.entries(value).flatMap(([key, inner]) =>
    isSecretName(key) && isLiteral(inner) ? [`${path}.${key}`] : literalSecrets(inner, `${path}.${key}`)
  )
}

const at = (document: unknown, ...keys: ReadonlyArray<string>): unknown =>
  keys.reduce<unknown>((node, key) => (typeof node === "object" && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>)[key] : undefined), document)

/** Why the document is refused, naming the key path and what to do instead; `undefined` when it holds no literal secret. */
export const plainSecretIn = (document: Readonly<Record<string, unknown>>): string | undefined => {
  const districts = document["districts"]
  if (Array.isArray(districts)) {
    for (const [index, entry] of districts.entries()) {
      const id = typeof (entry as { id?: unknown } | null)?.id === "string" ? (entry as { id: string }).id : String(index)
      const found = literalSecrets(entry, `districts[${id}]`)[0]
      if (found !== undefined) {
        return `${found} holds a secret in plain text; the config file must not: store it encrypted with ` +
          `\`rosterd district set-credentials ${id}\`, or name a file or an environment variable instead ` +
          "(tokenFile/tokenEnv, keyFile/keyEnv, secretFile/secretEnv, bearerFile/bearerEnv)"
      }
    }
  }
  const smtp = literalSecrets(at(document, "rosterd", "mail", "smtp"), "rosterd.mail.smtp")[0]
  if (smtp !== undefined) {
    return `${smtp} holds a secret in plain text; the config file must not: use rosterd.mail.smtp.passwordFile ` +
      "(a file holding the password) or rosterd.mail.smtp.passwordEnv (the name of an environment variable holding it)"
  }
  const key = literalSecrets(at(document, "rosterd", "secrets"), "rosterd.secrets")[0]
  if (key !== undefined) {
    return `${key} holds a key in plain text; the config file must not: use rosterd.secrets.keyFile or rosterd.secrets.keyEnv`
  }
  return undefined
}
