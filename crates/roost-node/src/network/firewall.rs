//! The firewall: networks' isolation and peering, security groups, NAT and port
//! forwards, compiled from the desired state into two nftables tables that Roost owns
//! (`ip <table>` and `bridge <table>`) and replaced in one `nft` transaction.
//!
//! Replacing whole tables rather than patching rules keeps the host a pure function of
//! the store: whatever drifted (a hand-deleted chain, a crash between two changes) is
//! gone after the next apply, and nothing outside our two tables is ever touched: the
//! script deletes only tables it names. One transaction means a packet sees either the
//! old rule set or the new one, never half of each.
//!
//! Traffic between instances on one bridge is bridged, not routed; it still passes the
//! `ip` forward hook because `net.bridge.bridge-nf-call-iptables` is on (we set it), so
//! one stateful chain sees all instance traffic. There the in and out interface of a
//! bridged packet is the bridge, so a NIC is known by (bridge, address); the `bridge`
//! table lets an instance port send only IPv4 and ARP, from the port's own MAC and
//! address, so an instance cannot borrow another's address (and its security group
//! membership), poison a neighbour's ARP cache, or speak IPv6 past the IPv4 rules.
//!
//! The host is not a neighbour like any other: from a bridge it takes DNS on the
//! gateway and what an egress rule naming an address (not `0.0.0.0/0`) allows, nothing
//! else, and never anything for 127.0.0.0/8. Port forwards are DNAT for packets that
//! arrive at the host (from outside or from an instance); the host's own connections
//! are never redirected.
//!
//! The script is nftables' own syntax rather than its JSON: the rule set is generated
//! whole, and every interpolated value is typed (addresses, ports) or a validated
//! interface name, so there is nothing to escape.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::{Error, MacAddr, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Cidr(Ipv4Net),
    /// Members of a group (its id).
    Group(String),
}

#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub ingress: bool,
    pub proto: Proto,
    /// Inclusive ranges; empty: every port.
    pub ports: Vec<(u16, u16)>,
    pub remote: Remote,
}

#[derive(Debug, Clone)]
pub struct NetSpec {
    pub bridge: String,
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub nat: bool,
    pub dns: bool,
    /// Connections from this network carry this mark (policy routing; 0: none).
    pub mark: u32,
}

#[derive(Debug, Clone)]
pub struct NicSpec {
    /// The host end of the veth (or the tap).
    pub host_if: String,
    pub bridge: String,
    pub ip: Ipv4Addr,
    /// The instance's MAC: the only one its port may send from.
    pub mac: MacAddr,
    /// Group ids.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ForwardSpec {
    pub host_port: u16,
    pub udp: bool,
    pub target: Ipv4Addr,
    pub target_port: u16,
    /// The target network's mark, so the packet is routed to its bridge.
    pub mark: u32,
}

#[derive(Debug, Clone, Default)]
pub struct FirewallSpec {
    pub networks: Vec<NetSpec>,
    /// Pairs of bridges that may route to each other.
    pub peers: Vec<(String, String)>,
    pub nics: Vec<NicSpec>,
    /// Group id → rules.
    pub groups: BTreeMap<String, Vec<RuleSpec>>,
    pub forwards: Vec<ForwardSpec>,
}

/// Chain and set names are built from interface names and ids: keep them to what nft
/// accepts in an identifier.
fn ident(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(Error::Invalid(format!("invalid interface name '{name}'"))) }
}

fn port_set(ports: &[(u16, u16)]) -> String {
    let items: Vec<String> =
        ports.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    format!("{{ {} }}", items.join(", "))
}

fn rule_match(rule: &RuleSpec) -> String {
    let mut m = String::new();
    let addr = if rule.ingress { "saddr" } else { "daddr" };
    match &rule.remote {
        Remote::Cidr(net) if net.prefix_len() == 0 => {}
        Remote::Cidr(net) => {
            let _ = write!(m, "ip {addr} {} ", net.trunc());
        }
        Remote::Group(id) => {
            let _ = write!(m, "ip {addr} @g_{} ", ident(id));
        }
    }
    match rule.proto {
        Proto::Tcp | Proto::Udp => {
            let p = if rule.proto == Proto::Tcp { "tcp" } else { "udp" };
            if rule.ports.is_empty() {
                let _ = write!(m, "meta l4proto {p} ");
            } else {
                let _ = write!(m, "{p} dport {} ", port_set(&rule.ports));
            }
        }
        Proto::Icmp => m.push_str("meta l4proto icmp "),
        Proto::All => {}
    }
    m
}

/// The whole script: both tables replaced in one transaction.
pub fn compile(table: &str, spec: &FirewallSpec) -> Result<String> {
    check_ifname(table)?;
    for n in &spec.networks {
        check_ifname(&n.bridge)?;
    }
    for nic in &spec.nics {
        check_ifname(&nic.host_if)?;
        check_ifname(&nic.bridge)?;
    }
    let mut s = String::new();
    // `table x {}` creates it when missing, so the delete cannot fail.
    let _ = writeln!(
        s,
        "table ip {table} {{}}\ndelete table ip {table}\ntable bridge {table} {{}}\ndelete table bridge {table}"
    );
    let _ = writeln!(s, "table ip {table} {{");

    // Our bridges, and group membership as address sets.
    let bridges: Vec<String> = spec.networks.iter().map(|n| format!("\"{}\"", n.bridge)).collect();
    let _ = writeln!(s, "  set bridges {{ type ifname;{} }}", elements(&bridges));
    let mut members: BTreeMap<&str, BTreeSet<Ipv4Addr>> =
        spec.groups.keys().map(|g| (g.as_str(), BTreeSet::new())).collect();
    for nic in &spec.nics {
        for g in &nic.groups {
            members.entry(g.as_str()).or_default().insert(nic.ip);
        }
    }
    for (g, ips) in &members {
        let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
        let _ = writeln!(s, "  set g_{} {{ type ipv4_addr;{} }}", ident(g), elements(&ips));
    }

    // Per NIC: its egress and ingress chains (the union of its groups' rules), and for
    // NICs whose groups name addresses in egress rules, the rules that may reach the
    // host itself. "All egress" (0.0.0.0/0) is about the world, not the host: the host
    // takes from an instance only what a rule names it for.
    let mut egress_map = Vec::new();
    let mut ingress_map = Vec::new();
    let mut host_map = Vec::new();
    for nic in &spec.nics {
        let name = ident(&nic.host_if);
        let rules = |ingress: bool| {
            nic.groups
                .iter()
                .flat_map(|g| spec.groups.get(g).into_iter().flatten())
                .filter(move |r| r.ingress == ingress)
        };
        for ingress in [false, true] {
            let chain = if ingress { format!("i_{name}") } else { format!("e_{name}") };
            let _ = writeln!(s, "  chain {chain} {{");
            for rule in rules(ingress) {
                let _ = writeln!(s, "    {}return", rule_match(rule));
            }
            let _ = writeln!(s, "    counter drop\n  }}");
        }
        let to_host: Vec<&RuleSpec> =
            rules(false).filter(|r| matches!(&r.remote, Remote::Cidr(net) if net.prefix_len() > 0)).collect();
        if !to_host.is_empty() {
            let _ = writeln!(s, "  chain h_{name} {{");
            for rule in to_host {
                let _ = writeln!(s, "    {}accept", rule_match(rule));
            }
            s.push_str("  }\n");
            host_map.push(format!("\"{}\" . {} : jump h_{name}", nic.bridge, nic.ip));
        }
        egress_map.push(format!("\"{}\" . {} : jump e_{name}", nic.bridge, nic.ip));
        ingress_map.push(format!("\"{}\" . {} : jump i_{name}", nic.bridge, nic.ip));
    }

    // Forwarded traffic: replies pass; crossing between two of our bridges only when
    // peered; then the source's egress and the destination's ingress.
    let _ = writeln!(s, "  chain forward {{\n    type filter hook forward priority filter; policy accept;");
    if !spec.networks.is_empty() {
        s.push_str("    iifname != @bridges oifname != @bridges accept\n");
        // Loopback addresses are the host's own business, never routed for an instance.
        s.push_str("    iifname @bridges ip saddr 127.0.0.0/8 counter drop\n");
        s.push_str("    iifname @bridges ip daddr 127.0.0.0/8 counter drop\n");
        s.push_str("    ct state established,related accept\n    ct state invalid drop\n");
        for n in &spec.networks {
            let mut allowed = vec![format!("\"{}\"", n.bridge)];
            for (a, b) in &spec.peers {
                if a == &n.bridge {
                    allowed.push(format!("\"{b}\""));
                } else if b == &n.bridge {
                    allowed.push(format!("\"{a}\""));
                }
            }
            let _ = writeln!(
                s,
                "    iifname \"{}\" oifname @bridges oifname != {{ {} }} counter drop",
                n.bridge,
                allowed.join(", ")
            );
            if !n.nat {
                // Without NAT the network is internal: nothing in from outside, nothing out.
                let _ = writeln!(s, "    iifname \"{}\" oifname != @bridges counter drop", n.bridge);
                let _ = writeln!(s, "    oifname \"{}\" iifname != @bridges counter drop", n.bridge);
            }
        }
        if !egress_map.is_empty() {
            let _ = writeln!(s, "    iifname . ip saddr vmap {{ {} }}", egress_map.join(", "));
            let _ = writeln!(s, "    oifname . ip daddr vmap {{ {} }}", ingress_map.join(", "));
        }
    }
    s.push_str("  }\n");

    // Traffic from instances to the host itself: replies, DNS on the gateway, and what
    // a rule naming the host's address allows; everything else is dropped.
    let _ = writeln!(s, "  chain input {{\n    type filter hook input priority filter; policy accept;");
    if !spec.networks.is_empty() {
        s.push_str("    iifname != @bridges accept\n");
        s.push_str("    ip saddr 127.0.0.0/8 counter drop\n    ip daddr 127.0.0.0/8 counter drop\n");
        s.push_str("    ct state established,related accept\n    ct state invalid drop\n");
        for n in spec.networks.iter().filter(|n| n.dns) {
            let _ = writeln!(
                s,
                "    iifname \"{}\" ip daddr {} meta l4proto {{ tcp, udp }} th dport 53 accept",
                n.bridge, n.gateway
            );
        }
        if !host_map.is_empty() {
            let _ = writeln!(s, "    iifname . ip saddr vmap {{ {} }}", host_map.join(", "));
        }
        s.push_str("    counter drop\n");
    }
    s.push_str("  }\n");

    // Connections from a network carry its mark, and every packet of them the mark
    // again, so replies are routed back to the right bridge (see RouteOwner).
    let _ = writeln!(s, "  chain marks {{\n    type filter hook prerouting priority mangle; policy accept;");
    for n in spec.networks.iter().filter(|n| n.mark != 0) {
        let _ = writeln!(s, "    iifname \"{}\" ct state new ct mark set {:#x}", n.bridge, n.mark);
    }
    if !spec.networks.is_empty() {
        s.push_str("    ct mark != 0 meta mark set ct mark\n");
    }
    s.push_str("  }\n");
    // The host's own answers to an instance (a DNS reply over TCP, a reset) belong to a
    // connection that came from its network: route them by that network's mark too, so
    // they reach the right bridge when two networks share a range. Only marked
    // connections are touched; the host's own new connections carry no mark.
    if spec.networks.iter().any(|n| n.mark != 0) {
        let _ = writeln!(s, "  chain replies {{\n    type route hook output priority mangle; policy accept;");
        s.push_str("    ct mark != 0 meta mark set ct mark\n  }\n");
    }

    // Port forwards: DNAT for packets arriving at a host address, from outside or from
    // an instance (hairpin). Prerouting only: the host's own connections, to 127.0.0.1
    // or any other local address, pass the output hook and are never redirected.
    let _ = writeln!(s, "  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;");
    for f in &spec.forwards {
        let p = if f.udp { "udp" } else { "tcp" };
        let mark =
            if f.mark != 0 { format!("meta mark set {:#x} ct mark set {:#x} ", f.mark, f.mark) } else { String::new() };
        let _ = writeln!(
            s,
            "    iifname != \"lo\" fib daddr type local {p} dport {} {mark}dnat to {}:{}",
            f.host_port, f.target, f.target_port
        );
    }
    s.push_str("  }\n");
    let _ = writeln!(s, "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;");
    for n in &spec.networks {
        if n.nat {
            let _ = writeln!(s, "    ip saddr {} oifname != @bridges counter masquerade", n.cidr.trunc());
        }
        // A forward used from the same network comes back through the host.
        let _ = writeln!(s, "    ct status dnat oifname \"{}\" ip saddr {} masquerade", n.bridge, n.cidr.trunc());
    }
    s.push_str("  }\n}\n");

    // Anti-spoofing, per instance port: IPv4 and ARP only (IPv6 is not filtered by the
    // rules above, so it does not pass), from the port's MAC, for the port's address;
    // an ARP packet's sender must be the port's address and MAC too. Set lookups, so a
    // frame costs the same whatever the number of ports.
    let ports: Vec<String> = spec.nics.iter().map(|n| format!("\"{}\"", n.host_if)).collect();
    let macs: Vec<String> = spec.nics.iter().map(|n| format!("\"{}\" . {}", n.host_if, n.mac)).collect();
    let ips: Vec<String> = spec.nics.iter().map(|n| format!("\"{}\" . {}", n.host_if, n.ip)).collect();
    let _ = writeln!(s, "table bridge {table} {{");
    let _ = writeln!(s, "  set ports {{ type ifname;{} }}", elements(&ports));
    let _ = writeln!(s, "  set port_macs {{ type ifname . ether_addr;{} }}", elements(&macs));
    let _ = writeln!(s, "  set port_ips {{ type ifname . ipv4_addr;{} }}", elements(&ips));
    s.push_str("  chain prerouting {\n    type filter hook prerouting priority -200; policy accept;\n");
    s.push_str("    iifname != @ports accept\n");
    s.push_str("    iifname . ether saddr != @port_macs counter drop\n");
    s.push_str("    ether type != { ip, arp } counter drop\n");
    s.push_str("    ether type ip iifname . ip saddr != @port_ips counter drop\n");
    s.push_str("    ether type arp iifname . arp saddr ip != @port_ips counter drop\n");
    s.push_str("    ether type arp iifname . arp saddr ether != @port_macs counter drop\n");
    s.push_str("  }\n}\n");
    Ok(s)
}

fn elements(items: &[String]) -> String {
    if items.is_empty() { String::new() } else { format!(" elements = {{ {} }};", items.join(", ")) }
}

/// Applies a compiled script with `nft -f -` (blocking: call from a blocking thread).
pub fn apply(nft: &str, script: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(nft)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::missing(format!("the nft command ({nft})"), "nftables")
            } else {
                Error::io("running nft", e)
            }
        })?;
    child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(|e| Error::io("writing to nft", e))?;
    let out = child.wait_with_output().map_err(|e| Error::io("running nft", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::tool("nft", String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// Whether both of Roost's tables are there (blocking).
pub fn exists(nft: &str, table: &str) -> bool {
    ["ip", "bridge"].iter().all(|family| {
        std::process::Command::new(nft)
            .args(["list", "table", family, table])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Removes both tables (whether or not they exist).
pub fn remove(nft: &str, table: &str) -> Result<()> {
    check_ifname(table)?;
    apply(
        nft,
        &format!(
            "table ip {table} {{}}\ndelete table ip {table}\ntable bridge {table} {{}}\ndelete table bridge {table}\n"
        ),
    )
}

#[cfg(test)]
mod tests_support {
    use super::*;

    pub fn spec() -> FirewallSpec {
        let mut groups = BTreeMap::new();
        groups.insert(
            "sg-web".to_string(),
            vec![
                RuleSpec {
                    ingress: true,
                    proto: Proto::Tcp,
                    ports: vec![(80, 80), (443, 443)],
                    remote: Remote::Cidr("0.0.0.0/0".parse().unwrap()),
                },
                RuleSpec { ingress: true, proto: Proto::All, ports: vec![], remote: Remote::Group("sg-web".into()) },
                RuleSpec {
                    ingress: false,
                    proto: Proto::All,
                    ports: vec![],
                    remote: Remote::Cidr("0.0.0.0/0".parse().unwrap()),
                },
            ],
        );
        FirewallSpec {
            networks: vec![
                NetSpec {
                    bridge: "rnaaa".into(),
                    cidr: "10.10.0.0/24".parse().unwrap(),
                    gateway: "10.10.0.1".parse().unwrap(),
                    nat: true,
                    dns: true,
                    mark: 0x1000_0001,
                },
                NetSpec {
                    bridge: "rnbbb".into(),
                    cidr: "10.11.0.0/24".parse().unwrap(),
                    gateway: "10.11.0.1".parse().unwrap(),
                    nat: false,
                    dns: false,
                    mark: 0,
                },
            ],
            peers: vec![("rnaaa".into(), "rnbbb".into())],
            nics: vec![NicSpec {
                host_if: "rvabc".into(),
                bridge: "rnaaa".into(),
                ip: "10.10.0.2".parse().unwrap(),
                mac: MacAddr::for_ip("10.10.0.2".parse().unwrap()),
                groups: vec!["sg-web".into()],
            }],
            groups,
            forwards: vec![ForwardSpec {
                host_port: 8080,
                udp: false,
                target: "10.10.0.2".parse().unwrap(),
                target_port: 80,
                mark: 0x1000_0001,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::spec;
    use super::*;

    #[test]
    fn compiles_groups_peering_and_forwards() {
        let s = compile("roost", &spec()).unwrap();
        assert!(s.starts_with("table ip roost {}\ndelete table ip roost\n"), "{s}");
        assert!(s.contains("tcp dport { 80, 443 } return"), "{s}");
        assert!(s.contains("ip saddr @g_sg_web return"), "{s}");
        assert!(s.contains("set g_sg_web { type ipv4_addr; elements = { 10.10.0.2 }; }"), "{s}");
        assert!(
            s.contains("iifname \"rnaaa\" oifname @bridges oifname != { \"rnaaa\", \"rnbbb\" } counter drop"),
            "{s}"
        );
        assert!(s.contains("iifname \"rnbbb\" oifname != @bridges counter drop"), "no-nat network is internal: {s}");
        assert!(s.contains("ip saddr 10.10.0.0/24 oifname != @bridges counter masquerade"), "{s}");
        assert!(!s.contains("ip saddr 10.11.0.0/24 oifname != @bridges counter masquerade"), "{s}");
        assert!(
            s.contains("tcp dport 8080 meta mark set 0x10000001 ct mark set 0x10000001 dnat to 10.10.0.2:80"),
            "{s}"
        );
        assert!(s.contains("iifname \"rnaaa\" ct state new ct mark set 0x10000001"), "{s}");
        assert!(s.contains("\"rnaaa\" . 10.10.0.2 : jump i_rvabc"), "{s}");
        assert!(!s.contains("flush ruleset"), "{s}");
    }

    #[test]
    fn forwards_are_for_packets_arriving_at_the_host_only() {
        let s = compile("roost", &spec()).unwrap();
        let dnat: Vec<&str> = s.lines().filter(|l| l.contains("dnat to")).collect();
        assert_eq!(dnat.len(), 1, "{s}");
        assert!(dnat[0].trim_start().starts_with("iifname != \"lo\" fib daddr type local tcp dport 8080"), "{s}");
        // No nat chain on the output hook: the host's own connections are never redirected.
        assert!(!s.contains("type nat hook output"), "{s}");
        assert!(!s.contains("127.0.0.0/8 oifname @bridges masquerade"), "{s}");
    }

    #[test]
    fn instances_reach_the_host_only_for_dns_and_named_addresses() {
        let mut spec = spec();
        let input = |s: &str| s[s.find("chain input").unwrap()..].split("\n  }").next().unwrap().to_string();
        let s = compile("roost", &spec).unwrap();
        let chain = input(&s);
        assert!(chain.contains("ip daddr 127.0.0.0/8 counter drop"), "{chain}");
        assert!(chain.contains("iifname \"rnaaa\" ip daddr 10.10.0.1 meta l4proto { tcp, udp } th dport 53 accept"));
        // The group's "all egress" (0.0.0.0/0) does not open the host.
        assert!(!chain.contains("jump"), "{chain}");
        assert!(chain.trim_end().ends_with("counter drop"), "{chain}");
        assert!(s.contains("iifname @bridges ip daddr 127.0.0.0/8 counter drop"), "{s}");
        // A rule naming an address does.
        spec.groups.get_mut("sg-web").unwrap().push(RuleSpec {
            ingress: false,
            proto: Proto::Tcp,
            ports: vec![(7700, 7700)],
            remote: Remote::Cidr("10.10.0.1/32".parse().unwrap()),
        });
        let s = compile("roost", &spec).unwrap();
        assert!(input(&s).contains("\"rnaaa\" . 10.10.0.2 : jump h_rvabc"), "{s}");
        assert!(s.contains("chain h_rvabc {\n    ip daddr 10.10.0.1/32 tcp dport { 7700 } accept\n  }"), "{s}");
    }

    #[test]
    fn ports_send_ipv4_and_arp_from_their_own_mac_and_address() {
        let s = compile("roost", &spec()).unwrap();
        let bridge = &s[s.find("table bridge roost {").unwrap()..];
        assert!(
            bridge
                .contains("set port_macs { type ifname . ether_addr; elements = { \"rvabc\" . 02:52:0a:0a:00:02 }; }")
        );
        assert!(bridge.contains("set port_ips { type ifname . ipv4_addr; elements = { \"rvabc\" . 10.10.0.2 }; }"));
        assert!(bridge.contains("iifname != @ports accept"), "{bridge}");
        assert!(bridge.contains("iifname . ether saddr != @port_macs counter drop"), "{bridge}");
        assert!(bridge.contains("ether type != { ip, arp } counter drop"), "{bridge}");
        assert!(bridge.contains("ether type arp iifname . arp saddr ether != @port_macs counter drop"), "{bridge}");
    }

    #[test]
    fn refuses_bad_interface_names() {
        let mut bad = spec();
        bad.nics[0].host_if = "x\"; flush ruleset".into();
        assert!(compile("roost", &bad).is_err());
        assert!(compile("bad table", &spec()).is_err());
    }

    #[test]
    fn empty_spec_is_valid() {
        let s = compile("roost", &FirewallSpec::default()).unwrap();
        assert!(s.contains("set bridges { type ifname; }"), "{s}");
    }
}

#[cfg(test)]
mod nft_check {
    /// The compiled script is valid for the real `nft` (checked, not applied).
    #[test]
    fn nft_accepts_the_script() {
        let script = super::compile("roostcheck", &super::tests_support::spec()).unwrap();
        let mut child = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft (Debian package nftables) must be installed");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}\n{script}", String::from_utf8_lossy(&out.stderr));
    }
}
