import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable, SecretOnce } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { Confirm, CopyField, Modal } from "../components/ui";
import { relativeTime } from "../lib/format";
import { useSearchParams, useTitle } from "../router";
import type { S3Key } from "../types";

export function S3KeysPage() {
  useTitle("S3 keys");
  const qc = useQueryClient();
  const [params, setParams] = useSearchParams();
  const keys = useQuery({ queryKey: ["s3-keys"], queryFn: () => api.all<S3Key>("/v1/s3-keys") });
  const rows = keys.data;
  const [created, setCreated] = useState<{ id: string; secret: string } | null>(null);
  const [form, setForm] = useState({ description: "", buckets: "", read_only: false });
  const [del, setDel] = useState<S3Key | null>(null);
  const refresh = () => void qc.invalidateQueries({ queryKey: ["s3-keys"] });
  return (
    <>
      <PageHeader crumbs={[{ label: "S3 keys" }]} title="S3 keys" actions={<button type="button" onClick={() => setParams({ create: "1" })}>Create S3 key</button>} />
      <p className="muted">
        Access keys for S3 clients. A key acts with your rights, narrowed to its buckets (the buckets themselves: one deleted and made again under its name is not the key's) and to reads when you ask. A key made with an expiring or project-restricted API token keeps those limits.
      </p>
      {created && (
        <>
          <p>
            Access key id: <CopyField value={created.id} />
          </p>
          <SecretOnce title="Secret access key" secret={created.secret} note="Copy it now: it is shown only this once." onClose={() => setCreated(null)} />
        </>
      )}
      <ResourceTable
        label="S3 keys"
        rows={rows}
        loading={keys.isPending}
        error={keys.error}
        rowKey={(k) => k.id}
        empty={{ title: "No S3 keys", body: <p>Create one to reach your buckets with aws-cli, boto3 or rclone.</p> }}
        columns={[
          { label: "Access key id", render: (k) => <code>{k.id}</code> },
          { label: "Description", render: (k) => k.description ?? "—" },
          { label: "Buckets", render: (k) => k.buckets?.join(", ") || "all", className: "hide-sm" },
          { label: "Access", render: (k) => (k.read_only ? "read only" : "read/write") },
          { label: "Expires", render: (k) => (k.expires_at ? relativeTime(k.expires_at) : "never"), className: "hide-sm" },
          { label: "Last used", render: (k) => (k.last_used_at ? relativeTime(k.last_used_at) : "never"), className: "hide-sm" },
          {
            label: "Actions",
            render: (k) => (
              <button type="button" className="danger small" onClick={() => setDel(k)}>
                Delete
              </button>
            ),
          },
        ]}
      />
      {params.get("create") && (
        <Modal title="Create an S3 key" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const k = await api.post<S3Key & { secret: string }>("/v1/s3-keys", {
                  description: form.description || null,
                  buckets: form.buckets.split(/[\s,]+/).filter(Boolean),
                  read_only: form.read_only,
                });
                setCreated({ id: k.id, secret: k.secret });
                setParams({ create: null });
                toast.success("Created an S3 key");
                refresh();
              } catch (err) {
                toast.error(err);
              }
            }}
          >
            <label>
              Description
              <input value={form.description} onChange={(e) => setForm({ ...form, description: e.target.value })} />
            </label>
            <label>
              Only these buckets <span className="muted small">(names; empty: all you can reach)</span>
              <input value={form.buckets} onChange={(e) => setForm({ ...form, buckets: e.target.value })} />
            </label>
            <label className="row">
              <input type="checkbox" checked={form.read_only} onChange={(e) => setForm({ ...form, read_only: e.target.checked })} /> Read only
            </label>
            <div className="row end">
              <button type="submit">Create</button>
            </div>
          </form>
        </Modal>
      )}
      {del && (
        <Confirm
          title={`Delete S3 key ${del.id}?`}
          body={<p>Clients using it stop working at once.</p>}
          action="Delete"
          danger
          onConfirm={async () => {
            await api.del(`/v1/s3-keys/${del.id}`);
            toast.success("Deleted the key");
            refresh();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </>
  );
}
