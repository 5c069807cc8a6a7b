import { describe, expect, it } from "vitest";
import { ApiError, NetworkError } from "./api/client";
import { describeError } from "./messages";

describe("describeError", () => {
  it("names the missing permission on a 403 and keeps the reason code", () => {
    const message = describeError(new ApiError(403, { error: "forbidden", reason: "missing_role", required: ["Writer", "Admin"] }));
    expect(message.text).toBe("You are not allowed to do this. It needs: Writer, Admin.");
    expect(message.reason).toBe("missing_role");
  });

  it("explains a CSRF refusal as a page problem, not a permission problem", () => {
    const message = describeError(new ApiError(403, { error: "forbidden", reason: "csrf_token_missing" }));
    expect(message.text).toMatch(/could not be confirmed as coming from this page/);
    expect(message.reason).toBe("csrf_token_missing");
  });

  it("explains a refused step-up as a sign-in too weak for the action, not a missing role", () => {
    const message = describeError(new ApiError(403, { error: "forbidden", reason: "auth_context_required", required: ["c1"] }));
    expect(message.text).toMatch(/^This action needs a stronger sign-in/);
    expect(message.reason).toBe("auth_context_required");
  });

  it("tells a signed-out person to sign in again", () => {
    const message = describeError(new ApiError(401, { error: "unauthenticated", reason: "expired" }));
    expect(message.text).toMatch(/Sign in again/);
    expect(message.reason).toBe("expired");
  });

  it("has plain words for the API's conflict reasons", () => {
    expect(describeError(new ApiError(409, { error: "conflict", reason: "read_only" })).text).toMatch(/read-only mode/);
    expect(describeError(new ApiError(409, { error: "conflict", reason: "project_quota_exceeded" })).text).toMatch(
      /maximum number of projects/,
    );
  });

  it("lists validation problems by field without the 'body' prefix", () => {
    const error = new ApiError(422, {
      error: "invalid_request",
      details: [{ loc: ["body", "name"], type: "string_too_long", msg: "String should have at most 100 characters" }],
    });
    expect(describeError(error)).toEqual({
      text: "Please check the form. name: String should have at most 100 characters.",
      reason: "invalid_request",
    });
  });

  it("falls back to the error code and the status for anything else", () => {
    expect(describeError(new ApiError(418, {}))).toEqual({ text: "The request failed (HTTP 418).", reason: "http_418" });
    expect(describeError(new ApiError(503, { error: "unavailable", reason: "database_unavailable" })).text).toMatch(/trouble/);
  });

  it("separates network failures and page bugs from API answers", () => {
    expect(describeError(new NetworkError("Failed to fetch"))).toEqual({
      text: "The server could not be reached. Check your connection and try again.",
      reason: null,
    });
    expect(describeError(new TypeError("x")).reason).toBeNull();
  });
});
