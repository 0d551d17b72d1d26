//! User namespaces for containers: the container's root is an unprivileged host user.
//!
//! Container ids `0..65536` map to a per-host range of host ids (`roost`'s entry in
//! `/etc/subuid` and `/etc/subgid`, else 1000000000, above what `useradd` hands out). A
//! file the container's root creates belongs to a uid nobody on the host has, and a
//! process that escapes its namespaces is nobody on the host.
//!
//! Images stay shared and unshifted: the overlay is mounted over *idmapped* mounts of the
//! image's root and of the instance's directory (which holds `upper/` and `work/`), so an
//! image file owned by 0 on disk is seen as the range's first id on the host, which is 0
//! inside; files written by the instance land on disk as the container saw them. Copies
//! of the upper layer (clones, snapshots, templates) therefore keep container ids.
//! overlayfs records who mounted it and does its copy-ups as that user, so the mount is
//! made by a thread whose filesystem ids are the range's root (with its capabilities
//! kept): a copy-up by host root would find no id for itself in the idmapped upper layer.
//!
//! Each instance has a user namespace of its own kept in `<instance dir>/userns` (a bind
//! mount of its nsfs file), and its network namespace is created inside it, so the
//! container owns its network namespace as a container without a user namespace does
//! (sysfs mounts, raw sockets for `--cap-add NET_RAW`); the host, root in every user
//! namespace, still configures it.
//!
//! What a host needs (the `auto` setting checks it by doing it once, in a scratch
//! directory of the data directory): user namespaces (`/proc/sys/user/max_user_namespaces`
//! above 0), idmapped mounts on the data directory's filesystem (ext4, xfs, btrfs, tmpfs
//! since Linux 5.12–6.3; not NFS, not an overlayfs such as a container's own root) and
//! overlayfs over idmapped layers (Linux 5.19).

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The server setting `userns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsernsMode {
    /// On where the host supports it (probed at start).
    #[default]
    Auto,
    /// Always; the driver refuses to start on a host without support.
    On,
    Off,
}

impl std::str::FromStr for UsernsMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<UsernsMode, String> {
        match s {
            "auto" => Ok(UsernsMode::Auto),
            "on" => Ok(UsernsMode::On),
            "off" => Ok(UsernsMode::Off),
            _ => Err(format!("'{s}' is not auto, on or off")),
        }
    }
}

/// How many ids a container has.
pub const COUNT: u32 = 65536;
/// The range's start when `/etc/subuid` has no entry for `roost`.
pub const DEFAULT_START: u32 = 1_000_000_000;

/// The host ids container ids `0..count` map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    pub count: u32,
}

impl IdMap {
    /// `roost`'s ranges in `/etc/subuid` and `/etc/subgid` (65536 ids at least), else
    /// [`DEFAULT_START`].
    pub fn for_host() -> IdMap {
        let entry = |file: &str| -> Option<u32> {
            fs::read_to_string(file).ok()?.lines().find_map(|l| {
                let mut f = l.trim().split(':');
                let (name, start, count) = (f.next()?, f.next()?.parse::<u32>().ok()?, f.next()?.parse::<u32>().ok()?);
                (name == "roost" && count >= COUNT).then_some(start)
            })
        };
        IdMap {
            uid: entry("/etc/subuid").unwrap_or(DEFAULT_START),
            gid: entry("/etc/subgid").unwrap_or(DEFAULT_START),
            count: COUNT,
        }
    }

    fn uid_map(&self) -> String {
        format!("0 {} {}\n", self.uid, self.count)
    }

    fn gid_map(&self) -> String {
        format!("0 {} {}\n", self.gid, self.count)
    }
}

/// `<instance dir>/idmap`: `uid gid count` of a user-namespaced instance, whose root
/// filesystem the host sees with shifted ids.
pub const ID_MAP_FILE: &str = "idmap";

impl std::fmt::Display for IdMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.uid, self.gid, self.count)
    }
}

impl std::str::FromStr for IdMap {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<IdMap, String> {
        let n: Vec<u32> = s.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        match n[..] {
            [uid, gid, count] => Ok(IdMap { uid, gid, count }),
            _ => Err(format!("'{s}' is not 'uid gid count'")),
        }
    }
}

/// The id map of the instance whose root filesystem is `rootfs` (`<dir>/rootfs`), if
/// it runs in a user namespace.
pub fn id_map_of_rootfs(rootfs: &Path) -> Option<IdMap> {
    fs::read_to_string(rootfs.parent()?.join(ID_MAP_FILE)).ok()?.parse().ok()
}

/// Gives every file under `dir` whose owner is in `map`'s range the container's id
/// instead (a copy made from the host's view of a user-namespaced instance).
pub fn unshift_tree(dir: &Path, map: IdMap) -> io::Result<()> {
    let back =
        |id: u32, start: u32| if (start..start.saturating_add(map.count)).contains(&id) { id - start } else { id };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        let (uid, gid) = (back(meta.uid(), map.uid), back(meta.gid(), map.gid));
        if (uid, gid) != (meta.uid(), meta.gid()) {
            // lchown clears set-id bits: put the mode back for non-links.
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
            if !meta.file_type().is_symlink() {
                fs::set_permissions(&path, meta.permissions())?;
            }
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Invalid(format!("unusable path {}", path.display())))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two descriptors we then own.
    unsafe {
        check(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Whether `path` is a bind-mounted namespace file (nsfs).
pub fn is_ns_file(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Closes every descriptor of a forked child but `keep` (async-signal-safe).
///
/// # Safety
/// Only in a forked child that owns nothing else it needs.
unsafe fn close_all_but(keep: [RawFd; 2]) {
    let (low, high) = (keep[0].min(keep[1]) as libc::c_uint, keep[0].max(keep[1]) as libc::c_uint);
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        if first <= last {
            // SAFETY: closes descriptors of this (forked) process only.
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        }
    };
    close_range(3, low.saturating_sub(1));
    close_range(low + 1, high - 1);
    close_range(high + 1, libc::c_uint::MAX);
}

/// A forked child that unshares (or enters) namespaces and waits while the parent works
/// on it; `what` runs in the child (async-signal-safe calls only) and returns 0 on
/// success. The parent's `with_child` gets the child's pid once `what` succeeded.
///
/// Other threads fork helpers at the same time (two instances starting), and a fork
/// copies every descriptor of the process, so a helper must not wait for an end of file
/// another helper may hold open: once `what` is done the child closes every descriptor
/// but its two pipe ends, and the parent ends it with SIGKILL rather than by closing a
/// pipe.
fn with_child<T>(what: impl FnOnce() -> libc::c_int, with_child: impl FnOnce(libc::pid_t) -> Result<T>) -> Result<T> {
    let (ready_r, ready_w) = pipe().map_err(|e| Error::io("making a pipe", e))?;
    let (go_r, go_w) = pipe().map_err(|e| Error::io("making a pipe", e))?;
    // SAFETY: the child makes only async-signal-safe calls and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::io("forking", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: the child: system calls on descriptors inherited from the parent.
        unsafe {
            let ok: u8 = if what() == 0 { 1 } else { 0 };
            close_all_but([ready_w.as_raw_fd(), go_r.as_raw_fd()]);
            libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(go_r);
    let mut ok = [0u8; 1];
    let read = nix::unistd::read(&ready_r, &mut ok);
    let result = match read {
        Ok(1) if ok[0] == 1 => with_child(pid),
        _ => Err(Error::io("setting up namespaces", io::Error::other("the namespace helper failed"))),
    };
    drop(go_w);
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    result
}

fn bind_ns(pid: libc::pid_t, kind: &str, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let source = format!("/proc/{pid}/ns/{kind}");
    nix::mount::mount(Some(source.as_str()), path, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).map_err(
        |e| {
            let _ = fs::remove_file(path);
            Error::io(format!("keeping the {kind} namespace at {}", path.display()), e.into())
        },
    )
}

/// Makes a user namespace with `map` and keeps it at `path`.
pub fn create_userns(path: &Path, map: IdMap) -> Result<()> {
    let (uid_map, gid_map) = (map.uid_map(), map.gid_map());
    with_child(
        // SAFETY (child): one system call.
        || unsafe { libc::unshare(libc::CLONE_NEWUSER) },
        |pid| {
            for (file, text) in [("uid_map", &uid_map), ("gid_map", &gid_map)] {
                fs::write(format!("/proc/{pid}/{file}"), text)
                    .map_err(|e| Error::io(format!("writing the user namespace's {file}"), e))?;
            }
            bind_ns(pid, "user", path)
        },
    )
}

/// Makes a network namespace owned by the user namespace at `userns` and keeps it at
/// `path` (where `ip netns` looks, like [`crate::network::netns::create`]).
pub fn create_netns_in(userns: &Path, path: &Path) -> Result<()> {
    let ns = File::open(userns).map_err(|e| Error::io(format!("opening {}", userns.display()), e))?;
    let fd = ns.as_raw_fd();
    with_child(
        // SAFETY (child): two system calls.
        || unsafe {
            if libc::setns(fd, libc::CLONE_NEWUSER) != 0 {
                return -1;
            }
            libc::unshare(libc::CLONE_NEWNET)
        },
        |pid| bind_ns(pid, "net", path),
    )
}

/// The (device, inode) of a namespace's owning user namespace.
fn owner_of(ns: &Path) -> Option<(u64, u64)> {
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    let f = File::open(ns).ok()?;
    // SAFETY: the ioctl returns a new descriptor we own.
    let owner = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_USERNS) };
    if owner < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor from the kernel.
    let owner = File::from(unsafe { OwnedFd::from_raw_fd(owner) });
    let meta = owner.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Whether the namespace at `ns` belongs to the user namespace at `userns` (`None`: the
/// host's).
pub fn owned_by(ns: &Path, userns: Option<&Path>) -> bool {
    let want = match userns {
        Some(path) => fs::metadata(path).ok(),
        None => fs::metadata("/proc/self/ns/user").ok(),
    };
    match (owner_of(ns), want) {
        (Some(have), Some(want)) => have == (want.dev(), want.ino()),
        _ => false,
    }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Mounts `source` again at `target`, idmapped through the user namespace at `userns`
/// (a file owned by id N on disk shows as the namespace's host id for N).
pub fn idmapped_bind(source: &Path, target: &Path, userns: &Path) -> Result<()> {
    let ns = File::open(userns).map_err(|e| Error::io(format!("opening {}", userns.display()), e))?;
    let (src, dst, empty) = (cpath(source)?, cpath(target)?, CString::default());
    let fail = |what: &str, e: io::Error| Error::io(format!("{what} {} on {}", source.display(), target.display()), e);
    // SAFETY: system calls with valid C strings and a sized struct.
    unsafe {
        let tree = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        );
        if tree < 0 {
            return Err(fail("cloning", io::Error::last_os_error()));
        }
        let tree = OwnedFd::from_raw_fd(tree as RawFd);
        let attr =
            MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: ns.as_raw_fd() as u64 };
        if libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) < 0
        {
            return Err(fail("idmapping", io::Error::last_os_error()));
        }
        if libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        ) < 0
        {
            return Err(fail("mounting", io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Runs `f` on a thread of its own whose filesystem ids are the range's root, with every
/// capability of the server still effective (changing the fsuid from 0 drops the file
/// capabilities; they are raised again). Files it creates through idmapped mounts belong
/// to the container's root.
pub fn as_container_root<T: Send + 'static>(map: IdMap, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    std::thread::spawn(move || {
        become_container_root(map)?;
        f()
    })
    .join()
    .map_err(|_| Error::io("acting as the container's root", io::Error::other("thread panicked")))?
}

/// Makes the calling thread's filesystem ids the range's root, capabilities kept. Only
/// on a thread of its own that ends after its work (credentials are per thread).
pub fn become_container_root(map: IdMap) -> Result<()> {
    // SAFETY: per-thread credential calls.
    unsafe {
        libc::setfsgid(map.gid);
        libc::setfsuid(map.uid);
        raise_capabilities().map_err(|e| Error::io("raising capabilities", e))
    }
}

/// Makes the thread's permitted capabilities effective (no allocation: also for a
/// forked child).
///
/// # Safety
/// Changes the calling thread's credentials.
pub unsafe fn raise_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header { version: 0x2008_0522, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data words.
    unsafe {
        check(libc::syscall(libc::SYS_capget, &mut header as *mut Header, data.as_mut_ptr()) as libc::c_int)?;
        for d in &mut data {
            d.effective = d.permitted;
        }
        check(libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) as libc::c_int)?;
    }
    Ok(())
}

/// Mounts the overlay `options` on `target` as the container's root (see the module).
pub fn mount_overlay(map: IdMap, options: String, target: PathBuf) -> Result<()> {
    as_container_root(map, move || {
        nix::mount::mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| Error::io(format!("mounting the overlay on {}", target.display()), e.into()))?;
        // overlayfs falls back to read-only when it cannot use the work directory.
        let st = nix::sys::statvfs::statvfs(&target).map_err(|e| Error::io("checking the overlay", e.into()))?;
        if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
            let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
            return Err(Error::Invalid(
                "overlayfs mounted read-only over idmapped layers (this kernel or filesystem cannot)".into(),
            ));
        }
        Ok(())
    })
}

/// Whether containers can run in a user namespace on this host with their files in
/// `scratch` (made and removed here): the whole path of an instance, done once.
pub fn probe(scratch: &Path, map: IdMap) -> std::result::Result<(), String> {
    let max = fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim().parse::<u64>().unwrap_or(0) == 0 {
        return Err("user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0)".into());
    }
    let _ = cleanup(scratch);
    let result = (|| -> Result<()> {
        let (lower, lower_mapped, mapped, merged, userns) = (
            scratch.join("lower"),
            scratch.join("lower-mapped"),
            scratch.join("mapped"),
            scratch.join("merged"),
            scratch.join("userns"),
        );
        for dir in [&lower, &lower_mapped, &mapped, &merged, &scratch.join("upper"), &scratch.join("work")] {
            fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        fs::write(lower.join("probe"), b"x").map_err(|e| Error::io("writing the probe", e))?;
        create_userns(&userns, map)?;
        idmapped_bind(&lower, &lower_mapped, &userns)?;
        idmapped_bind(scratch, &mapped, &userns)?;
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower_mapped.display(),
            mapped.join("upper").display(),
            mapped.join("work").display()
        );
        mount_overlay(map, options, merged.clone())?;
        let owner = fs::metadata(merged.join("probe")).map_err(|e| Error::io("reading the probe", e))?.uid();
        if owner != map.uid {
            return Err(Error::Invalid(format!("an idmapped file shows uid {owner}, not {}", map.uid)));
        }
        // A copy-up, as the container's root would make one.
        as_container_root(map, move || {
            fs::write(merged.join("probe"), b"y").map_err(|e| Error::io("writing through the overlay", e))
        })?;
        Ok(())
    })();
    let _ = cleanup(scratch);
    result.map_err(|e| e.to_string())
}

/// Unmounts what [`probe`] mounted and removes its directory.
fn cleanup(scratch: &Path) -> io::Result<()> {
    for name in ["merged", "mapped", "lower-mapped", "userns"] {
        let _ = nix::mount::umount2(&scratch.join(name), nix::mount::MntFlags::MNT_DETACH);
    }
    match fs::remove_dir_all(scratch) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_ranges() {
        assert_eq!("auto".parse::<UsernsMode>(), Ok(UsernsMode::Auto));
        assert_eq!("off".parse::<UsernsMode>(), Ok(UsernsMode::Off));
        assert!("yes".parse::<UsernsMode>().is_err());
        let map = IdMap { uid: 7, gid: 9, count: COUNT };
        assert_eq!(map.uid_map(), "0 7 65536\n");
        assert_eq!(map.gid_map(), "0 9 65536\n");
    }

    /// Namespace helpers forked at the same time by several threads (two instances
    /// starting at once) each finish: a helper never waits on a descriptor another
    /// helper inherited. Before the fix, two helpers held each other's pipes open and
    /// both starts hung for good.
    #[test]
    fn helpers_forked_at_once_all_finish() {
        use std::sync::mpsc;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let map = IdMap { uid: DEFAULT_START, gid: DEFAULT_START, count: COUNT };
        let (done_tx, done_rx) = mpsc::channel();
        let threads = 6;
        for t in 0..threads {
            let (dir, done) = (dir.path().to_path_buf(), done_tx.clone());
            std::thread::spawn(move || {
                for i in 0..40 {
                    let path = dir.join(format!("{t}-{i}"));
                    let made = create_userns(&path, map);
                    let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
                    let _ = fs::remove_file(&path);
                    made.expect("making a user namespace");
                }
                done.send(()).unwrap();
            });
        }
        // A deadlock shows as threads that never report; the bound is far above the
        // fraction of a second the work takes.
        for _ in 0..threads {
            done_rx.recv_timeout(Duration::from_secs(120)).expect("namespace helpers deadlocked");
        }
    }
}
