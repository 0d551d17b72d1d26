import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { ResourceTable } from "../components/ResourceTable";
import { toast } from "../components/toast";
import { ActionButton, Confirm, Modal } from "../components/ui";
import { relativeTime } from "../lib/format";
import { cidrError } from "../lib/network";
import { Link, useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Network, Page, PortForward } from "../types";

export function NetworksPage() {
  useTitle("Networks");
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [params, setParams] = useSearchParams();
  const nets = useQuery({
    queryKey: ["networks", project],
    queryFn: () => api.get<Page<Network>>(withQuery("/v1/networks", { project, limit: 1000 })),
  });
  const ports = useQuery({
    queryKey: ["port-forwards", project],
    queryFn: () => api.get<Page<PortForward>>(withQuery("/v1/port-forwards", { project, limit: 1000 })),
  });
  const [form, setForm] = useState({ name: "", cidr: "", nat: true, dns: true });
  const [del, setDel] = useState<Network | null>(null);
  const refresh = () => void qc.invalidateQueries({ queryKey: ["networks"] });
  const cErr = form.cidr.trim() ? cidrError(form.cidr) : null;
  async function peer_(n: Network, other: string, add: boolean) {
    try {
      if (add) await api.post(`/v1/networks/${n.id}/peers`, { network: other });
      else await api.del(`/v1/networks/${n.id}/peers/${encodeURIComponent(other)}`);
      toast.success(add ? `${n.name} and ${other} can reach each other` : `${n.name} and ${other} are isolated again`);
      refresh();
    } catch (e) {
      toast.error(e);
    }
  }

  return (
    <>
      <PageHeader
        crumbs={[{ label: "Networks" }]}
        title="Networks"
        actions={
          <ActionButton reason={s.readOnly} onClick={() => setParams({ create: "1" })}>
            Create network
          </ActionButton>
        }
      />
      <ResourceTable
        label="Networks"
        rows={nets.data?.items}
        loading={nets.isPending}
        error={nets.error}
        rowKey={(n) => n.id}
        empty={{ title: "No networks", body: <p>Each project gets a default network when its first instance starts; create more to isolate groups of instances.</p> }}
        columns={[
          { label: "Name", render: (n) => <NetworkName network={n} /> },
          { label: "CIDR", render: (n) => <code>{n.cidr}</code> },
          { label: "Gateway", render: (n) => n.gateway, className: "hide-sm" },
          { label: "NAT", render: (n) => (n.nat ? "yes" : "no"), className: "hide-sm" },
          { label: "DNS", render: (n) => <NetworkDns network={n} />, className: "hide-sm" },
          { label: "Addresses", render: (n) => `${n.addresses_used} / ${n.addresses_total}` },
          { label: "Instances", render: (n) => n.instance_count },
          {
            label: "Peers",
            render: (n) => (
              <span className="row wrap">
                {n.peers.map((peer) => (
                  <span key={peer} className="chip">
                    {peer}{" "}
                    <button
                      type="button"
                      className="ghost small"
                      aria-label={`Unpeer ${n.name} from ${peer}`}
                      disabled={Boolean(s.readOnly)}
                      title={s.readOnly ?? undefined}
                      onClick={() => void peer_(n, peer, false)}
                    >
                      ×
                    </button>
                  </span>
                ))}
                {!s.readOnly && (nets.data?.items ?? []).some((o) => o.id !== n.id && !n.peers.includes(o.name)) && (
                  <select aria-label={`Peer ${n.name} with`} value="" onChange={(e) => e.target.value && void peer_(n, e.target.value, true)}>
                    <option value="">+ peer…</option>
                    {(nets.data?.items ?? [])
                      .filter((o) => o.id !== n.id && !n.peers.includes(o.name))
                      .map((o) => (
                        <option key={o.id}>{o.name}</option>
                      ))}
                  </select>
                )}
              </span>
            ),
            className: "hide-sm",
          },
          { label: "Created", render: (n) => relativeTime(n.created_at), className: "hide-sm" },
          {
            label: "Actions",
            render: (n) => (
              <ActionButton
                className="danger small"
                reason={s.readOnly ?? (n.default ? "The default network stays" : n.instance_count > 0 ? "Instances are attached" : null)}
                onClick={() => setDel(n)}
              >
                Delete
              </ActionButton>
            ),
          },
        ]}
      />
      <h2 className="section">Port forwards</h2>
      <ResourceTable
        label="Port forwards"
        rows={ports.data?.items}
        loading={ports.isPending}
        error={ports.error}
        rowKey={(p) => p.id}
        empty={{ title: "No port forwards", body: <p>Publish an instance's port on the host from the instance's Network tab.</p> }}
        columns={[
          { label: "Host port", render: (p) => `${p.host_port}/${p.protocol}` },
          { label: "Instance", render: (p) => <Link to={`/instances/${encodeURIComponent(p.instance)}?tab=network`}>{p.instance}</Link> },
          { label: "Instance port", render: (p) => p.instance_port },
          { label: "Target", render: (p) => p.target_ip ?? "—", className: "hide-sm" },
        ]}
      />
      {params.get("create") && !s.readOnly && (
        <Modal title="Create a network" onClose={() => setParams({ create: null })}>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              if (cErr) return;
              try {
                await api.post("/v1/networks", { name: form.name, cidr: form.cidr.trim() || null, nat: form.nat, dns: form.dns, project });
                toast.success(`Created network ${form.name}`);
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
              CIDR <span className="muted small">(empty: a free /24 is chosen)</span>
              <input value={form.cidr} placeholder="10.20.0.0/24" aria-invalid={Boolean(cErr)} onChange={(e) => setForm({ ...form, cidr: e.target.value })} />
              {cErr && <span className="field-error">{cErr}</span>}
            </label>
            <label className="row">
              <input type="checkbox" checked={form.nat} onChange={(e) => setForm({ ...form, nat: e.target.checked })} /> Outbound access (NAT)
            </label>
            <label className="row">
              <input type="checkbox" checked={form.dns} onChange={(e) => setForm({ ...form, dns: e.target.checked })} /> DNS
            </label>
            <div className="row end">
              <button type="submit" disabled={Boolean(cErr)}>
                Create
              </button>
            </div>
          </form>
        </Modal>
      )}
      {del && (
        <Confirm
          title={`Delete network ${del.name}?`}
          body={<p>Instances must be detached from it first.</p>}
          action="Delete"
          danger
          onConfirm={async () => {
            await api.del(`/v1/networks/${del.id}`);
            toast.success(`Deleted ${del.name}`);
            refresh();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </>
  );
}

/** A network's name, marked when it is the project's default network (unless its name
 * says so already: the default network is usually called "default"). */
export function NetworkName({ network: n }: { network: Network }) {
  return (
    <strong className="nowrap">
      {n.name}
      {n.default && n.name !== "default" && (
        <>
          {" "}
          <span className="badge" title="The project's default network">
            default
          </span>
        </>
      )}
    </strong>
  );
}

/** Whether instances on the network resolve each other by name, and under which zone. */
export function NetworkDns({ network: n }: { network: Network }) {
  if (!n.dns) {
    return (
      <span className="muted" title="Instances use the host's name servers">
        off
      </span>
    );
  }
  return (
    <span title={`Instances resolve each other as <name>.${n.name}.internal, served on ${n.gateway}`}>
      <code className="nowrap">{`*.${n.name}.internal`}</code>
    </span>
  );
}
