import { describe, expect, it } from "vitest";
import { readCookie, toApiError } from "./api";
import { loginUrl, safeNext } from "./nav";

describe("toApiError", () => {
  it("uses the error envelope", () => {
    const e = toApiError(401, {
      error: { code: "unauthenticated", message: "invalid username or password", request_id: "req-1" },
    });
    expect(e.status).toBe(401);
    expect(e.code).toBe("unauthenticated");
    expect(e.message).toBe("invalid username or password");
    expect(e.requestId).toBe("req-1");
  });

  it("adds the Retry-After hint to 429", () => {
    const e = toApiError(429, { error: { code: "rate_limited", message: "too many login attempts" } }, "30");
    expect(e.message).toBe("too many login attempts Try again in 30 s.");
    expect(toApiError(429, undefined, "soon").message).toBe("Too many requests.");
  });

  it("falls back to the status for bodies that are not the envelope", () => {
    expect(toApiError(502, "<html>Bad Gateway</html>").message).toBe("The Roost server is unavailable.");
    expect(toApiError(500, { error: "boom" }).message).toBe("Server error (HTTP 500).");
    expect(toApiError(418, { error: { message: "  " } }).code).toBe("http_418");
    expect(toApiError(0, undefined).message).toBe("Cannot reach the Roost server.");
  });
});

describe("readCookie", () => {
  it("finds a cookie by exact name", () => {
    expect(readCookie("a=1; roost_csrf=abc%3D; x_roost_csrf=no", "roost_csrf")).toBe("abc=");
    expect(readCookie("roost_csrfx=1", "roost_csrf")).toBeNull();
    expect(readCookie("", "roost_csrf")).toBeNull();
  });
});

describe("safeNext / loginUrl", () => {
  it("keeps same-origin paths", () => {
    expect(safeNext("/instances?status=running#top")).toBe("/instances?status=running#top");
    expect(loginUrl("/instances/i-1")).toBe("/login?next=%2Finstances%2Fi-1");
    expect(loginUrl("/")).toBe("/login");
  });

  it("rejects anything that could leave the origin or loop", () => {
    for (const bad of [null, "", "https://evil.example", "//evil.example", "/\\evil.example", "/\t/evil", "javascript:alert(1)", "/login?next=/x"]) {
      expect(safeNext(bad)).toBe("/");
    }
  });
});
