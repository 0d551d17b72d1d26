import { useQuery } from "@tanstack/react-query";
import { ApiError, api, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { EmptyState, ErrorBox, LinkButton, Loading, StatusBadge } from "../components/ui";
import { actorLabel } from "../lib/audit";
import { formatBytes, relativeTime } from "../lib/format";
import { Link, useTitle } from "../router";
import { useSession } from "../session";
import { INSTANCE_STATUSES, type AuditEntry, type Instance, type Page, type Usage, type UserDetails } from "../types";

/** All instances of a project (the counts need every page). */
async function allInstances(project: string): Promise<Instance[]> {
  const out: Instance[] = [];
  let cursor: string | null | undefined;
  do {
    const page = await api.get<Page<Instance>>(withQuery("/v1/instances", { project, limit: 1000, cursor }));
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

export function countByStatus(items: { status: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const i of items) counts[i.status] = (counts[i.status] ?? 0) + 1;
  return counts;
}

function Meter({ label, used, limit, fmt }: { label: string; used: number; limit?: number | null; fmt: (n: number) => string }) {
  const pct = limit ? Math.min(100, Math.round((used / limit) * 100)) : 0;
  return (
    <div className="meter">
      <div className="row between">
        <span>{label}</span>
        <span className="muted">
          {fmt(used)} / {limit === null || limit === undefined ? "no limit" : fmt(limit)}
        </span>
      </div>
      <div
        className={`bar${pct >= 90 ? " hot" : ""}`}
        role="meter"
        aria-label={label}
        aria-valuenow={used}
        aria-valuemin={0}
        aria-valuemax={limit ?? undefined}
      >
        <span style={{ width: `${limit ? pct : 0}%` }} />
      </div>
    </div>
  );
}

export function Dashboard() {
  useTitle("Dashboard");
  const s = useSession();
  const project = s.project?.name;
  const instances = useQuery({
    queryKey: ["dashboard", "instances", project],
    queryFn: () => allInstances(project!),
    enabled: Boolean(project),
  });
  const usage = useQuery({
    queryKey: ["dashboard", "usage", project],
    queryFn: () => api.get<Usage>(`/v1/projects/${encodeURIComponent(project!)}/usage`),
    enabled: Boolean(project),
  });
  const audit = useQuery({
    queryKey: ["dashboard", "audit"],
    queryFn: () => api.get<Page<AuditEntry>>("/v1/audit?limit=8"),
    enabled: s.isAdmin,
  });
  const users = useQuery({
    queryKey: ["users"],
    queryFn: () => api.get<Page<UserDetails>>("/v1/users?limit=1000"),
    enabled: s.isAdmin,
  });
  const userName = (id: string) => users.data?.items.find((u) => u.id === id)?.name ?? id;
  const health = useQuery({
    queryKey: ["dashboard", "health"],
    queryFn: async () => {
      const res = await fetch("/health/ready", { credentials: "same-origin" });
      const body = (await res.json().catch(() => ({}))) as { status?: string; checks?: Record<string, unknown> };
      return { ok: res.ok, ...body };
    },
    refetchInterval: 30_000,
  });

  if (!project) {
    return (
      <EmptyState title="No project">
        <p>You are not a member of any project. Ask an administrator to add you to one.</p>
      </EmptyState>
    );
  }
  const counts = countByStatus(instances.data ?? []);
  const r = usage.data?.resources ?? {};
  return (
    <>
      <PageHeader title="Dashboard" actions={
        <LinkButton to="/instances/new" reason={s.readOnly}>
          Launch instance
        </LinkButton>
      } />
      <div className="grid">
        <section className="panel" aria-labelledby="h-instances">
          <h2 id="h-instances">Instances in {project}</h2>
          {instances.isPending ? (
            <Loading />
          ) : instances.error ? (
            <ErrorBox error={instances.error} retry={() => void instances.refetch()} />
          ) : (instances.data ?? []).length === 0 ? (
            <p>
              No instances yet. <Link to="/instances/new">Launch one</Link>.
            </p>
          ) : (
            <ul className="counts">
              <li>
                <Link to="/instances">
                  <strong>{instances.data?.length}</strong> total
                </Link>
              </li>
              {INSTANCE_STATUSES.filter((st) => counts[st]).map((st) => (
                <li key={st}>
                  <Link to={`/instances?status=${st}`}>
                    <strong>{counts[st]}</strong> <StatusBadge status={st} />
                  </Link>
                </li>
              ))}
            </ul>
          )}
        </section>
        <section className="panel" aria-labelledby="h-quota">
          <h2 id="h-quota">Usage and quota</h2>
          {usage.isPending ? (
            <Loading />
          ) : usage.error ? (
            <ErrorBox error={usage.error} />
          ) : (
            <div className="stack">
              <Meter label="Instances" used={r.instances?.used ?? 0} limit={r.instances?.limit} fmt={String} />
              <Meter label="vCPUs" used={r.vcpus?.used ?? 0} limit={r.vcpus?.limit} fmt={String} />
              <Meter label="Memory" used={r.memory_bytes?.used ?? 0} limit={r.memory_bytes?.limit} fmt={formatBytes} />
            </div>
          )}
        </section>
        <section className="panel" aria-labelledby="h-health">
          <h2 id="h-health">Node health</h2>
          {health.isPending ? (
            <Loading />
          ) : (
            <div className="stack">
              <p>
                <StatusBadge status={health.data?.ok ? "ready" : "unavailable"} /> {health.data?.status}
              </p>
              <ul className="plain">
                {Object.entries(health.data?.checks ?? {}).map(([k, v]) => (
                  <li key={k}>
                    <span className="muted">{k}:</span> {typeof v === "string" ? v : JSON.stringify(v)}
                  </li>
                ))}
              </ul>
            </div>
          )}
        </section>
        <section className="panel span2" aria-labelledby="h-activity">
          <h2 id="h-activity">Recent activity</h2>
          {!s.isAdmin ? (
            <p className="muted">The audit log is visible to administrators.</p>
          ) : audit.isPending ? (
            <Loading />
          ) : audit.error ? (
            <ErrorBox error={audit.error instanceof ApiError ? audit.error : String(audit.error)} />
          ) : (
            <ul className="activity">
              {(audit.data?.items ?? []).map((a) => (
                <li key={a.seq}>
                  <span className={a.result === "ok" || a.result === "success" ? "" : "error-text"}>{a.action}</span>{" "}
                  <span className="muted">
                    {a.resource_id ?? ""} by {actorLabel(a, userName)} · {relativeTime(a.time)}
                  </span>
                </li>
              ))}
              <li>
                <Link to="/audit">Full audit log →</Link>
              </li>
            </ul>
          )}
        </section>
      </div>
    </>
  );
}
