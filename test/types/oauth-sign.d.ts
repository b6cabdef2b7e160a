// oauth-sign ships no types; only `sign` is used, as an independent OAuth 1.0a oracle in tests.
declare module "oauth-sign" {
  export function sign(
    signatureMethod: string,
    httpMethod: string,
    baseUri: string,
    params: Record<string, string | Array<string>>,
    consumerSecret: string,
    tokenSecret?: string
  ): string
  export function rfc3986(value: string): string
}
