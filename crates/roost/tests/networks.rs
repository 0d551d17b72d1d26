//! Networks, security groups, port forwards and instance DNS with real packets: a real
//! server as root, real busybox containers sending real traffic (`wget`, `ping`,
//! `nslookup`) through real bridges and nftables.

mod common;

use std::time::Duration;

use common::{ServerOptions, TestServer, stderr, stdout};
use roost_api::instances::{CreateInstanceRequest, ExecStart, Instance, InstanceStatus};
use roost_api::networks::{
    CreateNetworkRequest, CreatePortForwardRequest, CreateRuleRequest, CreateSecurityGroupRequest, Direction,
    NicRequest, Protocol,
};
use roost_api::projects::CreateProjectRequest;
use roost_client::{Client, ClientError};

fn status(err: &ClientError) -> u16 {
    err.status().map(|s| s.as_u16()).unwrap_or(0)
}

/// A busybox instance serving `hello` over HTTP on ports 80 and 22 (so a rule can
/// allow one and not the other).
fn server_req(name: &str, project: Option<&str>, network: &str, groups: &[&str]) -> CreateInstanceRequest {
    CreateInstanceRequest {
        name: name.into(),
        image: "busybox".into(),
        project: project.map(str::to_string),
        memory_bytes: Some(64 << 20),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p /www && echo hello > /www/index.html && httpd -p 80 -h /www && httpd -p 22 -h /www && \
             exec sleep 100000"
                .into(),
        ]),
        networks: vec![NicRequest { network: network.into(), ip: None }],
        security_groups: groups.iter().map(|g| g.to_string()).collect(),
        // busybox's ping opens a raw socket.
        capabilities_add: vec!["NET_RAW".into()],
        ..Default::default()
    }
}

fn client_req(name: &str, project: Option<&str>, network: &str, groups: &[&str]) -> CreateInstanceRequest {
    CreateInstanceRequest {
        name: name.into(),
        image: "busybox".into(),
        project: project.map(str::to_string),
        memory_bytes: Some(64 << 20),
        networks: vec![NicRequest { network: network.into(), ip: None }],
        security_groups: groups.iter().map(|g| g.to_string()).collect(),
        // busybox's ping opens a raw socket.
        capabilities_add: vec!["NET_RAW".into()],
        ..Default::default()
    }
}

async fn running(client: &Client, req: CreateInstanceRequest) -> Instance {
    let created = client.create_instance(&req).await.unwrap_or_else(|e| panic!("create {}: {e}", req.name));
    let i = client.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
    assert_eq!(i.status, InstanceStatus::Running, "{i:?}");
    i
}

async fn sh(client: &Client, instance: &str, script: &str) -> (i32, String) {
    let start = ExecStart { cmd: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() };
    let out = client.exec(instance, &start).await.unwrap().run(None).await.unwrap();
    (out.code, format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Whether `from` gets `hello` from `url` within 3 s.
async fn fetches(client: &Client, from: &str, url: &str) -> bool {
    let (code, out) = sh(client, from, &format!("timeout 3 wget -q -O - {url}")).await;
    code == 0 && out.contains("hello")
}

fn ip_of(i: &Instance) -> String {
    i.ip.clone().expect("an address")
}

#[tokio::test]
async fn isolation_peering_security_groups_ports_and_dns() {
    let server = TestServer::start_with(ServerOptions::compute(21));
    let admin = server.admin().await;

    // Two networks of the default project, one with DNS.
    let prod = admin
        .create_network(&CreateNetworkRequest {
            name: "prod".into(),
            cidr: Some("10.121.10.0/24".into()),
            dns: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((prod.gateway.as_str(), prod.nat, prod.dns), ("10.121.10.1", true, true));
    admin
        .create_network(&CreateNetworkRequest {
            name: "dev".into(),
            cidr: Some("10.121.11.0/24".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Overlapping ranges within a project, bad CIDRs and taken names are refused.
    let overlap =
        CreateNetworkRequest { name: "x".into(), cidr: Some("10.121.10.128/25".into()), ..Default::default() };
    assert_eq!(status(&admin.create_network(&overlap).await.unwrap_err()), 409);
    let bad = CreateNetworkRequest { name: "y".into(), cidr: Some("10.121.12.1/24".into()), ..Default::default() };
    let err = admin.create_network(&bad).await.unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(err.to_string().contains("10.121.12.0/24"), "{err}");

    // A group allowing HTTP from anywhere, and one for admins.
    let web = CreateSecurityGroupRequest { name: "web".into(), ..Default::default() };
    admin.create_security_group(&web).await.unwrap();
    admin
        .create_security_group(&CreateSecurityGroupRequest { name: "admins".into(), ..Default::default() })
        .await
        .unwrap();
    let out = server.cli(
        &["sg", "rule", "add", "web", "--ingress", "--proto", "tcp", "--port", "80,443", "--from", "0.0.0.0/0"],
        None,
        &[("ROOST_TOKEN", &admin_token(&server, &admin).await)],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let srv = running(&admin, server_req("srv", None, "prod", &["web"])).await;
    let peer = running(&admin, client_req("peer", None, "prod", &[])).await;
    running(&admin, client_req("far", None, "dev", &[])).await;
    assert_eq!(srv.security_groups, vec!["web".to_string()]);
    assert_eq!(peer.security_groups, vec!["default".to_string()], "the default group by default");
    assert!(ip_of(&srv).starts_with("10.121.10."), "{srv:?}");
    assert_eq!(srv.nics[0].network, "prod");
    let srv_ip = ip_of(&srv);

    // Same network: 80 is allowed by `web`, 22 is not.
    assert!(fetches(&admin, "peer", &format!("http://{srv_ip}:80/")).await, "80 allowed");
    assert!(!fetches(&admin, "peer", &format!("http://{srv_ip}:22/")).await, "22 blocked");
    // Replies pass (stateful) and egress is open: srv reaches peer's own traffic back.
    let (code, _) = sh(&admin, "srv", &format!("ping -c 1 -W 2 {}", ip_of(&peer))).await;
    assert_ne!(code, 0, "peer's default group takes ingress from its own members only");

    // --from-sg: 22 from members of `admins` only; membership changes apply at once.
    let rule = CreateRuleRequest {
        direction: Direction::Ingress,
        protocol: Protocol::Tcp,
        ports: Some("22".into()),
        cidr: None,
        security_group: Some("admins".into()),
        description: None,
    };
    admin.add_security_group_rule("web", None, &rule).await.unwrap();
    assert!(!fetches(&admin, "peer", &format!("http://{srv_ip}:22/")).await, "not a member yet");
    admin.set_security_groups("peer", None, &["default".into(), "admins".into()]).await.unwrap();
    assert!(fetches(&admin, "peer", &format!("http://{srv_ip}:22/")).await, "a member now");
    // ICMP.
    let (code, _) = sh(&admin, "peer", &format!("ping -c 1 -W 2 {srv_ip}")).await;
    assert_ne!(code, 0, "no icmp rule yet");
    let icmp = CreateRuleRequest { protocol: Protocol::Icmp, ports: None, security_group: None, ..rule.clone() };
    admin.add_security_group_rule("web", None, &icmp).await.unwrap();
    let (code, out) = sh(&admin, "peer", &format!("ping -c 1 -W 2 {srv_ip}")).await;
    assert_eq!(code, 0, "{out}");

    // Another network: unreachable until peered, and again after unpeering.
    let url = format!("http://{srv_ip}:80/");
    assert!(!fetches(&admin, "far", &url).await, "networks are isolated");
    admin.peer_networks("prod", "dev", None).await.unwrap();
    assert!(fetches(&admin, "far", &url).await, "peered networks reach each other");
    assert_eq!(admin.get_network("dev", None).await.unwrap().peers, vec!["prod".to_string()]);
    admin.unpeer_networks("prod", "dev", None).await.unwrap();
    assert!(!fetches(&admin, "far", &url).await, "unpeered again");

    // Another project with the very same range: still isolated.
    admin.create_project(&CreateProjectRequest { name: "other".into(), ..Default::default() }).await.unwrap();
    // A new project has its default network and group from the start.
    let nets = admin.list_networks(Some("other")).await.unwrap();
    assert_eq!(nets.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), vec!["default"]);
    assert!(nets[0].default && nets[0].nat);
    let groups = admin.list_security_groups(Some("other")).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].rules.len(), 2, "all egress, ingress from members: {:?}", groups[0].rules);
    admin
        .create_network(&CreateNetworkRequest {
            name: "prod".into(),
            cidr: Some("10.121.10.0/24".into()),
            project: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut intruder = client_req("intruder", Some("other"), "prod", &[]);
    intruder.networks[0].ip = Some("10.121.10.50".into());
    running(&admin, intruder).await;
    assert!(!fetches(&admin, "intruder", &url).await, "other projects cannot reach in, even with the same CIDR");

    // DNS on prod: names and FQDNs; nothing of other networks.
    let (code, out) = sh(&admin, "peer", "nslookup srv").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&srv_ip), "{out}");
    assert!(fetches(&admin, "peer", "http://srv.prod.internal/").await, "FQDN");
    let (code, _) = sh(&admin, "peer", "nslookup far.prod.internal").await;
    assert_ne!(code, 0, "far is not on prod");

    // A port forward, used by an instance through the host (hairpin; from outside the
    // host in port_forwards_answer_outside_clients_only), and conflicts.
    let out = server.cli(
        &["port", "add", "srv", "18121:80/tcp"],
        None,
        &[("ROOST_TOKEN", &admin_token(&server, &admin).await)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fetches(&admin, "peer", "http://10.121.10.1:18121/").await, "hairpin");
    let dup = CreatePortForwardRequest { host_port: 18121, instance_port: 22, protocol: None };
    let err = admin.add_port_forward("peer", None, &dup).await.unwrap_err();
    assert_eq!(status(&err), 409);
    assert!(err.to_string().contains("18121"), "{err}");
    let listed = admin.list_port_forwards(None, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].target_ip.as_deref(), Some(srv_ip.as_str()));
    admin.delete_port_forward("srv", "18121/tcp", None).await.unwrap();
    assert!(!fetches(&admin, "peer", "http://10.121.10.1:18121/").await, "the forward is gone");

    // A network with instances on it cannot be removed; the default one never.
    assert_eq!(status(&admin.delete_network("prod", None).await.unwrap_err()), 409);
    assert_eq!(status(&admin.delete_network("default", None).await.unwrap_err()), 409);

    // Hot attach: peer joins dev while running and reaches far directly.
    let i = admin
        .attach_network("peer", None, &NicRequest { network: "dev".into(), ip: Some("10.121.11.77".into()) })
        .await
        .unwrap();
    assert_eq!(i.nics.len(), 2);
    assert_eq!(i.nics[1].ip, "10.121.11.77");
    let (code, out) = sh(&admin, "peer", "ip -4 -o addr show eth1").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("10.121.11.77/24"), "{out}");
    // The same address twice is refused.
    let taken = NicRequest { network: "dev".into(), ip: Some("10.121.11.77".into()) };
    assert_eq!(status(&admin.attach_network("srv", None, &taken).await.unwrap_err()), 409);
    admin.detach_network("peer", "dev", None).await.unwrap();
    let (code, _) = sh(&admin, "peer", "ip -4 -o addr show eth1").await;
    assert_ne!(code, 0, "eth1 is gone");

    // The CLI's view.
    let out = server.cli(&["network", "ls"], None, &[("ROOST_TOKEN", &admin_token(&server, &admin).await)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("prod") && text.contains("10.121.10.0/24") && text.contains("default"), "{text}");
}

#[tokio::test]
async fn host_state_is_reconciled_from_the_store() {
    let mut server = TestServer::start_with(ServerOptions::compute(22));
    let admin = server.admin().await;
    admin
        .create_network(&CreateNetworkRequest {
            name: "net".into(),
            cidr: Some("10.122.5.0/24".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let a = running(&admin, client_req("a", None, "net", &[])).await;
    let b = running(&admin, client_req("b", None, "net", &[])).await;
    let bridge = admin.get_network("net", None).await.unwrap().bridge;
    async fn ping(client: &Client, from: &str, to: String) -> bool {
        sh(client, from, &format!("ping -c 1 -W 2 {to}")).await.0 == 0
    }
    assert!(ping(&admin, "a", ip_of(&b)).await);

    // Someone deletes the bridge and our table by hand: the loop puts both back, and
    // the instances are plugged in again.
    assert!(std::process::Command::new("ip").args(["link", "del", &bridge]).status().unwrap().success());
    assert!(std::process::Command::new("nft").args(["delete", "table", "ip", "rtest22"]).status().unwrap().success());
    let mut restored = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let table = std::process::Command::new("nft").args(["list", "table", "ip", "rtest22"]).output().unwrap();
        if std::path::Path::new("/sys/class/net").join(&bridge).exists()
            && table.status.success()
            && ping(&admin, "a", ip_of(&b)).await
        {
            restored = true;
            break;
        }
    }
    assert!(restored, "bridge, rules and connectivity came back");

    // kill -9 and restart: the same state again; a removed network's bridge goes away.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(std::process::Command::new("nft").args(["delete", "table", "ip", "rtest22"]).status().unwrap().success());
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    let firewall = server.firewall_table.take();
    drop(server);
    let server = TestServer::start_in(data_dir, ServerOptions::compute(22));
    assert_eq!(server.firewall_table, firewall);
    let admin = server.admin().await;
    let mut back = false;
    for _ in 0..40 {
        let table = std::process::Command::new("nft").args(["list", "table", "ip", "rtest22"]).output().unwrap();
        if table.status.success() && String::from_utf8_lossy(&table.stdout).contains("10.122.5.0/24") {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(back, "the firewall is rebuilt at start");
    assert!(ping(&admin, "a", ip_of(&b)).await, "adopted instances reach each other again");
    drop(a);
    for name in ["a", "b"] {
        let op = admin.delete_instance(name, None, true).await.unwrap();
        admin.wait_operation(&op.id, |_| {}).await.unwrap();
    }
    admin.delete_network("net", None).await.unwrap();
    assert!(!std::path::Path::new("/sys/class/net").join(&bridge).exists(), "the bridge is removed with its network");
}

/// A token for the CLI runs.
async fn admin_token(server: &TestServer, admin: &Client) -> String {
    let _ = server;
    let req = roost_api::tokens::CreateTokenRequest {
        name: format!("cli-{}", roost_api::ids::IdKind::Token.generate()),
        scope: Some(roost_api::tokens::Scope::Admin),
        ..Default::default()
    };
    admin.create_token(&req).await.unwrap().secret
}

// ---- the host and other tenants, seen from an instance (issue 18) ----

/// The name of an instance's network namespace (`ip netns exec` finds it there).
fn netns_of(i: &Instance) -> String {
    format!("roost-{}", i.id)
}

/// Runs `script` with the host's tools inside an instance's network namespace: what a
/// tenant with root in its namespace (a VM's guest, or a container with NET_ADMIN)
/// can do to its own stack.
fn in_netns(i: &Instance, script: &str) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &netns_of(i), "sh", "-c", script])
        .output()
        .expect("ip (Debian package iproute2)");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

fn host(args: &[&str]) {
    let out = std::process::Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Whether an HTTP request from `from` to `addr` port `port` gets an HTTP answer. (The
/// request's sender stays open a moment: a server may drop a connection whose client
/// half-closed it before the answer was written.)
async fn answers_http(client: &Client, from: &str, addr: &str, port: u16) -> bool {
    let request = "(printf 'GET /health/live HTTP/1.0\\r\\n\\r\\n'; sleep 1)";
    let (_, out) = sh(client, from, &format!("{request} | timeout 5 nc -w 3 {addr} {port}")).await;
    out.contains("HTTP/1.")
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap()
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An HTTP server of the test on every host address, IPv4 and IPv6, that answers `hello`.
fn host_service() -> u16 {
    let listener = std::net::TcpListener::bind("[::]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 512];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello\n");
        }
    });
    port
}

/// A client outside the host: a network namespace joined to the host by a veth pair,
/// with a /30 of 198.51.100.0/24 (TEST-NET-2) and its default route through the host.
/// Traffic from it arrives at the host as any other machine's would.
struct Outside {
    netns: String,
    host_if: String,
    /// The host's address on the link (the client's gateway).
    host_ip: String,
    /// The client's own address.
    own_ip: String,
}

impl Outside {
    fn new(n: u8) -> Outside {
        let block = (std::process::id() + n as u32) % 64;
        let (host_ip, own_ip) = (format!("198.51.100.{}", block * 4 + 1), format!("198.51.100.{}", block * 4 + 2));
        let tag = format!("{:x}{n:02x}", std::process::id() % 0xffff);
        let outside = Outside { netns: format!("rtout{tag}"), host_if: format!("rto{tag}"), host_ip, own_ip };
        // Left over from an earlier run that was killed.
        for args in [["netns", "del", &outside.netns], ["link", "del", &outside.host_if]] {
            let _ = std::process::Command::new("ip").args(args).stderr(std::process::Stdio::null()).status();
        }
        host(&["ip", "netns", "add", &outside.netns]);
        host(&["ip", "link", "add", &outside.host_if, "type", "veth", "peer", "name", "eth0", "netns", &outside.netns]);
        host(&["ip", "addr", "add", &format!("{}/30", outside.host_ip), "dev", &outside.host_if]);
        host(&["ip", "link", "set", &outside.host_if, "up"]);
        let ns = |args: &[&str]| {
            let mut all = vec!["ip", "-n", &outside.netns];
            all.extend_from_slice(args);
            host(&all);
        };
        ns(&["addr", "add", &format!("{}/30", outside.own_ip), "dev", "eth0"]);
        ns(&["link", "set", "eth0", "up"]);
        ns(&["link", "set", "lo", "up"]);
        ns(&["route", "add", "default", "via", &outside.host_ip]);
        outside
    }

    /// The body of `GET /` from `addr:port` (within 3 s), or why not.
    fn get(&self, addr: &str, port: u16) -> Result<String, String> {
        let addr: std::net::SocketAddr = format!("{addr}:{port}").parse().unwrap();
        let path = std::path::PathBuf::from("/run/netns").join(&self.netns);
        roost_node::network::netns::run_in(&path, move || {
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            conn.set_read_timeout(Some(Duration::from_secs(3)))?;
            conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            conn.read_to_string(&mut out)?;
            Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
        })
        .map_err(|e| e.to_string())
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

/// The required isolation test of issue 18, with real packets through the real firewall:
/// an instance whose tenant bends its own stack as far as root in it allows still
/// cannot reach what the host binds to 127.0.0.1, the host's own services through the
/// gateway (until a rule allows it), the host over IPv6, or another project's instance
/// on the very same range.
#[tokio::test]
async fn instances_reach_neither_the_host_nor_other_tenants() {
    let server = TestServer::start_with(ServerOptions {
        args: [ServerOptions::compute(93).args, vec!["--listen".into(), "0.0.0.0:0".into()]].concat(),
        ..Default::default()
    });
    let admin = server.admin().await;
    let api_port = port_of(&server.url);
    let e2b_port = port_of(server.e2b_url.as_deref().expect("the E2B listener"));
    let prod = admin
        .create_network(&CreateNetworkRequest {
            name: "prod".into(),
            cidr: Some("10.193.10.0/24".into()),
            dns: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let attacker = running(&admin, client_req("attacker", None, "prod", &[])).await;
    let gateway = prod.gateway.clone();

    // Another project with the same range, a web server open to the world on it, and
    // the attacker's own address taken there too.
    admin.create_project(&CreateProjectRequest { name: "other".into(), ..Default::default() }).await.unwrap();
    admin
        .create_network(&CreateNetworkRequest {
            name: "prod".into(),
            cidr: Some("10.193.10.0/24".into()),
            dns: Some(true),
            project: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let open = CreateSecurityGroupRequest { name: "open".into(), project: Some("other".into()), ..Default::default() };
    admin.create_security_group(&open).await.unwrap();
    let any_tcp = CreateRuleRequest {
        direction: Direction::Ingress,
        protocol: Protocol::Tcp,
        ports: None,
        cidr: Some("0.0.0.0/0".into()),
        security_group: None,
        description: None,
    };
    admin.add_security_group_rule("open", Some("other"), &any_tcp).await.unwrap();
    let mut victim = server_req("victim", Some("other"), "prod", &["open"]);
    victim.networks[0].ip = Some("10.193.10.50".into());
    let victim = running(&admin, victim).await;

    // DNS: each network answers its own names, whatever the other project's range.
    let (code, out) = sh(&admin, "attacker", "nslookup attacker").await;
    assert!(code == 0 && out.contains(&ip_of(&attacker)), "{out}");
    let (code, out) = sh(&admin, victim.id.as_str(), "nslookup victim").await;
    assert!(code == 0 && out.contains("10.193.10.50"), "the other project's zone is its own: {out}");
    let (code, _) = sh(&admin, "attacker", "nslookup victim").await;
    assert_ne!(code, 0, "names do not cross projects");

    // The attacker sends TCP for 127.0.0.1 (the API's and the E2B listener's ports)
    // out of eth0 to the gateway, as a VM's guest can.
    in_netns(
        &attacker,
        &format!(
            "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet && \
             echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter && echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter && \
             ip rule add pref 10 lookup local && ip rule del pref 0 lookup local && \
             ip rule add pref 5 to 127.0.0.1 ipproto tcp dport {api_port} lookup 100 && \
             ip rule add pref 5 to 127.0.0.1 ipproto tcp dport {e2b_port} lookup 100 && \
             ip route add 127.0.0.1/32 via {gateway} dev eth0 src {} table 100",
            ip_of(&attacker)
        ),
    );
    assert!(!answers_http(&admin, "attacker", "127.0.0.1", api_port).await, "the API through 127.0.0.1");
    assert!(!answers_http(&admin, "attacker", "127.0.0.1", e2b_port).await, "the E2B listener through 127.0.0.1");

    // The host's services through the gateway: not with the default group's "all egress",
    // only with a rule that names the host.
    assert!(!answers_http(&admin, "attacker", &gateway, api_port).await, "the API through the gateway");
    let service = host_service();
    assert!(!answers_http(&admin, "attacker", &gateway, service).await, "a host service through the gateway");
    admin
        .create_security_group(&CreateSecurityGroupRequest { name: "hostapi".into(), ..Default::default() })
        .await
        .unwrap();
    let to_api = CreateRuleRequest {
        direction: Direction::Egress,
        protocol: Protocol::Tcp,
        ports: Some(api_port.to_string()),
        cidr: Some(format!("{gateway}/32")),
        security_group: None,
        description: None,
    };
    admin.add_security_group_rule("hostapi", None, &to_api).await.unwrap();
    admin.set_security_groups("attacker", None, &["default".into(), "hostapi".into()]).await.unwrap();
    assert!(answers_http(&admin, "attacker", &gateway, api_port).await, "allowed by a rule naming the host");
    assert!(!answers_http(&admin, "attacker", &gateway, service).await, "only the port the rule names");

    // The other project's instance on the same range: neither on the link nor routed
    // through the gateway.
    assert!(!answers_http(&admin, "attacker", "10.193.10.50", 80).await, "on-link");
    in_netns(&attacker, &format!("ip route add 10.193.10.50/32 via {gateway} dev eth0"));
    assert!(!answers_http(&admin, "attacker", "10.193.10.50", 80).await, "through the gateway");

    // IPv6 to the host: the bridge and the instance get addresses of a ULA prefix.
    let bridge = prod.bridge.clone();
    let prefix = format!("fd18:{:x}:93", std::process::id() % 0xffff);
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"), "0")
        .expect("IPv6 on the bridge (the kernel must have IPv6)");
    host(&["ip", "-6", "addr", "add", &format!("{prefix}::1/64"), "dev", &bridge, "nodad"]);
    in_netns(
        &attacker,
        &format!("echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6 && ip -6 addr add {prefix}::2/64 dev eth0 nodad"),
    );
    let (code, out) = sh(&admin, "attacker", "ip -6 -o addr show eth0").await;
    assert!(code == 0 && out.contains(&format!("{prefix}::2")), "{out}");
    assert!(!answers_http(&admin, "attacker", &format!("{prefix}::1"), service).await, "the host over IPv6");
}

/// Port forwards (issue 18): they answer clients outside the host and instances
/// (hairpin), never the host's own connections; they take only ports of the configured
/// range that nothing on the host listens on, and never one of Roost's listeners.
#[tokio::test]
async fn port_forwards_answer_outside_clients_only() {
    let outside = Outside::new(94);
    let server = TestServer::start_with(ServerOptions::compute(94));
    let admin = server.admin().await;
    let token = admin_token(&server, &admin).await;
    admin
        .create_network(&CreateNetworkRequest {
            name: "prod".into(),
            cidr: Some("10.194.10.0/24".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let web = CreateSecurityGroupRequest { name: "web".into(), ..Default::default() };
    admin.create_security_group(&web).await.unwrap();
    let http = CreateRuleRequest {
        direction: Direction::Ingress,
        protocol: Protocol::Tcp,
        ports: Some("80".into()),
        cidr: Some("0.0.0.0/0".into()),
        security_group: None,
        description: None,
    };
    admin.add_security_group_rule("web", None, &http).await.unwrap();
    let srv = running(&admin, server_req("srv", None, "prod", &["web"])).await;
    running(&admin, client_req("peer", None, "prod", &[])).await;
    let gateway = admin.get_network("prod", None).await.unwrap().gateway;

    let port = free_port();
    let out = server.cli(&["port", "add", "srv", &format!("{port}:80/tcp")], None, &[("ROOST_TOKEN", &token)]);
    assert!(out.status.success(), "{}", stderr(&out));
    // From outside, to the host's address on that link.
    assert_eq!(outside.get(&outside.host_ip, port).unwrap().trim(), "hello");
    // From an instance through the host (hairpin).
    assert!(fetches(&admin, "peer", &format!("http://{gateway}:{port}/")).await, "hairpin through the gateway");
    assert!(fetches(&admin, "peer", &format!("http://{}:{port}/", outside.host_ip)).await, "hairpin");
    // Never the host's own connections: nothing listens on the port here.
    let local = common::http().get(format!("http://127.0.0.1:{port}/")).send().await;
    assert!(local.is_err(), "the host's own connection was forwarded: {local:?}");
    let own = common::http().get(format!("http://{}:{port}/", outside.host_ip)).send().await;
    assert!(own.is_err(), "the host's own connection to its address was forwarded: {own:?}");
    admin.delete_port_forward("srv", &format!("{port}/tcp"), None).await.unwrap();
    assert!(outside.get(&outside.host_ip, port).is_err(), "the forward is gone");

    let forward = |host_port: u16, udp: bool| CreatePortForwardRequest {
        host_port,
        instance_port: 80,
        protocol: Some(if udp { Protocol::Udp } else { Protocol::Tcp }),
    };
    // Below the range (1024-65535 by default): a 400 naming the range.
    for udp in [false, true] {
        let err = admin.add_port_forward("srv", None, &forward(443, udp)).await.unwrap_err();
        assert_eq!(status(&err), 400, "{err}");
        assert!(err.to_string().contains("1024-65535"), "{err}");
    }
    // Roost's listeners, for both protocols.
    for (url, what) in [(server.url.as_str(), "API"), (server.e2b_url.as_deref().unwrap(), "E2B")] {
        for udp in [false, true] {
            let err = admin.add_port_forward("srv", None, &forward(port_of(url), udp)).await.unwrap_err();
            assert_eq!(status(&err), 409, "{what}: {err}");
            assert!(err.to_string().contains("Roost"), "{what}: {err}");
        }
    }
    // Ports bound on the host, by TCP or UDP, whichever the forward's protocol.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    for taken in [tcp.local_addr().unwrap().port(), udp.local_addr().unwrap().port()] {
        for as_udp in [false, true] {
            let err = admin.add_port_forward("srv", None, &forward(taken, as_udp)).await.unwrap_err();
            assert_eq!(status(&err), 409, "{err}");
            assert!(err.to_string().contains("in use on the host"), "{err}");
        }
    }
    drop(srv);
}

/// Network ranges (issue 18): none may cover the host's routes or addresses, nor
/// link-local, loopback or multicast space, and a network's route lives in its own
/// table, not in the host's main table.
#[tokio::test]
async fn network_ranges_keep_clear_of_the_host() {
    let outside = Outside::new(95);
    let server = TestServer::start_with(ServerOptions::compute(95));
    let admin = server.admin().await;
    let create = |cidr: &str| CreateNetworkRequest {
        name: format!("n-{}", cidr.replace(['.', '/'], "-")),
        cidr: Some(cidr.into()),
        ..Default::default()
    };

    // The host's route to the outside client's link, and its address on it.
    let last: u8 = outside.host_ip.rsplit('.').next().unwrap().parse().unwrap();
    for cidr in ["198.51.100.0/24".to_string(), format!("198.51.100.{}/29", last & !7)] {
        let err = admin.create_network(&create(&cidr)).await.unwrap_err();
        assert_eq!(status(&err), 409, "{err}");
        assert!(err.to_string().contains("the host's") && err.to_string().contains(&outside.host_if), "{err}");
    }
    for (cidr, why) in [("169.254.169.0/24", "link-local"), ("127.0.0.0/16", "loopback"), ("224.0.0.0/24", "multicast")]
    {
        let err = admin.create_network(&create(cidr)).await.unwrap_err();
        assert_eq!(status(&err), 400, "{cidr}: {err}");
        assert!(err.to_string().contains(why), "{cidr}: {err}");
    }
    // A project's default network skips a /24 of the pool the host routes elsewhere.
    host(&["ip", "route", "add", "10.195.1.0/24", "via", &outside.own_ip, "dev", &outside.host_if]);
    admin.create_project(&CreateProjectRequest { name: "p2".into(), ..Default::default() }).await.unwrap();
    let nets = admin.list_networks(Some("p2")).await.unwrap();
    assert_eq!(nets[0].cidr, "10.195.2.0/24", "{nets:?}");

    // The network's route is in its own table: the main table has none, and the host
    // still reaches the instance.
    admin.create_network(&create("10.195.7.0/24")).await.unwrap();
    let i = running(&admin, client_req("i", None, "n-10-195-7-0-24", &[])).await;
    let main = std::process::Command::new("ip").args(["-4", "route", "show", "table", "main"]).output().unwrap();
    let main = String::from_utf8_lossy(&main.stdout).into_owned();
    assert!(!main.contains("10.195.7.0/24"), "a tenant route in the main table:\n{main}");
    let ping = std::process::Command::new("busybox").args(["ping", "-c", "1", "-W", "3", &ip_of(&i)]).output().unwrap();
    assert!(ping.status.success(), "the host reaches the instance: {}", String::from_utf8_lossy(&ping.stdout));
}
