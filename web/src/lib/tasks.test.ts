import { describe, expect, it } from "vitest";
import { formatPeriod, formatTook, nextRun, summary } from "./tasks";

describe("background tasks", () => {
  it("reads periods and durations naturally", () => {
    expect(formatPeriod(1000)).toBe("1s");
    expect(formatPeriod(1500)).toBe("1.5s");
    expect(formatPeriod(600_000)).toBe("10m");
    expect(formatPeriod(5_400_000)).toBe("1h 30m");
    expect(formatPeriod(250)).toBe("250ms");
    expect(formatTook(3)).toBe("3ms");
    expect(formatTook(1234)).toBe("1.2s");
  });

  it("summarises a run", () => {
    const run = { server: "srv-a", started_at: "2026-01-01T00:00:00Z", elapsed_ms: 1 };
    expect(summary({ ...run, outcome: "ok", details: { expired: 2, failed: 0 } })).toBe("expired 2, failed 0");
    expect(summary({ ...run, outcome: "ok", details: { expired_sessions: 1 } })).toBe("expired sessions 1");
    expect(summary({ ...run, outcome: "error", error: "store: gone" })).toBe("store: gone");
  });

  it("says when it runs next", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    const task = { name: "t", description: "", period_ms: 1000, runs: 1 };
    expect(nextRun({ ...task, next_run_at: "2026-01-01T00:00:05Z" }, now)).toBe("in 5 seconds");
    expect(nextRun({ ...task, next_run_at: "2025-12-31T23:59:59Z" }, now)).toBe("now");
    expect(nextRun({ ...task, next_run_at: "2026-01-01T00:00:05Z", run_requested_at: "2026-01-01T00:00:00Z" }, now)).toBe("asked for");
    expect(nextRun({ ...task, next_run_at: null }, now)).toBe("—");
  });
});
