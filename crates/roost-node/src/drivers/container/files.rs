//! Copying files in and out of an instance, without trusting anything in it.
//!
//! The instance controls its file system: `/tmp/x` may be a symlink to `/etc`, and
//! resolved on the host that would be the host's `/etc`. So the copy runs on a thread
//! of its own that first unshares its file system attributes (CLONE_FS) and chroots into
//! the instance's root (`/proc/<init>/root` while it runs, which also shows its volume
//! mounts; the overlay when stopped): every path, symlinks included, then resolves
//! inside the instance. The thread ends after the copy; nothing else is chrooted.

use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, unshare};
use tokio_util::io::SyncIoBridge;

use crate::driver::TarStream;
use crate::images::tarball::{relative_inside, unpack_owned};
use crate::{Error, Result};

fn enter(root: &Path) -> Result<()> {
    unshare(CloneFlags::CLONE_FS)?;
    nix::unistd::chroot(root).map_err(|e| Error::io(format!("entering {}", root.display()), e.into()))?;
    nix::unistd::chdir("/")?;
    Ok(())
}

/// Unpacks `tar` into the directory `path` of the file system at `root`. With `map` (a
/// user-namespaced instance) the files are written as the container's root: through
/// its idmapped layers host root has no id, and the archive's owners are not kept.
pub async fn copy_in(root: PathBuf, path: &str, tar: TarStream, map: Option<super::userns::IdMap>) -> Result<()> {
    let relative = relative_inside(path)?;
    let shown = path.to_string();
    let reader = SyncIoBridge::new(tar);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = enter(&root).and_then(|()| {
            if let Some(map) = map {
                super::userns::become_container_root(map)?;
            }
            let dst = Path::new("/").join(&relative);
            if !dst.is_dir() {
                return Err(Error::Invalid(format!("'{shown}' is not a directory in the instance")));
            }
            unpack_owned(reader, &dst, map.is_none())
        });
        let _ = tx.send(result);
    });
    rx.await.map_err(|_| Error::io("copying in", std::io::Error::other("copy thread panicked")))?
}

/// A tar stream of `path` (file or directory, named by its last component) in the file
/// system at `root`. A failure after the stream began truncates it (and is logged).
/// With `map` (a user-namespaced instance, whose files the host sees with shifted owners)
/// the archive carries the owners the files have inside.
pub async fn copy_out(root: PathBuf, path: &str, map: Option<super::userns::IdMap>) -> Result<TarStream> {
    let relative = relative_inside(path)?;
    let shown = path.to_string();
    let (reader, writer) = tokio::io::duplex(256 * 1024);
    let mut writer = SyncIoBridge::new(writer);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    std::thread::spawn(move || {
        if let Err(e) = enter(&root) {
            let _ = ready_tx.send(Err(e));
            return;
        }
        let src = Path::new("/").join(&relative);
        let meta = match std::fs::symlink_metadata(&src) {
            Ok(meta) => meta,
            Err(_) => {
                let _ = ready_tx.send(Err(Error::Invalid(format!("'{shown}' does not exist in the instance"))));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let name = relative.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let result = (|| -> std::io::Result<()> {
            let mut builder = tar::Builder::new(&mut writer);
            builder.follow_symlinks(false);
            if let Some(map) = map {
                append_unshifted(&mut builder, &src, &name, map)?;
            } else if meta.is_dir() {
                builder.append_dir_all(&name, &src)?;
            } else {
                builder.append_path_with_name(&src, &name)?;
            }
            builder.finish()?;
            drop(builder);
            writer.flush()?;
            writer.shutdown()
        })();
        if let Err(e) = result {
            tracing::warn!(path = %shown, error = %e, "copy out ended early");
        }
    });
    ready_rx.await.map_err(|_| Error::io("copying out", std::io::Error::other("copy thread panicked")))??;
    Ok(Box::new(reader))
}

/// Appends `src` (recursively, symlinks as links) as `name` with the owners it has inside
/// the user namespace of `map`. Devices, FIFOs and sockets are left out.
fn append_unshifted<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    src: &Path,
    name: &Path,
    map: super::userns::IdMap,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let back =
        |id: u32, start: u32| if (start..start.saturating_add(map.count)).contains(&id) { id - start } else { id };
    let meta = std::fs::symlink_metadata(src)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_uid(back(meta.uid(), map.uid).into());
    header.set_gid(back(meta.gid(), map.gid).into());
    if meta.file_type().is_symlink() {
        header.set_size(0);
        builder.append_link(&mut header, name, std::fs::read_link(src)?)?;
    } else if meta.is_dir() {
        header.set_size(0);
        builder.append_data(&mut header, name, std::io::empty())?;
        let mut entries: Vec<_> = std::fs::read_dir(src)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            append_unshifted(builder, &entry.path(), &name.join(entry.file_name()), map)?;
        }
    } else if meta.is_file() {
        builder.append_data(&mut header, name, std::fs::File::open(src)?)?;
    }
    Ok(())
}
