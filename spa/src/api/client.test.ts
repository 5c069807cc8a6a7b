import { describe, expect, it } from "vitest";
import { ApiClient, ApiError, NetworkError, StepUpRequired, isCsrfRefusal, isUnsafeMethod, type FetchLike } from "./client";
import { CsrfTokenHolder } from "./csrf";

interface Call {
  url: string;
  method: string;
  csrf: string | null;
  body: string | null;
  credentials: RequestCredentials | undefined;
  redirect: RequestRedirect | undefined;
}

type Reply = { status: number; body?: unknown; token?: string; headers?: Record<string, string> } | Error;

/** A fake `fetch` that answers from a script and records what the client sent. */
function scripted(replies: Reply[]): { fetch: FetchLike; calls: Call[] } {
  const calls: Call[] = [];
  const fetch: FetchLike = async (url, init) => {
    const headers = new Headers(init.headers);
    calls.push({
      url,
      method: init.method ?? "GET",
      csrf: headers.get("X-CSRF-Token"),
      body: typeof init.body === "string" ? init.body : null,
      credentials: init.credentials,
      redirect: init.redirect,
    });
    const reply = replies.shift();
    if (reply === undefined) {
      throw new Error(`unexpected request ${init.method} ${url}`);
    }
    if (reply instanceof Error) {
      throw reply;
    }
    const responseHeaders = new Headers(reply.headers);
    if (reply.token !== undefined) {
      responseHeaders.set("X-CSRF-Token", reply.token);
    }
    if (reply.status === 204) {
      return new Response(null, { status: 204, headers: responseHeaders });
    }
    responseHeaders.set("Content-Type", "application/json");
    return new Response(JSON.stringify(reply.body ?? {}), { status: reply.status, headers: responseHeaders });
  };
  return { fetch, calls };
}

const ME = { oid: "o", name: "Bob", roles: ["Writer"] };

describe("method classification", () => {
  it("treats everything but GET, HEAD and OPTIONS as unsafe, like the server", () => {
    for (const method of ["GET", "head", "Options"]) {
      expect(isUnsafeMethod(method), method).toBe(false);
    }
    for (const method of ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", "post"]) {
      expect(isUnsafeMethod(method), method).toBe(true);
    }
  });

  it("recognises only 403 answers with a csrf_ reason as CSRF refusals", () => {
    expect(isCsrfRefusal(403, "csrf_token_expired")).toBe(true);
    expect(isCsrfRefusal(403, "csrf_token_spent")).toBe(true);
    expect(isCsrfRefusal(403, "insufficient_roles")).toBe(false);
    expect(isCsrfRefusal(403, null)).toBe(false);
    expect(isCsrfRefusal(401, "csrf_token_missing")).toBe(false);
  });
});

describe("ApiClient reads", () => {
  it("sends GET same-origin with no CSRF header, never follows redirects, and remembers the token", async () => {
    const { fetch, calls } = scripted([{ status: 200, body: ME, token: "t1" }]);
    const csrf = new CsrfTokenHolder();
    const client = new ApiClient({ fetch, csrf });

    await expect(client.get("/me")).resolves.toEqual(ME);

    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ url: "/api/me", method: "GET", csrf: null, credentials: "same-origin", redirect: "manual" });
    expect(csrf.take()).toBe("t1");
  });

  it("turns a 401 into an ApiError with the reason and tells the page it is signed out", async () => {
    const { fetch } = scripted([{ status: 401, body: { error: "unauthenticated", reason: "session_expired" } }]);
    const signedOut: ApiError[] = [];
    const client = new ApiClient({ fetch, onUnauthenticated: (error) => signedOut.push(error) });

    const failure = await client.get("/me").catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(ApiError);
    expect(failure).toMatchObject({ status: 401, reason: "session_expired", error: "unauthenticated" });
    expect(signedOut).toHaveLength(1);
  });

  it("reports a fetch that never got an answer as a NetworkError", async () => {
    const { fetch } = scripted([new TypeError("Failed to fetch")]);
    const client = new ApiClient({ fetch });
    await expect(client.get("/projects")).rejects.toBeInstanceOf(NetworkError);
  });

  it("keeps the 403 reason and the required permissions", async () => {
    const { fetch } = scripted([
      { status: 403, body: { error: "forbidden", reason: "missing_role", required: ["Admin"] }, token: "t" },
    ]);
    const client = new ApiClient({ fetch });
    await expect(client.get("/admin/settings")).rejects.toMatchObject({
      status: 403,
      reason: "missing_role",
      required: ["Admin"],
    });
  });
});

describe("ApiClient writes", () => {
  it("sends the held token on a POST and keeps the fresh one from the answer", async () => {
    const { fetch, calls } = scripted([{ status: 201, body: { id: "p1" }, token: "t2" }]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t1");
    const client = new ApiClient({ fetch, csrf });

    await expect(client.post("/projects", { name: "A", description: "" })).resolves.toEqual({ id: "p1" });

    expect(calls).toEqual([
      expect.objectContaining({ url: "/api/projects", method: "POST", csrf: "t1", body: '{"name":"A","description":""}' }),
    ]);
    expect(csrf.take()).toBe("t2");
  });

  it("fetches /api/me first when it holds no token", async () => {
    const { fetch, calls } = scripted([
      { status: 200, body: ME, token: "fresh" },
      { status: 204, token: "next" },
    ]);
    const client = new ApiClient({ fetch });

    await expect(client.delete("/projects/p1")).resolves.toBeUndefined();

    expect(calls.map((c) => [c.method, c.url, c.csrf])).toEqual([
      ["GET", "/api/me", null],
      ["DELETE", "/api/projects/p1", "fresh"],
    ]);
  });

  it("never sends the same token twice: with none left it fetches a fresh one", async () => {
    const { fetch, calls } = scripted([
      { status: 200, body: {}, token: "a" },
      { status: 200, body: {} }, // this answer carries no token
      { status: 200, body: ME, token: "b" },
      { status: 200, body: {} },
    ]);
    const csrf = new CsrfTokenHolder();
    const client = new ApiClient({ fetch, csrf });
    csrf.remember("first");

    await client.patch("/projects/1", { name: "x" });
    await client.patch("/projects/1", { name: "y" });
    await client.patch("/projects/1", { name: "z" });

    expect(calls.map((c) => [c.method, c.csrf])).toEqual([
      ["PATCH", "first"],
      ["PATCH", "a"],
      ["GET", null],
      ["PATCH", "b"],
    ]);
  });

  it("retries once with a fresh token after a csrf_ refusal", async () => {
    const { fetch, calls } = scripted([
      { status: 403, body: { error: "forbidden", reason: "csrf_token_expired" } },
      { status: 200, body: ME, token: "fresh" },
      { status: 201, body: { id: "p1" }, token: "after" },
    ]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("stale");
    const client = new ApiClient({ fetch, csrf });

    await expect(client.post("/projects", { name: "A" })).resolves.toEqual({ id: "p1" });

    expect(calls.map((c) => [c.method, c.url, c.csrf])).toEqual([
      ["POST", "/api/projects", "stale"],
      ["GET", "/api/me", null],
      ["POST", "/api/projects", "fresh"],
    ]);
    expect(csrf.take()).toBe("after");
  });

  it("gives up after the one retry and surfaces the second csrf_ refusal", async () => {
    const { fetch, calls } = scripted([
      { status: 403, body: { reason: "csrf_token_spent" } },
      { status: 200, body: ME, token: "fresh" },
      { status: 403, body: { error: "forbidden", reason: "csrf_origin_mismatch" } },
    ]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t");
    const client = new ApiClient({ fetch, csrf });

    await expect(client.put("/admin/settings", {})).rejects.toMatchObject({ status: 403, reason: "csrf_origin_mismatch" });
    expect(calls).toHaveLength(3);
  });

  it("does not retry a 403 that is about permissions", async () => {
    const { fetch, calls } = scripted([{ status: 403, body: { error: "forbidden", reason: "missing_role", required: ["Admin"] } }]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t");
    const client = new ApiClient({ fetch, csrf });

    await expect(client.delete("/projects/1")).rejects.toMatchObject({ status: 403, reason: "missing_role" });
    expect(calls).toHaveLength(1);
  });

  it("stops if the session ended while fetching a fresh token", async () => {
    const { fetch, calls } = scripted([
      { status: 403, body: { reason: "csrf_token_expired" } },
      { status: 401, body: { error: "unauthenticated", reason: "no_credentials" } },
    ]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t");
    let signedOut = 0;
    const client = new ApiClient({ fetch, csrf, onUnauthenticated: () => (signedOut += 1) });

    await expect(client.post("/projects", { name: "A" })).rejects.toMatchObject({ status: 401 });
    expect(calls).toHaveLength(2);
    expect(signedOut).toBe(1);
  });

  it("runs concurrent writes one after another so each gets its own token", async () => {
    const { fetch, calls } = scripted([
      { status: 201, body: { id: 1 }, token: "t2" },
      { status: 201, body: { id: 2 }, token: "t3" },
    ]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t1");
    const client = new ApiClient({ fetch, csrf });

    const results = await Promise.all([client.post("/projects", { name: "A" }), client.post("/projects", { name: "B" })]);

    expect(results).toEqual([{ id: 1 }, { id: 2 }]);
    expect(calls.map((c) => c.csrf)).toEqual(["t1", "t2"]);
  });

  it("keeps running later writes after one fails", async () => {
    const { fetch, calls } = scripted([
      { status: 409, body: { error: "conflict", reason: "read_only" }, token: "t2" },
      { status: 201, body: { id: 2 }, token: "t3" },
    ]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t1");
    const client = new ApiClient({ fetch, csrf });

    const first = client.post("/projects", { name: "A" });
    const second = client.post("/projects", { name: "B" });

    await expect(first).rejects.toMatchObject({ status: 409, reason: "read_only" });
    await expect(second).resolves.toEqual({ id: 2 });
    expect(calls.map((c) => c.csrf)).toEqual(["t1", "t2"]);
  });

  it("treats a redirect answer as signed out instead of following it", async () => {
    const redirect: FetchLike = async () => {
      const response = new Response(null, { status: 200 });
      Object.defineProperty(response, "type", { value: "opaqueredirect" });
      return response;
    };
    let signedOut = 0;
    const client = new ApiClient({ fetch: redirect, onUnauthenticated: () => (signedOut += 1) });

    await expect(client.get("/me")).rejects.toMatchObject({ status: 401, reason: "redirected_to_sign_in" });
    expect(signedOut).toBe(1);
  });
});

describe("ApiClient and the API's step-up challenge", () => {
  const CHALLENGE =
    'Bearer realm="", error="insufficient_claims", ' +
    'claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"';
  const BODY = { error: "unauthorized", reason: "insufficient_claims", required: ["c1"] };

  it("turns the challenge into StepUpRequired and leaves the page signed in", async () => {
    const { fetch, calls } = scripted([{ status: 401, body: BODY, headers: { "WWW-Authenticate": CHALLENGE } }]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t1");
    let signedOut = 0;
    const client = new ApiClient({ fetch, csrf, onUnauthenticated: () => (signedOut += 1) });

    const failure = await client.delete("/projects/p1").catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(StepUpRequired);
    expect(failure).toBeInstanceOf(ApiError);
    expect(failure).toMatchObject({ status: 401, reason: "insufficient_claims", required: ["c1"], contextId: "c1" });
    expect(signedOut).toBe(0);
    expect(calls).toHaveLength(1); // never retried
  });

  it("keeps the CSRF token the challenge brought for the next write", async () => {
    const { fetch, calls } = scripted([
      { status: 401, body: BODY, headers: { "WWW-Authenticate": CHALLENGE }, token: "t2" },
      { status: 204, token: "t3" },
    ]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t1");
    const client = new ApiClient({ fetch, csrf });

    await expect(client.put("/admin/settings", {})).rejects.toBeInstanceOf(StepUpRequired);
    await client.delete("/projects/p2");

    expect(calls.map((c) => [c.method, c.csrf])).toEqual([
      ["PUT", "t1"],
      ["DELETE", "t2"],
    ]);
  });

  it("treats a 401 with another Bearer error as signed out", async () => {
    const { fetch } = scripted([
      {
        status: 401,
        body: { error: "unauthenticated", reason: "expired" },
        headers: { "WWW-Authenticate": 'Bearer realm="", error="invalid_token"' },
        token: "t2",
      },
    ]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t1");
    let signedOut = 0;
    const client = new ApiClient({ fetch, csrf, onUnauthenticated: () => (signedOut += 1) });

    const failure = await client.delete("/projects/p1").catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(ApiError);
    expect(failure).not.toBeInstanceOf(StepUpRequired);
    expect(signedOut).toBe(1);
    expect(csrf.has()).toBe(false);
  });

  it("treats a challenge it cannot read as signed out", async () => {
    const { fetch } = scripted([
      { status: 401, body: BODY, headers: { "WWW-Authenticate": 'Bearer error="insufficient_claims", claims="bm90IGpzb24="' } },
    ]);
    let signedOut = 0;
    const client = new ApiClient({ fetch, onUnauthenticated: () => (signedOut += 1) });

    await expect(client.get("/me")).rejects.not.toBeInstanceOf(StepUpRequired);
    expect(signedOut).toBe(1);
  });

  it("ignores a step-up header on anything but a 401", async () => {
    const { fetch } = scripted([
      {
        status: 403,
        body: { error: "forbidden", reason: "auth_context_required", required: ["c1"] },
        headers: { "WWW-Authenticate": CHALLENGE },
      },
    ]);
    const csrf = new CsrfTokenHolder();
    csrf.remember("t1");
    const client = new ApiClient({ fetch, csrf });

    const failure = await client.delete("/projects/p1").catch((error: unknown) => error);

    expect(failure).not.toBeInstanceOf(StepUpRequired);
    expect(failure).toMatchObject({ status: 403, reason: "auth_context_required", required: ["c1"] });
  });
});
