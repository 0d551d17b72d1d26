import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { ActionButton, Confirm, ErrorBox, Loading, Modal } from "../components/ui";
import { relativeTime } from "../lib/format";
import { emptyRule, ruleRequest, validateRule, type RuleDraft } from "../lib/network";
import { navigate } from "../nav";
import { Link, useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Page, SecurityGroup, SecurityGroupRule } from "../types";

function describeRule(r: SecurityGroupRule): string {
  const what = r.protocol === "all" ? "all traffic" : `${r.protocol}${r.ports ? ` ${r.ports}` : r.protocol === "icmp" ? "" : " (all ports)"}`;
  const peer = r.security_group ? `group ${r.security_group}` : (r.cidr ?? "anywhere");
  return `${r.direction === "ingress" ? "from" : "to"} ${peer}: ${what}`;
}

export function SecurityGroupsPage() {
  useTitle("Security groups");
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [params, setParams] = useSearchParams();
  const groups = useQuery({
    queryKey: ["security-groups", project],
    queryFn: () => api.get<Page<SecurityGroup>>(withQuery("/v1/security-groups", { project, limit: 1000 })),
  });
  const [form, setForm] = useState({ name: "", description: "" });
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Security groups" }]}
        title="Security groups"
        actions={
          <ActionButton reason={s.readOnly} onClick={() => setParams({ create: "1" })}>
            Create group
          </ActionButton>
        }
      />
      <p className="muted">Stateful firewall rules for instances. Traffic a rule does not allow is dropped; replies to allowed traffic pass.</p>
      <ResourceTable
        label="Security groups"
        rows={groups.data?.items}
        loading={groups.isPending}
        error={groups.error}
        rowKey={(g) => g.id}
        empty={{ title: "No security groups", body: <p>Create one, add rules, and choose it when launching an instance.</p> }}
        columns={[
          { label: "Name", render: (g) => <Link to={`/security-groups/${encodeURIComponent(g.name)}`}>{g.name}{g.default ? " (default)" : ""}</Link> },
          { label: "Rules", render: (g) => g.rules.length },
          { label: "Instances", render: (g) => g.instance_count },
          { label: "Description", render: (g) => g.description ?? "—", className: "hide-sm" },
          { label: "Created", render: (g) => relativeTime(g.created_at), className: "hide-sm" },
        ]}
      />
      {params.get("create") && !s.readOnly && (
        <Modal title="Create a security group" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const g = await api.post<SecurityGroup>("/v1/security-groups", { name: form.name, description: form.description || null, project });
                toast.success(`Created ${g.name}`);
                void qc.invalidateQueries({ queryKey: ["security-groups"] });
                navigate(`/security-groups/${encodeURIComponent(g.name)}`);
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
              Description
              <input value={form.description} onChange={(e) => setForm({ ...form, description: e.target.value })} />
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

export function SecurityGroupPage({ params }: { params: Record<string, string> }) {
  const key = params.id ?? "";
  useTitle(`Security group ${key}`);
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const base = `/v1/security-groups/${encodeURIComponent(key)}`;
  const group = useQuery({ queryKey: ["security-groups", "one", key], queryFn: () => api.get<SecurityGroup>(withQuery(base, { project })) });
  const all = useQuery({
    queryKey: ["security-groups", project],
    queryFn: () => api.get<Page<SecurityGroup>>(withQuery("/v1/security-groups", { project, limit: 1000 })),
  });
  const [rule, setRule] = useState<RuleDraft>(emptyRule);
  const [tried, setTried] = useState(false);
  const [del, setDel] = useState(false);
  const refresh = () => void qc.invalidateQueries({ queryKey: ["security-groups"] });

  if (group.isPending) return <Loading />;
  if (group.error) return <ErrorBox error={group.error} />;
  const g = group.data;
  const errors = validateRule(rule);
  const shown = tried ? errors : {};

  async function addRule() {
    setTried(true);
    if (Object.keys(errors).length) return;
    try {
      await api.post(`/v1/security-groups/${g.id}/rules`, ruleRequest(rule));
      toast.success("Rule added");
      setRule(emptyRule());
      setTried(false);
      refresh();
    } catch (e) {
      toast.error(e);
    }
  }
  async function removeRule(r: SecurityGroupRule) {
    try {
      await api.del(`/v1/security-groups/${g.id}/rules/${r.id}`);
      toast.success("Rule removed");
      refresh();
    } catch (e) {
      toast.error(e);
    }
  }
  const set = (p: Partial<RuleDraft>) => setRule((r) => ({ ...r, ...p }));
  const hasPorts = rule.protocol === "tcp" || rule.protocol === "udp";

  return (
    <>
      <PageHeader
        crumbs={[{ label: "Security groups", to: "/security-groups" }, { label: g.name }]}
        title={`Security group ${g.name}`}
        actions={
          <ActionButton className="danger" reason={s.readOnly ?? (g.default ? "The default group stays" : g.instance_count ? "Instances use it" : null)} onClick={() => setDel(true)}>
            Delete
          </ActionButton>
        }
      />
      {g.description && <p>{g.description}</p>}
      <ResourceTable
        label="Rules"
        rows={g.rules}
        rowKey={(r) => r.id}
        empty={{ title: "No rules", body: <p>Nothing is allowed in or out. Add a rule below.</p> }}
        columns={[
          { label: "Direction", render: (r) => r.direction },
          { label: "Protocol", render: (r) => r.protocol },
          { label: "Ports", render: (r) => r.ports ?? (r.protocol === "tcp" || r.protocol === "udp" ? "all" : "—") },
          { label: "Peer", render: (r) => (r.security_group ? `group ${r.security_group}` : (r.cidr ?? "—")) },
          { label: "Description", render: (r) => r.description ?? describeRule(r), className: "hide-sm" },
          {
            label: "Actions",
            render: (r) => (
              <ActionButton className="ghost small" reason={s.readOnly} aria-label={`Remove rule ${describeRule(r)}`} onClick={() => void removeRule(r)}>
                Remove
              </ActionButton>
            ),
          },
        ]}
      />
      <form
        className="panel rule-editor"
        aria-label="Add a rule"
        onSubmit={(e) => {
          e.preventDefault();
          void addRule();
        }}
      >
        <h2>Add a rule</h2>
        <fieldset disabled={Boolean(s.readOnly)} title={s.readOnly ?? undefined}>
          <div className="filters">
            <label>
              Direction
              <select value={rule.direction} onChange={(e) => set({ direction: e.target.value as RuleDraft["direction"] })}>
                <option value="ingress">ingress (in)</option>
                <option value="egress">egress (out)</option>
              </select>
            </label>
            <label>
              Protocol
              <select value={rule.protocol} onChange={(e) => set({ protocol: e.target.value as RuleDraft["protocol"], ports: "" })}>
                <option value="tcp">tcp</option>
                <option value="udp">udp</option>
                <option value="icmp">icmp</option>
                <option value="all">all</option>
              </select>
            </label>
            <label>
              Ports <span className="muted small">(80,443 or 8000-8100; empty: all)</span>
              <input value={rule.ports} disabled={!hasPorts} aria-invalid={Boolean(shown.ports)} onChange={(e) => set({ ports: e.target.value })} />
              {shown.ports && <span className="field-error">{shown.ports}</span>}
            </label>
          </div>
          <div className="filters">
            <label>
              {rule.direction === "ingress" ? "From" : "To"}
              <select value={rule.source} onChange={(e) => set({ source: e.target.value as RuleDraft["source"] })}>
                <option value="cidr">addresses (CIDR)</option>
                <option value="group">members of a security group</option>
              </select>
            </label>
            {rule.source === "cidr" ? (
              <label>
                CIDR
                <input value={rule.cidr} aria-invalid={Boolean(shown.cidr)} onChange={(e) => set({ cidr: e.target.value })} />
                {shown.cidr && <span className="field-error">{shown.cidr}</span>}
              </label>
            ) : (
              <label>
                Group
                <select value={rule.group} aria-invalid={Boolean(shown.group)} onChange={(e) => set({ group: e.target.value })}>
                  <option value="">choose…</option>
                  {(all.data?.items ?? []).map((x) => (
                    <option key={x.id}>{x.name}</option>
                  ))}
                </select>
                {shown.group && <span className="field-error">{shown.group}</span>}
              </label>
            )}
            <label>
              Description
              <input value={rule.description} onChange={(e) => set({ description: e.target.value })} />
            </label>
          </div>
          <div className="row end">
            <button type="submit">Add rule</button>
          </div>
        </fieldset>
      </form>
      {del && (
        <Confirm
          title={`Delete ${g.name}?`}
          body={<p>Its rules go with it.</p>}
          action="Delete"
          danger
          typed={g.name}
          onConfirm={async () => {
            await api.del(`/v1/security-groups/${g.id}`);
            toast.success(`Deleted ${g.name}`);
            refresh();
            navigate("/security-groups");
          }}
          onClose={() => setDel(false)}
        />
      )}
    </>
  );
}
