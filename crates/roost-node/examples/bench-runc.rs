//! Instance start latency against raw runc, measured in one run on the same busybox
//! root filesystem:
//!
//! - raw: `runc run -d` of a plain bundle, then `runc exec <id> true`;
//! - driver: `prepare` (overlay, netns, veth on a bridge, bundle) + `start` + the first
//!   successful `exec true`, through the `Driver` trait;
//!
//! alternating, N times each, and prints both medians and their ratio; then the wall time
//! of starting many instances at once. As root:
//!
//! ```text
//! cargo run --release -p roost-node --example bench-runc -- [--runs 20] [--concurrent 50]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use roost_node::drivers::container::{ContainerConfig, ContainerDriver};
use roost_node::images::ImageStore;
use roost_node::network::{Network, ipam};
use roost_node::{Driver, ExecRequest, InstanceSpec, MacAddr, NetAttachment};

const WORK: &str = "/tmp/roost-bench";
const RUNC_ROOT: &str = "/run/roost-bench/runc";

struct Args {
    runs: usize,
    concurrent: usize,
}

fn args() -> Args {
    let mut args = Args { runs: 20, concurrent: 50 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number after the flag");
        match arg.as_str() {
            "--runs" => args.runs = value(),
            "--concurrent" => args.concurrent = value(),
            _ => {
                eprintln!("usage: bench-runc [--runs N] [--concurrent N]");
                std::process::exit(2);
            }
        }
    }
    args
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn runc(args: &[&str]) -> std::process::ExitStatus {
    Command::new("runc")
        .arg("--root")
        .arg(RUNC_ROOT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("running runc (apt-get install runc)")
}

/// A plain bundle over the image's root (read-only, so nothing is written to it).
fn raw_bundle(rootfs: &Path) -> PathBuf {
    let bundle = Path::new(WORK).join("raw");
    std::fs::create_dir_all(&bundle).unwrap();
    let mut spec = oci_spec::runtime::Spec::default();
    let mut root = oci_spec::runtime::Root::default();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(roost_node::driver::DEFAULT_INIT.iter().map(|s| s.to_string()).collect()));
    process.set_rlimits(None);
    spec.set_process(Some(process));
    spec.set_hostname(Some("raw".into()));
    spec.save(bundle.join("config.json")).unwrap();
    bundle
}

async fn time_raw(bundle: &Path, n: usize) -> Duration {
    let id = format!("raw-{}-{n}", std::process::id());
    let pid_file = Path::new(WORK).join("raw.pid");
    let begun = Instant::now();
    assert!(
        runc(&["run", "-d", "--pid-file", pid_file.to_str().unwrap(), "--bundle", bundle.to_str().unwrap(), &id])
            .success(),
        "runc run"
    );
    assert!(runc(&["exec", &id, "true"]).success(), "runc exec");
    let took = begun.elapsed();
    // The init is our child now (the driver made this process a subreaper): reap it.
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let init = roost_node::reaper::PidFd::open(pid).unwrap();
    runc(&["delete", "--force", &id]);
    init.wait().await.unwrap();
    took
}

fn spec_for(id: String, rootfs: &Path, network: Option<NetAttachment>) -> InstanceSpec {
    InstanceSpec {
        hostname: id.clone(),
        id,
        rootfs: rootfs.to_path_buf(),
        cmd: None,
        env: Vec::new(),
        cpus: 1.0,
        memory_bytes: 128 << 20,
        pids_limit: 256,
        networks: network.into_iter().collect(),
        dns: None,
        volumes: Vec::new(),
        disks: Vec::new(),
        capabilities_add: Vec::new(),
    }
}

async fn start_and_exec(driver: &ContainerDriver, spec: &InstanceSpec) {
    driver.prepare(spec).await.expect("prepare");
    driver.start(&spec.id).await.expect("start");
    let request = ExecRequest { cmd: vec!["true".into()], ..Default::default() };
    let mut session = driver.exec(&spec.id, request).await.expect("exec");
    assert_eq!(session.wait().await.expect("exec wait"), 0);
}

/// prepare, start, exec: each phase's time.
async fn time_driver(driver: &ContainerDriver, spec: &InstanceSpec) -> [Duration; 3] {
    let begun = Instant::now();
    driver.prepare(spec).await.expect("prepare");
    let prepared = begun.elapsed();
    driver.start(&spec.id).await.expect("start");
    let started = begun.elapsed();
    let request = ExecRequest { cmd: vec!["true".into()], ..Default::default() };
    let mut session = driver.exec(&spec.id, request).await.expect("exec");
    assert_eq!(session.wait().await.expect("exec wait"), 0);
    let done = begun.elapsed();
    driver.delete(&spec.id).await.expect("delete");
    [prepared, started - prepared, done - started]
}

fn total(phases: &[[Duration; 3]]) -> Vec<Duration> {
    phases.iter().map(|p| p[0] + p[1] + p[2]).collect()
}

fn phase(phases: &[[Duration; 3]], i: usize) -> f64 {
    ms(median(phases.iter().map(|p| p[i]).collect()))
}

/// Our child processes that are not in an instance's cgroup: what a per-instance
/// monitor or shim would be (runc itself has exited by now).
fn helpers_outside_instances() -> usize {
    let me = std::process::id();
    let mut count = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Some(stat) = roost_node::reaper::ProcStat::read(pid) else { continue };
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if stat.ppid == me && !cgroup.contains("roost-bench") {
            count += 1;
        }
    }
    count
}

#[tokio::main]
async fn main() {
    let args = args();
    // SAFETY: geteuid has no preconditions.
    assert!(unsafe { libc::geteuid() } == 0, "run as root");
    let _ = std::fs::remove_dir_all(Path::new(WORK).join("data"));
    let image = ImageStore::new(Path::new(WORK).join("images"))
        .busybox()
        .await
        .expect("busybox image (apt-get install busybox-static)");
    let mut config = ContainerConfig::new(Path::new(WORK).join("data"));
    config.runc_root = PathBuf::from(RUNC_ROOT);
    config.cgroup_parent = "roost-bench".into();
    let driver = ContainerDriver::new(config).expect("driver");
    let network = Network { bridge: "rbench0".into(), gateway: "10.199.0.1".parse().unwrap(), prefix_len: 22 };
    network.ensure(None).await.expect("bench network");
    let cidr = network.cidr().unwrap();
    let mut taken = Vec::new();
    let mut attachment = || {
        let ip = ipam::allocate(cidr, network.gateway, &taken).expect("free address");
        taken.push(ip);
        NetAttachment {
            bridge: network.bridge.clone(),
            ip,
            prefix_len: 22,
            gateway: network.gateway,
            mac: MacAddr::for_ip(ip),
            index: 0,
        }
    };
    let bundle = raw_bundle(&image.rootfs);

    // Warm up both paths (page cache, first netlink and nft runs).
    time_raw(&bundle, 999).await;
    time_driver(&driver, &spec_for("i-warmup".into(), &image.rootfs, Some(attachment()))).await;

    let (mut raw, mut with_net, mut without_net) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..args.runs {
        raw.push(time_raw(&bundle, n).await);
        with_net
            .push(time_driver(&driver, &spec_for(format!("i-bench{n:07}"), &image.rootfs, Some(attachment()))).await);
        without_net.push(time_driver(&driver, &spec_for(format!("i-bnone{n:07}"), &image.rootfs, None)).await);
    }
    let breakdown = |p: &[[Duration; 3]]| {
        format!("prepare {:.1} + start {:.1} + exec {:.1} ms", phase(p, 0), phase(p, 1), phase(p, 2))
    };
    let (net_phases, plain_phases) = (breakdown(&with_net), breakdown(&without_net));
    let (raw, with_net, without_net) = (median(raw), median(total(&with_net)), median(total(&without_net)));
    println!("runs: {} each, alternating, busybox rootfs {}", args.runs, image.rootfs.display());
    println!("raw runc (run -d + exec true):                       median {:7.1} ms", ms(raw));
    println!(
        "driver (prepare+start+exec true, bridge network):   median {:7.1} ms  ratio {:.2}x  ({net_phases})",
        ms(with_net),
        with_net.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "driver (prepare+start+exec true, no network):       median {:7.1} ms  ratio {:.2}x  ({plain_phases})",
        ms(without_net),
        without_net.as_secs_f64() / raw.as_secs_f64()
    );

    if args.concurrent > 0 {
        let specs: Vec<InstanceSpec> = (0..args.concurrent)
            .map(|n| spec_for(format!("i-conc{n:08}"), &image.rootfs, Some(attachment())))
            .collect();
        let begun = Instant::now();
        let tasks: Vec<_> = specs
            .iter()
            .map(|spec| {
                let (driver, spec) = (driver.clone(), spec.clone());
                tokio::spawn(async move { start_and_exec(&driver, &spec).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("concurrent start");
        }
        let took = begun.elapsed();
        let mut inside = 0;
        for spec in &specs {
            let procs = std::fs::read_to_string(driver.cgroup(&spec.id).dir("pids").unwrap().join("cgroup.procs"))
                .unwrap_or_default();
            inside += procs.lines().count();
        }
        println!(
            "{} instances started concurrently (prepare+start+exec true): {:.0} ms wall",
            args.concurrent,
            ms(took)
        );
        println!(
            "processes per instance: {:.1} inside its cgroup (the default init: sh + sleep), {} of ours outside (no monitor, no shim)",
            inside as f64 / specs.len() as f64,
            helpers_outside_instances()
        );
        for spec in &specs {
            driver.delete(&spec.id).await.expect("delete");
        }
    }
    network.remove().await.expect("removing the bench network");
    let _ = std::fs::remove_dir_all(Path::new(WORK).join("data"));
}
