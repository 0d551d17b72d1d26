import { QueryClient } from "@tanstack/react-query";
import { describe, expect, it } from "vitest";
import { applyInstanceEvent } from "./events";
import type { Instance, Page } from "./types";

const inst = (id: string, status: Instance["status"]) => ({ id, name: id, status, image: "busybox" }) as Instance;

describe("instance events update the cache", () => {
  it("patches lists and the detail view in place, and drops deleted rows", () => {
    const qc = new QueryClient();
    qc.setQueryData<Page<Instance>>(["instances", "list", { page: 1 }], { items: [inst("a", "pending"), inst("b", "running")] });
    qc.setQueryData<Instance>(["instance", "a"], inst("a", "pending"));
    qc.setQueryData<Instance>(["instance", "b"], inst("b", "running"));
    applyInstanceEvent(qc, { id: 1, time: "", type: "instance.updated", resource_type: "instance", resource_id: "a", data: { ...inst("a", "running"), image: "" } });
    const list = qc.getQueryData<Page<Instance>>(["instances", "list", { page: 1 }]);
    expect(list?.items.map((i) => i.status)).toEqual(["running", "running"]);
    expect(list?.items[0]?.image).toBe("busybox");
    expect(qc.getQueryData<Instance>(["instance", "a"])?.status).toBe("running");
    expect(qc.getQueryData<Instance>(["instance", "b"])?.status).toBe("running");
    applyInstanceEvent(qc, { id: 2, time: "", type: "instance.deleted", resource_type: "instance", resource_id: "b" });
    expect(qc.getQueryData<Page<Instance>>(["instances", "list", { page: 1 }])?.items.map((i) => i.id)).toEqual(["a"]);
  });
});
