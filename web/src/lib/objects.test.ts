import { describe, expect, it } from "vitest";
import {
  allSelected,
  displayName,
  encodeKey,
  inPool,
  normalizePrefix,
  objectMetadata,
  objectUrl,
  parentPrefix,
  prefixCrumbs,
  pruneSelection,
  toggle,
  toggleAll,
  uploadKey,
} from "./objects";

describe("object keys", () => {
  it("are encoded per segment, keeping the slashes", () => {
    expect(encodeKey("photos/2024/a b.jpg")).toBe("photos/2024/a%20b.jpg");
    expect(encodeKey("x?y#z/%.txt")).toBe("x%3Fy%23z/%25.txt");
    expect(encodeKey("dir/")).toBe("dir/");
    expect(encodeKey("ünï/cødé")).toBe("%C3%BCn%C3%AF/c%C3%B8d%C3%A9");
  });
  it("make object URLs", () => {
    expect(objectUrl("b1", "dir/x.txt")).toBe("/v1/buckets/b1/objects/dir/x.txt");
    expect(objectUrl("b1", "a&b.txt", true)).toBe("/v1/buckets/b1/objects/a%26b.txt?download=1");
  });
  it("get the current prefix on upload", () => {
    expect(uploadKey("", { name: "a.txt" })).toBe("a.txt");
    expect(uploadKey("dir", { name: "a.txt" })).toBe("dir/a.txt");
    expect(uploadKey("dir/", { name: "a.txt", webkitRelativePath: "sub/a.txt" })).toBe("dir/sub/a.txt");
  });
});

describe("prefixes", () => {
  it("normalize", () => {
    expect(normalizePrefix("")).toBe("");
    expect(normalizePrefix(null)).toBe("");
    expect(normalizePrefix("a")).toBe("a/");
    expect(normalizePrefix("/a//b/")).toBe("a/b/");
  });
  it("go up", () => {
    expect(parentPrefix("")).toBe("");
    expect(parentPrefix("a/")).toBe("");
    expect(parentPrefix("a/b/")).toBe("a/");
    expect(parentPrefix("a/b/c")).toBe("a/b/");
  });
  it("make a breadcrumb", () => {
    expect(prefixCrumbs("")).toEqual([{ label: "/", prefix: "" }]);
    expect(prefixCrumbs("a/b/")).toEqual([
      { label: "/", prefix: "" },
      { label: "a", prefix: "a/" },
      { label: "b", prefix: "a/b/" },
    ]);
  });
  it("show names relative to the prefix", () => {
    expect(displayName("a/b/c.txt", "a/b/")).toBe("c.txt");
    expect(displayName("a/b/", "a/")).toBe("b/");
    expect(displayName("z.txt", "a/")).toBe("z.txt");
  });
});

describe("selection", () => {
  it("toggles one and all", () => {
    let s = toggle(new Set(), "a");
    expect([...s]).toEqual(["a"]);
    s = toggle(s, "a");
    expect(s.size).toBe(0);
    s = toggle(s, "b", true);
    s = toggle(s, "b", true);
    expect([...s]).toEqual(["b"]);
    expect(allSelected(s, ["a", "b"])).toBe(false);
    s = toggleAll(s, ["a", "b"]);
    expect(allSelected(s, ["a", "b"])).toBe(true);
    expect(toggleAll(s, ["a", "b"]).size).toBe(0);
    expect(allSelected(new Set(), [])).toBe(false);
  });
  it("drops keys no longer listed", () => {
    expect([...pruneSelection(new Set(["a", "b", "c"]), ["b", "c", "d"])]).toEqual(["b", "c"]);
  });
});

describe("metadata", () => {
  it("lists the standard headers and every x-amz-meta-*", () => {
    const h = new Headers({
      "content-type": "text/plain",
      "content-length": "5",
      etag: '"abc"',
      "x-amz-meta-owner": "me",
      "x-amz-meta-a": "1",
      "x-request-id": "r",
    });
    expect(objectMetadata(h)).toEqual([
      ["Content-Type", "text/plain"],
      ["Content-Length", "5"],
      ["ETag", '"abc"'],
      ["x-amz-meta-a", "1"],
      ["x-amz-meta-owner", "me"],
    ]);
  });
});

describe("inPool", () => {
  it("runs at most n at a time and reports each outcome", async () => {
    let running = 0;
    let peak = 0;
    const r = await inPool([1, 2, 3, 4, 5], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((ok) => setTimeout(ok, 5));
      running--;
      if (n === 3) throw new Error("three");
      return n * 2;
    });
    expect(peak).toBe(2);
    expect(r.map((x) => x.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect(r[0]).toEqual({ status: "fulfilled", value: 2 });
  });
});

describe("new folder names", async () => {
  const { folderError } = await import("../pages/BucketBrowser");
  it("refuse empty and dot parts", () => {
    expect(folderError("photos")).toBeNull();
    expect(folderError("photos/2024/")).toBeNull();
    expect(folderError("  ")).toMatch(/name/);
    expect(folderError("a//b")).toMatch(/empty/);
    expect(folderError("../x")).toMatch(/\.\./);
  });
});
