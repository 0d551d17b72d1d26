//! Unpacking tar archives safely: image imports and `copy_in`.
//!
//! An archive is untrusted input. Entries whose path climbs out (`..`) are refused, as
//! are hard links pointing out; absolute paths are taken relative to the root (as GNU
//! tar does); and the tar crate's `unpack_in` refuses an entry whose parent resolves
//! outside the root through a symlink the archive planted earlier. Device nodes are
//! skipped: runc gives every container its own `/dev`.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::error::IoContext;
use crate::{Error, Result};

/// Unpacks the (possibly gzip or zstd compressed) tarball at `path` into `rootfs`.
pub fn unpack_file(path: &Path, rootfs: &Path) -> Result<()> {
    unpack_file_limited(path, rootfs, u64::MAX)
}

/// [`unpack_file`], refusing an archive whose uncompressed stream, or the sum of the
/// sizes its entries declare (sparse files count at their full size), exceeds `limit`
/// bytes: a decompression bomb stops at the limit with [`Error::TooLarge`].
pub fn unpack_file_limited(path: &Path, rootfs: &Path, limit: u64) -> Result<()> {
    let file = File::open(path).at("opening", path)?;
    fs::create_dir_all(rootfs).at("creating", rootfs)?;
    let stream = Capped { inner: decompress(BufReader::new(file)).at("reading", path)?, left: limit };
    if let Err(e) = unpack_capped(stream, rootfs, limit, true) {
        return Err(match e {
            Error::Io { source, .. } if is_capped(&source) => too_large(limit),
            e => e,
        });
    }
    // The mount points runc needs, in case the archive lacks them.
    for dir in ["proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(rootfs.join(dir)).at("creating", rootfs)?;
    }
    Ok(())
}

fn too_large(limit: u64) -> Error {
    Error::TooLarge(format!("the archive unpacks to more than {limit} bytes (image_import_max_unpacked); refusing it"))
}

/// Whether an error (possibly wrapped by the tar crate) is our cap's.
fn is_capped(e: &io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::FileTooLarge
        {
            return true;
        }
        cur = err.source();
    }
    e.to_string().contains(CAPPED)
}

const CAPPED: &str = "the archive unpacks to more than the limit";

/// A reader that fails once more than `left` bytes went through.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, CAPPED));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Wraps `reader` in the decompressor its first bytes call for.
pub fn decompress<R: BufRead + Send + 'static>(mut reader: R) -> io::Result<Box<dyn Read + Send>> {
    let magic = reader.fill_buf()?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(reader).map_err(io::Error::other)?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(reader))
    }
}

/// Unpacks a plain tar stream into the existing directory `dst`, keeping modes and
/// owners (we run as root; an image's files belong to its users).
pub fn unpack(reader: impl Read, dst: &Path) -> Result<()> {
    unpack_capped(reader, dst, u64::MAX, true)
}

/// [`unpack`], keeping the archive's owners or not (the files are then the caller's).
pub fn unpack_owned(reader: impl Read, dst: &Path, keep_owners: bool) -> Result<()> {
    unpack_capped(reader, dst, u64::MAX, keep_owners)
}

/// [`unpack_owned`], refusing entries whose declared sizes add up to more than `limit`.
fn unpack_capped(reader: impl Read, dst: &Path, limit: u64, keep_owners: bool) -> Result<()> {
    let mut declared: u64 = 0;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(keep_owners);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    for entry in archive.entries().at("reading the archive for", dst)? {
        let mut entry = entry.at("reading the archive for", dst)?;
        let path = entry.path().at("reading the archive for", dst)?.into_owned();
        check_inside(&path)?;
        // A sparse entry is small in the stream and large on unpacking: count what it
        // declares it unpacks to.
        let size = entry.header().as_gnu().and_then(|g| g.real_size().ok()).unwrap_or(0).max(entry.size());
        declared = declared.saturating_add(size);
        if declared > limit {
            return Err(too_large(limit));
        }
        let kind = entry.header().entry_type();
        if kind.is_hard_link()
            && let Some(target) = entry.link_name().at("reading the archive for", dst)?
        {
            check_inside(&target)?;
        }
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            continue;
        }
        match entry.unpack_in(dst) {
            Ok(true) => {}
            Ok(false) => return Err(escape(&path)),
            Err(e) if e.to_string().contains("outside of destination") => return Err(escape(&path)),
            Err(e) => return Err(Error::io(format!("unpacking {}", path.display()), e)),
        }
    }
    Ok(())
}

/// Refuses a path that climbs out of the root with `..`.
fn check_inside(path: &Path) -> Result<()> {
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(escape(path));
    }
    Ok(())
}

fn escape(path: &Path) -> Error {
    Error::Invalid(format!("archive entry '{}' points outside the root; refusing the archive", path.display()))
}

/// A name for an imported image: the file name without its archive extensions.
pub fn image_name(file_name: &str) -> String {
    let mut name = file_name;
    for ext in [".gz", ".zst", ".tgz", ".tar"] {
        name = name.strip_suffix(ext).unwrap_or(name);
    }
    if name.is_empty() { "imported".to_string() } else { name.to_string() }
}

/// The relative form of an absolute path inside an instance (`/tmp/x` → `tmp/x`),
/// refusing `..`.
pub fn relative_inside(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    check_inside(p)?;
    Ok(p.components().filter(|c| matches!(c, Component::Normal(_))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o755);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    header.set_size(0);
                    // Set raw names: the builder's helpers refuse `..` themselves.
                    let gnu = header.as_gnu_mut().unwrap();
                    gnu.name[..path.len()].copy_from_slice(path.as_bytes());
                    gnu.linkname[..data.len()].copy_from_slice(data.as_bytes());
                    header.set_cksum();
                    builder.append(&header, io::empty()).unwrap();
                }
                _ => {
                    header.set_size(data.len() as u64);
                    let gnu = header.as_gnu_mut().unwrap();
                    gnu.name[..path.len()].copy_from_slice(path.as_bytes());
                    header.set_cksum();
                    builder.append(&header, data.as_bytes()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn unpacks_plain_gzip_and_zstd() {
        let tar = tar_with(&[
            ("./bin/", tar::EntryType::Directory, ""),
            ("./bin/hello", tar::EntryType::Regular, "hi\n"),
            ("/etc/abs", tar::EntryType::Regular, "abs\n"),
            ("./bin/link", tar::EntryType::Symlink, "/bin/hello"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let mut zst = Vec::new();
        ruzstd::encoding::compress(&tar[..], &mut zst, ruzstd::encoding::CompressionLevel::Fastest);
        for bytes in [tar.clone(), gz, zst] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("image.tar");
            fs::write(&file, &bytes).unwrap();
            let rootfs = dir.path().join("rootfs");
            unpack_file(&file, &rootfs).unwrap();
            assert_eq!(fs::read_to_string(rootfs.join("bin/hello")).unwrap(), "hi\n");
            assert_eq!(fs::read_to_string(rootfs.join("etc/abs")).unwrap(), "abs\n");
            assert_eq!(fs::read_link(rootfs.join("bin/link")).unwrap(), Path::new("/bin/hello"));
            assert!(rootfs.join("proc").is_dir());
        }
    }

    #[test]
    fn refuses_escapes() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        let cases = [
            tar_with(&[("../escape", tar::EntryType::Regular, "x")]),
            tar_with(&[("a/../../escape", tar::EntryType::Regular, "x")]),
            // A symlink to outside, then a file through it.
            tar_with(&[
                ("link", tar::EntryType::Symlink, outside.path().to_str().unwrap()),
                ("link/victim", tar::EntryType::Regular, "x"),
            ]),
            tar_with(&[("hard", tar::EntryType::Link, "../../etc/passwd")]),
        ];
        for (i, tar) in cases.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let err = unpack(&tar[..], dir.path()).expect_err(&format!("case {i} must be refused"));
            assert!(matches!(err, Error::Invalid(_)), "case {i}: {err}");
            assert!(!victim.exists(), "case {i} wrote outside");
            assert!(!dir.path().parent().unwrap().join("escape").exists());
        }
    }

    #[test]
    fn unpacking_stops_at_the_limit() {
        let zeros = "\0".repeat(1 << 20);
        let tar = tar_with(&[("./zeros", tar::EntryType::Regular, &zeros)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 16 << 10, "a bomb: {} bytes", gz.len());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bomb.tar.gz");
        fs::write(&file, &gz).unwrap();
        let err = unpack_file_limited(&file, &dir.path().join("small"), 256 << 10).unwrap_err();
        assert!(matches!(err, Error::TooLarge(_)), "{err}");
        unpack_file_limited(&file, &dir.path().join("big"), 4 << 20).unwrap();
        assert_eq!(fs::metadata(dir.path().join("big/zeros")).unwrap().len(), 1 << 20);
    }

    #[test]
    fn names_and_relative_paths() {
        assert_eq!(image_name("alpine-3.20.tar.gz"), "alpine-3.20");
        assert_eq!(image_name("x.tar.zst"), "x");
        assert_eq!(relative_inside("/tmp/a/").unwrap(), PathBuf::from("tmp/a"));
        assert_eq!(relative_inside("/").unwrap(), PathBuf::new());
        assert!(relative_inside("/tmp/../etc").is_err());
    }
}
