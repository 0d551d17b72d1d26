import { describe, expect, it } from "vitest";
import type { Instance } from "../types";
import { currentCursor, eligible, firstPage, instanceQuery, labelError, nextPage, pageNumber, prevPage, sortState, toggleSort } from "./instances";
import { parseBytes, formatBytes } from "./format";
import { countByStatus } from "../pages/Dashboard";
import { filterItems } from "../components/Palette";
import { effectiveRole } from "../session";

const inst = (name: string, status: Instance["status"]) => ({ id: `i-${name}`, name, status }) as Instance;

describe("instances table", () => {
  it("turns filters into the API query", () => {
    expect(instanceQuery({ q: "web", status: "running", label: "app=x", sort: "name", limit: 25 }, "default", "c1")).toEqual({
      project: "default",
      status: "running",
      label: "app=x",
      name: "*web*",
      sort: "name",
      limit: 25,
      cursor: "c1",
    });
    expect(instanceQuery({ q: "web-*" }, undefined).name).toBe("web-*");
    expect(instanceQuery({}, "p")).toMatchObject({ name: undefined, status: undefined, sort: "-created_at", limit: 50 });
  });

  it("validates label filters", () => {
    expect(labelError("")).toBeNull();
    expect(labelError("app=web")).toBeNull();
    expect(labelError("app")).toMatch(/key=value/);
    expect(labelError("=x")).toMatch(/key=value/);
  });

  it("cycles sorting per column", () => {
    expect(toggleSort(undefined, "name")).toBe("name");
    expect(toggleSort("name", "name")).toBe("-name");
    expect(toggleSort("-name", "name")).toBe("name");
    expect(toggleSort("name", "created_at")).toBe("-created_at");
    expect(toggleSort(undefined, "created_at")).toBe("created_at");
    expect(sortState(undefined, "created_at")).toBe("descending");
    expect(sortState("name", "name")).toBe("ascending");
    expect(sortState("name", "created_at")).toBe("none");
  });

  it("pages with a cursor stack", () => {
    let p = firstPage();
    expect(currentCursor(p)).toBeUndefined();
    p = nextPage(nextPage(p, "a"), "b");
    expect([pageNumber(p), currentCursor(p)]).toEqual([3, "b"]);
    p = prevPage(p);
    expect([pageNumber(p), currentCursor(p)]).toEqual([2, "a"]);
    expect(pageNumber(prevPage(prevPage(p)))).toBe(1);
  });

  it("applies bulk actions only where they make sense", () => {
    const sel = [inst("a", "running"), inst("b", "stopped"), inst("c", "terminating")];
    expect(eligible("start", sel).map((i) => i.name)).toEqual(["b"]);
    expect(eligible("stop", sel).map((i) => i.name)).toEqual(["a"]);
    expect(eligible("delete", sel).map((i) => i.name)).toEqual(["a", "b"]);
    expect(countByStatus(sel)).toEqual({ running: 1, stopped: 1, terminating: 1 });
  });
});

describe("helpers", () => {
  it("parses and formats sizes", () => {
    expect(parseBytes("512M")).toBe(512 * 1048576);
    expect(parseBytes("1.5 GiB")).toBe(1.5 * 1073741824);
    expect(parseBytes("256")).toBe(256 * 1048576);
    expect(parseBytes("100B")).toBe(100);
    expect(parseBytes("x")).toBeNull();
    expect(formatBytes(536870912)).toBe("512 MiB");
    expect(formatBytes(1536)).toBe("1.5 KiB");
  });

  it("computes the effective role like the API's policy", () => {
    expect(effectiveRole("admin", null)).toBe("admin");
    expect(effectiveRole("operator", "viewer")).toBe("viewer");
    expect(effectiveRole("viewer", "operator")).toBe("viewer");
    expect(effectiveRole("operator", "admin")).toBe("operator");
    expect(effectiveRole("operator", null)).toBeNull();
  });

  it("filters palette items by every word", () => {
    const items = [
      { label: "Instances", hint: "page", to: "/instances" },
      { label: "Launch instance", hint: "action", to: "/instances/new" },
    ];
    expect(filterItems(items, "launch inst").map((i) => i.to)).toEqual(["/instances/new"]);
    expect(filterItems(items, "").length).toBe(2);
  });
});
