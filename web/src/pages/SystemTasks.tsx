// The server's background tasks (admins): what each does, where and when it last ran,
// and a button to run one now. Refetched every few seconds while open.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { EmptyState, LongText, StatusBadge } from "../components/ui";
import { relativeTime } from "../lib/format";
import { formatPeriod, formatTook, nextRun, summary } from "../lib/tasks";
import { useTitle } from "../router";
import { useSession } from "../session";
import type { BackgroundTask, Page } from "../types";

const KEY = ["system-tasks"];

export function SystemTasksPage() {
  useTitle("System tasks");
  const s = useSession();
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: KEY,
    queryFn: () => api.get<Page<BackgroundTask>>("/v1/system/tasks"),
    refetchInterval: 3000,
    enabled: !s.adminOnly,
  });
  if (s.adminOnly) {
    return (
      <EmptyState title="Administrators only">
        <p>Background tasks are the server's own work; administrators can see and run them.</p>
      </EmptyState>
    );
  }

  async function run(t: BackgroundTask) {
    try {
      const asked = await api.post<BackgroundTask>(`/v1/system/tasks/${encodeURIComponent(t.name)}/run`);
      qc.setQueryData<Page<BackgroundTask>>(KEY, (old) => old && { ...old, items: old.items.map((i) => (i.name === asked.name ? asked : i)) });
      toast.success(`${t.name}: run asked for`);
      // The run is usually over in a moment.
      setTimeout(() => void qc.invalidateQueries({ queryKey: KEY }), 500);
    } catch (e) {
      toast.error(e);
    }
  }

  return (
    <>
      <PageHeader crumbs={[{ label: "System tasks" }]} title="System tasks" />
      <p className="muted">
        The server's periodic work. Each task runs every period and when something asks for it, on the one server that holds its lease.
      </p>
      <ResourceTable
        label="System tasks"
        rows={q.data?.items}
        loading={q.isPending}
        error={q.error}
        retry={() => void q.refetch()}
        rowKey={(t) => t.name}
        empty={{ title: "No background tasks", body: <p>The server has not started any yet.</p> }}
        columns={[
          {
            label: "Task",
            render: (t) => (
              <>
                <code className="nowrap">{t.name}</code>
                <div className="muted small">{t.description}</div>
              </>
            ),
          },
          { label: "Period", render: (t) => formatPeriod(t.period_ms) },
          { label: "Last run", render: (t) => <span className="nowrap">{t.last_run ? relativeTime(t.last_run.started_at) : "never"}</span> },
          { label: "Took", render: (t) => (t.last_run ? formatTook(t.last_run.elapsed_ms) : "—"), className: "hide-sm" },
          {
            label: "Outcome",
            render: (t) =>
              t.last_run ? (
                <>
                  <StatusBadge status={t.last_run.outcome} />
                  <div className="small">
                    <LongText text={summary(t.last_run)} max={80} label={t.last_run.outcome === "error" ? "error" : "details"} />
                  </div>
                </>
              ) : (
                "—"
              ),
            className: "cell-message",
          },
          {
            label: "Next run",
            render: (t) => <span className="nowrap">{nextRun(t)}</span>,
            className: "hide-sm",
          },
          { label: "Runs", render: (t) => t.runs },
          { label: "Holder", render: (t) => (t.holder ? <code className="nowrap">{t.holder}</code> : "none"), className: "hide-sm" },
          {
            label: "Actions",
            render: (t) => (
              <button
                type="button"
                className="secondary small"
                aria-label={`Run ${t.name} now`}
                disabled={!!t.run_requested_at}
                onClick={() => void run(t)}
              >
                {t.run_requested_at ? "Asked…" : "Run now"}
              </button>
            ),
          },
        ]}
      />
    </>
  );
}
