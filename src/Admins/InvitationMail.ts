import { escapeHtml, LINK_PLACEHOLDER, type MailTemplate } from "../Mail/Templates.ts"

/**
 * The administrator invitation (seed 003: "Action needed: Confirm your … Administrator
 * account"). It names the district, the permission and the product, and carries the
 * confirmation link — not the invitee's name, not who invited them, not the schools. The
 * outbox keeps this template; `{link}` is filled in when the message is sent, from the sealed
 * token (see Admins.ts), like the activation e-mail.
 */

export const INVITATION_SUBJECT = "Action needed: confirm your administrator account"

export const invitationMail = (platform: string, districtName: string, permission: "view" | "manage", ttlDays: number): MailTemplate => {
  const can = permission === "manage"
    ? "see the administrator dashboards and manage the users of your schools"
    : "see the administrator dashboards of your schools"
  return {
    subject: INVITATION_SUBJECT,
    text: [
      `Hello,`,
      ``,
      `${districtName} has invited you to be an administrator on ${platform}: you will be able to ${can}.`,
      ``,
      `Confirm your administrator account here (the link works once, for ${ttlDays} days):`,
      LINK_PLACEHOLDER,
      ``,
      `On that page, create a new ${platform} account with this e-mail address, or log into an account you already`,
      `have: this address is then added to it, and it gains the administrator access.`,
      ``,
      `If you did not expect this message, you can ignore it.`
    ].join("\n"),
    html: [
      `<p>Hello,</p>`,
      `<p>${escapeHtml(districtName)} has invited you to be an administrator on ${escapeHtml(platform)}: you will be able to ${can}.</p>`,
      `<p><a href="${LINK_PLACEHOLDER}">Confirm your administrator account</a> (the link works once, for ${ttlDays} days).</p>`,
      `<p>On that page, create a new ${escapeHtml(platform)} account with this e-mail address, or log into an account you already `,
      `have: this address is then added to it, and it gains the administrator access.</p>`,
      `<p>If you did not expect this message, you can ignore it.</p>`
    ].join("\n")
  }
}
