// Networks and security groups: rule validation (pure, unit tested).

export interface RuleDraft {
  direction: "ingress" | "egress";
  protocol: "tcp" | "udp" | "icmp" | "all";
  ports: string;
  source: "cidr" | "group";
  cidr: string;
  group: string;
  description: string;
}

export const emptyRule = (): RuleDraft => ({
  direction: "ingress",
  protocol: "tcp",
  ports: "",
  source: "cidr",
  cidr: "0.0.0.0/0",
  group: "",
  description: "",
});

/** "80,443,8000-8100" → ranges, or an error (the API's own rules). */
export function parsePortList(s: string): [number, number][] | string {
  const out: [number, number][] = [];
  for (const raw of s.split(",")) {
    const part = raw.trim();
    const port = (p: string): number | string => {
      const n = Number(p.trim());
      return /^\d+$/.test(p.trim()) && n >= 1 && n <= 65535 ? n : `'${p.trim()}' is not a port (1-65535)`;
    };
    const [a, b] = part.includes("-") ? (part.split("-", 2) as [string, string]) : [part, part];
    const lo = port(a);
    const hi = port(b);
    if (typeof lo === "string") return lo;
    if (typeof hi === "string") return hi;
    if (lo > hi) return `'${part}' is a reversed range`;
    out.push([lo, hi]);
  }
  if (out.length > 64) return "At most 64 ports or ranges per rule";
  return out;
}

/** An IPv4 CIDR like 10.0.0.0/24, or a single address (taken as /32). */
export function cidrError(s: string): string | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(s.trim());
  if (!m) return "Use an IPv4 CIDR such as 10.0.0.0/24 or 0.0.0.0/0";
  if (m.slice(1, 5).some((o) => Number(o) > 255)) return "Each address part is 0-255";
  if (m[5] !== undefined && Number(m[5]) > 32) return "The prefix length is 0-32";
  return null;
}

export function validateRule(r: RuleDraft): Partial<Record<keyof RuleDraft, string>> {
  const e: Partial<Record<keyof RuleDraft, string>> = {};
  if (r.protocol === "tcp" || r.protocol === "udp") {
    if (r.ports.trim()) {
      const p = parsePortList(r.ports);
      if (typeof p === "string") e.ports = p;
    }
  } else if (r.ports.trim()) {
    e.ports = `${r.protocol} rules have no ports`;
  }
  if (r.source === "cidr") {
    const c = cidrError(r.cidr);
    if (c) e.cidr = c;
  } else if (!r.group) {
    e.group = "Choose a security group";
  }
  return e;
}

/** The body of POST /v1/security-groups/{id}/rules. */
export function ruleRequest(r: RuleDraft) {
  return {
    direction: r.direction,
    protocol: r.protocol,
    ports: (r.protocol === "tcp" || r.protocol === "udp") && r.ports.trim() ? r.ports.replace(/\s+/g, "") : null,
    cidr: r.source === "cidr" ? r.cidr.trim() : null,
    security_group: r.source === "group" ? r.group : null,
    description: r.description.trim() || null,
  };
}
