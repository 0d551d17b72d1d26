//! The image store: unpacked root filesystems, content-addressed, under
//! `<data_dir>/images/sha256/<digest>/` (`rootfs/` and `image.json`).
//!
//! The digest is the SHA-256 of what the image is made from: for a build, a canonical
//! JSON of its inputs (so building the same thing twice finds the first result); for an
//! import, the file's bytes. An image is built in `images/tmp/` and renamed into place
//! when complete, so a crash never leaves a half image under its digest; a lock file per
//! digest makes concurrent requests for the same image wait for one build.
//!
//! Images are read-only lower layers of the instances' overlays: nothing writes to them
//! after the rename.

pub mod busybox;
pub mod debian;
pub mod tarball;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::IoContext;
use crate::logs::unix_ms;
use crate::{Error, Result};

/// Where an image came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// Built from the host's busybox-static.
    Busybox { busybox_sha256: String },
    /// Built with mmdebstrap from Debian packages.
    Debian { suite: String, packages: Vec<String>, variant: String, mirror: String },
    /// Unpacked from a root filesystem tarball.
    Tarball { file_name: String },
    /// A base image plus setup commands run in it (a sandbox template build).
    Derived { base_digest: String, commands: Vec<String> },
}

/// What `image.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// The name it was first built or imported under (the control plane owns names).
    pub name: String,
    pub source: ImageSource,
    pub created_at_ms: u64,
    /// The unpacked size.
    pub size_bytes: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// 64 hex characters.
    pub digest: String,
    /// The root filesystem: an instance's lower layer.
    pub rootfs: PathBuf,
    pub meta: ImageMeta,
}

/// A step of a long build, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildProgress {
    /// 0 to 100, rising.
    pub percent: u8,
    pub message: String,
}

/// The store, rooted at `<data_dir>/images`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    pub fn new(images_dir: impl Into<PathBuf>) -> ImageStore {
        ImageStore { root: images_dir.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, digest: &str) -> PathBuf {
        self.root.join("sha256").join(digest)
    }

    /// The image with this digest, if it is in the store.
    pub fn get(&self, digest: &str) -> Result<Option<Image>> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!("invalid image digest '{digest}'")));
        }
        let dir = self.dir(digest);
        let meta_path = dir.join("image.json");
        let text = match fs::read_to_string(&meta_path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", meta_path.display()), e)),
        };
        let meta = serde_json::from_str(&text)
            .map_err(|e| Error::io(format!("reading {}", meta_path.display()), io::Error::other(e)))?;
        Ok(Some(Image { digest: digest.to_string(), rootfs: dir.join("rootfs"), meta }))
    }

    /// Every image in the store.
    pub fn list(&self) -> Result<Vec<Image>> {
        let dir = self.root.join("sha256");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        let mut images = Vec::new();
        for entry in entries {
            let name = entry.at("listing", &dir)?.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() == 64
                && let Some(image) = self.get(name)?
            {
                images.push(image);
            }
        }
        images.sort_by_key(|i| i.meta.created_at_ms);
        Ok(images)
    }

    /// Removes an image. The caller checks first that no instance uses it (an overlay
    /// whose lower layer disappears breaks).
    pub async fn remove(&self, digest: &str) -> Result<()> {
        self.get(digest)?; // validates the digest
        let store = self.clone();
        let digest = digest.to_string();
        blocking(move || {
            let _lock = store.lock(&digest)?;
            let dir = store.dir(&digest);
            // Rename first so a reader never sees half an image under the digest.
            let doomed = store.root.join("tmp").join(format!("{digest}.removing"));
            fs::create_dir_all(store.root.join("tmp")).at("creating", &store.root)?;
            match fs::rename(&dir, &doomed) {
                Ok(()) => fs::remove_dir_all(&doomed).at("removing", &doomed),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
            }
        })
        .await
    }

    /// Holds the lock of one digest (a blocking `flock`), creating the store's dirs.
    fn lock(&self, digest: &str) -> Result<Flock<File>> {
        let dir = self.root.join("sha256");
        fs::create_dir_all(&dir).at("creating", &dir)?;
        let path = dir.join(format!("{digest}.lock"));
        let file = File::create(&path).at("creating", &path)?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io(format!("locking {}", path.display()), e.into()))
    }

    /// Returns the image `digest`, building it with `build` when it is not there yet.
    /// `build` fills the `rootfs` directory it is given and returns the image's metadata;
    /// it runs at most once per digest at a time, even across processes.
    fn get_or_build(&self, digest: &str, build: impl FnOnce(&Path) -> Result<(String, ImageSource)>) -> Result<Image> {
        if let Some(image) = self.get(digest)? {
            return Ok(image);
        }
        let _lock = self.lock(digest)?;
        if let Some(image) = self.get(digest)? {
            return Ok(image);
        }
        let tmp = self.root.join("tmp").join(format!("{digest}.{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let rootfs = tmp.join("rootfs");
        fs::create_dir_all(&tmp).at("creating", &tmp)?;
        let built = build(&rootfs).and_then(|(name, source)| {
            let meta =
                ImageMeta { name, source, created_at_ms: unix_ms(SystemTime::now()), size_bytes: disk_usage(&rootfs) };
            let json = serde_json::to_vec_pretty(&meta).expect("image metadata serializes");
            fs::write(tmp.join("image.json"), json).at("writing image metadata in", &tmp)?;
            fs::rename(&tmp, self.dir(digest)).at("moving the new image into", &self.root)
        });
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        self.get(digest)?.ok_or_else(|| Error::io("reading the new image", io::Error::other("image vanished")))
    }

    /// The builtin busybox image, built from the host's busybox-static on first use.
    pub async fn busybox(&self) -> Result<Image> {
        let store = self.clone();
        blocking(move || {
            let binary = busybox::find_static()?;
            let busybox_sha256 = sha256_file(&binary)?;
            let source = ImageSource::Busybox { busybox_sha256 };
            let digest = describe(&source, busybox::LAYOUT_VERSION);
            store.get_or_build(&digest, |rootfs| {
                busybox::build(&binary, rootfs)?;
                Ok(("busybox".to_string(), source))
            })
        })
        .await
    }

    /// A Debian image of `suite` with `packages` on top of the minimal base, built
    /// offline from Debian packages with mmdebstrap from the host's apt mirror. Reused
    /// when one with the same suite and packages exists. `progress` hears each step.
    pub async fn build_debian(
        &self,
        name: &str,
        suite: &str,
        packages: &[String],
        progress: impl Fn(BuildProgress) + Send + 'static,
    ) -> Result<Image> {
        let request = debian::Request::new(suite, packages)?;
        let mirror = debian::host_mirror(suite)?;
        let key = ImageSource::Debian {
            suite: request.suite.clone(),
            packages: request.packages.clone(),
            variant: debian::VARIANT.into(),
            // The mirror is how the packages travel, not what the image is: left out of
            // the digest, so a mirror change does not invalidate every image.
            mirror: String::new(),
        };
        let digest = describe(&key, debian::LAYOUT_VERSION);
        let store = self.clone();
        let name = name.to_string();
        blocking(move || {
            store.get_or_build(&digest, |rootfs| {
                debian::build(&request, &mirror, rootfs, &progress)?;
                let ImageSource::Debian { suite, packages, variant, .. } = key else { unreachable!() };
                Ok((name, ImageSource::Debian { suite, packages, variant, mirror: mirror.uri.clone() }))
            })
        })
        .await
    }

    /// Imports a root filesystem tarball (`.tar`, `.tar.gz`, `.tar.zst`; detected by
    /// content). Entries that would land outside the root are refused, and so is an
    /// archive that unpacks to more than `max_unpacked` bytes ([`Error::TooLarge`]; the
    /// partial unpack is removed).
    pub async fn import_tarball(&self, path: &Path, max_unpacked: u64) -> Result<Image> {
        let store = self.clone();
        let path = path.to_owned();
        blocking(move || {
            let digest = sha256_file(&path)?;
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let name = tarball::image_name(&file_name);
            store.get_or_build(&digest, |rootfs| {
                tarball::unpack_file_limited(&path, rootfs, max_unpacked)?;
                Ok((name, ImageSource::Tarball { file_name }))
            })
        })
        .await
    }
}

impl ImageStore {
    /// Stores a copy of the directory tree `src` (a build container's root filesystem,
    /// its commands finished) as the image `digest`, unless that image is there already.
    /// The copy keeps owners, modes, links, extended attributes and sparse files
    /// (`cp -a`), and stays on `src`'s filesystem (nothing mounted below it).
    pub async fn snapshot(&self, digest: &str, name: &str, src: &Path, source: ImageSource) -> Result<Image> {
        self.get(digest)?; // validates the digest
        let store = self.clone();
        let digest = digest.to_string();
        let name = name.to_string();
        let src = src.to_owned();
        blocking(move || {
            store.get_or_build(&digest, |rootfs| {
                fs::create_dir_all(rootfs).at("creating", rootfs)?;
                let output = std::process::Command::new("cp")
                    .arg("-a")
                    .arg("--one-file-system")
                    .arg(format!("{}/.", src.display()))
                    .arg(rootfs)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map_err(|e| Error::io("running cp", e))?;
                if !output.status.success() {
                    return Err(Error::tool("cp", String::from_utf8_lossy(&output.stderr).trim().to_string()));
                }
                // A user-namespaced instance's files show shifted owners on the host:
                // the image keeps the ids they have inside.
                if let Some(map) = crate::drivers::container::userns::id_map_of_rootfs(&src) {
                    crate::drivers::container::userns::unshift_tree(rootfs, map)
                        .map_err(|e| Error::io("giving the snapshot its container ids", e))?;
                }
                Ok((name, source))
            })
        })
        .await
    }
}

/// The digest of a build: SHA-256 of the canonical JSON of its inputs.
fn describe(source: &ImageSource, layout_version: u32) -> String {
    let json = serde_json::json!({ "layout": layout_version, "source": source });
    hex::encode(Sha256::digest(json.to_string().as_bytes()))
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).at("opening", path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).at("reading", path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Bytes used by the files under `dir` (symlinks not followed).
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::io("image task", io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_the_inputs() {
        let a = ImageSource::Debian {
            suite: "bookworm".into(),
            packages: vec!["curl".into()],
            variant: "minbase".into(),
            mirror: String::new(),
        };
        let b = ImageSource::Debian {
            suite: "bookworm".into(),
            packages: vec![],
            variant: "minbase".into(),
            mirror: String::new(),
        };
        assert_eq!(describe(&a, 1), describe(&a.clone(), 1));
        assert_ne!(describe(&a, 1), describe(&b, 1));
        assert_ne!(describe(&a, 1), describe(&a, 2));
        assert_eq!(describe(&a, 1).len(), 64);
    }

    #[tokio::test]
    async fn builds_once_and_cleans_failed_builds() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let digest = "a".repeat(64);
        let failed = store.get_or_build(&digest, |_| Err(Error::Invalid("no".into())));
        assert!(failed.is_err());
        assert!(store.get(&digest).unwrap().is_none());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let mut runs = 0;
        for _ in 0..2 {
            let image = store
                .get_or_build(&digest, |rootfs| {
                    runs += 1;
                    fs::create_dir_all(rootfs.join("etc")).unwrap();
                    fs::write(rootfs.join("etc/hostname"), "x\n").unwrap();
                    Ok(("test".into(), ImageSource::Tarball { file_name: "t.tar".into() }))
                })
                .unwrap();
            assert_eq!(image.meta.size_bytes, 2);
            assert!(image.rootfs.join("etc/hostname").is_file());
        }
        assert_eq!(runs, 1);
        assert_eq!(store.list().unwrap().len(), 1);
        store.remove(&digest).await.unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(store.get("../etc").is_err());
    }
}
