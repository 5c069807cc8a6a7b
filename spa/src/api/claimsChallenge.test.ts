import { describe, expect, it } from "vitest";
import {
  authContextFromClaims,
  decodeBase64Text,
  insufficientClaimsChallenge,
  isAuthContextId,
  parseChallenges,
  requestedAuthContext,
  stepUpContext,
} from "./claimsChallenge";

// What the API sends (through nginx) for a DELETE without the c1 context.
const C1_CLAIMS = "eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19";
const API_CHALLENGE = `Bearer realm="", error="insufficient_claims", claims="${C1_CLAIMS}"`;

function base64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

function challengeFor(claimsJson: string): string {
  return `Bearer realm="", error="insufficient_claims", claims="${base64(claimsJson)}"`;
}

describe("reading the API's step-up challenge", () => {
  it("finds the context the API's challenge names", () => {
    expect(stepUpContext(API_CHALLENGE)).toBe("c1");
  });

  it("reads the parameters in any order, with an authorization_uri and odd spacing", () => {
    const header =
      `Bearer claims="${C1_CLAIMS}",error="insufficient_claims" ,  ` +
      `authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", realm=""`;
    expect(stepUpContext(header)).toBe("c1");
  });

  it("reads the scheme and parameter names without regard to case", () => {
    expect(stepUpContext(`bearer Error="insufficient_claims", CLAIMS="${C1_CLAIMS}"`)).toBe("c1");
  });

  it("reads a claims value sent as a token rather than a quoted string", () => {
    // Padding ('=') cannot be part of a token; this value needs none.
    expect(C1_CLAIMS.endsWith("=")).toBe(false);
    expect(stepUpContext(`Bearer error=insufficient_claims, claims=${C1_CLAIMS}`)).toBe("c1");
  });

  it("unescapes quoted-pairs inside quoted strings", () => {
    const claims = C1_CLAIMS.replace("e", "\\e");
    expect(stepUpContext(`Bearer realm="a \\"quoted\\" realm, with a comma", error="insufficient_claims", claims="${claims}"`)).toBe(
      "c1",
    );
  });

  it("picks the Bearer challenge among others", () => {
    const header = `Basic realm="x", Negotiate, ${API_CHALLENGE}, Other abc==`;
    expect(stepUpContext(header)).toBe("c1");
  });

  it("accepts values with one entry, and a request without 'essential'", () => {
    expect(stepUpContext(challengeFor('{"access_token":{"acrs":{"essential":true,"values":["c7"]}}}'))).toBe("c7");
    expect(stepUpContext(challengeFor('{"access_token":{"acrs":{"value":"c99"}}}'))).toBe("c99");
  });

  it("ignores other claims and members beside the access token's acrs", () => {
    const json =
      '{"id_token":{"auth_time":{"essential":true}},' +
      '"access_token":{"xms_cc":{"values":["cp1"]},"acrs":{"essential":true,"value":"c3"}}}';
    expect(stepUpContext(challengeFor(json))).toBe("c3");
  });
});

describe("what is not a step-up challenge", () => {
  it("no header at all, or an empty one", () => {
    expect(stepUpContext(null)).toBeNull();
    expect(stepUpContext("")).toBeNull();
  });

  it("a Bearer challenge with another error, or none", () => {
    expect(stepUpContext(`Bearer realm="", error="invalid_token", claims="${C1_CLAIMS}"`)).toBeNull();
    expect(stepUpContext(`Bearer realm="", claims="${C1_CLAIMS}"`)).toBeNull();
    expect(stepUpContext(`Bearer error="INSUFFICIENT_CLAIMS", claims="${C1_CLAIMS}"`)).toBeNull();
  });

  it("another scheme with the same parameters", () => {
    expect(stepUpContext(`DPoP error="insufficient_claims", claims="${C1_CLAIMS}"`)).toBeNull();
    expect(stepUpContext(`Bearerx error="insufficient_claims", claims="${C1_CLAIMS}"`)).toBeNull();
  });

  it("an insufficient_claims challenge without claims", () => {
    expect(stepUpContext('Bearer realm="", error="insufficient_claims"')).toBeNull();
  });

  it("two insufficient_claims Bearer challenges", () => {
    const c2 = challengeFor('{"access_token":{"acrs":{"essential":true,"value":"c2"}}}');
    expect(stepUpContext(`${API_CHALLENGE}, ${c2}`)).toBeNull();
  });

  it("malformed base64: not base64, base64url, missing padding, stray characters", () => {
    const json = '{"access_token":{"acrs":{"essential":true,"value":"c1"}},"note":"???>>>"}';
    const url = Buffer.from(json).toString("base64url");
    expect(stepUpContext(challengeFor(json))).toBe("c1");
    expect(url).not.toBe(base64(json));
    for (const claims of ["not base64!", url, C1_CLAIMS.slice(0, -1), ` ${C1_CLAIMS}`, `${C1_CLAIMS}====`, "====", "%7B%7D"]) {
      expect(stepUpContext(`Bearer error="insufficient_claims", claims="${claims}"`), claims).toBeNull();
    }
  });

  it("base64 of something that is not UTF-8 JSON", () => {
    const notUtf8 = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString("base64");
    for (const claims of [notUtf8, base64("{"), base64("access_token"), base64(""), base64("null")]) {
      expect(stepUpContext(`Bearer error="insufficient_claims", claims="${claims}"`), claims).toBeNull();
    }
  });

  it("JSON of the wrong shape", () => {
    for (const json of [
      "[]",
      '"c1"',
      '{"acrs":{"essential":true,"value":"c1"}}',
      '{"id_token":{"acrs":{"essential":true,"value":"c1"}}}',
      '{"access_token":[{"acrs":{"value":"c1"}}]}',
      '{"access_token":{"acrs":"c1"}}',
      '{"access_token":{"acrs":null}}',
      '{"access_token":{"acrs":{"essential":true}}}',
      '{"access_token":{"acrs":{"essential":false,"value":"c1"}}}',
      '{"access_token":{"acrs":{"essential":"true","value":"c1"}}}',
      '{"access_token":{"acrs":{"value":1}}}',
      '{"access_token":{"acrs":{"value":["c1"]}}}',
      '{"access_token":{"acrs":{"values":["c1","c2"]}}}',
      '{"access_token":{"acrs":{"values":[]}}}',
      '{"access_token":{"acrs":{"values":"c1"}}}',
      '{"access_token":{"acrs":{"value":"c1","values":["c1"]}}}',
    ]) {
      expect(stepUpContext(challengeFor(json)), json).toBeNull();
    }
  });

  it("a context id outside c1..c99", () => {
    for (const id of ["c0", "c01", "c100", "C1", "c", "c1 ", " c1", "c1\n", "p1", "c-1", "c1.5", "ｃ1"]) {
      expect(stepUpContext(challengeFor(JSON.stringify({ access_token: { acrs: { essential: true, value: id } } }))), id).toBeNull();
    }
  });

  it("a header that cannot be read whole", () => {
    for (const header of [
      `Bearer error="insufficient_claims", claims="${C1_CLAIMS}`, // unterminated quoted string
      `Bearer error="insufficient_claims", claims="${C1_CLAIMS}" junk`,
      `Bearer error="insufficient_claims" claims="${C1_CLAIMS}"`, // missing comma
      `Bearer error="insufficient_claims", claims=`,
      `Bearer error="insufficient_claims", claims="${C1_CLAIMS}", error="invalid_token"`, // a name twice
      `Bearer error="insufficient_claims", ="x", claims="${C1_CLAIMS}"`,
      `Bearer error="insufficient\u0001claims", claims="${C1_CLAIMS}"`, // a control character
      `Bearer error="insufficient_claims", claims="${C1_CLAIMS}\\`, // an escape at the very end
      `="x", ${API_CHALLENGE}`,
      `Bearer"x", ${API_CHALLENGE}`,
      `${API_CHALLENGE} ${" ".repeat(9000)}`, // longer than any header the API sends
    ]) {
      expect(stepUpContext(header), header).toBeNull();
    }
  });
});

describe("the parsing steps", () => {
  it("parseChallenges lists every challenge with its token68 or parameters", () => {
    const challenges = parseChallenges(`Basic realm="r\\\\x", , Negotiate abc==, Bearer error=e, realm=""`);
    expect(challenges).toEqual([
      { scheme: "basic", token68: null, params: new Map([["realm", "r\\x"]]) },
      { scheme: "negotiate", token68: "abc==", params: new Map() },
      { scheme: "bearer", token68: null, params: new Map([["error", "e"], ["realm", ""]]) },
    ]);
  });

  it("parseChallenges refuses a token68 followed by parameters", () => {
    expect(parseChallenges("Negotiate abc== realm=x")).toBeNull();
    expect(parseChallenges("Negotiate abc==, realm=x")).toBeNull();
  });

  it("insufficientClaimsChallenge needs exactly one matching Bearer challenge", () => {
    const bearer = (error: string) => ({ scheme: "bearer", token68: null, params: new Map([["error", error], ["claims", "x"]]) });
    expect(insufficientClaimsChallenge([bearer("insufficient_claims")])).toBe("x");
    expect(insufficientClaimsChallenge([bearer("invalid_token"), bearer("insufficient_claims")])).toBe("x");
    expect(insufficientClaimsChallenge([bearer("insufficient_claims"), bearer("insufficient_claims")])).toBeNull();
    expect(insufficientClaimsChallenge([])).toBeNull();
  });

  it("decodeBase64Text takes standard base64 with padding only", () => {
    expect(decodeBase64Text(base64("héllo"))).toBe("héllo");
    expect(decodeBase64Text("aGk=")).toBe("hi");
    expect(decodeBase64Text("aGk")).toBeNull();
    expect(decodeBase64Text("")).toBeNull();
    expect(decodeBase64Text("_-8=")).toBeNull();
  });

  it("requestedAuthContext reads the object, not its prototype", () => {
    expect(requestedAuthContext(JSON.parse('{"access_token":{"__proto__":{"acrs":{"value":"c1"}}}}'))).toBeNull();
    expect(requestedAuthContext(Object.create({ access_token: { acrs: { value: "c1" } } }))).toBeNull();
  });

  it("authContextFromClaims refuses oversized claims", () => {
    const padded = JSON.stringify({ access_token: { acrs: { essential: true, value: "c1" } }, pad: "x".repeat(4000) });
    expect(authContextFromClaims(base64(padded))).toBeNull();
  });

  it("isAuthContextId accepts c1 to c99 only", () => {
    expect(["c1", "c9", "c10", "c42", "c99"].every(isAuthContextId)).toBe(true);
    expect(["c0", "c100", "c01", "C5", ""].some(isAuthContextId)).toBe(false);
  });
});
