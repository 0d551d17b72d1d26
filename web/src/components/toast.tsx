// Toasts: short messages for results and errors (the API's own message for errors).
import { useSyncExternalStore } from "react";
import { errorMessage } from "../lib/format";

export interface ToastItem {
  id: number;
  kind: "success" | "error" | "info";
  text: string;
}

let items: ToastItem[] = [];
let nextId = 1;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((l) => l());

function push(kind: ToastItem["kind"], text: string): void {
  const id = nextId++;
  items = [...items.slice(-4), { id, kind, text }];
  emit();
  setTimeout(() => dismiss(id), kind === "error" ? 8000 : 4000);
}

export function dismiss(id: number): void {
  items = items.filter((t) => t.id !== id);
  emit();
}

export const toast = {
  success: (text: string) => push("success", text),
  info: (text: string) => push("info", text),
  error: (e: unknown, prefix?: string) => push("error", prefix ? `${prefix}: ${errorMessage(e)}` : errorMessage(e)),
};

export function Toasts() {
  const list = useSyncExternalStore(
    (cb) => {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    () => items,
  );
  return (
    <div className="toasts" aria-live="polite" role="status">
      {list.map((t) => (
        <div key={t.id} className={`toast toast-${t.kind}`} role={t.kind === "error" ? "alert" : undefined}>
          <span>{t.text}</span>
          <button type="button" className="ghost small" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
