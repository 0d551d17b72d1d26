// The bucket browser's logic: object keys and prefixes, URLs, selection, uploads.
import { apiHeaders, toApiError } from "../api";

export interface ObjectEntry {
  key: string;
  size: number;
  etag?: string;
  last_modified?: string;
  content_type?: string | null;
}

export interface ObjectListing {
  prefixes: string[];
  objects: ObjectEntry[];
  next_cursor?: string | null;
}

/** An object key for a URL path: each segment percent-encoded, `/` kept between them. */
export function encodeKey(key: string): string {
  return key.split("/").map(encodeURIComponent).join("/");
}

/** The REST URL of an object (GET bytes, HEAD headers, PUT, DELETE). */
export function objectUrl(bucket: string, key: string, download = false): string {
  return `/v1/buckets/${encodeURIComponent(bucket)}/objects/${encodeKey(key)}${download ? "?download=1" : ""}`;
}

/** A prefix as the API wants it: empty, or ending with exactly one `/`. */
export function normalizePrefix(p: string | null | undefined): string {
  const s = (p ?? "").replace(/^\/+/, "").replace(/\/{2,}/g, "/");
  if (!s) return "";
  return s.endsWith("/") ? s : `${s}/`;
}

/** The prefix one level up ("a/b/" → "a/", "a/" → ""). */
export function parentPrefix(prefix: string): string {
  const p = normalizePrefix(prefix);
  if (!p) return "";
  const i = p.slice(0, -1).lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i + 1);
}

/** The breadcrumb of a prefix: the bucket root, then each folder with the prefix it opens. */
export function prefixCrumbs(prefix: string): { label: string; prefix: string }[] {
  const p = normalizePrefix(prefix);
  const out = [{ label: "/", prefix: "" }];
  let acc = "";
  for (const seg of p.split("/").slice(0, -1)) {
    acc += `${seg}/`;
    out.push({ label: seg, prefix: acc });
  }
  return out;
}

/** What to show for a key or prefix inside `prefix` (the rest of it). */
export function displayName(keyOrPrefix: string, prefix: string): string {
  return keyOrPrefix.startsWith(prefix) ? keyOrPrefix.slice(prefix.length) : keyOrPrefix;
}

/** The key a file gets when uploaded into `prefix` (a relative path from a folder drop is kept). */
export function uploadKey(prefix: string, file: { name: string; webkitRelativePath?: string }): string {
  const rel = file.webkitRelativePath || file.name;
  return normalizePrefix(prefix) + rel.replace(/^\/+/, "");
}

/** A selection set with `key` added or removed. */
export function toggle(sel: ReadonlySet<string>, key: string, on?: boolean): Set<string> {
  const next = new Set(sel);
  if (on ?? !next.has(key)) next.add(key);
  else next.delete(key);
  return next;
}

/** Select all of `keys` or, when they are all selected already, none. */
export function toggleAll(sel: ReadonlySet<string>, keys: string[]): Set<string> {
  return allSelected(sel, keys) ? new Set() : new Set(keys);
}

export function allSelected(sel: ReadonlySet<string>, keys: string[]): boolean {
  return keys.length > 0 && keys.every((k) => sel.has(k));
}

/** The selection limited to keys still listed (after a reload or a delete). */
export function pruneSelection(sel: ReadonlySet<string>, keys: string[]): Set<string> {
  const listed = new Set(keys);
  return new Set([...sel].filter((k) => listed.has(k)));
}

const META_HEADERS = ["Content-Type", "Content-Length", "ETag", "Last-Modified", "Cache-Control", "Content-Disposition"];

/** The metadata the panel shows: the standard headers present, then every x-amz-meta-*. */
export function objectMetadata(h: Headers): [string, string][] {
  const out: [string, string][] = [];
  for (const name of META_HEADERS) {
    const v = h.get(name);
    if (v !== null) out.push([name, v]);
  }
  const meta: [string, string][] = [];
  h.forEach((v, k) => {
    if (k.toLowerCase().startsWith("x-amz-meta-")) meta.push([k.toLowerCase(), v]);
  });
  meta.sort((a, b) => a[0].localeCompare(b[0]));
  return [...out, ...meta];
}

/** Runs `fn` over `items`, at most `n` at a time; resolves with each item's outcome. */
export async function inPool<T, R>(items: T[], n: number, fn: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results = Array.from<PromiseSettledResult<R>>({ length: items.length });
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        try {
          results[i] = { status: "fulfilled", value: await fn(items[i] as T) };
        } catch (reason) {
          results[i] = { status: "rejected", reason };
        }
      }
    }),
  );
  return results;
}

/** PUTs `file` as `key` with XMLHttpRequest, reporting upload progress (0..1). */
export function putObject(
  bucket: string,
  key: string,
  file: Blob,
  onProgress: (fraction: number) => void,
): { done: Promise<{ key: string; size: number; etag: string }>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise<{ key: string; size: number; etag: string }>((ok, fail) => {
    xhr.open("PUT", objectUrl(bucket, key));
    xhr.withCredentials = true;
    for (const [k, v] of Object.entries(apiHeaders("PUT", file.type || "application/octet-stream"))) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body: unknown;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : undefined;
      } catch {
        body = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        ok((body as { key: string; size: number; etag: string }) ?? { key, size: file.size, etag: "" });
      } else {
        fail(toApiError(xhr.status, body, xhr.getResponseHeader("Retry-After")));
      }
    };
    xhr.onerror = () => fail(toApiError(0, undefined));
    xhr.onabort = () => fail(new DOMException("Upload cancelled", "AbortError"));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}
