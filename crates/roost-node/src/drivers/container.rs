//! OCI containers with runc, and no process of ours per container.
//!
//! An instance is a directory `<data_dir>/instances/<id>/`: the OCI bundle
//! (`config.json`, written with `oci-spec`), the overlay (`upper/`, `work/`, mounted on
//! `rootfs/` over the image's read-only root), the files mounted into it, its logs, and
//! our records (`spec.json` as given, `state.json` of the current run, `exit.json` of the
//! last). Its network namespace is `<netns_dir>/roost-<id>`.
//!
//! `runc run --detach` starts the container and exits; the container's init then belongs
//! to this server, a child subreaper ([`crate::reaper`]), which waits on its pidfd and
//! records the exit status and the memory cgroup's OOM kills in `exit.json`. Its stdout
//! and stderr are log files it holds itself ([`crate::logs`]). So a running container
//! costs nothing beyond its own processes, and keeps running when the server stops; a
//! new driver adopts it from the directory. What is lost across a server restart is
//! only the exit status of a container that exits while no process of ours is its
//! parent: `inspect` then says `exit_unknown`.

mod agent;
mod bundle;
mod exec;
mod files;
mod mountns;
mod runc;
mod seccomp;
pub mod userns;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use bundle::{CPU_PERIOD_US, cpu_quota};

use self::runc::Runc;
use crate::cgroups::{Cgroup, Layout};
use crate::driver::{DiskFormat, NetAttachment, VolumeAttachment};
use crate::driver::{
    Driver, ExecRequest, ExecSession, InstanceSpec, InstanceState, InstanceStatus, KILL_TIMEOUT, LogLines, LogQuery,
    Stats, TarStream,
};
use crate::error::IoContext;
use crate::logs::{LogFiles, unix_ms};
use crate::network::{self, Network, netns};
use crate::reaper::{self, Exit, PidFd, ProcStat};
use crate::storage;
use crate::{Error, Result};

/// Where the driver keeps things, and what it runs.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// Instances live in `<data_dir>/instances/`.
    pub data_dir: PathBuf,
    /// The runc program (`runc` from PATH by default).
    pub runc: PathBuf,
    /// runc's state directory. On tmpfs (`/run`), so a reboot forgets containers that
    /// a reboot killed.
    pub runc_root: PathBuf,
    /// Where network namespaces are mounted (`/run/netns`, where `ip netns` looks).
    pub netns_dir: PathBuf,
    /// The parent cgroup of the instances' cgroups.
    pub cgroup_parent: String,
    /// A log file is rotated past this size (one older generation is kept).
    pub log_max_bytes: u64,
    /// The nft program.
    pub nft: String,
    /// Containers with the default init run roost-init as pid 1, which serves execs
    /// without `runc exec` ([`agent`]); off: the shell init and `runc exec` only.
    pub exec_agent: bool,
    /// Whether containers run in a user namespace ([`userns`]): `auto` where the host
    /// supports it.
    pub userns: userns::UsernsMode,
}

impl ContainerConfig {
    /// The configuration of the server whose data lives in `data_dir`: runc's state in
    /// `/run/roost/<hash of the data dir>/runc`, so several servers on one host never see
    /// each other's containers (and a reboot, which empties /run, forgets what it killed).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> ContainerConfig {
        use std::hash::{Hash, Hasher};
        let data_dir = data_dir.into();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data_dir.canonicalize().unwrap_or_else(|_| data_dir.clone()).hash(&mut h);
        let mut config = ContainerConfig::new(data_dir);
        config.runc_root = PathBuf::from("/run/roost").join(format!("{:016x}", h.finish())).join("runc");
        config
    }

    pub fn new(data_dir: impl Into<PathBuf>) -> ContainerConfig {
        ContainerConfig {
            data_dir: data_dir.into(),
            runc: PathBuf::from("runc"),
            runc_root: PathBuf::from("/run/roost/runc"),
            netns_dir: PathBuf::from("/run/netns"),
            cgroup_parent: "roost".into(),
            log_max_bytes: 10 << 20,
            nft: "nft".into(),
            exec_agent: true,
            userns: userns::UsernsMode::Auto,
        }
    }
}

/// The runc driver. Cheap to clone.
#[derive(Clone)]
pub struct ContainerDriver {
    inner: Arc<Inner>,
}

struct Inner {
    config: ContainerConfig,
    runc: Runc,
    layout: Layout,
    limit_swap: bool,
    /// roost-init on the host, bind-mounted into containers with the default init.
    init: Option<PathBuf>,
    /// The host ids of containers' ids, when containers run in user namespaces.
    idmap: Option<userns::IdMap>,
    /// Serializes the lifecycle calls of one instance.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    keeper: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.lock().unwrap().take() {
            keeper.abort();
        }
    }
}

/// Per instance directory, flips to true when the init of its current run has exited
/// and its status (if we could collect it) is in `exit.json`. Process-wide like the
/// subreaper itself: a second driver in this process (a restarted node component) waits
/// on the watcher the first one started instead of racing it for the exit status.
static EXITS: LazyLock<Mutex<HashMap<PathBuf, watch::Receiver<bool>>>> = LazyLock::new(Mutex::default);

/// `state.json`: the current (or last) run's init.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunRecord {
    pid: u32,
    start_ticks: u64,
    started_at_ms: u64,
}

/// `exit.json`: how the last run ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExitRecord {
    exit_code: i32,
    signal: Option<i32>,
    oom_killed: bool,
    finished_at_ms: u64,
}

/// The files of one instance.
struct Paths {
    dir: PathBuf,
    rootfs: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    spec: PathBuf,
    config: PathBuf,
    state: PathBuf,
    exit: PathBuf,
    pid: PathBuf,
    runc_log: PathBuf,
    netns: PathBuf,
    /// The instance's user namespace (an nsfs bind mount), when it has one.
    userns: PathBuf,
    /// The image's root and the instance directory, idmapped: the overlay's layers.
    lower: PathBuf,
    mapped: PathBuf,
    /// See [`ContainerDriver::stage_dir`].
    stage: PathBuf,
}

impl ContainerDriver {
    /// Sets up the driver: makes this process a child subreaper, checks runc, and starts
    /// the log keeper (call it inside a tokio runtime).
    pub fn new(config: ContainerConfig) -> Result<ContainerDriver> {
        reaper::become_subreaper().map_err(|e| Error::io("becoming a child subreaper", e))?;
        if find_program(&config.runc).is_none() {
            return Err(Error::missing(format!("runc ({})", config.runc.display()), "runc"));
        }
        let instances = config.data_dir.join("instances");
        fs::create_dir_all(&instances).at("creating", &instances)?;
        fs::create_dir_all(&config.runc_root).at("creating", &config.runc_root)?;
        let layout = Layout::detect().map_err(|e| Error::io("reading cgroup mounts", e))?;
        let limit_swap = host_has_swap()
            && match &layout {
                Layout::V1 { mounts } => {
                    mounts.get("memory").is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists())
                }
                Layout::V2 { .. } => true,
            };
        let init = if config.exec_agent { install_init(&config.data_dir) } else { None };
        let idmap = match config.userns {
            userns::UsernsMode::Off => None,
            mode => {
                let map = userns::IdMap::for_host();
                match userns::probe(&instances.join(".userns-probe"), map) {
                    Ok(()) => Some(map),
                    Err(why) if mode == userns::UsernsMode::On => {
                        return Err(Error::Invalid(format!(
                            "userns = on, but containers cannot run in a user namespace on this host: {why}"
                        )));
                    }
                    Err(why) => {
                        tracing::warn!(reason = %why, "containers run without a user namespace on this host");
                        None
                    }
                }
            }
        };
        let inner = Arc::new(Inner {
            init,
            idmap,
            runc: Runc::new(config.runc.clone(), config.runc_root.clone()),
            config,
            layout,
            limit_swap,
            locks: Mutex::default(),
            keeper: Mutex::default(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let task = runtime.spawn(keeper(Arc::downgrade(&inner)));
            *inner.keeper.lock().unwrap() = Some(task.abort_handle());
        }
        Ok(ContainerDriver { inner })
    }

    pub fn config(&self) -> &ContainerConfig {
        &self.inner.config
    }

    /// The host ids containers' ids map to; `None` when they run without a user
    /// namespace (`userns = off`, or `auto` on a host without support).
    pub fn idmap(&self) -> Option<userns::IdMap> {
        self.inner.idmap
    }

    /// The instance's id map: the driver's, unless the instance asked for `MKNOD` (the
    /// kernel makes device nodes only for the host's user namespace).
    fn idmap_of(&self, spec: &InstanceSpec) -> Option<userns::IdMap> {
        let host_only = spec
            .capabilities_add
            .iter()
            .any(|c| c.eq_ignore_ascii_case("MKNOD") || c.eq_ignore_ascii_case("CAP_MKNOD"));
        self.inner.idmap.filter(|_| !host_only)
    }

    /// Where runc finds a user-namespaced instance's root and the files bound into it:
    /// a directory every id may traverse (`/run/roost/.../userns/<id>`), since runc
    /// makes those mounts as the container's root, which cannot pass the data
    /// directory's permissions.
    fn stage_dir(&self, id: &str) -> PathBuf {
        self.inner.config.runc_root.with_file_name("userns").join(id)
    }

    /// The instance's cgroup (to read limits and usage).
    pub fn cgroup(&self, id: &str) -> Cgroup {
        Cgroup::new(self.inner.layout.clone(), self.cgroups_path(id))
    }

    /// The instance's network namespace file.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.inner.config.netns_dir.join(format!("roost-{id}"))
    }

    /// The instance's directory.
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.inner.config.data_dir.join("instances").join(id)
    }

    fn cgroups_path(&self, id: &str) -> String {
        format!("/{}/{id}", self.inner.config.cgroup_parent.trim_matches('/'))
    }

    fn paths(&self, id: &str) -> Paths {
        let dir = self.instance_dir(id);
        Paths {
            rootfs: dir.join("rootfs"),
            upper: dir.join("upper"),
            work: dir.join("work"),
            spec: dir.join("spec.json"),
            config: dir.join("config.json"),
            state: dir.join("state.json"),
            exit: dir.join("exit.json"),
            pid: dir.join("init.pid"),
            runc_log: dir.join("runc.log"),
            netns: self.netns_path(id),
            userns: dir.join("userns"),
            lower: dir.join("lower"),
            mapped: dir.join("mapped"),
            stage: self.stage_dir(id),
            dir,
        }
    }

    async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = self.inner.locks.lock().unwrap().entry(id.to_string()).or_default().clone();
        mutex.lock_owned().await
    }

    /// The bridge must be there: the control plane makes (and labels) bridges, so the
    /// driver never creates one that nobody would clean up.
    async fn ensure_network(&self, network: &Network) -> Result<()> {
        if network::link_exists(&network.bridge) {
            Ok(())
        } else {
            Err(Error::Invalid(format!("bridge {} does not exist (the network is not set up)", network.bridge)))
        }
    }

    async fn prepare_locked(&self, spec: &InstanceSpec) -> Result<()> {
        validate(spec)?;
        let p = self.paths(&spec.id);
        let map = self.idmap_of(spec);
        let running = self.running(&spec.id).await.is_some();
        // Volumes detached while it was stopped: their host mounts go.
        if let Ok(previous) = self.load_spec(&spec.id) {
            for disk in previous.disks.iter().filter(|d| !spec.disks.iter().any(|n| n.volume_id == d.volume_id)) {
                self.unmount_disk_of(&spec.id, disk)?;
            }
        }
        for dir in [&p.dir, &p.upper, &p.work, &p.rootfs] {
            fs::create_dir_all(dir).at("creating", dir)?;
        }
        // A run without a user namespace before (or with one, and now without): what
        // was mounted for it goes first, while nothing runs on it.
        if !running && is_mount_point(&p.rootfs) && is_mounted_at(&p.mapped) != map.is_some() {
            self.unmount_instance(&spec.id)?;
        }
        if let Some(map) = map
            && !userns::is_ns_file(&p.userns)
        {
            userns::create_userns(&p.userns, map)?;
        }
        write_atomic(&p.spec, &serde_json::to_vec_pretty(spec).expect("spec serializes"))?;
        // Read by whoever copies the root filesystem as the host sees it (a template
        // snapshot) to store container ids, not shifted ones.
        let marker = p.dir.join(userns::ID_MAP_FILE);
        match map {
            Some(map) => write_atomic(&marker, map.to_string().as_bytes())?,
            None => remove_file(&marker)?,
        }
        // hosts, hostname and resolv.conf: in the stage for a user-namespaced instance
        // (owned by its root there), else in the instance directory.
        let files_dir = if map.is_some() { p.stage.clone() } else { p.dir.clone() };
        if map.is_some() {
            make_stage(&p.stage)?;
        }
        let ip = spec.networks.first().map(|n| n.ip);
        let resolv = match &spec.dns {
            Some(dns) => format!("nameserver {}\nsearch {}\noptions ndots:1\n", dns.nameserver, dns.search),
            None => bundle::resolv_conf(),
        };
        for (name, content) in [
            ("hosts", bundle::hosts_file(&spec.hostname, ip)),
            ("hostname", format!("{}\n", spec.hostname)),
            ("resolv.conf", resolv),
        ] {
            let path = files_dir.join(name);
            write_atomic(&path, content.as_bytes())?;
            if let Some(map) = map {
                std::os::unix::fs::lchown(&path, Some(map.uid), Some(map.gid)).at("chown", &path)?;
            }
        }

        if !spec.networks.is_empty() {
            // The network namespace belongs to the instance's user namespace (or the
            // host's): one of the other kind, left by an earlier run, is made again.
            let owner = map.map(|_| p.userns.as_path());
            if !running && netns::is_netns(&p.netns) && !userns::owned_by(&p.netns, owner) {
                network::detach(&spec.id).await?;
                netns::remove(&p.netns)?;
            }
            if !netns::is_netns(&p.netns) {
                match map {
                    Some(_) => userns::create_netns_in(&p.userns, &p.netns)?,
                    None => netns::create(&p.netns)?,
                }
            }
        }
        for attachment in &spec.networks {
            self.ensure_network(&Network::of(attachment)).await?;
            network::attach(&spec.id, &p.netns, attachment).await?;
        }
        // NICs no longer in the spec (detached while it was stopped).
        for index in 0..network::MAX_NICS as u8 {
            if !spec.networks.iter().any(|n| n.index == index) {
                network::detach_nic(&spec.id, index).await?;
            }
        }

        if !is_mount_point(&p.rootfs) {
            match map {
                None => {
                    let options = format!(
                        "lowerdir={},upperdir={},workdir={}",
                        spec.rootfs.display(),
                        p.upper.display(),
                        p.work.display()
                    );
                    nix::mount::mount(
                        Some("overlay"),
                        &p.rootfs,
                        Some("overlay"),
                        MsFlags::empty(),
                        Some(options.as_str()),
                    )
                    .map_err(|e| Error::io(format!("mounting the overlay on {}", p.rootfs.display()), e.into()))?;
                }
                Some(map) => {
                    // The overlay over idmapped layers, mounted as the container's root.
                    for dir in [&p.lower, &p.mapped] {
                        fs::create_dir_all(dir).at("creating", dir)?;
                    }
                    if !is_mounted_at(&p.lower) {
                        userns::idmapped_bind(&spec.rootfs, &p.lower, &p.userns)?;
                    }
                    if !is_mounted_at(&p.mapped) {
                        userns::idmapped_bind(&p.dir, &p.mapped, &p.userns)?;
                    }
                    let options = format!(
                        "lowerdir={},upperdir={},workdir={}",
                        p.lower.display(),
                        p.mapped.join("upper").display(),
                        p.mapped.join("work").display()
                    );
                    userns::mount_overlay(map, options, p.rootfs.clone())?;
                }
            }
        }
        let root = if map.is_some() {
            let staged = p.stage.join("rootfs");
            fs::create_dir_all(&staged).at("creating", &staged)?;
            if !is_mounted_at(&staged) {
                bind_mount(&p.rootfs, &staged)?;
            }
            staged
        } else {
            PathBuf::from("rootfs")
        };

        // Block volumes: loop-mounted on the host, bound into the container like a
        // directory volume.
        let mut with_disks = spec.clone();
        // Host directories bound in: idmapped too, so the container's root owns what the
        // host's root owns there.
        if map.is_some() {
            for (i, volume) in with_disks.volumes.iter_mut().enumerate() {
                let view = p.stage.join("volumes").join(i.to_string());
                fs::create_dir_all(&view).at("creating", &view)?;
                if !is_mounted_at(&view) {
                    userns::idmapped_bind(&volume.source, &view, &p.userns)?;
                }
                volume.source = view;
            }
        }
        for disk in &spec.disks {
            let source = self.mount_disk_for(&spec.id, disk, map.is_some()).await?;
            with_disks.volumes.push(crate::driver::Mount {
                source,
                destination: disk.path.clone(),
                read_only: disk.read_only,
            });
        }

        // roost-init replaces the default init when its socket path fits a sockaddr_un.
        let socket = agent::socket_path(&p.dir);
        let mut init = self
            .inner
            .init
            .clone()
            .filter(|_| spec.cmd.as_ref().is_none_or(|c| c.is_empty()) && socket.as_os_str().len() < 108);
        if let (Some(host), true) = (&init, map.is_some()) {
            let staged = p.stage.join("roost-init");
            if !is_mounted_at(&staged) {
                File::create(&staged).at("creating", &staged)?;
                bind_mount(host, &staged)?;
            }
            init = Some(staged);
        }
        let ctx = bundle::BundleContext {
            init: init.as_deref(),
            netns: (!spec.networks.is_empty()).then_some(p.netns.as_path()),
            cgroups_path: self.cgroups_path(&spec.id),
            limit_swap: self.inner.limit_swap,
            dir: &files_dir,
            root: &root,
            userns: map.map(|m| (p.userns.as_path(), m)),
        };
        let oci = bundle::spec(&with_disks, &ctx)?;
        write_atomic(&p.config, &serde_json::to_vec_pretty(&oci).expect("OCI spec serializes"))
    }

    /// Mounts a volume on the host and returns what to bind into the instance: the host
    /// mount, or for a user-namespaced instance an idmapped view of it in the stage.
    async fn mount_disk_for(&self, id: &str, disk: &VolumeAttachment, mapped: bool) -> Result<PathBuf> {
        let mnt = self.disk_mount(disk);
        storage::mount_disk(&disk.image, &mnt, &disk.filesystem, disk.read_only).await?;
        if !mapped {
            return Ok(mnt);
        }
        let p = self.paths(id);
        let view = p.stage.join("disks").join(&disk.volume_id);
        fs::create_dir_all(&view).at("creating", &view)?;
        if !is_mounted_at(&view)
            && let Err(e) = userns::idmapped_bind(&mnt, &view, &p.userns)
        {
            let _ = storage::unmount_disk(&mnt);
            return Err(e);
        }
        Ok(view)
    }

    /// Takes down a volume's host mount and the instance's view of it.
    fn unmount_disk_of(&self, id: &str, disk: &VolumeAttachment) -> Result<()> {
        let view = self.paths(id).stage.join("disks").join(&disk.volume_id);
        if is_mounted_at(&view) {
            nix::mount::umount2(&view, MntFlags::MNT_DETACH)
                .map_err(|e| Error::io(format!("unmounting {}", view.display()), e.into()))?;
        }
        storage::unmount_disk(&self.disk_mount(disk))
    }

    /// Unmounts the instance's root and what it is made of (not its volumes).
    fn unmount_instance(&self, id: &str) -> Result<()> {
        let p = self.paths(id);
        let mut mounts = mounts_under(&p.stage);
        mounts.retain(|m| !m.starts_with(p.stage.join("disks")));
        mounts.extend([p.rootfs.clone(), p.lower.clone(), p.mapped.clone()]);
        for m in mounts {
            match nix::mount::umount2(&m, MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
                Err(e) => return Err(Error::io(format!("unmounting {}", m.display()), e.into())),
            }
        }
        Ok(())
    }

    fn load_spec(&self, id: &str) -> Result<InstanceSpec> {
        let p = self.paths(id);
        let text = match fs::read(&p.spec) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound(id.to_string())),
            Err(e) => return Err(Error::io(format!("reading {}", p.spec.display()), e)),
        };
        serde_json::from_slice(&text)
            .map_err(|e| Error::io(format!("reading {}", p.spec.display()), io::Error::other(e)))
    }

    /// The current (or last) run. Without `state.json` but with a container in runc
    /// (the server died between `runc run` and writing it), the run is adopted from
    /// `runc state`.
    async fn run_record(&self, id: &str) -> Option<RunRecord> {
        let path = self.paths(id).state;
        if let Some(run) = read_json(&path) {
            return Some(run);
        }
        if !self.inner.runc.has_state(id) {
            return None;
        }
        let pid = self.inner.runc.state_pid(id).await?;
        let stat = ProcStat::read(pid)?;
        let run = RunRecord { pid, start_ticks: stat.start_ticks, started_at_ms: unix_ms(SystemTime::now()) };
        let _ = write_atomic(&path, &serde_json::to_vec(&run).expect("serializes"));
        Some(run)
    }

    /// The current run, if its init is alive.
    async fn running(&self, id: &str) -> Option<RunRecord> {
        let run = self.run_record(id).await?;
        reaper::same_process_alive(run.pid, run.start_ticks).then_some(run)
    }

    /// Waits up to `timeout` for the run's init to exit; true once it has. Collects the
    /// exit status when no watcher did.
    async fn wait_exit(&self, id: &str, run: &RunRecord, timeout: Duration) -> bool {
        let watcher = EXITS.lock().unwrap().get(&self.instance_dir(id)).cloned();
        let exited = match watcher {
            Some(mut rx) => {
                match tokio::time::timeout(timeout, async { rx.wait_for(|done| *done).await.map(|_| ()) }).await {
                    Ok(Ok(())) => true,
                    Ok(Err(_)) => wait_pid(run, timeout).await, // the watcher went away
                    Err(_) => false,
                }
            }
            None => wait_pid(run, timeout).await,
        };
        if exited {
            self.collect_exit(id, run);
        }
        exited
    }

    /// Writes `exit.json` from a zombie child nobody reaped yet (a new driver in the
    /// same process, or a watcher whose runtime ended).
    fn collect_exit(&self, id: &str, run: &RunRecord) {
        let p = self.paths(id);
        if p.exit.exists() {
            return;
        }
        if let Some(exit) = reaper::reap_zombie(run.pid, run.start_ticks) {
            let record = ExitRecord::new(exit, self.cgroup(id).oom_kills().unwrap_or(0) > 0);
            let _ = write_atomic(&p.exit, &serde_json::to_vec(&record).expect("serializes"));
        }
    }

    /// Watches the init of a new run: records its exit in `exit.json` and flips the
    /// instance's exit watch.
    fn watch(&self, id: &str, pid: u32) {
        let pidfd = match PidFd::open(pid) {
            Ok(pidfd) => pidfd,
            Err(e) => {
                tracing::warn!(instance = id, pid, error = %e, "cannot watch the instance's init");
                return;
            }
        };
        let (tx, rx) = watch::channel(false);
        EXITS.lock().unwrap().insert(self.instance_dir(id), rx);
        let exit_path = self.paths(id).exit;
        let cgroup = self.cgroup(id);
        let id = id.to_string();
        tokio::spawn(async move {
            match pidfd.wait().await {
                Ok(exit) => {
                    let record = ExitRecord::new(exit, cgroup.oom_kills().unwrap_or(0) > 0);
                    if let Err(e) = write_atomic(&exit_path, &serde_json::to_vec(&record).expect("serializes")) {
                        tracing::warn!(instance = %id, error = %e, "cannot record the exit status");
                    }
                }
                Err(e) => {
                    // Not our child (the subreaper bit was lost?): we can still see it end.
                    tracing::warn!(instance = %id, error = %e, "exit status unavailable");
                    let _ = pidfd.exited().await;
                }
            }
            let _ = tx.send(true);
        });
    }

    /// A frozen process cannot act on a signal: thaw before stopping or killing.
    fn thaw(&self, id: &str) {
        let cgroup = self.cgroup(id);
        if cgroup.frozen()
            && let Err(e) = cgroup.set_frozen(false)
        {
            tracing::warn!(instance = id, error = %e, "cannot thaw the instance");
        }
    }

    /// Makes sure what `prepare` made is still there (a reboot unmounts everything).
    async fn ensure_prepared(&self, spec: &InstanceSpec) -> Result<()> {
        let p = self.paths(&spec.id);
        let network_ok = spec.networks.is_empty()
            || (netns::is_netns(&p.netns)
                && spec.networks.iter().all(|n| network::link_exists(&network::nic_ifname(&spec.id, n.index))));
        let mapped = self.idmap_of(spec).is_some();
        let disks_ok = spec.disks.iter().all(|d| {
            is_mount_point(&self.disk_mount(d)) && (!mapped || is_mounted_at(&p.stage.join("disks").join(&d.volume_id)))
        });
        let userns_ok = !mapped || (userns::is_ns_file(&p.userns) && is_mounted_at(&p.stage.join("rootfs")));
        if is_mount_point(&p.rootfs) && network_ok && disks_ok && userns_ok && p.config.exists() {
            return Ok(());
        }
        self.prepare_locked(spec).await
    }

    /// Where a block volume is mounted on the host.
    fn disk_mount(&self, disk: &VolumeAttachment) -> PathBuf {
        storage::mount_point(&self.inner.config.data_dir, &disk.volume_id)
    }

    /// Takes down the host mounts of an instance's volumes (it no longer runs), so the
    /// control plane may restore or resize them offline.
    fn unmount_disks(&self, id: &str) {
        let Ok(spec) = self.load_spec(id) else { return };
        for disk in &spec.disks {
            if let Err(e) = self.unmount_disk_of(id, disk) {
                tracing::warn!(instance = id, volume = %disk.volume_id, error = %e, "cannot unmount a volume");
            }
        }
    }

    /// The root the instance's files are reached through (see [`files`]).
    async fn files_root(&self, id: &str) -> Result<PathBuf> {
        let p = self.paths(id);
        if !p.dir.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        if let Some(run) = self.running(id).await {
            return Ok(PathBuf::from(format!("/proc/{}/root", run.pid)));
        }
        if is_mount_point(&p.rootfs) {
            Ok(p.rootfs)
        } else {
            Err(Error::Conflict(format!("instance '{id}' has no root file system mounted (prepare it first)")))
        }
    }
}

impl ExitRecord {
    fn new(exit: Exit, oom_killed: bool) -> ExitRecord {
        let signal = match exit {
            Exit::Signal(s) => Some(s),
            Exit::Code(_) => None,
        };
        ExitRecord { exit_code: exit.code(), signal, oom_killed, finished_at_ms: unix_ms(SystemTime::now()) }
    }
}

#[async_trait]
impl Driver for ContainerDriver {
    fn kind(&self) -> &'static str {
        "container"
    }

    async fn prepare(&self, spec: &InstanceSpec) -> Result<()> {
        validate_id(&spec.id)?;
        let _guard = self.lock(&spec.id).await;
        self.prepare_locked(spec).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        let spec = self.load_spec(id)?;
        if self.running(id).await.is_some() {
            return Ok(());
        }
        self.ensure_prepared(&spec).await?;
        let p = self.paths(id);
        if self.inner.runc.has_state(id) {
            // The stopped container of an earlier run.
            self.inner.runc.delete(id).await?;
        }
        for stale in [&p.exit, &p.state, &p.pid] {
            remove_file(stale)?;
        }
        truncate_if_larger(&p.runc_log, 1 << 20);
        let logs = LogFiles::new(&p.dir);
        let (out, err) = logs.open_writers()?;
        // The container's root may reopen its own output (`/proc/1/fd/1`, `/dev/stdout`):
        // in a user namespace the log files must be its.
        if let Some(map) = self.inner.idmap.filter(|_| is_mounted_at(&p.mapped)) {
            for f in [&out, &err] {
                std::os::unix::fs::fchown(f, Some(map.uid), Some(map.gid)).at("chown", &p.dir)?;
            }
        }
        logs.mark().at("writing the log index in", &p.dir)?;
        // roost-init's socket (when the bundle runs it): made here, handed to it as fd 3.
        let socket = agent::socket_path(&p.dir);
        remove_file(&socket)?;
        let listener = if bundle::runs_init(&p.config) { Some(agent::listen(&socket)?) } else { None };
        if let Err(e) =
            self.inner.runc.run_detached(id, &p.dir, &p.pid, (out, err), &p.runc_log, listener.as_ref()).await
        {
            // Leave no half-created container behind for the next attempt.
            let _ = self.inner.runc.delete(id).await;
            return Err(e);
        }
        let pid: u32 = fs::read_to_string(&p.pid)
            .at("reading", &p.pid)?
            .trim()
            .parse()
            .map_err(|_| Error::tool("runc", format!("bad pid file {}", p.pid.display())))?;
        // A zombie still has its stat: this works even if the init exited at once.
        let start_ticks = ProcStat::read(pid).map(|s| s.start_ticks).unwrap_or(0);
        let run = RunRecord { pid, start_ticks, started_at_ms: unix_ms(SystemTime::now()) };
        write_atomic(&p.state, &serde_json::to_vec(&run).expect("serializes"))?;
        self.watch(id, pid);
        if listener.is_some() {
            drop(listener);
            agent::wait_ready(&socket).await?;
        }
        Ok(())
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        self.thaw(id);
        let Some(run) = self.running(id).await else {
            self.unmount_disks(id);
            return Ok(());
        };
        let log = self.paths(id).runc_log;
        self.inner.runc.kill(id, "TERM", &log).await?;
        if self.wait_exit(id, &run, grace).await {
            self.unmount_disks(id);
            return Ok(());
        }
        self.inner.runc.kill(id, "KILL", &log).await?;
        if self.wait_exit(id, &run, KILL_TIMEOUT).await {
            self.unmount_disks(id);
            return Ok(());
        }
        Err(Error::Conflict(format!("instance '{id}' did not stop within {KILL_TIMEOUT:?} of SIGKILL")))
    }

    async fn kill(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        self.thaw(id);
        let Some(run) = self.running(id).await else { return Ok(()) };
        self.inner.runc.kill(id, "KILL", &self.paths(id).runc_log).await?;
        if self.wait_exit(id, &run, KILL_TIMEOUT).await {
            return Ok(());
        }
        Err(Error::Conflict(format!("instance '{id}' did not die within {KILL_TIMEOUT:?} of SIGKILL")))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        self.thaw(id);
        let p = self.paths(id);
        let run = self.run_record(id).await;
        if self.inner.runc.has_state(id) {
            self.inner.runc.delete(id).await?;
        } else if let Some(run) = run.as_ref().filter(|r| reaper::same_process_alive(r.pid, r.start_ticks)) {
            // runc forgot it (its state is on tmpfs) but the init runs: kill it directly.
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(run) = &run {
            // Reap the init so no zombie is left (runc delete killed it, not waited).
            if !self.wait_exit(id, run, KILL_TIMEOUT).await {
                return Err(Error::Conflict(format!("instance '{id}' did not die within {KILL_TIMEOUT:?}")));
            }
        }
        self.cgroup(id).remove().map_err(|e| Error::io("removing the cgroup", e))?;
        self.unmount_disks(id);
        network::detach(id).await?;
        netns::remove(&p.netns)?;
        self.unmount_instance(id)?;
        match nix::mount::umount2(&p.userns, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(Error::io(format!("unmounting {}", p.userns.display()), e.into())),
        }
        if let Some(mount) = mounts_under(&p.dir).first().or(mounts_under(&p.stage).first()) {
            // Never remove a directory tree with something mounted in it.
            return Err(Error::Conflict(format!(
                "{} is still mounted; not removing {}",
                mount.display(),
                p.dir.display()
            )));
        }
        for dir in [&p.dir, &p.stage] {
            match fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing {}", dir.display()), e)),
            }
        }
        EXITS.lock().unwrap().remove(&p.dir);
        self.inner.locks.lock().unwrap().remove(id);
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<InstanceState> {
        validate_id(id)?;
        let p = self.paths(id);
        if !p.dir.exists() {
            // runc state without a directory is an orphan for `delete` to clean.
            let mut state = InstanceState::missing();
            if self.inner.runc.has_state(id) {
                state.status = InstanceStatus::Stopped;
                state.exit_unknown = true;
            }
            return Ok(state);
        }
        let mut state = InstanceState { status: InstanceStatus::Stopped, ..InstanceState::missing() };
        let Some(run) = self.run_record(id).await else { return Ok(state) };
        state.started_at = Some(UNIX_EPOCH + Duration::from_millis(run.started_at_ms));
        let oom_now = self.cgroup(id).oom_kills().unwrap_or(0) > 0;
        if reaper::same_process_alive(run.pid, run.start_ticks) {
            state.status = if self.cgroup(id).frozen() { InstanceStatus::Paused } else { InstanceStatus::Running };
            state.pid = Some(run.pid);
            state.oom_killed = oom_now;
            return Ok(state);
        }
        self.collect_exit(id, &run);
        match read_json::<ExitRecord>(&p.exit) {
            Some(exit) => {
                state.exit_code = Some(exit.exit_code);
                state.exit_signal = exit.signal;
                state.oom_killed = exit.oom_killed || oom_now;
                state.finished_at = Some(UNIX_EPOCH + Duration::from_millis(exit.finished_at_ms));
            }
            None => {
                state.exit_unknown = true;
                state.oom_killed = oom_now;
            }
        }
        Ok(state)
    }

    async fn list(&self) -> Result<Vec<String>> {
        let dir = self.inner.config.data_dir.join("instances");
        let mut ids: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|id| validate_id(id).is_ok())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        ids.extend(self.inner.runc.list().await?);
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession> {
        validate_id(id)?;
        let p = self.paths(id);
        if !p.dir.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        if self.running(id).await.is_none() {
            return Err(Error::Conflict(format!("instance '{id}' is not running")));
        }
        if !request.tty && !request.console {
            let socket = agent::socket_path(&p.dir);
            if socket.exists() {
                let env = exec::process_env(&exec::bundle_process(&p.dir)?, &request);
                if let Some(session) = agent::start(&socket, env, &request).await? {
                    return Ok(session);
                }
            }
        }
        exec::start(&self.inner.runc, id, &p.dir, &p.runc_log, request).await
    }

    async fn logs(&self, id: &str, query: LogQuery) -> Result<LogLines> {
        validate_id(id)?;
        let p = self.paths(id);
        if !p.dir.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let run = self.run_record(id).await;
        let alive = move || run.as_ref().is_some_and(|r| reaper::same_process_alive(r.pid, r.start_ticks));
        LogFiles::new(&p.dir).read(query, Box::new(alive)).await
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        validate_id(id)?;
        if !self.paths(id).dir.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let usage = self.cgroup(id).usage();
        let (net_rx_bytes, net_tx_bytes) = network::traffic(id).unwrap_or((0, 0));
        Ok(Stats {
            cpu_usage_ns: usage.cpu_usage_ns,
            memory_bytes: usage.memory_bytes,
            memory_limit: usage.memory_limit,
            pids: usage.pids,
            net_rx_bytes,
            net_tx_bytes,
        })
    }

    async fn copy_in(&self, id: &str, path: &str, tar: TarStream) -> Result<()> {
        validate_id(id)?;
        let root = self.files_root(id).await?;
        // Through idmapped layers, files are written as the container's root.
        let map = self.inner.idmap.filter(|_| is_mounted_at(&self.paths(id).mapped));
        files::copy_in(root, path, tar, map).await
    }

    async fn copy_out(&self, id: &str, path: &str) -> Result<TarStream> {
        validate_id(id)?;
        let root = self.files_root(id).await?;
        let map = self.inner.idmap.filter(|_| is_mounted_at(&self.paths(id).mapped));
        files::copy_out(root, path, map).await
    }

    async fn pause(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        if self.running(id).await.is_none() {
            return Err(Error::Conflict(format!("instance '{id}' is not running")));
        }
        let cgroup = self.cgroup(id);
        tokio::task::spawn_blocking(move || cgroup.set_frozen(true))
            .await
            .map_err(|e| Error::io("freezing", io::Error::other(e)))?
            .map_err(|e| Error::io(format!("freezing instance '{id}'"), e))
    }

    async fn resume(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        if self.running(id).await.is_none() {
            return Err(Error::Conflict(format!("instance '{id}' is not running")));
        }
        let cgroup = self.cgroup(id);
        tokio::task::spawn_blocking(move || cgroup.set_frozen(false))
            .await
            .map_err(|e| Error::io("thawing", io::Error::other(e)))?
            .map_err(|e| Error::io(format!("thawing instance '{id}'"), e))
    }

    async fn attach_network(&self, id: &str, nic: &NetAttachment) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        let mut spec = self.load_spec(id)?;
        let p = self.paths(id);
        self.ensure_network(&Network::of(nic)).await?;
        netns::create(&p.netns)?;
        network::attach(id, &p.netns, nic).await?;
        spec.networks.retain(|n| n.index != nic.index);
        spec.networks.push(nic.clone());
        spec.networks.sort_by_key(|n| n.index);
        write_atomic(&p.spec, &serde_json::to_vec_pretty(&spec).expect("spec serializes"))
    }

    async fn detach_network(&self, id: &str, nic: &NetAttachment) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        network::detach_nic(id, nic.index).await?;
        let Ok(mut spec) = self.load_spec(id) else { return Ok(()) };
        spec.networks.retain(|n| n.index != nic.index);
        write_atomic(&self.paths(id).spec, &serde_json::to_vec_pretty(&spec).expect("spec serializes"))
    }

    async fn attach_volume(&self, id: &str, disk: &VolumeAttachment) -> Result<()> {
        validate_id(id)?;
        validate_disk(disk)?;
        let _guard = self.lock(id).await;
        let mut spec = self.load_spec(id)?;
        if let Some(run) = self.running(id).await {
            let map = self.inner.idmap.filter(|_| is_mounted_at(&self.paths(id).mapped));
            let source = self.mount_disk_for(id, disk, map.is_some()).await?;
            let op = mountns::Op::Attach { source, target: disk.path.clone() };
            if let Err(e) = mountns::run(run.pid, &op, map) {
                let _ = self.unmount_disk_of(id, disk);
                return Err(e);
            }
        }
        spec.disks.retain(|d| d.volume_id != disk.volume_id);
        spec.disks.push(disk.clone());
        write_atomic(&self.paths(id).spec, &serde_json::to_vec_pretty(&spec).expect("spec serializes"))
    }

    async fn detach_volume(&self, id: &str, disk: &VolumeAttachment, force: bool) -> Result<()> {
        validate_id(id)?;
        let _guard = self.lock(id).await;
        let mnt = self.disk_mount(disk);
        if let Some(run) = self.running(id).await
            && is_mount_point(&mnt)
        {
            if !force {
                let users = mountns::open_files_on(&mnt);
                if !users.is_empty() {
                    return Err(Error::Conflict(format!(
                        "files on the volume are open ({}); close them or detach with force",
                        users.join(", ")
                    )));
                }
            }
            mountns::run(run.pid, &mountns::Op::Detach { target: disk.path.clone(), lazy: force }, None)?;
        }
        self.unmount_disk_of(id, disk)?;
        let Ok(mut spec) = self.load_spec(id) else { return Ok(()) };
        spec.disks.retain(|d| d.volume_id != disk.volume_id);
        write_atomic(&self.paths(id).spec, &serde_json::to_vec_pretty(&spec).expect("spec serializes"))
    }
}

/// Notes log growth and rotates logs every second, for as long as the driver lives.
/// An instance in the middle of a lifecycle call (a `delete` removing its directory) is
/// skipped: the keeper takes the instance's lock without waiting for it.
async fn keeper(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(driver) = inner.upgrade() else { return };
        let dir = driver.config.data_dir.join("instances");
        let max = driver.config.log_max_bytes;
        let ids: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect(),
            Err(_) => continue,
        };
        let mut work = Vec::new();
        for id in ids {
            let mutex = driver.locks.lock().unwrap().entry(id.clone()).or_default().clone();
            if let Ok(guard) = mutex.try_lock_owned() {
                work.push((dir.join(&id), guard));
            }
        }
        drop(driver);
        let _ = tokio::task::spawn_blocking(move || {
            for (path, _guard) in work {
                if let Err(e) = LogFiles::new(&path).maintain(max) {
                    tracing::warn!(dir = %path.display(), error = %e, "log maintenance failed");
                }
            }
        })
        .await;
    }
}

/// Ids name directories, cgroups, runc containers and network namespaces.
fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 40
        && id.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(Error::Invalid(format!("invalid instance id '{id}'"))) }
}

fn validate(spec: &InstanceSpec) -> Result<()> {
    validate_id(&spec.id)?;
    if !spec.rootfs.is_dir() {
        return Err(Error::Invalid(format!("image root {} does not exist", spec.rootfs.display())));
    }
    // The overlay's option string separates with ',' and ':'.
    if spec.rootfs.to_str().is_none_or(|s| s.contains([',', ':', '='])) {
        return Err(Error::Invalid(format!("unusable image path {}", spec.rootfs.display())));
    }
    if !spec.cpus.is_finite() || spec.cpus < 0.0 {
        return Err(Error::Invalid(format!("invalid cpus {}", spec.cpus)));
    }
    if spec.memory_bytes != 0 && spec.memory_bytes < 4 << 20 {
        return Err(Error::Invalid("memory limit below 4 MiB".into()));
    }
    let hostname_ok = !spec.hostname.is_empty()
        && spec.hostname.len() <= 63
        && spec.hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !hostname_ok {
        return Err(Error::Invalid(format!("invalid hostname '{}'", spec.hostname)));
    }
    for (key, _) in &spec.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(Error::Invalid(format!("invalid environment variable name '{key}'")));
        }
    }
    for disk in &spec.disks {
        validate_disk(disk)?;
    }
    for volume in &spec.volumes {
        if !volume.destination.starts_with('/') || volume.destination.split('/').any(|c| c == "..") {
            return Err(Error::Invalid(format!("invalid mount destination '{}'", volume.destination)));
        }
        if !volume.source.exists() {
            return Err(Error::Invalid(format!("mount source {} does not exist", volume.source.display())));
        }
    }
    if let Some(cmd) = &spec.cmd
        && cmd.first().is_some_and(|c| c.is_empty())
    {
        return Err(Error::Invalid("empty command".into()));
    }
    Ok(())
}

/// Containers mount a volume's filesystem on the host: raw images only (qcow2 volumes
/// are for microVMs, which read the format themselves).
fn validate_disk(disk: &VolumeAttachment) -> Result<()> {
    if disk.format != DiskFormat::Raw {
        return Err(Error::Unsupported("containers attach raw volumes only; qcow2 volumes are for microVMs".into()));
    }
    if !disk.path.starts_with('/') || disk.path == "/" || disk.path.split('/').any(|c| c == ".." || c == ".") {
        return Err(Error::Invalid(format!("invalid volume path '{}'", disk.path)));
    }
    if validate_id(&disk.volume_id).is_err() {
        return Err(Error::Invalid(format!("invalid volume id '{}'", disk.volume_id)));
    }
    Ok(())
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    let (Ok(meta), Some(parent)) = (fs::metadata(path), path.parent()) else { return false };
    fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev())
}

/// Whether something is mounted exactly at `path` (a bind mount of the same filesystem
/// too, which [`is_mount_point`] cannot tell).
fn is_mounted_at(path: &Path) -> bool {
    mounts_under(path).iter().any(|m| m == path)
}

/// A plain bind mount of `source` (file or directory) on `target`.
fn bind_mount(source: &Path, target: &Path) -> Result<()> {
    nix::mount::mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| Error::io(format!("binding {} on {}", source.display(), target.display()), e.into()))
}

/// Makes an instance's stage and lets every id traverse it and the directories above it
/// that Roost made (not list them).
fn make_stage(stage: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(stage).at("creating", stage)?;
    let mut dir = Some(stage);
    for _ in 0..3 {
        let Some(d) = dir else { break };
        let mode = fs::metadata(d).at("reading", d)?.permissions().mode();
        fs::set_permissions(d, fs::Permissions::from_mode((mode & 0o7777) | 0o111)).at("chmod", d)?;
        dir = d.parent();
    }
    Ok(())
}

/// Mount points at or below `dir`, from `/proc/self/mountinfo`.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn host_has_swap() -> bool {
    fs::read_to_string("/proc/swaps").is_ok_and(|t| t.lines().count() > 1)
}

/// Waits for a process we may not be the parent of (so only its end can be seen).
async fn wait_pid(run: &RunRecord, timeout: Duration) -> bool {
    let pidfd = match PidFd::open(run.pid) {
        Ok(pidfd) => pidfd,
        Err(_) => return true, // gone already
    };
    if !reaper::same_process_alive(run.pid, run.start_ticks) {
        return true; // exited, or the pid is another process's now
    }
    tokio::time::timeout(timeout, pidfd.exited()).await.is_ok()
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

/// Writes roost-init (embedded at build time) to `<data_dir>/bin/roost-init` unless it is
/// there already; `None` when this build has none or it cannot be written.
fn install_init(data_dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if bundle::INIT_BINARY.is_empty() {
        return None;
    }
    let path = data_dir.join("bin").join("roost-init");
    if fs::read(&path).is_ok_and(|have| have == bundle::INIT_BINARY) {
        return Some(path);
    }
    let written = (|| -> io::Result<()> {
        fs::create_dir_all(path.parent().expect("parent"))?;
        // A name of its own: two drivers of one data dir may install at once.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, bundle::INIT_BINARY)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        fs::rename(&tmp, &path)
    })();
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot install roost-init: execs use runc exec");
            None
        }
    }
}

/// Writes through a temporary file and a rename, so a crash leaves the old or the new
/// content, never half of one.
fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, content).at("writing", &tmp)?;
    fs::rename(&tmp, path).at("writing", path)
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

fn truncate_if_larger(path: &Path, max: u64) {
    if fs::metadata(path).is_ok_and(|m| m.len() > max) {
        let _ = fs::write(path, "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("i-abcdefghijkl").is_ok());
        for bad in ["", "../x", "I-ABC", "-x", "a b", &"a".repeat(41)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_programs_on_path() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("no-such-program-here")).is_none());
        assert!(find_program(Path::new("/bin/sh")).is_some());
    }
}
