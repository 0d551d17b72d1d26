//! Block volumes on the host: sparse raw images holding an ext4 filesystem, made with
//! `qemu-img` and `mkfs.ext4`, loop-mounted by the container driver (a VM driver gives
//! the same image to QEMU as a virtio-blk disk).
//!
//! Layout under the data directory:
//! ```text
//! volumes/<vol-id>.raw          the volume's image
//! snapshots/<snap-id>.raw       a snapshot: a full, sparse copy of an image
//! snapshots/<isnap-id>.tar      an instance snapshot's root filesystem changes
//! volume-mounts/<vol-id>/       where an attached volume is mounted on the host
//! ```
//! Crash safety: every image that is written (a create, snapshot, restore, clone or an
//! offline resize) is first written as `.tmp-*` beside its final name, synced, and then
//! renamed over it, so a `kill -9` at any point leaves the old file or the new one.
//! [`VolumeStore::clean_temporaries`] removes what a crash left behind.
//!
//! Copies are sparse-aware: a reflink (`FICLONE`) where the filesystem has them,
//! otherwise only the data extents (`SEEK_DATA`/`SEEK_HOLE` with `copy_file_range`),
//! so a 10 GiB volume with 1 GiB written copies 1 GiB.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::error::IoContext;
use crate::{Error, Result};

/// Filesystems a volume can be made with.
pub const FILESYSTEMS: &[&str] = &["ext4"];

#[derive(Debug, Clone)]
pub struct VolumeStore {
    data_dir: PathBuf,
}

/// Where an attached volume is mounted on the host (shared with the container driver).
pub fn mount_point(data_dir: &Path, volume_id: &str) -> PathBuf {
    data_dir.join("volume-mounts").join(volume_id)
}

impl VolumeStore {
    pub fn new(data_dir: impl Into<PathBuf>) -> VolumeStore {
        VolumeStore { data_dir: data_dir.into() }
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.data_dir.join("volumes")
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }

    pub fn image(&self, volume_id: &str) -> PathBuf {
        self.volumes_dir().join(format!("{volume_id}.raw"))
    }

    pub fn snapshot_image(&self, snapshot_id: &str) -> PathBuf {
        self.snapshots_dir().join(format!("{snapshot_id}.raw"))
    }

    pub fn archive(&self, instance_snapshot_id: &str) -> PathBuf {
        self.snapshots_dir().join(format!("{instance_snapshot_id}.tar"))
    }

    pub fn mount_point(&self, volume_id: &str) -> PathBuf {
        mount_point(&self.data_dir, volume_id)
    }

    /// Present while the image is larger than its filesystem (an online grow was refused).
    pub fn grow_marker(&self, volume_id: &str) -> PathBuf {
        grow_marker(&self.image(volume_id))
    }

    fn ensure_dirs(&self) -> Result<()> {
        for dir in [self.volumes_dir(), self.snapshots_dir()] {
            fs::create_dir_all(&dir).at("creating", &dir)?;
        }
        Ok(())
    }

    /// Makes an empty volume: a sparse raw image of `size` bytes with a filesystem.
    pub async fn create(&self, volume_id: &str, size: u64, filesystem: &str) -> Result<()> {
        self.ensure_dirs()?;
        if !FILESYSTEMS.contains(&filesystem) {
            return Err(Error::Invalid(format!("unsupported filesystem '{filesystem}' (ext4)")));
        }
        let target = self.image(volume_id);
        if target.exists() {
            return Ok(());
        }
        let tmp = tmp_beside(&target);
        let result = async {
            run("qemu-img", "qemu-utils", &["create", "-q", "-f", "raw", path_str(&tmp)?, &size.to_string()]).await?;
            // No lazy init: the filesystem is complete when the file is renamed in.
            run(
                "mkfs.ext4",
                "e2fsprogs",
                &["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-L", label(volume_id), path_str(&tmp)?],
            )
            .await?;
            sync_file(&tmp)?;
            fs::rename(&tmp, &target).at("renaming into", &target)?;
            sync_dir(&self.volumes_dir())
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes a volume's image (it must not be mounted).
    pub async fn remove(&self, volume_id: &str) -> Result<()> {
        self.unmount(volume_id).await?;
        remove_if_exists(&self.image(volume_id))?;
        remove_if_exists(&self.grow_marker(volume_id))?;
        let mnt = self.mount_point(volume_id);
        let _ = fs::remove_dir(&mnt);
        Ok(())
    }

    pub fn remove_snapshot(&self, snapshot_id: &str) -> Result<()> {
        remove_if_exists(&self.snapshot_image(snapshot_id))?;
        remove_if_exists(&self.archive(snapshot_id))
    }

    /// Whether the volume is mounted on the host (attached to an instance that runs or ran).
    pub fn is_mounted(&self, volume_id: &str) -> bool {
        is_mount_point(&self.mount_point(volume_id))
    }

    /// Bytes in use: the filesystem's use while mounted, else the blocks the image holds.
    pub fn used_bytes(&self, volume_id: &str) -> u64 {
        let mnt = self.mount_point(volume_id);
        if is_mount_point(&mnt)
            && let Ok(st) = nix::sys::statvfs::statvfs(&mnt)
        {
            return (st.blocks() - st.blocks_free()) * st.fragment_size();
        }
        fs::metadata(self.image(volume_id)).map(|m| m.blocks() * 512).unwrap_or(0)
    }

    pub fn stored_bytes(path: &Path) -> u64 {
        fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
    }

    /// A crash-consistent copy of the volume as `snapshots/<snapshot_id>.raw`. A mounted
    /// filesystem is frozen (`FIFREEZE`, which also flushes it) for the copy.
    pub async fn snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<u64> {
        self.ensure_dirs()?;
        let source = self.image(volume_id);
        let target = self.snapshot_image(snapshot_id);
        let mnt = self.mount_point(volume_id);
        let frozen = if is_mount_point(&mnt) {
            run("fsfreeze", "util-linux", &["--freeze", path_str(&mnt)?]).await?;
            true
        } else {
            false
        };
        let copied = copy_atomically(&source, &target).await;
        if frozen && let Err(e) = run("fsfreeze", "util-linux", &["--unfreeze", path_str(&mnt)?]).await {
            tracing::error!(volume = volume_id, error = %e, "could not thaw the volume after a snapshot");
        }
        copied?;
        Ok(Self::stored_bytes(&target))
    }

    /// A crash-consistent copy of one volume as another (an instance clone).
    pub async fn snapshot_to_volume(&self, volume_id: &str, new_volume_id: &str) -> Result<()> {
        self.ensure_dirs()?;
        let mnt = self.mount_point(volume_id);
        let frozen = if is_mount_point(&mnt) {
            run("fsfreeze", "util-linux", &["--freeze", path_str(&mnt)?]).await?;
            true
        } else {
            false
        };
        let copied = copy_atomically(&self.image(volume_id), &self.image(new_volume_id)).await;
        if frozen && let Err(e) = run("fsfreeze", "util-linux", &["--unfreeze", path_str(&mnt)?]).await {
            tracing::error!(volume = volume_id, error = %e, "could not thaw the volume after a copy");
        }
        copied
    }

    /// Replaces the volume's content with the snapshot's. The volume must not be in use:
    /// a stale host mount (its instance has stopped) is taken down first.
    pub async fn restore(&self, volume_id: &str, snapshot_id: &str) -> Result<()> {
        self.unmount(volume_id).await?;
        copy_atomically(&self.snapshot_image(snapshot_id), &self.image(volume_id)).await?;
        remove_if_exists(&self.grow_marker(volume_id))
    }

    /// A new volume from a snapshot, grown to `size` when that is larger.
    pub async fn clone_from(&self, snapshot_id: &str, volume_id: &str, size: u64) -> Result<()> {
        self.ensure_dirs()?;
        let source = self.snapshot_image(snapshot_id);
        let target = self.image(volume_id);
        let tmp = tmp_beside(&target);
        let result = async {
            sparse_copy(&source, &tmp).await?;
            if size > fs::metadata(&tmp).at("reading", &tmp)?.len() {
                grow_offline(&tmp, size).await?;
            }
            sync_file(&tmp)?;
            fs::rename(&tmp, &target).at("renaming into", &target)?;
            sync_dir(&self.volumes_dir())
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Grows the image and its filesystem to `size`. Online (`resize2fs` on the loop
    /// device) while mounted; otherwise on a copy that replaces the image when done.
    pub async fn resize(&self, volume_id: &str, size: u64) -> Result<()> {
        let image = self.image(volume_id);
        let current = fs::metadata(&image).at("reading", &image)?.len();
        if size < current {
            return Err(Error::Invalid("volumes can only grow".into()));
        }
        let mnt = self.mount_point(volume_id);
        if is_mount_point(&mnt) {
            let device = mount_source(&mnt)
                .ok_or_else(|| Error::Conflict(format!("cannot find the device mounted on {}", mnt.display())))?;
            File::options().write(true).open(&image).and_then(|f| f.set_len(size)).at("growing", &image)?;
            run("losetup", "util-linux", &["--set-capacity", &device]).await?;
            // Online growth needs CAP_SYS_RESOURCE; a host (or container) without it
            // gets the filesystem grown offline before its next mount.
            if let Err(e) = run("resize2fs", "e2fsprogs", &[&device]).await {
                tracing::warn!(volume = volume_id, error = %e, "online resize refused; the filesystem grows at the next mount");
                fs::write(self.grow_marker(volume_id), b"").at("writing", &self.grow_marker(volume_id))?;
            }
            return Ok(());
        }
        let tmp = tmp_beside(&image);
        let result = async {
            sparse_copy(&image, &tmp).await?;
            grow_offline(&tmp, size).await?;
            sync_file(&tmp)?;
            fs::rename(&tmp, &image).at("renaming into", &image)?;
            remove_if_exists(&self.grow_marker(volume_id))?;
            sync_dir(&self.volumes_dir())
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Unmounts the host mount of a volume whose instance no longer runs.
    pub async fn unmount(&self, volume_id: &str) -> Result<()> {
        unmount_disk(&self.mount_point(volume_id))
    }

    /// Removes the `.tmp-*` files a crash left in the middle of a write.
    pub fn clean_temporaries(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for dir in [self.volumes_dir(), self.snapshots_dir()] {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") && fs::remove_file(entry.path()).is_ok() {
                    removed.push(entry.path());
                }
            }
        }
        removed
    }

    /// Host mounts of volumes that no instance needs now (`keep`: volumes attached to
    /// running instances) are unmounted, and loop devices backed by files of this store
    /// that nothing mounts are detached. Returns what was cleaned.
    pub async fn clean_mounts(&self, keep: &[String]) -> Vec<String> {
        let mut cleaned = Vec::new();
        if let Ok(entries) = fs::read_dir(self.data_dir.join("volume-mounts")) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                if keep.contains(&id) {
                    continue;
                }
                if is_mount_point(&entry.path()) {
                    match unmount_disk(&entry.path()) {
                        Ok(()) => cleaned.push(format!("mount {}", entry.path().display())),
                        Err(e) => tracing::warn!(volume = %id, error = %e, "cannot unmount a stale volume mount"),
                    }
                } else {
                    let _ = fs::remove_dir(entry.path());
                }
            }
        }
        let mounted = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for (device, backing) in loop_devices() {
            let ours = backing.starts_with(self.volumes_dir()) || backing.starts_with(self.snapshots_dir());
            let in_use =
                mounted.lines().any(|l| l.split(" - ").nth(1).is_some_and(|t| t.split(' ').nth(1) == Some(&device)));
            if ours && !in_use && run("losetup", "util-linux", &["-d", &device]).await.is_ok() {
                cleaned.push(format!("loop device {device}"));
            }
        }
        cleaned
    }
}

/// Loop-mounts a volume image on `mnt` (idempotent).
pub async fn mount_disk(image: &Path, mnt: &Path, filesystem: &str, read_only: bool) -> Result<()> {
    fs::create_dir_all(mnt).at("creating", mnt)?;
    if is_mount_point(mnt) {
        return Ok(());
    }
    if !image.exists() {
        return Err(Error::Invalid(format!("volume image {} does not exist", image.display())));
    }
    // After a forced (lazy) detach the old mount lives on, loop device and all, until
    // the last process holding a file on it lets go: never mount the image a second time
    // meanwhile (two mounts of one ext4 would corrupt it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while loop_devices().iter().any(|(_, backing)| backing == image) {
        if std::time::Instant::now() > deadline {
            return Err(Error::Conflict(format!(
                "volume image {} is still in use (a forced detach left files open); retry once they are closed",
                image.display()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let marker = grow_marker(image);
    if marker.exists() {
        grow_offline(image, fs::metadata(image).at("reading", image)?.len()).await?;
        remove_if_exists(&marker)?;
    } else {
        // A VM (or anything with the raw image) may have written any bytes: the host
        // kernel mounts only a filesystem a confined checker found sound.
        check_filesystem(image, filesystem).await?;
    }
    let options = if read_only { "loop,ro,nodev,nosuid" } else { "loop,nodev,nosuid" };
    run("mount", "mount", &["-t", filesystem, "-o", options, path_str(image)?, path_str(mnt)?]).await
}

/// How long the filesystem check of one image may take, and how much memory it may map.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
const CHECK_MEMORY_BYTES: u64 = 2 << 30;

/// Refuses an image whose filesystem `e2fsck -n -f` does not find clean, before the host
/// kernel mounts or resizes it. The checker runs confined ([`confined`]: no network, no
/// capabilities, bounded memory, CPU time and wall time), reads the image and writes
/// nothing. A journal left to replay (a guest that stopped uncleanly) is replayed by
/// e2fsck itself, confined too, rather than by the kernel at mount time, then checked.
pub async fn check_filesystem(image: &Path, filesystem: &str) -> Result<()> {
    if filesystem != "ext4" {
        return Err(Error::Invalid(format!("unsupported filesystem '{filesystem}' (ext4)")));
    }
    let name = volume_name(image);
    let mut result = e2fsck(image, &["-n", "-f"]).await?;
    if result.code != 0 && result.output.contains("journal recovery") {
        e2fsck(image, &["-p", "-E", "journal_only"]).await?;
        result = e2fsck(image, &["-n", "-f"]).await?;
    }
    match result.code {
        0 => Ok(()),
        _ => {
            let findings: Vec<&str> = result
                .output
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("e2fsck ") && !l.starts_with("Pass "))
                .take(3)
                .collect();
            Err(Error::Invalid(format!(
                "volume {name}: its filesystem is damaged (e2fsck -n exit {}: {}); Roost does not mount or resize a \
                 damaged filesystem: restore a snapshot or repair the image",
                result.code,
                if findings.is_empty() { "no details".to_string() } else { findings.join("; ") }
            )))
        }
    }
}

/// The volume an image belongs to (`vol-…` from `volumes/vol-….raw`), for messages.
fn volume_name(image: &Path) -> String {
    image.file_stem().map(|s| s.to_string_lossy().trim_start_matches(".tmp-").to_string()).unwrap_or_default()
}

struct CheckResult {
    code: i32,
    output: String,
}

/// Runs e2fsck on `image`, confined; its exit code and what it printed.
async fn e2fsck(image: &Path, flags: &[&str]) -> Result<CheckResult> {
    let mut command = Command::new("e2fsck");
    command.args(flags).arg(path_str(image)?).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.kill_on_drop(true);
    confined(&mut command, CHECK_MEMORY_BYTES, CHECK_TIMEOUT.as_secs());
    let child = command.spawn().map_err(|e| tool_error("e2fsck", "e2fsprogs", e))?;
    let output = match tokio::time::timeout(CHECK_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.map_err(|e| Error::io("running e2fsck", e))?,
        Err(_) => {
            return Err(Error::Invalid(format!(
                "volume {}: the filesystem check did not finish within {}s; not mounting it",
                volume_name(image),
                CHECK_TIMEOUT.as_secs()
            )));
        }
    };
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    // Killed by a limit (memory, CPU time): a signal, no exit code.
    let code = output.status.code().unwrap_or(128);
    Ok(CheckResult { code, output: text })
}

/// Confines a helper that reads untrusted data: its own (empty) network namespace, no
/// capabilities (it stays uid 0, so it reads root's files as their owner), no way to gain
/// privileges, at most `memory` bytes of address space, `cpu_seconds` of CPU time and 64
/// open files.
pub fn confined(command: &mut Command, memory: u64, cpu_seconds: u64) {
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            for (resource, limit) in [
                (libc::RLIMIT_AS, memory),
                (libc::RLIMIT_CPU, cpu_seconds),
                (libc::RLIMIT_NOFILE, 64),
                (libc::RLIMIT_CORE, 0),
            ] {
                let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(resource, &rl) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Empty the bounding set: the exec gives uid 0 no capabilities then.
            let mut cap = 0;
            while libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) == 0 {
                cap += 1;
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn grow_marker(image: &Path) -> PathBuf {
    image.with_extension("grow")
}

/// Unmounts a volume's host mount (missing is fine). The loop device goes with it
/// (`mount -o loop` sets autoclear).
pub fn unmount_disk(mnt: &Path) -> Result<()> {
    if !is_mount_point(mnt) {
        return Ok(());
    }
    match nix::mount::umount2(mnt, nix::mount::MntFlags::empty()) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(nix::Error::EBUSY) => {
            // Still held by a mount namespace that is going away, or an open file:
            // detach it now, the kernel finishes when the last user lets go.
            nix::mount::umount2(mnt, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| Error::io(format!("unmounting {}", mnt.display()), e.into()))
        }
        Err(e) => Err(Error::io(format!("unmounting {}", mnt.display()), e.into())),
    }
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    let (Ok(meta), Some(parent)) = (fs::metadata(path), path.parent()) else { return false };
    fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev())
}

/// The source device of the mount at `mnt`, from `/proc/self/mountinfo`.
fn mount_source(mnt: &Path) -> Option<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = mnt.to_str()?;
    text.lines().rfind(|l| l.split(' ').nth(4) == Some(want)).and_then(|l| {
        let (_, tail) = l.split_once(" - ")?;
        tail.split(' ').nth(1).map(str::to_string)
    })
}

/// Loop devices and their backing files, from sysfs.
fn loop_devices() -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir("/sys/block") else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
        .filter_map(|e| {
            let backing = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let backing = backing.trim().trim_end_matches(" (deleted)");
            Some((format!("/dev/{}", e.file_name().to_string_lossy()), PathBuf::from(backing)))
        })
        .collect()
}

/// Grows an unmounted image file and its ext4 filesystem (a damaged one is refused
/// before anything is written).
async fn grow_offline(image: &Path, size: u64) -> Result<()> {
    check_filesystem(image, "ext4").await?;
    File::options().write(true).open(image).and_then(|f| f.set_len(size)).at("growing", image)?;
    // resize2fs insists on a freshly checked filesystem when it is not mounted.
    let status = Command::new("e2fsck")
        .args(["-f", "-p", path_str(image)?])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| tool_error("e2fsck", "e2fsprogs", e))?;
    // 0: clean, 1: errors corrected.
    if !matches!(status.status.code(), Some(0 | 1)) {
        return Err(Error::tool("e2fsck", String::from_utf8_lossy(&status.stderr).trim().to_string()));
    }
    run("resize2fs", "e2fsprogs", &[path_str(image)?]).await
}

/// Copies `source` to a temporary file beside `target`, syncs it and renames it over
/// `target`.
pub async fn copy_atomically(source: &Path, target: &Path) -> Result<()> {
    let tmp = tmp_beside(target);
    let result = async {
        sparse_copy(source, &tmp).await?;
        sync_file(&tmp)?;
        fs::rename(&tmp, target).at("renaming into", target)?;
        sync_dir(target.parent().unwrap_or(Path::new("/")))
    }
    .await;
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Copies a file keeping its holes: a reflink where the filesystem supports them,
/// otherwise each data extent with `copy_file_range`. Runs on a blocking thread.
pub async fn sparse_copy(source: &Path, target: &Path) -> Result<()> {
    let (source, target) = (source.to_path_buf(), target.to_path_buf());
    tokio::task::spawn_blocking(move || sparse_copy_blocking(&source, &target))
        .await
        .map_err(|e| Error::io("copying", io::Error::other(e)))?
}

fn sparse_copy_blocking(source: &Path, target: &Path) -> Result<()> {
    use nix::unistd::{Whence, lseek};
    let src = File::open(source).at("opening", source)?;
    let len = src.metadata().at("reading", source)?.len();
    let dst = File::options().write(true).create(true).truncate(true).open(target).at("creating", target)?;
    // FICLONE = _IOW(0x94, 9, int)
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: FICLONE takes the source fd as its argument; both fds are open.
    if unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) } == 0 {
        return Ok(());
    }
    dst.set_len(len).at("sizing", target)?;
    let mut offset: i64 = 0;
    let end = len as i64;
    while offset < end {
        let data = match lseek(&src, offset, Whence::SeekData) {
            Ok(d) => d,
            Err(nix::Error::ENXIO) => break, // only a hole is left
            Err(e) => return Err(Error::io(format!("seeking in {}", source.display()), e.into())),
        };
        let hole = lseek(&src, data, Whence::SeekHole).unwrap_or(end).min(end);
        let mut from = data;
        while from < hole {
            let mut off_in = from;
            let mut off_out = from;
            // SAFETY: both fds are open; the offsets are locals the kernel updates.
            let n = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    &mut off_in,
                    dst.as_raw_fd(),
                    &mut off_out,
                    (hole - from) as usize,
                    0,
                )
            };
            if n < 0 {
                return Err(Error::io(format!("copying {}", source.display()), io::Error::last_os_error()));
            }
            if n == 0 {
                break;
            }
            from += n as i64;
        }
        offset = hole;
    }
    Ok(())
}

fn tmp_beside(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut rand = String::new();
    roost_random(&mut rand);
    target.with_file_name(format!(".tmp-{rand}-{name}"))
}

fn roost_random(out: &mut String) {
    let mut bytes = [0u8; 6];
    // SAFETY: getrandom writes at most len bytes into the buffer.
    unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    out.push_str(&hex::encode(bytes));
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).at("syncing", path)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).at("syncing", dir)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// The filesystem label: at most 16 bytes.
fn label(volume_id: &str) -> &str {
    &volume_id[..volume_id.len().min(16)]
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::Invalid(format!("unusable path {}", p.display())))
}

fn tool_error(tool: &'static str, package: &'static str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::missing(tool, package)
    } else {
        Error::io(format!("running {tool}"), e)
    }
}

async fn run(tool: &'static str, package: &'static str, args: &[&str]) -> Result<()> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| tool_error(tool, package, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::tool(tool, String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    /// The checker passes a sound filesystem, refuses a damaged one by the volume's
    /// name, writes nothing, and runs with no network and no capabilities.
    #[tokio::test]
    async fn damaged_filesystems_are_refused_by_a_confined_checker() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("vol-abcdefghijkl.raw");
        run("qemu-img", "qemu-utils", &["create", "-q", "-f", "raw", image.to_str().unwrap(), "32M"]).await.unwrap();
        run("mkfs.ext4", "e2fsprogs", &["-q", "-F", image.to_str().unwrap()]).await.unwrap();
        check_filesystem(&image, "ext4").await.unwrap();
        {
            let mut f = File::options().write(true).open(&image).unwrap();
            f.seek(SeekFrom::Start(4096)).unwrap();
            f.write_all(&vec![0x5a; 64 << 10]).unwrap();
        }
        let before = fs::read(&image).unwrap();
        let e = check_filesystem(&image, "ext4").await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("vol-abcdefghijkl") && e.to_string().contains("damaged"), "{e}");
        assert!(fs::read(&image).unwrap() == before, "the check wrote to the image");
        assert!(grow_offline(&image, 64 << 20).await.is_err(), "a damaged image is not grown");

        let mut probe = Command::new("sh");
        probe.args(["-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; cat /proc/net/dev"]);
        probe.stdout(Stdio::piped());
        confined(&mut probe, 1 << 30, 10);
        let out = String::from_utf8(probe.output().await.unwrap().stdout).unwrap();
        assert!(out.contains("CapEff:\t0000000000000000") && out.contains("CapBnd:\t0000000000000000"), "{out}");
        assert!(out.contains("NoNewPrivs:\t1"), "{out}");
        let interfaces: Vec<&str> = out
            .lines()
            .filter(|l| l.contains(':') && !l.contains("Cap") && !l.contains("NoNew") && !l.contains('|'))
            .collect();
        assert_eq!(interfaces.len(), 1, "loopback only: {out}");
    }

    #[tokio::test]
    async fn sparse_copies_keep_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a");
        let mut f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(8 << 20)).unwrap();
        f.write_all(&[7u8; 100_000]).unwrap();
        f.seek(SeekFrom::Start(60 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
        drop(f);
        let dst = dir.path().join("b");
        copy_atomically(&src, &dst).await.unwrap();
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dst).unwrap());
        // Holes stay holes: far less than the 64 MiB length is allocated.
        assert!(fs::metadata(&dst).unwrap().blocks() * 512 < 4 << 20);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
