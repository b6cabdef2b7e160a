/**
 * The teacher activation e-mail (seed 002: "Confirm your official … account"). It names the
 * district and carries the confirmation link, nothing else personal: no name, no class list.
 * `{link}` is replaced per message in SQL (see Activation.ts), so one template serves a
 * whole run's messages.
 */
export interface MailTemplate {
  readonly subject: string
  readonly text: string
  readonly html: string
}

const escapeHtml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

export const LINK_PLACEHOLDER = "{link}"

/** Teachers get their classes from the roster; roster administrators their dashboards. */
export type Audience = "teacher" | "administrator"

const what = (audience: Audience) =>
  audience === "teacher"
    ? "your classes are created from the district roster"
    : "it gives you the district's administrator dashboards for your schools"

export const activationMail = (platform: string, districtName: string, ttlDays: number, audience: Audience = "teacher"): MailTemplate => ({
  subject: `Confirm your official ${platform} account`,
  text: [
    `Hello,`,
    ``,
    `${districtName} has set up your official ${platform} account: ${what(audience)}.`,
    ``,
    `Confirm your account here (the link works once, for ${ttlDays} days):`,
    LINK_PLACEHOLDER,
    ``,
    `Used ${platform} before with another e-mail address? Choose "Log into my existing account" on that page:`,
    `your earlier account and its classes are linked to your district account.`,
    ``,
    `If you did not expect this message, you can ignore it.`
  ].join("\n"),
  html: [
    `<p>Hello,</p>`,
    `<p>${escapeHtml(districtName)} has set up your official ${escapeHtml(platform)} account: ${what(audience)}.</p>`,
    `<p><a href="${LINK_PLACEHOLDER}">Confirm your account</a> (the link works once, for ${ttlDays} days).</p>`,
    `<p>Used ${escapeHtml(platform)} before with another e-mail address? Choose <em>Log into my existing account</em> on that page: `,
    `your earlier account and its classes are linked to your district account.</p>`,
    `<p>If you did not expect this message, you can ignore it.</p>`
  ].join("\n")
})
