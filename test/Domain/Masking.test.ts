import { describe, expect, it } from "@effect/vitest"
import { MaskingBit, maskingBits } from "../../src/Domain/Masking.ts"

const { emailHashed, emailPlaceholder, familyNameHashed, givenNameHashed } = MaskingBit

describe("masking bits", () => {
  it("judges an address by its local part and its domain", () => {
    const cases: ReadonlyArray<readonly [string, number]> = [
      ["sam@school.org", 0],
      ["abe@school.org", 0], // hex without a digit, under eight characters: a name
      ["3f@school.org", emailHashed], // hex with a digit
      ["deadbeef@school.org", emailHashed], // eight hex characters
      ["DEADBEEF@school.org", emailHashed], // in any case
      ["5F4DCC3B5AA765D61D8327DEB882CF99@x.org", emailHashed],
      ["****@school.org", emailHashed],
      ["xxx@school.org", emailHashed],
      [`${"a".repeat(39)}=@school.org`, 0], // base64 needs forty characters
      [`${"Ab+/".repeat(10)}==@school.org`, emailHashed],
      ["sam@example.invalid", emailPlaceholder],
      ["5f4dcc3b@MASKED.school.org", emailPlaceholder], // a placeholder is not also hashed
      ["sam@unmasked.org", 0],
      ["sam@anonymised.net", emailPlaceholder],
      ["café1@school.org", 0], // a letter outside ASCII is no hex
      ["", 0],
      ["no-at-sign", 0]
    ]
    for (const [email, bits] of cases) expect(maskingBits(email, null, null), email).toBe(bits)
  })

  it("judges names whole, and nothing when a field is absent", () => {
    expect(maskingBits(null, "Dee", "C")).toBe(0)
    expect(maskingBits(null, "a1b2", "ffffffff")).toBe(givenNameHashed | familyNameHashed)
    expect(maskingBits(null, "###", "Smith")).toBe(givenNameHashed)
    expect(maskingBits(null, null, null)).toBe(0)
  })
})
