//! The builtin image: the host's statically linked busybox (Debian package
//! busybox-static) with its applets linked, and the few files a shell expects.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::IoContext;
use crate::{Error, Result};

/// Bumped when the layout built here changes, so the digest (and the image) changes.
pub const LAYOUT_VERSION: u32 = 1;

const CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// The host's busybox, if it is statically linked (a dynamic one, from the `busybox`
/// package, would need the host's libc inside the image).
pub fn find_static() -> Result<PathBuf> {
    let mut dynamic = false;
    for candidate in CANDIDATES {
        let path = Path::new(candidate);
        let Ok(bytes) = fs::read(path) else { continue };
        if is_static_elf(&bytes) {
            return Ok(path.to_path_buf());
        }
        dynamic = true;
    }
    let what = if dynamic { "a statically linked busybox (the one installed is dynamic)" } else { "busybox" };
    Err(Error::missing(what, "busybox-static"))
}

/// An ELF executable without a program interpreter (`PT_INTERP`) is static.
fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false; // only 64-bit little-endian is read here
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= bytes.len() && u32_at(o) != PT_INTERP
    })
}

/// Fills `rootfs`: the usual directories, `/bin/busybox`, a symlink per applet where
/// busybox would install it (`busybox --list-full`, the list `busybox --install -s`
/// uses, so no chroot is needed), and minimal passwd, group, hosts and resolv.conf
/// (the last two are placeholders: the container driver mounts the instance's own).
pub fn build(binary: &Path, rootfs: &Path) -> Result<()> {
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("var/log", 0o755),
        ("var/tmp", 0o1777),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
    ] {
        let path = rootfs.join(dir);
        fs::create_dir_all(&path).at("creating", &path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).at("setting the mode of", &path)?;
    }
    let target = rootfs.join("bin/busybox");
    fs::copy(binary, &target).at("copying", binary)?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).at("setting the mode of", &target)?;

    let output = Command::new(binary).arg("--list-full").output().at("running", binary)?;
    if !output.status.success() {
        return Err(Error::tool("busybox", String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    for applet in String::from_utf8_lossy(&output.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet.contains("..") || applet == "bin/busybox" {
            continue;
        }
        let link = rootfs.join(applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).at("creating", parent)?;
        }
        if link.symlink_metadata().is_err() {
            symlink("/bin/busybox", &link).at("linking", &link)?;
        }
    }

    let files: [(&str, &str, u32); 7] = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
        ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644),
        ("etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o600),
        ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644),
        ("etc/resolv.conf", "", 0o644),
        ("etc/hostname", "busybox\n", 0o644),
        ("etc/os-release", "NAME=\"BusyBox\"\nID=busybox\nPRETTY_NAME=\"BusyBox (Roost builtin)\"\n", 0o644),
    ];
    for (name, content, mode) in files {
        let path = rootfs.join(name);
        fs::write(&path, content).at("writing", &path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).at("setting the mode of", &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_static_from_dynamic() {
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        // The test binary itself is dynamically linked.
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!is_static_elf(&me));
    }
}
