import { describe, expect, it } from "vitest";
import { CsrfTokenHolder, isPlausibleCsrfToken } from "./csrf";

const TOKEN = "v1.AAAAAAAAAAAAAAAAAAAAAA.1900000000.q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80";

describe("CsrfTokenHolder", () => {
  it("starts empty and hands out nothing", () => {
    const holder = new CsrfTokenHolder();
    expect(holder.has()).toBe(false);
    expect(holder.take()).toBeNull();
  });

  it("hands out the remembered token exactly once, because the server spends it", () => {
    const holder = new CsrfTokenHolder();
    holder.remember(TOKEN);
    expect(holder.has()).toBe(true);
    expect(holder.take()).toBe(TOKEN);
    expect(holder.has()).toBe(false);
    expect(holder.take()).toBeNull();
  });

  it("keeps the most recent token", () => {
    const holder = new CsrfTokenHolder();
    holder.remember(TOKEN);
    holder.remember(`${TOKEN}x`);
    expect(holder.take()).toBe(`${TOKEN}x`);
  });

  it("ignores a missing header and keeps the token it has", () => {
    const holder = new CsrfTokenHolder();
    holder.remember(TOKEN);
    holder.remember(null);
    holder.remember(undefined);
    holder.remember("");
    expect(holder.take()).toBe(TOKEN);
  });

  it("refuses values that are not token-shaped, so they are never sent back", () => {
    const holder = new CsrfTokenHolder();
    for (const junk of ["a b", "<html>", "v1.abc\r\nX-Evil: 1", "x".repeat(257), "tok;en", "tök"]) {
      holder.remember(junk);
      expect(holder.has(), junk).toBe(false);
    }
  });

  it("forgets the token on clear", () => {
    const holder = new CsrfTokenHolder();
    holder.remember(TOKEN);
    holder.clear();
    expect(holder.take()).toBeNull();
  });
});

describe("isPlausibleCsrfToken", () => {
  it("accepts the server's v1 token shape and the longest allowed value", () => {
    expect(isPlausibleCsrfToken(TOKEN)).toBe(true);
    expect(isPlausibleCsrfToken("a".repeat(256))).toBe(true);
  });

  it("rejects empty, over-long and non-base64url values", () => {
    expect(isPlausibleCsrfToken("")).toBe(false);
    expect(isPlausibleCsrfToken("a".repeat(257))).toBe(false);
    expect(isPlausibleCsrfToken("a/b")).toBe(false);
    expect(isPlausibleCsrfToken("a+b=")).toBe(false);
  });
});
