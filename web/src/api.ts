// Thin client for the Roost REST API (same origin, JSON).
//
// The console authenticates with the httpOnly `roost_session` cookie set by
// POST /v1/auth/login. Mutations authenticated by that cookie must also send
// `X-CSRF-Token`; the token comes back in the login response and is kept in
// sessionStorage, with the non-httpOnly `roost_csrf` cookie as a fallback
// (e.g. a new tab of an existing session).

export type Role = string;

export interface User {
  id: string;
  name: string;
  role: Role;
}

export interface LoginResponse {
  token: string;
  expires_at: string;
  user: User;
  csrf_token: string;
}

export interface Whoami {
  user: User;
  auth: "session" | "token";
  scope?: string;
  project_id?: string | null;
}

/** The error envelope every API error uses. */
export interface ErrorBody {
  error: { code: string; message: string; request_id?: string };
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | undefined;

  constructor(status: number, code: string, message: string, requestId?: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

const CSRF_KEY = "roost_csrf";
const CSRF_COOKIE = "roost_csrf";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function statusText(status: number): string {
  switch (status) {
    case 0:
      return "Cannot reach the Roost server.";
    case 400:
      return "The request was invalid.";
    case 401:
      return "Not signed in.";
    case 403:
      return "Permission denied.";
    case 404:
      return "Not found.";
    case 429:
      return "Too many requests.";
    case 502:
    case 503:
    case 504:
      return "The Roost server is unavailable.";
    default:
      return status >= 500 ? `Server error (HTTP ${status}).` : `Request failed (HTTP ${status}).`;
  }
}

/**
 * Turns a failed response into an ApiError: the envelope's message when the
 * body is a well-formed `{"error": {...}}`, otherwise a sentence for the status.
 * A 429's Retry-After (seconds) is appended as a hint.
 */
export function toApiError(status: number, body: unknown, retryAfter?: string | null): ApiError {
  const err = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  const code = typeof err?.code === "string" && err.code ? err.code : `http_${status}`;
  const requestId = typeof err?.request_id === "string" ? err.request_id : undefined;
  let message =
    typeof err?.message === "string" && err.message.trim() ? err.message.trim() : statusText(status);
  if (status === 429 && retryAfter) {
    const secs = Number(retryAfter);
    if (Number.isFinite(secs) && secs >= 0) {
      message += ` Try again in ${Math.ceil(secs)} s.`;
    }
  }
  return new ApiError(status, code, message, requestId);
}

/** Value of cookie `name` in a `document.cookie`-style string, or null. */
export function readCookie(cookies: string, name: string): string | null {
  for (const part of cookies.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return null;
}

export function csrfToken(): string | null {
  try {
    const stored = sessionStorage.getItem(CSRF_KEY);
    if (stored) return stored;
  } catch {
    // sessionStorage can be unavailable (privacy modes); fall back to the cookie.
  }
  return readCookie(document.cookie, CSRF_COOKIE);
}

function storeCsrf(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(CSRF_KEY, token);
    else sessionStorage.removeItem(CSRF_KEY);
  } catch {
    // ignore; the cookie fallback still works
  }
}

/** `path` with the defined, non-empty values of `params` as its query string. */
export function withQuery(path: string, params: Record<string, string | number | boolean | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}${path.includes("?") ? "&" : "?"}${s}` : path;
}

/** Headers for a request: JSON accept, and the CSRF token on mutations. */
export function apiHeaders(method: string, contentType?: string): Record<string, string> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (contentType) headers["Content-Type"] = contentType;
  if (!SAFE_METHODS.has(method.toUpperCase())) {
    const csrf = csrfToken();
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  return headers;
}

/** A raw fetch with the session's credentials and CSRF header; errors become ApiError. */
export async function rawRequest(
  method: string,
  path: string,
  body?: BodyInit,
  contentType?: string,
  signal?: AbortSignal,
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: apiHeaders(method, contentType),
      credentials: "same-origin",
      body,
      signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw toApiError(0, undefined);
  }
  if (!res.ok) {
    const data: unknown = (res.headers.get("Content-Type") ?? "").includes("json")
      ? await res.json().catch(() => undefined)
      : undefined;
    throw toApiError(res.status, data, res.headers.get("Retry-After"));
  }
  return res;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers = apiHeaders(method, body !== undefined ? "application/json" : undefined);

  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw toApiError(0, undefined);
  }

  let data: unknown = undefined;
  if (res.status !== 204 && (res.headers.get("Content-Type") ?? "").includes("json")) {
    data = await res.json().catch(() => undefined);
  }
  if (!res.ok) {
    if (res.status === 401 && path !== "/v1/auth/whoami" && path !== "/v1/auth/login") onUnauthorized?.();
    throw toApiError(res.status, data, res.headers.get("Retry-After"));
  }
  return data as T;
}

let onUnauthorized: (() => void) | undefined;
/** Called when a request finds the session gone (expired, logged out elsewhere). */
export function setUnauthorizedHandler(f: (() => void) | undefined): void {
  onUnauthorized = f;
}

/** Every item of the collection at `path`: follows `next_cursor` through pages of 1000. */
export async function allPages<T>(path: string, params: Record<string, string | number | boolean | null | undefined> = {}): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await request<{ items: T[]; next_cursor?: string | null }>("GET", withQuery(path, { ...params, limit: 1000, cursor }));
    out.push(...page.items);
    if (!page.next_cursor) return out;
    cursor = page.next_cursor;
  }
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  all: allPages,
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body),
  put: <T>(path: string, body?: unknown) => request<T>("PUT", path, body),
  patch: <T>(path: string, body?: unknown) => request<T>("PATCH", path, body),
  del: <T>(path: string) => request<T>("DELETE", path),
};

export async function login(username: string, password: string): Promise<User> {
  const res = await request<LoginResponse>("POST", "/v1/auth/login", { username, password });
  storeCsrf(res.csrf_token);
  return res.user;
}

/** The signed-in identity, or null when not signed in (401). */
export async function whoami(): Promise<Whoami | null> {
  try {
    return await request<Whoami>("GET", "/v1/auth/whoami");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function logout(): Promise<void> {
  try {
    await request<void>("POST", "/v1/auth/logout");
  } catch (e) {
    // An expired session is already logged out.
    if (!(e instanceof ApiError && e.status === 401)) throw e;
  } finally {
    storeCsrf(null);
  }
}
