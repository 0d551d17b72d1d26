//! What the host itself has that no tenant may take: its routes and addresses (a
//! network over them would capture the host's own traffic), its name servers, and the
//! ports something on it listens on (a port forward over one would take it over).
//! What Roost made (its bridges, their addresses and routes) is left out: networks may
//! overlap each other, and the firewall's marks keep them apart.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteType};

use crate::Result;

/// Address space no network may use, and what it is.
pub fn reserved_space(cidr: Ipv4Net) -> Option<(&'static str, Ipv4Net)> {
    const RESERVED: [(&str, [u8; 4], u8); 5] = [
        ("\"this network\"", [0, 0, 0, 0], 8),
        ("loopback", [127, 0, 0, 0], 8),
        ("link-local", [169, 254, 0, 0], 16),
        ("multicast", [224, 0, 0, 0], 4),
        ("reserved", [240, 0, 0, 0], 4),
    ];
    RESERVED.iter().find_map(|(what, net, len)| {
        let space = Ipv4Net::new(Ipv4Addr::from(*net), *len).expect("a valid prefix");
        overlaps(space, cidr).then_some((*what, space))
    })
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// One of the host's routes (IPv4, any table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub cidr: Ipv4Net,
    pub dev: String,
    pub gateway: Option<Ipv4Addr>,
    /// The host's own address (a `local` route).
    pub local: bool,
    pub table: u32,
}

impl std::fmt::Display for HostRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cidr.prefix_len() == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.cidr)?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if !self.dev.is_empty() {
            write!(f, " dev {}", self.dev)?;
        }
        if !matches!(self.table, 254 | 255) {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// The host's routes and name servers, as far as a network's range must keep clear.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub routes: Vec<HostRoute>,
    pub nameservers: Vec<Ipv4Addr>,
}

impl HostFacts {
    /// Reads them from the kernel (one route dump) and /etc/resolv.conf, leaving out
    /// the bridges of every Roost installation (their alias starts with `roost:`).
    pub async fn read() -> Result<HostFacts> {
        let names = link_names();
        let roost: HashSet<String> = super::owned_bridges("roost:").into_iter().map(|(name, _)| name).collect();
        let handle = super::connect()?;
        let mut routes = Vec::new();
        let mut dump = handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
        while let Some(route) = dump.try_next().await.map_err(|e| super::netlink("listing", "routes", e))? {
            let kind = route.header.kind;
            if !matches!(
                kind,
                RouteType::Unicast
                    | RouteType::Local
                    | RouteType::BlackHole
                    | RouteType::Unreachable
                    | RouteType::Prohibit
            ) {
                continue;
            }
            let (mut dst, mut gateway, mut oif) = (Ipv4Addr::UNSPECIFIED, None, 0);
            let mut table = route.header.table as u32;
            for attr in &route.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
                    RouteAttribute::Oif(i) => oif = *i,
                    RouteAttribute::Table(t) => table = *t,
                    _ => {}
                }
            }
            let dev = names.get(&oif).cloned().unwrap_or_default();
            if roost.contains(&dev) {
                continue;
            }
            let Ok(cidr) = Ipv4Net::new(dst, route.header.destination_prefix_length) else { continue };
            routes.push(HostRoute { cidr, dev, gateway, local: kind == RouteType::Local, table });
        }
        // The host's addresses first: the clearest thing to name.
        routes.sort_by_key(|r| !r.local);
        Ok(HostFacts {
            routes,
            nameservers: nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
        })
    }

    /// Why `cidr` may not be a network's range on this host, if it may not: it overlaps
    /// a route or address of the host's, or holds the gateway of one of its routes or
    /// one of its name servers (default routes themselves cover everything and are not
    /// counted; a network is more specific, and the host's own traffic to it follows
    /// the host's routes first).
    pub fn conflict(&self, cidr: Ipv4Net) -> Option<String> {
        let cidr = cidr.trunc();
        for r in &self.routes {
            if r.local && cidr.contains(&r.cidr.network()) {
                return Some(format!("{cidr} holds the host's address {} ({})", r.cidr.network(), r.dev));
            }
        }
        for r in self.routes.iter().filter(|r| !r.local && r.cidr.prefix_len() > 0) {
            if overlaps(r.cidr, cidr) {
                return Some(format!("{cidr} overlaps the host's route {r}"));
            }
        }
        for r in &self.routes {
            if let Some(gw) = r.gateway.filter(|gw| cidr.contains(gw)) {
                return Some(format!("{cidr} holds {gw}, the gateway of the host's route {r}"));
            }
        }
        self.nameservers
            .iter()
            .find(|ns| cidr.contains(*ns))
            .map(|ns| format!("{cidr} holds {ns}, a name server of the host (/etc/resolv.conf)"))
    }
}

fn link_names() -> HashMap<u32, String> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else { return HashMap::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let index = std::fs::read_to_string(e.path().join("ifindex")).ok()?.trim().parse().ok()?;
            Some((index, e.file_name().to_string_lossy().into_owned()))
        })
        .collect()
}

/// The IPv4 name servers of a resolv.conf.
pub fn nameservers(resolv_conf: &str) -> Vec<Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

/// What on the host uses `port`, TCP or UDP, on any address: a listening TCP socket or
/// a bound, unconnected UDP socket, from the kernel's socket tables
/// (`/proc/net/{tcp,tcp6,udp,udp6}` of the host's namespace, all processes). Read
/// rather than probed with a bind: a bind test would race with its own socket, need
/// one attempt per family and address, and could not tell a listener from a
/// connection that merely uses the port.
pub fn port_in_use(port: u16) -> Option<String> {
    for (file, what, state) in [
        ("/proc/net/tcp", "a TCP listener", "0A"),
        ("/proc/net/tcp6", "a TCP listener", "0A"),
        ("/proc/net/udp", "a UDP socket", "07"),
        ("/proc/net/udp6", "a UDP socket", "07"),
    ] {
        let Ok(table) = std::fs::read_to_string(file) else { continue };
        if let Some(addr) = bound(&table, port, state) {
            return Some(format!("{what} on {addr}"));
        }
    }
    None
}

/// The local address of the first socket in a `/proc/net/{tcp,udp}[6]` table bound to
/// `port` in `state` (hex, as the kernel writes it).
fn bound(table: &str, port: u16, state: &str) -> Option<String> {
    for line in table.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(local), Some(_remote), Some(st)) = (fields.nth(1), fields.next(), fields.next()) else { continue };
        let Some((addr, p)) = local.split_once(':') else { continue };
        if st != state || u16::from_str_radix(p, 16).ok() != Some(port) {
            continue;
        }
        let mut text = String::new();
        // The address is 32-bit words in host (little-endian) order.
        let words: Vec<u32> =
            (0..addr.len() / 8).filter_map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()).collect();
        match words.as_slice() {
            [w] => {
                let _ = write!(text, "{}:{port}", Ipv4Addr::from(w.to_ne_bytes()));
            }
            [a, b, c, d] => {
                let mut bytes = [0u8; 16];
                for (i, w) in [a, b, c, d].iter().enumerate() {
                    bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
                }
                let _ = write!(text, "[{}]:{port}", Ipv6Addr::from(bytes));
            }
            _ => {
                let _ = write!(text, "port {port}");
            }
        }
        return Some(text);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(cidr: &str, dev: &str, gateway: Option<&str>, local: bool) -> HostRoute {
        HostRoute {
            cidr: cidr.parse().unwrap(),
            dev: dev.into(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            local,
            table: if local { 255 } else { 254 },
        }
    }

    fn facts() -> HostFacts {
        HostFacts {
            routes: vec![
                route("192.168.1.5/32", "eth0", None, true),
                route("0.0.0.0/0", "eth0", Some("192.168.1.1"), false),
                route("192.168.1.0/24", "eth0", None, false),
                route("10.200.0.0/16", "wg0", None, false),
                route("172.30.0.0/16", "eth1", Some("10.9.9.9"), false),
            ],
            nameservers: vec!["8.8.8.8".parse().unwrap()],
        }
    }

    #[test]
    fn ranges_over_the_hosts_routes_addresses_gateways_and_name_servers_conflict() {
        let f = facts();
        let c = |cidr: &str| f.conflict(cidr.parse().unwrap());
        assert_eq!(c("192.168.1.8/29").unwrap(), "192.168.1.8/29 overlaps the host's route 192.168.1.0/24 dev eth0");
        assert_eq!(c("192.168.0.0/16").unwrap(), "192.168.0.0/16 holds the host's address 192.168.1.5 (eth0)");
        assert_eq!(c("10.200.5.0/24").unwrap(), "10.200.5.0/24 overlaps the host's route 10.200.0.0/16 dev wg0");
        assert_eq!(
            c("10.9.9.8/29").unwrap(),
            "10.9.9.8/29 holds 10.9.9.9, the gateway of the host's route 172.30.0.0/16 via 10.9.9.9 dev eth1"
        );
        assert_eq!(c("8.8.8.0/24").unwrap(), "8.8.8.0/24 holds 8.8.8.8, a name server of the host (/etc/resolv.conf)");
        // The default route alone does not make every range a conflict.
        assert_eq!(c("10.88.0.0/24"), None);
    }

    #[test]
    fn reserved_space_is_named() {
        let r = |cidr: &str| reserved_space(cidr.parse().unwrap()).map(|(what, _)| what);
        assert_eq!(r("127.0.0.0/16"), Some("loopback"));
        assert_eq!(r("169.254.169.0/24"), Some("link-local"));
        assert_eq!(r("224.0.0.0/24"), Some("multicast"));
        assert_eq!(r("0.0.0.0/16"), Some("\"this network\""));
        assert_eq!(r("240.1.0.0/16"), Some("reserved"));
        assert_eq!(r("10.0.0.0/16"), None);
    }

    #[test]
    fn sockets_tables_are_read() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1E14 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0200000A:9C40 0100000A:0016 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0";
        assert_eq!(bound(tcp, 7700, "0A").as_deref(), Some("127.0.0.1:7700"));
        assert_eq!(bound(tcp, 40000, "0A"), None, "a connection is not a listener");
        let tcp6 = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000";
        assert_eq!(bound(tcp6, 8080, "0A").as_deref(), Some("[::]:8080"));
        let udp = "header\n 1: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3";
        assert_eq!(bound(udp, 53, "07").as_deref(), Some("0.0.0.0:53"));
    }

    #[test]
    fn a_port_bound_here_is_found() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert_eq!(port_in_use(port), Some(format!("a TCP listener on 127.0.0.1:{port}")));
        let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        assert_eq!(port_in_use(port), Some(format!("a UDP socket on 0.0.0.0:{port}")));
    }
}
