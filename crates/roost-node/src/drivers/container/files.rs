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

use futures_util::StreamExt;
use nix::sched::{CloneFlags, unshare};
use tokio_util::bytes::Bytes;
use tokio_util::io::{StreamReader, SyncIoBridge};

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
/// system at `root`. A failure before the first bytes is the call's error; one after
/// them ends the stream with an error rather than a clean end, so the HTTP answer is cut
/// off (no final chunk) and no client takes a truncated archive for a whole one.
/// With `map` (a user-namespaced instance, whose files the host sees with shifted owners)
/// the archive carries the owners the files have inside.
pub async fn copy_out(root: PathBuf, path: &str, map: Option<super::userns::IdMap>) -> Result<TarStream> {
    let relative = relative_inside(path)?;
    let shown = path.to_string();
    let (mut writer, rx) = chunked();
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
            writer.flush()
        })();
        if let Err(e) = result {
            tracing::warn!(path = %shown, error = %e, "copy out failed; the archive is cut off");
            writer.fail(format!("the archive of '{shown}' is incomplete: {e}"));
        }
    });
    ready_rx.await.map_err(|_| Error::io("copying out", std::io::Error::other("copy thread panicked")))??;
    reader_of(rx).await
}

const CHUNK: usize = 64 * 1024;

type Chunks = tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>;

/// A blocking writer and the chunks it produces.
fn chunked() -> (ChunkWriter, Chunks) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (ChunkWriter { tx, buf: Vec::with_capacity(CHUNK) }, rx)
}

/// The chunks as a reader, once the first has come: an archive that cannot even begin
/// is the call's error; a later failure is the reader's.
async fn reader_of(mut rx: Chunks) -> Result<TarStream> {
    let first = match rx.recv().await {
        Some(Err(e)) => return Err(Error::Invalid(e.to_string())),
        first => first,
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let stream = futures_util::stream::iter(first).chain(rest);
    Ok(Box::new(StreamReader::new(Box::pin(stream))))
}

/// The blocking end of a tar stream: full chunks go to the reader.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    /// Ends the stream with an error (what was written before it still arrives first).
    fn fail(mut self, message: String) {
        let _ = self.send();
        let _ = self.tx.blocking_send(Err(std::io::Error::other(message)));
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("the reader went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn a_failure_never_reads_as_a_whole_archive() {
        // Before the first chunk: the call fails.
        let (writer, rx) = chunked();
        std::thread::spawn(move || writer.fail("no such luck".into()));
        assert!(matches!(reader_of(rx).await.err(), Some(Error::Invalid(m)) if m.contains("no such luck")));

        // After some chunks: they arrive, then the read fails instead of ending.
        let (mut writer, rx) = chunked();
        std::thread::spawn(move || {
            writer.write_all(&vec![7u8; 3 * CHUNK]).unwrap();
            writer.fail("socket can not be archived".into());
        });
        let mut reader = reader_of(rx).await.unwrap();
        let mut got = Vec::new();
        let err = reader.read_to_end(&mut got).await.unwrap_err();
        assert!(err.to_string().contains("socket can not be archived"), "{err}");
        assert_eq!(got.len(), 3 * CHUNK);

        // A whole archive ends cleanly.
        let (mut writer, rx) = chunked();
        std::thread::spawn(move || {
            writer.write_all(b"whole").unwrap();
            writer.flush().unwrap();
        });
        let mut got = Vec::new();
        reader_of(rx).await.unwrap().read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"whole");
    }
}
