/**
 * Coming back to an action after a step-up sign-in.
 *
 * When the API asks for a stronger sign-in, the page leaves for the identity provider and is loaded
 * afresh when it comes back. The interrupted action travels in the return address as a marker:
 *
 *     ?resume=delete-project&project=<project uuid>
 *     ?resume=admin-settings&draft=<base64url of the settings draft's compact JSON>
 *
 * The address is the only place it can travel: the page keeps nothing in web storage or cookies
 * (storage.test.ts), and the session belongs to oauth2-proxy.
 *
 * A marker only ever re-opens the action, for one more click by the person; it never performs it.
 * Anyone can craft such an address and send it as a link, and following a link is not consent to
 * delete a project or change the settings. For the same reason the marker is read as hostile input:
 * a known kind, exactly its own parameter once, a UUID, a draft of exactly the settings' shape within
 * the form's bounds; anything else re-opens nothing. The page reads it once at start and removes it
 * from the address, so a reload or a bookmark does not bring it back.
 */

import { ADMIN_SETTINGS_LIMITS, type AdminSettingsUpdate } from "./api/types";

export type ResumeAction =
  | { kind: "delete-project"; projectId: string }
  | { kind: "admin-settings"; draft: AdminSettingsUpdate };

/** Why a marker re-opens nothing. */
export type ResumeRefusal =
  | "unknown_kind"
  | "repeated_parameter"
  | "missing_parameter"
  | "unexpected_parameter"
  | "bad_project_id"
  | "bad_draft_encoding"
  | "bad_draft_json"
  | "bad_draft_shape";

export type ResumeMarker = ResumeAction | { kind: "refused"; reason: ResumeRefusal };

const RESUME = "resume";
const PROJECT = "project";
const DRAFT = "draft";
const MARKER_PARAMETERS = [RESUME, PROJECT, DRAFT];

// RFC 9562's textual form; the API's ids are lower-case.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
// The largest valid draft (a 200-character banner of 3-byte characters or JSON escapes) encodes to
// under 1,700 characters.
const MAX_DRAFT_LENGTH = 2048;

/** The parameter that carries each kind's subject. */
function subjectParameter(kind: string): string | null {
  switch (kind) {
    case "delete-project":
      return PROJECT;
    case "admin-settings":
      return DRAFT;
    default:
      return null;
  }
}

/** Where the step-up sign-in returns to: `pathname` and the marker, no other query. */
export function resumeReturnPath(pathname: string, action: ResumeAction): string {
  const marker = new URLSearchParams({ [RESUME]: action.kind });
  if (action.kind === "delete-project") {
    marker.set(PROJECT, action.projectId);
  } else {
    marker.set(DRAFT, encodeSettingsDraft(action.draft));
  }
  return `${pathname}?${marker.toString()}`;
}

/** The settings draft as compact JSON in UTF-8, base64url without padding (safe in a query as is). */
export function encodeSettingsDraft(draft: AdminSettingsUpdate): string {
  const json = JSON.stringify({
    read_only: draft.read_only,
    max_projects_per_owner: draft.max_projects_per_owner,
    banner: draft.banner,
  });
  const binary = Array.from(new TextEncoder().encode(json), (byte) => String.fromCharCode(byte)).join("");
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The text a base64url value (no padding) encodes, or null if it is not that or not UTF-8. */
function decodeBase64UrlText(encoded: string): string | null {
  if (encoded.length > MAX_DRAFT_LENGTH || !BASE64URL.test(encoded) || encoded.length % 4 === 1) {
    return null;
  }
  const padded = encoded.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (encoded.length % 4)) % 4);
  try {
    const bytes = Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** `value` if it is exactly an AdminSettingsUpdate the form could have sent, otherwise null. */
export function parseSettingsDraft(value: unknown): AdminSettingsUpdate | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return null;
  }
  const fields = value as Record<string, unknown>;
  if (Object.keys(fields).sort().join(",") !== "banner,max_projects_per_owner,read_only") {
    return null;
  }
  const { read_only, max_projects_per_owner, banner } = fields;
  if (typeof read_only !== "boolean") {
    return null;
  }
  if (
    typeof max_projects_per_owner !== "number" ||
    !Number.isInteger(max_projects_per_owner) ||
    max_projects_per_owner < ADMIN_SETTINGS_LIMITS.minProjectsPerOwner ||
    max_projects_per_owner > ADMIN_SETTINGS_LIMITS.maxProjectsPerOwner
  ) {
    return null;
  }
  if (typeof banner !== "string" || banner.length > ADMIN_SETTINGS_LIMITS.bannerMaxLength) {
    return null;
  }
  return { read_only, max_projects_per_owner, banner };
}

/** The marker in a query string (`location.search`), null if there is none, or why it is refused. */
export function parseResumeMarker(search: string): ResumeMarker | null {
  const params = new URLSearchParams(search);
  if (!params.has(RESUME)) {
    return null;
  }
  const refuse = (reason: ResumeRefusal): ResumeMarker => ({ kind: "refused", reason });
  const names = [...params.keys()];
  if (new Set(names).size !== names.length) {
    return refuse("repeated_parameter");
  }
  const kind = params.get(RESUME) ?? "";
  const subject = subjectParameter(kind);
  if (subject === null) {
    return refuse("unknown_kind");
  }
  const value = params.get(subject);
  if (value === null) {
    return refuse("missing_parameter");
  }
  if (names.length !== 2) {
    return refuse("unexpected_parameter");
  }
  if (subject === PROJECT) {
    return UUID.test(value) ? { kind: "delete-project", projectId: value } : refuse("bad_project_id");
  }
  const json = decodeBase64UrlText(value);
  if (json === null) {
    return refuse("bad_draft_encoding");
  }
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch {
    return refuse("bad_draft_json");
  }
  const draft = parseSettingsDraft(document);
  return draft === null ? refuse("bad_draft_shape") : { kind: "admin-settings", draft };
}

/** The query string without the marker's parameters ("" if nothing else is left). */
export function withoutResumeMarker(search: string): string {
  const params = new URLSearchParams(search);
  for (const name of MARKER_PARAMETERS) {
    params.delete(name);
  }
  const rest = params.toString();
  return rest === "" ? "" : `?${rest}`;
}

/**
 * Reads the marker once, at start, and removes it from the address (without a navigation), so that a
 * reload does not re-open the action. A refused marker is removed too and re-opens nothing.
 */
export function takeResumeAction(
  location: Pick<Location, "pathname" | "search" | "hash">,
  history: Pick<History, "state" | "replaceState">,
): ResumeAction | null {
  const marker = parseResumeMarker(location.search);
  if (marker === null) {
    return null;
  }
  history.replaceState(history.state, "", location.pathname + withoutResumeMarker(location.search) + location.hash);
  return marker.kind === "refused" ? null : marker;
}
