import { escapeHtml, LINK_PLACEHOLDER, type MailTemplate } from "../Mail/Templates.ts"

/**
 * The teacher activation e-mail (seed 002: "Confirm your official … account"). It names the
 * district and carries the confirmation link, nothing else personal: no name, no class list.
 * The outbox keeps the template, `{link}` where the link goes; the worker puts the link in
 * when it sends the message (src/Mail/Templates.ts), so no stored body ever holds a token
 * (see Activation.ts).
 */

/** Teachers get their classes from the roster; roster administrators their dashboards. */
export type Audience = "teacher" | "administrator"

const what = (audience: Audience) =>
  audience === "teacher"
    ? "your classes are created from the district roster"
    : "it gives you the district's administrator dashboards for your schools"

/**
 * `first`: the e-mail a new district account brings (and an operator's resend); `reminder`:
 * the follow-up to a teacher who has not confirmed (src/Accounts/Reminders.ts), with a fresh
 * link — the earlier one no longer works, which it says, so nobody hunts for the old message.
 */
export type Variant = "first" | "reminder"

export const activationMail = (
  platform: string,
  districtName: string,
  ttlDays: number,
  audience: Audience = "teacher",
  variant: Variant = "first"
): MailTemplate => {
  const reminder = variant === "reminder"
  return {
    subject: `${reminder ? "Reminder: confirm" : "Confirm"} your official ${platform} account`,
    text: [
      `Hello,`,
      ``,
      `${districtName} has set up your official ${platform} account: ${what(audience)}.`,
      ...(reminder ? [``, `It is still waiting for you. The link in our earlier message no longer works: use this one.`] : []),
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
      ...(reminder ? [`<p>It is still waiting for you. The link in our earlier message no longer works: use this one.</p>`] : []),
      `<p><a href="${LINK_PLACEHOLDER}">Confirm your account</a> (the link works once, for ${ttlDays} days).</p>`,
      `<p>Used ${escapeHtml(platform)} before with another e-mail address? Choose <em>Log into my existing account</em> on that page: `,
      `your earlier account and its classes are linked to your district account.</p>`,
      `<p>If you did not expect this message, you can ignore it.</p>`
    ].join("\n")
  }
}
