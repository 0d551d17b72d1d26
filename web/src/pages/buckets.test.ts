import { describe, expect, it } from "vitest";
import { bucketNameError } from "./Buckets";

describe("bucket names", () => {
  it("follow S3's rules", () => {
    expect(bucketNameError("photos")).toBeNull();
    expect(bucketNameError("my.site-2026")).toBeNull();
    expect(bucketNameError("no")).toMatch(/3–63/);
    expect(bucketNameError("Photos")).toMatch(/3–63/);
    expect(bucketNameError("-photos")).toMatch(/3–63/);
    expect(bucketNameError("192.168.1.10")).toMatch(/IP address/);
    expect(bucketNameError("a..b")).toMatch(/two dots/);
  });
});
