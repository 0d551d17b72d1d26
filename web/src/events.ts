// The event stream (GET /v1/events, SSE) feeding TanStack Query's cache, so pages show
// changes without reloading or polling.
import { useEffect } from "react";
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import type { Instance, Operation, Page, RoostEvent } from "./types";

type Listener = (e: RoostEvent) => void;
const listeners = new Set<Listener>();

/** Subscribes to every event the console receives (e.g. an operation's progress). */
export function onEvent(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function applyInstanceEvent(qc: QueryClient, ev: RoostEvent): void {
  const inst = ev.data as Instance | undefined;
  if (ev.type === "instance.updated" && inst && typeof inst === "object" && "id" in inst) {
    qc.setQueriesData<Page<Instance>>({ queryKey: ["instances", "list"] }, (old) =>
      old ? { ...old, items: old.items.map((i) => (i.id === inst.id ? { ...i, ...inst, image: inst.image || i.image } : i)) } : old,
    );
    qc.setQueriesData<Instance>({ queryKey: ["instance"] }, (old) =>
      old && old.id === inst.id ? { ...old, ...inst, image: inst.image || old.image } : old,
    );
  }
  if (ev.type === "instance.deleted") {
    qc.setQueriesData<Page<Instance>>({ queryKey: ["instances", "list"] }, (old) =>
      old ? { ...old, items: old.items.filter((i) => i.id !== ev.resource_id) } : old,
    );
  }
}

export function useEventStream(): void {
  const qc = useQueryClient();
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stale = new Set<string>();
    // Lists and counts may change membership (a filter, a new row): refetch them, batched.
    const later = (key: string) => {
      stale.add(key);
      if (timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        for (const k of stale) void qc.invalidateQueries({ queryKey: [k] });
        stale.clear();
      }, 800);
    };
    const es = new EventSource("/v1/events?type=instance,image,operation,project,token,user", { withCredentials: true });
    const handle = (msg: MessageEvent<string>) => {
      let ev: RoostEvent;
      try {
        ev = JSON.parse(msg.data) as RoostEvent;
      } catch {
        return;
      }
      if (ev.resource_type === "instance") {
        applyInstanceEvent(qc, ev);
        later("instances");
        later("dashboard");
        // An event can overtake the GET of a page that just opened (the patch above
        // then finds no data to patch, and the GET answers with the older state):
        // refetch open instance pages once the burst is over.
        later("instance");
      } else if (ev.resource_type === "operation") {
        qc.setQueryData<Operation>(["operation", ev.resource_id], ev.data as Operation);
      } else if (ev.resource_type === "image") {
        later("images");
      } else {
        later(`${ev.resource_type}s`);
      }
      listeners.forEach((l) => l(ev));
    };
    const types = ["created", "updated", "deleted"].flatMap((v) =>
      ["instance", "image", "operation", "project", "token", "user"].map((r) => `${r}.${v}`),
    );
    for (const t of types) es.addEventListener(t, handle as EventListener);
    for (const t of ["user.disabled", "user.enabled", "operation.created"]) es.addEventListener(t, handle as EventListener);
    es.addEventListener("message", handle as EventListener);
    es.addEventListener("lagged", () => void qc.invalidateQueries());
    // After a reconnect, events sent while the stream was down are gone: refetch.
    let opened = false;
    es.addEventListener("open", () => {
      if (opened) void qc.invalidateQueries();
      opened = true;
    });
    return () => {
      es.close();
      if (timer) clearTimeout(timer);
    };
  }, [qc]);
}
