import { describe, expect, it } from "vitest";
import { buildFormError, hitRate, parseCommands, shortKey } from "./templates";

describe("sandbox templates", () => {
  it("reads one command per line", () => {
    expect(parseCommands("pip install x\n\n  echo hi > /a  \r\nexit 0\n")).toEqual(["pip install x", "echo hi > /a", "exit 0"]);
    expect(parseCommands("   \n")).toEqual([]);
  });

  it("checks the build form", () => {
    expect(buildFormError("ds", ["true"])).toBeNull();
    expect(buildFormError("", ["true"])).not.toBeNull();
    expect(buildFormError("Bad Name", ["true"])).not.toBeNull();
    expect(buildFormError("base", ["true"])).toContain("builtin");
    expect(buildFormError("ds", [])).toContain("command");
  });

  it("shows the hit rate and short keys", () => {
    expect(hitRate(0, 0)).toBe("-");
    expect(hitRate(1, 1)).toBe("50%");
    expect(hitRate(2, 1)).toBe("67%");
    expect(shortKey("0123456789abcdef")).toBe("0123456789ab");
    expect(shortKey(null)).toBe("-");
  });
});
