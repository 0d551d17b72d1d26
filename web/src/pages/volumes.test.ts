import { describe, expect, it } from "vitest";
import { initialState, toRequest, validateStep } from "../lib/wizard";
import { cronError, volumePathError, volumeSize } from "./Volumes";

describe("volume forms", () => {
  it("reads sizes, a bare number as GiB", () => {
    expect(volumeSize("10")).toBe(10 * 1024 ** 3);
    expect(volumeSize("512m")).toBe(512 * 1024 ** 2);
    expect(volumeSize("2g")).toBe(2 * 1024 ** 3);
    expect(volumeSize("lots")).toBeNull();
  });

  it("checks mount paths", () => {
    expect(volumePathError("/data")).toBeNull();
    expect(volumePathError("data")).not.toBeNull();
    expect(volumePathError("/")).not.toBeNull();
    expect(volumePathError("/a/../etc")).not.toBeNull();
    expect(volumePathError("/a:b")).not.toBeNull();
  });

  it("checks cron expressions", () => {
    expect(cronError("0 2 * * *")).toBeNull();
    expect(cronError("*/5 * * * 1-5")).toBeNull();
    expect(cronError("0 2 * *")).not.toBeNull();
    expect(cronError("0 2 * * mon")).not.toBeNull();
  });
});

describe("the wizard's volumes", () => {
  it("sends chosen volumes and refuses bad paths", () => {
    const s = { ...initialState(), name: "web", image: "busybox", volumes: [{ volume: "data", path: "/data" }] };
    expect(toRequest(s, "default").volumes).toEqual([{ volume: "data", path: "/data" }]);
    expect(toRequest(initialState(), "default").volumes).toBeUndefined();
    expect(validateStep("network", s, { images: [] }).volumes).toBeUndefined();
    const bad = { ...s, volumes: [{ volume: "data", path: "data" }] };
    expect(validateStep("network", bad, { images: [] }).volumes).toBeTruthy();
    const twice = { ...s, volumes: [{ volume: "a", path: "/x" }, { volume: "b", path: "/x" }] };
    expect(validateStep("network", twice, { images: [] }).volumes).toBeTruthy();
  });
});
