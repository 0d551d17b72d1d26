import { useEffect, useState } from "react";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { EmptyState } from "../components/ui";
import { actorLabel } from "../lib/audit";
import { formatTime } from "../lib/format";
import { currentCursor, firstPage, nextPage, pageNumber, prevPage } from "../lib/instances";
import { useDebounced, useTitle } from "../router";
import { useSession } from "../session";
import type { AuditEntry, Page, UserDetails } from "../types";

/** datetime-local value → RFC 3339 (UTC), or undefined. */
function toRfc3339(v: string): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function AuditPage() {
  useTitle("Audit log");
  const s = useSession();
  const [f, setF] = useState({ actor: "", action: "", resource: "", since: "", until: "" });
  const df = useDebounced(f, 300);
  const [pager, setPager] = useState(firstPage);
  useEffect(() => {
    setPager(firstPage());
  }, [df]);
  const users = useQuery({
    queryKey: ["users"],
    queryFn: () => api.get<Page<UserDetails>>("/v1/users?limit=1000"),
    enabled: !s.adminOnly,
  });
  const userList = users.data?.items ?? [];
  const userName = (id: string) => userList.find((u) => u.id === id)?.name ?? id;
  // The API filters by user id; accept a user name too.
  const actor = userList.find((u) => u.name === df.actor.trim())?.id ?? df.actor.trim();
  const filters = { actor, action: df.action, resource: df.resource, since: toRfc3339(df.since), until: toRfc3339(df.until) };
  const q = useQuery({
    queryKey: ["audit", filters, currentCursor(pager)],
    queryFn: () => api.get<Page<AuditEntry>>(withQuery("/v1/audit", { ...filters, limit: 50, cursor: currentCursor(pager) })),
    placeholderData: keepPreviousData,
    enabled: !s.adminOnly,
  });
  if (s.adminOnly) {
    return (
      <EmptyState title="Administrators only">
        <p>The audit log records every change; administrators can read it.</p>
      </EmptyState>
    );
  }
  async function verify() {
    try {
      const v = await api.get<{ ok: boolean; checked: number; first_broken_seq?: number | null; reason?: string | null }>("/v1/audit/verify");
      if (v.ok) toast.success(`Audit chain intact (${v.checked} entries checked)`);
      else toast.error(`Audit chain broken at ${v.first_broken_seq}: ${v.reason}`);
    } catch (e) {
      toast.error(e);
    }
  }
  const field = (k: keyof typeof f, label: string, type = "text", placeholder = "") => (
    <label>
      {label}
      <input type={type} value={f[k]} placeholder={placeholder} onChange={(e) => setF({ ...f, [k]: e.target.value })} />
    </label>
  );
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Audit log" }]}
        title="Audit log"
        actions={
          <>
            <a className="button secondary" href={withQuery("/v1/audit/export", filters)} download="roost-audit.csv">
              Export CSV
            </a>
            <button type="button" className="secondary" onClick={() => void verify()}>
              Verify chain
            </button>
          </>
        }
      />
      <div className="filters" role="search">
        {field("actor", "Actor", "text", "user name or id")}
        {field("action", "Action", "text", "instance. or instance.create")}
        {field("resource", "Resource", "text", "i-… or a name")}
        {field("since", "Since", "datetime-local")}
        {field("until", "Until", "datetime-local")}
      </div>
      <ResourceTable
        label="Audit entries"
        rows={q.data?.items}
        loading={q.isPending}
        error={q.error}
        rowKey={(a) => String(a.seq)}
        empty={{ title: "No entries match", body: <p>Widen the filters (an action prefix ends with a dot, like <code>instance.</code>).</p> }}
        columns={[
          { label: "#", render: (a) => a.seq, className: "hide-sm" },
          { label: "Time", render: (a) => formatTime(a.time) },
          { label: "Actor", render: (a) => <span title={a.actor}>{actorLabel(a, userName)}</span> },
          { label: "Action", render: (a) => <code>{a.action}</code> },
          { label: "Resource", render: (a) => a.resource_id ?? "—" },
          { label: "Result", render: (a) => <span className={a.result === "ok" || a.result === "success" ? "" : "error-text"}>{a.result}</span> },
          { label: "Source", render: (a) => a.source ?? "—", className: "hide-sm" },
        ]}
      />
      <div className="row end pager">
        <button type="button" className="secondary small" disabled={pageNumber(pager) === 1} onClick={() => setPager(prevPage)}>
          ← Newer
        </button>
        <span>Page {pageNumber(pager)}</span>
        <button type="button" className="secondary small" disabled={!q.data?.next_cursor} onClick={() => q.data?.next_cursor && setPager((p) => nextPage(p, q.data!.next_cursor!))}>
          Older →
        </button>
      </div>
    </>
  );
}
