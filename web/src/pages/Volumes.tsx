import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { ActionButton, Confirm, Modal, StatusBadge } from "../components/ui";
import { formatBytes, formatTime, parseBytes, relativeTime } from "../lib/format";
import { Link, useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { AttachVolumeResponse, BackupPolicy, Instance, Page, Snapshot, Volume } from "../types";

/** A size field's value in bytes; a bare number is GiB here (volumes are big). */
export function volumeSize(s: string): number | null {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1024 ** 3);
  return parseBytes(t);
}

/** Why a volume path is not acceptable, or null. */
export function volumePathError(p: string): string | null {
  if (!p.startsWith("/") || p === "/") return "An absolute path other than /";
  if (p.split("/").some((c) => c === ".." || c === ".")) return "No . or .. in the path";
  if (/[,:]/.test(p)) return "No ',' or ':' in the path";
  return null;
}

/** Five fields, each made of digits, *, /, - and ','. */
export function cronError(c: string): string | null {
  const f = c.trim().split(/\s+/);
  if (f.length !== 5) return "Five fields: minute hour day month weekday";
  return f.every((x) => /^[\d*/,-]+$/.test(x)) ? null : "Use digits, *, /, - and , in each field";
}

function useVolumeData(project: string | undefined) {
  const volumes = useQuery({
    queryKey: ["volumes", project],
    queryFn: () => api.get<Page<Volume>>(withQuery("/v1/volumes", { project })),
  });
  const snapshots = useQuery({
    queryKey: ["snapshots", project],
    queryFn: () => api.get<Page<Snapshot>>(withQuery("/v1/snapshots", { project })),
  });
  const policies = useQuery({
    queryKey: ["backup-policies", project],
    queryFn: () => api.get<Page<BackupPolicy>>(withQuery("/v1/backup-policies", { project })),
  });
  return { volumes, snapshots, policies };
}

type Dialog =
  | { kind: "attach"; v: Volume }
  | { kind: "detach"; v: Volume }
  | { kind: "resize"; v: Volume }
  | { kind: "snapshot"; v: Volume }
  | { kind: "delete"; v: Volume }
  | { kind: "restore"; s: Snapshot }
  | { kind: "clone"; s: Snapshot }
  | { kind: "delete-snapshot"; s: Snapshot }
  | { kind: "delete-policy"; p: BackupPolicy };

export function VolumesPage() {
  useTitle("Volumes");
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [params, setParams] = useSearchParams();
  const { volumes, snapshots, policies } = useVolumeData(project);
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["volumes"] });
    void qc.invalidateQueries({ queryKey: ["snapshots"] });
    void qc.invalidateQueries({ queryKey: ["backup-policies"] });
  };
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Volumes" }]}
        title="Volumes"
        actions={
          <ActionButton reason={s.readOnly} onClick={() => setParams({ create: "1" })}>
            Create volume
          </ActionButton>
        }
      />
      <VolumeTable rows={volumes.data?.items} loading={volumes.isPending} error={volumes.error} onAction={setDialog} />
      <h2 className="section">Snapshots</h2>
      <SnapshotTable rows={snapshots.data?.items} loading={snapshots.isPending} error={snapshots.error} onAction={setDialog} />
      <h2 className="section">Backup policies</h2>
      <div className="row end">
        <ActionButton className="secondary" reason={s.readOnly} onClick={() => setParams({ policy: "1" })}>
          Create backup policy
        </ActionButton>
      </div>
      <ResourceTable
        label="Backup policies"
        rows={policies.data?.items}
        loading={policies.isPending}
        error={policies.error}
        rowKey={(p) => p.id}
        empty={{ title: "No backup policies", body: <p>Take snapshots of a volume on a schedule and keep the newest few.</p> }}
        columns={[
          { label: "Name", render: (p) => <strong>{p.name}</strong> },
          { label: "Volume", render: (p) => <Link to={`/volumes/${encodeURIComponent(p.volume)}`}>{p.volume}</Link> },
          { label: "Schedule (UTC)", render: (p) => <code>{p.cron}</code> },
          { label: "Keep", render: (p) => `${p.snapshot_count} / ${p.keep}` },
          { label: "Last run", render: (p) => (p.last_run_at ? relativeTime(p.last_run_at) : "never") },
          {
            label: "Result",
            render: (p) =>
              p.last_result ? (
                <span title={p.last_error ?? undefined}>
                  <StatusBadge status={p.last_result === "success" ? "success" : "failed"} />
                  {p.last_error ? ` ${p.last_error}` : ""}
                </span>
              ) : (
                "—"
              ),
          },
          { label: "Next run", render: (p) => formatTime(p.next_run_at), className: "hide-sm" },
          {
            label: "Actions",
            render: (p) => (
              <span className="row">
                <ActionButton
                  className="secondary small"
                  reason={s.readOnly}
                  onClick={async () => {
                    try {
                      const r = await api.post<BackupPolicy>(`/v1/backup-policies/${p.id}/run`, {});
                      if (r.last_result === "success") toast.success(`Backup ${p.name} taken`);
                      else toast.error(new Error(`Backup ${p.name} failed: ${r.last_error ?? "unknown error"}`));
                    } catch (e) {
                      toast.error(e);
                    }
                    refresh();
                  }}
                >
                  Run now
                </ActionButton>
                <ActionButton className="danger small" reason={s.readOnly} onClick={() => setDialog({ kind: "delete-policy", p })}>
                  Delete
                </ActionButton>
              </span>
            ),
          },
        ]}
      />
      {params.get("create") && !s.readOnly && <CreateVolume project={project} onClose={() => setParams({ create: null })} onDone={refresh} />}
      {params.get("policy") && !s.readOnly && (
        <CreatePolicy project={project} volumes={volumes.data?.items ?? []} onClose={() => setParams({ policy: null })} onDone={refresh} />
      )}
      {dialog && <VolumeDialog dialog={dialog} project={project} onClose={() => setDialog(null)} onDone={refresh} />}
    </>
  );
}

function VolumeTable({
  rows,
  loading,
  error,
  onAction,
}: {
  rows: Volume[] | undefined;
  loading: boolean;
  error: unknown;
  onAction: (d: Dialog) => void;
}) {
  const s = useSession();
  return (
    <ResourceTable
      label="Volumes"
      rows={rows}
      loading={loading}
      error={error}
      rowKey={(v) => v.id}
      empty={{ title: "No volumes", body: <p>A volume is a disk that outlives instances: attach it at a path, snapshot it, restore it.</p> }}
      columns={[
        { label: "Name", render: (v) => <Link to={`/volumes/${encodeURIComponent(v.name)}`}>{v.name}</Link> },
        { label: "Size", render: (v) => formatBytes(v.size_bytes) },
        { label: "Used", render: (v) => formatBytes(v.used_bytes), className: "hide-sm" },
        { label: "Status", render: (v) => <StatusBadge status={v.status} /> },
        {
          label: "Attached to",
          render: (v) =>
            v.instance ? (
              <span>
                <Link to={`/instances/${encodeURIComponent(v.instance)}?tab=volumes`}>{v.instance}</Link> <code>{v.mount_path}</code>
                {v.read_only ? " (read-only)" : ""}
              </span>
            ) : (
              "—"
            ),
        },
        { label: "Created", render: (v) => relativeTime(v.created_at), className: "hide-sm" },
        {
          label: "Actions",
          render: (v) => (
            <span className="row wrap">
              {v.instance ? (
                <ActionButton className="secondary small" reason={s.readOnly} onClick={() => onAction({ kind: "detach", v })}>
                  Detach
                </ActionButton>
              ) : (
                <ActionButton className="secondary small" reason={s.readOnly} onClick={() => onAction({ kind: "attach", v })}>
                  Attach
                </ActionButton>
              )}
              <ActionButton className="secondary small" reason={s.readOnly} onClick={() => onAction({ kind: "resize", v })}>
                Resize
              </ActionButton>
              <ActionButton className="secondary small" reason={s.readOnly} onClick={() => onAction({ kind: "snapshot", v })}>
                Snapshot
              </ActionButton>
              <ActionButton
                className="danger small"
                reason={s.readOnly ?? (v.instance ? "Detach it first" : null)}
                onClick={() => onAction({ kind: "delete", v })}
              >
                Delete
              </ActionButton>
            </span>
          ),
        },
      ]}
    />
  );
}

function SnapshotTable({
  rows,
  loading,
  error,
  onAction,
}: {
  rows: Snapshot[] | undefined;
  loading: boolean;
  error: unknown;
  onAction: (d: Dialog) => void;
}) {
  const s = useSession();
  return (
    <ResourceTable
      label="Snapshots"
      rows={rows}
      loading={loading}
      error={error}
      rowKey={(x) => x.id}
      empty={{ title: "No snapshots", body: <p>Snapshot a volume before an upgrade; restore it or clone it into a new volume.</p> }}
      columns={[
        { label: "Name", render: (x) => <strong>{x.name}</strong> },
        { label: "Volume", render: (x) => x.volume ?? <code>{x.volume_id}</code> },
        { label: "Size", render: (x) => formatBytes(x.size_bytes) },
        { label: "Stored", render: (x) => formatBytes(x.stored_bytes), className: "hide-sm" },
        { label: "Description", render: (x) => x.description ?? "", className: "hide-sm" },
        { label: "Taken", render: (x) => relativeTime(x.created_at) },
        {
          label: "Actions",
          render: (x) => (
            <span className="row wrap">
              <ActionButton className="secondary small" reason={s.readOnly ?? (x.volume ? null : "Its volume is gone; clone it")} onClick={() => onAction({ kind: "restore", s: x })}>
                Restore
              </ActionButton>
              <ActionButton className="secondary small" reason={s.readOnly} onClick={() => onAction({ kind: "clone", s: x })}>
                Clone
              </ActionButton>
              <ActionButton className="danger small" reason={s.readOnly} onClick={() => onAction({ kind: "delete-snapshot", s: x })}>
                Delete
              </ActionButton>
            </span>
          ),
        },
      ]}
    />
  );
}

function CreateVolume({ project, onClose, onDone }: { project?: string; onClose: () => void; onDone: () => void }) {
  const [form, setForm] = useState({ name: "", size: "10", format: "ext4" });
  const size = volumeSize(form.size);
  const sizeErr = size === null ? "A size like 10 (GiB), 512m or 2g" : size < 16 * 1024 ** 2 ? "At least 16 MiB" : null;
  return (
    <Modal title="Create a volume" onClose={onClose}>
      <form
        className="stack"
        onSubmit={async (e) => {
          e.preventDefault();
          if (sizeErr) return;
          try {
            await api.post("/v1/volumes", { name: form.name, size_bytes: size, format: form.format, project });
            toast.success(`Created volume ${form.name}`);
            onClose();
            onDone();
          } catch (err) {
            toast.error(err);
          }
        }}
      >
        <label>
          Name
          <input required value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
        </label>
        <label>
          Size <span className="muted small">(GiB, or 512m, 2g)</span>
          <input value={form.size} aria-invalid={Boolean(sizeErr)} onChange={(e) => setForm({ ...form, size: e.target.value })} />
          {sizeErr && <span className="field-error">{sizeErr}</span>}
        </label>
        <label>
          Filesystem
          <select value={form.format} onChange={(e) => setForm({ ...form, format: e.target.value })}>
            <option>ext4</option>
          </select>
        </label>
        <div className="row end">
          <button type="submit" disabled={Boolean(sizeErr)}>
            Create
          </button>
        </div>
      </form>
    </Modal>
  );
}

function CreatePolicy({
  project,
  volumes,
  onClose,
  onDone,
}: {
  project?: string;
  volumes: Volume[];
  onClose: () => void;
  onDone: () => void;
}) {
  const [form, setForm] = useState({ name: "", volume: volumes[0]?.name ?? "", cron: "0 2 * * *", keep: "7" });
  const cErr = cronError(form.cron);
  return (
    <Modal title="Create a backup policy" onClose={onClose}>
      <form
        className="stack"
        onSubmit={async (e) => {
          e.preventDefault();
          if (cErr) return;
          try {
            await api.post("/v1/backup-policies", { name: form.name, volume: form.volume, cron: form.cron, keep: Number(form.keep), project });
            toast.success(`Created backup policy ${form.name}`);
            onClose();
            onDone();
          } catch (err) {
            toast.error(err);
          }
        }}
      >
        <label>
          Name
          <input required value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
        </label>
        <label>
          Volume
          <select required value={form.volume} onChange={(e) => setForm({ ...form, volume: e.target.value })}>
            {volumes.map((v) => (
              <option key={v.id}>{v.name}</option>
            ))}
          </select>
        </label>
        <label>
          Schedule <span className="muted small">(cron, UTC)</span>
          <input value={form.cron} aria-invalid={Boolean(cErr)} onChange={(e) => setForm({ ...form, cron: e.target.value })} />
          {cErr && <span className="field-error">{cErr}</span>}
        </label>
        <label>
          Keep
          <input type="number" min={1} max={1000} value={form.keep} onChange={(e) => setForm({ ...form, keep: e.target.value })} />
        </label>
        <div className="row end">
          <button type="submit" disabled={Boolean(cErr) || !form.volume}>
            Create
          </button>
        </div>
      </form>
    </Modal>
  );
}

function VolumeDialog({ dialog, project, onClose, onDone }: { dialog: Dialog; project?: string; onClose: () => void; onDone: () => void }) {
  const [text, setText] = useState("");
  const [path, setPath] = useState("/data");
  const [ro, setRo] = useState(false);
  const [force, setForce] = useState(false);
  const instances = useQuery({
    queryKey: ["instances", "for-volumes", project],
    queryFn: () => api.get<Page<Instance>>(withQuery("/v1/instances", { project, limit: 200 })),
    enabled: dialog.kind === "attach",
  });
  const done = (message: string) => {
    toast.success(message);
    onDone();
  };
  switch (dialog.kind) {
    case "attach": {
      const v = dialog.v;
      const pErr = volumePathError(path);
      const choices = instances.data?.items ?? [];
      const instance = text || choices[0]?.name || "";
      return (
        <Confirm
          title={`Attach ${v.name}`}
          action="Attach"
          body={
            <div className="stack">
              <label>
                Instance
                <select value={instance} onChange={(e) => setText(e.target.value)}>
                  {choices.map((i) => (
                    <option key={i.id} value={i.name}>
                      {i.name} ({i.status})
                    </option>
                  ))}
                </select>
              </label>
              <label>
                Path inside the instance
                <input value={path} aria-invalid={Boolean(pErr)} onChange={(e) => setPath(e.target.value)} />
                {pErr && <span className="field-error">{pErr}</span>}
              </label>
              <label className="row">
                <input type="checkbox" checked={ro} onChange={(e) => setRo(e.target.checked)} /> Read-only
              </label>
            </div>
          }
          onConfirm={async () => {
            if (pErr) throw new Error(pErr);
            const r = await api.post<AttachVolumeResponse>(`/v1/volumes/${v.id}/attach`, { instance, path, read_only: ro });
            done(r.effective === "now" ? `${v.name} is at ${path} in ${instance} now` : `${v.name} appears at ${path} when ${instance} next starts`);
          }}
          onClose={onClose}
        />
      );
    }
    case "detach":
      return (
        <Confirm
          title={`Detach ${dialog.v.name} from ${dialog.v.instance}?`}
          action="Detach"
          body={
            <div className="stack">
              <p>Detaching is refused while files on it are open, unless forced.</p>
              <label className="row">
                <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> Force (open files keep the old mount)
              </label>
            </div>
          }
          onConfirm={async () => {
            await api.post(`/v1/volumes/${dialog.v.id}/detach`, { force });
            done(`Detached ${dialog.v.name}`);
          }}
          onClose={onClose}
        />
      );
    case "resize": {
      const size = volumeSize(text || String(dialog.v.size_bytes / 1024 ** 3));
      const err = size === null ? "A size like 20 (GiB) or 20g" : size <= dialog.v.size_bytes ? "Volumes only grow" : null;
      return (
        <Confirm
          title={`Resize ${dialog.v.name}`}
          action="Resize"
          body={
            <label>
              New size <span className="muted small">(now {formatBytes(dialog.v.size_bytes)}; the filesystem grows too)</span>
              <input value={text} placeholder="20" aria-invalid={Boolean(err)} onChange={(e) => setText(e.target.value)} />
              {text && err && <span className="field-error">{err}</span>}
            </label>
          }
          onConfirm={async () => {
            if (err) throw new Error(err);
            await api.post(`/v1/volumes/${dialog.v.id}/resize`, { size_bytes: size });
            done(`${dialog.v.name} is now ${formatBytes(size)}`);
          }}
          onClose={onClose}
        />
      );
    }
    case "snapshot":
      return (
        <Confirm
          title={`Snapshot ${dialog.v.name}`}
          action="Take snapshot"
          body={
            <label>
              Snapshot name
              <input value={text} placeholder="before-upgrade" onChange={(e) => setText(e.target.value)} />
            </label>
          }
          onConfirm={async () => {
            await api.post("/v1/snapshots", { volume: dialog.v.id, name: text, project });
            done(`Snapshot ${text} taken`);
          }}
          onClose={onClose}
        />
      );
    case "delete":
      return (
        <Confirm
          title={`Delete volume ${dialog.v.name}?`}
          body={<p>Its data is gone for good; its snapshots stay.</p>}
          action="Delete"
          danger
          typed={dialog.v.name}
          onConfirm={async () => {
            await api.del(`/v1/volumes/${dialog.v.id}`);
            done(`Deleted ${dialog.v.name}`);
          }}
          onClose={onClose}
        />
      );
    case "restore":
      return (
        <Confirm
          title={`Restore ${dialog.s.volume} from ${dialog.s.name}?`}
          body={<p>The volume's current content is replaced. Its instance must be stopped (or the volume detached).</p>}
          action="Restore"
          danger
          onConfirm={async () => {
            await api.post(`/v1/volumes/${dialog.s.volume_id}/restore`, { snapshot: dialog.s.id });
            done(`Restored ${dialog.s.volume ?? "the volume"} from ${dialog.s.name}`);
          }}
          onClose={onClose}
        />
      );
    case "clone":
      return (
        <Confirm
          title={`Clone ${dialog.s.name} into a new volume`}
          action="Clone"
          body={
            <label>
              New volume name
              <input value={text} onChange={(e) => setText(e.target.value)} />
            </label>
          }
          onConfirm={async () => {
            await api.post("/v1/volumes", { name: text, from_snapshot: dialog.s.id, project });
            done(`Created volume ${text} from ${dialog.s.name}`);
          }}
          onClose={onClose}
        />
      );
    case "delete-snapshot":
      return (
        <Confirm
          title={`Delete snapshot ${dialog.s.name}?`}
          body={<p>It cannot be restored or cloned afterwards.</p>}
          action="Delete"
          danger
          onConfirm={async () => {
            await api.del(`/v1/snapshots/${dialog.s.id}`);
            done(`Deleted ${dialog.s.name}`);
          }}
          onClose={onClose}
        />
      );
    case "delete-policy":
      return (
        <Confirm
          title={`Delete backup policy ${dialog.p.name}?`}
          body={<p>Its snapshots stay.</p>}
          action="Delete"
          danger
          onConfirm={async () => {
            await api.del(`/v1/backup-policies/${dialog.p.id}`);
            done(`Deleted ${dialog.p.name}`);
          }}
          onClose={onClose}
        />
      );
  }
}

/** `/volumes/:id`: one volume, its snapshots and the actions. */
export function VolumePage({ params }: { params: Record<string, string> }) {
  const key = params.id ?? "";
  useTitle(`Volume ${key}`);
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const v = useQuery({
    queryKey: ["volumes", project, key],
    queryFn: () => api.get<Volume>(withQuery(`/v1/volumes/${encodeURIComponent(key)}`, { project })),
  });
  const snaps = useQuery({
    queryKey: ["snapshots", project, key],
    queryFn: () => api.get<Page<Snapshot>>(withQuery("/v1/snapshots", { project, volume: key })),
  });
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["volumes"] });
    void qc.invalidateQueries({ queryKey: ["snapshots"] });
  };
  const vol = v.data;
  return (
    <>
      <PageHeader crumbs={[{ label: "Volumes", to: "/volumes" }, { label: key }]} title={key} />
      <VolumeTable rows={vol ? [vol] : undefined} loading={v.isPending} error={v.error} onAction={setDialog} />
      {vol && (
        <dl className="kv">
          <dt>Id</dt>
          <dd>
            <code>{vol.id}</code>
          </dd>
          <dt>Filesystem</dt>
          <dd>
            {vol.filesystem} in a {vol.format} image
          </dd>
          <dt>Cloned from</dt>
          <dd>{vol.cloned_from ?? "—"}</dd>
          <dt>CLI</dt>
          <dd>
            <code>roost snapshot create {vol.name} --name before-upgrade</code>
          </dd>
        </dl>
      )}
      <h2 className="section">Snapshots</h2>
      <SnapshotTable rows={snaps.data?.items} loading={snaps.isPending} error={snaps.error} onAction={setDialog} />
      {dialog && <VolumeDialog dialog={dialog} project={project} onClose={() => setDialog(null)} onDone={refresh} />}
    </>
  );
}
