//! Instance DNS: a small resolver on the gateway address of every network with DNS on.
//! It answers `<name>.<network>.internal` and `<name>` for the network's instances and
//! passes every other question to the host's name servers (from the host, so a local
//! resolver on 127.0.0.53 works too). Zones are replaced whole by the control plane
//! whenever instances or networks change; no process, no config file.
//!
//! UDP only: answers for instance names are a few bytes, and forwarded answers that do
//! not fit come back truncated, so the client retries upstream over TCP itself.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata::A};
use tokio::net::UdpSocket;

/// The names of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    /// The network's name: names are `<instance>.<network>.internal`.
    pub network: String,
    pub names: HashMap<String, Ipv4Addr>,
}

pub const DOMAIN: &str = "internal";
const TTL: u32 = 5;

/// Resolvers, one per gateway address.
#[derive(Default)]
pub struct DnsServer {
    zones: Arc<RwLock<HashMap<Ipv4Addr, Zone>>>,
    listeners: std::sync::Mutex<HashMap<Ipv4Addr, tokio::task::JoinHandle<()>>>,
}

impl DnsServer {
    pub fn new() -> DnsServer {
        DnsServer::default()
    }

    /// Serves exactly these zones (keyed by gateway address): starts listeners for new
    /// gateways, stops those of removed ones. A gateway whose address is not on the
    /// host yet is retried on the next call.
    pub async fn set_zones(&self, zones: HashMap<Ipv4Addr, Zone>) {
        *self.zones.write().expect("zones") = zones.clone();
        let mut listeners = self.listeners.lock().expect("listeners");
        listeners.retain(|gw, task| {
            let keep = zones.contains_key(gw) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for gw in zones.keys() {
            if listeners.contains_key(gw) {
                continue;
            }
            match std::net::UdpSocket::bind((*gw, 53)).and_then(|s| {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            }) {
                Ok(socket) => {
                    let zones = self.zones.clone();
                    let gw = *gw;
                    listeners.insert(gw, tokio::spawn(serve(socket, gw, zones)));
                }
                Err(e) => tracing::warn!(gateway = %gw, error = %e, "instance DNS: cannot listen yet"),
            }
        }
    }

    /// The gateways served now (for tests and status).
    pub fn serving(&self) -> Vec<Ipv4Addr> {
        self.listeners.lock().expect("listeners").keys().copied().collect()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in self.listeners.lock().expect("listeners").values() {
            task.abort();
        }
    }
}

async fn serve(socket: UdpSocket, gw: Ipv4Addr, zones: Arc<RwLock<HashMap<Ipv4Addr, Zone>>>) {
    let socket = Arc::new(socket);
    let upstreams = Arc::new(upstreams());
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
        let query = buf[..n].to_vec();
        let zone = zones.read().expect("zones").get(&gw).cloned().unwrap_or_default();
        let (socket, upstreams) = (socket.clone(), upstreams.clone());
        tokio::spawn(async move {
            let reply = match answer(&zone, &query) {
                Some(reply) => Some(reply),
                None => forward(&upstreams, &query).await,
            };
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

/// Our answer, or `None` when the question is not ours to answer (forward it).
/// Malformed queries get FORMERR when their id can be read.
pub fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) if query.len() >= 2 => {
            let mut r = Message::new();
            r.set_id(u16::from_be_bytes([query[0], query[1]]))
                .set_message_type(MessageType::Response)
                .set_response_code(ResponseCode::FormErr);
            return r.to_vec().ok();
        }
        Err(_) => return None,
    };
    let q = msg.queries().first()?.clone();
    let name = q.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let suffix = format!(".{}.{DOMAIN}", zone.network);
    let found = if let Some(host) = name.strip_suffix(&suffix) {
        zone.names.get(host)
    } else if !name.contains('.') {
        // A single label we do not know may be a real top-level name: not ours.
        Some(zone.names.get(name.as_str())?)
    } else if name == DOMAIN || name.ends_with(&format!(".{DOMAIN}")) {
        None
    } else {
        return None;
    };
    let mut r = Message::new();
    r.set_id(msg.id())
        .set_message_type(MessageType::Response)
        .set_op_code(msg.op_code())
        .set_recursion_desired(msg.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .add_query(q.clone());
    match found {
        // Other types of a known name: NOERROR with no answer.
        Some(ip) if q.query_type() == RecordType::A => {
            r.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(*ip))));
        }
        Some(_) => {}
        None => {
            r.set_response_code(ResponseCode::NXDomain);
        }
    }
    r.to_vec().ok()
}

/// The host's name servers (loopback ones included: we ask from the host).
fn upstreams() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if out.is_empty() {
        out.push(SocketAddr::from(([127, 0, 0, 1], 53)));
    }
    out
}

async fn forward(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let bind: SocketAddr = if upstream.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
        let Ok(socket) = UdpSocket::bind(bind).await else { continue };
        if socket.send_to(query, upstream).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn ask(zone: &Zone, name: &str) -> Option<Message> {
        let mut m = Message::new();
        m.set_id(7).add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
        answer(zone, &m.to_vec().unwrap()).map(|r| Message::from_vec(&r).unwrap())
    }

    fn zone() -> Zone {
        Zone { network: "prod".into(), names: [("web".to_string(), Ipv4Addr::new(10, 10, 0, 2))].into() }
    }

    #[test]
    fn answers_instance_names() {
        let r = ask(&zone(), "web.prod.internal.").unwrap();
        assert_eq!(r.id(), 7);
        assert_eq!(r.answers().len(), 1);
        assert_eq!(r.answers()[0].data(), &RData::A(A(Ipv4Addr::new(10, 10, 0, 2))));
        let r = ask(&zone(), "WEB.").unwrap();
        assert_eq!(r.answers().len(), 1);
    }

    #[test]
    fn unknown_internal_names_do_not_exist() {
        let r = ask(&zone(), "db.prod.internal.").unwrap();
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        let r = ask(&zone(), "web.dev.internal.").unwrap();
        assert_eq!(r.response_code(), ResponseCode::NXDomain, "another network's names are not visible");
    }

    #[test]
    fn other_names_are_forwarded() {
        assert!(ask(&zone(), "deb.debian.org.").is_none());
        assert!(ask(&zone(), "com.").is_none());
    }
}
