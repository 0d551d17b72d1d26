// A bucket's objects: prefixes as folders, uploads with progress, download, delete, metadata.
import { Fragment, useEffect, useRef, useState, type DragEvent } from "react";
import { useInfiniteQuery, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, rawRequest, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { toast } from "../components/toast";
import { ActionButton, Confirm, EmptyState, ErrorBox, Loading, Modal } from "../components/ui";
import { formatBytes, formatTime, relativeTime } from "../lib/format";
import {
  allSelected,
  displayName,
  inPool,
  normalizePrefix,
  objectMetadata,
  objectUrl,
  parentPrefix,
  prefixCrumbs,
  pruneSelection,
  putObject,
  toggle,
  toggleAll,
  uploadKey,
  type ObjectEntry,
  type ObjectListing,
} from "../lib/objects";
import { Link, useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Bucket } from "../types";

interface Upload {
  id: number;
  key: string;
  size: number;
  progress: number;
  state: "queued" | "uploading" | "done" | "failed";
  error?: string;
}

let uploadSeq = 0;

/** Why a folder name is refused, or null. */
export function folderError(name: string): string | null {
  const n = name.trim().replace(/\/+$/, "");
  if (!n) return "Give the folder a name";
  if (n.split("/").some((seg) => seg === "" || seg === "." || seg === "..")) return "No empty, . or .. parts";
  return null;
}
const PAGE = 200;

export function BucketPage({ params }: { params: Record<string, string> }) {
  const name = params.id ?? "";
  useTitle(`Bucket ${name}`);
  const s = useSession();
  const qc = useQueryClient();
  const [search, setSearch] = useSearchParams();
  const prefix = normalizePrefix(search.get("prefix"));
  const bucket = useQuery({ queryKey: ["buckets", "one", name], queryFn: () => api.get<Bucket>(`/v1/buckets/${encodeURIComponent(name)}`) });
  const listing = useInfiniteQuery({
    queryKey: ["objects", name, prefix],
    initialPageParam: "",
    queryFn: ({ pageParam }) =>
      api.get<ObjectListing>(
        withQuery(`/v1/buckets/${encodeURIComponent(name)}/objects`, { prefix, delimiter: "/", cursor: pageParam, limit: PAGE }),
      ),
    getNextPageParam: (last) => last.next_cursor || undefined,
  });
  const prefixes = listing.data?.pages.flatMap((p) => p.prefixes ?? []) ?? [];
  const objects = listing.data?.pages.flatMap((p) => p.objects ?? []) ?? [];
  const keys = objects.map((o) => o.key);
  // The listing carries content types only when the API has them (S3 listings do not); the
  // metadata panel always has it.
  const showType = objects.some((o) => o.content_type);
  const cols = showType ? 6 : 5;
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [dragging, setDragging] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [details, setDetails] = useState<ObjectEntry | null>(null);
  const [folder, setFolder] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const aborts = useRef(new Map<number, () => void>());
  const readOnly = s.readOnly;
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["objects", name] });
    void qc.invalidateQueries({ queryKey: ["buckets"] });
  };

  // A new prefix starts with nothing selected; a reload keeps what is still listed.
  useEffect(() => {
    setSelected(new Set());
  }, [prefix]);
  const keyList = keys.join("\n");
  useEffect(() => {
    setSelected((sel) => pruneSelection(sel, keyList ? keyList.split("\n") : []));
  }, [keyList]);

  const chosen = keys.filter((k) => selected.has(k));
  const go = (p: string) => setSearch({ prefix: p || null });

  async function upload(files: File[]) {
    if (readOnly) {
      toast.error(readOnly);
      return;
    }
    if (files.length === 0) return;
    const batch: Upload[] = files.map((f) => ({ id: ++uploadSeq, key: uploadKey(prefix, f), size: f.size, progress: 0, state: "queued" }));
    setUploads((u) => [...batch, ...u.filter((x) => x.state !== "done")]);
    const set = (id: number, patch: Partial<Upload>) => setUploads((u) => u.map((x) => (x.id === id ? { ...x, ...patch } : x)));
    const results = await inPool(
      files.map((f, i) => [f, batch[i] as Upload] as const),
      3,
      async ([file, up]) => {
        set(up.id, { state: "uploading" });
        try {
          const put = putObject(name, up.key, file, (p) => set(up.id, { progress: p }));
          aborts.current.set(up.id, put.abort);
          await put.done;
          set(up.id, { state: "done", progress: 1 });
        } catch (e) {
          const cancelled = e instanceof DOMException && e.name === "AbortError";
          set(up.id, { state: "failed", error: cancelled ? "cancelled" : e instanceof Error ? e.message : String(e) });
          if (!cancelled) toast.error(e, `Upload of ${up.key} failed`);
          throw e;
        } finally {
          aborts.current.delete(up.id);
        }
      },
    );
    const ok = results.filter((r) => r.status === "fulfilled").length;
    if (ok) toast.success(ok === 1 ? `Uploaded ${batch[results.findIndex((r) => r.status === "fulfilled")]?.key}` : `Uploaded ${ok} files`);
    refresh();
  }

  function onDrop(e: DragEvent<HTMLDivElement>) {
    e.preventDefault();
    setDragging(false);
    void upload([...(e.dataTransfer?.files ?? [])]);
  }

  async function deleteSelected() {
    const doomed = [...chosen];
    const results = await inPool(doomed, 4, (k) => api.del(objectUrl(name, k)));
    const failed = results.flatMap((r, i) => (r.status === "rejected" ? [[doomed[i], r.reason] as const] : []));
    const ok = doomed.length - failed.length;
    if (ok) toast.success(`Deleted ${ok} object${ok === 1 ? "" : "s"}`);
    for (const [k, err] of failed.slice(0, 3)) toast.error(err, `Could not delete ${k}`);
    if (failed.length > 3) toast.error(`${failed.length - 3} more objects could not be deleted`);
    setSelected(new Set(failed.map(([k]) => k as string)));
    refresh();
  }

  const empty = !listing.isPending && !listing.error && prefixes.length === 0 && objects.length === 0;
  const uploadReason = readOnly ?? undefined;

  return (
    <>
      <PageHeader
        crumbs={[{ label: "Buckets", to: "/buckets" }, { label: name }]}
        title={<>Bucket {name}</>}
        actions={
          <>
            <ActionButton reason={uploadReason} onClick={() => fileInput.current?.click()}>
              Upload files
            </ActionButton>
            <ActionButton className="secondary" reason={uploadReason} onClick={() => setFolder("")}>
              New folder
            </ActionButton>
            <ActionButton
              className="danger"
              reason={readOnly ?? (chosen.length === 0 ? "Select objects to delete first" : null)}
              onClick={() => setConfirmDelete(true)}
            >
              Delete selected{chosen.length ? ` (${chosen.length})` : ""}
            </ActionButton>
          </>
        }
      />
      <input
        ref={fileInput}
        type="file"
        multiple
        hidden
        disabled={Boolean(readOnly)}
        data-testid="upload-input"
        aria-label="Files to upload"
        onChange={(e) => {
          const files = [...(e.target.files ?? [])];
          e.target.value = "";
          void upload(files);
        }}
      />
      {bucket.data && (
        <p className="muted small">
          {bucket.data.objects} object{bucket.data.objects === 1 ? "" : "s"}, {formatBytes(bucket.data.size_bytes)}
          {bucket.data.public_read ? " · anyone may read objects" : ""}
        </p>
      )}
      <nav aria-label="Folder" className="row wrap prefixbar">
        {prefix && (
          <button type="button" className="secondary small" onClick={() => go(parentPrefix(prefix))} aria-label="Up one folder">
            ↑ Up
          </button>
        )}
        <ol className="prefixcrumbs">
          {prefixCrumbs(prefix).map((c, i, all) => (
            <li key={c.prefix}>
              {i === all.length - 1 ? (
                <span aria-current="location">{i === 0 ? `${name}/` : `${c.label}/`}</span>
              ) : (
                <Link to={`/buckets/${encodeURIComponent(name)}${c.prefix ? `?prefix=${encodeURIComponent(c.prefix)}` : ""}`}>
                  {i === 0 ? `${name}/` : `${c.label}/`}
                </Link>
              )}
            </li>
          ))}
        </ol>
      </nav>
      <div
        className={`dropzone${dragging ? " dragging" : ""}`}
        data-testid="dropzone"
        onDragOver={(e) => {
          if (readOnly) return;
          e.preventDefault();
          if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
          setDragging(true);
        }}
        onDragLeave={(e) => {
          if (e.currentTarget.contains(e.relatedTarget as Node | null)) return;
          setDragging(false);
        }}
        onDrop={(e) => (readOnly ? e.preventDefault() : onDrop(e))}
      >
        {uploads.length > 0 && (
          <section className="panel uploads" aria-label="Uploads">
            <div className="row between">
              <h2>Uploads</h2>
              <button type="button" className="ghost small" onClick={() => setUploads((u) => u.filter((x) => x.state === "queued" || x.state === "uploading"))}>
                Clear finished
              </button>
            </div>
            <ul className="uploadlist">
              {uploads.map((u) => (
                <li key={u.id} data-upload={u.key} data-state={u.state}>
                  <div className="row between">
                    <span className="objkey">{u.key}</span>
                    <span className="muted small row">
                      {u.state === "uploading" && (
                        <button type="button" className="ghost small" onClick={() => aborts.current.get(u.id)?.()} aria-label={`Cancel upload of ${u.key}`}>
                          Cancel
                        </button>
                      )}
                      {u.state === "failed" ? <span className="field-error">{u.error}</span> : u.state === "done" ? "done" : `${Math.round(u.progress * 100)}% of ${formatBytes(u.size)}`}
                    </span>
                  </div>
                  <progress max={1} value={u.progress} aria-label={`Upload of ${u.key}`} />
                </li>
              ))}
            </ul>
          </section>
        )}
        {listing.isPending ? (
          <Loading />
        ) : listing.error ? (
          <ErrorBox error={listing.error} retry={() => void listing.refetch()} />
        ) : empty ? (
          <EmptyState title={prefix ? `Nothing in ${prefix}` : "This bucket is empty"}>
            {readOnly ? (
              <p>An operator of this project can upload objects here.</p>
            ) : (
              <p>
                Drop files here or press <strong>Upload files</strong>. A key with a <code>/</code> in it (such as <code>photos/cat.jpg</code>) shows as a folder.
              </p>
            )}
            {prefix && (
              <button type="button" className="secondary small" onClick={() => go(parentPrefix(prefix))}>
                Go up
              </button>
            )}
          </EmptyState>
        ) : (
          <div className="tablewrap">
            <table className="table" aria-label={`Objects in ${name}/${prefix}`} aria-busy={listing.isFetching}>
              <thead>
                <tr>
                  <th scope="col" className="check">
                    <input
                      type="checkbox"
                      aria-label="Select all objects"
                      disabled={keys.length === 0}
                      checked={allSelected(selected, keys)}
                      onChange={() => setSelected(toggleAll(selected, keys))}
                    />
                  </th>
                  <th scope="col">Name</th>
                  <th scope="col">Size</th>
                  <th scope="col" className="hide-sm">
                    Last modified
                  </th>
                  {showType && (
                    <th scope="col" className="hide-sm">
                      Content type
                    </th>
                  )}
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {prefixes.map((p) => (
                  <tr key={`p:${p}`} data-prefix={p}>
                    <td className="check" />
                    <td colSpan={cols - 1}>
                      <Link to={`/buckets/${encodeURIComponent(name)}?prefix=${encodeURIComponent(p)}`} className="folder">
                        <svg className="foldericon" aria-hidden="true" viewBox="0 0 16 16" width="16" height="16">
                          <path d="M1.5 3h4.2l1.5 1.5h7.3v8.5h-13z" fill="currentColor" opacity="0.85" />
                        </svg>
                        {displayName(p, prefix)}
                      </Link>
                    </td>
                  </tr>
                ))}
                {objects.map((o) => {
                  const label = displayName(o.key, prefix);
                  return (
                    <tr key={o.key} data-object={o.key} aria-selected={selected.has(o.key)}>
                      <td className="check">
                        <input
                          type="checkbox"
                          aria-label={`Select ${label}`}
                          checked={selected.has(o.key)}
                          onChange={(e) => setSelected(toggle(selected, o.key, e.target.checked))}
                        />
                      </td>
                      <td className="objname">
                        <button type="button" className="linklike" onClick={() => setDetails(o)} aria-label={`Metadata of ${label}`}>
                          {label}
                        </button>
                      </td>
                      <td>{formatBytes(o.size)}</td>
                      <td className="hide-sm" title={formatTime(o.last_modified)}>
                        {relativeTime(o.last_modified)}
                      </td>
                      {showType && <td className="hide-sm small">{o.content_type ?? ""}</td>}
                      <td>
                        <a className="button secondary small" href={objectUrl(name, o.key, true)} download={label.split("/").pop()} aria-label={`Download ${label}`}>
                          Download
                        </a>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        {listing.hasNextPage && (
          <div className="row end">
            <button type="button" className="secondary" disabled={listing.isFetchingNextPage} onClick={() => void listing.fetchNextPage()}>
              {listing.isFetchingNextPage ? "Loading…" : "Load more"}
            </button>
          </div>
        )}
        {!readOnly && !empty && <p className="muted small droptip">Drop files anywhere here to upload them into {prefix ? <code>{prefix}</code> : "the bucket's top level"}.</p>}
        {readOnly && <p className="muted small">{readOnly}</p>}
      </div>
      {confirmDelete && (
        <Confirm
          title={`Delete ${chosen.length} object${chosen.length === 1 ? "" : "s"}?`}
          body={
            <>
              <p>This cannot be undone.</p>
              <ul className="objkey small">
                {chosen.slice(0, 10).map((k) => (
                  <li key={k}>{k}</li>
                ))}
                {chosen.length > 10 && <li>… and {chosen.length - 10} more</li>}
              </ul>
            </>
          }
          action="Delete"
          danger
          onConfirm={deleteSelected}
          onClose={() => setConfirmDelete(false)}
        />
      )}
      {folder !== null && (
        <Modal title="New folder" onClose={() => setFolder(null)}>
          <form
            className="stack"
            onSubmit={(e) => {
              e.preventDefault();
              const next = folderError(folder) ? null : normalizePrefix(prefix + folder.trim());
              if (!next) return;
              setFolder(null);
              go(next);
            }}
          >
            <label>
              Folder name
              <input required value={folder} aria-invalid={Boolean(folder && folderError(folder))} onChange={(e) => setFolder(e.target.value)} />
              {folder && folderError(folder) && <span className="field-error">{folderError(folder)}</span>}
            </label>
            <p className="muted small">
              Folders are key prefixes: this one exists once you upload a file into it (as <code>{prefix + (folder.trim() || "name")}/…</code>).
            </p>
            <div className="row end">
              <button type="submit" disabled={!folder.trim() || Boolean(folderError(folder))}>
                Open folder
              </button>
            </div>
          </form>
        </Modal>
      )}
      {details && <ObjectDetails bucket={name} object={details} onClose={() => setDetails(null)} />}
    </>
  );
}

function ObjectDetails({ bucket, object, onClose }: { bucket: string; object: ObjectEntry; onClose: () => void }) {
  const head = useQuery({
    queryKey: ["object-head", bucket, object.key, object.etag],
    queryFn: async () => objectMetadata((await rawRequest("HEAD", objectUrl(bucket, object.key))).headers),
  });
  return (
    <Modal title={`Metadata of ${object.key}`} onClose={onClose} wide>
      <div className="stack" data-testid="object-metadata">
        {head.isPending ? (
          <Loading />
        ) : head.error ? (
          <ErrorBox error={head.error} retry={() => void head.refetch()} />
        ) : (
          <dl className="spec">
            <dt>Key</dt>
            <dd>
              <code>{object.key}</code>
            </dd>
            {head.data.map(([k, v]) => (
              <Fragment key={k}>
                <dt>{k}</dt>
                <dd>
                  <code>{v}</code>
                </dd>
              </Fragment>
            ))}
          </dl>
        )}
        <div className="row end">
          <a className="button" href={objectUrl(bucket, object.key, true)} download={object.key.split("/").pop()}>
            Download
          </a>
        </div>
      </div>
    </Modal>
  );
}
