// One sandbox: its info with the TTL counting down, a terminal (the instance exec
// WebSocket), a file browser and its background processes.
import { lazy, Suspense, useRef, useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, rawRequest } from "../api";
import { PageHeader } from "../components/Layout";
import { toast } from "../components/toast";
import { Confirm, EmptyState, ErrorBox, Loading, Modal, useNow } from "../components/ui";
import { formatBytes, relativeTime } from "../lib/format";
import { commandLine, countdown, dirCrumbs, entryNameError, fileUrl, joinPath, normalizeDir, parentDir, SIGNALS } from "../lib/sandboxes";
import { Link, useSearchParams, useTitle } from "../router";
import type { Sandbox, SandboxFileEntry, SandboxProcess } from "../types";

const Terminal = lazy(() => import("../components/Terminal"));


export function SandboxPage({ params }: { params: Record<string, string> }) {
  const id = params.id ?? "";
  useTitle(`Sandbox ${id}`);
  const now = useNow();
  const [search, setSearch] = useSearchParams();
  const tab = search.get("tab") ?? "files";
  const sandbox = useQuery({
    queryKey: ["sandboxes", id],
    queryFn: () => api.get<Sandbox>(`/v1/sandboxes/${encodeURIComponent(id)}`),
    refetchInterval: 5000,
  });
  if (sandbox.isPending) return <Loading />;
  if (sandbox.error) return <ErrorBox error={sandbox.error} retry={() => void sandbox.refetch()} />;
  const s = sandbox.data;
  const tabs = [
    ["files", "Files"],
    ["terminal", "Terminal"],
    ["processes", "Processes"],
  ] as const;
  return (
    <>
      <PageHeader crumbs={[{ label: "Sandboxes", to: "/sandboxes" }, { label: s.id }]} title={s.id} />
      <dl className="spec" aria-label="Sandbox">
        <dt>Template</dt>
        <dd>{s.template}</dd>
        <dt>State</dt>
        <dd>{s.state}</dd>
        <dt>Time left</dt>
        <dd aria-label="time left">{countdown(s.expires_at, now)}</dd>
        <dt>Instance</dt>
        <dd>
          <Link to={`/instances/${s.instance_id}`}>{s.instance_id}</Link>
        </dd>
        <dt>Started</dt>
        <dd>{relativeTime(s.started_at)}</dd>
        <dt>Commands</dt>
        <dd>{s.commands}</dd>
      </dl>
      <div className="tabs" role="tablist" aria-label="Sandbox">
        {tabs.map(([key, label]) => (
          <button key={key} type="button" role="tab" aria-selected={tab === key} className={tab === key ? "tab active" : "tab"} onClick={() => setSearch({ tab: key })}>
            {label}
          </button>
        ))}
      </div>
      {tab === "files" && <FileBrowser id={s.id} />}
      {tab === "terminal" &&
        (s.state !== "running" ? (
          <EmptyState title="Paused">
            <p>Resume the sandbox to open a terminal.</p>
          </EmptyState>
        ) : (
          <Suspense fallback={<Loading what="Loading the terminal" />}>
            <Terminal id={s.instance_id} />
          </Suspense>
        ))}
      {tab === "processes" && <Processes id={s.id} />}
    </>
  );
}

function FileBrowser({ id }: { id: string }) {
  const qc = useQueryClient();
  const [search, setSearch] = useSearchParams();
  const dir = normalizeDir(search.get("path") ?? "/root");
  const base = `/v1/sandboxes/${encodeURIComponent(id)}`;
  const listing = useQuery({
    queryKey: ["sandbox-files", id, dir],
    queryFn: () => api.get<SandboxFileEntry[]>(`${base}/dirs?path=${encodeURIComponent(dir)}`),
  });
  const [folder, setFolder] = useState<string | null>(null);
  const [doomed, setDoomed] = useState<SandboxFileEntry | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const refresh = () => void qc.invalidateQueries({ queryKey: ["sandbox-files", id, dir] });
  const open = (path: string) => setSearch({ path });

  const upload = async (files: FileList | null) => {
    if (!files?.length) return;
    setBusy(true);
    try {
      for (const f of Array.from(files)) {
        await rawRequest("PUT", `${base}/files?path=${encodeURIComponent(joinPath(dir, f.name))}`, f, "application/octet-stream");
      }
      toast.success(files.length === 1 ? `Uploaded ${files[0]!.name}` : `Uploaded ${files.length} files`);
    } catch (err) {
      toast.error(err);
    } finally {
      setBusy(false);
      if (input.current) input.current.value = "";
      refresh();
    }
  };

  return (
    <section aria-label="Files">
      <nav aria-label="Path">
        <code>
          {dirCrumbs(dir).map((c, i) => (
            <span key={c.path}>
              {i > 1 && "/"}
              <button type="button" className="linklike" onClick={() => open(c.path)}>
                {c.label}
              </button>
            </span>
          ))}
        </code>
      </nav>
      <div className="row">
        <button type="button" className="secondary small" disabled={dir === "/"} onClick={() => open(parentDir(dir))}>
          Up
        </button>
        <button type="button" className="secondary small" onClick={() => setFolder("")}>
          New folder
        </button>
        <label className="button small">
          {busy ? "Uploading…" : "Upload"}
          <input ref={input} type="file" multiple hidden aria-label="Upload files" onChange={(e) => void upload(e.target.files)} />
        </label>
        <button type="button" className="secondary small" onClick={refresh}>
          Refresh
        </button>
      </div>
      {listing.isPending ? (
        <Loading />
      ) : listing.error ? (
        <ErrorBox error={listing.error} retry={refresh} />
      ) : listing.data.length === 0 ? (
        <EmptyState title="Empty folder">
          <p>Upload files here, or write them from the terminal.</p>
        </EmptyState>
      ) : (
        <div className="tablewrap">
          <table className="table" aria-label="Sandbox files">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Size</th>
                <th scope="col" className="hide-sm">
                  Modified
                </th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {listing.data.map((e) => (
                <tr key={e.path}>
                  <td>
                    {e.type === "dir" ? (
                      <button type="button" className="linklike" onClick={() => open(e.path)}>
                        {e.name}/
                      </button>
                    ) : (
                      <span>
                        {e.name}
                        {e.symlink_target ? ` → ${e.symlink_target}` : ""}
                      </span>
                    )}
                  </td>
                  <td>{e.type === "dir" ? "—" : formatBytes(e.size)}</td>
                  <td className="hide-sm">{relativeTime(e.modified_at)}</td>
                  <td className="row">
                    {e.type !== "dir" && (
                      <a className="button secondary small" href={fileUrl(id, e.path)} download={e.name} aria-label={`Download ${e.name}`}>
                        Download
                      </a>
                    )}
                    <button type="button" className="danger small" aria-label={`Delete ${e.name}`} onClick={() => setDoomed(e)}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {folder !== null && (
        <Modal title="New folder" onClose={() => setFolder(null)}>
          <form
            className="stack"
            onSubmit={async (ev) => {
              ev.preventDefault();
              const why = entryNameError(folder);
              if (why) return toast.error(why);
              try {
                await api.post(`${base}/dirs`, { path: joinPath(dir, folder.trim()) });
                setFolder(null);
                refresh();
              } catch (err) {
                toast.error(err);
              }
            }}
          >
            <label>
              Name
              <input value={folder} onChange={(ev) => setFolder(ev.target.value)} autoFocus required />
            </label>
            <div className="row end">
              <button type="submit">Create</button>
            </div>
          </form>
        </Modal>
      )}
      {doomed && (
        <Confirm
          title={`Delete ${doomed.name}?`}
          body={doomed.type === "dir" ? "The folder and everything in it are removed." : "The file is removed."}
          action="Delete"
          danger
          onClose={() => setDoomed(null)}
          onConfirm={async () => {
            await api.del(`${base}/files?path=${encodeURIComponent(doomed.path)}`);
            toast.success(`Deleted ${doomed.name}`);
            refresh();
          }}
        />
      )}
    </section>
  );
}

function Processes({ id }: { id: string }) {
  const qc = useQueryClient();
  const base = `/v1/sandboxes/${encodeURIComponent(id)}/processes`;
  const procs = useQuery({ queryKey: ["sandbox-processes", id], queryFn: () => api.get<SandboxProcess[]>(base), refetchInterval: 3000 });
  const [sig, setSig] = useState<Record<number, string>>({});
  const send = async (pid: number) => {
    const signal = sig[pid] ?? "TERM";
    try {
      await api.post(`${base}/${pid}/signal`, { signal });
      toast.success(`Sent SIG${signal} to ${pid}`);
      void qc.invalidateQueries({ queryKey: ["sandbox-processes", id] });
    } catch (err) {
      toast.error(err);
    }
  };
  if (procs.isPending) return <Loading />;
  if (procs.error) return <ErrorBox error={procs.error} retry={() => void procs.refetch()} />;
  if (procs.data.length === 0)
    return (
      <EmptyState title="No background processes">
        <p>
          Start one with <code>roost sandbox exec -d {id} -- cmd</code>, then <code>roost sandbox attach</code> to it.
        </p>
      </EmptyState>
    );
  return (
    <div className="tablewrap">
      <table className="table" aria-label="Sandbox processes">
        <thead>
          <tr>
            <th scope="col">Pid</th>
            <th scope="col">Tag</th>
            <th scope="col">Command</th>
            <th scope="col" className="hide-sm">
              Started
            </th>
            <th scope="col">Signal</th>
          </tr>
        </thead>
        <tbody>
          {procs.data.map((p) => (
            <tr key={p.pid}>
              <td>{p.pid}</td>
              <td>{p.tag ?? "—"}</td>
              <td>
                <code>{commandLine(p.cmd, p.args)}</code>
              </td>
              <td className="hide-sm">{relativeTime(p.started_at)}</td>
              <td className="row">
                <select aria-label={`Signal for ${p.pid}`} value={sig[p.pid] ?? "TERM"} onChange={(e) => setSig({ ...sig, [p.pid]: e.target.value })}>
                  {SIGNALS.map((s) => (
                    <option key={s}>{s}</option>
                  ))}
                </select>
                <button type="button" className="danger small" onClick={() => void send(p.pid)}>
                  Send
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
