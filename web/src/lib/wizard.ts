// The launch wizard's state and validation, one step at a time (pure: unit tested).
import { formatBytes, parseBytes } from "./format";
import type { Image, Usage } from "../types";

export const STEPS = ["image", "size", "network", "config", "review"] as const;
export type Step = (typeof STEPS)[number];
export const STEP_LABELS: Record<Step, string> = {
  image: "Image",
  size: "Size",
  network: "Network & volumes",
  config: "Command & env",
  review: "Review",
};

export interface Preset {
  id: string;
  label: string;
  cpus: number;
  memory_bytes: number;
}

const MiB = 1024 * 1024;
export const PRESETS: Preset[] = [
  { id: "nano", label: "nano", cpus: 0.25, memory_bytes: 128 * MiB },
  { id: "small", label: "small", cpus: 0.5, memory_bytes: 256 * MiB },
  { id: "medium", label: "medium", cpus: 1, memory_bytes: 512 * MiB },
  { id: "large", label: "large", cpus: 2, memory_bytes: 2048 * MiB },
  { id: "xlarge", label: "xlarge", cpus: 4, memory_bytes: 8192 * MiB },
];

export interface KV {
  key: string;
  value: string;
}

export interface WizardState {
  name: string;
  image: string;
  preset: string; // a preset id or "custom"
  cpus: string;
  memory: string; // "512M", "1G", or MiB as a bare number
  command: string;
  env: KV[];
  labels: KV[];
  restart: "always" | "on-failure" | "never";
  start: boolean;
  /** Network names in NIC order (eth0 first); null: the project's default network. */
  networks: string[] | null;
  /** Security group names; null: the project's default group. */
  security_groups: string[] | null;
  /** Block volumes to attach, each at an absolute path. */
  volumes: { volume: string; path: string }[];
  /** A container, or a QEMU microVM booting the same image. */
  type: "container" | "vm";
  /** SSH key names (yours), comma-separated; installed for root at first boot. */
  ssh_keys: string;
}

export const initialState = (): WizardState => ({
  name: "",
  image: "",
  preset: "small",
  cpus: "0.5",
  memory: "256M",
  command: "",
  env: [],
  labels: [],
  restart: "never",
  start: true,
  networks: null,
  security_groups: null,
  volumes: [],
  type: "container",
  ssh_keys: "",
});

export type Errors = Partial<Record<string, string>>;

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const ENV_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_RE = /^[^=]{1,63}$/;

/** The cpus and memory the state asks for (a preset's or the custom values). */
export function size(s: WizardState): { cpus: number | null; memory_bytes: number | null } {
  const p = PRESETS.find((x) => x.id === s.preset);
  if (p) return { cpus: p.cpus, memory_bytes: p.memory_bytes };
  const cpus = Number(s.cpus);
  return { cpus: s.cpus.trim() && Number.isFinite(cpus) ? cpus : null, memory_bytes: parseBytes(s.memory) };
}

/** Splits a command line like a shell would for words and quotes (no expansion). */
export function splitCommand(line: string): string[] | null {
  const out: string[] = [];
  let cur = "";
  let quote: '"' | "'" | null = null;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      started = true;
    } else if (c === "\\" && i + 1 < line.length) {
      cur += line[++i];
      started = true;
    } else if (/\s/.test(c)) {
      if (started) out.push(cur);
      cur = "";
      started = false;
    } else {
      cur += c;
      started = true;
    }
  }
  if (quote) return null;
  if (started) out.push(cur);
  return out;
}

function kvErrors(rows: KV[], prefix: string, re: RegExp, what: string, errors: Errors): void {
  const seen = new Set<string>();
  rows.forEach((r, n) => {
    if (!r.key && !r.value) return;
    if (!re.test(r.key)) errors[`${prefix}.${n}`] = `${what} '${r.key}' is not a valid name`;
    else if (seen.has(r.key)) errors[`${prefix}.${n}`] = `${what} '${r.key}' is set twice`;
    seen.add(r.key);
  });
}

export interface Context {
  images: Image[];
  /** Names of the project's networks and security groups, when known. */
  networks?: string[];
  securityGroups?: string[];
  usage?: Usage;
  takenNames?: Set<string>;
}

/** The problems that keep `step` from being done, by field. */
export function validateStep(step: Step, s: WizardState, ctx: Context): Errors {
  const e: Errors = {};
  switch (step) {
    case "image": {
      const img = ctx.images.find((i) => i.name === s.image || i.id === s.image);
      if (!s.image) e.image = "Choose an image";
      else if (!img) e.image = `No image '${s.image}'`;
      else if (img.status !== "ready") e.image = `Image '${img.name}' is ${img.status}`;
      break;
    }
    case "size": {
      const { cpus, memory_bytes } = size(s);
      if (cpus === null || cpus <= 0) e.cpus = "CPUs must be a number above 0";
      else if (cpus > 256) e.cpus = "At most 256 CPUs";
      else if (Math.round(cpus * 1000) !== cpus * 1000) e.cpus = "At most 3 decimals (0.001 CPU)";
      if (memory_bytes === null) e.memory = "Memory like 512M or 2G";
      else if (memory_bytes < 4 * MiB) e.memory = "At least 4 MiB";
      else if (memory_bytes > 1024 * 1024 * MiB) e.memory = "At most 1 TiB";
      if (!e.cpus && !e.memory) {
        for (const line of quotaUse(s, ctx.usage)) {
          if (line.over) e.quota = `Over the project's ${line.label} quota (${line.after} of ${line.limit})`;
        }
      }
      break;
    }
    case "network":
      if (s.networks !== null && s.networks.length === 0) e.networks = "Choose at least one network";
      else if (s.networks && ctx.networks && s.networks.some((n) => !ctx.networks!.includes(n))) e.networks = "A chosen network no longer exists";
      if (s.security_groups && ctx.securityGroups && s.security_groups.some((g) => !ctx.securityGroups!.includes(g))) {
        e.security_groups = "A chosen security group no longer exists";
      }
      for (const v of s.volumes) {
        const p = v.path;
        if (!p.startsWith("/") || p === "/" || p.split("/").some((c) => c === ".." || c === ".") || /[,:]/.test(p)) {
          e.volumes = `Volume ${v.volume}: an absolute path other than / (no '..', ',' or ':')`;
        } else if (s.volumes.filter((o) => o.path === p).length > 1) e.volumes = `Two volumes at ${p}`;
      }
      break;
    case "config": {
      if (!s.name) e.name = "Give the instance a name";
      else if (!NAME_RE.test(s.name)) e.name = "1–63 of a-z 0-9 - _ . starting with a letter or digit";
      else if (ctx.takenNames?.has(s.name)) e.name = `An instance named '${s.name}' exists`;
      if (s.command.trim() && splitCommand(s.command) === null) e.command = "Unbalanced quote";
      else if (s.command.trim() && !splitCommand(s.command)?.[0]) e.command = "The command must name a program";
      kvErrors(s.env, "env", ENV_RE, "Variable", e);
      kvErrors(s.labels, "labels", LABEL_RE, "Label", e);
      break;
    }
    case "review":
      for (const st of STEPS.slice(0, -1)) Object.assign(e, validateStep(st, s, ctx));
      break;
  }
  return e;
}

export interface QuotaLine {
  label: string;
  used: string;
  after: string;
  limit: string;
  over: boolean;
}

/** What the project's usage becomes with this instance, against its quota. */
export function quotaUse(s: WizardState, usage: Usage | undefined): QuotaLine[] {
  const r = usage?.resources ?? {};
  const { cpus, memory_bytes } = size(s);
  const lines: [string, string, number, (n: number) => string][] = [
    ["instances", "instances", 1, String],
    ["vCPUs", "vcpus", cpus ?? 0, (n) => String(Math.round(n * 1000) / 1000)],
    ["memory", "memory_bytes", memory_bytes ?? 0, formatBytes],
  ];
  return lines.map(([label, key, add, fmt]) => {
    const u = r[key];
    const used = u?.used ?? 0;
    const limit = u?.limit ?? null;
    return {
      label,
      used: fmt(used),
      after: fmt(used + add),
      limit: limit === null ? "no limit" : fmt(limit),
      over: limit !== null && used + add > limit,
    };
  });
}

/** The body of POST /v1/instances. */
export function toRequest(s: WizardState, project: string | undefined) {
  const { cpus, memory_bytes } = size(s);
  const kv = (rows: KV[]) => Object.fromEntries(rows.filter((r) => r.key).map((r) => [r.key, r.value]));
  return {
    name: s.name,
    image: s.image,
    project,
    cpus,
    memory_bytes,
    command: s.command.trim() ? (splitCommand(s.command) ?? undefined) : undefined,
    env: kv(s.env),
    labels: kv(s.labels),
    restart: s.restart,
    start: s.start,
    networks: s.networks ? s.networks.map((network) => ({ network })) : undefined,
    security_groups: s.security_groups ?? undefined,
    volumes: s.volumes.length ? s.volumes : undefined,
    type: s.type === "vm" ? "vm" : undefined,
    ssh_keys: s.ssh_keys.trim() ? s.ssh_keys.split(",").map((k) => k.trim()).filter(Boolean) : undefined,
  };
}
