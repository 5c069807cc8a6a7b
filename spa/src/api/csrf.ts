/**
 * The CSRF token the SPA sends back on unsafe requests.
 *
 * Every session-authenticated API response carries a fresh `X-CSRF-Token`; each token is accepted
 * once and only for a few minutes. The holder keeps the most recent one in memory only: never in
 * localStorage, sessionStorage or a cookie, so nothing outlives the page and nothing is readable by
 * another document.
 */

export const CSRF_HEADER = "X-CSRF-Token";

// The server's tokens are `v1.<nonce>.<expiry>.<mac>`, about 90 characters of base64url and dots.
// Anything else (an HTML error page's header, a proxy's junk) is not remembered, so it is never sent.
const MAX_TOKEN_CHARS = 256;
const TOKEN_SHAPE = /^[A-Za-z0-9._~-]+$/;

export function isPlausibleCsrfToken(value: string | null | undefined): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_TOKEN_CHARS && TOKEN_SHAPE.test(value);
}

export class CsrfTokenHolder {
  private token: string | null = null;

  /** Keep `value` if it looks like a token; a missing or malformed header leaves the current one. */
  remember(value: string | null | undefined): void {
    if (isPlausibleCsrfToken(value)) {
      this.token = value;
    }
  }

  /**
   * Hand out the token for one unsafe request and forget it: the server spends it, so sending it
   * twice would only earn a `csrf_token_spent` refusal.
   */
  take(): string | null {
    const token = this.token;
    this.token = null;
    return token;
  }

  has(): boolean {
    return this.token !== null;
  }

  clear(): void {
    this.token = null;
  }
}
