import { describe, expect, it } from "vitest";
import type { Image, Usage } from "../types";
import { initialState, quotaUse, size, splitCommand, toRequest, validateStep, type WizardState } from "./wizard";

const img = (name: string, status: Image["status"] = "ready"): Image => ({ id: `img-${name}`, name, source: "builtin", status, created_at: "" });
const ctx = { images: [img("busybox"), img("deb", "building")] };
const st = (p: Partial<WizardState>): WizardState => ({ ...initialState(), ...p });
const MiB = 1048576;

describe("wizard validation", () => {
  it("requires a ready image", () => {
    expect(validateStep("image", st({}), ctx).image).toBe("Choose an image");
    expect(validateStep("image", st({ image: "nope" }), ctx).image).toMatch(/No image/);
    expect(validateStep("image", st({ image: "deb" }), ctx).image).toMatch(/building/);
    expect(validateStep("image", st({ image: "busybox" }), ctx)).toEqual({});
  });

  it("checks custom sizes", () => {
    expect(validateStep("size", st({ preset: "custom", cpus: "0", memory: "1G" }), ctx).cpus).toBeDefined();
    expect(validateStep("size", st({ preset: "custom", cpus: "abc", memory: "1G" }), ctx).cpus).toBeDefined();
    expect(validateStep("size", st({ preset: "custom", cpus: "1", memory: "lots" }), ctx).memory).toBeDefined();
    expect(validateStep("size", st({ preset: "custom", cpus: "1", memory: "2M" }), ctx).memory).toMatch(/4 MiB/);
    expect(validateStep("size", st({ preset: "custom", cpus: "1.5", memory: "768" }), ctx)).toEqual({});
    expect(size(st({ preset: "custom", cpus: "1.5", memory: "768" }))).toEqual({ cpus: 1.5, memory_bytes: 768 * MiB });
    expect(size(st({ preset: "medium" }))).toEqual({ cpus: 1, memory_bytes: 512 * MiB });
  });

  it("refuses a size over the quota", () => {
    const usage: Usage = { project_id: "p", resources: { instances: { used: 1, limit: 10 }, vcpus: { used: 1, limit: 2 }, memory_bytes: { used: 0, limit: null } } };
    const e = validateStep("size", st({ preset: "large" }), { ...ctx, usage });
    expect(e.quota).toMatch(/vCPUs/);
    expect(validateStep("size", st({ preset: "medium" }), { ...ctx, usage })).toEqual({});
    const lines = quotaUse(st({ preset: "medium" }), usage);
    expect(lines.map((l) => [l.label, l.after, l.limit, l.over])).toEqual([
      ["instances", "2", "10", false],
      ["vCPUs", "2", "2", false],
      ["memory", "512 MiB", "no limit", false],
    ]);
  });

  it("checks name, command and env", () => {
    expect(validateStep("config", st({}), ctx).name).toBeDefined();
    expect(validateStep("config", st({ name: "Web" }), ctx).name).toBeDefined();
    expect(validateStep("config", st({ name: "web" }), { ...ctx, takenNames: new Set(["web"]) }).name).toMatch(/exists/);
    expect(validateStep("config", st({ name: "web", command: "sh -c 'oops" }), ctx).command).toMatch(/quote/);
    const e = validateStep("config", st({ name: "web", env: [{ key: "1X", value: "" }, { key: "A", value: "1" }, { key: "A", value: "2" }] }), ctx);
    expect(Object.keys(e).sort()).toEqual(["env.0", "env.2"]);
    expect(validateStep("config", st({ name: "web-1", command: "sleep 100" }), ctx)).toEqual({});
  });

  it("review collects every step's errors", () => {
    const e = validateStep("review", st({ preset: "custom", cpus: "-1" }), ctx);
    expect(Object.keys(e).sort()).toEqual(["cpus", "image", "name"]);
  });
});

describe("network step", () => {
  it("needs a network when the defaults are replaced, and known names", () => {
    const net = { ...ctx, networks: ["default", "back"], securityGroups: ["default", "web"] };
    expect(validateStep("network", st({}), net)).toEqual({});
    expect(validateStep("network", st({ networks: [] }), net).networks).toMatch(/at least one/);
    expect(validateStep("network", st({ networks: ["gone"] }), net).networks).toMatch(/no longer/);
    expect(validateStep("network", st({ networks: ["back", "default"], security_groups: ["web"] }), net)).toEqual({});
    expect(validateStep("network", st({ security_groups: ["nope"] }), net).security_groups).toBeDefined();
    expect(toRequest(st({ name: "x", networks: ["back", "default"], security_groups: [] }), "p")).toMatchObject({
      networks: [{ network: "back" }, { network: "default" }],
      security_groups: [],
    });
  });
});

describe("splitCommand", () => {
  it("splits words and quotes", () => {
    expect(splitCommand(`sh -c "echo 'hi there'; sleep 1"`)).toEqual(["sh", "-c", "echo 'hi there'; sleep 1"]);
    expect(splitCommand("a  b\\ c ''")).toEqual(["a", "b c", ""]);
    expect(splitCommand("'open")).toBeNull();
  });
});

describe("toRequest", () => {
  it("builds the API body", () => {
    const body = toRequest(
      st({ name: "web", image: "busybox", preset: "nano", command: "sleep 9", env: [{ key: "A", value: "1" }, { key: "", value: "" }], labels: [{ key: "app", value: "x" }] }),
      "default",
    );
    expect(body).toEqual({
      name: "web",
      image: "busybox",
      project: "default",
      cpus: 0.25,
      memory_bytes: 128 * MiB,
      command: ["sleep", "9"],
      env: { A: "1" },
      labels: { app: "x" },
      restart: "never",
      start: true,
    });
    expect(toRequest(st({ name: "x" }), undefined).command).toBeUndefined();
  });
});
