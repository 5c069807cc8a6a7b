/**
 * Reading the API's claims challenge: the 401 answer that means "you are signed in, but this action
 * needs a stronger sign-in" (a Conditional Access authentication context, Entra's step-up):
 *
 *     WWW-Authenticate: Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsi..."
 *
 * where `claims` is the base64 of `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`.
 *
 * The header comes from the network, so it is read as hostile input. Each step refuses (null) what it
 * does not fully understand, and the caller then treats the answer as an ordinary 401 (signed out),
 * never as a reason to send the person somewhere. The steps follow the specifications in order:
 *
 * 1. the header's list of challenges (RFC 9110 section 11.6.1: scheme, then a token68 or
 *    `name=value` parameters whose values are tokens or quoted strings with `\` escapes);
 * 2. exactly one Bearer challenge with `error="insufficient_claims"` (RFC 6750 section 3, Entra's
 *    claims-challenge guide);
 * 3. its `claims` parameter: standard base64 with padding, then UTF-8, then JSON;
 * 4. the JSON as an OpenID Connect claims request (Core 5.5) naming exactly one context in
 *    `access_token.acrs` (`value`, or `values` with one entry), with `essential` true or absent;
 * 5. the context id: c1 to c99, the ids Entra gives authentication contexts.
 */

export const WWW_AUTHENTICATE = "WWW-Authenticate";

/** The Bearer error that asks for a claims challenge (the token lacks a claim, e.g. `acrs`). */
export const INSUFFICIENT_CLAIMS = "insufficient_claims";

/** Longer headers and claims are not the API's; reading them would only cost time. */
const MAX_HEADER_LENGTH = 8192;
const MAX_CLAIMS_LENGTH = 4096;

const AUTH_CONTEXT_ID = /^c([1-9][0-9]?)$/;

/** `c1` to `c99`: the ids Entra gives Conditional Access authentication contexts. */
export function isAuthContextId(value: string): boolean {
  return AUTH_CONTEXT_ID.test(value);
}

/** One challenge of a `WWW-Authenticate` header; scheme and parameter names lower-cased. */
export interface Challenge {
  scheme: string;
  token68: string | null;
  params: ReadonlyMap<string, string>;
}

// RFC 9110 5.6.2: tchar.
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
// RFC 9110 11.2: token68, then only whitespace before the end of the challenge.
const TOKEN68 = /[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(,|$))/y;

function isQuotedText(code: number): boolean {
  // qdtext: HTAB, SP, %x21, %x23-5B, %x5D-7E, obs-text
  return (
    code === 0x09 ||
    code === 0x20 ||
    code === 0x21 ||
    (code >= 0x23 && code <= 0x5b) ||
    (code >= 0x5d && code <= 0x7e) ||
    (code >= 0x80 && code <= 0xff)
  );
}

function isQuotedPairChar(code: number): boolean {
  // quoted-pair: "\" followed by HTAB, SP, VCHAR or obs-text
  return code === 0x09 || (code >= 0x20 && code <= 0x7e) || (code >= 0x80 && code <= 0xff);
}

/** A position in the header; every read either consumes what it recognised or returns a refusal. */
class Cursor {
  private position = 0;

  constructor(private readonly text: string) {}

  get done(): boolean {
    return this.position >= this.text.length;
  }

  get at(): number {
    return this.position;
  }

  rewind(to: number): void {
    this.position = to;
  }

  peek(): string | undefined {
    return this.text[this.position];
  }

  skipWhitespace(): void {
    while (this.peek() === " " || this.peek() === "\t") {
      this.position += 1;
    }
  }

  /** Whitespace and commas: the #rule allows empty list elements between challenges. */
  skipSeparators(): void {
    while (this.peek() === " " || this.peek() === "\t" || this.peek() === ",") {
      this.position += 1;
    }
  }

  token(): string {
    const start = this.position;
    while (!this.done && TOKEN_CHAR.test(this.text[this.position] as string)) {
      this.position += 1;
    }
    return this.text.slice(start, this.position);
  }

  token68(): string | null {
    TOKEN68.lastIndex = this.position;
    const match = TOKEN68.exec(this.text);
    if (match === null) {
      return null;
    }
    this.position += match[0].length;
    return match[0];
  }

  /** A quoted string, unescaped; null if unterminated or holding a character it may not. */
  quotedString(): string | null {
    this.position += 1; // the opening quote
    let value = "";
    while (!this.done) {
      const char = this.text[this.position] as string;
      this.position += 1;
      if (char === '"') {
        return value;
      }
      if (char === "\\") {
        const escaped = this.text[this.position];
        if (escaped === undefined || !isQuotedPairChar(escaped.charCodeAt(0))) {
          return null;
        }
        value += escaped;
        this.position += 1;
      } else if (isQuotedText(char.charCodeAt(0))) {
        value += char;
      } else {
        return null;
      }
    }
    return null;
  }
}

/**
 * Every challenge of a `WWW-Authenticate` value (several headers arrive joined by ", "), or null if
 * any of it is malformed: a header that cannot be read whole is not trusted in part. A parameter
 * named twice in one challenge is malformed too (RFC 9110: each name only once), since the two
 * values could be read differently by different parsers.
 */
export function parseChallenges(header: string): Challenge[] | null {
  if (header.length > MAX_HEADER_LENGTH) {
    return null;
  }
  const cursor = new Cursor(header);
  const challenges: Challenge[] = [];
  cursor.skipSeparators();
  while (!cursor.done) {
    const scheme = cursor.token();
    if (scheme === "") {
      return null;
    }
    const params = new Map<string, string>();
    const challenge: Challenge = { scheme: scheme.toLowerCase(), token68: null, params };
    challenges.push(challenge);

    const afterScheme = cursor.at;
    cursor.skipWhitespace();
    if (cursor.done || cursor.peek() === ",") {
      cursor.skipSeparators();
      continue; // a scheme without parameters
    }
    if (cursor.at === afterScheme) {
      return null; // the scheme runs into something that is not a space
    }

    const token68 = cursor.token68();
    if (token68 !== null) {
      challenge.token68 = token68;
      cursor.skipSeparators();
      continue;
    }

    while (!cursor.done) {
      const start = cursor.at;
      const name = cursor.token();
      if (name === "") {
        return null;
      }
      cursor.skipWhitespace();
      if (cursor.peek() !== "=") {
        // Not a parameter: the next challenge's scheme, which must follow at least one parameter.
        if (params.size === 0) {
          return null;
        }
        cursor.rewind(start);
        break;
      }
      cursor.rewind(cursor.at + 1);
      cursor.skipWhitespace();
      const value = cursor.peek() === '"' ? cursor.quotedString() : cursor.token() || null;
      if (value === null) {
        return null; // an unterminated quoted string, or no value at all
      }
      const key = name.toLowerCase();
      if (params.has(key)) {
        return null;
      }
      params.set(key, value);
      cursor.skipWhitespace();
      if (cursor.done) {
        break;
      }
      if (cursor.peek() !== ",") {
        return null;
      }
      cursor.skipSeparators();
    }
  }
  return challenges;
}

/** The `claims` of the one Bearer challenge whose error is insufficient_claims, or null. */
export function insufficientClaimsChallenge(challenges: readonly Challenge[]): string | null {
  const matching = challenges.filter(
    (challenge) => challenge.scheme === "bearer" && challenge.params.get("error") === INSUFFICIENT_CLAIMS,
  );
  if (matching.length !== 1) {
    return null;
  }
  return matching[0]?.params.get("claims") ?? null;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with padding, as UTF-8 text; null for anything else. */
export function decodeBase64Text(encoded: string): string | null {
  if (encoded === "" || !BASE64.test(encoded)) {
    return null;
  }
  try {
    const bytes = Uint8Array.from(atob(encoded), (char) => char.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A member of the object itself, never one inherited (a polluted prototype is not the API's). */
function own(value: unknown, name: string): unknown {
  return isRecord(value) && Object.hasOwn(value, name) ? value[name] : undefined;
}

/** The one authentication context a claims request asks for in the access token, or null. */
export function requestedAuthContext(claimsRequest: unknown): string | null {
  const acrs = own(own(claimsRequest, "access_token"), "acrs");
  if (!isRecord(acrs)) {
    return null;
  }
  // A voluntary claim is not a requirement: only an essential one is worth a sign-in.
  if (Object.hasOwn(acrs, "essential") && acrs.essential !== true) {
    return null;
  }
  const hasValue = Object.hasOwn(acrs, "value");
  if (hasValue === Object.hasOwn(acrs, "values")) {
    return null; // neither, or both
  }
  let context: unknown = own(acrs, "value");
  if (!hasValue) {
    const values = own(acrs, "values");
    context = Array.isArray(values) && values.length === 1 ? values[0] : null;
  }
  return typeof context === "string" && isAuthContextId(context) ? context : null;
}

/** The authentication context a `claims` challenge parameter names, or null. */
export function authContextFromClaims(claims: string): string | null {
  if (claims.length > MAX_CLAIMS_LENGTH) {
    return null;
  }
  const text = decodeBase64Text(claims);
  if (text === null) {
    return null;
  }
  try {
    return requestedAuthContext(JSON.parse(text));
  } catch {
    return null;
  }
}

/**
 * The authentication context a 401's `WWW-Authenticate` asks the person to step up to ("c1"), or
 * null when the answer is not a claims challenge this page can act on.
 */
export function stepUpContext(header: string | null): string | null {
  if (header === null) {
    return null;
  }
  const challenges = parseChallenges(header);
  if (challenges === null) {
    return null;
  }
  const claims = insufficientClaimsChallenge(challenges);
  return claims === null ? null : authContextFromClaims(claims);
}
