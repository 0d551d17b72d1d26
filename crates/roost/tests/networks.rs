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

    // Port forward from the host (loopback and the host's own address), and conflicts.
    let out = server.cli(
        &["port", "add", "srv", "18121:80/tcp"],
        None,
        &[("ROOST_TOKEN", &admin_token(&server, &admin).await)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = reqwest::get("http://127.0.0.1:18121/").await.unwrap().text().await.unwrap();
    assert_eq!(got.trim(), "hello");
    let dup = CreatePortForwardRequest { host_port: 18121, instance_port: 22, protocol: None };
    let err = admin.add_port_forward("peer", None, &dup).await.unwrap_err();
    assert_eq!(status(&err), 409);
    assert!(err.to_string().contains("18121"), "{err}");
    let listed = admin.list_port_forwards(None, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].target_ip.as_deref(), Some(srv_ip.as_str()));
    admin.delete_port_forward("srv", "18121/tcp", None).await.unwrap();
    assert!(reqwest::get("http://127.0.0.1:18121/").await.is_err(), "the forward is gone");

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

#[tokio::test]
async fn ipam_never_hands_out_an_address_twice() {
    let server = TestServer::start_with(ServerOptions::compute(23));
    let admin = server.admin().await;
    admin
        .create_network(&CreateNetworkRequest {
            name: "small".into(),
            cidr: Some("10.123.200.0/26".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // 50 creates at once (stopped: this is about addresses, not containers).
    let mut tasks = Vec::new();
    for n in 0..50 {
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let req = CreateInstanceRequest { start: Some(false), ..client_req(&format!("i{n}"), None, "small", &[]) };
            admin.create_instance(&req).await
        }));
    }
    let mut ips = Vec::new();
    for t in tasks {
        let created = t.await.unwrap().unwrap();
        ips.push(created.instance.ip.clone().unwrap());
    }
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50, "{ips:?}");
    let net = admin.get_network("small", None).await.unwrap();
    assert_eq!((net.addresses_used, net.addresses_total), (50, 61));
    // Lists carry the NICs and groups too.
    let listed = admin.all_instances(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 50);
    assert!(listed.iter().all(|i| i.nics.len() == 1 && i.nics[0].network == "small" && i.nics[0].name == "eth0"));
    assert!(listed.iter().all(|i| i.security_groups == vec!["default".to_string()]));
    // Full: 61 usable addresses; the 12th more is refused with a clear error.
    for n in 50..61 {
        let req = CreateInstanceRequest { start: Some(false), ..client_req(&format!("i{n}"), None, "small", &[]) };
        admin.create_instance(&req).await.unwrap();
    }
    let req = CreateInstanceRequest { start: Some(false), ..client_req("full", None, "small", &[]) };
    let err = admin.create_instance(&req).await.unwrap_err();
    assert_eq!(status(&err), 409);
    assert!(err.to_string().contains("no free address"), "{err}");
    // Deleting frees the address for the next one.
    let op = admin.delete_instance("i7", None, false).await.unwrap();
    admin.wait_operation(&op.id, |_| {}).await.unwrap();
    let created = admin.create_instance(&req).await.unwrap();
    assert_eq!(created.instance.ip, Some(ips[7].clone()));
    // A static address outside the range, or the gateway, is a 400 naming the field.
    let bad = CreateInstanceRequest {
        networks: vec![NicRequest { network: "small".into(), ip: Some("10.123.200.1".into()) }],
        start: Some(false),
        ..client_req("gw", None, "small", &[])
    };
    let err = admin.create_instance(&bad).await.unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(err.to_string().contains("gateway"), "{err}");
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
