import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable, SecretOnce } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { ActionButton, Confirm, EmptyState, Modal } from "../components/ui";
import { relativeTime } from "../lib/format";
import { useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Page, Role, UserDetails } from "../types";

export function UsersPage() {
  useTitle("Users");
  const s = useSession();
  const qc = useQueryClient();
  const [params, setParams] = useSearchParams();
  const users = useQuery({ queryKey: ["users"], queryFn: () => api.get<Page<UserDetails>>("/v1/users?limit=1000&sort=name") });
  const [secret, setSecret] = useState<{ user: string; password: string } | null>(null);
  const [del, setDel] = useState<UserDetails | null>(null);
  const [form, setForm] = useState({ name: "", role: "viewer" as Role, email: "", display_name: "" });
  const refresh = () => void qc.invalidateQueries({ queryKey: ["users"] });

  if (s.adminOnly) {
    return (
      <EmptyState title="Administrators only">
        <p>Users are managed by administrators. Your own profile is under Account.</p>
      </EmptyState>
    );
  }

  async function act(u: UserDetails, what: "disable" | "enable" | "password") {
    try {
      const res = await api.post<{ password?: string | null }>(`/v1/users/${u.id}/${what}`, what === "password" ? {} : undefined);
      if (what === "password" && res?.password) setSecret({ user: u.name, password: res.password });
      toast.success(what === "password" ? `New password for ${u.name}` : `${u.name} ${what}d`);
      refresh();
    } catch (e) {
      toast.error(e);
    }
  }

  return (
    <>
      <PageHeader crumbs={[{ label: "Users" }]} title="Users" actions={<button type="button" onClick={() => setParams({ create: "1" })}>Create user</button>} />
      {secret && (
        <SecretOnce
          title={`Password of ${secret.user}`}
          secret={secret.password}
          note="Shown only this once. Give it to the user; they can change it with roost passwd or under Account."
          onClose={() => setSecret(null)}
        />
      )}
      <ResourceTable
        label="Users"
        rows={users.data?.items}
        loading={users.isPending}
        error={users.error}
        rowKey={(u) => u.id}
        empty={{ title: "No users", body: <p>Create one.</p> }}
        columns={[
          { label: "Name", render: (u) => <strong>{u.name}</strong> },
          { label: "Role", render: (u) => u.role },
          { label: "Email", render: (u) => u.email ?? "—", className: "hide-sm" },
          { label: "State", render: (u) => (u.disabled ? "disabled" : "active") },
          { label: "Created", render: (u) => relativeTime(u.created_at), className: "hide-sm" },
          {
            label: "Actions",
            render: (u) => (
              <span className="row wrap">
                <ActionButton className="secondary small" reason={u.id === s.who.user.id ? "You cannot disable yourself" : null} onClick={() => void act(u, u.disabled ? "enable" : "disable")}>
                  {u.disabled ? "Enable" : "Disable"}
                </ActionButton>
                <button type="button" className="secondary small" onClick={() => void act(u, "password")}>
                  Reset password
                </button>
                <ActionButton className="danger small" reason={u.id === s.who.user.id ? "You cannot delete yourself" : null} onClick={() => setDel(u)}>
                  Delete
                </ActionButton>
              </span>
            ),
          },
        ]}
      />
      {params.get("create") && (
        <Modal title="Create a user" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const res = await api.post<{ user: UserDetails; password?: string | null }>("/v1/users", {
                  name: form.name,
                  role: form.role,
                  email: form.email || null,
                  display_name: form.display_name || null,
                  projects: s.project ? [s.project.name] : [],
                });
                if (res.password) setSecret({ user: res.user.name, password: res.password });
                toast.success(`Created ${res.user.name}`);
                setParams({ create: null });
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
              Role
              <select value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
                <option value="viewer">viewer</option>
                <option value="operator">operator</option>
                <option value="admin">admin</option>
              </select>
            </label>
            <label>
              Email
              <input type="email" value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} />
            </label>
            <label>
              Display name
              <input value={form.display_name} onChange={(e) => setForm({ ...form, display_name: e.target.value })} />
            </label>
            <p className="muted small">A password is generated and shown once. The user joins project {s.project?.name}.</p>
            <div className="row end">
              <button type="submit">Create</button>
            </div>
          </form>
        </Modal>
      )}
      {del && (
        <Confirm
          title={`Delete ${del.name}?`}
          body={<p>Their sessions, tokens and memberships go too.</p>}
          action="Delete"
          danger
          typed={del.name}
          onConfirm={async () => {
            await api.del(`/v1/users/${del.id}`);
            toast.success(`Deleted ${del.name}`);
            refresh();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </>
  );
}
