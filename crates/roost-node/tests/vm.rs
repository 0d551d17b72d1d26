//! The microVM driver against real QEMU: one Debian image (built once in the shared
//! store), as few boots as prove the behaviour. Slow under TCG: each boot is ~2 s plus
//! the guest agent's start.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{TEST_DIR, TestNet, exec, on_path, unique_id, wait_status};
use roost_node::drivers::vm::{VmConfig, VmDriver};
use roost_node::{DiskFormat, Driver, ExecRequest, InstanceSpec, InstanceStatus, LogQuery, VolumeAttachment};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn require_vm_prerequisites() {
    common::require_prerequisites();
    for (program, package) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("mkfs.ext4", "e2fsprogs"),
        ("lz4", "lz4"),
        ("mmdebstrap", "mmdebstrap"),
    ] {
        assert!(
            on_path(program),
            "missing prerequisite: `{program}` — install the Debian package {package} (scripts/install-deps.sh --test)"
        );
    }
}

struct VmEnv {
    driver: VmDriver,
    data_dir: std::path::PathBuf,
    ids: Vec<String>,
}

impl Drop for VmEnv {
    fn drop(&mut self) {
        let driver = self.driver.clone();
        let ids = std::mem::take(&mut self.ids);
        let dirs: Vec<_> = ids.iter().map(|id| self.data_dir.join("instances").join(id)).collect();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                for id in ids {
                    if let Err(e) = driver.delete(&id).await {
                        eprintln!("cleanup of {id} failed: {e}");
                    }
                }
            });
        })
        .join()
        .unwrap();
        // The kernel and base disks stay cached in the shared directory; this test's
        // instances go (only its own: other tests share the directory).
        for dir in dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One data directory for every VM test run, so the kernel, initramfs and base disk
/// are built once per machine.
fn vm_env() -> VmEnv {
    require_vm_prerequisites();
    let data_dir = Path::new(TEST_DIR).join("vm-data");
    let driver = VmDriver::new(VmConfig::new(&data_dir)).expect("creating the VM driver");
    VmEnv { driver, data_dir, ids: Vec::new() }
}

async fn debian() -> roost_node::images::Image {
    common::image_store().build_debian("debian-12", "bookworm", &[], |_| {}).await.expect("building the Debian image")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_boots_runs_commands_copies_files_and_powers_off() {
    let image = debian().await;
    assert!(image.rootfs.join("usr/sbin/qemu-ga").exists(), "Debian images carry qemu-guest-agent");
    let mut env = vm_env();
    let info = env.driver.accel().clone();
    assert!(info.accelerator == "kvm" || info.accelerator == "tcg");
    assert!(!info.reason.is_empty());

    // A data disk: an ext4 image made with qemu-img + mkfs.ext4, mounted in the guest.
    let disk_dir = Path::new(TEST_DIR).join(format!("vm-disk-{}", std::process::id()));
    std::fs::create_dir_all(&disk_dir).unwrap();
    let disk = disk_dir.join("data.raw");
    assert!(
        Command::new("qemu-img").args(["create", "-q", "-f", "raw"]).arg(&disk).arg("64M").status().unwrap().success()
    );
    assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&disk).status().unwrap().success());

    let net = TestNet::new(231).await;
    let nic = net.attachment();
    let id = unique_id();
    env.ids.push(id.clone());
    let spec = InstanceSpec {
        id: id.clone(),
        rootfs: image.rootfs.clone(),
        cmd: None,
        env: Vec::new(),
        cpus: 1.0,
        memory_bytes: 256 << 20,
        pids_limit: 0,
        hostname: "vmtest".into(),
        networks: vec![nic.clone()],
        dns: None,
        volumes: Vec::new(),
        disks: vec![VolumeAttachment {
            volume_id: "vol-testdisk".into(),
            image: disk.clone(),
            format: DiskFormat::Raw,
            filesystem: "ext4".into(),
            path: "/data".into(),
            read_only: false,
        }],
        capabilities_add: Vec::new(),
    };
    let driver: &dyn Driver = &env.driver;
    assert_eq!(driver.inspect(&id).await.unwrap().status, InstanceStatus::Missing);
    driver.prepare(&spec).await.expect("prepare");
    assert_eq!(driver.inspect(&id).await.unwrap().status, InstanceStatus::Stopped);
    driver.start(&id).await.expect("start");
    assert_eq!(driver.inspect(&id).await.unwrap().status, InstanceStatus::Running);
    // The tap carries the name the firewall keys its rules by, on the instance's bridge.
    let tap = roost_node::network::nic_ifname(&id, 0);
    let master = std::fs::read_link(format!("/sys/class/net/{tap}/master")).expect("the tap is on a bridge");
    assert_eq!(master.file_name().unwrap().to_str().unwrap(), nic.bridge);
    // QEMU is confined: an unprivileged user without capabilities, its seccomp sandbox
    // (every optional part denied), no daemonizing, a /dev of its own, and nothing of the
    // data directory reachable by path.
    let pid = driver.inspect(&id).await.unwrap().pid.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> String {
        status.lines().find(|l| l.starts_with(name)).unwrap_or_default().split_whitespace().nth(1).unwrap_or("").into()
    };
    let qemu_uid = roost_node_uid("roost-qemu");
    assert_eq!(field("Uid:"), qemu_uid.to_string(), "{status}");
    assert_ne!(qemu_uid, 0);
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!((field("Seccomp:"), field("NoNewPrivs:")), ("2".to_string(), "1".to_string()), "{status}");
    let args = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap().replace('\0', " ");
    assert!(
        args.contains("-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
            && !args.contains("-daemonize")
            && !args.contains(env.data_dir.to_str().unwrap()),
        "{args}"
    );
    let dev: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root/dev"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(dev.len() <= 6 && dev.contains(&"urandom".to_string()) && !dev.contains(&"sda".to_string()), "{dev:?}");

    // exec through the guest agent (waits for the guest to boot).
    let out =
        exec(driver, &id, &["sh", "-c", "echo hello from $(cat /proc/sys/kernel/hostname); echo oops >&2; exit 3"])
            .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "hello from vmtest\n");
    assert_eq!(out.stderr, "oops\n");
    let out = exec(driver, &id, &["cat", "/proc/cmdline"]).await;
    assert!(out.stdout.contains("root=/dev/vda"), "{out:?}");
    let out = exec(driver, &id, &["nonexistent-program"]).await;
    assert_eq!(out.code, 127, "{out:?}");
    // cwd and env.
    let out = common::exec_with(
        driver,
        &id,
        ExecRequest {
            cmd: vec!["sh".into(), "-c".into(), "pwd; echo $GREETING".into()],
            env: vec![("GREETING".into(), "hi".into())],
            cwd: Some("/etc".into()),
            ..Default::default()
        },
        b"",
    )
    .await;
    assert_eq!(out.stdout, "/etc\nhi\n");

    // Output streams while the command runs: "early" arrives while it still waits for a
    // file that a second exec creates only after "early" was read.
    let mut session = driver
        .exec(
            &id,
            ExecRequest {
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo early; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo late".into(),
                ],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut stdout = session.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 64];
    while !String::from_utf8_lossy(&seen).contains("early") {
        let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "output ended before 'early'");
        seen.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(exec(driver, &id, &["touch", "/tmp/go"]).await.code, 0);
    stdout.read_to_end(&mut seen).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&seen), "early\nlate\n");
    assert_eq!(session.wait().await.unwrap(), 0);

    // stdin: given whole (the caller closes it at once) ...
    let input: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let out = common::exec_with(
        driver,
        &id,
        ExecRequest { cmd: vec!["sh".into(), "-c".into(), "sha256sum; exit 4".into()], ..Default::default() },
        &input,
    )
    .await;
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(out.stdout, format!("{}  -\n", hex_sha256(&input)), "{out:?}");
    // ... or streamed: the command answers the first line before the second is sent,
    // and sees EOF when the caller closes stdin.
    let mut session = driver
        .exec(
            &id,
            ExecRequest {
                cmd: vec!["sh".into(), "-c".into(), "read a; echo got-$a; read b; echo got-$b; cat; echo eof".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut stdin = session.stdin.take().unwrap();
    let mut stdout = session.stdout.take().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stdin.write_all(b"one\n").await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("got-one") {
        let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "output ended before 'got-one'");
        seen.extend_from_slice(&chunk[..n]);
    }
    stdin.write_all(b"two\nrest").await.unwrap();
    drop(stdin);
    stdout.read_to_end(&mut seen).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&seen), "got-one\ngot-two\nresteof\n");
    assert_eq!(session.wait().await.unwrap(), 0);

    // A command with a terminal: it runs on a pty in the guest, sized as asked, resized
    // later (it waits until its size changes), and its input streams to it.
    let script = "tty; stty size; while [ \"$(stty size)\" = '33 101' ]; do sleep 0.2; done; \
                  echo now-$(stty size | tr ' ' x); read x; echo got-$x; exit 5";
    let mut session = driver
        .exec(
            &id,
            ExecRequest {
                cmd: vec!["sh".into(), "-c".into(), script.into()],
                tty: true,
                rows: 33,
                cols: 101,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut stdin = session.stdin.take().unwrap();
    let mut stdout = session.stdout.take().unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("33 101") {
        let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "output ended before the size: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    session.resize(40, 120).unwrap();
    while !String::from_utf8_lossy(&seen).contains("now-40x120") {
        let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "output ended before the resize: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    stdin.write_all(b"hello\n").await.unwrap();
    while !String::from_utf8_lossy(&seen).contains("got-hello") {
        let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "output ended before 'got-hello': {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    drop(stdin);
    stdout.read_to_end(&mut seen).await.unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("/dev/pts/") && text.contains("33 101"), "{text}");
    assert_eq!(session.wait().await.unwrap(), 5, "{text}");

    // The guest has its address and reaches its gateway (the bridge) over the tap.
    let out = exec(driver, &id, &["/.roost/bin/busybox", "ip", "-4", "-o", "addr", "show", "eth0"]).await;
    assert!(out.stdout.contains(&format!("{}/{}", nic.ip, nic.prefix_len)), "{out:?}");
    let out = exec(driver, &id, &["/.roost/bin/busybox", "ping", "-c", "1", "-W", "5", &nic.gateway.to_string()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let host_ping =
        Command::new("busybox").args(["ping", "-c", "1", "-W", "5"]).arg(nic.ip.to_string()).output().unwrap();
    assert!(host_ping.status.success(), "the host reaches the VM");

    // The data disk is mounted where asked and writable.
    let out = exec(driver, &id, &["sh", "-c", "grep ' /data ' /proc/mounts && echo persisted > /data/f && sync"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    // Files in and out (guest-file API + tar).
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "pushed.txt", &b"pushed"[..]).unwrap();
    let bytes = archive.into_inner().unwrap();
    driver.copy_in(&id, "/root", Box::new(std::io::Cursor::new(bytes))).await.expect("copy_in");
    let out = exec(driver, &id, &["cat", "/root/pushed.txt"]).await;
    assert_eq!(out.stdout, "pushed");
    let mut tar_out = driver.copy_out(&id, "/etc/hostname").await.expect("copy_out");
    let mut buf = Vec::new();
    tar_out.read_to_end(&mut buf).await.unwrap();
    let mut archive = tar::Archive::new(&buf[..]);
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str().unwrap(), "hostname");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
    assert_eq!(text, "vmtest\n");

    // Stats from the host's view of QEMU.
    let stats = driver.stats(&id).await.unwrap();
    assert!(stats.cpu_usage_ns > 0 && stats.memory_bytes > 0, "{stats:?}");
    assert_eq!(stats.memory_limit, Some(256 << 20));

    // The serial console as a terminal: a root shell.
    let mut session = driver.exec(&id, ExecRequest { tty: true, ..Default::default() }).await.expect("console");
    let mut stdin = session.stdin.take().unwrap();
    let mut stdout = session.stdout.take().unwrap();
    stdin.write_all(b"\necho CONSOLE-$((6*7))\n").await.unwrap();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = stdout.read(&mut chunk).await.unwrap();
            assert!(n > 0, "console closed");
            seen.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&seen).contains("CONSOLE-42") {
                break;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "console output: {}", String::from_utf8_lossy(&seen));
    // Ctrl-] leaves: the console connection closes and the session ends.
    stdin.write_all(&[roost_node::drivers::vm::CONSOLE_ESCAPE]).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_end(&mut rest))
        .await
        .expect("console closes")
        .unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), session.wait()).await.expect("session ends").unwrap(), 0);
    drop(stdin);

    // pause/resume: QMP stop/cont.
    driver.pause(&id).await.expect("pause");
    assert_eq!(driver.inspect(&id).await.unwrap().status, InstanceStatus::Paused);
    driver.resume(&id).await.expect("resume");
    assert_eq!(driver.inspect(&id).await.unwrap().status, InstanceStatus::Running);
    // No hotplug on microvm: the control plane is told to wait for the next start.
    let attached = driver.attach_volume(&id, &spec.disks[0]).await;
    assert!(matches!(attached, Err(roost_node::Error::Unsupported(_))), "{attached:?}");

    // Logs: the console log, boot output included.
    let mut lines = driver.logs(&id, LogQuery::default()).await.unwrap();
    let mut all = String::new();
    while let Some(line) = futures_util::StreamExt::next(&mut lines).await {
        all.push_str(&line.unwrap().line);
        all.push('\n');
    }
    assert!(all.contains("roost: guest ready"), "{all}");

    // stop: the ACPI power button, a clean poweroff (exit 0, not the hard kill).
    driver.stop(&id, Duration::from_secs(30)).await.expect("stop");
    let state = driver.inspect(&id).await.unwrap();
    assert_eq!(state.status, InstanceStatus::Stopped);
    assert_eq!(state.exit_code, Some(0), "{state:?}");
    assert_eq!(state.exit_signal, None);

    // The overlay kept what was written; the base is untouched (a second start sees it).
    driver.start(&id).await.expect("start again");
    let out = exec(driver, &id, &["cat", "/root/pushed.txt", "/data/f"]).await;
    assert_eq!(out.stdout, "pushedpersisted\n", "{out:?}");

    // A new driver (a server restart) adopts the running VM through its directory.
    let again = VmDriver::new(VmConfig::new(&env.data_dir)).unwrap();
    assert_eq!(again.inspect(&id).await.unwrap().status, InstanceStatus::Running);
    assert!(again.list().await.unwrap().contains(&id));
    let out = exec(&again, &id, &["true"]).await;
    assert_eq!(out.code, 0);

    // kill -9 of QEMU converges to stopped with the signal.
    let pid = driver.inspect(&id).await.unwrap().pid.unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL).unwrap();
    let state = wait_status(driver, &id, InstanceStatus::Stopped, Duration::from_secs(10)).await;
    assert_eq!(state.exit_signal, Some(9), "{state:?}");

    driver.delete(&id).await.expect("delete");
    assert_eq!(driver.inspect(&id).await.unwrap().status, InstanceStatus::Missing);
    assert!(!roost_node::network::link_exists(&tap), "the tap is removed");
    assert!(!env.data_dir.join("instances").join(&id).exists());
    let _ = std::fs::remove_dir_all(&disk_dir);
}

#[tokio::test]
async fn a_vm_needs_the_guest_agent_in_its_image() {
    let busybox = common::busybox().await;
    let env = vm_env();
    let spec = InstanceSpec {
        id: unique_id(),
        rootfs: busybox.rootfs.clone(),
        cmd: None,
        env: Vec::new(),
        cpus: 1.0,
        memory_bytes: 0,
        pids_limit: 0,
        hostname: "x".into(),
        networks: Vec::new(),
        dns: None,
        volumes: Vec::new(),
        disks: Vec::new(),
        capabilities_add: Vec::new(),
    };
    let err = env.driver.prepare(&spec).await.unwrap_err();
    assert!(err.to_string().contains("qemu-guest-agent"), "{err}");
}

/// The KVM probe really runs its payloads in KVM. On a host with hardware KVM all steps
/// pass; a software KVM (PVM) passes the three mode payloads and may time out in the
/// speed loop, which is what sends VMs to TCG. Which of the two a host shows differs
/// between hosts, so this checks that the verdict follows the speed step either way;
/// both verdicts are also checked below with the steps given.
#[test]
fn the_kvm_probe_runs_the_mode_payloads_and_times_the_speed_loop() {
    use roost_node::drivers::vm::accel;
    assert!(
        Path::new("/dev/kvm").exists(),
        "no /dev/kvm: the probe test needs KVM (load kvm_intel/kvm_amd, or run on a host that exposes /dev/kvm)"
    );
    let started = std::time::Instant::now();
    let checks = accel::run_probe(accel::PROBE_TIMEOUT);
    let took = started.elapsed();
    eprintln!("KVM probe took {took:?}: {checks:#?}");
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["open", "api_version", "real_mode", "protected_mode", "long_mode", "speed"], "{checks:?}");
    for c in &checks[..5] {
        assert!(c.passed, "{c:?}");
    }
    let speed = &checks[5];
    let (usable, reason) = accel::verdict(&checks);
    // The speed payload itself is right: a short loop exits with its byte and HLT on
    // every kind of KVM (the full loop takes ~20 s under some PVM hosts).
    let short = accel::run_probe_with(accel::PROBE_TIMEOUT, 1000);
    assert!(short.len() == 6 && short.iter().all(|c| c.passed), "{short:?}");
    if speed.passed {
        assert!(usable, "{reason}");
    } else {
        assert!(speed.detail.starts_with("timed out"), "{speed:?}");
        assert!(!usable && reason.contains("speed") && reason.ends_with(": TCG"), "{reason}");
    }
}

/// Both verdicts, from given probe steps: every step passed means KVM; a failed step
/// means TCG, and the reason names the step and what passed before it.
#[test]
fn the_kvm_verdict_needs_every_step() {
    use roost_node::drivers::vm::accel::{self, KvmCheck};
    let step = |name: &str, passed: bool| KvmCheck { name: name.into(), passed, detail: format!("{name} detail") };
    let all = ["open", "api_version", "real_mode", "protected_mode", "long_mode", "speed"];
    let good: Vec<KvmCheck> = all.iter().map(|n| step(n, true)).collect();
    let (usable, reason) = accel::verdict(&good);
    assert!(usable && reason.starts_with("KVM probe passed"), "{reason}");

    let mut slow = good.clone();
    slow[5] = KvmCheck { name: "speed".into(), passed: false, detail: "timed out after 3.0 s".into() };
    let (usable, reason) = accel::verdict(&slow);
    assert!(!usable, "{reason}");
    assert!(reason.starts_with("KVM check speed failed: timed out") && reason.ends_with(": TCG"), "{reason}");
    assert!(reason.contains("passed: open, api_version, real_mode, protected_mode, long_mode"), "{reason}");

    let (usable, reason) = accel::verdict(&good[..3]);
    assert!(!usable && reason == "KVM probe incomplete: TCG", "{reason}");
}

/// A QEMU stand-in: a script in front of the real `qemu-system-x86_64`, so a test
/// decides how "QEMU" answers a request for KVM, whatever this host's KVM does.
struct WrappedQemu {
    dir: std::path::PathBuf,
}

/// Refuses a KVM launch the way QEMU does under a KVM that cannot set the vCPU's MSRs
/// (seen with PVM and `-cpu host`); any other launch runs.
const QEMU_REFUSING_KVM: &str = r#"#!/bin/bash
for a in "$@"; do
  if [ "$a" = kvm ]; then
    echo 'qemu-system-x86_64: error: failed to set MSR 0x38f to 0x7000000ff' >&2
    echo 'qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3130: kvm_buf_set_msrs: Assertion failed.' >&2
    exit 1
  fi
done
exec qemu-system-x86_64 "$@"
"#;

/// Takes a KVM launch: records its arguments, then runs the guest under TCG (with the
/// TSC settings a TCG guest needs), since this host's KVM may not run guests at all.
const QEMU_ACCEPTING_KVM: &str = r#"#!/bin/bash
here=$(dirname "$0")
printf '%s\n' "$@" > "$here/launch-args"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -accel) [ "$2" = kvm ] && args+=(-accel tcg) || args+=(-accel "$2"); shift 2 ;;
    -cpu) [ "$2" = host ] && args+=(-cpu qemu64,+arat) || args+=(-cpu "$2"); shift 2 ;;
    -append) args+=(-append "$2 tsc_early_khz=$(cat "$here/tsc-khz") tsc=reliable"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
exec qemu-system-x86_64 "${args[@]}"
"#;

impl WrappedQemu {
    fn new(script: &str) -> WrappedQemu {
        use std::os::unix::fs::PermissionsExt;
        let dir = Path::new(TEST_DIR).join(format!("qemu-wrapper-{}", unique_id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tsc-khz"), roost_node::drivers::vm::accel::tsc_khz().to_string()).unwrap();
        std::fs::write(dir.join("qemu"), script).unwrap();
        std::fs::set_permissions(dir.join("qemu"), std::fs::Permissions::from_mode(0o755)).unwrap();
        // QEMU runs as an unprivileged user: the wrapper records its launch here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        WrappedQemu { dir }
    }

    /// A driver forced to KVM that runs this "QEMU". Its data directory is its own (the
    /// verdict a refusal caches must not reach the other tests), shared by the tests that
    /// wrap QEMU so the base disk is built once per machine.
    fn kvm_driver(&self) -> VmEnv {
        require_vm_prerequisites();
        let data_dir = Path::new(TEST_DIR).join("vm-data-wrapped-qemu");
        let mut config = VmConfig::new(&data_dir);
        config.qemu = self.dir.join("qemu");
        config.accel = roost_node::drivers::vm::AccelChoice::Kvm;
        let driver = VmDriver::new(config).expect("creating the VM driver");
        assert_eq!(driver.accel().accelerator, "kvm", "forced");
        VmEnv { driver, data_dir, ids: Vec::new() }
    }

    /// The arguments of the last launch the accepting wrapper took.
    fn launch_args(&self) -> String {
        std::fs::read_to_string(self.dir.join("launch-args")).unwrap_or_default().replace('\n', " ")
    }
}

impl Drop for WrappedQemu {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn small_vm(id: &str, image: &roost_node::images::Image, hostname: &str) -> InstanceSpec {
    InstanceSpec {
        id: id.to_string(),
        rootfs: image.rootfs.clone(),
        cmd: None,
        env: Vec::new(),
        cpus: 1.0,
        memory_bytes: 128 << 20,
        pids_limit: 0,
        hostname: hostname.into(),
        networks: Vec::new(),
        dns: None,
        volumes: Vec::new(),
        disks: Vec::new(),
        capabilities_add: Vec::new(),
    }
}

/// The running VM's QEMU command line.
async fn qemu_command_line(driver: &VmDriver, id: &str) -> String {
    let pid = driver.inspect(id).await.unwrap().pid.expect("a running VM has a QEMU pid");
    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap().replace('\0', " ")
}

/// QEMU refusing KVM sends the VM, and later ones, to TCG instead of failing the start.
/// The refusal is forced (a wrapper answers a KVM launch as QEMU does under PVM), so
/// the fallback is tested on every host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_falls_back_to_tcg_when_qemu_refuses_kvm() {
    let image = debian().await;
    let qemu = WrappedQemu::new(QEMU_REFUSING_KVM);
    let mut env = qemu.kvm_driver();
    let driver = env.driver.clone();
    let id = unique_id();
    env.ids.push(id.clone());
    driver.prepare(&small_vm(&id, &image, "kvmrefused")).await.expect("prepare");
    driver.start(&id).await.expect("start falls back to TCG");
    assert_eq!(driver.inspect(&id).await.unwrap().status, InstanceStatus::Running);
    let info = driver.accel();
    assert_eq!(info.accelerator, "tcg", "{info:?}");
    assert!(!info.kvm_usable);
    let last = info.checks.last().unwrap();
    assert!(last.name == "qemu" && !last.passed && last.detail.contains("failed to set MSR"), "{last:?}");
    assert!(info.reason.contains("failed to set MSR") && info.reason.ends_with(": TCG"), "{info:?}");
    // The VM really runs under TCG: its command line carries the TSC settings.
    let args = qemu_command_line(&driver, &id).await;
    assert!(args.contains("-accel tcg") && args.contains("tsc_early_khz="), "{args}");
    // The verdict is kept: a driver made afterwards on this data directory starts on TCG.
    let again = VmDriver::new({
        let mut c = VmConfig::new(&env.data_dir);
        c.qemu = qemu.dir.join("qemu");
        c
    })
    .unwrap();
    assert_eq!(again.accel().accelerator, "tcg", "{:?}", again.accel());
}

/// QEMU accepting KVM keeps the VM on KVM: the launch asks for `-accel kvm -cpu host`
/// and no fallback is recorded. (The wrapper runs the guest under TCG behind the
/// driver's back, so this holds on hosts whose KVM cannot run guests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_stays_on_kvm_when_qemu_accepts_it() {
    let image = debian().await;
    let qemu = WrappedQemu::new(QEMU_ACCEPTING_KVM);
    let mut env = qemu.kvm_driver();
    let driver = env.driver.clone();
    let checks_before = driver.accel().checks.len();
    let id = unique_id();
    env.ids.push(id.clone());
    driver.prepare(&small_vm(&id, &image, "kvmaccepted")).await.expect("prepare");
    driver.start(&id).await.expect("start");
    assert_eq!(driver.inspect(&id).await.unwrap().status, InstanceStatus::Running);
    let info = driver.accel();
    assert_eq!(info.accelerator, "kvm", "{info:?}");
    assert_eq!(info.checks.len(), checks_before, "no QEMU refusal recorded: {info:?}");
    let args = qemu.launch_args();
    assert!(args.contains("-accel kvm -cpu host") && !args.contains("tsc_early_khz="), "{args}");
    // And the guest is usable: the agent answers an exec.
    let out = exec(&driver, &id, &["cat", "/proc/cmdline"]).await;
    assert!(out.stdout.contains("console=ttyS0"), "{out:?}");
}

/// A user's uid from /etc/passwd.
fn roost_node_uid(name: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("no user {name}"));
    line.split(':').nth(2).unwrap().parse().unwrap()
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}
