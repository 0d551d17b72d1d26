import { describe, expect, it } from "vitest";
import { commandLine, countdown, dirCrumbs, entryNameError, fileUrl, joinPath, normalizeDir, parentDir } from "./sandboxes";

describe("sandbox page helpers", () => {
  it("counts down the time left", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(countdown("2026-01-01T00:04:05Z", now)).toBe("4m 05s");
    expect(countdown("2026-01-01T00:00:12Z", now)).toBe("12s");
    expect(countdown("2025-12-31T23:59:00Z", now)).toBe("0s");
  });

  it("normalizes, joins and climbs directories", () => {
    expect(normalizeDir("")).toBe("/");
    expect(normalizeDir("/root/")).toBe("/root");
    expect(normalizeDir("/a/./b/../c")).toBe("/a/c");
    expect(joinPath("/root", "x.txt")).toBe("/root/x.txt");
    expect(joinPath("/", "tmp")).toBe("/tmp");
    expect(parentDir("/root/a")).toBe("/root");
    expect(parentDir("/")).toBe("/");
  });

  it("breaks a directory into crumbs", () => {
    expect(dirCrumbs("/root/a")).toEqual([
      { label: "/", path: "/" },
      { label: "root", path: "/root" },
      { label: "a", path: "/root/a" },
    ]);
  });

  it("refuses names with slashes or dots", () => {
    expect(entryNameError("ok.txt")).toBeNull();
    expect(entryNameError(" ")).not.toBeNull();
    expect(entryNameError("a/b")).not.toBeNull();
    expect(entryNameError("..")).not.toBeNull();
  });

  it("builds download URLs and command lines", () => {
    expect(fileUrl("sbx-1", "/root/a b.txt")).toBe("/v1/sandboxes/sbx-1/files?path=%2Froot%2Fa%20b.txt");
    expect(commandLine("sh", ["-c", "echo hi"])).toBe("sh -c 'echo hi'");
    expect(commandLine("sleep", ["1000"])).toBe("sleep 1000");
  });
});
