//! [`SimNode`]: the node API in memory, for control-plane tests that do not need the
//! real host (omicron's simulated sled agent is the model). Nothing runs: an instance
//! is a record whose state moves as a real one's would (prepared → running → stopped,
//! paused, deleted), images and volumes are records with sizes, the network state is
//! kept as last applied, and an instance's files live in a map.
//!
//! Exec understands a handful of commands so file and process flows can be followed
//! end to end (`echo`, `true`, `false`, `cat FILE`, `sh -c 'exit N'`, `sleep N`); any
//! other command ends with 127 and says so on stderr. `fail_next` makes the next calls
//! of an operation fail, to test how the control plane undoes and reports.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sha2::Digest;

use crate::api::{
    DiskAttachment, HostFacts, ImageInfo, ImageSource, Instances, NetworkApplied, NetworkState, NodeApi, NodeFacts,
    Progress,
};
use crate::driver::{
    ExecProcess, ExecRequest, ExecSession, InstanceState, InstanceStatus, LogLines, LogQuery, NetAttachment, Stats,
    TarStream,
};
use crate::network::RouteOwner;
use crate::{Error, Result};

#[derive(Debug, Clone)]
struct SimInstance {
    kind: &'static str,
    spec: crate::api::InstanceSpec,
    state: InstanceState,
    /// Absolute path → content; directories end without a slash and map to `None`.
    files: BTreeMap<String, Option<Vec<u8>>>,
}

#[derive(Default)]
struct World {
    instances: HashMap<String, SimInstance>,
    images: HashMap<String, ImageInfo>,
    /// Volume id → (size, filesystem, a content marker copied with the volume).
    volumes: HashMap<String, (u64, String)>,
    snapshots: HashMap<String, u64>,
    network: Option<NetworkState>,
    /// Changes copied to an instance not prepared yet (a clone): its files at prepare.
    copied_changes: HashMap<String, BTreeMap<String, Option<Vec<u8>>>>,
    /// Operation name → how many of its next calls fail.
    failures: HashMap<String, u32>,
    /// Every call, in order (`op id`), for tests that check what reached the node.
    calls: Vec<String>,
}

/// A node in memory (see the module docs).
#[derive(Clone, Default)]
pub struct SimNode {
    world: Arc<Mutex<World>>,
    with_vms: bool,
}

impl SimNode {
    pub fn new() -> SimNode {
        SimNode { world: Arc::default(), with_vms: true }
    }

    /// Makes the next `times` calls of `op` (`create_volume`, `prepare`, `start`,
    /// `copy_instance_changes`, … any method name of the node API) fail.
    pub fn fail_next(&self, op: &str, times: u32) {
        self.world.lock().expect("sim").failures.insert(op.to_string(), times);
    }

    /// The calls made so far, `op id` each.
    pub fn calls(&self) -> Vec<String> {
        self.world.lock().expect("sim").calls.clone()
    }

    /// Ids of the instances the node holds.
    pub fn instance_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.world.lock().expect("sim").instances.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Ids of the volumes the node holds.
    pub fn volume_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.world.lock().expect("sim").volumes.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Ids of the snapshots the node holds (volume snapshots and instance archives).
    pub fn snapshot_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.world.lock().expect("sim").snapshots.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Digests of the images the node holds.
    pub fn image_digests(&self) -> Vec<String> {
        let mut digests: Vec<String> = self.world.lock().expect("sim").images.keys().cloned().collect();
        digests.sort();
        digests
    }

    /// The network state applied last.
    pub fn network(&self) -> Option<NetworkState> {
        self.world.lock().expect("sim").network.clone()
    }

    /// Records a call and fails it if one was asked for.
    fn call(&self, op: &str, id: &str) -> Result<std::sync::MutexGuard<'_, World>> {
        let mut world = self.world.lock().expect("sim");
        world.calls.push(format!("{op} {id}"));
        if let Some(left) = world.failures.get_mut(op)
            && *left > 0
        {
            *left -= 1;
            return Err(Error::io(
                format!("{op} {id}"),
                std::io::Error::other("a failure injected in the simulated node"),
            ));
        }
        Ok(world)
    }

    fn add_image(&self, name: &str, key: &str, size_bytes: u64) -> ImageInfo {
        let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        let info = ImageInfo { digest: digest.clone(), name: name.to_string(), size_bytes };
        self.world.lock().expect("sim").images.entry(digest).or_insert(info).clone()
    }

    fn instances_of(&self, kind: &'static str) -> Arc<dyn Instances> {
        Arc::new(SimInstances { node: self.clone(), kind })
    }
}

/// The programs every simulated image has.
const SIMULATED_TOOLS: &[&str] =
    &["sh", "echo", "cat", "true", "false", "sleep", "ls", "env", "test", "printf", "mkdir", "rm", "mv", "id"];

fn missing(what: &str, id: &str) -> Error {
    Error::NotFound(format!("{what} {id}"))
}

#[async_trait]
impl NodeApi for SimNode {
    fn facts(&self) -> NodeFacts {
        let mut instance_types = vec!["container".to_string()];
        if self.with_vms {
            instance_types.push("vm".into());
        }
        NodeFacts { instance_types, vm_unavailable: None, accelerator: None, simulated: true }
    }

    fn route_owner(&self) -> RouteOwner {
        RouteOwner::for_table("roost_sim")
    }

    fn instances(&self, kind: &str) -> Result<Arc<dyn Instances>> {
        match kind {
            "vm" if self.with_vms => Ok(self.instances_of("vm")),
            "vm" => Err(Error::Unsupported("this node cannot run VMs: simulated without VMs".into())),
            _ => Ok(self.instances_of("container")),
        }
    }

    fn all_instances(&self) -> Vec<Arc<dyn Instances>> {
        let mut all = vec![self.instances_of("container")];
        if self.with_vms {
            all.push(self.instances_of("vm"));
        }
        all
    }

    async fn copy_instance_changes(&self, from: &str, to: &str) -> Result<()> {
        let mut world = self.call("copy_instance_changes", from)?;
        // Never prepared: no changes yet, nothing to copy (as on a real node).
        let files = world.instances.get(from).map(|i| i.files.clone()).unwrap_or_default();
        world.copied_changes.insert(to.to_string(), files);
        Ok(())
    }

    async fn remove_instance_changes(&self, id: &str) -> Result<()> {
        self.call("remove_instance_changes", id)?.copied_changes.remove(id);
        Ok(())
    }

    async fn archive_instance_changes(&self, id: &str, snapshot_id: &str) -> Result<u64> {
        let mut world = self.call("archive_instance_changes", id)?;
        // Never prepared: no changes yet, an empty archive.
        let size = world.instances.get(id).map(|i| files_size(&i.files)).unwrap_or(0);
        world.snapshots.insert(snapshot_id.to_string(), size);
        Ok(size)
    }

    async fn remove_instance_archive(&self, snapshot_id: &str) -> Result<()> {
        self.call("remove_instance_archive", snapshot_id)?.snapshots.remove(snapshot_id);
        Ok(())
    }

    async fn capture_image(&self, id: &str, digest: &str, name: &str, _source: ImageSource) -> Result<ImageInfo> {
        let mut world = self.call("capture_image", id)?;
        let size = world.instances.get(id).map(|i| files_size(&i.files)).ok_or_else(|| missing("instance", id))?;
        let info = ImageInfo { digest: digest.to_string(), name: name.to_string(), size_bytes: size };
        world.images.insert(digest.to_string(), info.clone());
        Ok(info)
    }

    async fn image(&self, digest: &str) -> Result<Option<ImageInfo>> {
        Ok(self.world.lock().expect("sim").images.get(digest).cloned())
    }

    async fn busybox_image(&self) -> Result<ImageInfo> {
        drop(self.call("busybox_image", "busybox")?);
        Ok(self.add_image("busybox", "busybox", 2 << 20))
    }

    async fn build_debian_image(
        &self,
        name: &str,
        suite: &str,
        packages: &[String],
        progress: Progress,
    ) -> Result<ImageInfo> {
        drop(self.call("build_debian_image", name)?);
        progress(crate::images::BuildProgress { percent: 50, message: "simulated build".into() });
        Ok(self.add_image(name, &format!("debian {suite} {}", packages.join(" ")), 150 << 20))
    }

    async fn import_image(&self, file_name: &str, mut archive: TarStream, max_unpacked: u64) -> Result<ImageInfo> {
        drop(self.call("import_image", file_name)?);
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut archive, &mut bytes)
            .await
            .map_err(|e| Error::io("receiving the image archive", e))?;
        // Compressed as a real import accepts it: told by content.
        let plain = match bytes.as_slice() {
            [0x1f, 0x8b, ..] => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut out)
                    .map_err(|e| Error::Invalid(format!("not a gzip archive: {e}")))?;
                out
            }
            _ => bytes.clone(),
        };
        let mut unpacked = 0u64;
        let mut tar = tar::Archive::new(&plain[..]);
        for entry in tar.entries().map_err(|e| Error::Invalid(format!("not a tar archive: {e}")))? {
            let entry = entry.map_err(|e| Error::Invalid(format!("not a tar archive: {e}")))?;
            unpacked += entry.size();
        }
        if unpacked > max_unpacked {
            return Err(Error::TooLarge(format!("the archive unpacks to more than {max_unpacked} bytes")));
        }
        let key = hex::encode(sha2::Sha256::digest(&bytes));
        Ok(self.add_image(file_name.trim_end_matches(".tar"), &key, unpacked))
    }

    async fn image_has_command(&self, digest: &str, cmd: &str) -> Result<bool> {
        let world = self.world.lock().expect("sim");
        let image = world.images.get(digest).ok_or_else(|| missing("image", digest))?;
        // A simulated image holds a shell and the usual tools in /bin and /usr/bin;
        // a Debian one also its guest agent and Python.
        let name = match cmd.rsplit_once('/') {
            Some((dir, name)) if ["/bin", "/usr/bin", "/sbin", "/usr/sbin"].contains(&dir) => name,
            Some(_) => return Ok(false),
            None => cmd,
        };
        let debian = image.name != "busybox" && ["qemu-ga", "python3", "apt-get"].contains(&name);
        Ok(SIMULATED_TOOLS.contains(&name) || debian)
    }

    async fn remove_image(&self, digest: &str) -> Result<()> {
        self.call("remove_image", digest)?.images.remove(digest);
        Ok(())
    }

    async fn create_volume(&self, id: &str, size: u64, filesystem: &str) -> Result<()> {
        self.call("create_volume", id)?.volumes.insert(id.to_string(), (size, filesystem.to_string()));
        Ok(())
    }

    async fn volume_from_snapshot(&self, snapshot_id: &str, id: &str, size: u64) -> Result<()> {
        let mut world = self.call("volume_from_snapshot", id)?;
        world.snapshots.get(snapshot_id).ok_or_else(|| missing("snapshot", snapshot_id))?;
        world.volumes.insert(id.to_string(), (size, "ext4".into()));
        Ok(())
    }

    async fn copy_volume(&self, from: &str, id: &str) -> Result<()> {
        let mut world = self.call("copy_volume", id)?;
        let volume = world.volumes.get(from).cloned().ok_or_else(|| missing("volume", from))?;
        world.volumes.insert(id.to_string(), volume);
        Ok(())
    }

    async fn remove_volume(&self, id: &str) -> Result<()> {
        self.call("remove_volume", id)?.volumes.remove(id);
        Ok(())
    }

    async fn resize_volume(&self, id: &str, size: u64) -> Result<()> {
        let mut world = self.call("resize_volume", id)?;
        let volume = world.volumes.get_mut(id).ok_or_else(|| missing("volume", id))?;
        if size < volume.0 {
            return Err(Error::Invalid("a volume cannot shrink".into()));
        }
        volume.0 = size;
        Ok(())
    }

    fn volume_used_bytes(&self, _id: &str) -> u64 {
        0
    }

    async fn snapshot_volume(&self, id: &str, snapshot_id: &str) -> Result<u64> {
        let mut world = self.call("snapshot_volume", id)?;
        let size = world.volumes.get(id).map(|v| v.0 / 64).ok_or_else(|| missing("volume", id))?;
        world.snapshots.insert(snapshot_id.to_string(), size);
        Ok(size)
    }

    fn snapshot_stored_bytes(&self, snapshot_id: &str) -> u64 {
        self.world.lock().expect("sim").snapshots.get(snapshot_id).copied().unwrap_or(0)
    }

    async fn restore_volume(&self, id: &str, snapshot_id: &str) -> Result<()> {
        let world = self.call("restore_volume", id)?;
        world.snapshots.get(snapshot_id).ok_or_else(|| missing("snapshot", snapshot_id))?;
        world.volumes.get(id).ok_or_else(|| missing("volume", id))?;
        Ok(())
    }

    fn remove_volume_snapshot(&self, snapshot_id: &str) -> Result<()> {
        self.call("remove_volume_snapshot", snapshot_id)?.snapshots.remove(snapshot_id);
        Ok(())
    }

    async fn clean_volumes(&self, known: &[String], _in_use: &[String]) -> Vec<String> {
        let mut world = self.world.lock().expect("sim");
        let mut cleaned = Vec::new();
        world.volumes.retain(|id, _| known.contains(id) || !cleaned_push(&mut cleaned, id));
        world.snapshots.retain(|id, _| known.contains(id) || !cleaned_push(&mut cleaned, id));
        cleaned
    }

    async fn host_network(&self) -> Result<HostFacts> {
        Ok(HostFacts::default())
    }

    fn port_in_use(&self, _port: u16) -> Option<String> {
        None
    }

    async fn apply_network(&self, desired: &NetworkState) -> Result<NetworkApplied> {
        let mut world = self.call("apply_network", "")?;
        let before: Vec<String> = world
            .network
            .as_ref()
            .map(|n| n.bridges.iter().map(|b| b.network_id.clone()).collect())
            .unwrap_or_default();
        world.network = Some(desired.clone());
        let remade = desired.bridges.iter().filter(|b| !before.contains(&b.network_id)).map(|b| b.network_id.clone());
        Ok(NetworkApplied { remade: remade.collect() })
    }
}

fn cleaned_push(cleaned: &mut Vec<String>, id: &str) -> bool {
    cleaned.push(id.to_string());
    true
}

fn files_size(files: &BTreeMap<String, Option<Vec<u8>>>) -> u64 {
    files.values().map(|f| f.as_ref().map_or(0, |b| b.len() as u64)).sum()
}

/// One driver kind of a [`SimNode`].
struct SimInstances {
    node: SimNode,
    kind: &'static str,
}

impl SimInstances {
    fn with<T>(&self, op: &str, id: &str, f: impl FnOnce(&mut SimInstance) -> Result<T>) -> Result<T> {
        let mut world = self.node.call(op, id)?;
        let instance =
            world.instances.get_mut(id).filter(|i| i.kind == self.kind).ok_or_else(|| missing("instance", id))?;
        f(instance)
    }

    /// Like [`SimInstances::with`], but an instance not prepared yet is fine: the change
    /// is in its spec at the next prepare (as with a real driver).
    fn with_prepared(&self, op: &str, id: &str, f: impl FnOnce(&mut SimInstance)) -> Result<()> {
        let mut world = self.node.call(op, id)?;
        if let Some(instance) = world.instances.get_mut(id).filter(|i| i.kind == self.kind) {
            f(instance);
        }
        Ok(())
    }

    fn running(&self, op: &str, id: &str) -> Result<()> {
        self.with(op, id, |i| match i.state.status {
            InstanceStatus::Running => Ok(()),
            InstanceStatus::Paused => Err(Error::Conflict(format!("instance {id} is paused"))),
            _ => Err(Error::Conflict(format!("instance {id} is not running"))),
        })
    }
}

#[async_trait]
impl Instances for SimInstances {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn prepare(&self, spec: &crate::api::InstanceSpec) -> Result<()> {
        let mut world = self.node.call("prepare", &spec.id)?;
        if !world.images.contains_key(&spec.image) {
            return Err(missing("image", &spec.image));
        }
        for disk in &spec.disks {
            world.volumes.get(&disk.volume_id).ok_or_else(|| missing("volume", &disk.volume_id))?;
        }
        match world.instances.get_mut(&spec.id) {
            Some(i) if i.state.status == InstanceStatus::Running => {
                Err(Error::Conflict(format!("instance {} is running", spec.id)))
            }
            Some(i) => {
                i.spec = spec.clone();
                Ok(())
            }
            None => {
                let state = InstanceState { status: InstanceStatus::Stopped, ..InstanceState::missing() };
                let mut files = world.copied_changes.remove(&spec.id).unwrap_or_default();
                files.insert("/etc".into(), None);
                files.insert("/etc/hostname".into(), Some(format!("{}\n", spec.hostname).into_bytes()));
                let instance = SimInstance { kind: self.kind, spec: spec.clone(), state, files };
                world.instances.insert(spec.id.clone(), instance);
                Ok(())
            }
        }
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.with("start", id, |i| {
            if i.state.status != InstanceStatus::Running {
                i.state = InstanceState {
                    status: InstanceStatus::Running,
                    pid: Some(1),
                    started_at: Some(SystemTime::now()),
                    ..InstanceState::missing()
                };
            }
            Ok(())
        })
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<()> {
        self.with_prepared("stop", id, |i| {
            if matches!(i.state.status, InstanceStatus::Running | InstanceStatus::Paused) {
                i.state.status = InstanceStatus::Stopped;
                i.state.pid = None;
                i.state.exit_code = Some(0);
                i.state.finished_at = Some(SystemTime::now());
            }
        })
    }

    async fn kill(&self, id: &str) -> Result<()> {
        self.with_prepared("kill", id, |i| {
            if matches!(i.state.status, InstanceStatus::Running | InstanceStatus::Paused) {
                i.state.status = InstanceStatus::Stopped;
                i.state.pid = None;
                i.state.exit_code = Some(137);
                i.state.exit_signal = Some(9);
                i.state.finished_at = Some(SystemTime::now());
            }
        })
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.node.call("delete", id)?.instances.remove(id);
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<InstanceState> {
        let world = self.node.world.lock().expect("sim");
        Ok(world
            .instances
            .get(id)
            .filter(|i| i.kind == self.kind)
            .map(|i| i.state.clone())
            .unwrap_or_else(InstanceState::missing))
    }

    async fn list(&self) -> Result<Vec<String>> {
        let world = self.node.world.lock().expect("sim");
        Ok(world.instances.iter().filter(|(_, i)| i.kind == self.kind).map(|(id, _)| id.clone()).collect())
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession> {
        self.running("exec", id)?;
        let files = self.with("exec", id, |i| Ok(i.files.clone()))?;
        let (code, out, err) = simulate(&request.cmd, &files);
        let (stdin, _) = tokio::io::duplex(64);
        Ok(ExecSession::new(
            Box::new(stdin),
            Box::new(std::io::Cursor::new(out)),
            (!request.tty).then(|| Box::new(std::io::Cursor::new(err)) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            Box::new(SimProcess { code }),
        ))
    }

    async fn logs(&self, id: &str, _query: LogQuery) -> Result<LogLines> {
        self.with("logs", id, |_| Ok(()))?;
        Ok(Box::pin(futures_util::stream::empty()))
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        self.running("stats", id)?;
        self.with("stats", id, |i| {
            Ok(Stats {
                memory_bytes: 4 << 20,
                memory_limit: (i.spec.memory_bytes > 0).then_some(i.spec.memory_bytes),
                pids: 1,
                ..Stats::default()
            })
        })
    }

    async fn copy_in(&self, id: &str, path: &str, mut tar: TarStream) -> Result<()> {
        self.running("copy_in", id)?;
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tar, &mut bytes)
            .await
            .map_err(|e| Error::io("reading the tar", e))?;
        let mut entries = Vec::new();
        let mut archive = tar::Archive::new(&bytes[..]);
        for entry in archive.entries().map_err(|e| Error::Invalid(format!("not a tar archive: {e}")))? {
            let mut entry = entry.map_err(|e| Error::Invalid(format!("not a tar archive: {e}")))?;
            let name = entry.path().map_err(|e| Error::Invalid(e.to_string()))?.to_string_lossy().to_string();
            let full = join(path, &name);
            if entry.header().entry_type().is_dir() {
                entries.push((full, None));
            } else {
                let mut content = Vec::new();
                entry.read_to_end(&mut content).map_err(|e| Error::io("reading the tar", e))?;
                entries.push((full, Some(content)));
            }
        }
        self.with("copy_in", id, |i| {
            for (path, content) in entries {
                i.files.insert(path, content);
            }
            Ok(())
        })
    }

    async fn copy_out(&self, id: &str, path: &str) -> Result<TarStream> {
        self.running("copy_out", id)?;
        let files = self.with("copy_out", id, |i| Ok(i.files.clone()))?;
        let root = path.trim_end_matches('/');
        let base = root.rsplit('/').next().unwrap_or_default().to_string();
        let mut builder = tar::Builder::new(Vec::new());
        let mut found = false;
        for (file, content) in &files {
            let rel = if file == root {
                base.clone()
            } else if let Some(rest) = file.strip_prefix(&format!("{root}/")) {
                format!("{base}/{rest}")
            } else {
                continue;
            };
            found = true;
            let mut header = tar::Header::new_gnu();
            match content {
                Some(bytes) => {
                    header.set_size(bytes.len() as u64);
                    header.set_mode(0o644);
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_cksum();
                    builder.append_data(&mut header, &rel, &bytes[..]).map_err(|e| Error::io("writing a tar", e))?;
                }
                None => {
                    header.set_size(0);
                    header.set_mode(0o755);
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_cksum();
                    builder.append_data(&mut header, &rel, &[][..]).map_err(|e| Error::io("writing a tar", e))?;
                }
            }
        }
        if !found {
            return Err(missing("path", path));
        }
        let bytes = builder.into_inner().map_err(|e| Error::io("writing a tar", e))?;
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }

    async fn attach_network(&self, id: &str, nic: &NetAttachment) -> Result<()> {
        self.with_prepared("attach_network", id, |i| {
            i.spec.networks.retain(|n| n.index != nic.index);
            i.spec.networks.push(nic.clone());
        })
    }

    async fn detach_network(&self, id: &str, nic: &NetAttachment) -> Result<()> {
        self.with_prepared("detach_network", id, |i| {
            i.spec.networks.retain(|n| n.index != nic.index);
        })
    }

    async fn attach_volume(&self, id: &str, disk: &DiskAttachment) -> Result<()> {
        self.with_prepared("attach_volume", id, |i| {
            i.spec.disks.retain(|d| d.volume_id != disk.volume_id);
            i.spec.disks.push(disk.clone());
        })
    }

    async fn detach_volume(&self, id: &str, disk: &DiskAttachment, _force: bool) -> Result<()> {
        self.with_prepared("detach_volume", id, |i| {
            i.spec.disks.retain(|d| d.volume_id != disk.volume_id);
        })
    }

    async fn pause(&self, id: &str) -> Result<()> {
        self.with("pause", id, |i| match i.state.status {
            InstanceStatus::Running | InstanceStatus::Paused => {
                i.state.status = InstanceStatus::Paused;
                Ok(())
            }
            _ => Err(Error::Conflict(format!("instance {id} is not running"))),
        })
    }

    async fn resume(&self, id: &str) -> Result<()> {
        self.with("resume", id, |i| match i.state.status {
            InstanceStatus::Paused | InstanceStatus::Running => {
                i.state.status = InstanceStatus::Running;
                Ok(())
            }
            _ => Err(Error::Conflict(format!("instance {id} is not running"))),
        })
    }
}

/// `path` joined under `dir` inside the instance, normalized.
fn join(dir: &str, name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in dir.split('/').chain(name.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// What a simulated command prints and ends with.
fn simulate(cmd: &[String], files: &BTreeMap<String, Option<Vec<u8>>>) -> (i32, Vec<u8>, Vec<u8>) {
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["echo", rest @ ..] => (0, format!("{}\n", rest.join(" ")).into_bytes(), Vec::new()),
        ["true"] => (0, Vec::new(), Vec::new()),
        ["false"] => (1, Vec::new(), Vec::new()),
        ["sleep", _] => (0, Vec::new(), Vec::new()),
        ["cat", path] => match files.get(*path) {
            Some(Some(content)) => (0, content.clone(), Vec::new()),
            _ => (1, Vec::new(), format!("cat: {path}: No such file or directory\n").into_bytes()),
        },
        [sh, "-c", script] if sh.ends_with("sh") => match script.trim().strip_prefix("exit ") {
            Some(code) => (code.trim().parse().unwrap_or(2), Vec::new(), Vec::new()),
            None => simulate(&script.split_whitespace().map(String::from).collect::<Vec<_>>(), files),
        },
        _ => (127, Vec::new(), format!("{}: not simulated by the simulated node\n", cmd.join(" ")).into_bytes()),
    }
}

struct SimProcess {
    code: i32,
}

#[async_trait]
impl ExecProcess for SimProcess {
    fn resize(&self, _rows: u16, _cols: u16) -> Result<()> {
        Ok(())
    }

    async fn wait(&mut self) -> Result<i32> {
        Ok(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, image: &str) -> crate::api::InstanceSpec {
        crate::api::InstanceSpec {
            id: id.into(),
            image: image.into(),
            cmd: None,
            env: Vec::new(),
            cpus: 1.0,
            memory_bytes: 64 << 20,
            pids_limit: 0,
            hostname: id.into(),
            networks: Vec::new(),
            dns: None,
            disks: Vec::new(),
            capabilities_add: Vec::new(),
        }
    }

    #[tokio::test]
    async fn an_instance_moves_through_its_states_and_keeps_files() {
        let node = SimNode::new();
        let image = node.busybox_image().await.unwrap();
        let containers = node.instances("container").unwrap();
        let missing_image = containers.prepare(&spec("i-x", "0000")).await.unwrap_err();
        assert!(matches!(missing_image, Error::NotFound(_)), "{missing_image}");
        containers.prepare(&spec("i-a", &image.digest)).await.unwrap();
        assert_eq!(containers.inspect("i-a").await.unwrap().status, InstanceStatus::Stopped);
        assert!(containers.exec("i-a", ExecRequest::default()).await.is_err(), "exec needs a running instance");
        containers.start("i-a").await.unwrap();
        assert_eq!(containers.inspect("i-a").await.unwrap().status, InstanceStatus::Running);

        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_cksum();
        tar.append_data(&mut header, "hello.txt", &b"hello"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        containers.copy_in("i-a", "/tmp", Box::new(std::io::Cursor::new(bytes))).await.unwrap();
        let mut cat = containers
            .exec("i-a", ExecRequest { cmd: vec!["cat".into(), "/tmp/hello.txt".into()], ..Default::default() })
            .await
            .unwrap();
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(cat.stdout.as_mut().unwrap(), &mut out).await.unwrap();
        assert_eq!((out.as_str(), cat.wait().await.unwrap()), ("hello", 0));

        containers.pause("i-a").await.unwrap();
        assert!(matches!(containers.copy_out("i-a", "/tmp").await, Err(Error::Conflict(_))));
        containers.resume("i-a").await.unwrap();
        containers.stop("i-a", Duration::from_secs(1)).await.unwrap();
        containers.delete("i-a").await.unwrap();
        assert_eq!(containers.inspect("i-a").await.unwrap().status, InstanceStatus::Missing);
    }

    #[tokio::test]
    async fn injected_failures_fail_the_named_calls_only() {
        let node = SimNode::new();
        node.fail_next("create_volume", 1);
        assert!(node.create_volume("vol-a", 1 << 30, "ext4").await.is_err());
        node.create_volume("vol-a", 1 << 30, "ext4").await.unwrap();
        node.copy_volume("vol-a", "vol-b").await.unwrap();
        assert_eq!(node.volume_ids(), ["vol-a", "vol-b"]);
        assert!(node.resize_volume("vol-a", 1).await.is_err(), "volumes do not shrink");
    }
}
