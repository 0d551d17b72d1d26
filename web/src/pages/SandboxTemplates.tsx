import { useEffect, useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { ActionButton, Confirm, Modal, StatusBadge } from "../components/ui";
import { formatBytes, relativeTime } from "../lib/format";
import { buildFormError, hitRate, parseCommands, shortKey } from "../lib/templates";
import { useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Operation, SandboxPoolStats, SandboxTemplate, SandboxTemplateBuild } from "../types";

/** A build in progress: the operation's latest output line, then hit/miss or the error. */
function BuildProgress({ id, onDone }: { id: string; onDone: () => void }) {
  const op = useQuery({
    queryKey: ["operation", id],
    queryFn: () => api.get<Operation & { result?: SandboxTemplateBuild | null }>(`/v1/operations/${id}`),
    refetchInterval: (q) => (q.state.data && ["succeeded", "failed"].includes(q.state.data.status) ? false : 1000),
  });
  const o = op.data;
  const final = o && (o.status === "succeeded" || o.status === "failed");
  useEffect(() => {
    if (final) onDone();
  }, [final, onDone]);
  if (!o) return null;
  const result = o.result;
  return (
    <div className="stack" aria-live="polite">
      <div className="row between">
        <span>
          template build <StatusBadge status={o.status} />
          {result && (
            <>
              {" "}
              <strong>cache: {result.cache}</strong> — {result.template.name}
            </>
          )}
        </span>
        <span className="muted">{o.progress}%</span>
      </div>
      <progress max={100} value={o.progress} aria-label="Progress" />
      {o.error ? <pre className="small">{o.error.message}</pre> : <span className="muted small">{o.message}</span>}
    </div>
  );
}

export function SandboxTemplatesPage() {
  useTitle("Templates");
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [params, setParams] = useSearchParams();
  const templates = useQuery({
    queryKey: ["sandbox-templates", project],
    queryFn: () => api.all<SandboxTemplate>("/v1/sandbox-templates", { project }),
  });
  const pools = useQuery({ queryKey: ["sandbox-pool"], queryFn: () => api.get<SandboxPoolStats[]>("/v1/sandbox-pool"), refetchInterval: 5000 });
  const [ops, setOps] = useState<string[]>([]);
  const [del, setDel] = useState<SandboxTemplate | null>(null);
  const refresh = () => void qc.invalidateQueries({ queryKey: ["sandbox-templates"] });
  const rows = templates.data ?? [];
  const built = rows.filter((t) => !t.builtin);
  const hits = built.reduce((n, t) => n + t.hits, 0);
  const misses = built.reduce((n, t) => n + t.misses, 0);

  return (
    <>
      <PageHeader
        crumbs={[{ label: "Sandboxes", to: "/sandboxes" }, { label: "Templates" }]}
        title="Sandbox templates"
        actions={
          <ActionButton reason={s.readOnly} onClick={() => setParams({ build: "1" })}>
            Build template
          </ActionButton>
        }
      />
      <p className="muted">
        A template is a base plus setup commands, cached by the SHA-256 of the base image's digest and the commands: building the same inputs again is a cache hit and runs nothing.
        Build cache: <strong aria-label="cache hits">{hits}</strong> hits, <strong aria-label="cache misses">{misses}</strong> misses (hit rate {hitRate(hits, misses)}).
      </p>
      {ops.map((id) => (
        <div className="panel" key={id}>
          <BuildProgress id={id} onDone={refresh} />
        </div>
      ))}
      <ResourceTable
        label="Sandbox templates"
        rows={rows}
        loading={templates.isPending}
        error={templates.error}
        retry={() => void templates.refetch()}
        rowKey={(t) => t.id}
        empty={{ title: "No templates", body: <p>Build one from base with setup commands.</p> }}
        columns={[
          { label: "Name", render: (t) => <strong>{t.name}</strong> },
          { label: "Base", render: (t) => (t.builtin ? "(builtin)" : t.base ?? "-") },
          { label: "Cache key", render: (t) => <code title={t.cache_key ?? ""}>{shortKey(t.cache_key)}</code>, className: "hide-sm" },
          {
            label: "Commands",
            render: (t) => (t.commands.length ? <code title={t.commands.join("\n")}>{t.commands.length}</code> : "-"),
            className: "hide-sm",
          },
          { label: "Size", render: (t) => formatBytes(t.size_bytes), className: "hide-sm" },
          { label: "Status", render: (t) => <StatusBadge status={t.status} /> },
          { label: "Hits", render: (t) => String(t.hits) },
          { label: "Misses", render: (t) => String(t.misses) },
          { label: "Last used", render: (t) => relativeTime(t.last_used_at), className: "hide-sm" },
          {
            label: "Actions",
            render: (t) => (
              <ActionButton className="danger small" reason={s.readOnly ?? (t.builtin ? "Builtin templates cannot be deleted" : null)} onClick={() => setDel(t)}>
                Delete
              </ActionButton>
            ),
          },
        ]}
      />
      <h2>Warm pools</h2>
      <ResourceTable
        label="Warm pools"
        rows={pools.data}
        loading={pools.isPending}
        error={pools.error}
        rowKey={(p) => `${p.project_id}/${p.template}`}
        empty={{ title: "No warm pools", body: <p>Start the server with <code>--sandbox-pool N</code> to keep frozen sandboxes ready per template.</p> }}
        columns={[
          { label: "Template", render: (p) => p.template },
          { label: "Project", render: (p) => <code>{p.project_id}</code>, className: "hide-sm" },
          { label: "Ready", render: (p) => `${p.ready} / ${p.size}` },
          { label: "Hits", render: (p) => String(p.hits) },
          { label: "Misses", render: (p) => String(p.misses) },
          { label: "Hit rate", render: (p) => hitRate(p.hits, p.misses) },
        ]}
      />
      {params.get("build") && !s.readOnly && (
        <BuildDialog
          project={project}
          onClose={() => setParams({ build: null })}
          onStarted={(op) => {
            setOps((o) => [op.id, ...o]);
            setParams({ build: null });
          }}
        />
      )}
      {del && (
        <Confirm
          title={`Delete template ${del.name}?`}
          body={<p>Sandboxes that use it must be killed first.</p>}
          action="Delete"
          danger
          onConfirm={async () => {
            await api.del(withQuery(`/v1/sandbox-templates/${encodeURIComponent(del.name)}`, { project }));
            toast.success(`Deleted ${del.name}`);
            refresh();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </>
  );
}

function BuildDialog({ project, onClose, onStarted }: { project?: string; onClose: () => void; onStarted: (op: Operation) => void }) {
  const [name, setName] = useState("");
  const [from, setFrom] = useState("base");
  const [commands, setCommands] = useState("");
  const [busy, setBusy] = useState(false);
  const run = parseCommands(commands);
  const problem = buildFormError(name, run);
  async function submit() {
    setBusy(true);
    try {
      const op = await api.post<Operation>("/v1/sandbox-templates", { name, from, run, project });
      toast.success(`Building ${name}`);
      onStarted(op);
    } catch (e) {
      toast.error(e, "Build failed");
      setBusy(false);
    }
  }
  return (
    <Modal title="Build a sandbox template" onClose={onClose}>
      <form className="stack" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
        <label>
          Name
          <input required value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          From
          <input required value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label>
          Commands <span className="muted small">(one per line, run in order with sh -c)</span>
          <textarea rows={6} value={commands} placeholder={"pip install --break-system-packages pandas\necho ready > /opt/READY"} onChange={(e) => setCommands(e.target.value)} />
        </label>
        {name && problem && <span className="muted small">{problem}</span>}
        <div className="row end">
          <button type="button" className="secondary" onClick={onClose}>Cancel</button>
          <button type="submit" disabled={busy || problem !== null}>Build</button>
        </div>
      </form>
    </Modal>
  );
}
