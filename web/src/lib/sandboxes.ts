// Pure helpers of the sandbox page: paths of the file browser, the TTL countdown, and
// the signals offered for a process.

/** Seconds left until `at` as "4m 05s" (or "12s"; "0s" once past). */
export function countdown(at: string, now: number): string {
  const s = Math.max(0, Math.round((new Date(at).getTime() - now) / 1000));
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/** An absolute directory path without a trailing slash ("/" stays "/"). */
export function normalizeDir(path: string | null | undefined): string {
  const parts = (path ?? "").split("/").filter((p) => p !== "" && p !== ".");
  const out: string[] = [];
  for (const p of parts) {
    if (p === "..") out.pop();
    else out.push(p);
  }
  return "/" + out.join("/");
}

/** `name` inside directory `dir`. */
export function joinPath(dir: string, name: string): string {
  return normalizeDir(`${normalizeDir(dir)}/${name}`);
}

/** The directory above `dir` ("/" for "/"). */
export function parentDir(dir: string): string {
  return joinPath(dir, "..");
}

/** Breadcrumbs of a directory: each ancestor with its label, "/" first. */
export function dirCrumbs(dir: string): { label: string; path: string }[] {
  const crumbs = [{ label: "/", path: "/" }];
  let acc = "";
  for (const part of normalizeDir(dir).split("/").filter(Boolean)) {
    acc += `/${part}`;
    crumbs.push({ label: part, path: acc });
  }
  return crumbs;
}

/** Why a new file or folder name is refused, or null. */
export function entryNameError(name: string): string | null {
  const n = name.trim();
  if (!n) return "Give it a name";
  if (n.includes("/")) return "A name has no slashes";
  if (n === "." || n === "..") return "Not . or ..";
  return null;
}

/** The download URL of a file of a sandbox. */
export function fileUrl(sandbox: string, path: string): string {
  return `/v1/sandboxes/${encodeURIComponent(sandbox)}/files?path=${encodeURIComponent(path)}`;
}

/** A process's command line for display, quoting arguments with spaces. */
export function commandLine(cmd: string, args: string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

/** The signals the console offers. */
export const SIGNALS = ["TERM", "INT", "HUP", "KILL"] as const;
