//! The image store for real: the builtin busybox, tarball imports, a Debian build with
//! mmdebstrap from the host's mirror, and instances run from each.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Env, busybox, exec, image_store};
use roost_node::images::{ImageSource, ImageStore};
use roost_node::{Driver, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_image_is_built_once_with_its_applets() {
    let image = busybox().await;
    assert_eq!(image.meta.name, "busybox");
    assert!(matches!(image.meta.source, ImageSource::Busybox { .. }));
    let rootfs = &image.rootfs;
    assert_eq!(std::fs::read_link(rootfs.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    assert!(rootfs.join("usr/bin/wget").symlink_metadata().is_ok(), "the usual applets are linked");
    assert!(std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap().starts_with("root:x:0:0:"));
    assert!(rootfs.join("etc/group").is_file() && rootfs.join("etc/resolv.conf").is_file());
    assert!(image.meta.size_bytes > 1 << 20);

    // Content-addressed: asking again finds it at once.
    let begun = Instant::now();
    let again = image_store().busybox().await.unwrap();
    assert_eq!(again.digest, image.digest);
    assert!(begun.elapsed() < Duration::from_secs(1));
    assert!(image_store().list().unwrap().iter().any(|i| i.digest == image.digest));
    assert_eq!(image_store().get(&image.digest).unwrap().unwrap(), image);
}

/// A tarball of the busybox image's root, made with the host's tar.
fn tarball_of(rootfs: &Path, target: &Path, compress: &str) {
    let status = std::process::Command::new("tar")
        .arg(format!("--{compress}"))
        .arg("-cf")
        .arg(target)
        .arg("-C")
        .arg(rootfs)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarball_imports_run_and_refuse_escapes() {
    let image = busybox().await;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    let file = dir.path().join("mini.tar.gz");
    tarball_of(&image.rootfs, &file, "gzip");
    let imported = store.import_tarball(&file, u64::MAX).await.unwrap();
    assert_eq!(imported.meta.name, "mini");
    assert_eq!(imported.digest.len(), 64);
    assert!(imported.rootfs.join("bin/busybox").is_file());
    // The same file again: the same image, not a second copy.
    assert_eq!(store.import_tarball(&file, u64::MAX).await.unwrap().digest, imported.digest);
    assert_eq!(store.list().unwrap().len(), 1);

    // An instance runs from it.
    let env = Env::new("import");
    let spec = env.spec(&imported, None);
    env.run(&spec).await;
    assert_eq!(exec(&env.driver, &spec.id, &["echo", "imported"]).await.stdout, "imported\n");
    env.driver.delete(&spec.id).await.unwrap();

    // An archive reaching outside its root is refused, and leaves nothing in the store.
    let evil = dir.path().join("evil.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&evil).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../../escaped");
    header.set_cksum();
    builder.append(&header, &b"x\n"[..]).unwrap();
    builder.finish().unwrap();
    drop(builder);
    let refused = store.import_tarball(&evil, u64::MAX).await;
    assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(!dir.path().join("escaped").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_image_builds_from_the_hosts_mirror() {
    common::require_prerequisites();
    assert!(
        common::on_path("mmdebstrap"),
        "missing prerequisite: `mmdebstrap` — install the Debian package mmdebstrap"
    );
    let suite = host_suite();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let seen = seen.clone();
        move |p: roost_node::images::BuildProgress| seen.lock().unwrap().push(p)
    };
    // Shared store: built once per machine, like busybox.
    let image =
        image_store().build_debian("debian-test", &suite, &[], progress).await.expect("building a Debian image");
    let ImageSource::Debian { suite: built, mirror, .. } = &image.meta.source else {
        panic!("{:?}", image.meta.source)
    };
    assert_eq!(built, &suite);
    assert!(mirror.starts_with("http"), "{mirror}");
    assert!(image.rootfs.join("etc/debian_version").is_file());
    assert!(image.rootfs.join("usr/bin/apt-get").is_file());
    let seen = seen.lock().unwrap().clone();
    if !seen.is_empty() {
        // A fresh build reported its steps, rising to 100.
        assert!(seen.windows(2).all(|w| w[0].percent <= w[1].percent), "{seen:?}");
        assert_eq!(seen.last().unwrap().percent, 100);
    }
    let again = image_store().build_debian("other-name", &suite, &[], |_| {}).await.unwrap();
    assert_eq!(again.digest, image.digest);

    let env = Env::new("debian");
    let spec = env.spec(&image, None);
    env.run(&spec).await;
    let version = exec(&env.driver, &spec.id, &["cat", "/etc/debian_version"]).await;
    assert_eq!(version.code, 0);
    assert!(version.stdout.trim().chars().next().is_some_and(|c| c.is_ascii_digit()), "{version:?}");
    env.driver.stop(&spec.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(env.driver.inspect(&spec.id).await.unwrap().exit_code, Some(0), "the default init stops on SIGTERM");
    env.driver.delete(&spec.id).await.unwrap();

    assert!(matches!(image_store().build_debian("x", "no/such", &[], |_| {}).await, Err(Error::Invalid(_))));
}

/// The suite the host's apt uses (the build must not depend on a hard-coded one).
fn host_suite() -> String {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    os.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .expect("a Debian host with VERSION_CODENAME in /etc/os-release")
}
