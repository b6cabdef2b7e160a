import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto"

/**
 * AES-256-GCM for one credential value, with nothing but node:crypto.
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

export const seal = (key: Key, districtId: string, name: string, value: string): Sealed => {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv("aes-256-gcm", key.bytes, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(additionalData(districtId, name))
  const ciphertext = Buffer.concat([cipher.update(value, "utf8"), cipher.final()])
  return { keyId: key.id, iv, ciphertext, authTag: cipher.getAuthTag() }
}

/** The value, or `undefined` when it does not authenticate (wrong key, altered bytes, other district or name). */
export const open = (key: Key, districtId: string, name: string, sealed: Sealed): string | undefined => {
  if (sealed.iv.length !== IV_BYTES || sealed.authTag.length !== TAG_BYTES) return undefined
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.bytes, sealed.iv, { authTagLength: TAG_BYTES })
    decipher.setAAD(additionalData(districtId, name))
    decipher.setAuthTag(sealed.authTag)
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString("utf8")
  } catch {
    return undefined
  }
}

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
