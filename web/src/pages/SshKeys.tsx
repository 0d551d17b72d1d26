import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable, SecretOnce } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { Confirm, Modal } from "../components/ui";
import { relativeTime } from "../lib/format";
import { useSearchParams, useTitle } from "../router";
import type { Page } from "../types";

interface SshKey {
  id: string;
  name: string;
  public_key: string;
  fingerprint: string;
  created_at: string;
  /** Made with a project-restricted token: only that project's instances get it. */
  project_id?: string | null;
  /** Made with an expiring token: no new instance gets it after this. */
  expires_at?: string | null;
}

/** Your SSH keys: generate (the private key is shown once) or import a public key. */
export function SshKeysPage() {
  useTitle("SSH keys");
  const qc = useQueryClient();
  const [params, setParams] = useSearchParams();
  const keys = useQuery({ queryKey: ["ssh-keys"], queryFn: () => api.get<Page<SshKey>>("/v1/ssh-keys?limit=1000") });
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const [del, setDel] = useState<SshKey | null>(null);
  const [form, setForm] = useState({ name: "", public_key: "" });
  const refresh = () => void qc.invalidateQueries({ queryKey: ["ssh-keys"] });

  return (
    <>
      <PageHeader crumbs={[{ label: "SSH keys" }]} title="SSH keys" actions={<button type="button" onClick={() => setParams({ create: "1" })}>Add SSH key</button>} />
      <p className="muted">
        Keys chosen when launching an instance (container or microVM) go to <code>/root/.ssh/authorized_keys</code> at its first boot.
      </p>
      {secret && (
        <SecretOnce
          title={`Private key of ${secret.name}`}
          secret={secret.secret}
          note="Save it now (e.g. ~/.ssh/roost-key, mode 600): it is shown only this once and Roost does not keep it."
          onClose={() => setSecret(null)}
        />
      )}
      <ResourceTable
        label="SSH keys"
        rows={keys.data?.items}
        loading={keys.isPending}
        error={keys.error}
        rowKey={(k) => k.id}
        empty={{ title: "No SSH keys", body: <p>Generate a key pair or import your public key.</p> }}
        columns={[
          { label: "Name", render: (k) => <strong>{k.name}</strong> },
          { label: "Fingerprint", render: (k) => <code>{k.fingerprint}</code>, className: "hide-sm" },
          { label: "Type", render: (k) => k.public_key.split(" ")[0] },
          { label: "Expires", render: (k) => (k.expires_at ? relativeTime(k.expires_at) : "never"), className: "hide-sm" },
          { label: "Created", render: (k) => relativeTime(k.created_at) },
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
        <Modal title="Add an SSH key" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const created = await api.post<{ key: SshKey; private_key?: string }>("/v1/ssh-keys", {
                  name: form.name,
                  public_key: form.public_key.trim() || undefined,
                });
                if (created.private_key) setSecret({ name: created.key.name, secret: created.private_key });
                setParams({ create: null });
                toast.success(`Added SSH key ${created.key.name}`);
                refresh();
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
              Public key <span className="muted small">(empty: generate an Ed25519 pair)</span>
              <textarea rows={3} value={form.public_key} placeholder="ssh-ed25519 AAAA… me@laptop" onChange={(e) => setForm({ ...form, public_key: e.target.value })} />
            </label>
            <div className="row end">
              <button type="submit">{form.public_key.trim() ? "Import" : "Generate"}</button>
            </div>
          </form>
        </Modal>
      )}
      {del && (
        <Confirm
          title={`Delete ${del.name}?`}
          body={<p>Instances that got it keep it.</p>}
          action="Delete"
          danger
          onConfirm={async () => {
            await api.del(`/v1/ssh-keys/${del.id}`);
            toast.success(`Deleted ${del.name}`);
            refresh();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </>
  );
}

interface NodeInfo {
  compute: boolean;
  instance_types: string[];
  accelerator?: string;
  accelerator_reason?: string;
  kvm_usable?: boolean;
  tsc_khz?: number;
  vm_unavailable?: string;
}

/** What this server's compute node runs: instance types, the microVM accelerator and why. */
export function NodePage() {
  useTitle("Node");
  const node = useQuery({ queryKey: ["node"], queryFn: () => api.get<NodeInfo>("/v1/node") });
  const n = node.data;
  return (
    <>
      <PageHeader crumbs={[{ label: "Node" }]} title="Compute node" />
      {node.error ? (
        <p className="error">{String(node.error)}</p>
      ) : !n ? (
        <p className="muted">Loading…</p>
      ) : (
        <dl className="facts">
          <dt>Compute</dt>
          <dd>{n.compute ? "on" : "off"}</dd>
          <dt>Instance types</dt>
          <dd>{n.instance_types.join(", ") || "none"}</dd>
          <dt>MicroVM accelerator</dt>
          <dd>{n.accelerator ?? "–"}</dd>
          <dt>Why</dt>
          <dd>{n.accelerator_reason ?? n.vm_unavailable ?? "–"}</dd>
          {n.tsc_khz ? (
            <>
              <dt>Host TSC</dt>
              <dd>{n.tsc_khz} kHz</dd>
            </>
          ) : null}
        </dl>
      )}
    </>
  );
}
