// An instance's NICs, security groups and port forwards.
import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { useSession } from "../session";
import type { Instance, Network, Page, PortForward, SecurityGroup } from "../types";
import { ResourceTable } from "./ResourceTable";
import { toast } from "./toast";
import { ActionButton } from "./ui";

/** "8080:80/tcp" → the body of POST /v1/instances/{id}/ports, or an error. */
export function parsePortMapping(s: string): { host_port: number; instance_port: number; protocol: "tcp" | "udp" } | string {
  const m = /^\s*(\d+):(\d+)(?:\/(tcp|udp))?\s*$/i.exec(s);
  if (!m) return "Use HOST_PORT:INSTANCE_PORT[/tcp|udp], e.g. 8080:80/tcp";
  const host = Number(m[1]);
  const inner = Number(m[2]);
  if (!(host >= 1 && host <= 65535) || !(inner >= 1 && inner <= 65535)) return "Ports are 1-65535";
  return { host_port: host, instance_port: inner, protocol: (m[3]?.toLowerCase() as "tcp" | "udp") ?? "tcp" };
}

export function InstanceNetwork({ i, project }: { i: Instance; project: string }) {
  const s = useSession();
  const qc = useQueryClient();
  const base = `/v1/instances/${encodeURIComponent(i.id)}`;
  const networks = useQuery({
    queryKey: ["networks", project],
    queryFn: () => api.get<Page<Network>>(withQuery("/v1/networks", { project, limit: 1000 })),
  });
  const groups = useQuery({
    queryKey: ["security-groups", project],
    queryFn: () => api.get<Page<SecurityGroup>>(withQuery("/v1/security-groups", { project, limit: 1000 })),
  });
  const ports = useQuery({
    queryKey: ["port-forwards", project, i.id],
    queryFn: () => api.get<Page<PortForward>>(withQuery("/v1/port-forwards", { project, instance: i.id })),
  });
  const [attach, setAttach] = useState("");
  const [sgs, setSgs] = useState<string[] | null>(null);
  const [mapping, setMapping] = useState("");
  const chosen = sgs ?? i.security_groups ?? [];
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["instance"] });
    void qc.invalidateQueries({ queryKey: ["port-forwards"] });
    void qc.invalidateQueries({ queryKey: ["networks"] });
  };
  const run = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
      toast.success(what);
      refresh();
      return true;
    } catch (e) {
      toast.error(e);
      return false;
    }
  };
  const nics = i.nics ?? [];
  const free = (networks.data?.items ?? []).filter((n) => !nics.some((x) => x.network_id === n.id));
  const pm = mapping ? parsePortMapping(mapping) : null;

  return (
    <div className="stack">
      <section className="panel" aria-labelledby="h-nics">
        <h2 id="h-nics">Network interfaces</h2>
        <ResourceTable
          label="Network interfaces"
          rows={nics}
          rowKey={(n) => n.name}
          empty={{ title: "No network interfaces", body: <p>Attach the instance to a network below.</p> }}
          columns={[
            { label: "NIC", render: (n) => n.name },
            { label: "Network", render: (n) => n.network },
            { label: "Address", render: (n) => <code>{n.ip}</code> },
            { label: "MAC", render: (n) => <code>{n.mac}</code>, className: "hide-sm" },
            {
              label: "Actions",
              render: (n) => (
                <ActionButton
                  className="ghost small"
                  reason={s.readOnly ?? (nics.length === 1 ? "The last network stays" : null)}
                  onClick={() => void run(`Detached from ${n.network}`, () => api.del(`${base}/networks/${encodeURIComponent(n.network)}`))}
                >
                  Detach
                </ActionButton>
              ),
            },
          ]}
        />
        <form
          className="row wrap"
          onSubmit={(e) => {
            e.preventDefault();
            if (attach) void run(`Attached to ${attach}`, () => api.post(`${base}/networks`, { network: attach })).then(() => setAttach(""));
          }}
        >
          <select aria-label="Network to attach" value={attach} disabled={Boolean(s.readOnly)} onChange={(e) => setAttach(e.target.value)}>
            <option value="">Attach to a network…</option>
            {free.map((n) => (
              <option key={n.id} value={n.name}>
                {n.name} ({n.cidr})
              </option>
            ))}
          </select>
          <ActionButton type="submit" className="small" reason={s.readOnly ?? (attach ? null : "Choose a network")}>
            Attach
          </ActionButton>
        </form>
      </section>
      <section className="panel" aria-labelledby="h-sgs">
        <h2 id="h-sgs">Security groups</h2>
        <div className="row wrap">
          {(groups.data?.items ?? []).map((g) => (
            <label key={g.id} className="row">
              <input
                type="checkbox"
                disabled={Boolean(s.readOnly)}
                checked={chosen.includes(g.name)}
                onChange={(e) => setSgs(e.target.checked ? [...chosen, g.name] : chosen.filter((x) => x !== g.name))}
              />
              {g.name}
            </label>
          ))}
        </div>
        <ActionButton
          className="small"
          reason={s.readOnly ?? (sgs === null ? "Nothing changed" : null)}
          onClick={() =>
            void run("Security groups saved", () => api.put(`${base}/security-groups`, { security_groups: chosen })).then((ok) => ok && setSgs(null))
          }
        >
          Save groups
        </ActionButton>
      </section>
      <section className="panel" aria-labelledby="h-ports">
        <h2 id="h-ports">Port forwards</h2>
        <ResourceTable
          label="Port forwards"
          rows={ports.data?.items}
          loading={ports.isPending}
          error={ports.error}
          rowKey={(p) => p.id}
          empty={{ title: "No port forwards", body: <p>Publish a port of the instance on every address of the host, e.g. 8080:80/tcp.</p> }}
          columns={[
            { label: "Host", render: (p) => `${p.host_port}/${p.protocol}` },
            { label: "Instance", render: (p) => `${p.target_ip ?? i.ip ?? ""}:${p.instance_port}` },
            {
              label: "Actions",
              render: (p) => (
                <ActionButton className="ghost small" reason={s.readOnly} onClick={() => void run(`Removed ${p.host_port}/${p.protocol}`, () => api.del(`${base}/ports/${p.id}`))}>
                  Remove
                </ActionButton>
              ),
            },
          ]}
        />
        <form
          className="row wrap"
          onSubmit={(e) => {
            e.preventDefault();
            if (pm && typeof pm !== "string") void run(`Forwarding ${pm.host_port}/${pm.protocol}`, () => api.post(`${base}/ports`, pm)).then((ok) => ok && setMapping(""));
          }}
        >
          <label>
            <span className="sr-only">Port mapping</span>
            <input placeholder="8080:80/tcp" value={mapping} disabled={Boolean(s.readOnly)} aria-invalid={typeof pm === "string"} onChange={(e) => setMapping(e.target.value)} />
          </label>
          <ActionButton type="submit" className="small" reason={s.readOnly ?? (pm && typeof pm !== "string" ? null : "Enter HOST:INSTANCE[/tcp|udp]")}>
            Add port forward
          </ActionButton>
          {typeof pm === "string" && <span className="field-error">{pm}</span>}
        </form>
      </section>
    </div>
  );
}
