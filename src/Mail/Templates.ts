/**
 * What every e-mail that carries a confirmation link has in common (the activation e-mail,
 * src/Accounts/ActivationMail.ts; the administrator invitation, src/Admins/InvitationMail.ts).
 * The outbox keeps the template with `{link}` where the link goes and puts the link in
 * only when it sends the message (`renderLink`, src/Mail/Outbox.ts), so no stored body
 * ever holds a token.
 */
export interface MailTemplate {
  readonly subject: string
  readonly text: string
  readonly html: string
}

export const escapeHtml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

export const LINK_PLACEHOLDER = "{link}"

/** Where the token goes in a link page (`rosterd.accounts.activationUrl`, `rosterd.admins.invitationUrl`). */
export const TOKEN_PLACEHOLDER = "{token}"

/** The link of a page and a token: the token is base64url, nothing in it needs escaping. */
export const linkOf = (page: string, token: string) => page.split(TOKEN_PLACEHOLDER).join(token)

/** A body with its link: escaped for an attribute in HTML (a page may hold `&`). */
export const renderLink = (template: string, link: string, html: boolean) =>
  template.split(LINK_PLACEHOLDER).join(html ? escapeHtml(link) : link)
