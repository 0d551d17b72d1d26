import { useQuery } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { LongText, StatusBadge } from "../components/ui";
import { relativeTime } from "../lib/format";
import { useTitle } from "../router";
import type { Operation, Page } from "../types";

export function OperationsPage() {
  useTitle("Operations");
  const q = useQuery({ queryKey: ["operations"], queryFn: () => api.get<Page<Operation>>("/v1/operations?limit=100"), refetchInterval: 5000 });
  return (
    <>
      <PageHeader crumbs={[{ label: "Operations" }]} title="Operations" />
      <ResourceTable
        label="Operations"
        rows={q.data?.items}
        loading={q.isPending}
        error={q.error}
        rowKey={(o) => o.id}
        empty={{ title: "No operations", body: <p>Long work (launching, stopping, image builds) shows up here with its progress.</p> }}
        columns={[
          { label: "Kind", render: (o) => <code className="nowrap">{o.kind}</code> },
          { label: "Status", render: (o) => <StatusBadge status={o.status} /> },
          { label: "Progress", render: (o) => <progress max={100} value={o.progress} aria-label={`${o.kind} progress`} /> },
          { label: "Resource", render: (o) => (o.resource_id ? <code className="nowrap">{o.resource_id}</code> : "—"), className: "hide-sm" },
          { label: "Message", render: (o) => <LongText text={o.error?.message ?? o.message ?? ""} />, className: "hide-sm cell-message" },
          { label: "Started", render: (o) => relativeTime(o.created_at) },
        ]}
      />
    </>
  );
}
