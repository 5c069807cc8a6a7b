/**
 * Where sign-in and sign-out live. Both are oauth2-proxy endpoints behind the same nginx, so they are
 * same-origin paths; `rd` (where to come back to) is always a local path, because oauth2-proxy only
 * follows redirects to this site and a full URL here would be refused anyway.
 */

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
