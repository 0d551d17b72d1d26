// Cmd/Ctrl+K: jump to any page, resource or action.
import { useMemo, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { navigate } from "../nav";
import { useDebounced } from "../router";
import { useSession } from "../session";
import type { Bucket, Image, Instance, Network, Page, Project, SecurityGroup, Token, UserDetails } from "../types";
import { NAV } from "./Layout";
import { Modal } from "./ui";

interface Item {
  label: string;
  hint: string;
  to: string;
}

export function filterItems(items: Item[], q: string): Item[] {
  const words = q.toLowerCase().split(/\s+/).filter(Boolean);
  return items.filter((i) => words.every((w) => `${i.label} ${i.hint}`.toLowerCase().includes(w)));
}

export function Palette({ onClose }: { onClose: () => void }) {
  const s = useSession();
  const [q, setQ] = useState("");
  const [sel, setSel] = useState(0);
  const dq = useDebounced(q.trim(), 150);
  const instances = useQuery({
    queryKey: ["palette", "instances", s.project?.name, dq],
    queryFn: () =>
      api.get<Page<Instance>>(withQuery("/v1/instances", { project: s.project?.name, name: dq ? `*${dq}*` : undefined, limit: 8 })),
  });
  const images = useQuery({
    queryKey: ["images", s.project?.name],
    queryFn: () => api.all<Image>("/v1/images", { project: s.project?.name }),
  });
  const users = useQuery({
    queryKey: ["users"],
    queryFn: () => api.get<Page<UserDetails>>("/v1/users?limit=1000"),
    enabled: s.isAdmin,
  });
  const tokens = useQuery({ queryKey: ["tokens"], queryFn: () => api.get<Page<Token>>("/v1/tokens?limit=1000") });
  const project = s.project?.name;
  const networks = useQuery({
    queryKey: ["networks", project],
    queryFn: () => api.get<Page<Network>>(withQuery("/v1/networks", { project, limit: 1000 })),
  });
  const groups = useQuery({
    queryKey: ["security-groups", project],
    queryFn: () => api.get<Page<SecurityGroup>>(withQuery("/v1/security-groups", { project, limit: 1000 })),
  });
  const buckets = useQuery({ queryKey: ["buckets", project], queryFn: () => api.all<Bucket>("/v1/buckets", { project }) });
  const items = useMemo(() => {
    const out: Item[] = [];
    for (const n of NAV) if (!n.admin || s.isAdmin) out.push({ label: n.label, hint: "page", to: n.to });
    out.push({ label: "Launch instance", hint: "action", to: "/instances/new" });
    out.push({ label: "Build image", hint: "action", to: "/images?build=1" });
    out.push({ label: "Import image", hint: "action", to: "/images?import=1" });
    out.push({ label: "Create API token", hint: "action", to: "/tokens?create=1" });
    out.push({ label: "Create network", hint: "action", to: "/networks?create=1" });
    out.push({ label: "Create bucket", hint: "action", to: "/buckets?create=1" });
    out.push({ label: "Create S3 key", hint: "action", to: "/s3-keys?create=1" });
    out.push({ label: "Create security group", hint: "action", to: "/security-groups?create=1" });
    if (s.isAdmin) {
      out.push({ label: "Create user", hint: "action", to: "/users?create=1" });
      out.push({ label: "Create project", hint: "action", to: "/projects?create=1" });
    }
    for (const p of s.projects as Project[]) out.push({ label: p.name, hint: "project", to: `/projects/${p.name}` });
    const imgs = images.data ?? [];
    for (const i of imgs) out.push({ label: i.name, hint: "image", to: `/images?name=${encodeURIComponent(i.name)}` });
    for (const n of networks.data?.items ?? []) out.push({ label: n.name, hint: `network · ${n.cidr}`, to: "/networks" });
    for (const g of groups.data?.items ?? []) out.push({ label: g.name, hint: "security group", to: `/security-groups/${encodeURIComponent(g.name)}` });
    for (const b of buckets.data ?? []) out.push({ label: b.name, hint: "bucket", to: "/buckets" });
    for (const u of users.data?.items ?? []) out.push({ label: u.name, hint: "user", to: "/users" });
    for (const t of tokens.data?.items ?? []) out.push({ label: t.name, hint: "API token", to: "/tokens" });
    const matched = filterItems(out, q);
    const inst = (instances.data?.items ?? []).map((i) => ({ label: i.name, hint: `instance · ${i.status}`, to: `/instances/${i.name}` }));
    return [...inst, ...matched].slice(0, 30);
  }, [q, s.isAdmin, s.projects, images.data, instances.data, users.data, tokens.data, networks.data, groups.data, buckets.data]);

  function go(i: Item | undefined) {
    if (!i) return;
    onClose();
    navigate(i.to);
  }

  return (
    <Modal title="Go to" onClose={onClose}>
      <input
        autoFocus
        role="combobox"
        aria-label="Search the console"
        aria-expanded="true"
        aria-controls="palette-list"
        aria-activedescendant={`palette-${sel}`}
        placeholder="Page, instance, image, project or action…"
        value={q}
        onChange={(e) => {
          setQ(e.target.value);
          setSel(0);
        }}
        onKeyDown={(e) => {
          if (e.key === "ArrowDown") {
            e.preventDefault();
            setSel((x) => Math.min(x + 1, items.length - 1));
          } else if (e.key === "ArrowUp") {
            e.preventDefault();
            setSel((x) => Math.max(x - 1, 0));
          } else if (e.key === "Enter") {
            e.preventDefault();
            go(items[sel]);
          }
        }}
      />
      <ul id="palette-list" role="listbox" className="palette-list">
        {items.map((i, n) => (
          <li
            key={`${i.hint}:${i.to}:${i.label}`}
            id={`palette-${n}`}
            role="option"
            aria-selected={n === sel}
            className={n === sel ? "selected" : undefined}
            onMouseEnter={() => setSel(n)}
            onClick={() => go(i)}
          >
            <span>{i.label}</span>
            <span className="muted small">{i.hint}</span>
          </li>
        ))}
        {items.length === 0 && <li className="muted">Nothing matches “{q}”.</li>}
      </ul>
    </Modal>
  );
}
