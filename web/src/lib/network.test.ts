import { describe, expect, it } from "vitest";
import { cidrError, emptyRule, parsePortList, ruleRequest, validateRule } from "./network";

describe("security group rules", () => {
  it("parses port lists like the API", () => {
    expect(parsePortList("80,443")).toEqual([[80, 80], [443, 443]]);
    expect(parsePortList("8000-8100")).toEqual([[8000, 8100]]);
    expect(parsePortList("90-80")).toMatch(/reversed/);
    expect(parsePortList("0")).toMatch(/not a port/);
    expect(parsePortList("http")).toMatch(/not a port/);
    expect(parsePortList("70000")).toMatch(/not a port/);
  });

  it("checks CIDRs", () => {
    expect(cidrError("0.0.0.0/0")).toBeNull();
    expect(cidrError("10.1.2.3")).toBeNull();
    expect(cidrError("10.1.2.0/33")).toMatch(/prefix/);
    expect(cidrError("300.1.1.1/8")).toMatch(/0-255/);
    expect(cidrError("lan")).toMatch(/CIDR/);
  });

  it("validates a rule and builds its request", () => {
    expect(validateRule({ ...emptyRule(), ports: "22" })).toEqual({});
    expect(validateRule({ ...emptyRule(), ports: "22-" }).ports).toBeDefined();
    expect(validateRule({ ...emptyRule(), protocol: "icmp", ports: "1" }).ports).toMatch(/no ports/);
    expect(validateRule({ ...emptyRule(), source: "group" }).group).toBeDefined();
    expect(ruleRequest({ ...emptyRule(), ports: "80, 443", description: " web " })).toEqual({
      direction: "ingress",
      protocol: "tcp",
      ports: "80,443",
      cidr: "0.0.0.0/0",
      security_group: null,
      description: "web",
    });
    expect(ruleRequest({ ...emptyRule(), protocol: "icmp", source: "group", group: "web" })).toMatchObject({ ports: null, cidr: null, security_group: "web" });
  });
});

import { parsePortMapping } from "../components/InstanceNetwork";

describe("port mappings", () => {
  it("parses HOST:INSTANCE[/proto] like the CLI", () => {
    expect(parsePortMapping("8080:80/tcp")).toEqual({ host_port: 8080, instance_port: 80, protocol: "tcp" });
    expect(parsePortMapping("53:5353/udp")).toEqual({ host_port: 53, instance_port: 5353, protocol: "udp" });
    expect(parsePortMapping("8080:80")).toMatchObject({ protocol: "tcp" });
    expect(parsePortMapping("8080")).toMatch(/HOST_PORT/);
    expect(parsePortMapping("0:80")).toMatch(/1-65535/);
    expect(parsePortMapping("70000:80")).toMatch(/1-65535/);
    expect(parsePortMapping("8080:80/icmp")).toMatch(/HOST_PORT/);
  });
});
