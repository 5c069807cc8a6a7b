import { describe, expect, it } from "vitest";
import { localPath, signInUrl, stepUpClaims, stepUpUrl } from "./session";

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

describe("step-up sign-in URLs", () => {
  const PROJECT = "0b7e3f6c-2d4a-4c1e-9f3b-5a6d7e8f9012";

  it("ask for the context as an essential acrs claim and keep declaring cp1, in the one shape oauth2-proxy forwards", () => {
    expect(stepUpClaims("c1")).toBe('{"access_token":{"xms_cc":{"values":["cp1"]},"acrs":{"essential":true,"value":"c1"}}}');
    expect(stepUpClaims("c42")).toBe('{"access_token":{"xms_cc":{"values":["cp1"]},"acrs":{"essential":true,"value":"c42"}}}');
  });

  it("return to the resume marker, both parameters encoded", () => {
    expect(stepUpUrl("c1", `/?resume=delete-project&project=${PROJECT}`)).toBe(
      `/oauth2/start?rd=%2F%3Fresume%3Ddelete-project%26project%3D${PROJECT}` +
        "&claims=%7B%22access_token%22%3A%7B%22xms_cc%22%3A%7B%22values%22%3A%5B%22cp1%22%5D%7D%2C" +
        "%22acrs%22%3A%7B%22essential%22%3Atrue%2C%22value%22%3A%22c1%22%7D%7D%7D",
    );
  });

  it("never return to another origin", () => {
    expect(stepUpUrl("c2", "//evil.example/")).toMatch(/^\/oauth2\/start\?rd=%2F&claims=/);
  });

  it("refuse anything but a context id, rather than put it in the request", () => {
    for (const bad of ["c0", "c100", "C1", 'c1"},"x":{"', ""]) {
      expect(() => stepUpUrl(bad, "/"), bad).toThrow(RangeError);
    }
  });
});
