//! MicroVMs with QEMU: the `microvm` machine (virtio-mmio, no PCI, no firmware), a PVH
//! kernel, an initramfs and a qcow2 overlay over the image's shared ext4 base disk.
//!
//! QEMU runs confined ([`confine`]: its own user, session and /dev, its seccomp sandbox, every
//! file handed over as a descriptor) with its sockets in the instance's
//! directory: QMP (status, ACPI power button, pause), the serial console (a socket whose
//! `logfile=` is the instance's log, so boot output is kept with no client attached) and
//! qemu-guest-agent (exec, files). Nothing else runs per VM, so a new server adopts what
//! an old one started from the directory alone.
//!
//! Per instance, under `<data_dir>/instances/<id>/`: `spec.json`, `disk.qcow2`,
//! `qemu.pid`, `qmp.sock`, `console.sock`, `qga.sock`, `stdout.log`, `state.json` (the
//! current run), `exit.json` (how the last one ended), `paused` (while paused).

pub mod accel;
mod confine;
pub mod kit;
pub mod qmp;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::process::Command;

use crate::driver::{
    Driver, ExecProcess, ExecRequest, ExecSession, InstanceSpec, InstanceState, InstanceStatus, LogLines, LogQuery,
    NetAttachment, Stats, TarStream, VolumeAttachment,
};
use crate::error::IoContext;
use crate::logs::LogFiles;
use crate::network;
use crate::reaper::{self, Exit, ProcStat};
use crate::{Error, Result};

pub use accel::{AccelChoice, AccelInfo};

/// Guest RAM when the spec sets no memory limit.
const DEFAULT_MEMORY_MB: u64 = 256;
/// How long an exec waits for the guest agent of a VM that is still booting.
const AGENT_WAIT: Duration = Duration::from_secs(120);
/// guest-file-read/write chunk.
const FILE_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct VmConfig {
    pub data_dir: PathBuf,
    pub qemu: PathBuf,
    pub qemu_img: PathBuf,
    pub accel: AccelChoice,
    /// TCG's translation cache in MiB (each VM's largest fixed cost under TCG).
    pub tb_size_mb: u32,
    /// The unprivileged user QEMU runs as (made as a system user when missing).
    pub qemu_user: String,
}

impl VmConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> VmConfig {
        VmConfig {
            data_dir: data_dir.into(),
            qemu: PathBuf::from("qemu-system-x86_64"),
            qemu_img: PathBuf::from("qemu-img"),
            accel: AccelChoice::Auto,
            tb_size_mb: 32,
            qemu_user: "roost-qemu".into(),
        }
    }
}

#[derive(Clone)]
pub struct VmDriver {
    inner: Arc<Inner>,
}

struct Inner {
    config: VmConfig,
    /// Behind a lock: QEMU refusing KVM at a start moves it to TCG.
    accel: std::sync::RwLock<AccelInfo>,
    busybox: PathBuf,
    qemu_user: confine::QemuUser,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One guest-agent conversation at a time per VM (its socket takes one client).
    agent_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunRecord {
    pid: u32,
    start_ticks: u64,
    started_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExitRecord {
    exit_code: Option<i32>,
    signal: Option<i32>,
    unknown: bool,
    finished_at_ms: u64,
}

struct Paths {
    dir: PathBuf,
}

impl Paths {
    fn f(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn ms_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(value).expect("json")).at("writing", &tmp)?;
    fs::rename(&tmp, path).at("writing", path)
}

fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 40
        && id.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(Error::Invalid(format!("invalid instance id '{id}'"))) }
}

/// Characters a kernel argument can carry without quoting.
fn plain_arg(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::io("VM task", io::Error::other(e)))?
}

impl VmDriver {
    /// Checks the tools, probes the accelerator (cached per boot) and becomes the
    /// subreaper of the QEMU processes it detaches.
    pub fn new(config: VmConfig) -> Result<VmDriver> {
        reaper::become_subreaper().map_err(|e| Error::io("becoming a child subreaper", e))?;
        if find_program(&config.qemu).is_none() {
            return Err(Error::missing(format!("QEMU ({})", config.qemu.display()), "qemu-system-x86"));
        }
        if find_program(&config.qemu_img).is_none() {
            return Err(Error::missing("qemu-img", "qemu-utils"));
        }
        let busybox = crate::images::busybox::find_static()?;
        let instances = config.data_dir.join("instances");
        fs::create_dir_all(&instances).at("creating", &instances)?;
        let accel = accel::probe(&config.data_dir.join("vm"), config.accel);
        let qemu_user = confine::QemuUser::ensure(&config.qemu_user)?;
        Ok(VmDriver {
            inner: Arc::new(Inner {
                config,
                accel: std::sync::RwLock::new(accel),
                busybox,
                qemu_user,
                locks: Mutex::new(HashMap::new()),
                agent_locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The accelerator VMs get, and why.
    pub fn accel(&self) -> AccelInfo {
        self.inner.accel.read().expect("accel").clone()
    }

    fn vm_dir(&self) -> PathBuf {
        self.inner.config.data_dir.join("vm")
    }

    fn paths(&self, id: &str) -> Paths {
        Paths { dir: self.inner.config.data_dir.join("instances").join(id) }
    }

    async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self.inner.locks.lock().expect("locks").entry(id.to_string()).or_default().clone();
        m.lock_owned().await
    }

    async fn agent_lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self.inner.agent_locks.lock().expect("locks").entry(id.to_string()).or_default().clone();
        m.lock_owned().await
    }

    /// Builds (once) what VMs boot: the kernel and initramfs, and the base disk of the
    /// image at `rootfs`. Returns the base disk.
    pub async fn build_kit(&self, rootfs: &Path) -> Result<PathBuf> {
        let vm_dir = self.vm_dir();
        let busybox = self.inner.busybox.clone();
        let rootfs = rootfs.to_path_buf();
        blocking(move || {
            kit::kernel(&vm_dir, &busybox)?;
            kit::base_disk(&vm_dir, &rootfs, &busybox)
        })
        .await
    }

    fn spec(&self, id: &str) -> Result<InstanceSpec> {
        let p = self.paths(id);
        read_json(&p.f("spec.json")).ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// The running QEMU, if there is one.
    fn running(&self, id: &str) -> Option<RunRecord> {
        let run: RunRecord = read_json(&self.paths(id).f("state.json"))?;
        reaper::same_process_alive(run.pid, run.start_ticks).then_some(run)
    }

    /// Notes how a QEMU that is gone ended (once).
    fn settle_exit(&self, id: &str) {
        let p = self.paths(id);
        let Some(run) = read_json::<RunRecord>(&p.f("state.json")) else { return };
        if reaper::same_process_alive(run.pid, run.start_ticks) || p.f("exit.json").exists() {
            return;
        }
        let exit = reaper::reap_zombie(run.pid, run.start_ticks);
        if exit.is_none()
            && ProcStat::read(run.pid).is_some_and(|s| s.start_ticks == run.start_ticks && s.ppid == std::process::id())
        {
            // Our child, still tearing its threads down: not reapable yet, look again.
            return;
        }
        let record = match exit {
            Some(Exit::Code(c)) => {
                ExitRecord { exit_code: Some(c), signal: None, unknown: false, finished_at_ms: now_ms() }
            }
            Some(Exit::Signal(s)) => {
                ExitRecord { exit_code: None, signal: Some(s), unknown: false, finished_at_ms: now_ms() }
            }
            None => ExitRecord { exit_code: None, signal: None, unknown: true, finished_at_ms: now_ms() },
        };
        let _ = write_json(&p.f("exit.json"), &record);
        let _ = fs::remove_file(p.f("paused"));
    }

    async fn wait_gone(&self, id: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Our zombie child: reap it so it stops counting as there.
            self.settle_exit(id);
            if self.running(id).is_none() && self.paths(id).f("exit.json").exists() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn hard_kill(&self, id: &str) -> Result<()> {
        if let Some(run) = self.running(id) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.pid as i32), nix::sys::signal::SIGKILL);
            if !self.wait_gone(id, crate::driver::KILL_TIMEOUT).await {
                return Err(Error::io(format!("killing VM {id}"), io::Error::other("QEMU did not exit")));
            }
            self.known_exit(id, None, Some(libc::SIGKILL));
        }
        Ok(())
    }

    /// Records how a run ended when this driver caused it and the exit status itself
    /// was not collected (QEMU is not always our child: after a server restart it is
    /// init's).
    fn known_exit(&self, id: &str, code: Option<i32>, signal: Option<i32>) {
        let path = self.paths(id).f("exit.json");
        if read_json::<ExitRecord>(&path).is_some_and(|e| e.unknown) {
            let _ =
                write_json(&path, &ExitRecord { exit_code: code, signal, unknown: false, finished_at_ms: now_ms() });
        }
    }

    async fn ensure_taps(&self, id: &str, nics: &[NetAttachment]) -> Result<()> {
        for nic in nics {
            let tap = network::nic_ifname(id, nic.index);
            if !network::link_exists(&tap) {
                ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]).await?;
            }
            ip(&["link", "set", &tap, "master", &nic.bridge]).await?;
            ip(&["link", "set", &tap, "up"]).await?;
        }
        Ok(())
    }

    async fn remove_taps(&self, id: &str) {
        for index in 0..network::MAX_NICS as u8 {
            let tap = network::nic_ifname(id, index);
            if network::link_exists(&tap) {
                let _ = ip(&["link", "del", &tap]).await;
            }
        }
    }

    /// Starts QEMU confined ([`confine`]) with the current accelerator and waits until
    /// QMP answers: its pid, or what QEMU printed when it gave up.
    async fn launch(
        &self,
        spec: &InstanceSpec,
        kernel: &kit::Kernel,
        p: &Paths,
    ) -> Result<std::result::Result<u32, String>> {
        use std::os::unix::fs::FileTypeExt;
        use std::os::unix::process::CommandExt;
        let mut handover = confine::Handover::default();
        let args = self.qemu_args(spec, kernel, p, &mut handover)?;
        let kvm = if self.accel().accelerator == "kvm" {
            let meta = fs::metadata("/dev/kvm").at("reading", Path::new("/dev/kvm"))?;
            if !meta.file_type().is_char_device() {
                return Err(Error::Invalid("/dev/kvm is not a device".into()));
            }
            Some(std::os::unix::fs::MetadataExt::rdev(&meta))
        } else {
            None
        };
        let err_path = p.f("qemu.err");
        let err_file = fs::File::create(&err_path).at("creating", &err_path)?;
        let raw = handover.raw();
        let user = self.inner.qemu_user;
        let mut command = std::process::Command::new(&self.inner.config.qemu);
        command.args(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(err_file);
        // SAFETY: `confine::enter` makes only async-signal-safe calls.
        unsafe {
            command.pre_exec(move || confine::enter(&raw, kvm, user));
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::missing(format!("QEMU ({})", self.inner.config.qemu.display()), "qemu-system-x86"));
            }
            Err(e) => return Err(Error::io("running QEMU", e)),
        };
        // QEMU holds its copies now.
        drop(handover);
        let pid = child.id();
        let qmp_sock = p.f("qmp.sock");
        let deadline = tokio::time::Instant::now() + AGENT_WAIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let printed = fs::read_to_string(&err_path).unwrap_or_default();
                let printed = printed.trim();
                return Ok(Err(if printed.is_empty() {
                    format!("QEMU exited at once ({status})")
                } else {
                    printed.to_string()
                }));
            }
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), qmp::qmp(&qmp_sock)).await {
                // Not waited for here: the exit status is collected later (settle_exit).
                drop(child);
                return Ok(Ok(pid));
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Err(format!("QEMU did not answer on QMP within {}s", AGENT_WAIT.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// QEMU's command line; what it opens is opened here and added to `fds`.
    fn qemu_args(
        &self,
        spec: &InstanceSpec,
        kernel: &kit::Kernel,
        p: &Paths,
        fds: &mut confine::Handover,
    ) -> Result<Vec<String>> {
        let a = self.accel();
        let a = &a;
        let mem_mb = if spec.memory_bytes == 0 { DEFAULT_MEMORY_MB } else { (spec.memory_bytes >> 20).max(64) };
        let cpus = (spec.cpus.ceil() as u64).clamp(1, 64);
        let mut cmdline = vec!["console=ttyS0".to_string(), "quiet".into(), "panic=-1".into()];
        if a.accelerator == "tcg" {
            // microvm has no HPET or PM timer: under TCG the PIT calibration fails and the
            // boot hangs unless the TSC frequency is given; `tsc=reliable` keeps the
            // watchdog from dropping it when the host is busy.
            cmdline.push(format!("tsc_early_khz={}", a.tsc_khz));
            cmdline.push("tsc=reliable".into());
        }
        cmdline.extend([
            "cryptomgr.notests".to_string(),
            "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace".into(),
            "root=/dev/vda".into(),
            "rw".into(),
            "init=/.roost/bin/init".into(),
        ]);
        if !plain_arg(&spec.hostname) {
            return Err(Error::Invalid(format!("hostname '{}' is not valid for a VM", spec.hostname)));
        }
        match spec.networks.iter().find(|n| n.index == 0) {
            Some(n) => {
                let mask = std::net::Ipv4Addr::from(u32::MAX.checked_shl(32 - n.prefix_len as u32).unwrap_or(0));
                cmdline.push(format!("ip={}::{}:{}:{}:eth0:off", n.ip, n.gateway, mask, spec.hostname));
            }
            None => cmdline.push(format!("ip=::::{}:eth0:off", spec.hostname)),
        }
        if let Some(dns) = &spec.dns {
            if !plain_arg(&dns.search) && !dns.search.is_empty() {
                return Err(Error::Invalid(format!("search domain '{}' is not valid for a VM", dns.search)));
            }
            cmdline.push(format!("roost.dns={},{}", dns.nameserver, dns.search));
        }
        for d in &spec.disks {
            if !plain_arg(&d.path) || !d.path.starts_with('/') || !plain_arg(&d.volume_id) || d.volume_id.len() > 20 {
                return Err(Error::Invalid(format!("disk {} at '{}' cannot be attached to a VM", d.volume_id, d.path)));
            }
            cmdline.push(format!("roost.disk={},{},{}", d.volume_id, d.path, if d.read_only { "ro" } else { "rw" }));
        }
        let mut args: Vec<String> = vec![
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
            "-M".into(),
            "microvm".into(),
            "-m".into(),
            mem_mb.to_string(),
            "-smp".into(),
            cpus.to_string(),
        ];
        if a.accelerator == "kvm" {
            args.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]);
        } else {
            args.extend([
                "-accel".into(),
                format!("tcg,tb-size={}", self.inner.config.tb_size_mb),
                "-cpu".into(),
                // +arat keeps the LAPIC timer running in idle, so the guest goes tickless.
                "qemu64,+arat".into(),
            ]);
        }
        let ro = |path: &Path| -> Result<OwnedFd> { Ok(fs::File::open(path).at("opening", path)?.into()) };
        let rw = |path: &Path| -> Result<OwnedFd> {
            Ok(fs::OpenOptions::new().read(true).write(true).open(path).at("opening", path)?.into())
        };
        let listen = |name: &str| -> Result<OwnedFd> {
            let path = p.f(name);
            let _ = fs::remove_file(&path);
            Ok(std::os::unix::net::UnixListener::bind(&path).at("creating", &path)?.into())
        };
        let kernel_fd = fds.add(ro(&kernel.vmlinux)?)?;
        let initrd_fd = fds.add(ro(&kernel.initrd)?)?;
        let log_path = p.f("stdout.log");
        let log = fs::OpenOptions::new().append(true).create(true).open(&log_path).at("opening", &log_path)?;
        let log_fd = fds.add(log.into())?;
        let qmp_fd = fds.add(listen("qmp.sock")?)?;
        let con_fd = fds.add(listen("console.sock")?)?;
        let qga_fd = fds.add(listen("qga.sock")?)?;
        let disk = p.f("disk.qcow2");
        let base = qcow2_backing(&disk)?;
        let base_fd = fds.add(ro(&base)?)?;
        let root_fd = fds.add(rw(&disk)?)?;
        args.extend([
            "-sandbox".into(),
            confine::SANDBOX.into(),
            // A file QEMU opens by path: through the descriptor it was given.
            "-kernel".into(),
            format!("/proc/self/fd/{kernel_fd}"),
            "-initrd".into(),
            format!("/proc/self/fd/{initrd_fd}"),
            "-append".into(),
            cmdline.join(" "),
            "-name".into(),
            spec.id.clone(),
            "-add-fd".into(),
            format!("fd={log_fd},set=1"),
            "-add-fd".into(),
            format!("fd={base_fd},set=2"),
            "-add-fd".into(),
            format!("fd={root_fd},set=3"),
            "-chardev".into(),
            format!("socket,id=qmp,fd={qmp_fd},server=on,wait=off"),
            "-mon".into(),
            "chardev=qmp,mode=control".into(),
            "-chardev".into(),
            format!("socket,id=con,fd={con_fd},server=on,wait=off,logfile=/dev/fdset/1,logappend=on"),
            "-serial".into(),
            "chardev:con".into(),
            "-device".into(),
            "virtio-serial-device".into(),
            "-chardev".into(),
            format!("socket,id=qga,fd={qga_fd},server=on,wait=off"),
            "-device".into(),
            "virtserialport,chardev=qga,name=org.qemu.guest_agent.0".into(),
            "-device".into(),
            "virtio-rng-device".into(),
            "-blockdev".into(),
            "driver=file,node-name=base-file,filename=/dev/fdset/2,read-only=on".into(),
            "-blockdev".into(),
            "driver=raw,node-name=base,file=base-file,read-only=on".into(),
            "-blockdev".into(),
            "driver=file,node-name=root-file,filename=/dev/fdset/3,discard=unmap".into(),
            "-blockdev".into(),
            "driver=qcow2,node-name=root,file=root-file,backing=base,discard=unmap".into(),
            "-device".into(),
            "virtio-blk-device,drive=root".into(),
        ]);
        for (i, d) in spec.disks.iter().enumerate() {
            let format = match d.format {
                crate::DiskFormat::Raw => "raw",
                crate::DiskFormat::Qcow2 => "qcow2",
            };
            let fd = fds.add(if d.read_only { ro(&d.image)? } else { rw(&d.image)? })?;
            let set = 10 + i;
            let ro = if d.read_only { ",read-only=on" } else { "" };
            // A qcow2 volume stands alone: no backing file is looked up by path.
            let backing = if d.format == crate::DiskFormat::Qcow2 { ",backing=null" } else { "" };
            args.extend([
                "-add-fd".into(),
                format!("fd={fd},set={set}"),
                "-blockdev".into(),
                format!("driver=file,node-name={}-file,filename=/dev/fdset/{set}{ro}", d.volume_id),
                "-blockdev".into(),
                format!("driver={format},node-name={},file={}-file{ro}{backing}", d.volume_id, d.volume_id),
                "-device".into(),
                format!("virtio-blk-device,drive={},serial={}", d.volume_id, d.volume_id),
            ]);
        }
        for n in &spec.networks {
            let tap = network::nic_ifname(&spec.id, n.index);
            let fd = fds.add(confine::open_tap(&tap)?)?;
            args.extend([
                "-netdev".into(),
                format!("tap,id=n{},fd={fd}", n.index),
                "-device".into(),
                format!("virtio-net-device,netdev=n{},mac={}", n.index, n.mac),
            ]);
        }
        Ok(args)
    }

    /// Runs `cmd` in the guest through the agent with captured output; returns
    /// (exit code, stdout, stderr).
    async fn agent_exec(&self, id: &str, argv: &[String], env: &[String], input: Option<&[u8]>) -> Result<AgentExit> {
        let qga_path = self.paths(id).f("qga.sock");
        let pid = {
            let _g = self.agent_lock(id).await;
            let mut c = self.agent(id, &qga_path).await?;
            let mut args = json!({ "path": argv[0], "arg": &argv[1..], "capture-output": true });
            if !env.is_empty() {
                args["env"] = json!(env);
            }
            if let Some(input) = input {
                args["input-data"] = json!(base64::engine::general_purpose::STANDARD.encode(input));
            }
            let r = c.execute("guest-exec", Some(args)).await?;
            r.get("pid")
                .and_then(Value::as_i64)
                .ok_or_else(|| Error::tool("qemu-guest-agent", "guest-exec gave no pid"))?
        };
        let mut delay = Duration::from_millis(20);
        loop {
            let status = {
                let _g = self.agent_lock(id).await;
                let mut c = self.agent(id, &qga_path).await?;
                c.execute("guest-exec-status", Some(json!({ "pid": pid }))).await?
            };
            if status.get("exited").and_then(Value::as_bool) == Some(true) {
                let decode = |k: &str| {
                    status
                        .get(k)
                        .and_then(Value::as_str)
                        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                        .unwrap_or_default()
                };
                let code = match (
                    status.get("exitcode").and_then(Value::as_i64),
                    status.get("signal").and_then(Value::as_i64),
                ) {
                    (_, Some(sig)) => 128 + sig as i32,
                    (Some(c), None) => c as i32,
                    (None, None) => -1,
                };
                return Ok(AgentExit { code, stderr: decode("err-data") });
            }
            if self.running(id).is_none() {
                return Err(Error::Invalid(format!("VM {id} stopped while the command ran")));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }

    /// Runs `argv` (which sends its output to `paths`) through the agent and copies what
    /// lands in those files to `sinks` while it runs; returns the exit code.
    async fn stream_exec(
        &self,
        id: &str,
        argv: &[String],
        env: &[String],
        paths: [&String; 2],
        mut sinks: [tokio::io::DuplexStream; 2],
    ) -> Result<i32> {
        use tokio::io::AsyncWriteExt;
        let qga_path = self.paths(id).f("qga.sock");
        let pid = {
            let _g = self.agent_lock(id).await;
            let mut c = self.agent(id, &qga_path).await?;
            let args = json!({ "path": argv[0], "arg": &argv[1..], "env": env, "capture-output": false });
            let r = c.execute("guest-exec", Some(args)).await?;
            r.get("pid")
                .and_then(Value::as_i64)
                .ok_or_else(|| Error::tool("qemu-guest-agent", "guest-exec gave no pid"))?
        };
        let mut handles: [Option<i64>; 2] = [None, None];
        let mut delay = Duration::from_millis(20);
        loop {
            let (status, chunks) = {
                let _g = self.agent_lock(id).await;
                let mut c = self.agent(id, &qga_path).await?;
                // The status first: output read after it saw the exit is complete.
                let status = c.execute("guest-exec-status", Some(json!({ "pid": pid }))).await?;
                let mut chunks: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
                for i in 0..2 {
                    if handles[i].is_none() {
                        // Created by the command's shell; not there yet at the very start.
                        if let Ok(h) =
                            c.execute("guest-file-open", Some(json!({ "path": paths[i], "mode": "r" }))).await
                        {
                            handles[i] = h.as_i64();
                        }
                    }
                    let Some(h) = handles[i] else { continue };
                    loop {
                        let r = c.execute("guest-file-read", Some(json!({ "handle": h, "count": FILE_CHUNK }))).await?;
                        let bytes = r
                            .get("buf-b64")
                            .and_then(Value::as_str)
                            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                            .unwrap_or_default();
                        let more = bytes.len() == FILE_CHUNK;
                        chunks[i].extend(bytes);
                        if !more {
                            break;
                        }
                    }
                }
                let exited = status.get("exited").and_then(Value::as_bool) == Some(true);
                if exited {
                    for h in handles.iter().flatten() {
                        let _ = c.execute("guest-file-close", Some(json!({ "handle": h }))).await;
                    }
                }
                (status, chunks)
            };
            let got_output = chunks.iter().any(|c| !c.is_empty());
            for (sink, chunk) in sinks.iter_mut().zip(chunks) {
                if !chunk.is_empty() {
                    let _ = sink.write_all(&chunk).await;
                }
            }
            if status.get("exited").and_then(Value::as_bool) == Some(true) {
                return Ok(
                    match (status.get("exitcode").and_then(Value::as_i64), status.get("signal").and_then(Value::as_i64))
                    {
                        (_, Some(sig)) => 128 + sig as i32,
                        (Some(c), None) => c as i32,
                        (None, None) => -1,
                    },
                );
            }
            if self.running(id).is_none() {
                return Err(Error::Invalid(format!("VM {id} stopped while the command ran")));
            }
            delay = if got_output { Duration::from_millis(20) } else { (delay * 2).min(Duration::from_millis(200)) };
            tokio::time::sleep(delay).await;
        }
    }

    /// A synchronised guest-agent session, waiting for the agent of a booting VM.
    async fn agent(&self, id: &str, path: &Path) -> Result<qmp::Conn> {
        let deadline = tokio::time::Instant::now() + AGENT_WAIT;
        loop {
            if self.running(id).is_none() {
                return Err(Error::Invalid(format!("VM {id} is not running")));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match qmp::qga(path, left.min(Duration::from_secs(5))).await {
                Ok(c) => return Ok(c),
                Err(e) if left.is_zero() => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Appends the caller's stdin to `path` in the guest as it arrives, then marks its end
    /// with `path.done` (which the exec script's relay waits for).
    async fn pump_stdin(&self, id: &str, path: &str, mut stdin: tokio::io::DuplexStream) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; FILE_CHUNK];
        loop {
            let n = stdin.read(&mut buf).await.map_err(|e| Error::io("reading exec stdin", e))?;
            if n == 0 {
                break;
            }
            self.put_guest_file(id, path, "a", &buf[..n]).await?;
        }
        self.write_guest_file(id, &format!("{path}.done"), b"").await
    }

    async fn write_guest_file(&self, id: &str, path: &str, data: &[u8]) -> Result<()> {
        self.put_guest_file(id, path, "w", data).await
    }

    /// Writes (`mode` "w") or appends ("a") `data` to a file in the guest.
    async fn put_guest_file(&self, id: &str, path: &str, mode: &str, data: &[u8]) -> Result<()> {
        let _g = self.agent_lock(id).await;
        let mut c = self.agent(id, &self.paths(id).f("qga.sock")).await?;
        let handle = c.execute("guest-file-open", Some(json!({ "path": path, "mode": mode }))).await?;
        let handle = handle.as_i64().ok_or_else(|| Error::tool("qemu-guest-agent", "no file handle"))?;
        let mut result = Ok(());
        for chunk in data.chunks(FILE_CHUNK) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(chunk);
            if let Err(e) = c.execute("guest-file-write", Some(json!({ "handle": handle, "buf-b64": b64 }))).await {
                result = Err(e);
                break;
            }
        }
        c.execute("guest-file-close", Some(json!({ "handle": handle }))).await?;
        result
    }

    async fn read_guest_file(&self, id: &str, path: &str) -> Result<Vec<u8>> {
        let _g = self.agent_lock(id).await;
        let mut c = self.agent(id, &self.paths(id).f("qga.sock")).await?;
        let handle = c.execute("guest-file-open", Some(json!({ "path": path, "mode": "r" }))).await?;
        let handle = handle.as_i64().ok_or_else(|| Error::tool("qemu-guest-agent", "no file handle"))?;
        let mut out = Vec::new();
        let result = loop {
            match c.execute("guest-file-read", Some(json!({ "handle": handle, "count": FILE_CHUNK }))).await {
                Ok(r) => {
                    if let Some(b64) = r.get("buf-b64").and_then(Value::as_str) {
                        out.extend(base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default());
                    }
                    if r.get("eof").and_then(Value::as_bool) == Some(true) {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        c.execute("guest-file-close", Some(json!({ "handle": handle }))).await?;
        result.map(|()| out)
    }

    async fn qmp_call(&self, id: &str, command: &str, args: Option<Value>) -> Result<Value> {
        let mut c = qmp::qmp(&self.paths(id).f("qmp.sock")).await?;
        c.execute(command, args).await
    }
}

struct AgentExit {
    code: i32,
    stderr: Vec<u8>,
}

/// The backing file a qcow2 overlay names in its header (the image's shared base disk).
fn qcow2_backing(path: &Path) -> Result<PathBuf> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::ffi::OsStringExt;
    let mut f = fs::File::open(path).at("opening", path)?;
    let mut header = [0u8; 20];
    f.read_exact(&mut header).at("reading", path)?;
    let offset = u64::from_be_bytes(header[8..16].try_into().expect("8 bytes"));
    let size = u32::from_be_bytes(header[16..20].try_into().expect("4 bytes")) as usize;
    if &header[..4] != b"QFI\xfb" || offset == 0 || size == 0 || size > 4096 {
        return Err(Error::Invalid(format!("{} is not a qcow2 overlay with a backing file", path.display())));
    }
    let mut name = vec![0u8; size];
    f.seek(SeekFrom::Start(offset)).and_then(|_| f.read_exact(&mut name)).at("reading", path)?;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(name)))
}

async fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().await.map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound { Error::missing("ip", "iproute2") } else { Error::io("running ip", e) }
    })?;
    if !out.status.success() {
        return Err(Error::tool(
            "ip",
            format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    Ok(())
}

/// An exec through the guest agent: output arrives when the command ends.
struct AgentProcess {
    result: Option<tokio::task::JoinHandle<Result<i32>>>,
    /// Runs on a pty in the guest (`script`): the driver, the VM, and the guest file the
    /// command wrote its pty's path to.
    tty: Option<(VmDriver, String, String)>,
}

#[async_trait]
impl ExecProcess for AgentProcess {
    fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        let Some((driver, id, tty_file)) = &self.tty else {
            return Err(Error::Invalid("this exec has no terminal".into()));
        };
        // `stty -F` on the guest's pty sets its size, and the guest kernel sends the
        // foreground job SIGWINCH, as a local terminal would. Through the agent, so it
        // lands a moment later; resizes are rare and idempotent.
        let script =
            format!("p=$(cat {tty_file} 2>/dev/null) && [ -n \"$p\" ] && stty -F \"$p\" rows {rows} cols {cols}");
        let argv = vec!["/bin/sh".to_string(), "-c".into(), script];
        let (driver, id) = (driver.clone(), id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = driver.agent_exec(&id, &argv, &[], None).await;
            });
        }
        Ok(())
    }

    async fn wait(&mut self) -> Result<i32> {
        match self.result.take() {
            Some(h) => h.await.map_err(|e| Error::io("exec task", io::Error::other(e)))?,
            None => Err(Error::Invalid("already waited".into())),
        }
    }
}

/// The serial console as a terminal: ends when the console connection closes.
struct ConsoleProcess {
    closed: Option<tokio::sync::oneshot::Receiver<()>>,
}

#[async_trait]
impl ExecProcess for ConsoleProcess {
    fn resize(&self, _rows: u16, _cols: u16) -> Result<()> {
        // A serial line has no window size to tell.
        Ok(())
    }

    async fn wait(&mut self) -> Result<i32> {
        if let Some(rx) = self.closed.take() {
            let _ = rx.await;
        }
        Ok(0)
    }
}

/// A reader that says when it reached the end.
struct NotifyOnEof<R> {
    inner: R,
    tx: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for NotifyOnEof<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(res) = &r
            && (res.is_err() || buf.filled().len() == before)
            && let Some(tx) = self.tx.take()
        {
            let _ = tx.send(());
        }
        r
    }
}

/// The console's input: Ctrl-] (0x1d) ends the session (the shell on a serial line
/// never ends it: getty starts a new one).
struct EscapeWriter<W> {
    inner: W,
    closing: bool,
}

/// The byte that leaves the serial console.
pub const CONSOLE_ESCAPE: u8 = 0x1d;

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for EscapeWriter<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        if self.closing {
            return match std::pin::Pin::new(&mut self.inner).poll_shutdown(cx) {
                Poll::Ready(_) => Poll::Ready(Ok(buf.len())),
                Poll::Pending => Poll::Pending,
            };
        }
        match buf.iter().position(|&b| b == CONSOLE_ESCAPE) {
            Some(0) => {
                self.closing = true;
                self.poll_write(cx, buf)
            }
            Some(n) => std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..n]),
            None => std::pin::Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(h) = &self.result {
            h.abort();
        }
    }
}

/// Where a pipe of bytes produced later (by a task) is read.
fn pipe() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    tokio::io::duplex(64 * 1024)
}

/// The guest side of a VM exec: `sh -c EXEC_SCRIPT cwd out err in mode cmd...`. Output
/// goes to the files `out` and `err`; stdin is the file `in` (mode `whole`), or (mode
/// `stream`) what a relay copies from `in` as it grows until `in.done` exists, through a
/// FIFO so the command sees EOF then. The relay uses Roost's busybox, present in every VM.
const EXEC_SCRIPT: &str = r#"o=$1; e=$2; i=$3; m=$4; shift 4
exec >"$o" 2>"$e"
cd "$0" || exit 126
[ "$m" = stream ] || exec "$@" <"$i"
b=/.roost/bin/busybox; f="$i.fifo"
$b mkfifo "$f" || exit 126
(off=0; while :; do
  last=; [ -e "$i.done" ] && last=1
  n=$($b stat -c %s "$i")
  if [ "$n" -gt "$off" ]; then $b tail -c +$((off+1)) "$i" | $b head -c $((n-off)); off=$n; fi
  [ -n "$last" ] && exit 0
  $b sleep 0.05
done) >"$f" &
r=$!
"$@" <"$f"; s=$?
kill $r 2>/dev/null; $b rm -f "$f"
exit $s"#;

/// Reads the caller's stdin while it arrives at once: (what came, whether it ended).
/// A caller that sends all of it and closes (the CLI without -i, the SDK's `run`) gets
/// the cheap path; one still writing after a moment gets the streaming relay.
async fn read_initial_stdin(stdin: &mut tokio::io::DuplexStream) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_millis(100), stdin.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (data, true),
            Ok(Ok(n)) => {
                data.extend_from_slice(&buf[..n]);
                if data.len() >= FILE_CHUNK {
                    return (data, false);
                }
            }
            Err(_) => return (data, false),
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[async_trait]
impl Driver for VmDriver {
    fn kind(&self) -> &'static str {
        "vm"
    }

    async fn prepare(&self, spec: &InstanceSpec) -> Result<()> {
        validate_id(&spec.id)?;
        if !spec.rootfs.is_dir() {
            return Err(Error::Invalid(format!("root filesystem {} does not exist", spec.rootfs.display())));
        }
        let _guard = self.lock(&spec.id).await;
        let base = self.build_kit(&spec.rootfs).await?;
        let p = self.paths(&spec.id);
        fs::create_dir_all(&p.dir).at("creating", &p.dir)?;
        write_json(&p.f("spec.json"), spec)?;
        let disk = p.f("disk.qcow2");
        if !disk.exists() {
            let tmp = p.f("disk.qcow2.tmp");
            let out = Command::new(&self.inner.config.qemu_img)
                .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                // Absolute: a relative backing path is resolved against the overlay's directory.
                .arg(&base)
                .arg(&tmp)
                .stdin(Stdio::null())
                .output()
                .await
                .map_err(|e| Error::io("running qemu-img", e))?;
            if !out.status.success() {
                return Err(Error::tool("qemu-img", String::from_utf8_lossy(&out.stderr).trim().to_string()));
            }
            fs::rename(&tmp, &disk).at("creating", &disk)?;
        }
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        if self.running(id).is_some() {
            return Ok(());
        }
        let spec = self.spec(id)?;
        let p = self.paths(id);
        let kernel = {
            let vm_dir = self.vm_dir();
            let busybox = self.inner.busybox.clone();
            blocking(move || kit::kernel(&vm_dir, &busybox)).await?
        };
        self.ensure_taps(id, &spec.networks).await?;
        for f in ["qemu.pid", "qmp.sock", "console.sock", "qga.sock", "exit.json", "paused"] {
            let _ = fs::remove_file(p.f(f));
        }
        let logs = LogFiles::new(&p.dir);
        drop(logs.open_writers()?);
        let _ = logs.mark();
        let mut launched = self.launch(&spec, &kernel, &p).await?;
        if let Err(stderr) = &launched {
            // QEMU cannot set the vCPU's MSRs under a KVM the probe let through (seen with
            // PVM and `-cpu host`): KVM is unusable here, so this and later VMs get TCG.
            if stderr.contains("failed to set MSR") && self.accel().accelerator == "kvm" {
                tracing::warn!(error = %stderr.trim(), "QEMU refused KVM; falling back to TCG");
                self.inner.accel.write().expect("accel").qemu_refused_kvm(&self.vm_dir(), stderr);
                launched = self.launch(&spec, &kernel, &p).await?;
            }
        }
        let pid = launched.map_err(|stderr| Error::tool("qemu", stderr))?;
        fs::write(p.f("qemu.pid"), format!("{pid}\n")).at("writing", &p.f("qemu.pid"))?;
        let stat = ProcStat::read(pid).ok_or_else(|| Error::tool("qemu", "QEMU exited right after starting"))?;
        write_json(&p.f("state.json"), &RunRecord { pid, start_ticks: stat.start_ticks, started_at_ms: now_ms() })?;
        Ok(())
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        if self.running(id).is_none() {
            self.settle_exit(id);
            return Ok(());
        }
        // A paused guest cannot see the power button.
        if self.paths(id).f("paused").exists() {
            let _ = self.qmp_call(id, "cont", None).await;
        }
        // The ACPI power button: the guest's acpid powers off cleanly.
        let pressed = self.qmp_call(id, "system_powerdown", None).await.is_ok();
        if !pressed || !self.wait_gone(id, grace).await {
            self.hard_kill(id).await?;
        } else {
            // The guest powered off: QEMU exits 0 then.
            self.known_exit(id, Some(0), None);
        }
        Ok(())
    }

    async fn kill(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        self.hard_kill(id).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        self.hard_kill(id).await?;
        self.remove_taps(id).await;
        let p = self.paths(id);
        match fs::remove_dir_all(&p.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", p.dir.display()), e)),
        }
        self.inner.locks.lock().expect("locks").remove(id);
        self.inner.agent_locks.lock().expect("locks").remove(id);
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<InstanceState> {
        validate_id(id)?;
        let p = self.paths(id);
        if !p.f("spec.json").exists() {
            return Ok(InstanceState::missing());
        }
        let run: Option<RunRecord> = read_json(&p.f("state.json"));
        if let Some(run) = self.running(id) {
            let paused = p.f("paused").exists();
            return Ok(InstanceState {
                status: if paused { InstanceStatus::Paused } else { InstanceStatus::Running },
                pid: Some(run.pid),
                exit_code: None,
                exit_signal: None,
                exit_unknown: false,
                oom_killed: false,
                started_at: Some(ms_time(run.started_at_ms)),
                finished_at: None,
            });
        }
        self.settle_exit(id);
        if let Some(run) = &run
            && !p.f("exit.json").exists()
            && ProcStat::read(run.pid).is_some_and(|s| s.start_ticks == run.start_ticks)
        {
            // Exiting, not yet reapable: still running until its status is in.
            return Ok(InstanceState {
                status: InstanceStatus::Running,
                pid: Some(run.pid),
                exit_code: None,
                exit_signal: None,
                exit_unknown: false,
                oom_killed: false,
                started_at: Some(ms_time(run.started_at_ms)),
                finished_at: None,
            });
        }
        let exit: Option<ExitRecord> = read_json(&p.f("exit.json"));
        Ok(InstanceState {
            status: InstanceStatus::Stopped,
            pid: None,
            exit_code: exit.as_ref().and_then(|e| e.exit_code),
            exit_signal: exit.as_ref().and_then(|e| e.signal),
            exit_unknown: exit.as_ref().is_some_and(|e| e.unknown),
            oom_killed: false,
            started_at: run.map(|r| ms_time(r.started_at_ms)),
            finished_at: exit.map(|e| ms_time(e.finished_at_ms)),
        })
    }

    async fn list(&self) -> Result<Vec<String>> {
        let dir = self.inner.config.data_dir.join("instances");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).at("listing", &dir)?.flatten() {
            if let Some(name) = entry.file_name().to_str()
                && validate_id(name).is_ok()
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession> {
        validate_id(id)?;
        if self.running(id).is_none() {
            return Err(Error::Invalid(format!("VM {id} is not running")));
        }
        if request.tty && (request.console || request.cmd.is_empty()) {
            // The serial console (a root shell); the command is not run.
            let stream = tokio::net::UnixStream::connect(self.paths(id).f("console.sock"))
                .await
                .map_err(|e| Error::io("connecting to the serial console", e))?;
            let (r, w) = stream.into_split();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let reader = NotifyOnEof { inner: r, tx: Some(tx) };
            return Ok(ExecSession::new(
                Box::new(EscapeWriter { inner: w, closing: false }),
                Box::new(reader),
                None,
                Box::new(ConsoleProcess { closed: Some(rx) }),
            ));
        }
        if request.cmd.is_empty() {
            return Err(Error::Invalid("exec needs a command".into()));
        }
        // The command's output goes to two files in the guest's /run, read while it runs
        // (qemu-guest-agent's own capture returns output only at exit). Its stdin comes
        // from a third file: written whole when the caller's stdin ends at once (the CLI
        // without -i, the SDK's run), else appended to as it arrives and relayed to the
        // command through a FIFO until a `.done` marker appears (the agent has no stdin
        // stream, and a FIFO written by the agent itself would block it).
        let tag =
            format!("/run/.roost-exec-{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
        let (out_path, err_path, in_path) = (format!("{tag}.out"), format!("{tag}.err"), format!("{tag}.in"));
        let tty_path = format!("{tag}.tty");
        let mut argv = vec!["/bin/sh".to_string(), "-c".into(), EXEC_SCRIPT.into()];
        argv.push(request.cwd.clone().unwrap_or_else(|| "/".into()));
        argv.push(out_path.clone());
        argv.push(err_path.clone());
        let mut env: Vec<String> = vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "HOME=/root".into(),
            "TERM=xterm".into(),
        ];
        env.extend(request.env.iter().map(|(k, v)| format!("{k}={v}")));
        let (stdout_w, stdout_r) = pipe();
        let (stderr_w, stderr_r) = pipe();
        let (stdin_w, mut stdin_r) = pipe();
        let driver = self.clone();
        let id = id.to_string();
        let id_for_resize = id.clone();
        let tty_file = tty_path.clone();
        let cmd = if request.tty {
            // A terminal: the command runs on a pty that util-linux `script` opens in
            // the guest; everything it prints comes back as stdout. The pty's path is
            // noted for later resizes.
            let mut inner = format!("tty > {tty_path} 2>/dev/null; ");
            if request.rows > 0 && request.cols > 0 {
                inner.push_str(&format!("stty rows {} cols {} 2>/dev/null; ", request.rows, request.cols));
            }
            inner.push_str("exec");
            for a in &request.cmd {
                inner.push(' ');
                inner.push_str(&shell_quote(a));
            }
            vec!["script".to_string(), "-qfec".into(), inner, "/dev/null".into()]
        } else {
            request.cmd.clone()
        };
        let task = tokio::spawn(async move {
            let (input, ended) = read_initial_stdin(&mut stdin_r).await;
            let mut cleanup = vec![out_path.clone(), err_path.clone(), tty_file.clone()];
            let mut pump = None;
            if ended && input.is_empty() {
                argv.extend(["/dev/null".to_string(), "whole".into()]);
            } else {
                driver.write_guest_file(&id, &in_path, &input).await?;
                cleanup.push(in_path.clone());
                if ended {
                    argv.extend([in_path.clone(), "whole".into()]);
                } else {
                    argv.extend([in_path.clone(), "stream".into()]);
                    cleanup.push(format!("{in_path}.done"));
                    let (d, id, path) = (driver.clone(), id.clone(), in_path.clone());
                    pump = Some(tokio::spawn(async move { d.pump_stdin(&id, &path, stdin_r).await }));
                }
            }
            argv.extend(cmd);
            let result = driver.stream_exec(&id, &argv, &env, [&out_path, &err_path], [stdout_w, stderr_w]).await;
            if let Some(p) = pump {
                p.abort();
            }
            let mut rm = vec!["/bin/rm".to_string(), "-f".into()];
            rm.extend(cleanup);
            let _ = driver.agent_exec(&id, &rm, &[], None).await;
            result
        });
        Ok(ExecSession::new(
            Box::new(stdin_w),
            Box::new(stdout_r),
            Some(Box::new(stderr_r)),
            Box::new(AgentProcess {
                result: Some(task),
                tty: request.tty.then(|| (self.clone(), id_for_resize, tty_path)),
            }),
        ))
    }

    async fn logs(&self, id: &str, query: LogQuery) -> Result<LogLines> {
        validate_id(id)?;
        let p = self.paths(id);
        if !p.dir.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let driver = self.clone();
        let id = id.to_string();
        let alive = move || driver.running(&id).is_some();
        LogFiles::new(&p.dir).read(query, Box::new(alive)).await
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        validate_id(id)?;
        let spec = self.spec(id)?;
        let (net_rx_bytes, net_tx_bytes) = network::traffic(id).unwrap_or((0, 0));
        let limit = if spec.memory_bytes == 0 { DEFAULT_MEMORY_MB << 20 } else { spec.memory_bytes };
        let Some(run) = self.running(id) else {
            return Ok(Stats { memory_limit: Some(limit), net_rx_bytes, net_tx_bytes, ..Stats::default() });
        };
        // The host's view of the QEMU process: CPU time and resident memory.
        let stat = fs::read_to_string(format!("/proc/{}/stat", run.pid)).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let cpu_usage_ns = (ticks(11) + ticks(12)) * 1_000_000_000 / hz;
        let status = fs::read_to_string(format!("/proc/{}/status", run.pid)).unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Stats {
            cpu_usage_ns,
            memory_bytes: rss_kb * 1024,
            memory_limit: Some(limit),
            pids: 1,
            net_rx_bytes,
            net_tx_bytes,
        })
    }

    async fn copy_in(&self, id: &str, path: &str, mut tar: TarStream) -> Result<()> {
        validate_id(id)?;
        let mut bytes = Vec::new();
        tar.read_to_end(&mut bytes).await.map_err(|e| Error::io("reading the archive", e))?;
        let tmp = format!("/tmp/.roost-cp-{}.tar", now_ms());
        self.write_guest_file(id, &tmp, &bytes).await?;
        let script =
            format!("tar -xf {t} -C {p}; rc=$?; rm -f {t}; exit $rc", t = shell_quote(&tmp), p = shell_quote(path));
        let exit = self.agent_exec(id, &["/bin/sh".into(), "-c".into(), script], &[], None).await?;
        if exit.code != 0 {
            return Err(Error::Invalid(format!(
                "copying into {path} failed: {}",
                String::from_utf8_lossy(&exit.stderr).trim()
            )));
        }
        Ok(())
    }

    async fn copy_out(&self, id: &str, path: &str) -> Result<TarStream> {
        validate_id(id)?;
        let p = Path::new(path);
        let parent = p.parent().map(|x| x.display().to_string()).unwrap_or_else(|| "/".into());
        let name = p.file_name().map(|x| x.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into());
        let tmp = format!("/tmp/.roost-cp-{}.tar", now_ms());
        let script =
            format!("tar -cf {t} -C {d} {n}", t = shell_quote(&tmp), d = shell_quote(&parent), n = shell_quote(&name));
        let exit = self.agent_exec(id, &["/bin/sh".into(), "-c".into(), script], &[], None).await?;
        if exit.code != 0 {
            let _ = self.agent_exec(id, &["/bin/rm".into(), "-f".into(), tmp.clone()], &[], None).await;
            return Err(Error::NotFound(format!("{path} in {id}")));
        }
        let bytes = self.read_guest_file(id, &tmp).await;
        let _ = self.agent_exec(id, &["/bin/rm".into(), "-f".into(), tmp], &[], None).await;
        Ok(Box::new(io::Cursor::new(bytes?)))
    }

    async fn attach_network(&self, id: &str, nic: &NetAttachment) -> Result<()> {
        validate_id(id)?;
        if self.running(id).is_some() {
            // virtio-mmio (the microvm machine) has no hotplug.
            return Err(Error::Unsupported(
                "a running microVM cannot get a new NIC (no hotplug on the microvm machine): it is added at the next start"
                    .into(),
            ));
        }
        let _guard = self.lock(id).await;
        let mut spec = self.spec(id)?;
        spec.networks.retain(|n| n.index != nic.index);
        spec.networks.push(nic.clone());
        spec.networks.sort_by_key(|n| n.index);
        write_json(&self.paths(id).f("spec.json"), &spec)
    }

    async fn detach_network(&self, id: &str, nic: &NetAttachment) -> Result<()> {
        validate_id(id)?;
        if self.running(id).is_some() {
            return Err(Error::Unsupported(
                "a running microVM cannot lose a NIC (no hotplug on the microvm machine): stop it first".into(),
            ));
        }
        let _guard = self.lock(id).await;
        let Ok(mut spec) = self.spec(id) else { return Ok(()) };
        spec.networks.retain(|n| n.index != nic.index);
        write_json(&self.paths(id).f("spec.json"), &spec)?;
        let tap = network::nic_ifname(id, nic.index);
        if network::link_exists(&tap) {
            let _ = ip(&["link", "del", &tap]).await;
        }
        Ok(())
    }

    async fn attach_volume(&self, id: &str, disk: &VolumeAttachment) -> Result<()> {
        let _ = disk;
        validate_id(id)?;
        Err(Error::Unsupported(
            "the microvm machine (virtio-mmio) has no hotplug: the volume is attached at the next start".into(),
        ))
    }

    async fn detach_volume(&self, id: &str, disk: &VolumeAttachment, force: bool) -> Result<()> {
        let _ = (disk, force);
        validate_id(id)?;
        Err(Error::Unsupported(
            "the microvm machine (virtio-mmio) has no hotplug: the volume is detached at the next start".into(),
        ))
    }

    async fn pause(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        if self.running(id).is_none() {
            return Err(Error::Invalid(format!("VM {id} is not running")));
        }
        self.qmp_call(id, "stop", None).await?;
        fs::write(self.paths(id).f("paused"), b"").at("writing", &self.paths(id).f("paused"))
    }

    async fn resume(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        if self.running(id).is_none() {
            return Err(Error::Invalid(format!("VM {id} is not running")));
        }
        self.qmp_call(id, "cont", None).await?;
        let _ = fs::remove_file(self.paths(id).f("paused"));
        Ok(())
    }
}
