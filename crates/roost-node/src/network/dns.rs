//! Instance DNS: a small resolver on the gateway address of every network with DNS on.
//! It answers `<name>.<network>.internal` and `<name>` for the network's instances and
//! passes every other question to the host's name servers (from the host, so a local
//! resolver on 127.0.0.53 works too). Zones are replaced whole by the control plane
//! whenever instances or networks change; no process, no config file.
//!
//! One socket per network, bound to the gateway address *and* the network's bridge:
//! two projects may use the same range, so the same gateway address, and each must get
//! its own names (the bridge a question arrived on says which network asked, and the
//! answer leaves through that bridge).
//!
//! Bounded: each client address gets [`CLIENT_RATE`] questions a second (a burst of
//! [`CLIENT_BURST`]), and at most [`FORWARDS_PER_NETWORK`] questions of a network
//! ([`FORWARDS_TOTAL`] in all) wait for an upstream at once; beyond that a question gets
//! SERVFAIL. A client cannot forge its address: the bridge table pins each port's.
//!
//! UDP only: answers for instance names are a few bytes, and forwarded answers that do
//! not fit come back truncated, so the client retries upstream over TCP itself.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata::A};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

/// The names of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    /// The network's name: names are `<instance>.<network>.internal`.
    pub network: String,
    pub names: HashMap<String, Ipv4Addr>,
}

/// Where a network's resolver listens, and what it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDns {
    pub bridge: String,
    pub gateway: Ipv4Addr,
    pub zone: Zone,
}

pub const DOMAIN: &str = "internal";
const TTL: u32 = 5;
/// Questions a second one client address may ask, on average.
pub const CLIENT_RATE: u32 = 100;
/// Questions one client address may ask at once before the rate applies.
pub const CLIENT_BURST: u32 = 200;
/// Questions of one network waiting for an upstream answer at once.
pub const FORWARDS_PER_NETWORK: usize = 32;
/// Questions of all networks waiting for an upstream answer at once (each holds a
/// socket: a fresh source port per question is what keeps forged answers out).
pub const FORWARDS_TOTAL: usize = 256;
/// How long an upstream has to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

struct Listener {
    bridge: String,
    gateway: Ipv4Addr,
    task: tokio::task::JoinHandle<()>,
}

/// Resolvers, one per network (keyed by the network's id).
pub struct DnsServer {
    /// The host's name servers; `None`: read from /etc/resolv.conf when a listener starts.
    upstreams: Option<Vec<SocketAddr>>,
    zones: Arc<RwLock<HashMap<String, Arc<Zone>>>>,
    listeners: std::sync::Mutex<HashMap<String, Listener>>,
    forwards: Arc<Semaphore>,
}

impl Default for DnsServer {
    fn default() -> DnsServer {
        DnsServer {
            upstreams: None,
            zones: Arc::default(),
            listeners: std::sync::Mutex::default(),
            forwards: Arc::new(Semaphore::new(FORWARDS_TOTAL)),
        }
    }
}

impl DnsServer {
    pub fn new() -> DnsServer {
        DnsServer::default()
    }

    /// Passes questions to these name servers instead of the host's.
    pub fn with_upstreams(upstreams: Vec<SocketAddr>) -> DnsServer {
        let mut server = DnsServer::default();
        server.upstreams = Some(upstreams);
        server
    }

    /// Serves exactly these networks (keyed by network id): starts listeners for new
    /// ones, stops those of removed ones. A gateway whose address is not on its bridge
    /// yet is retried on the next call.
    pub async fn set_zones(&self, networks: HashMap<String, NetworkDns>) {
        *self.zones.write().expect("zones") =
            networks.iter().map(|(id, n)| (id.clone(), Arc::new(n.zone.clone()))).collect();
        let mut listeners = self.listeners.lock().expect("listeners");
        listeners.retain(|id, l| {
            let keep = networks.get(id).is_some_and(|n| n.bridge == l.bridge && n.gateway == l.gateway)
                && !l.task.is_finished();
            if !keep {
                l.task.abort();
            }
            keep
        });
        for (id, net) in &networks {
            if listeners.contains_key(id) {
                continue;
            }
            match bind(net.gateway, &net.bridge) {
                Ok(socket) => {
                    let upstreams = self.upstreams.clone().unwrap_or_else(upstreams);
                    let served = Served {
                        network: id.clone(),
                        zones: self.zones.clone(),
                        upstreams: Arc::new(upstreams),
                        forwards: self.forwards.clone(),
                        network_forwards: Arc::new(Semaphore::new(FORWARDS_PER_NETWORK)),
                    };
                    let task = tokio::spawn(serve(socket, served));
                    listeners.insert(id.clone(), Listener { bridge: net.bridge.clone(), gateway: net.gateway, task });
                }
                Err(e) => {
                    tracing::warn!(network = %id, gateway = %net.gateway, error = %e, "instance DNS: cannot listen yet")
                }
            }
        }
    }

    /// The gateways served now (for tests and status).
    pub fn serving(&self) -> Vec<Ipv4Addr> {
        self.listeners.lock().expect("listeners").values().map(|l| l.gateway).collect()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for l in self.listeners.lock().expect("listeners").values() {
            l.task.abort();
        }
    }
}

/// A UDP socket on `gateway`:53 that takes only what arrives on `bridge`.
fn bind(gateway: Ipv4Addr, bridge: &str) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socket, sockopt};
    let fd = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(bridge))?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 53u16.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(gateway).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a complete sockaddr_in and the length is its size.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error());
    }
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// What one network's listener shares with its forwarding tasks.
struct Served {
    network: String,
    zones: Arc<RwLock<HashMap<String, Arc<Zone>>>>,
    upstreams: Arc<Vec<SocketAddr>>,
    forwards: Arc<Semaphore>,
    network_forwards: Arc<Semaphore>,
}

async fn serve(socket: UdpSocket, served: Served) {
    let socket = Arc::new(socket);
    let mut limits = ClientLimits::default();
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // Nothing a client sends makes recv fail for good; do not spin if it does.
                tracing::debug!(network = %served.network, error = %e, "instance DNS: receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let SocketAddr::V4(peer4) = peer else { continue };
        // Shorter than a DNS header: nothing to answer, nothing to pass on.
        if n < 12 || !limits.allow(*peer4.ip(), Instant::now()) {
            continue;
        }
        let query = &buf[..n];
        let zone = served.zones.read().expect("zones").get(&served.network).cloned().unwrap_or_default();
        if let Some(reply) = answer(&zone, query) {
            let _ = socket.send_to(&reply, peer).await;
            continue;
        }
        // Passed on: within the network's and the server's share, or SERVFAIL at once.
        let permits = served
            .network_forwards
            .clone()
            .try_acquire_owned()
            .and_then(|a| served.forwards.clone().try_acquire_owned().map(|b| (a, b)));
        let Ok(permits) = permits else {
            if let Some(reply) = failure(query, ResponseCode::ServFail) {
                let _ = socket.send_to(&reply, peer).await;
            }
            continue;
        };
        let (socket, upstreams, query) = (socket.clone(), served.upstreams.clone(), query.to_vec());
        tokio::spawn(async move {
            let _permits = permits;
            let reply = match forward(&upstreams, &query).await {
                Some(reply) => Some(reply),
                None => failure(&query, ResponseCode::ServFail),
            };
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

/// A token bucket per client address: [`CLIENT_RATE`] a second, [`CLIENT_BURST`] at once.
#[derive(Default)]
struct ClientLimits {
    buckets: HashMap<Ipv4Addr, (f64, Instant)>,
}

impl ClientLimits {
    fn allow(&mut self, client: Ipv4Addr, now: Instant) -> bool {
        // Full buckets carry no state: forget them now and then so the map stays the
        // size of the clients asking right now.
        if self.buckets.len() > 4096 {
            let full = Duration::from_secs_f64(CLIENT_BURST as f64 / CLIENT_RATE as f64);
            self.buckets.retain(|_, (_, at)| now.duration_since(*at) < full);
        }
        let (tokens, at) = self.buckets.entry(client).or_insert((CLIENT_BURST as f64, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * CLIENT_RATE as f64).min(CLIENT_BURST as f64);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An empty answer with `code` to a query whose id can be read.
fn failure(query: &[u8], code: ResponseCode) -> Option<Vec<u8>> {
    if query.len() < 2 {
        return None;
    }
    let mut r = Message::new();
    r.set_id(u16::from_be_bytes([query[0], query[1]])).set_message_type(MessageType::Response).set_response_code(code);
    if let Ok(q) = Message::from_vec(query) {
        r.set_op_code(q.op_code()).set_recursion_desired(q.recursion_desired()).add_queries(q.queries().to_vec());
    }
    r.to_vec().ok()
}

/// Our answer, or `None` when the question is not ours to answer (forward it).
/// Malformed queries get FORMERR when their id can be read.
pub fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => return failure(query, ResponseCode::FormErr),
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

/// Asks the upstreams in turn, each from a socket of its own (a fresh random source
/// port per question), and returns the first answer that matches the question's id.
async fn forward(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for upstream in upstreams {
        let bind: SocketAddr = if upstream.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
        let Ok(socket) = UdpSocket::bind(bind).await else { continue };
        if socket.connect(upstream).await.is_err() || socket.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            if buf.get(..2) == Some(id) {
                buf.truncate(n);
                return Some(buf);
            }
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

    #[test]
    fn each_client_gets_its_burst_then_its_rate() {
        let mut limits = ClientLimits::default();
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3));
        let start = Instant::now();
        let allowed = (0..1000).filter(|_| limits.allow(a, start)).count();
        assert_eq!(allowed, CLIENT_BURST as usize);
        assert!(limits.allow(b, start), "another client has its own bucket");
        // A tenth of a second later: a tenth of the rate again.
        let later = start + Duration::from_millis(100);
        let allowed = (0..1000).filter(|_| limits.allow(a, later)).count();
        assert_eq!(allowed, CLIENT_RATE as usize / 10);
    }

    #[test]
    fn failures_keep_the_question_and_id() {
        let mut m = Message::new();
        m.set_id(42).add_query(Query::query(Name::from_str("example.com.").unwrap(), RecordType::A));
        let r = Message::from_vec(&failure(&m.to_vec().unwrap(), ResponseCode::ServFail).unwrap()).unwrap();
        assert_eq!((r.id(), r.response_code(), r.queries().len()), (42, ResponseCode::ServFail, 1));
        assert!(failure(&[1], ResponseCode::FormErr).is_none());
    }
}
