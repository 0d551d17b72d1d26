// An instance's block volumes: attach (hot on a running container), detach, and the
// instance's snapshot and clone actions.
import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { navigate } from "../nav";
import { volumePathError } from "../pages/Volumes";
import { Link } from "../router";
import { useSession } from "../session";
import type { AttachVolumeResponse, Instance, InstanceSnapshot, Operation, Page, Volume } from "../types";
import { ResourceTable } from "./ResourceTable";
import { toast } from "./toast";
import { ActionButton, Confirm } from "./ui";

export function InstanceVolumes({ i, project }: { i: Instance; project: string }) {
  const s = useSession();
  const qc = useQueryClient();
  const volumes = useQuery({
    queryKey: ["volumes", project],
    queryFn: () => api.get<Page<Volume>>(withQuery("/v1/volumes", { project })),
  });
  const [pick, setPick] = useState("");
  const [path, setPath] = useState("/data");
  const [detach, setDetach] = useState<string | null>(null);
  const [force, setForce] = useState(false);
  const free = (volumes.data?.items ?? []).filter((v) => !v.instance_id);
  const chosen = pick || free[0]?.name || "";
  const pErr = volumePathError(path);
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["instance"] });
    void qc.invalidateQueries({ queryKey: ["volumes"] });
  };
  return (
    <div className="stack">
      <ResourceTable
        label="Volumes"
        rows={i.volumes ?? []}
        loading={false}
        error={null}
        rowKey={(v) => v.volume_id}
        empty={{ title: "No volumes", body: <p>Attach a volume: it appears at its path at once while the instance runs.</p> }}
        columns={[
          { label: "Volume", render: (v) => <Link to={`/volumes/${encodeURIComponent(v.volume)}`}>{v.volume}</Link> },
          { label: "Path", render: (v) => <code>{v.path}</code> },
          { label: "Mode", render: (v) => (v.read_only ? "read-only" : "read-write") },
          {
            label: "Actions",
            render: (v) => (
              <ActionButton className="secondary small" reason={s.readOnly} onClick={() => setDetach(v.volume_id)}>
                Detach
              </ActionButton>
            ),
          },
        ]}
      />
      <form
        className="row wrap"
        aria-label="Attach a volume"
        onSubmit={async (e) => {
          e.preventDefault();
          if (pErr || !chosen) return;
          try {
            const r = await api.post<AttachVolumeResponse>(withQuery(`/v1/volumes/${encodeURIComponent(chosen)}/attach`, { project }), {
              instance: i.id,
              path,
            });
            toast.success(r.effective === "now" ? `${chosen} is at ${path} now` : `${chosen} appears at ${path} at the next start`);
            refresh();
          } catch (err) {
            toast.error(err);
          }
        }}
      >
        <select aria-label="Volume to attach" value={chosen} onChange={(e) => setPick(e.target.value)} disabled={Boolean(s.readOnly)}>
          {free.length === 0 && <option value="">no free volumes</option>}
          {free.map((v) => (
            <option key={v.id}>{v.name}</option>
          ))}
        </select>
        <input aria-label="Mount path" style={{ maxWidth: "16rem" }} value={path} aria-invalid={Boolean(pErr)} onChange={(e) => setPath(e.target.value)} />
        <button type="submit" disabled={Boolean(s.readOnly) || Boolean(pErr) || !chosen} title={s.readOnly ?? pErr ?? undefined}>
          Attach
        </button>
      </form>
      {detach && (
        <Confirm
          title="Detach the volume?"
          action="Detach"
          body={
            <label className="row">
              <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> Force, even with open files
            </label>
          }
          onConfirm={async () => {
            await api.post(`/v1/volumes/${detach}/detach`, { force });
            toast.success("Detached");
            refresh();
          }}
          onClose={() => setDetach(null)}
        />
      )}
    </div>
  );
}

/** The instance page's Snapshot and Clone buttons. */
export function SnapshotCloneActions({ i }: { i: Instance }) {
  const s = useSession();
  const [dialog, setDialog] = useState<"snapshot" | "clone" | null>(null);
  const [name, setName] = useState("");
  const reason = s.readOnly ?? (i.type !== "container" ? "Containers only" : null);
  return (
    <>
      <ActionButton className="secondary small" reason={reason} onClick={() => setDialog("snapshot")}>
        Snapshot
      </ActionButton>
      <ActionButton className="secondary small" reason={reason} onClick={() => setDialog("clone")}>
        Clone
      </ActionButton>
      {dialog === "snapshot" && (
        <Confirm
          title={`Snapshot ${i.name}`}
          action="Take snapshot"
          body={
            <label>
              Name <span className="muted small">(empty: the instance's name and the time)</span>
              <input value={name} onChange={(e) => setName(e.target.value)} />
            </label>
          }
          onConfirm={async () => {
            const r = await api.post<InstanceSnapshot>(`/v1/instances/${i.id}/snapshot`, { name: name || null });
            toast.success(`Snapshot ${r.name}: root filesystem changes and ${r.volumes.length} volume(s)`);
          }}
          onClose={() => setDialog(null)}
        />
      )}
      {dialog === "clone" && (
        <Confirm
          title={`Clone ${i.name}`}
          action="Clone"
          body={
            <label>
              New instance name
              <input value={name} onChange={(e) => setName(e.target.value)} />
            </label>
          }
          onConfirm={async () => {
            const r = await api.post<{ instance: Instance; operation: Operation }>(`/v1/instances/${i.id}/clone`, { name });
            toast.success(`Cloning ${i.name} as ${r.instance.name}`);
            navigate(`/instances/${encodeURIComponent(r.instance.name)}`);
          }}
          onClose={() => setDialog(null)}
        />
      )}
    </>
  );
}
