import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable, SecretOnce } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { Confirm, Modal } from "../components/ui";
import { relativeTime } from "../lib/format";
import { useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Page, Scope, Token } from "../types";

export function TokensPage() {
  useTitle("API tokens");
  const s = useSession();
  const qc = useQueryClient();
  const [params, setParams] = useSearchParams();
  const tokens = useQuery({ queryKey: ["tokens"], queryFn: () => api.get<Page<Token>>("/v1/tokens?limit=1000") });
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const [del, setDel] = useState<Token | null>(null);
  const [form, setForm] = useState({ name: "", scope: "write" as Scope, expires_in: "30d", project: "" });
  const refresh = () => void qc.invalidateQueries({ queryKey: ["tokens"] });
  const projectName = (id?: string | null) => (id ? (s.projects.find((p) => p.id === id)?.name ?? id) : "all");

  return (
    <>
      <PageHeader crumbs={[{ label: "API tokens" }]} title="API tokens" actions={<button type="button" onClick={() => setParams({ create: "1" })}>Create token</button>} />
      <p className="muted">Tokens let scripts and the CLI act as you: <code>Authorization: Bearer &lt;secret&gt;</code> or <code>ROOST_TOKEN</code>.</p>
      {secret && (
        <SecretOnce
          title={`Secret of token ${secret.name}`}
          secret={secret.secret}
          note="Copy it now: it is shown only this once and cannot be recovered."
          onClose={() => setSecret(null)}
        />
      )}
      <ResourceTable
        label="API tokens"
        rows={tokens.data?.items}
        loading={tokens.isPending}
        error={tokens.error}
        rowKey={(t) => t.id}
        empty={{ title: "No API tokens", body: <p>Create one for a script or CI job; its secret is shown once.</p> }}
        columns={[
          { label: "Name", render: (t) => <strong>{t.name}</strong> },
          { label: "Prefix", render: (t) => <code>{t.prefix}…</code>, className: "hide-sm" },
          { label: "Scope", render: (t) => t.scope },
          { label: "Project", render: (t) => projectName(t.project_id), className: "hide-sm" },
          { label: "Expires", render: (t) => (t.expires_at ? relativeTime(t.expires_at) : "never") },
          { label: "Last used", render: (t) => (t.last_used_at ? relativeTime(t.last_used_at) : "never"), className: "hide-sm" },
          {
            label: "Actions",
            render: (t) => (
              <button type="button" className="danger small" onClick={() => setDel(t)}>
                Revoke
              </button>
            ),
          },
        ]}
      />
      {params.get("create") && (
        <Modal title="Create an API token" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const t = await api.post<Token & { secret: string }>("/v1/tokens", {
                  name: form.name,
                  scope: form.scope,
                  expires_in: form.expires_in || null,
                  project: form.project || null,
                });
                setSecret({ name: t.name, secret: t.secret });
                setParams({ create: null });
                toast.success(`Created token ${t.name}`);
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
              Scope
              <select value={form.scope} onChange={(e) => setForm({ ...form, scope: e.target.value as Scope })}>
                <option value="read">read: GET only</option>
                <option value="write">write: change resources</option>
                <option value="admin">admin: everything you may do</option>
              </select>
            </label>
            <label>
              Expires in <span className="muted small">(e.g. 12h, 30d; empty: never)</span>
              <input value={form.expires_in} onChange={(e) => setForm({ ...form, expires_in: e.target.value })} />
            </label>
            <label>
              Restrict to project
              <select value={form.project} onChange={(e) => setForm({ ...form, project: e.target.value })}>
                <option value="">no restriction</option>
                {s.projects.map((p) => (
                  <option key={p.id}>{p.name}</option>
                ))}
              </select>
            </label>
            <div className="row end">
              <button type="submit">Create</button>
            </div>
          </form>
        </Modal>
      )}
      {del && (
        <Confirm
          title={`Revoke ${del.name}?`}
          body={<p>It stops working at once.</p>}
          action="Revoke"
          danger
          onConfirm={async () => {
            await api.del(`/v1/tokens/${del.id}`);
            toast.success(`Revoked ${del.name}`);
            refresh();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </>
  );
}
