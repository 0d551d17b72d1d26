//! VPC networks, security groups and port forwards.
//!
//! A network is a Linux bridge with a CIDR, a gateway address, IPAM in the store and
//! (unless `nat` is off) NAT to the outside. Networks are isolated from each other
//! unless peered. Security groups are stateful allow-lists attached to instances.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// e.g. `10.10.0.0/24`.
    pub cidr: String,
    /// The bridge's own address: the instances' default gateway (and DNS server).
    pub gateway: String,
    /// The Linux bridge on the host.
    pub bridge: String,
    /// Traffic to the outside is masqueraded behind the host's address.
    pub nat: bool,
    /// Instances resolve each other as `<name>.<network>.internal` and `<name>`.
    pub dns: bool,
    /// The project's `default` network (every project has one; it cannot be removed).
    pub default: bool,
    /// Names of the networks this one is peered with.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Instances with a NIC on this network.
    pub instance_count: u32,
    /// Addresses in use / assignable addresses.
    pub addresses_used: u32,
    pub addresses_total: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateNetworkRequest {
    pub name: String,
    /// IPv4 CIDR, prefix /16 to /29, e.g. `10.10.0.0/24`. Default: the next free /24
    /// of the server's `network_cidr` pool.
    #[serde(default)]
    pub cidr: Option<String>,
    /// Masquerade traffic to the outside (default true).
    #[serde(default)]
    pub nat: Option<bool>,
    /// Serve instance DNS on the gateway address (default false).
    #[serde(default)]
    pub dns: Option<bool>,
    /// Project name or id; default: `default`.
    #[serde(default)]
    pub project: Option<String>,
}

/// `POST /v1/networks/{id}/peers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeerRequest {
    /// The other network (name or id, same project).
    pub network: String,
}

/// An instance's interface on a network.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct InstanceNic {
    /// `eth0`, `eth1`, ... inside the instance; `eth0` carries the default route.
    pub name: String,
    pub network_id: String,
    pub network: String,
    pub ip: String,
    pub mac: String,
}

/// A NIC requested at create time or by attach: a network and optionally a fixed address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NicRequest {
    /// Network name or id.
    pub network: String,
    /// A fixed address inside the network's CIDR; default: the lowest free one.
    #[serde(default)]
    pub ip: Option<String>,
}

/// `PUT /v1/instances/{id}/security-groups`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SetSecurityGroupsRequest {
    /// Group names or ids (same project). An empty list leaves only traffic the
    /// instance started (replies) and nothing else in.
    pub security_groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "ingress" => Some(Direction::Ingress),
            "egress" => Some(Direction::Egress),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    /// Any protocol.
    All,
}

impl Protocol {
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "icmp" => Some(Protocol::Icmp),
            "all" | "any" => Some(Protocol::All),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecurityGroupRule {
    pub id: String,
    pub direction: Direction,
    pub protocol: Protocol,
    /// Ports and ranges for tcp/udp, e.g. `80,443,8000-8100`; absent: every port.
    #[serde(default)]
    pub ports: Option<String>,
    /// Ingress: where traffic may come from; egress: where it may go. A CIDR ...
    #[serde(default)]
    pub cidr: Option<String>,
    /// ... or the members of a security group (its name).
    #[serde(default)]
    pub security_group: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub project_id: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The project's `default` group: all egress, ingress from its own members.
    pub default: bool,
    pub rules: Vec<SecurityGroupRule>,
    /// Instances in the group.
    pub instance_count: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateSecurityGroupRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Project name or id; default: `default`.
    #[serde(default)]
    pub project: Option<String>,
    /// Start with no rules instead of "all egress" (ingress is always empty).
    #[serde(default)]
    pub no_default_egress: Option<bool>,
}

/// `POST /v1/security-groups/{id}/rules`. Give exactly one of `cidr` and `security_group`
/// (neither: `0.0.0.0/0`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateRuleRequest {
    pub direction: Direction,
    pub protocol: Protocol,
    #[serde(default)]
    pub ports: Option<String>,
    #[serde(default)]
    pub cidr: Option<String>,
    #[serde(default)]
    pub security_group: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortForward {
    pub id: String,
    pub project_id: String,
    pub instance_id: String,
    pub instance: String,
    /// The host port (on every host address, for traffic arriving at the host; the
    /// host's own connections are not forwarded).
    pub host_port: u16,
    pub instance_port: u16,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// Where the forwarded traffic goes now (the instance's first address).
    #[serde(default)]
    pub target_ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/instances/{id}/ports`; the CLI's `8080:80/tcp`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatePortForwardRequest {
    /// A port of the server's `port_forward_range` (1024-65535 by default) that is not
    /// one of Roost's listeners and that nothing on the host listens on (TCP or UDP).
    pub host_port: u16,
    pub instance_port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: Option<Protocol>,
}

/// `PATCH /v1/networks/{id}`: turn NAT or the network's DNS on or off (applies to running
/// instances at once).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateNetworkRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<bool>,
}

/// `PATCH /v1/security-groups/{id}`: the description (`null` clears it). Rules have
/// their own routes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateSecurityGroupRequest {
    #[serde(default, with = "crate::patch::double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// The list parameters of networks and security groups.
pub type NetworkListParams = crate::ProjectListParams;

/// `GET /v1/port-forwards`: paging (sorted by `created_at` or `host_port`), project and
/// instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortForwardListParams {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// `created_at` (default, newest first) or `host_port`; `-` in front for descending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Only this project (name or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only this instance (name or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// Parses `8080:80/tcp` (protocol optional, default tcp).
pub fn parse_port_mapping(s: &str) -> Result<CreatePortForwardRequest, String> {
    let (ports, proto) = match s.split_once('/') {
        Some((p, proto)) => (
            p,
            Some(
                Protocol::parse(proto)
                    .filter(|p| matches!(p, Protocol::Tcp | Protocol::Udp))
                    .ok_or_else(|| format!("'{proto}' is not a port protocol (tcp or udp)"))?,
            ),
        ),
        None => (s, None),
    };
    let (host, inner) = ports
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not HOST_PORT:INSTANCE_PORT[/tcp|udp], e.g. 8080:80/tcp"))?;
    let port =
        |p: &str| p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("'{p}' is not a port (1-65535)"));
    Ok(CreatePortForwardRequest { host_port: port(host)?, instance_port: port(inner)?, protocol: proto })
}

/// Parses a rule's port list `80,443,8000-8100` into ranges (inclusive). Empty lists,
/// zero, reversed ranges and more than 64 entries are refused.
pub fn parse_port_list(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let port = |p: &str| {
            p.trim().parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("'{p}' is not a port (1-65535)"))
        };
        let range = match part.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(part)?, port(part)?),
        };
        if range.0 > range.1 {
            return Err(format!("'{part}' is a reversed range"));
        }
        out.push(range);
    }
    if out.len() > 64 {
        return Err("at most 64 ports or ranges per rule".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mappings() {
        let m = parse_port_mapping("8080:80/tcp").unwrap();
        assert_eq!((m.host_port, m.instance_port, m.protocol), (8080, 80, Some(Protocol::Tcp)));
        let m = parse_port_mapping("53:5353/udp").unwrap();
        assert_eq!(m.protocol, Some(Protocol::Udp));
        assert_eq!(parse_port_mapping("8080:80").unwrap().protocol, None);
        assert!(parse_port_mapping("8080").is_err());
        assert!(parse_port_mapping("0:80").is_err());
        assert!(parse_port_mapping("8080:80/icmp").is_err());
        assert!(parse_port_mapping("70000:80").is_err());
    }

    #[test]
    fn port_lists() {
        assert_eq!(parse_port_list("80,443").unwrap(), vec![(80, 80), (443, 443)]);
        assert_eq!(parse_port_list("8000-8100").unwrap(), vec![(8000, 8100)]);
        assert!(parse_port_list("").is_err());
        assert!(parse_port_list("90-80").is_err());
        assert!(parse_port_list("0").is_err());
        assert!(parse_port_list("http").is_err());
    }
}
