import { useEffect, useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, rawRequest, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { ActionButton, Confirm, Modal, StatusBadge } from "../components/ui";
import { formatBytes, relativeTime } from "../lib/format";
import { useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Image, Operation } from "../types";

function OperationProgress({ id, onDone }: { id: string; onDone: () => void }) {
  const op = useQuery({
    queryKey: ["operation", id],
    queryFn: () => api.get<Operation>(`/v1/operations/${id}`),
    refetchInterval: (q) => (q.state.data && ["succeeded", "failed"].includes(q.state.data.status) ? false : 2000),
  });
  const o = op.data;
  const final = o && (o.status === "succeeded" || o.status === "failed");
  useEffect(() => {
    if (final) onDone();
  }, [final, onDone]);
  if (!o) return null;
  return (
    <div className="stack" aria-live="polite">
      <div className="row between">
        <span>
          {o.kind} <StatusBadge status={o.status} />
        </span>
        <span className="muted">{o.progress}%</span>
      </div>
      <progress max={100} value={o.progress} aria-label="Progress" />
      <span className="muted small">{o.error ? o.error.message : o.message}</span>
    </div>
  );
}

export function ImagesPage() {
  useTitle("Images");
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [params, setParams] = useSearchParams();
  const images = useQuery({ queryKey: ["images", project], queryFn: () => api.all<Image>("/v1/images", { project }) });
  const [ops, setOps] = useState<string[]>([]);
  const [del, setDel] = useState<Image | null>(null);
  const filter = params.get("name") ?? "";
  const rows = (images.data ?? []).filter((i) => !filter || i.name.includes(filter));
  const refresh = () => void qc.invalidateQueries({ queryKey: ["images"] });

  return (
    <>
      <PageHeader
        crumbs={[{ label: "Images" }]}
        title="Images"
        actions={
          <>
            <ActionButton reason={s.readOnly} onClick={() => setParams({ build: "1" })}>
              Build image
            </ActionButton>
            <ActionButton className="secondary" reason={s.readOnly} onClick={() => setParams({ import: "1" })}>
              Import tarball
            </ActionButton>
          </>
        }
      />
      {filter && (
        <p>
          Showing images matching <code>{filter}</code>.{" "}
          <button type="button" className="linklike" onClick={() => setParams({ name: null })}>
            Show all
          </button>
        </p>
      )}
      {ops.map((id) => (
        <div className="panel" key={id}>
          <OperationProgress id={id} onDone={refresh} />
        </div>
      ))}
      <ResourceTable
        label="Images"
        rows={rows}
        loading={images.isPending}
        error={images.error}
        retry={() => void images.refetch()}
        rowKey={(i) => i.id}
        empty={{ title: "No images", body: <p>Build a Debian image or import a root filesystem tarball.</p> }}
        columns={[
          { label: "Name", render: (i) => <strong>{i.name}</strong> },
          { label: "Status", render: (i) => <StatusBadge status={i.status} /> },
          { label: "Source", render: (i) => i.source, className: "hide-sm" },
          { label: "Size", render: (i) => formatBytes(i.size_bytes), className: "hide-sm" },
          { label: "Scope", render: (i) => (i.project_id ? "project" : "builtin"), className: "hide-sm" },
          { label: "Created", render: (i) => relativeTime(i.created_at) },
          {
            label: "Actions",
            render: (i) => (
              <ActionButton className="danger small" reason={s.readOnly ?? (i.project_id ? null : "Builtin images cannot be deleted")} onClick={() => setDel(i)}>
                Delete
              </ActionButton>
            ),
          },
        ]}
      />
      {params.get("build") && !s.readOnly && (
        <BuildDialog
          project={project}
          onClose={() => setParams({ build: null })}
          onStarted={(op) => {
            setOps((o) => [op.id, ...o]);
            setParams({ build: null });
            refresh();
          }}
        />
      )}
      {params.get("import") && !s.readOnly && <ImportDialog project={project} onClose={() => setParams({ import: null })} onDone={refresh} />}
      {del && (
        <Confirm
          title={`Delete image ${del.name}?`}
          body={<p>Instances that use it must be deleted first.</p>}
          action="Delete"
          danger
          onConfirm={async () => {
            await api.del(`/v1/images/${del.id}`);
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
  const [from, setFrom] = useState("debian:bookworm");
  const [packages, setPackages] = useState("");
  const [busy, setBusy] = useState(false);
  async function submit() {
    setBusy(true);
    try {
      const op = await api.post<Operation>("/v1/images", {
        name,
        from,
        packages: packages.split(/[\s,]+/).filter(Boolean),
        project,
      });
      toast.success(`Building ${name}`);
      onStarted(op);
    } catch (e) {
      toast.error(e, "Build failed");
      setBusy(false);
    }
  }
  return (
    <Modal title="Build a Debian image" onClose={onClose}>
      <form className="stack" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
        <label>
          Name
          <input required value={name} onChange={(e) => setName(e.target.value)} pattern="[a-z0-9][a-z0-9._\-]{0,62}" />
        </label>
        <label>
          From
          <input required value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label>
          Extra packages <span className="muted small">(space or comma separated)</span>
          <input value={packages} placeholder="curl python3" onChange={(e) => setPackages(e.target.value)} />
        </label>
        <div className="row end">
          <button type="button" className="secondary" onClick={onClose}>Cancel</button>
          <button type="submit" disabled={busy || !name}>Build</button>
        </div>
      </form>
    </Modal>
  );
}

function ImportDialog({ project, onClose, onDone }: { project?: string; onClose: () => void; onDone: () => void }) {
  const [name, setName] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit() {
    if (!file) return;
    setBusy(true);
    try {
      await rawRequest("POST", withQuery("/v1/images/import", { name, project }), file, "application/octet-stream");
      toast.success(`Imported ${name}`);
      onDone();
      onClose();
    } catch (e) {
      toast.error(e, "Import failed");
      setBusy(false);
    }
  }
  return (
    <Modal title="Import a root filesystem" onClose={onClose}>
      <form className="stack" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
        <label>
          Name
          <input required value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Tarball <span className="muted small">(.tar, .tar.gz or .tar.zst)</span>
          <input type="file" required accept=".tar,.gz,.tgz,.zst" onChange={(e) => {
            const f = e.target.files?.[0] ?? null;
            setFile(f);
            if (f && !name) setName(f.name.replace(/\.(tar(\.(gz|zst))?|tgz)$/, "").toLowerCase().replace(/[^a-z0-9._-]/g, "-"));
          }} />
        </label>
        <div className="row end">
          <button type="button" className="secondary" onClick={onClose}>Cancel</button>
          <button type="submit" disabled={busy || !file || !name}>{busy ? "Uploading…" : "Import"}</button>
        </div>
      </form>
    </Modal>
  );
}
