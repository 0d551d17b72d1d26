import { describe, expect, it } from "vitest";
import { actorLabel } from "./audit";

describe("actorLabel", () => {
  const names = (id: string) => ({ "usr-1": "admin" })[id] ?? id;
  it("names users, and the server as Roost with the reason", () => {
    expect(actorLabel({ actor: "usr-1", source: "127.0.0.1" }, names)).toBe("admin");
    expect(actorLabel({ actor: "system", source: "sandbox-ttl" }, names)).toBe("Roost (TTL)");
    expect(actorLabel({ actor: "system", source: null }, names)).toBe("Roost");
    expect(actorLabel({ actor: "usr-gone" }, names)).toBe("usr-gone");
  });
});
