//! [`LocalNode`]: the node API on this machine, what `roost server` runs in-process. It
//! owns the on-disk layout under the data directory (images, volumes, instances) and the
//! host's networking state Roost keeps (its bridges, routing tables, nftables tables and
//! the instance DNS server), and turns the control plane's ids and digests into paths.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use crate::api::{
    AcceleratorFacts, DiskAttachment, ImageInfo, Instances, NetworkApplied, NetworkState, NodeApi, NodeFacts, Progress,
};
use crate::driver::{
    self, Driver, ExecRequest, ExecSession, InstanceState, LogLines, LogQuery, NetAttachment, Stats, TarStream,
};
use crate::drivers::container::ContainerDriver;
use crate::drivers::vm::VmDriver;
use crate::images::{Image, ImageSource, ImageStore};
use crate::network::dns::DnsServer;
use crate::network::host::HostFacts;
use crate::network::{self as hostnet, RouteOwner, firewall};
use crate::storage::VolumeStore;
use crate::{Error, Result};

/// This machine as a node.
pub struct LocalNode {
    data_dir: PathBuf,
    containers: Arc<Resolved>,
    vms: Option<Arc<Resolved>>,
    vm_driver: Option<VmDriver>,
    vm_unavailable: Option<String>,
    images: ImageStore,
    volumes: VolumeStore,
    /// The nftables tables Roost owns (`ip` and `bridge` family) and the label of its
    /// bridges; two installations on one host need two names.
    firewall_table: String,
    /// The nft program.
    nft: String,
    dns: DnsServer,
    /// One network apply at a time.
    network_lock: tokio::sync::Mutex<()>,
    /// The firewall script applied last, to skip applying an unchanged one.
    firewall_applied: tokio::sync::Mutex<String>,
}

impl LocalNode {
    /// The node of the server whose data lives in `data_dir`, running containers with
    /// `containers`.
    pub fn new(data_dir: &Path, containers: ContainerDriver, firewall_table: String) -> LocalNode {
        let images = ImageStore::new(data_dir.join("images"));
        let volumes = VolumeStore::new(data_dir);
        LocalNode {
            data_dir: data_dir.to_owned(),
            containers: Arc::new(Resolved::new(Arc::new(containers), &images, &volumes)),
            vms: None,
            vm_driver: None,
            vm_unavailable: None,
            images,
            volumes,
            firewall_table,
            nft: "nft".into(),
            dns: DnsServer::new(),
            network_lock: tokio::sync::Mutex::new(()),
            firewall_applied: tokio::sync::Mutex::new(String::new()),
        }
    }

    /// Adds the microVM driver.
    pub fn with_vms(mut self, vm: VmDriver) -> LocalNode {
        self.vms = Some(Arc::new(Resolved::new(Arc::new(vm.clone()), &self.images, &self.volumes)));
        self.vm_driver = Some(vm);
        self
    }

    /// Records why this node runs no VMs.
    pub fn without_vms(mut self, why: String) -> LocalNode {
        self.vm_unavailable = Some(why);
        self
    }

    /// The image store (for tools that prepare images before a server runs).
    pub fn image_store(&self) -> &ImageStore {
        &self.images
    }

    fn instance_dir(&self, id: &str) -> Result<PathBuf> {
        check_id(id)?;
        Ok(self.data_dir.join("instances").join(id))
    }

    fn bridge_label(&self, network_id: &str) -> String {
        format!("{}{network_id}", self.bridge_prefix())
    }

    fn bridge_prefix(&self) -> String {
        format!("roost:{}:", self.firewall_table)
    }
}

fn info(image: Image) -> ImageInfo {
    ImageInfo { digest: image.digest, name: image.meta.name, size_bytes: image.meta.size_bytes }
}

/// A name no other spool file has.
fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Ids name files: nothing but what ids are made of.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok { Ok(()) } else { Err(Error::Invalid(format!("invalid id '{id}'"))) }
}

#[async_trait]
impl NodeApi for LocalNode {
    fn facts(&self) -> NodeFacts {
        let mut instance_types = vec!["container".to_string()];
        if self.vms.is_some() {
            instance_types.push("vm".into());
        }
        let accelerator = self.vm_driver.as_ref().map(|vm| {
            let a = vm.accel();
            AcceleratorFacts {
                accelerator: a.accelerator.clone(),
                reason: a.reason.clone(),
                kvm_usable: a.kvm_usable,
                tsc_khz: a.tsc_khz,
                checks: a.checks.iter().map(|c| (c.name.clone(), c.passed, c.detail.clone())).collect(),
            }
        });
        NodeFacts { instance_types, vm_unavailable: self.vm_unavailable.clone(), accelerator, simulated: false }
    }

    fn route_owner(&self) -> RouteOwner {
        RouteOwner::for_table(&self.firewall_table)
    }

    fn instances(&self, kind: &str) -> Result<Arc<dyn Instances>> {
        match kind {
            "vm" => match &self.vms {
                Some(vms) => Ok(vms.clone()),
                None => Err(Error::Unsupported(format!(
                    "this node cannot run VMs: {}",
                    self.vm_unavailable.as_deref().unwrap_or("no VM driver")
                ))),
            },
            _ => Ok(self.containers.clone()),
        }
    }

    fn all_instances(&self) -> Vec<Arc<dyn Instances>> {
        let mut all: Vec<Arc<dyn Instances>> = vec![self.containers.clone()];
        if let Some(vms) = &self.vms {
            all.push(vms.clone());
        }
        all
    }

    async fn copy_instance_changes(&self, from: &str, to: &str) -> Result<()> {
        copy_tree(&self.instance_dir(from)?.join("upper"), &self.instance_dir(to)?.join("upper")).await
    }

    async fn remove_instance_changes(&self, id: &str) -> Result<()> {
        let upper = self.instance_dir(id)?.join("upper");
        match tokio::fs::remove_dir_all(&upper).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", upper.display()), e)),
        }
        if let Some(dir) = upper.parent() {
            // Only when nothing else of the instance is there (no container was made).
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }

    async fn archive_instance_changes(&self, id: &str, snapshot_id: &str) -> Result<u64> {
        check_id(snapshot_id)?;
        let archive = self.volumes.archive(snapshot_id);
        tar_dir(&self.instance_dir(id)?.join("upper"), &archive).await?;
        Ok(std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0))
    }

    async fn remove_instance_archive(&self, snapshot_id: &str) -> Result<()> {
        check_id(snapshot_id)?;
        self.volumes.remove_snapshot(snapshot_id)
    }

    async fn capture_image(&self, id: &str, digest: &str, name: &str, source: ImageSource) -> Result<ImageInfo> {
        let rootfs = self.instance_dir(id)?.join("rootfs");
        self.images.snapshot(digest, name, &rootfs, source).await.map(info)
    }

    async fn image(&self, digest: &str) -> Result<Option<ImageInfo>> {
        Ok(self.images.get(digest)?.map(info))
    }

    async fn busybox_image(&self) -> Result<ImageInfo> {
        self.images.busybox().await.map(info)
    }

    async fn build_debian_image(
        &self,
        name: &str,
        suite: &str,
        packages: &[String],
        progress: Progress,
    ) -> Result<ImageInfo> {
        self.images.build_debian(name, suite, packages, progress).await.map(info)
    }

    async fn import_image(&self, file_name: &str, mut archive: TarStream, max_unpacked: u64) -> Result<ImageInfo> {
        // Spooled to a file first: the digest is the archive's, and the format is told
        // by its content.
        let dir = self.images.root().join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the import directory", e))?;
        let name = std::path::Path::new(file_name).file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.filter(|n| !n.starts_with('.')).unwrap_or_else(|| "image.tar".into());
        let spool = dir.join(format!("{}-{name}", unique_suffix()));
        let written = async {
            let mut file = tokio::fs::File::create(&spool).await?;
            tokio::io::copy(&mut archive, &mut file).await?;
            file.flush().await
        }
        .await;
        let imported = match written {
            Ok(()) => self.images.import_tarball(&spool, max_unpacked).await.map(info),
            Err(e) => Err(Error::io("receiving the image archive", e)),
        };
        let _ = tokio::fs::remove_file(&spool).await;
        imported
    }

    async fn image_has_command(&self, digest: &str, cmd: &str) -> Result<bool> {
        let image = self.images.get(digest)?.ok_or_else(|| Error::NotFound(format!("image {digest}")))?;
        Ok(command_exists(&image.rootfs, cmd))
    }

    async fn remove_image(&self, digest: &str) -> Result<()> {
        self.images.remove(digest).await
    }

    async fn create_volume(&self, id: &str, size: u64, filesystem: &str) -> Result<()> {
        check_id(id)?;
        self.volumes.create(id, size, filesystem).await
    }

    async fn volume_from_snapshot(&self, snapshot_id: &str, id: &str, size: u64) -> Result<()> {
        check_id(id)?;
        check_id(snapshot_id)?;
        self.volumes.clone_from(snapshot_id, id, size).await
    }

    async fn copy_volume(&self, from: &str, id: &str) -> Result<()> {
        check_id(id)?;
        check_id(from)?;
        self.volumes.snapshot_to_volume(from, id).await
    }

    async fn remove_volume(&self, id: &str) -> Result<()> {
        check_id(id)?;
        self.volumes.remove(id).await
    }

    async fn resize_volume(&self, id: &str, size: u64) -> Result<()> {
        check_id(id)?;
        self.volumes.resize(id, size).await
    }

    fn volume_used_bytes(&self, id: &str) -> u64 {
        if check_id(id).is_err() {
            return 0;
        }
        self.volumes.used_bytes(id)
    }

    async fn snapshot_volume(&self, id: &str, snapshot_id: &str) -> Result<u64> {
        check_id(id)?;
        check_id(snapshot_id)?;
        self.volumes.snapshot(id, snapshot_id).await
    }

    fn snapshot_stored_bytes(&self, snapshot_id: &str) -> u64 {
        if check_id(snapshot_id).is_err() {
            return 0;
        }
        let image = self.volumes.snapshot_image(snapshot_id);
        let path = if image.exists() { image } else { self.volumes.archive(snapshot_id) };
        VolumeStore::stored_bytes(&path)
    }

    async fn restore_volume(&self, id: &str, snapshot_id: &str) -> Result<()> {
        check_id(id)?;
        check_id(snapshot_id)?;
        self.volumes.restore(id, snapshot_id).await
    }

    fn remove_volume_snapshot(&self, snapshot_id: &str) -> Result<()> {
        check_id(snapshot_id)?;
        self.volumes.remove_snapshot(snapshot_id)
    }

    async fn clean_volumes(&self, known: &[String], in_use: &[String]) -> Vec<String> {
        let mut cleaned: Vec<String> =
            self.volumes.clean_temporaries().into_iter().map(|p| format!("temporary file {}", p.display())).collect();
        for dir in [self.volumes.volumes_dir(), self.volumes.snapshots_dir()] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let stem = name.split('.').next().unwrap_or_default().to_string();
                let ours = stem.starts_with("vol-") || stem.starts_with("snap-") || stem.starts_with("isnap-");
                if ours && !known.contains(&stem) && std::fs::remove_file(entry.path()).is_ok() {
                    cleaned.push(format!("image without a record {}", entry.path().display()));
                }
            }
        }
        cleaned.extend(self.volumes.clean_mounts(in_use).await);
        cleaned
    }

    async fn host_network(&self) -> Result<HostFacts> {
        HostFacts::read().await
    }

    fn port_in_use(&self, port: u16) -> Option<String> {
        hostnet::host::port_in_use(port)
    }

    async fn apply_network(&self, desired: &NetworkState) -> Result<NetworkApplied> {
        let _guard = self.network_lock.lock().await;
        let owner = self.route_owner();
        // Bridges: those wanted, made; ours that are not wanted, removed.
        let mut applied = NetworkApplied::default();
        for b in &desired.bridges {
            let host = hostnet::Network { bridge: b.bridge.clone(), gateway: b.gateway, prefix_len: b.prefix_len };
            if !hostnet::link_exists(&b.bridge) {
                applied.remade.push(b.network_id.clone());
            }
            host.ensure(Some(&self.bridge_label(&b.network_id))).await?;
        }
        hostnet::sync_policy_routing(owner, &desired.routes).await?;
        for (bridge, _) in hostnet::owned_bridges(&self.bridge_prefix()) {
            if !desired.bridges.iter().any(|b| b.bridge == bridge) {
                tracing::info!(bridge, "removing a bridge whose network is gone (or unusable)");
                hostnet::remove_bridge(&bridge).await?;
            }
        }

        let script = firewall::compile(&self.firewall_table, &desired.firewall)?;
        // Unchanged and still there: nothing to do (the drift check runs every few
        // seconds). The `nft list` probe runs only then: a changed script is applied
        // anyway, and instance starts should not pay for extra processes.
        let unchanged = *self.firewall_applied.lock().await == script;
        let present = unchanged && {
            let (nft, table) = (self.nft.clone(), self.firewall_table.clone());
            tokio::task::spawn_blocking(move || firewall::exists(&nft, &table))
                .await
                .map_err(|e| Error::Invalid(format!("the firewall probe failed: {e}")))?
        };
        if !present {
            let (nft, applied) = (self.nft.clone(), script.clone());
            tokio::task::spawn_blocking(move || firewall::apply(&nft, &applied))
                .await
                .map_err(|e| Error::Invalid(format!("applying the firewall failed: {e}")))??;
            *self.firewall_applied.lock().await = script;
        }
        self.dns.set_zones(desired.dns.clone()).await;
        Ok(applied)
    }
}

/// A driver seen through the node API: digests and volume ids become this node's paths.
struct Resolved {
    driver: Arc<dyn Driver>,
    images: ImageStore,
    volumes: VolumeStore,
}

impl Resolved {
    fn new(driver: Arc<dyn Driver>, images: &ImageStore, volumes: &VolumeStore) -> Resolved {
        Resolved { driver, images: images.clone(), volumes: volumes.clone() }
    }

    fn disk(&self, d: &DiskAttachment) -> Result<driver::VolumeAttachment> {
        check_id(&d.volume_id)?;
        Ok(driver::VolumeAttachment {
            volume_id: d.volume_id.clone(),
            image: self.volumes.image(&d.volume_id),
            format: d.format,
            filesystem: d.filesystem.clone(),
            path: d.path.clone(),
            read_only: d.read_only,
        })
    }
}

#[async_trait]
impl Instances for Resolved {
    fn kind(&self) -> &'static str {
        self.driver.kind()
    }

    async fn prepare(&self, spec: &crate::api::InstanceSpec) -> Result<()> {
        let image = self.images.get(&spec.image)?.ok_or_else(|| Error::NotFound(format!("image {}", spec.image)))?;
        let disks = spec.disks.iter().map(|d| self.disk(d)).collect::<Result<Vec<_>>>()?;
        let spec = driver::InstanceSpec {
            id: spec.id.clone(),
            rootfs: image.rootfs,
            cmd: spec.cmd.clone(),
            env: spec.env.clone(),
            cpus: spec.cpus,
            memory_bytes: spec.memory_bytes,
            pids_limit: spec.pids_limit,
            hostname: spec.hostname.clone(),
            networks: spec.networks.clone(),
            dns: spec.dns.clone(),
            volumes: Vec::new(),
            disks,
            capabilities_add: spec.capabilities_add.clone(),
        };
        self.driver.prepare(&spec).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.driver.start(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        self.driver.stop(id, grace).await
    }

    async fn kill(&self, id: &str) -> Result<()> {
        self.driver.kill(id).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.driver.delete(id).await
    }

    async fn inspect(&self, id: &str) -> Result<InstanceState> {
        self.driver.inspect(id).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.driver.list().await
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession> {
        self.driver.exec(id, request).await
    }

    async fn logs(&self, id: &str, query: LogQuery) -> Result<LogLines> {
        self.driver.logs(id, query).await
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        self.driver.stats(id).await
    }

    async fn copy_in(&self, id: &str, path: &str, tar: TarStream) -> Result<()> {
        self.driver.copy_in(id, path, tar).await
    }

    async fn copy_out(&self, id: &str, path: &str) -> Result<TarStream> {
        self.driver.copy_out(id, path).await
    }

    async fn attach_network(&self, id: &str, nic: &NetAttachment) -> Result<()> {
        self.driver.attach_network(id, nic).await
    }

    async fn detach_network(&self, id: &str, nic: &NetAttachment) -> Result<()> {
        self.driver.detach_network(id, nic).await
    }

    async fn attach_volume(&self, id: &str, disk: &DiskAttachment) -> Result<()> {
        self.driver.attach_volume(id, &self.disk(disk)?).await
    }

    async fn detach_volume(&self, id: &str, disk: &DiskAttachment, force: bool) -> Result<()> {
        self.driver.detach_volume(id, &self.disk(disk)?, force).await
    }

    async fn pause(&self, id: &str) -> Result<()> {
        self.driver.pause(id).await
    }

    async fn resume(&self, id: &str) -> Result<()> {
        self.driver.resume(id).await
    }
}

/// Whether `cmd` resolves to a file in the image: a path (relative ones from the root),
/// or a name on the default PATH. Symlinks count (BusyBox applets are symlinks).
pub fn command_exists(rootfs: &Path, cmd: &str) -> bool {
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if cmd.contains('/') {
        return exists(&rootfs.join(cmd.trim_start_matches('/')));
    }
    ["usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"]
        .iter()
        .any(|dir| exists(&rootfs.join(dir).join(cmd)))
}

/// `tar` of a directory's content into `archive` (written beside it, then renamed).
async fn tar_dir(dir: &Path, archive: &Path) -> Result<()> {
    if let Some(parent) = archive.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let tmp = archive.with_file_name(format!(
        ".tmp-{}",
        archive.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
    ));
    // Never started: no changes yet, an empty archive.
    let empty = std::env::temp_dir().join("roost-empty-rootfs");
    let _ = std::fs::create_dir_all(&empty);
    let dir = if dir.is_dir() { dir } else { empty.as_path() };
    let out = tokio::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("--xattrs")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(&tmp)
        .arg(".")
        .output()
        .await
        .map_err(|e| Error::io("running tar", e))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::tool("tar", String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    std::fs::rename(&tmp, archive).map_err(|e| Error::io(format!("renaming {}", archive.display()), e))
}

/// Copies a directory tree keeping owners, modes, xattrs and holes; reflinks where the
/// filesystem allows (`cp --reflink=auto`). Missing source: nothing to copy.
async fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    let parent = to.parent().ok_or_else(|| Error::Invalid("bad copy target".into()))?;
    std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    // `-a` copies symlinks as symlinks (never what they point at, which for a link the
    // instance made could be any host file); `-T`: `to` is the copy, never a directory
    // to copy into.
    let out = tokio::process::Command::new("cp")
        .args(["-a", "--no-dereference", "-T", "--reflink=auto", "--sparse=always"])
        .arg(from)
        .arg(to)
        .output()
        .await
        .map_err(|e| Error::io("running cp", e))?;
    if !out.status.success() {
        return Err(Error::tool("cp", String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_in_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/busybox"), b"").unwrap();
        std::os::unix::fs::symlink("/bin/busybox", dir.path().join("bin/sh")).unwrap();
        assert!(command_exists(dir.path(), "sh"));
        assert!(command_exists(dir.path(), "/bin/sh"));
        assert!(!command_exists(dir.path(), "python3"));
        assert!(!command_exists(dir.path(), "/usr/bin/env"));
    }

    #[test]
    fn ids_that_would_leave_the_layout_are_refused() {
        for bad in ["", "../x", "a/b", "a b", "."] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        assert!(check_id("vol-abc123").is_ok());
    }
}
