import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto"

/**
 * AES-256-GCM for one credential value (and for the token of an outbox link, below), with
 * nothing but node:crypto.
 *
 * - A fresh random 12-byte IV per value: GCM's security collapses if an IV repeats under
 *   one key, and random 96-bit IVs are safe far beyond the number of credentials we keep.
 * - The district id and the credential name are the additional authenticated data, so a
 *   ciphertext moved to another district or name fails authentication instead of handing
 *   one district's token to another.
 * - The tag is always 16 bytes and checked at that length: GCM accepts truncated tags
 *   unless told otherwise, which would make forgeries cheaper.
 */

export const KEY_BYTES = 32
export const IV_BYTES = 12
export const TAG_BYTES = 16

export interface Key {
  readonly id: string
  readonly bytes: Buffer
}

/** What is stored for one value (never the value itself). */
export interface Sealed {
  readonly keyId: string
  readonly iv: Uint8Array
  readonly ciphertext: Uint8Array
  readonly authTag: Uint8Array
}

/** The default key id: the first 8 hex digits of the key's SHA-256 (names the key without revealing it). */
export const deriveKeyId = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex").slice(0, 8)

/** Versioned, NUL-separated: ids and names cannot contain NUL, so no two pairs give the same bytes. */
const additionalData = (districtId: string, name: string) => Buffer.from(`rosterd/district_credentials/v1\0${districtId}\0${name}`, "utf8")

/** AES-256-GCM of `value` under `key` with `aad`: a fresh IV, the full 16-byte tag. */
const sealWith = (key: Key, aad: Buffer, value: string): Sealed => {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv("aes-256-gcm", key.bytes, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad)
  const ciphertext = Buffer.concat([cipher.update(value, "utf8"), cipher.final()])
  return { keyId: key.id, iv, ciphertext, authTag: cipher.getAuthTag() }
}

/** The value, or `undefined` when it does not authenticate under `key` and `aad`. */
const openWith = (key: Key, aad: Buffer, sealed: Sealed): string | undefined => {
  if (sealed.iv.length !== IV_BYTES || sealed.authTag.length !== TAG_BYTES) return undefined
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.bytes, sealed.iv, { authTagLength: TAG_BYTES })
    decipher.setAAD(aad)
    decipher.setAuthTag(sealed.authTag)
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString("utf8")
  } catch {
    return undefined
  }
}

export const seal = (key: Key, districtId: string, name: string, value: string): Sealed => sealWith(key, additionalData(districtId, name), value)

/** The value, or `undefined` when it does not authenticate (wrong key, altered bytes, other district or name). */
export const open = (key: Key, districtId: string, name: string, sealed: Sealed): string | undefined =>
  openWith(key, additionalData(districtId, name), sealed)

/** A key as written in a file or variable: 64 hex digits, or base64 / base64url of 32 bytes. */
export const parseKey = (text: string): Buffer | undefined => {
  const trimmed = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, "hex")
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) return undefined
  const bytes = Buffer.from(trimmed.replace(/-/g, "+").replace(/_/g, "/"), "base64")
  return bytes.length === KEY_BYTES ? bytes : undefined
}

/** A new key, as a key file holds it (base64 and a newline). */
export const newKeyText = () => `${randomBytes(KEY_BYTES).toString("base64")}\n`

// ---------------------------------------------------------------- outbox links

/**
 * The single-use token of an activation or invitation link: 32 random bytes, base64url (43
 * characters, nothing to escape in a URL). Made in Node, never by the database, so no
 * statement text or server log ever holds one.
 */
export const newLinkToken = () => randomBytes(32).toString("base64url")

/** What `activation_tokens` / `admin_tokens` keep of a token: SHA-256 of its UTF-8 bytes, as the confirm functions compute it. */
export const tokenHash = (token: string) => createHash("sha256").update(token, "utf8").digest()

/** The outbox row a sealed link belongs to: everything that decides where the link goes and what surrounds it. */
export interface LinkContext {
  readonly kind: string
  readonly idempotencyKey: string
  readonly recipient: string
  readonly subject: string
  readonly bodyText: string
  readonly bodyHtml: string | null
  /** The page the link opens, `{token}` standing for the token. */
  readonly linkUrl: string
}

/**
 * The additional authenticated data of a sealed link: its purpose, the message's kind and
 * idempotency key, and a digest of the recipient, subject, bodies and link page. A seal copied
 * to another message, or a message whose recipient, text or link page was changed in the
 * database (to send a live link somewhere else), no longer opens. NUL separates the parts
 * (text columns cannot hold NUL); `-` / `+` mark an absent / present HTML body.
 */
const linkAdditionalData = (context: LinkContext) => {
  const digest = createHash("sha256")
    .update([
      context.recipient,
      context.subject,
      context.bodyText,
      context.bodyHtml === null ? "-" : `+${context.bodyHtml}`,
      context.linkUrl
    ].join("\0"), "utf8")
    .digest("hex")
  return Buffer.from(`rosterd/outbox_link/v1\0${context.kind}\0${context.idempotencyKey}\0${digest}`, "utf8")
}

export const sealLink = (key: Key, context: LinkContext, token: string): Sealed => sealWith(key, linkAdditionalData(context), token)

/** The token, or `undefined` when the seal does not authenticate (wrong key, altered or moved row). */
export const openLink = (key: Key, context: LinkContext, sealed: Sealed): string | undefined =>
  openWith(key, linkAdditionalData(context), sealed)
