// Formatting and parsing of sizes and times shown in the console.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  const digits = i === 0 || v >= 100 || Number.isInteger(v) ? 0 : 1;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i;

/** "512M", "1.5 GiB", "2g", "1073741824" → bytes (binary units), or null when unreadable. */
export function parseBytes(s: string): number | null {
  const m = SIZE_RE.exec(s);
  if (!m || !m[1]) return null;
  const n = Number(m[1]);
  const unit = (m[2] ?? "").toLowerCase();
  const exp = unit === "" ? (m[3] ? 0 : 2) : "kmgt".indexOf(unit) + 1;
  // A bare number means MiB (the wizard's unit); "B" alone means bytes.
  const bytes = Math.round(n * 1024 ** exp);
  return Number.isFinite(bytes) ? bytes : null;
}

export function formatTime(s: string | null | undefined): string {
  if (!s) return "—";
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toLocaleString();
}

export function relativeTime(s: string | null | undefined, now = Date.now()): string {
  if (!s) return "—";
  const t = new Date(s).getTime();
  if (Number.isNaN(t)) return s;
  const secs = Math.round((now - t) / 1000);
  const abs = Math.abs(secs);
  const fmt = (n: number, u: string) => `${n} ${u}${n === 1 ? "" : "s"}`;
  let text: string;
  if (abs < 45) text = fmt(abs, "second");
  else if (abs < 3600) text = fmt(Math.round(abs / 60), "minute");
  else if (abs < 86400) text = fmt(Math.round(abs / 3600), "hour");
  else text = fmt(Math.round(abs / 86400), "day");
  return secs >= 0 ? `${text} ago` : `in ${text}`;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
