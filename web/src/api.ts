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

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE_METHODS.has(method)) {
    const csrf = csrfToken();
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }

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
  if (!res.ok) throw toApiError(res.status, data, res.headers.get("Retry-After"));
  return data as T;
}

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
