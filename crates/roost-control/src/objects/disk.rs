//! Object data on local disk: `objects/<bucket-id>/<file-id>`, named by a random id and
//! never by the S3 key (so `..`, slashes, unicode and 1,024-byte keys are only ever
//! strings in the store). A write goes to `objects/<bucket-id>/tmp/<file-id>`, is fsynced,
//! then renamed into place; only after that does the store row that names it commit, so a
//! crash never exposes a partial object. Parts of multipart uploads live in
//! `objects/<bucket-id>/uploads/<upload-id>/<part-number>`.
//!
//! A completed multipart upload is not copied: its object is a *directory*
//! `objects/<bucket-id>/<file-id>/` holding hard links `1`..`N` to the listed part files,
//! in object order. The directory is built under `tmp/`, fsynced and renamed into place
//! like a file, so it is the object's manifest: the part sizes are the files' sizes.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};

/// Bytes moved per read or write between the network and the disk.
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Disk {
    root: PathBuf,
}

/// A fully written and fsynced file, not yet in place.
#[derive(Debug)]
pub struct Written {
    pub tmp: PathBuf,
    pub size: u64,
    pub md5: [u8; 16],
}

/// An object's data opened for reading: one file, or the part files of a multipart
/// object in order. Files are opened up front (at most [`OPEN_AHEAD`] of them), so a
/// concurrent replace or delete cannot cut a response short.
#[derive(Debug)]
pub struct ObjectFile {
    segments: VecDeque<Segment>,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    size: u64,
    file: Option<std::fs::File>,
}

/// Part files opened when a multipart object is opened; later ones are opened when reached.
const OPEN_AHEAD: usize = 256;

impl ObjectFile {
    /// Opens an object's file or part directory (blocking).
    fn open_blocking(path: &Path) -> io::Result<ObjectFile> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_dir() {
            let file = std::fs::File::open(path)?;
            let size = file.metadata()?.len();
            return Ok(ObjectFile {
                segments: VecDeque::from([Segment { path: path.to_path_buf(), size, file: Some(file) }]),
            });
        }
        let mut numbers: Vec<u32> =
            std::fs::read_dir(path)?.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).collect();
        numbers.sort_unstable();
        if numbers.iter().enumerate().any(|(i, n)| *n as usize != i + 1) {
            // Only a delete in progress leaves gaps: the caller looks again, as for a file gone.
            return Err(io::Error::new(io::ErrorKind::NotFound, "a multipart object's part files are not 1..N"));
        }
        let mut segments = VecDeque::with_capacity(numbers.len());
        for (i, n) in numbers.into_iter().enumerate() {
            let part = path.join(n.to_string());
            let (size, file) = if i < OPEN_AHEAD {
                let file = std::fs::File::open(&part)?;
                (file.metadata()?.len(), Some(file))
            } else {
                (std::fs::metadata(&part)?.len(), None)
            };
            segments.push_back(Segment { path: part, size, file });
        }
        Ok(ObjectFile { segments })
    }

    /// The number of bytes on disk.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// A reader of `len` bytes from `offset`, across part boundaries.
    fn into_reader(mut self, mut offset: u64, len: u64) -> RangeReader {
        while let Some(first) = self.segments.front() {
            if offset < first.size {
                break;
            }
            offset -= first.size;
            self.segments.pop_front();
        }
        RangeReader { segments: self.segments, pos: offset, left: len, positioned: false }
    }
}

/// Reads a byte range of an [`ObjectFile`], one segment after the other.
struct RangeReader {
    segments: VecDeque<Segment>,
    /// The position inside the first segment.
    pos: u64,
    left: u64,
    positioned: bool,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.left == 0 || buf.is_empty() {
                return Ok(0);
            }
            let Some(seg) = self.segments.front_mut() else { return Ok(0) };
            if self.pos >= seg.size {
                self.segments.pop_front();
                self.pos = 0;
                self.positioned = false;
                continue;
            }
            if seg.file.is_none() {
                seg.file = Some(std::fs::File::open(&seg.path)?);
            }
            let file = seg.file.as_mut().expect("opened above");
            if !self.positioned {
                file.seek(io::SeekFrom::Start(self.pos))?;
                self.positioned = true;
            }
            let want = (buf.len() as u64).min(seg.size - self.pos).min(self.left) as usize;
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "object file is shorter than recorded"));
            }
            self.pos += n as u64;
            self.left -= n as u64;
            return Ok(n);
        }
    }
}

/// Why a streamed write failed: the client's body, or the disk.
#[derive(Debug)]
pub enum WriteError {
    Body(String),
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// A random 128-bit id in hex, for files and uploads.
pub fn new_file_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    hex::encode(b)
}

impl Disk {
    pub fn new(root: PathBuf) -> Disk {
        Disk { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bucket_dir(&self, bucket_id: &str) -> PathBuf {
        self.root.join(bucket_id)
    }

    pub fn object_path(&self, bucket_id: &str, file_id: &str) -> PathBuf {
        self.root.join(bucket_id).join(file_id)
    }

    pub fn tmp_dir(&self, bucket_id: &str) -> PathBuf {
        self.root.join(bucket_id).join("tmp")
    }

    pub fn upload_dir(&self, bucket_id: &str, upload_id: &str) -> PathBuf {
        self.root.join(bucket_id).join("uploads").join(upload_id)
    }

    pub fn part_path(&self, bucket_id: &str, upload_id: &str, part: i32) -> PathBuf {
        self.upload_dir(bucket_id, upload_id).join(part.to_string())
    }

    fn new_tmp(&self, bucket_id: &str) -> io::Result<PathBuf> {
        let dir = self.tmp_dir(bucket_id);
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(new_file_id()))
    }

    /// Streams a body into a new temp file of the bucket, hashing it (MD5) on the way, and
    /// fsyncs it. The network side and the disk side run in parallel: a blocking thread
    /// hashes and writes while the next chunks arrive.
    pub async fn write_stream<S, E>(&self, bucket_id: &str, mut body: S) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp = {
            let disk = self.clone();
            let bucket = bucket_id.to_string();
            tokio::task::spawn_blocking(move || disk.new_tmp(&bucket)).await.map_err(io::Error::other)??
        };
        // Two blocking threads: one writes, one hashes, so MD5 (about 600 MB/s on one
        // core) overlaps with the disk instead of adding to it.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let path = tmp.clone();
        let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
            let mut file = std::fs::File::create(&path)?;
            let mut size = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
                size += chunk.len() as u64;
            }
            file.sync_all()?;
            Ok(size)
        });
        let hasher = tokio::task::spawn_blocking(move || -> [u8; 16] {
            let mut md5 = Md5::new();
            while let Some(chunk) = hash_rx.blocking_recv() {
                md5.update(&chunk);
            }
            md5.finalize().into()
        });
        let mut buf = BytesMut::with_capacity(CHUNK);
        let mut failed = None;
        let send = |chunk: Bytes| {
            let (tx, hash_tx) = (tx.clone(), hash_tx.clone());
            async move { tx.send(chunk.clone()).await.is_ok() && hash_tx.send(chunk).await.is_ok() }
        };
        while let Some(item) = body.next().await {
            match item {
                Ok(bytes) => {
                    buf.extend_from_slice(&bytes);
                    if buf.len() >= CHUNK && !send(buf.split().freeze()).await {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    failed = Some(WriteError::Body(e.to_string()));
                    break;
                }
            }
        }
        if failed.is_none() && !buf.is_empty() {
            let _ = send(buf.freeze()).await;
        }
        drop(tx);
        drop(hash_tx);
        let md5 = hasher.await.map_err(io::Error::other)?;
        let result = writer.await.map_err(io::Error::other)?.map(|size| (size, md5));
        match (failed, result) {
            (None, Ok((size, md5))) => Ok(Written { tmp, size, md5 }),
            (Some(e), _) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
            (None, Err(e)) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(WriteError::Io(e))
            }
        }
    }

    /// Copies `len` bytes from `offset` of an opened object (a single file or the parts of
    /// a multipart object) into a new temp file (fsynced), hashing them.
    pub async fn copy_range(&self, bucket_id: &str, src: ObjectFile, offset: u64, len: u64) -> io::Result<Written> {
        let disk = self.clone();
        let bucket = bucket_id.to_string();
        tokio::task::spawn_blocking(move || {
            let tmp = disk.new_tmp(&bucket)?;
            let result = (|| {
                let mut input = src.into_reader(offset, len);
                let mut out = std::fs::File::create(&tmp)?;
                let mut md5 = Md5::new();
                let mut buf = vec![0u8; CHUNK];
                let mut size = 0u64;
                loop {
                    let n = input.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    md5.update(&buf[..n]);
                    out.write_all(&buf[..n])?;
                    size += n as u64;
                }
                out.sync_all()?;
                Ok(Written { tmp: tmp.clone(), size, md5: md5.finalize().into() })
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Makes a multipart object's directory from its part files without copying a byte:
    /// `tmp/<id>/1..N` are hard links to `parts` (in object order), the directory is
    /// fsynced, and [`Disk::install`] renames it into place like a file. The upload's own
    /// files are untouched, so a crash before the store commits leaves the upload whole.
    pub async fn assemble(&self, bucket_id: &str, parts: Vec<PathBuf>) -> io::Result<Written> {
        let disk = self.clone();
        let bucket = bucket_id.to_string();
        tokio::task::spawn_blocking(move || {
            let tmp = disk.new_tmp(&bucket)?;
            let result = (|| {
                std::fs::create_dir(&tmp)?;
                let mut size = 0u64;
                for (i, part) in parts.iter().enumerate() {
                    size += std::fs::metadata(part)?.len();
                    std::fs::hard_link(part, tmp.join((i + 1).to_string()))?;
                }
                std::fs::File::open(&tmp)?.sync_all()?;
                Ok(Written { tmp: tmp.clone(), size, md5: [0; 16] })
            })();
            if result.is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            result
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Renames a written temp file into place and makes the rename durable.
    pub async fn install(&self, written: &Written, target: PathBuf) -> io::Result<()> {
        let tmp = written.tmp.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&tmp, &target)?;
            if let Some(parent) = target.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Opens an object's file or part directory (a replaced or deleted object's data may be
    /// gone: NotFound).
    pub async fn open(&self, path: PathBuf) -> io::Result<ObjectFile> {
        tokio::task::spawn_blocking(move || ObjectFile::open_blocking(&path)).await.map_err(io::Error::other)?
    }

    /// A byte range of an opened object as a stream of chunks read by a blocking thread
    /// (opened first, so a concurrent replace or delete cannot cut the response short).
    pub fn read_range(
        &self,
        file: ObjectFile,
        offset: u64,
        len: u64,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        tokio::task::spawn_blocking(move || {
            let mut file = file.into_reader(offset, len);
            let mut run = || -> io::Result<()> {
                let mut left = len;
                while left > 0 {
                    let want = left.min(CHUNK as u64) as usize;
                    let mut buf = BytesMut::zeroed(want);
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "object file is shorter than recorded",
                        ));
                    }
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.blocking_send(Ok(buf.freeze())).is_err() {
                        return Ok(()); // the client went away
                    }
                }
                Ok(())
            };
            if let Err(e) = run() {
                let _ = tx.blocking_send(Err(e));
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
    }

    /// Removes an object's file or part directory, ignoring one that is already gone.
    pub async fn remove(&self, path: PathBuf) {
        let result = match tokio::fs::remove_file(&path).await {
            Err(e)
                if e.kind() != io::ErrorKind::NotFound
                    && tokio::fs::symlink_metadata(&path).await.is_ok_and(|m| m.is_dir()) =>
            {
                tokio::fs::remove_dir_all(&path).await
            }
            other => other,
        };
        if let Err(e) = result
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an object file (the collector retries)");
        }
    }

    pub async fn remove_dir(&self, path: PathBuf) {
        if let Err(e) = tokio::fs::remove_dir_all(&path).await
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a directory (the collector retries)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multipart object's directory reads as one byte string, by any range.
    #[tokio::test]
    async fn assembled_parts_read_across_boundaries() {
        let root = tempfile::tempdir().unwrap();
        let disk = Disk::new(root.path().to_path_buf());
        let uploads = disk.upload_dir("b", "u");
        std::fs::create_dir_all(&uploads).unwrap();
        let sizes = [5usize, 1, 7, 3];
        let mut whole = Vec::new();
        let mut paths = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..*n).map(|j| (i * 16 + j) as u8).collect();
            whole.extend_from_slice(&data);
            let p = uploads.join((i * 3 + 2).to_string());
            std::fs::write(&p, &data).unwrap();
            paths.push(p);
        }
        let written = disk.assemble("b", paths).await.unwrap();
        assert_eq!(written.size, whole.len() as u64);
        let target = disk.object_path("b", "obj");
        disk.install(&written, target.clone()).await.unwrap();
        // The upload can go: the object holds its own links.
        std::fs::remove_dir_all(&uploads).unwrap();
        for start in 0..whole.len() {
            for end in start..=whole.len() {
                let file = disk.open(target.clone()).await.unwrap();
                assert_eq!(file.size(), whole.len() as u64);
                let mut got = Vec::new();
                file.into_reader(start as u64, (end - start) as u64).read_to_end(&mut got).unwrap();
                assert_eq!(got, whole[start..end], "{start}..{end}");
            }
        }
        let file = disk.open(target.clone()).await.unwrap();
        let copied = disk.copy_range("b", file, 4, 6).await.unwrap();
        assert_eq!(std::fs::read(&copied.tmp).unwrap(), whole[4..10]);
        assert_eq!(copied.md5, <[u8; 16]>::from(Md5::digest(&whole[4..10])));
        disk.remove(target.clone()).await;
        assert!(!target.exists());
    }
}
