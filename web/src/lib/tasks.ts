// Background tasks: how their periods, durations and run summaries read.
import { relativeTime } from "./format";
import type { BackgroundTask, TaskRun } from "../types";

/** A period: `1s`, `10m`, `1h 30m`, `1.5s`. */
export function formatPeriod(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`;
  const parts: string[] = [];
  let s = Math.round(ms / 1000);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  return parts.join(" ");
}

/** How long a run took: `3ms`, `1.2s`. */
export function formatTook(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** A run's details in one line: `expired 2, failed 0`. */
export function summary(run: TaskRun): string {
  if (run.outcome === "error") return run.error ?? "failed";
  return Object.entries(run.details ?? {})
    .map(([k, v]) => `${k.replace(/_/g, " ")} ${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(", ");
}

/** When it runs next: `asked for`, `now` (due within a second or overdue), `in 5 seconds`, `—`. */
export function nextRun(t: BackgroundTask, now = Date.now()): string {
  if (t.run_requested_at) return "asked for";
  if (!t.next_run_at) return "—";
  const at = new Date(t.next_run_at).getTime();
  return at - now < 1000 ? "now" : relativeTime(t.next_run_at, now);
}
