//! Address allocation, pure: the control plane keeps the leases in the store (so two
//! nodes never hand out one address) and asks this which address comes next.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The lowest free host address of `cidr`: not the network or broadcast address, not
/// the gateway, not in `taken`. `None` when the network is full.
pub fn allocate(cidr: Ipv4Net, gateway: Ipv4Addr, taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let mut taken: Vec<u32> = taken.iter().map(|&a| u32::from(a)).collect();
    taken.sort_unstable();
    let gateway = u32::from(gateway);
    let (first, last) = host_range(cidr)?;
    // Walk the sorted leases and the range together: O(n log n) however full it is.
    let mut leases = taken.into_iter().filter(|&a| a >= first && a <= last).peekable();
    let mut candidate = first;
    loop {
        while leases.peek().is_some_and(|&a| a < candidate) {
            leases.next();
        }
        if candidate == gateway || leases.peek() == Some(&candidate) {
            if candidate == last {
                return None;
            }
            candidate += 1;
            continue;
        }
        return Some(Ipv4Addr::from(candidate));
    }
}

/// The first and last assignable addresses (a /31 and /32 have no network and
/// broadcast address to skip; they are not useful for a bridge, but not wrong).
fn host_range(cidr: Ipv4Net) -> Option<(u32, u32)> {
    let network = u32::from(cidr.network());
    let broadcast = u32::from(cidr.broadcast());
    match cidr.prefix_len() {
        32 => Some((network, network)),
        31 => Some((network, broadcast)),
        _ if broadcast - network >= 2 => Some((network + 1, broadcast - 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn skips_network_gateway_and_leases() {
        let cidr = net("10.88.0.0/16");
        let gw = ip("10.88.0.1");
        assert_eq!(allocate(cidr, gw, &[]), Some(ip("10.88.0.2")));
        assert_eq!(allocate(cidr, gw, &[ip("10.88.0.2"), ip("10.88.0.3")]), Some(ip("10.88.0.4")));
        // A gap is reused; order of the leases does not matter.
        assert_eq!(allocate(cidr, gw, &[ip("10.88.0.4"), ip("10.88.0.2")]), Some(ip("10.88.0.3")));
        // Leases outside the network are ignored.
        assert_eq!(allocate(cidr, gw, &[ip("192.168.0.2")]), Some(ip("10.88.0.2")));
    }

    #[test]
    fn gateway_anywhere_in_the_range() {
        let cidr = net("10.201.3.0/24");
        assert_eq!(allocate(cidr, ip("10.201.3.254"), &[]), Some(ip("10.201.3.1")));
        assert_eq!(allocate(cidr, ip("10.201.3.1"), &[]), Some(ip("10.201.3.2")));
    }

    #[test]
    fn full_network() {
        let cidr = net("10.0.0.0/29"); // .1 to .6
        let gw = ip("10.0.0.1");
        let taken: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(allocate(cidr, gw, &taken), None);
        assert_eq!(allocate(cidr, gw, &taken[1..]), Some(ip("10.0.0.2")));
        assert_eq!(allocate(net("10.0.0.0/30"), ip("10.0.0.1"), &[]), Some(ip("10.0.0.2")));
        assert_eq!(allocate(net("10.0.0.0/30"), ip("10.0.0.1"), &[ip("10.0.0.2")]), None);
    }

    #[test]
    fn never_hands_out_a_duplicate() {
        let cidr = net("10.9.0.0/24");
        let gw = ip("10.9.0.1");
        let mut taken = Vec::new();
        while let Some(a) = allocate(cidr, gw, &taken) {
            assert!(!taken.contains(&a) && a != gw);
            taken.push(a);
        }
        assert_eq!(taken.len(), 253);
    }
}
