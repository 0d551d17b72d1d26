import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { ActionButton, Confirm, CopyField, Modal } from "../components/ui";
import { formatBytes, relativeTime } from "../lib/format";
import { Link, useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Bucket } from "../types";

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Why a bucket name is refused (S3 rules), or null. */
export function bucketNameError(name: string): string | null {
  if (!BUCKET_RE.test(name)) return "3–63 characters of a-z 0-9 - . starting and ending with a letter or digit";
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return "Must not look like an IP address";
  if (name.includes("..")) return "No two dots in a row";
  return null;
}

export function BucketsPage() {
  useTitle("Buckets");
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [params, setParams] = useSearchParams();
  const buckets = useQuery({ queryKey: ["buckets", project], queryFn: () => api.all<Bucket>("/v1/buckets", { project }) });
  const rows = buckets.data;
  const [form, setForm] = useState({ name: "", public_read: false });
  const [del, setDel] = useState<Bucket | null>(null);
  const [link, setLink] = useState<{ bucket: Bucket; key: string; method: "GET" | "PUT"; url?: string } | null>(null);
  const refresh = () => void qc.invalidateQueries({ queryKey: ["buckets"] });
  const nErr = form.name ? bucketNameError(form.name) : null;

  return (
    <>
      <PageHeader
        crumbs={[{ label: "Buckets" }]}
        title="Buckets"
        actions={
          <ActionButton reason={s.readOnly} onClick={() => setParams({ create: "1" })}>
            Create bucket
          </ActionButton>
        }
      />
      <p className="muted">
        Object storage over the S3 protocol: use any S3 client with a key from <Link to="/s3-keys">S3 keys</Link>. Here you can
        create and delete buckets, open one to browse, upload, download and delete its objects, and sign download and upload
        links for objects.
      </p>
      <ResourceTable
        label="Buckets"
        rows={rows}
        loading={buckets.isPending}
        error={buckets.error}
        rowKey={(b) => b.id}
        empty={{ title: "No buckets", body: <p>Create a bucket, then an S3 key to reach it with aws-cli, boto3 or rclone.</p> }}
        columns={[
          {
            label: "Name",
            render: (b) => (
              <Link to={`/buckets/${encodeURIComponent(b.name)}`}>
                <strong>{b.name}</strong>
              </Link>
            ),
          },
          { label: "Objects", render: (b) => b.objects },
          { label: "Size", render: (b) => formatBytes(b.size_bytes) },
          { label: "Public read", render: (b) => (b.public_read ? "yes" : "no"), className: "hide-sm" },
          { label: "Created", render: (b) => relativeTime(b.created_at), className: "hide-sm" },
          {
            label: "Actions",
            render: (b) => (
              <span className="row wrap">
                <button type="button" className="secondary small" onClick={() => setLink({ bucket: b, key: "", method: "GET" })}>
                  Download link
                </button>
                <ActionButton className="secondary small" reason={s.readOnly} onClick={() => setLink({ bucket: b, key: "", method: "PUT" })}>
                  Upload link
                </ActionButton>
                <ActionButton className="danger small" reason={s.readOnly} onClick={() => setDel(b)}>
                  Delete
                </ActionButton>
              </span>
            ),
          },
        ]}
      />
      {params.get("create") && !s.readOnly && (
        <Modal title="Create a bucket" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              if (nErr) return;
              try {
                await api.post("/v1/buckets", { name: form.name, public_read: form.public_read, project });
                toast.success(`Created bucket ${form.name}`);
                setParams({ create: null });
                refresh();
              } catch (err) {
                toast.error(err);
              }
            }}
          >
            <label>
              Name <span className="muted small">(global, as in S3)</span>
              <input required value={form.name} aria-invalid={Boolean(nErr)} onChange={(e) => setForm({ ...form, name: e.target.value })} />
              {nErr && <span className="field-error">{nErr}</span>}
            </label>
            <label className="row">
              <input type="checkbox" checked={form.public_read} onChange={(e) => setForm({ ...form, public_read: e.target.checked })} /> Anyone may read objects (static hosting)
            </label>
            <div className="row end">
              <button type="submit" disabled={Boolean(nErr) || !form.name}>
                Create
              </button>
            </div>
          </form>
        </Modal>
      )}
      {link && (
        <Modal title={`${link.method === "GET" ? "Download" : "Upload"} link for ${link.bucket.name}`} onClose={() => setLink(null)}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const r = await api.post<{ url: string }>(`/v1/buckets/${link.bucket.id}/presign`, { key: link.key, method: link.method, expires: "1h" });
                setLink({ ...link, url: r.url });
              } catch (err) {
                toast.error(err);
              }
            }}
          >
            <label>
              Object key
              <input required value={link.key} placeholder="photos/cat.jpg" onChange={(e) => setLink({ ...link, key: e.target.value, url: undefined })} />
            </label>
            {link.url && link.method === "GET" && (
              <>
                <CopyField value={link.url} />
                <a className="button" href={link.url} download={link.key.split("/").pop()} data-testid="download-link">
                  Download (link valid for an hour)
                </a>
              </>
            )}
            {link.url && link.method === "PUT" && (
              <>
                <p className="muted small">Anyone with this URL can upload this key for an hour, e.g. with curl:</p>
                <CopyField value={`curl -X PUT --upload-file ./${link.key.split("/").pop()} '${link.url}'`} />
              </>
            )}
            <div className="row end">
              <button type="submit">Sign a link</button>
            </div>
          </form>
        </Modal>
      )}
      {del && (
        <Confirm
          title={`Delete bucket ${del.name}?`}
          body={<p>{del.objects ? `Its ${del.objects} object(s) are deleted too.` : "It is empty."}</p>}
          action="Delete"
          danger
          typed={del.objects ? del.name : undefined}
          onConfirm={async () => {
            await api.del(`/v1/buckets/${del.id}${del.objects ? "?force=true" : ""}`);
            toast.success(`Deleted ${del.name}`);
            refresh();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </>
  );
}
