import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { ActionButton, Confirm, ErrorBox, Loading, Modal } from "../components/ui";
import { formatBytes, parseBytes, relativeTime } from "../lib/format";
import { itemsOf } from "../lib/list";
import { navigate } from "../nav";
import { Link, useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Member, Page, Project, Quota, Role, Usage, UserDetails } from "../types";

export function ProjectsPage() {
  useTitle("Projects");
  const s = useSession();
  const qc = useQueryClient();
  const [params, setParams] = useSearchParams();
  const list = useQuery({ queryKey: ["projects", "all"], queryFn: () => api.get<Page<Project>>("/v1/projects?limit=1000&sort=name") });
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Projects" }]}
        title="Projects"
        actions={
          <ActionButton reason={s.adminOnly} onClick={() => setParams({ create: "1" })}>
            Create project
          </ActionButton>
        }
      />
      <ResourceTable
        label="Projects"
        rows={list.data?.items}
        loading={list.isPending}
        error={list.error}
        rowKey={(p) => p.id}
        empty={{ title: "No projects", body: <p>An administrator can create one and add you as a member.</p> }}
        columns={[
          { label: "Name", render: (p) => <Link to={`/projects/${p.name}`}>{p.name}</Link> },
          { label: "Description", render: (p) => p.description ?? "—" },
          { label: "Current", render: (p) => (p.id === s.project?.id ? "✓ current" : <button type="button" className="secondary small" onClick={() => s.setProject(p.name)}>Switch to</button>) },
          { label: "Created", render: (p) => relativeTime(p.created_at), className: "hide-sm" },
        ]}
      />
      {params.get("create") && !s.adminOnly && (
        <Modal title="Create a project" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                await api.post("/v1/projects", { name, description: description || null });
                toast.success(`Created project ${name}`);
                void qc.invalidateQueries({ queryKey: ["projects"] });
                setParams({ create: null });
              } catch (err) {
                toast.error(err);
              }
            }}
          >
            <label>
              Name
              <input required value={name} onChange={(e) => setName(e.target.value)} />
            </label>
            <label>
              Description
              <input value={description} onChange={(e) => setDescription(e.target.value)} />
            </label>
            <div className="row end">
              <button type="submit">Create</button>
            </div>
          </form>
        </Modal>
      )}
    </>
  );
}

const QUOTA_KEYS: [string, string, boolean][] = [
  ["instances", "Instances", false],
  ["vcpus", "vCPUs", false],
  ["memory_bytes", "Memory", true],
];

export function ProjectPage({ params }: { params: Record<string, string> }) {
  const key = params.id ?? "";
  useTitle(`Project ${key}`);
  const s = useSession();
  const qc = useQueryClient();
  const base = `/v1/projects/${encodeURIComponent(key)}`;
  const project = useQuery({ queryKey: ["projects", key], queryFn: () => api.get<Project>(base) });
  const members = useQuery({ queryKey: ["projects", key, "members"], queryFn: () => api.all<Member>(`${base}/members`) });
  const quota = useQuery({ queryKey: ["projects", key, "quota"], queryFn: () => api.get<Quota>(`${base}/quota`) });
  const usage = useQuery({ queryKey: ["projects", key, "usage"], queryFn: () => api.get<Usage>(`${base}/usage`) });
  const users = useQuery({ queryKey: ["users"], queryFn: () => api.get<Page<UserDetails>>("/v1/users?limit=1000"), enabled: s.isAdmin });
  const [addUser, setAddUser] = useState("");
  const [addRole, setAddRole] = useState<Role>("operator");
  const [remove, setRemove] = useState<Member | null>(null);
  const [quotaEdit, setQuotaEdit] = useState<Record<string, string> | null>(null);
  const [del, setDel] = useState(false);
  const refresh = () => void qc.invalidateQueries({ queryKey: ["projects", key] });

  if (project.isPending) return <Loading />;
  if (project.error) return <ErrorBox error={project.error} />;
  const p = project.data;

  async function setMember(user: string, role: Role) {
    try {
      await api.put(`${base}/members/${encodeURIComponent(user)}`, { role });
      toast.success(`${user} is ${role} in ${p.name}`);
      refresh();
    } catch (e) {
      toast.error(e);
    }
  }

  async function saveQuota() {
    const body: Quota = {};
    for (const [k, , bytes] of QUOTA_KEYS) {
      const v = (quotaEdit?.[k] ?? "").trim();
      if (!v) body[k] = null;
      else {
        const n = bytes ? parseBytes(v) : Number(v);
        if (n === null || !Number.isFinite(n) || n < 0) {
          toast.error(`${k}: not a number`);
          return;
        }
        body[k] = n;
      }
    }
    try {
      await api.put(`${base}/quota`, body);
      toast.success("Quota saved");
      setQuotaEdit(null);
      refresh();
    } catch (e) {
      toast.error(e);
    }
  }

  const q = quota.data ?? {};
  const u = usage.data?.resources ?? {};
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Projects", to: "/projects" }, { label: p.name }]}
        title={`Project ${p.name}`}
        actions={
          <>
            <button type="button" className="secondary" disabled={s.project?.id === p.id} onClick={() => s.setProject(p.name)}>
              {s.project?.id === p.id ? "Current project" : "Switch to it"}
            </button>
            <ActionButton className="danger" reason={s.adminOnly ?? (p.name === "default" ? "The default project stays" : null)} onClick={() => setDel(true)}>
              Delete
            </ActionButton>
          </>
        }
      />
      {p.description && <p>{p.description}</p>}
      <div className="grid">
        <section className="panel" aria-labelledby="h-quota">
          <div className="row between">
            <h2 id="h-quota">Quota and usage</h2>
            <ActionButton
              className="secondary small"
              reason={s.adminOnly}
              onClick={() =>
                setQuotaEdit(
                  Object.fromEntries(QUOTA_KEYS.map(([k, , bytes]) => [k, q[k] == null ? "" : bytes ? formatBytes(q[k]).replace(" ", "") : String(q[k])])),
                )
              }
            >
              Edit quota
            </ActionButton>
          </div>
          <table className="table compact">
            <thead>
              <tr>
                <th scope="col">Resource</th>
                <th scope="col">Used</th>
                <th scope="col">Limit</th>
              </tr>
            </thead>
            <tbody>
              {QUOTA_KEYS.map(([k, label, bytes]) => (
                <tr key={k}>
                  <td>{label}</td>
                  <td>{bytes ? formatBytes(u[k]?.used ?? 0) : (u[k]?.used ?? 0)}</td>
                  <td>{q[k] == null ? "no limit" : bytes ? formatBytes(q[k]) : q[k]}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section className="panel" aria-labelledby="h-members">
          <h2 id="h-members">Members</h2>
          {members.error ? (
            <ErrorBox error={members.error} />
          ) : (
            <ul className="plain">
              {(members.data ?? []).map((m) => (
                <li key={m.user_id} className="row between">
                  <span>{m.user_name}</span>
                  <span className="row">
                    <select aria-label={`Role of ${m.user_name}`} value={m.role} disabled={Boolean(s.adminOnly)} title={s.adminOnly ?? undefined} onChange={(e) => void setMember(m.user_name, e.target.value as Role)}>
                      <option value="viewer">viewer</option>
                      <option value="operator">operator</option>
                    </select>
                    <ActionButton className="ghost small" reason={s.adminOnly} aria-label={`Remove ${m.user_name}`} onClick={() => setRemove(m)}>
                      Remove
                    </ActionButton>
                  </span>
                </li>
              ))}
              {(members.data ?? []).length === 0 && <li className="muted">No members. Administrators see every project.</li>}
            </ul>
          )}
          {s.isAdmin && (
            <form
              className="row wrap"
              onSubmit={(e) => {
                e.preventDefault();
                if (addUser) void setMember(addUser, addRole);
              }}
            >
              <select aria-label="User to add" value={addUser} onChange={(e) => setAddUser(e.target.value)}>
                <option value="">Add a user…</option>
                {itemsOf(users.data)
                  .filter((x) => !(members.data ?? []).some((m) => m.user_id === x.id))
                  .map((x) => (
                    <option key={x.id}>{x.name}</option>
                  ))}
              </select>
              <select aria-label="Role" value={addRole} onChange={(e) => setAddRole(e.target.value as Role)}>
                <option value="viewer">viewer</option>
                <option value="operator">operator</option>
              </select>
              <button type="submit" className="small" disabled={!addUser}>
                Add
              </button>
            </form>
          )}
        </section>
      </div>
      {quotaEdit && (
        <Modal title={`Quota of ${p.name}`} onClose={() => setQuotaEdit(null)}>
          <form className="stack" onSubmit={(e) => { e.preventDefault(); void saveQuota(); }}>
            {QUOTA_KEYS.map(([k, label, bytes]) => (
              <label key={k}>
                {label} <span className="muted small">(empty: no limit{bytes ? "; e.g. 16G" : ""})</span>
                <input value={quotaEdit[k] ?? ""} onChange={(e) => setQuotaEdit({ ...quotaEdit, [k]: e.target.value })} />
              </label>
            ))}
            <div className="row end">
              <button type="submit">Save</button>
            </div>
          </form>
        </Modal>
      )}
      {remove && (
        <Confirm
          title={`Remove ${remove.user_name}?`}
          body={<p>They lose access to {p.name} and everything in it.</p>}
          action="Remove"
          danger
          onConfirm={async () => {
            await api.del(`${base}/members/${encodeURIComponent(remove.user_id)}`);
            toast.success(`Removed ${remove.user_name}`);
            refresh();
          }}
          onClose={() => setRemove(null)}
        />
      )}
      {del && (
        <Confirm
          title={`Delete project ${p.name}?`}
          body={<p>Only empty projects can be deleted.</p>}
          action="Delete"
          danger
          typed={p.name}
          onConfirm={async () => {
            await api.del(base);
            toast.success(`Deleted ${p.name}`);
            void qc.invalidateQueries({ queryKey: ["projects"] });
            navigate("/projects");
          }}
          onClose={() => setDel(false)}
        />
      )}
    </>
  );
}
