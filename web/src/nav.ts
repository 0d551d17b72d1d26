// Client-side navigation over the History API. The console's router (router.tsx)
// listens for the NAV_EVENT this module dispatches.

export const LOGIN_PATH = "/login";

/**
 * A same-origin path to return to after login, or "/" when `next` is missing,
 * points at the login page, or could leave the origin ("//host", "/\\host",
 * "https://...", "javascript:...").
 */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  // Control characters could be stripped by the URL parser into "//".
  // oxlint-disable-next-line no-control-regex -- matching them is the point
  if (/[\u0000-\u001f\u007f]/.test(next)) return "/";
  const url = new URL(next, "http://roost.invalid");
  if (url.origin !== "http://roost.invalid" || url.pathname === LOGIN_PATH) return "/";
  return url.pathname + url.search + url.hash;
}

/** The login URL that returns to `current` (a path with query and hash). */
export function loginUrl(current: string): string {
  const next = safeNext(current);
  return next === "/" ? LOGIN_PATH : `${LOGIN_PATH}?next=${encodeURIComponent(next)}`;
}

export function currentPath(): string {
  return window.location.pathname + window.location.search + window.location.hash;
}

export const NAV_EVENT = "roost:navigate";

export function navigate(to: string, replace = false): void {
  if (to === currentPath()) return;
  if (replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  window.dispatchEvent(new Event(NAV_EVENT));
}

/** `pattern` like "/instances/:id" against `path`: the params, or null. */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split("/").filter(Boolean);
  const s = path.split("/").filter(Boolean);
  if (p.length !== s.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const want = p[i] as string;
    const got = s[i] as string;
    if (want.startsWith(":")) {
      try {
        params[want.slice(1)] = decodeURIComponent(got);
      } catch {
        return null;
      }
    } else if (want !== got) return null;
  }
  return params;
}
