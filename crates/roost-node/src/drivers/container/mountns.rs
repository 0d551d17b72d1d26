//! Mounts in a running container's mount namespace (hot attach and detach of volumes).
//!
//! A mount namespace can only be entered by a single-threaded process, so the work is
//! done in a forked child before it would exec: it clones the host mount as a detached
//! tree (`open_tree`), enters the container's namespace (`setns`), makes the target
//! directory and moves the tree there (`move_mount`); or unmounts the target. Paths are
//! resolved inside the container's root after `setns`, so its symlinks cannot point
//! the mount at the host. The child reports by its exit code and never execs.

use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub enum Op {
    Attach { source: PathBuf, target: String },
    Detach { target: String, lazy: bool },
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;

/// Exit codes of the child.
const E_OPEN_TREE: i32 = 10;
const E_SETNS: i32 = 11;
const E_MOVE: i32 = 12;
const E_UMOUNT: i32 = 13;
const E_BUSY: i32 = 16;

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Invalid(format!("invalid path '{s}'")))
}

/// `fs_ids`: for a user-namespaced instance, the host ids of its root, which the child
/// takes (capabilities kept) to make the target directory through its idmapped layers.
pub fn run(pid: u32, op: &Op, fs_ids: Option<super::userns::IdMap>) -> Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/mnt"))
        .map_err(|e| Error::io(format!("opening the mount namespace of {pid}"), e))?;
    let ns_fd = ns.as_raw_fd();
    let (source, target, lazy) = match op {
        Op::Attach { source, target } => (Some(cstring(source.to_str().unwrap_or_default())?), target.clone(), false),
        Op::Detach { target, lazy } => (None, target.clone(), *lazy),
    };
    // `/a`, `/a/b`, ... for mkdir -p, made before the fork (no allocation after it).
    let mut prefixes = Vec::new();
    let mut acc = String::new();
    for part in target.split('/').filter(|p| !p.is_empty()) {
        acc.push('/');
        acc.push_str(part);
        prefixes.push(cstring(&acc)?);
    }
    let target_c = cstring(&target)?;
    let empty = cstring("")?;
    let mut command = std::process::Command::new("/bin/true");
    // SAFETY: the closure runs in the forked child and only makes system calls on
    // memory prepared before the fork, then exits without returning to Rust code.
    unsafe {
        command.pre_exec(move || {
            let code = (|| {
                let tree = match &source {
                    Some(src) => {
                        let fd = libc::syscall(
                            libc::SYS_open_tree,
                            libc::AT_FDCWD,
                            src.as_ptr(),
                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC,
                        );
                        if fd < 0 {
                            return E_OPEN_TREE;
                        }
                        fd as libc::c_int
                    }
                    None => -1,
                };
                if libc::setns(ns_fd, libc::CLONE_NEWNS) != 0 {
                    return E_SETNS;
                }
                if let Some(map) = fs_ids {
                    libc::setfsgid(map.gid);
                    libc::setfsuid(map.uid);
                    if super::userns::raise_capabilities().is_err() {
                        return E_SETNS;
                    }
                }
                if tree >= 0 {
                    for dir in &prefixes {
                        libc::mkdir(dir.as_ptr(), 0o755);
                    }
                    let r = libc::syscall(
                        libc::SYS_move_mount,
                        tree,
                        empty.as_ptr(),
                        libc::AT_FDCWD,
                        target_c.as_ptr(),
                        MOVE_MOUNT_F_EMPTY_PATH,
                    );
                    if r != 0 {
                        return E_MOVE;
                    }
                    0
                } else {
                    let flags = if lazy { libc::MNT_DETACH } else { 0 };
                    if libc::umount2(target_c.as_ptr(), flags) != 0 {
                        let errno = *libc::__errno_location();
                        return match errno {
                            libc::EINVAL | libc::ENOENT => 0, // not mounted there
                            libc::EBUSY => E_BUSY,
                            _ => E_UMOUNT,
                        };
                    }
                    0
                }
            })();
            libc::_exit(code);
        });
    }
    let status = command.status().map_err(|e| Error::io("entering the instance's mount namespace", e))?;
    drop(ns);
    match status.code() {
        Some(0) => Ok(()),
        Some(E_BUSY) => Err(Error::Conflict(
            "the volume is busy inside the instance (open files or a working directory); detach with force".into(),
        )),
        Some(E_OPEN_TREE) => Err(Error::tool("mount", "cannot clone the volume's host mount (open_tree)")),
        Some(E_SETNS) => Err(Error::tool("mount", "cannot enter the instance's mount namespace")),
        Some(E_MOVE) => Err(Error::Invalid(format!(
            "cannot mount the volume at {target} in the instance (is something other than a directory there?)"
        ))),
        other => Err(Error::tool("mount", format!("unmounting {target} in the instance failed ({other:?})"))),
    }
}

/// Processes with a file, working directory or root on the filesystem mounted at
/// `mnt`, as `pid (command)`.
pub fn open_files_on(mnt: &Path) -> Vec<String> {
    let Ok(dev) = fs::metadata(mnt).map(|m| m.dev()) else { return Vec::new() };
    let mut users = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else { return users };
    for entry in procs.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        let on_it = |p: &Path| fs::metadata(p).is_ok_and(|m| m.dev() == dev);
        let mut uses = on_it(&dir.join("cwd"));
        if !uses && let Ok(fds) = fs::read_dir(dir.join("fd")) {
            uses = fds.flatten().any(|fd| on_it(&fd.path()));
        }
        if uses {
            let comm = fs::read_to_string(dir.join("comm")).unwrap_or_default();
            users.push(format!("{name} ({})", comm.trim()));
            if users.len() >= 5 {
                break;
            }
        }
    }
    users
}
