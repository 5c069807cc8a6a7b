/**
 * Where sign-in and sign-out live. Both are oauth2-proxy endpoints behind the same nginx, so they are
 * same-origin paths; `rd` (where to come back to) is always a local path, because oauth2-proxy only
 * follows redirects to this site and a full URL here would be refused anyway.
 */

import { isAuthContextId } from "./api/claimsChallenge";

/** `path` if it is a same-origin absolute path, otherwise `/`. Refuses `//host` and `/\host`, which
 * browsers treat as another origin. */
export function localPath(path: string): string {
  if (!path.startsWith("/") || path.startsWith("//") || path.startsWith("/\\")) {
    return "/";
  }
  // Control characters never belong in a path and have been used to split redirects.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) {
    return "/";
  }
  return path;
}

export function signInUrl(returnTo = "/"): string {
  return `/oauth2/start?rd=${encodeURIComponent(localPath(returnTo))}`;
}

/**
 * The `claims` request of a step-up sign-in: the authentication context as an essential `acrs`
 * claim, and the client capability `cp1` in `xms_cc` declared again, because this parameter
 * replaces the claims oauth2-proxy would otherwise send (and without `cp1` the API would have to
 * refuse instead of challenging). Compact JSON in exactly this key order: oauth2-proxy forwards a
 * `claims` parameter to the identity provider only in this shape.
 */
export function stepUpClaims(contextId: string): string {
  if (!isAuthContextId(contextId)) {
    throw new RangeError(`expected an authentication context id c1..c99, got ${JSON.stringify(contextId)}`);
  }
  return JSON.stringify({ access_token: { xms_cc: { values: ["cp1"] }, acrs: { essential: true, value: contextId } } });
}

/** A sign-in that adds the authentication context `contextId` to the session, then returns to `returnTo`. */
export function stepUpUrl(contextId: string, returnTo: string): string {
  return `${signInUrl(returnTo)}&claims=${encodeURIComponent(stepUpClaims(contextId))}`;
}
