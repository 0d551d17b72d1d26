// Pure logic of the instances table: filters → API query, sorting, pagination, bulk actions.
import { api } from "../api";
import type { Instance, InstanceStatus, Operation } from "../types";

export interface InstanceFilters {
  status?: string;
  label?: string;
  q?: string;
  image?: string;
  sort?: string;
  limit?: number;
}

export const PAGE_SIZES = [25, 50, 100, 250];

/** The query parameters of GET /v1/instances for the filters (text search is a name glob). */
export function instanceQuery(f: InstanceFilters, project: string | undefined, cursor?: string) {
  const q = (f.q ?? "").trim();
  return {
    project,
    status: f.status || undefined,
    label: f.label?.trim() || undefined,
    name: q ? (q.includes("*") ? q : `*${q}*`) : undefined,
    sort: f.sort || "-created_at",
    limit: f.limit ?? 50,
    cursor,
  };
}

/** An error for a label filter that is not `key=value`, or null. */
export function labelError(label: string | undefined): string | null {
  if (!label?.trim()) return null;
  const [k, v] = label.split("=", 2);
  if (!k?.trim() || v === undefined) return "Use key=value, e.g. app=web";
  return null;
}

/** Clicking a column header: first ascending, then descending, for that field. */
export function toggleSort(current: string | undefined, field: string): string {
  const cur = current || "-created_at";
  if (cur === field) return `-${field}`;
  if (cur === `-${field}`) return field;
  return field === "created_at" ? "-created_at" : field;
}

export function sortState(current: string | undefined, field: string): "ascending" | "descending" | "none" {
  const cur = current || "-created_at";
  if (cur === field) return "ascending";
  if (cur === `-${field}`) return "descending";
  return "none";
}

/** Keyset pagination: a stack of the cursors that led to the current page. */
export interface Pager {
  stack: (string | undefined)[];
}

export const firstPage = (): Pager => ({ stack: [undefined] });
export const currentCursor = (p: Pager) => p.stack[p.stack.length - 1];
export const nextPage = (p: Pager, cursor: string): Pager => ({ stack: [...p.stack, cursor] });
export const prevPage = (p: Pager): Pager => (p.stack.length > 1 ? { stack: p.stack.slice(0, -1) } : p);
export const pageNumber = (p: Pager) => p.stack.length;

export type BulkAction = "start" | "stop" | "delete";

const ACTIONABLE: Record<BulkAction, InstanceStatus[]> = {
  start: ["stopped", "error"],
  stop: ["running", "rebooting", "provisioning", "pending"],
  delete: ["pending", "provisioning", "running", "stopping", "stopped", "rebooting", "error"],
};

/** The selected instances an action applies to (the others are left alone). */
export function eligible(action: BulkAction, selected: Instance[]): Instance[] {
  return selected.filter((i) => ACTIONABLE[action].includes(i.status));
}

/** Whether an action applies to one instance in this status. */
export function canAct(action: BulkAction | "restart", status: InstanceStatus): boolean {
  if (action === "restart") return status === "running";
  return ACTIONABLE[action].includes(status);
}

/** Runs one lifecycle action through the API; returns the operation it started. */
export function runAction(i: Pick<Instance, "id" | "status">, action: BulkAction | "restart"): Promise<Operation> {
  const path = `/v1/instances/${encodeURIComponent(i.id)}`;
  if (action === "delete") {
    const force = i.status !== "stopped" && i.status !== "error" && i.status !== "pending";
    return api.del<Operation>(force ? `${path}?force=true` : path);
  }
  return api.post<Operation>(`${path}/${action}`, action === "start" ? undefined : {});
}
