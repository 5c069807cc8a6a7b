/**
 * Turn a failed request into a sentence a person can act on. The stable reason code is kept beside
 * the sentence (for a support ticket); nothing from the request itself is echoed.
 */

import { ApiError, NetworkError } from "./api/client";

export interface ErrorMessage {
  text: string;
  reason: string | null;
}

const REASONS: Record<string, string> = {
  read_only: "The service is in read-only mode; changes are switched off for now.",
  project_quota_exceeded: "You have reached the maximum number of projects.",
  not_found: "That item no longer exists. It may have been deleted.",
  redirected_to_sign_in: "Your session has ended. Sign in again to continue.",
  // A step-up this page did not turn into a sign-in (StepUpRequired), e.g. on an action it does not expect one for.
  insufficient_claims: "This action needs you to verify your identity again. Reload the page and try again.",
  // The caller cannot step up (it did not declare the capability to), so the API refuses outright.
  auth_context_required:
    "This action needs a stronger sign-in than this session can provide. Sign out, sign in again and retry, or ask an administrator.",
};

export function describeError(error: unknown): ErrorMessage {
  if (error instanceof NetworkError) {
    return { text: "The server could not be reached. Check your connection and try again.", reason: null };
  }
  if (!(error instanceof ApiError)) {
    return { text: "Something went wrong in the page. Reload and try again.", reason: null };
  }
  const reason = error.reason ?? error.error;
  const known = error.reason !== null ? REASONS[error.reason] : undefined;
  if (known !== undefined) {
    return { text: known, reason };
  }
  if (error.status === 401) {
    return { text: "Your session has ended. Sign in again to continue.", reason };
  }
  if (error.status === 403 && error.reason?.startsWith("csrf_")) {
    return {
      text: "The request could not be confirmed as coming from this page. Reload the page and try again.",
      reason,
    };
  }
  if (error.status === 403) {
    const needs = error.required.length > 0 ? ` It needs: ${error.required.join(", ")}.` : "";
    return { text: `You are not allowed to do this.${needs}`, reason };
  }
  if (error.status === 409) {
    return { text: "The change was refused in the current state of the service.", reason };
  }
  if (error.status === 422) {
    const problems = error.details.map((d) => `${d.loc.filter((p) => p !== "body").join(".")}: ${d.msg}`);
    const text = problems.length > 0 ? `Please check the form. ${problems.join("; ")}.` : "Please check the form.";
    return { text, reason };
  }
  if (error.status === 429) {
    return { text: "Too many requests. Wait a moment and try again.", reason };
  }
  if (error.status >= 500) {
    return { text: "The service is having trouble. Try again in a moment.", reason };
  }
  return { text: `The request failed (HTTP ${error.status}).`, reason };
}
