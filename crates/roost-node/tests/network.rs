//! The default network for real: bridges, netns, veths and NAT, each test on a bridge
//! and /24 of its own (10.2xx.<pid>.0/24), so tests and test binaries run in parallel.

mod common;

use std::process::Command;

use common::{Env, TestNet, busybox, exec, mounts_mentioning, path_exists};
use roost_node::network::{self, firewall};
use roost_node::{Driver, InstanceStatus};

fn nft_table(table: &str) -> String {
    let out = Command::new("nft").args(["list", "table", "ip", table]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A firewall of one NAT network in a table of the test's own.
fn nat_spec(net: &TestNet) -> firewall::FirewallSpec {
    firewall::FirewallSpec {
        networks: vec![firewall::NetSpec {
            bridge: net.network.bridge.clone(),
            cidr: net.network.cidr().unwrap(),
            gateway: net.network.gateway,
            nat: true,
            dns: false,
            mark: net.mark(),
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_the_bridge_ping_each_other() {
    let image = busybox().await;
    let net = TestNet::new(201).await;
    let env = Env::new("ping");
    let mut a = env.spec(&image, None);
    let mut b = env.spec(&image, None);
    a.networks = vec![net.attachment()];
    b.networks = vec![net.attachment()];
    // busybox's ping opens a raw socket.
    a.capabilities_add = vec!["NET_RAW".into()];
    b.capabilities_add = vec!["NET_RAW".into()];
    env.run(&a).await;
    env.run(&b).await;
    let (ip_a, ip_b) = (a.networks[0].ip, b.networks[0].ip);
    assert_ne!(ip_a, ip_b);

    let addr = exec(&env.driver, &a.id, &["ip", "-4", "-o", "addr", "show", "eth0"]).await;
    assert!(addr.stdout.contains(&format!("{ip_a}/24")), "{addr:?}");
    let route = exec(&env.driver, &a.id, &["ip", "route"]).await.stdout;
    assert!(route.contains(&format!("default via {}", net.network.gateway)), "{route}");

    let ping = exec(&env.driver, &a.id, &["ping", "-c", "1", "-W", "5", &ip_b.to_string()]).await;
    assert_eq!(ping.code, 0, "a → b: {ping:?}");
    let ping = exec(&env.driver, &b.id, &["ping", "-c", "1", "-W", "5", &ip_a.to_string()]).await;
    assert_eq!(ping.code, 0, "b → a: {ping:?}");
    let ping = exec(&env.driver, &b.id, &["ping", "-c", "1", "-W", "5", &net.network.gateway.to_string()]).await;
    assert_eq!(ping.code, 0, "b → gateway: {ping:?}");

    let hosts = exec(&env.driver, &a.id, &["cat", "/etc/hosts"]).await.stdout;
    assert!(hosts.contains(&format!("{ip_a}\t{}", a.hostname)), "{hosts}");

    let stats = env.driver.stats(&a.id).await.unwrap();
    assert!(stats.net_rx_bytes > 0 && stats.net_tx_bytes > 0, "{stats:?}");

    env.driver.delete(&a.id).await.unwrap();
    env.driver.delete(&b.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_leaves_nothing_behind() {
    let image = busybox().await;
    let net = TestNet::new(202).await;
    let env = Env::new("delete");
    let mut spec = env.spec(&image, None);
    spec.networks = vec![net.attachment()];
    env.run(&spec).await;
    let dir = env.driver.instance_dir(&spec.id);
    let netns = env.driver.netns_path(&spec.id);
    let veth = network::host_ifname(&spec.id);
    let cgroup = env.driver.cgroup(&spec.id).dir("memory").unwrap();
    // Everything is there while it runs.
    assert!(env.config.runc_root.join(&spec.id).exists());
    assert!(!mounts_mentioning(dir.to_str().unwrap()).is_empty());
    assert!(network::link_exists(&veth) && path_exists(&netns) && dir.exists() && cgroup.exists());

    env.driver.delete(&spec.id).await.unwrap();

    let runc = Command::new("runc").arg("--root").arg(&env.config.runc_root).args(["list", "-q"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&runc.stdout).contains(&spec.id), "runc container left");
    assert!(!env.config.runc_root.join(&spec.id).exists(), "runc state left");
    assert_eq!(mounts_mentioning(dir.to_str().unwrap()), Vec::<String>::new(), "mounts left");
    assert_eq!(mounts_mentioning(netns.to_str().unwrap()), Vec::<String>::new(), "netns mount left");
    assert!(!network::link_exists(&veth), "veth {veth} left");
    assert!(!path_exists(&netns), "netns file left");
    assert!(!dir.exists(), "instance directory left");
    assert!(!cgroup.exists(), "cgroup left");
    assert_eq!(env.driver.inspect(&spec.id).await.unwrap().status, InstanceStatus::Missing);
    // Again, and for an id never seen: nothing to do, no error.
    env.driver.delete(&spec.id).await.unwrap();
    env.driver.delete("i-neverexisted").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cleans_up_a_half_prepared_instance() {
    let image = busybox().await;
    let net = TestNet::new(203).await;
    let env = Env::new("halfway");
    let mut spec = env.spec(&image, None);
    spec.networks = vec![net.attachment()];
    spec.capabilities_add = vec!["NET_RAW".into()];
    // As if the server died in prepare after the network step: netns and veth exist.
    env.driver.prepare(&spec).await.unwrap();
    let netns = env.driver.netns_path(&spec.id);
    std::fs::remove_file(env.driver.instance_dir(&spec.id).join("config.json")).unwrap();
    // prepare again converges (and start after it works).
    env.driver.prepare(&spec).await.unwrap();
    // Half a network: the address gone, then the veth gone; prepare repairs both.
    let ns_name = netns.file_name().unwrap().to_str().unwrap().to_string();
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    ip(&["-n", &ns_name, "addr", "flush", "dev", "eth0"]);
    env.driver.prepare(&spec).await.unwrap();
    ip(&["link", "del", &network::host_ifname(&spec.id)]);
    env.driver.prepare(&spec).await.unwrap();
    env.driver.start(&spec.id).await.unwrap();
    let ping = exec(&env.driver, &spec.id, &["ping", "-c", "1", "-W", "5", &net.network.gateway.to_string()]).await;
    assert_eq!(ping.code, 0, "{ping:?}");
    env.driver.kill(&spec.id).await.unwrap();
    env.driver.delete(&spec.id).await.unwrap();
    assert!(!path_exists(&netns) && !network::link_exists(&network::host_ifname(&spec.id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_changes_never_touch_other_rules() {
    common::require_prerequisites();
    // Someone else's table, which Roost must leave alone.
    let foreign = format!("roost-test-foreign-{}", std::process::id());
    let status = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let rules = format!("table ip {foreign} {{\n chain c {{\n type filter hook forward priority 0; policy accept;\n counter accept\n }}\n}}\n");
            child.stdin.take().unwrap().write_all(rules.as_bytes())?;
            child.wait()
        })
        .unwrap();
    assert!(status.success());

    let net = TestNet::new(204).await;
    let table = format!("rtest{}", std::process::id() % 100000);
    // Applied twice (idempotent), then removed twice.
    for _ in 0..2 {
        firewall::apply("nft", &firewall::compile(&table, &nat_spec(&net)).unwrap()).unwrap();
    }
    let listed = nft_table(&table);
    assert!(listed.contains(&format!("ip saddr {}", net.network.cidr().unwrap())), "{listed}");
    firewall::remove("nft", &table).unwrap();
    firewall::remove("nft", &table).unwrap();
    assert_eq!(nft_table(&table), "");
    net.network.remove().await.unwrap();
    net.network.remove().await.unwrap();
    assert!(!network::link_exists(&net.network.bridge));

    let out = Command::new("nft").args(["list", "table", "ip", &foreign]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("counter") && listed.contains("accept"), "{listed}");
    Command::new("nft").args(["delete", "table", "ip", &foreign]).status().unwrap();
    // The kernel settings the firewall relies on.
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim(), "1");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").unwrap().trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_goes_out_through_nat() {
    let image = busybox().await;
    let net = TestNet::new(206).await;
    let table = format!("rtegress{}", std::process::id() % 100000);
    firewall::apply("nft", &firewall::compile(&table, &nat_spec(&net)).unwrap()).unwrap();
    let env = Env::new("egress");
    let mut spec = env.spec(&image, None);
    spec.networks = vec![net.attachment()];
    env.run(&spec).await;
    // The host's default gateway: outside the bridge, so the packet is forwarded out of
    // the host's uplink and masqueraded, whether or not anything answers.
    let route = Command::new("ip").args(["-4", "route", "show", "default"]).output().unwrap();
    let route = String::from_utf8_lossy(&route.stdout).into_owned();
    let outside = route.split_whitespace().skip_while(|w| *w != "via").nth(1).expect("the host has a default route");
    // A TCP connection attempt: a new source port each time, so a new conntrack entry
    // that goes through NAT (an ICMP echo could match an entry of an earlier run).
    exec(&env.driver, &spec.id, &["sh", "-c", &format!("nc -w 2 {outside} 80 </dev/null; true")]).await;
    let out = Command::new("nft").args(["list", "chain", "ip", &table, "postrouting"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    firewall::remove("nft", &table).unwrap();
    let packets: u64 = listed
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {listed}"));
    assert!(packets > 0, "nothing was masqueraded: {listed}");
    env.driver.delete(&spec.id).await.unwrap();
}

/// Runs `args` inside the network namespace at `netns` with the host's tools: what a
/// tenant with root in its namespace (a VM's guest) can do to its own stack.
fn in_netns(netns: &std::path::Path, args: &[&str]) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(args)
        .output()
        .expect("nsenter (Debian package util-linux)");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Sends one raw Ethernet frame out of `ifname` inside the namespace at `netns`.
fn send_frame(netns: &std::path::Path, ifname: &str, frame: Vec<u8>) {
    let ifname = std::ffi::CString::new(ifname).unwrap();
    network::netns::run_in(netns, move || {
        // SAFETY: plain socket calls on a socket this closure owns; the address struct
        // is zeroed and then filled in.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = libc::if_nametoindex(ifname.as_ptr()) as i32;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if sent < 0 { Err(err) } else { Ok(()) }
        }
    })
    .unwrap();
}

/// An ARP request for `target` from `sender_ip` claiming `sender_mac`, in a frame from
/// `frame_mac`.
fn arp_request(frame_mac: [u8; 6], sender_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&frame_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// What the namespace's neighbour table says about `ip` (empty: nothing).
fn neighbour(netns: &std::path::Path, ip: Ipv4Addr) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "neigh", "show", &ip.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

use std::net::Ipv4Addr;

/// Anti-spoofing (issue 18): an instance port sends IPv4 and ARP only, from the port's
/// own MAC, and ARP only for the port's own address and MAC; IPv6 goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_ports_send_only_their_own_mac_ipv4_and_arp() {
    let image = busybox().await;
    let net = TestNet::new(211).await;
    let env = Env::new("spoof");
    let table = format!("rtspoof{}", std::process::id() % 100000);
    let mut a = env.spec(&image, None);
    let mut b = env.spec(&image, None);
    a.networks = vec![net.attachment()];
    b.networks = vec![net.attachment()];
    env.run(&a).await;
    env.run(&b).await;
    let (na, nb) = (&a.networks[0], &b.networks[0]);
    let everything = firewall::RuleSpec {
        ingress: true,
        proto: firewall::Proto::All,
        ports: vec![],
        remote: firewall::Remote::Cidr("0.0.0.0/0".parse().unwrap()),
    };
    let mut spec = nat_spec(&net);
    spec.groups.insert("sg-all".into(), vec![everything.clone(), firewall::RuleSpec { ingress: false, ..everything }]);
    for (id, nic) in [(&a.id, na), (&b.id, nb)] {
        spec.nics.push(firewall::NicSpec {
            host_if: network::nic_ifname(id, 0),
            bridge: nic.bridge.clone(),
            ip: nic.ip,
            mac: nic.mac,
            groups: vec!["sg-all".into()],
        });
    }
    firewall::apply("nft", &firewall::compile(&table, &spec).unwrap()).unwrap();
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = firewall::remove("nft", &self.0);
        }
    }
    let _cleanup = Cleanup(table.clone());
    let (ns_a, ns_b) = (env.driver.netns_path(&a.id), env.driver.netns_path(&b.id));
    let ping = |from: &str, to: String| {
        let from = from.to_string();
        let driver = env.driver.clone();
        async move { exec(&driver, &from, &["ping", "-c", "1", "-W", "2", &to]).await.code == 0 }
    };
    assert!(ping(&b.id, na.ip.to_string()).await, "allowed traffic passes");

    // ARP claiming another MAC for a's own address, in a frame from a's MAC.
    in_netns(&ns_b, &["ip", "neigh", "flush", "all"]);
    let fake = [0x02, 0x00, 0x00, 0xde, 0xad, 0x18];
    send_frame(&ns_a, "eth0", arp_request(na.mac.0, fake, na.ip, nb.ip));
    // A frame from another MAC altogether.
    send_frame(&ns_a, "eth0", arp_request(fake, fake, na.ip, nb.ip));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // And ARP from a's MAC claiming an address that is not a's.
    let borrowed = Ipv4Addr::from(u32::from(nb.ip) + 50);
    send_frame(&ns_a, "eth0", arp_request(na.mac.0, na.mac.0, borrowed, nb.ip));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let seen = neighbour(&ns_b, na.ip);
    assert!(!seen.contains("02:00:00:de:ad:18"), "b believes a spoofed ARP: {seen}");
    let seen = neighbour(&ns_b, borrowed);
    assert!(seen.is_empty(), "b believes ARP for an address a does not have: {seen}");

    // a takes another MAC: nothing it sends gets through.
    in_netns(&ns_a, &["ip", "link", "set", "eth0", "address", "02:00:00:de:ad:18"]);
    in_netns(&ns_a, &["ip", "neigh", "flush", "all"]);
    in_netns(&ns_b, &["ip", "neigh", "flush", "all"]);
    assert!(!ping(&a.id, nb.ip.to_string()).await, "a frame from another MAC got through");
    in_netns(&ns_a, &["ip", "link", "set", "eth0", "address", &na.mac.to_string()]);
    assert!(ping(&a.id, nb.ip.to_string()).await, "its own MAC again");

    // IPv6 between the two.
    let prefix = format!("fd18:{:x}:211", std::process::id() % 0xffff);
    for (ns, host) in [(&ns_a, "a"), (&ns_b, "b")] {
        in_netns(ns, &["sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6"]);
        in_netns(ns, &["ip", "-6", "addr", "add", &format!("{prefix}::{host}/64"), "dev", "eth0", "nodad"]);
    }
    let v6 = exec(&env.driver, &a.id, &["ping6", "-c", "1", "-W", "2", &format!("{prefix}::b")]).await;
    assert_ne!(v6.code, 0, "IPv6 got through: {v6:?}");

    env.driver.delete(&a.id).await.unwrap();
    env.driver.delete(&b.id).await.unwrap();
}

/// A client's namespace plugged into `net` (not an instance: just a network stack).
struct Client {
    id: String,
    netns: std::path::PathBuf,
}

impl Client {
    async fn new(net: &TestNet) -> Client {
        let id = common::unique_id();
        let netns = std::path::PathBuf::from("/run/netns").join(format!("rtc-{id}"));
        network::netns::create(&netns).unwrap();
        network::attach(&id, &netns, &net.attachment()).await.unwrap();
        Client { id, netns }
    }

    /// Sends `count` A queries for `name` to `server` as fast as it can and counts the
    /// answers (until all came, or none for `quiet`).
    fn ask(&self, server: Ipv4Addr, name: &str, count: u16, quiet: std::time::Duration) -> usize {
        use hickory_proto::op::{Message, Query};
        use hickory_proto::rr::{Name, RecordType};
        // Made in the namespace; a socket stays in the namespace it was made in.
        let socket = network::netns::run_in(&self.netns, || std::net::UdpSocket::bind("0.0.0.0:0")).unwrap();
        socket.set_read_timeout(Some(quiet)).unwrap();
        let receiver = socket.try_clone().unwrap();
        let counter = std::thread::spawn(move || {
            let mut answers = std::collections::BTreeSet::new();
            let mut buf = [0u8; 1500];
            while answers.len() < count as usize
                && let Ok(n) = receiver.recv(&mut buf)
            {
                if let Ok(m) = Message::from_vec(&buf[..n]) {
                    answers.insert(m.id());
                }
            }
            answers.len()
        });
        for id in 0..count {
            let mut m = Message::new();
            m.set_id(id).set_recursion_desired(true);
            m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
            socket.send_to(&m.to_vec().unwrap(), (server, 53)).unwrap();
        }
        counter.join().unwrap()
    }

    /// The A record `server` gives for `name`.
    fn resolve(&self, server: Ipv4Addr, name: &str) -> Option<Ipv4Addr> {
        use hickory_proto::op::{Message, Query};
        use hickory_proto::rr::{Name, RData, RecordType};
        let socket = network::netns::run_in(&self.netns, || std::net::UdpSocket::bind("0.0.0.0:0")).unwrap();
        socket.set_read_timeout(Some(std::time::Duration::from_secs(3))).unwrap();
        let mut m = Message::new();
        m.set_id(1).add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        socket.send_to(&m.to_vec().unwrap(), (server, 53)).unwrap();
        let mut buf = [0u8; 1500];
        let n = socket.recv(&mut buf).ok()?;
        match Message::from_vec(&buf[..n]).ok()?.answers().first()?.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let (id, netns) = (self.id.clone(), self.netns.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = runtime.block_on(network::detach(&id));
            let _ = network::netns::remove(&netns);
        })
        .join()
        .unwrap();
    }
}

/// Instance DNS (issue 18) answers each client at a bounded rate: a flood from one
/// instance is cut short, and another instance is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_limits_each_client() {
    let net = TestNet::new(212).await;
    let gateway = net.network.gateway;
    let dns = network::dns::DnsServer::new();
    let names = [("web".to_string(), Ipv4Addr::new(10, 1, 2, 3))].into();
    dns.set_zones([("net-t".to_string(), dns_of(&net, names))].into()).await;
    let (flooder, other) = (Client::new(&net).await, Client::new(&net).await);
    // The burst, and what the rate adds while the flood is sent (well under a second).
    let answered = flooder.ask(gateway, "web.t.internal.", 1000, std::time::Duration::from_secs(1));
    let most = (network::dns::CLIENT_BURST + network::dns::CLIENT_RATE) as usize;
    assert!(answered >= network::dns::CLIENT_BURST as usize && answered <= most, "{answered} of 1000 answered");
    assert_eq!(other.ask(gateway, "web.t.internal.", 1, std::time::Duration::from_secs(3)), 1, "another client");
}

/// Questions instance DNS passes on (issue 18) are bounded: a burst of them reaches
/// the host's name servers only as far as the resolver's concurrency allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_bounds_the_questions_it_passes_on() {
    let net = TestNet::new(213).await;
    let gateway = net.network.gateway;
    // A name server that takes questions and never answers. It counts until nothing
    // came for longer than the resolver waits for an answer.
    let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    upstream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let dns = network::dns::DnsServer::with_upstreams(vec![upstream.local_addr().unwrap()]);
    dns.set_zones([("net-t".to_string(), dns_of(&net, Default::default()))].into()).await;
    let client = Client::new(&net).await;
    let asked = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut n = 0;
        while upstream.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    });
    // Every question is answered: at once with SERVFAIL beyond the network's share,
    // the others with SERVFAIL when the name server does not answer.
    assert_eq!(client.ask(gateway, "example.com.", 150, std::time::Duration::from_secs(10)), 150);
    let asked = asked.join().unwrap();
    assert_eq!(asked, network::dns::FORWARDS_PER_NETWORK, "questions passed on at once");
}

/// Two networks on the same range (two projects) each get their own names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_each_network_on_a_shared_range_with_its_names() {
    let (a, b) = (TestNet::new(214).await, TestNet::new(214).await);
    assert_eq!(a.network.gateway, b.network.gateway);
    let dns = network::dns::DnsServer::new();
    let name = |ip: [u8; 4]| [("web".to_string(), Ipv4Addr::from(ip))].into();
    dns.set_zones(
        [
            ("net-a".to_string(), dns_of(&a, name([10, 0, 0, 1]))),
            ("net-b".to_string(), dns_of(&b, name([10, 0, 0, 2]))),
        ]
        .into(),
    )
    .await;
    assert_eq!(dns.serving().len(), 2);
    let (ca, cb) = (Client::new(&a).await, Client::new(&b).await);
    assert_eq!(ca.resolve(a.network.gateway, "web.t.internal."), Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(cb.resolve(b.network.gateway, "web.t.internal."), Some(Ipv4Addr::new(10, 0, 0, 2)));
}

fn dns_of(net: &TestNet, names: std::collections::HashMap<String, Ipv4Addr>) -> network::dns::NetworkDns {
    network::dns::NetworkDns {
        bridge: net.network.bridge.clone(),
        gateway: net.network.gateway,
        zone: network::dns::Zone { network: "t".into(), names },
    }
}
