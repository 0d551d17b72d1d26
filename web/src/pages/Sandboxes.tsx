import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable, SecretOnce } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { Confirm, Modal, useNow } from "../components/ui";
import { relativeTime } from "../lib/format";
import { countdown } from "../lib/sandboxes";
import { Link, useSearchParams, useTitle } from "../router";
import type { Sandbox, SandboxKey, SandboxUsage } from "../types";



export function SandboxesPage() {
  useTitle("Sandboxes");
  const qc = useQueryClient();
  const now = useNow();
  const [params, setParams] = useSearchParams();
  const sandboxes = useQuery({ queryKey: ["sandboxes"], queryFn: () => api.all<Sandbox>("/v1/sandboxes"), refetchInterval: 5000 });
  const keys = useQuery({ queryKey: ["sandbox-keys"], queryFn: () => api.all<SandboxKey>("/v1/sandbox-keys") });
  const usage = useQuery({ queryKey: ["sandbox-usage"], queryFn: () => api.get<SandboxUsage[]>("/v1/sandbox-usage") });
  const [created, setCreated] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<SandboxKey | null>(null);
  const [name, setName] = useState("");
  const [form, setForm] = useState({ template: "base", ttl: "300" });
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["sandboxes"] });
    void qc.invalidateQueries({ queryKey: ["sandbox-keys"] });
    void qc.invalidateQueries({ queryKey: ["sandbox-usage"] });
  };
  const act = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      toast.success(what);
      refresh();
    } catch (err) {
      toast.error(err);
    }
  };
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Sandboxes" }]}
        title="Sandboxes"
        actions={
          <>
            <button type="button" onClick={() => setParams({ create: "1" })}>
              Create sandbox
            </button>{" "}
            <button type="button" className="secondary" onClick={() => setParams({ key: "1" })}>
              Create key
            </button>
          </>
        }
      />
      <p className="muted">
        Ephemeral instances with a time to live, also reachable with the E2B SDKs (set <code>E2B_API_URL</code>, <code>E2B_SANDBOX_URL</code> and <code>E2B_API_KEY</code>). Open a sandbox for its terminal, files and background processes.
      </p>
      {created && <SecretOnce title="E2B_API_KEY" secret={created} note="Copy it now: it is shown only this once." onClose={() => setCreated(null)} />}
      <ResourceTable
        label="Sandboxes"
        rows={sandboxes.data}
        loading={sandboxes.isPending}
        error={sandboxes.error}
        rowKey={(s) => s.id}
        empty={{ title: "No sandboxes", body: <p>Create one here, with <code>roost sandbox create</code>, or with the E2B SDK.</p> }}
        columns={[
          {
            label: "Id",
            render: (s) => (
              <Link to={`/sandboxes/${s.id}`}>
                <code>{s.id}</code>
              </Link>
            ),
          },
          { label: "Template", render: (s) => s.template },
          { label: "Type", render: (s) => s.type, className: "hide-sm" },
          { label: "State", render: (s) => s.state },
          { label: "Time left", render: (s) => <span aria-label="time left">{countdown(s.expires_at, now)}</span> },
          { label: "Commands", render: (s) => String(s.commands), className: "hide-sm" },
          { label: "Started", render: (s) => relativeTime(s.started_at), className: "hide-sm" },
          {
            label: "Actions",
            render: (s) => (
              <span className="row">
                <Link to={`/sandboxes/${s.id}?tab=terminal`}>Terminal</Link>
                <Link to={`/sandboxes/${s.id}?tab=files`}>Files</Link>
                {s.state === "paused" ? (
                  <button type="button" className="small" onClick={() => act("Resumed", () => api.post(`/v1/sandboxes/${s.id}/resume`, {}))}>
                    Resume
                  </button>
                ) : (
                  <button type="button" className="small" onClick={() => act("Paused", () => api.post(`/v1/sandboxes/${s.id}/pause`, {}))}>
                    Pause
                  </button>
                )}
                <button type="button" className="small" onClick={() => act("Extended by 5 minutes", () => api.post(`/v1/sandboxes/${s.id}/timeout`, { ttl_secs: 300 }))}>
                  +5m
                </button>
                <button type="button" className="danger small" onClick={() => act("Killed", () => api.del(`/v1/sandboxes/${s.id}`))}>
                  Kill
                </button>
              </span>
            ),
          },
        ]}
      />
      <h2>Keys</h2>
      <ResourceTable
        label="Sandbox keys"
        rows={keys.data}
        loading={keys.isPending}
        error={keys.error}
        rowKey={(k) => k.id}
        empty={{ title: "No keys", body: <p>A key lets the E2B SDKs create sandboxes in a project.</p> }}
        columns={[
          { label: "Name", render: (k) => k.name },
          { label: "Prefix", render: (k) => <code>{k.prefix}…</code> },
          { label: "Max sandboxes", render: (k) => String(k.max_sandboxes) },
          { label: "Creates/min", render: (k) => String(k.creates_per_minute), className: "hide-sm" },
          { label: "Expires", render: (k) => (k.expires_at ? relativeTime(k.expires_at) : "never"), className: "hide-sm" },
          { label: "Created", render: (k) => relativeTime(k.created_at), className: "hide-sm" },
          {
            label: "Actions",
            render: (k) => (
              <button type="button" className="danger small" aria-label={`Revoke key ${k.name}`} onClick={() => setRevoking(k)}>
                Revoke
              </button>
            ),
          },
        ]}
      />
      <h2>Usage (24 h)</h2>
      <ResourceTable
        label="Sandbox usage"
        rows={usage.data}
        loading={usage.isPending}
        error={usage.error}
        rowKey={(u) => u.key_id ?? "none"}
        empty={{ title: "No usage yet", body: <p>Sandboxes that ran in the last day show here, per key.</p> }}
        columns={[
          { label: "Key", render: (u) => (u.key_id ? <code>{u.key_id}</code> : "(no key)") },
          { label: "Sandboxes", render: (u) => String(u.sandboxes) },
          { label: "Sandbox-seconds", render: (u) => u.sandbox_seconds.toFixed(0) },
          { label: "vCPU-seconds", render: (u) => u.vcpu_seconds.toFixed(0) },
          { label: "Commands", render: (u) => String(u.commands) },
        ]}
      />
      {params.get("create") && (
        <Modal title="Create a sandbox" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              setParams({ create: null });
              await act("Created a sandbox", () => api.post("/v1/sandboxes", { template: form.template, ttl_secs: Number(form.ttl) }));
            }}
          >
            <label>
              Template
              <input value={form.template} onChange={(e) => setForm({ ...form, template: e.target.value })} />
            </label>
            <label>
              Time to live (seconds)
              <input type="number" min={1} value={form.ttl} onChange={(e) => setForm({ ...form, ttl: e.target.value })} />
            </label>
            <div className="row end">
              <button type="submit">Create</button>
            </div>
          </form>
        </Modal>
      )}
      {params.get("key") && (
        <Modal title="Create a sandbox key" onClose={() => setParams({ key: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const k = await api.post<{ secret: string }>("/v1/sandbox-keys", { name });
                setCreated(k.secret);
                setParams({ key: null });
                refresh();
              } catch (err) {
                toast.error(err);
              }
            }}
          >
            <label>
              Name
              <input value={name} onChange={(e) => setName(e.target.value)} required />
            </label>
            <div className="row end">
              <button type="submit">Create</button>
            </div>
          </form>
        </Modal>
      )}
      {revoking && (
        <Confirm
          title={`Revoke key ${revoking.name}?`}
          body={<p>E2B requests with it are refused at once; its sandboxes keep running until they are killed or time out.</p>}
          action="Revoke"
          danger
          onConfirm={async () => {
            await api.del(`/v1/sandbox-keys/${revoking.id}`);
            toast.success(`Revoked key ${revoking.name}`);
            refresh();
          }}
          onClose={() => setRevoking(null)}
        />
      )}
    </>
  );
}
