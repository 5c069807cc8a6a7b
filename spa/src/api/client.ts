/**
 * The API client: same-origin `fetch` with the session cookie, plus the CSRF token dance.
 *
 * - Every response's `X-CSRF-Token` is remembered (in memory, see csrf.ts).
 * - Unsafe requests (anything but GET/HEAD/OPTIONS, as the server counts them) send the remembered
 *   token; if none is held, `GET /api/me` fetches one first.
 * - A 403 whose reason starts with `csrf_` (expired, spent, ...) is retried exactly once with a fresh
 *   token; a second refusal is shown to the person, never retried in a loop.
 * - Unsafe requests run one at a time: tokens are single-use, so two concurrent writes holding the same
 *   token would make one of them fail.
 * - A 401 that carries a claims challenge (claimsChallenge.ts) is not a signed-out session: the
 *   action needs a stronger sign-in, so it becomes StepUpRequired and the page stays signed in.
 *
 * `fetch` is injected so the retry logic is unit-tested without a browser.
 */

import { stepUpContext, WWW_AUTHENTICATE } from "./claimsChallenge";
import { CSRF_HEADER, CsrfTokenHolder } from "./csrf";
import type { ApiErrorBody } from "./types";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function isUnsafeMethod(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

export function isCsrfRefusal(status: number, reason: string | null): boolean {
  return status === 403 && reason !== null && reason.startsWith("csrf_");
}

export class ApiError extends Error {
  readonly status: number;
  readonly error: string;
  readonly reason: string | null;
  readonly required: string[];
  readonly details: { loc: (string | number)[]; type: string; msg: string }[];

  constructor(status: number, body: ApiErrorBody) {
    const reason = typeof body.reason === "string" ? body.reason : null;
    const error = typeof body.error === "string" ? body.error : `http_${status}`;
    super(`${status} ${reason ?? error}`);
    this.name = "ApiError";
    this.status = status;
    this.error = error;
    this.reason = reason;
    this.required = Array.isArray(body.required) ? body.required.filter((r) => typeof r === "string") : [];
    this.details = Array.isArray(body.details) ? body.details : [];
  }
}

/**
 * The person is signed in, but the session's access token lacks the authentication context this
 * action requires (Conditional Access step-up); `contextId` ("c1") is the one to sign in for.
 */
export class StepUpRequired extends ApiError {
  readonly contextId: string;

  constructor(body: ApiErrorBody, contextId: string) {
    super(401, body);
    this.name = "StepUpRequired";
    this.contextId = contextId;
  }
}

/** The request never got an HTTP answer (offline, DNS, TLS, a redirect to another origin). */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetworkError";
  }
}

export interface ApiClientOptions {
  fetch?: FetchLike;
  csrf?: CsrfTokenHolder;
  basePath?: string;
  /** Called on every 401 but a step-up challenge, so the page can switch to its signed-out view. */
  onUnauthenticated?: (error: ApiError) => void;
}

async function readBody(response: Response): Promise<unknown> {
  if (response.status === 204 || response.status === 205) {
    return undefined;
  }
  const type = response.headers.get("Content-Type") ?? "";
  if (!type.toLowerCase().includes("json")) {
    return undefined;
  }
  try {
    return await response.json();
  } catch {
    return undefined;
  }
}

function asErrorBody(value: unknown): ApiErrorBody {
  return value !== null && typeof value === "object" ? (value as ApiErrorBody) : {};
}

export class ApiClient {
  private readonly fetchImpl: FetchLike;
  readonly csrf: CsrfTokenHolder;
  private readonly basePath: string;
  private readonly onUnauthenticated: (error: ApiError) => void;
  private writeQueue: Promise<unknown> = Promise.resolve();

  constructor(options: ApiClientOptions = {}) {
    // Bound to globalThis: calling an unbound window.fetch as a method of another object throws.
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.csrf = options.csrf ?? new CsrfTokenHolder();
    this.basePath = options.basePath ?? "/api";
    this.onUnauthenticated = options.onUnauthenticated ?? (() => undefined);
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PUT", path, body);
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PATCH", path, body);
  }

  delete<T = void>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }

  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const verb = method.toUpperCase();
    if (!isUnsafeMethod(verb)) {
      return this.send(verb, path, body, null).then((response) => this.finish<T>(response));
    }
    const run = () => this.write<T>(verb, path, body);
    const result = this.writeQueue.then(run, run);
    // The queue only orders writes; one write's failure must not fail the next.
    this.writeQueue = result.catch(() => undefined);
    return result;
  }

  /** Fetch a fresh CSRF token (any authenticated answer carries one); `/me` is the cheapest. */
  async refreshCsrfToken(): Promise<void> {
    const response = await this.send("GET", "/me", undefined, null);
    await this.finish<unknown>(response);
  }

  private async write<T>(method: string, path: string, body: unknown): Promise<T> {
    let response = await this.sendWithToken(method, path, body);
    if (response.status === 403) {
      const reason = asErrorBody(await readBody(response.clone())).reason ?? null;
      if (isCsrfRefusal(response.status, reason)) {
        this.csrf.clear();
        await this.refreshCsrfToken();
        response = await this.sendWithToken(method, path, body);
      }
    }
    return this.finish<T>(response);
  }

  private async sendWithToken(method: string, path: string, body: unknown): Promise<Response> {
    if (!this.csrf.has()) {
      await this.refreshCsrfToken();
    }
    return this.send(method, path, body, this.csrf.take());
  }

  private async send(method: string, path: string, body: unknown, csrfToken: string | null): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (csrfToken !== null) {
      headers[CSRF_HEADER] = csrfToken;
    }
    let response: Response;
    try {
      response = await this.fetchImpl(this.basePath + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // The session cookie is HttpOnly and same-origin; the page never sees or sends it itself.
        credentials: "same-origin",
        cache: "no-store",
        // /api answers 401 rather than redirecting; a redirect means something between us and the
        // API wants a sign-in, which an XHR cannot follow across origins anyway.
        redirect: "manual",
      });
    } catch (error) {
      throw new NetworkError(error instanceof Error ? error.message : "the request failed");
    }
    this.csrf.remember(response.headers.get(CSRF_HEADER));
    return response;
  }

  private async finish<T>(response: Response): Promise<T> {
    if (response.type === "opaqueredirect") {
      const error = new ApiError(401, { error: "unauthenticated", reason: "redirected_to_sign_in" });
      this.onUnauthenticated(error);
      throw error;
    }
    const body = await readBody(response);
    if (response.ok) {
      return body as T;
    }
    if (response.status === 401) {
      const contextId = stepUpContext(response.headers.get(WWW_AUTHENTICATE));
      if (contextId !== null) {
        // Still signed in: only this action wants more. The session, the held CSRF token and the
        // page stay as they are; the page asks the person before sending them to sign in again.
        throw new StepUpRequired(asErrorBody(body), contextId);
      }
    }
    const error = new ApiError(response.status, asErrorBody(body));
    if (response.status === 401) {
      this.csrf.clear();
      this.onUnauthenticated(error);
    }
    throw error;
  }
}
