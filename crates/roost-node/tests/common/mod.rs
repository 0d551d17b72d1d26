//! Shared by the node's integration tests: prerequisites (a missing one fails the test
//! and names the Debian package; nothing is skipped), the shared busybox image, a
//! driver per test with its own directories, unique ids, unique networks, and cleanup
//! that runs even when a test panics.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use roost_node::drivers::container::{ContainerConfig, ContainerDriver};
use roost_node::images::{Image, ImageStore};
use roost_node::network::{self, Network};
use roost_node::{Driver, ExecRequest, InstanceSpec, InstanceStatus, MacAddr, NetAttachment};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where the tests keep their files: the shared image store and per-test data.
pub const TEST_DIR: &str = "/tmp/roost-node-tests";

/// Fails (never skips) when something the tests need is missing.
pub fn require_prerequisites() {
    // SAFETY: geteuid has no preconditions.
    assert!(unsafe { libc::geteuid() } == 0, "the node tests run as root (CI does): sudo cargo test -p roost-node");
    for (program, package) in [("runc", "runc"), ("nft", "nftables"), ("ip", "iproute2")] {
        assert!(
            on_path(program),
            "missing prerequisite: `{program}` — install the Debian package {package} (scripts/install-deps.sh --test)"
        );
    }
    if let Err(e) = roost_node::images::busybox::find_static() {
        panic!("missing prerequisite: {e} (scripts/install-deps.sh --test)");
    }
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The image store every test shares, so busybox is built once per machine.
pub fn image_store() -> ImageStore {
    ImageStore::new(Path::new(TEST_DIR).join("images"))
}

pub async fn busybox() -> Image {
    require_prerequisites();
    image_store().busybox().await.expect("building the busybox image")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// `i-` and 12 base32 characters, like the control plane's ids.
pub fn unique_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut n = random_u64();
    let mut id = String::from("i-");
    for _ in 0..12 {
        id.push(ALPHABET[(n % 32) as usize] as char);
        n /= 32;
    }
    id
}

/// A driver over directories of its own, deleting its instances when dropped.
pub struct Env {
    pub driver: ContainerDriver,
    pub config: ContainerConfig,
    ids: Mutex<Vec<String>>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        Env::with(name, |_| {})
    }

    /// With a configuration changed by `adjust`.
    pub fn with(name: &str, adjust: impl FnOnce(&mut ContainerConfig)) -> Env {
        require_prerequisites();
        let tag = format!("{name}-{}", std::process::id());
        let mut config = ContainerConfig::new(Path::new(TEST_DIR).join("data").join(&tag));
        config.runc_root = Path::new("/run/roost-node-tests").join(&tag);
        config.cgroup_parent = "roost-test".into();
        adjust(&mut config);
        let driver = ContainerDriver::new(config.clone()).expect("creating the driver");
        Env { driver, config, ids: Mutex::new(Vec::new()) }
    }

    /// Another driver over the same directories (a server restart).
    pub fn reopen(&self) -> ContainerDriver {
        ContainerDriver::new(self.config.clone()).expect("creating the driver")
    }

    /// A spec for a new instance of `image` (cleaned up with the env).
    pub fn spec(&self, image: &Image, cmd: Option<&[&str]>) -> InstanceSpec {
        let id = unique_id();
        self.ids.lock().unwrap().push(id.clone());
        InstanceSpec {
            hostname: id.clone(),
            id,
            rootfs: image.rootfs.clone(),
            cmd: cmd.map(|c| c.iter().map(|s| s.to_string()).collect()),
            env: Vec::new(),
            cpus: 1.0,
            memory_bytes: 128 << 20,
            pids_limit: 256,
            networks: Vec::new(),
            dns: None,
            volumes: Vec::new(),
            disks: Vec::new(),
            capabilities_add: Vec::new(),
        }
    }

    /// Prepares and starts.
    pub async fn run(&self, spec: &InstanceSpec) {
        self.driver.prepare(spec).await.expect("prepare");
        self.driver.start(&spec.id).await.expect("start");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap());
        let driver = self.driver.clone();
        let data_dir = self.config.data_dir.clone();
        let runc_root = self.config.runc_root.clone();
        // A runtime of its own: this may run while a test's runtime unwinds.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                for id in ids {
                    if let Err(e) = driver.delete(&id).await {
                        eprintln!("cleanup of {id} failed: {e}");
                    }
                }
            });
        })
        .join()
        .unwrap();
        let _ = std::fs::remove_dir_all(data_dir);
        let _ = std::fs::remove_dir(runc_root);
    }
}

/// A bridge and /24 of its own: `rt<hex>`, 10.<octet>.<pid-derived>.0/24.
pub struct TestNet {
    pub network: Network,
    next: Mutex<u8>,
}

impl TestNet {
    /// `octet` (200..=254) is unique per test so concurrent tests never share a subnet.
    pub async fn new(octet: u8) -> TestNet {
        require_prerequisites();
        let third = (std::process::id() % 250) as u8;
        let network = Network {
            bridge: format!("rt{:08x}", random_u64() as u32),
            gateway: Ipv4Addr::new(10, octet, third, 1),
            prefix_len: 24,
        };
        network.ensure(None).await.expect("ensuring the test network");
        // Its range is routed from a table of its own, as the server's networks are.
        let owner = network::RouteOwner::for_table(&network.bridge);
        let routes = network::NetRoutes {
            bridge: network.bridge.clone(),
            cidr: network.cidr().unwrap(),
            mark: owner.mark(&network.bridge),
            host_route: true,
            peers: Vec::new(),
        };
        network::sync_policy_routing(owner, &[routes]).await.expect("routing the test network");
        TestNet { network, next: Mutex::new(2) }
    }

    /// The firewall mark (and routing table) of this network.
    pub fn mark(&self) -> u32 {
        network::RouteOwner::for_table(&self.network.bridge).mark(&self.network.bridge)
    }

    /// The next address, through the IPAM helper.
    pub fn attachment(&self) -> NetAttachment {
        let mut next = self.next.lock().unwrap();
        let cidr = self.network.cidr().unwrap();
        let taken: Vec<Ipv4Addr> =
            (2..*next).map(|i| Ipv4Addr::new(10, cidr.network().octets()[1], cidr.network().octets()[2], i)).collect();
        let ip = roost_node::network::ipam::allocate(cidr, self.network.gateway, &taken).expect("a free address");
        *next += 1;
        NetAttachment {
            bridge: self.network.bridge.clone(),
            ip,
            prefix_len: self.network.prefix_len,
            gateway: self.network.gateway,
            mac: MacAddr::for_ip(ip),
            index: 0,
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let network = self.network.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let owner = network::RouteOwner::for_table(&network.bridge);
            if let Err(e) = runtime.block_on(network::sync_policy_routing(owner, &[])) {
                eprintln!("cleanup of the routing of {} failed: {e}", network.bridge);
            }
            if let Err(e) = runtime.block_on(network.remove()) {
                eprintln!("cleanup of bridge {} failed: {e}", network.bridge);
            }
        })
        .join()
        .unwrap();
    }
}

/// What an exec printed and returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub async fn exec(driver: &dyn Driver, id: &str, cmd: &[&str]) -> Output {
    exec_with(driver, id, ExecRequest { cmd: cmd.iter().map(|s| s.to_string()).collect(), ..Default::default() }, b"")
        .await
}

pub async fn exec_with(driver: &dyn Driver, id: &str, request: ExecRequest, input: &[u8]) -> Output {
    let mut session = driver.exec(id, request).await.expect("exec");
    let mut stdin = session.stdin.take().unwrap();
    let mut stdout = session.stdout.take().unwrap();
    let mut stderr = session.stderr.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
    a.unwrap();
    b.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(30), session.wait()).await.expect("exec ends").unwrap();
    Output {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Polls `inspect` until the instance has `status`.
pub async fn wait_status(
    driver: &dyn Driver,
    id: &str,
    status: InstanceStatus,
    within: Duration,
) -> roost_node::InstanceState {
    let deadline = Instant::now() + within;
    loop {
        let state = driver.inspect(id).await.expect("inspect");
        if state.status == status {
            return state;
        }
        assert!(Instant::now() < deadline, "{id} did not become {status:?} within {within:?}: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mount points mentioning `needle`.
pub fn mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

pub fn path_exists(p: impl AsRef<Path>) -> bool {
    p.as_ref().symlink_metadata().is_ok()
}

pub fn data_path(env: &Env, rest: &str) -> PathBuf {
    env.config.data_dir.join(rest)
}
