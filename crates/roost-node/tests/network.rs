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
            mark: 0,
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
