//! Named network namespaces: a namespace kept alive by a bind mount of its nsfs file,
//! like `ip netns add` does (and in the same place by default, `/run/netns`, so
//! `ip netns exec` works for debugging). No `ip` process is spawned.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::IoContext;
use crate::{Error, Result};

/// Creates the namespace at `path` unless one is there already.
pub fn create(path: &Path) -> Result<()> {
    if is_netns(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).at("creating", dir)?;
    }
    File::create(path).at("creating", path)?;
    let target = path.to_owned();
    // unshare(CLONE_NEWNET) moves only the calling thread: do it on a thread of our own
    // that ends right after, so no worker thread of the runtime changes namespace.
    let result = std::thread::spawn(move || -> nix::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
    })
    .join()
    .map_err(|_| Error::io("creating a network namespace", io::Error::other("thread panicked")))?;
    if let Err(e) = result {
        let _ = fs::remove_file(path);
        return Err(Error::io(format!("creating network namespace {}", path.display()), e.into()));
    }
    Ok(())
}

/// Unmounts and removes the namespace file; the namespace itself goes away with its
/// last user. Missing is fine.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(Error::io(format!("unmounting {}", path.display()), e.into())),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// Whether `path` is a mounted network namespace (an nsfs file).
pub fn is_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Runs `f` on a new thread that has entered the namespace at `path`; the thread ends
/// with `f`, so its namespace change goes nowhere else.
pub fn run_in<T: Send + 'static>(path: &Path, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T> {
    let ns = File::open(path).at("opening network namespace", path)?;
    std::thread::spawn(move || {
        setns(ns, CloneFlags::CLONE_NEWNET)?;
        f()
    })
    .join()
    .map_err(|_| Error::io("entering a network namespace", io::Error::other("thread panicked")))?
    .at("in network namespace", path)
}
