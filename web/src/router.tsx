// A small router over nav.ts: the location as React state, links, and route matching.
import { useEffect, useState, useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react";
import { NAV_EVENT, navigate } from "./nav";

function subscribe(cb: () => void): () => void {
  window.addEventListener("popstate", cb);
  window.addEventListener(NAV_EVENT, cb);
  return () => {
    window.removeEventListener("popstate", cb);
    window.removeEventListener(NAV_EVENT, cb);
  };
}

const snapshot = () => window.location.pathname + window.location.search;

/** The current path and query; re-renders on navigation. */
export function useLocation(): { pathname: string; search: URLSearchParams; href: string } {
  const href = useSyncExternalStore(subscribe, snapshot, snapshot);
  const url = new URL(href, "http://x");
  return { pathname: url.pathname, search: url.searchParams, href };
}

/** Query-string state: read one parameter, and set several (replacing history). */
export function useSearchParams(): [URLSearchParams, (next: Record<string, string | null | undefined>) => void] {
  const { search } = useLocation();
  const set = (next: Record<string, string | null | undefined>) => {
    const q = new URLSearchParams(window.location.search);
    for (const [k, v] of Object.entries(next)) {
      if (v === null || v === undefined || v === "") q.delete(k);
      else q.set(k, v);
    }
    const s = q.toString();
    navigate(window.location.pathname + (s ? `?${s}` : ""), true);
  };
  return [search, set];
}

let preloader: ((path: string) => void) | undefined;
/** Lets links start loading a page's code when pointed at or focused. */
export function setPreloader(f: (path: string) => void): void {
  preloader = f;
}

export function Link({ to, onClick, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  function click(e: MouseEvent<HTMLAnchorElement>) {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
    window.scrollTo(0, 0);
  }
  const warm = () => preloader?.(to.split("?")[0] ?? to);
  return <a href={to} onClick={click} onMouseEnter={warm} onFocus={warm} {...rest} />;
}

/** Sets the document title while mounted. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Roost` : "Roost";
  }, [title]);
}

/** A value that follows `value` after `ms` of quiet. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
