import { describe, expect, it } from "vitest";
import { localPath, signInUrl } from "./session";

describe("sign-in URLs", () => {
  it("point at oauth2-proxy on this origin with an encoded return path", () => {
    expect(signInUrl()).toBe("/oauth2/start?rd=%2F");
    expect(signInUrl("/projects?x=1&y=2")).toBe("/oauth2/start?rd=%2Fprojects%3Fx%3D1%26y%3D2");
  });

  it("never return to another origin", () => {
    for (const hostile of ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "", "evil"]) {
      expect(localPath(hostile), hostile).toBe("/");
      expect(signInUrl(hostile), hostile).toBe("/oauth2/start?rd=%2F");
    }
  });

  it("refuses paths with control characters", () => {
    expect(localPath("/a\r\nLocation: x")).toBe("/");
    expect(localPath("/a\tb")).toBe("/");
  });

  it("keeps ordinary local paths", () => {
    expect(localPath("/")).toBe("/");
    expect(localPath("/projects/1#edit")).toBe("/projects/1#edit");
  });
});
