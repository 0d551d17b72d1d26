//! What a microVM boots: a pinned Debian cloud kernel (as an uncompressed ELF `vmlinux`,
//! booted through PVH so the real-mode setup and the decompressor are skipped), an
//! initramfs written here (static busybox, the virtio modules, our `/init`), and an
//! ext4 base disk per image made with `mkfs.ext4 -d` (no loop device, no mount). All of
//! it is built once and shared read-only; each VM writes to its own qcow2 overlay.
//!
//! Layout under `<data_dir>/vm/`: `kernel/<abi>.v<n>/{vmlinux,initrd.img}`,
//! `bases/<image digest>.v<n>/base.raw`. Everything is built under a temporary name and
//! renamed into place, under a lock, so a crash never leaves half an artifact.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use sha2::Digest;

use crate::error::IoContext;
use crate::{Error, Result};

/// The kernel package, pinned: its ABI names the modules, and a kernel that changed
/// under existing VMs would change their boot.
pub const KERNEL_ABI: &str = "6.1.0-56-cloud-amd64";
/// Bumped when the initramfs or the base disk's additions change.
pub const KIT_VERSION: u32 = 1;

/// Modules the initramfs loads (their `depends=` are resolved too, so this list only
/// names what is wanted).
const MODULES: &[&str] =
    &["virtio_mmio", "virtio_blk", "virtio_net", "virtio_console", "virtio_rng", "button", "evdev"];

/// The busybox applets `/init` calls by name.
const APPLETS: &[&str] = &[
    "sh",
    "mount",
    "umount",
    "insmod",
    "ip",
    "ifconfig",
    "route",
    "hostname",
    "usleep",
    "sleep",
    "switch_root",
    "mkdir",
    "ln",
    "cat",
    "cp",
    "echo",
    "cut",
    "mknod",
];

/// The initramfs `/init`: modules, root, `ip=` (the kernel's `IP_PNP` syntax; the
/// Debian cloud kernel has no `CONFIG_IP_PNP`), `/dev/virtio-ports` links (no udev),
/// then `switch_root`.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
exec >/dev/console 2>&1 </dev/console
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko || echo "roost-initrd: insmod $m failed"; done
root= ; init=/sbin/init ; ipcfg=
for x in $(cat /proc/cmdline); do
  case "$x" in
    root=*) root=${x#root=} ;;
    init=*) init=${x#init=} ;;
    ip=*) ipcfg=${x#ip=} ;;
  esac
done
ip link set lo up
if [ -n "$ipcfg" ] && [ "$ipcfg" != off ]; then
  IFS=: read -r cip sip gw mask host dev auto rest <<IPEOF
$ipcfg
IPEOF
  [ -z "$dev" ] && dev=eth0
  i=0; while [ ! -e /sys/class/net/$dev ] && [ $i -lt 200 ]; do usleep 20000; i=$((i+1)); done
  [ -n "$cip" ] && ifconfig "$dev" "$cip" netmask "$mask" up
  [ -n "$gw" ] && route add default gw "$gw"
  [ -n "$host" ] && hostname "$host"
fi
i=0; while [ ! -b "$root" ] && [ $i -lt 500 ]; do usleep 20000; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw "$root" /newroot; then echo "roost-initrd: cannot mount $root"; exec sh; fi
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
[ -d /newroot/run ] && mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /newroot/run
for p in /sys/class/virtio-ports/*; do
  [ -e "$p/name" ] || continue
  read -r n < "$p/name"; [ -n "$n" ] || continue
  mkdir -p /dev/virtio-ports; ln -sf "../${p##*/}" "/dev/virtio-ports/$n"
done
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot "$init"
"#;

/// busybox init's table on the base disk: our sysinit, qemu-guest-agent kept running,
/// a root shell on the serial console.
const INITTAB: &str = "\
::sysinit:/.roost/bin/sh /.roost/rc.sysinit
::respawn:/.roost/bin/sh /.roost/qga
ttyS0::respawn:/.roost/bin/getty -n -l /bin/sh 115200 ttyS0 vt100
::ctrlaltdel:/.roost/bin/poweroff
::shutdown:/.roost/bin/sh /.roost/rc.shutdown
";

/// Only shell builtins and busybox applets: every dynamic binary costs tens of
/// milliseconds under TCG. Kernel arguments `roost.dns=<ip>,<search>` and
/// `roost.disk=<serial>,<path>,<ro|rw>` (repeatable) configure the rest.
const RC_SYSINIT: &str = r#"bb=/.roost/bin/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mounted=" "
while read -r _ mnt _; do mounted="$mounted$mnt "; done < /proc/mounts
case "$mounted" in *" /run "*) ;; *) $bb mount -t tmpfs -o mode=755 tmpfs /run ;; esac
$bb mkdir -p /tmp && $bb chmod 1777 /tmp
for x in $(cat /proc/cmdline); do
  case "$x" in
    roost.dns=*) v=${x#roost.dns=}; ns=${v%%,*}; search=${v#*,}
      { echo "nameserver $ns"; [ -n "$search" ] && [ "$search" != "$v" ] && echo "search $search"; } > /etc/resolv.conf ;;
    roost.disk=*) v=${x#roost.disk=}; serial=${v%%,*}; rest=${v#*,}; path=${rest%%,*}; mode=${rest#*,}
      for d in /sys/block/vd*; do
        s=; [ -e "$d/serial" ] && read -r s < "$d/serial"
        if [ "$s" = "$serial" ]; then $bb mkdir -p "$path"; $bb mount -t ext4 -o "$mode" "/dev/${d##*/}" "$path" || echo "roost: cannot mount $serial on $path"; fi
      done ;;
  esac
done
h=$($bb hostname)
[ -n "$h" ] && echo "$h" > /etc/hostname
$bb acpid -c /.roost/acpi -l /dev/null
read -r up _ < /proc/uptime
echo "roost: guest ready uptime=$up"
"#;

const RC_SHUTDOWN: &str = "\
/.roost/bin/busybox killall qemu-ga 2>/dev/null
/.roost/bin/busybox sync
/.roost/bin/busybox umount -a -r 2>/dev/null
/.roost/bin/busybox mount -o remount,ro / 2>/dev/null
";

/// qemu-ga exits when its port is missing; respawned by init, so wait a little first.
const RUN_QGA: &str = "\
p=/dev/virtio-ports/org.qemu.guest_agent.0
if [ ! -e $p ]; then /.roost/bin/sleep 5; exit 0; fi
exec /usr/sbin/qemu-ga -m virtio-serial -p $p
";

/// ACPI power button (QMP `system_powerdown`) → busybox acpid → this.
const POWER_BUTTON: &str = "#!/.roost/bin/sh\n/.roost/bin/poweroff\n";

/// What qemu-ga's `guest-shutdown` runs, on a root without systemd or sysvinit.
const SHUTDOWN_SHIM: &str =
    "#!/.roost/bin/sh\ncase \" $* \" in *\" -r \"*) exec /.roost/bin/reboot ;; *) exec /.roost/bin/poweroff ;; esac\n";

/// The shared boot files of the pinned kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinux: PathBuf,
    pub initrd: PathBuf,
}

fn lock(path: &Path) -> Result<Flock<File>> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).at("creating", dir)?;
    }
    let file = File::create(path).at("creating", path)?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(format!("locking {}", path.display()), e.into()))
}

fn run(tool: &'static str, package: &'static str, command: &mut Command) -> Result<Vec<u8>> {
    let output = match command.stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::missing(tool, package)),
        Err(e) => return Err(Error::io(format!("running {tool}"), e)),
    };
    if !output.status.success() {
        return Err(Error::tool(tool, String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    Ok(output.stdout)
}

/// The kernel and initramfs, fetched and built on first use (`apt-get download` from the
/// host's apt sources, `dpkg -x`).
pub fn kernel(vm_dir: &Path, busybox: &Path) -> Result<Kernel> {
    let dir = vm_dir.join("kernel").join(format!("{KERNEL_ABI}.v{KIT_VERSION}"));
    let kernel = Kernel { vmlinux: dir.join("vmlinux"), initrd: dir.join("initrd.img") };
    if kernel.initrd.is_file() {
        return Ok(kernel);
    }
    let _lock = lock(&vm_dir.join("kernel.lock"))?;
    if kernel.initrd.is_file() {
        return Ok(kernel);
    }
    let tmp = vm_dir.join("tmp").join(format!("kernel.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).at("creating", &tmp)?;
    let built = build_kernel(&tmp, busybox).and_then(|()| {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.parent().expect("kernel dir has a parent")).at("creating", &dir)?;
        fs::rename(tmp.join("out"), &dir).at("moving the kernel into", &dir)
    });
    let _ = fs::remove_dir_all(&tmp);
    built.map(|()| kernel)
}

fn build_kernel(tmp: &Path, busybox: &Path) -> Result<()> {
    let package = format!("linux-image-{KERNEL_ABI}");
    run("apt-get", "apt", Command::new("apt-get").arg("download").arg(&package).current_dir(tmp))?;
    let deb = fs::read_dir(tmp)
        .at("listing", tmp)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| Error::tool("apt-get", format!("no {package} package was downloaded")))?;
    let x = tmp.join("x");
    run("dpkg", "dpkg", Command::new("dpkg").arg("-x").arg(&deb).arg(&x))?;
    let out = tmp.join("out");
    fs::create_dir_all(&out).at("creating", &out)?;
    let vmlinuz = x.join("boot").join(format!("vmlinuz-{KERNEL_ABI}"));
    let vmlinux = extract_vmlinux(&fs::read(&vmlinuz).at("reading", &vmlinuz)?)?;
    fs::write(out.join("vmlinux"), vmlinux).at("writing", &out)?;
    let modules_dir = x.join("lib/modules").join(KERNEL_ABI);
    let modules = resolve_modules(&modules_dir)?;
    let cpio = initramfs(busybox, &modules)?;
    fs::write(out.join("initrd.img"), cpio).at("writing", &out)?;
    Ok(())
}

/// The ELF kernel inside a bzImage: the payload is LZ4 (Debian's cloud kernels), found by
/// its magic and unpacked with the lz4 tool; the first candidate that unpacks to an ELF
/// file wins.
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>> {
    const LZ4_LEGACY: &[u8] = &[0x02, 0x21, 0x4c, 0x18];
    for (offset, _) in bzimage.windows(4).enumerate().filter(|(_, w)| *w == LZ4_LEGACY) {
        let mut child = match Command::new("lz4")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::missing("lz4", "lz4")),
            Err(e) => return Err(Error::io("running lz4", e)),
        };
        let mut stdin = child.stdin.take().expect("piped");
        let payload = bzimage[offset..].to_vec();
        // lz4 complains about the bytes after the stream (its exit code is ignored); what
        // it unpacked before them is the kernel.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&payload);
        });
        let output = child.wait_with_output().map_err(|e| Error::io("running lz4", e))?;
        let _ = writer.join();
        if output.stdout.starts_with(b"\x7fELF") {
            return Ok(output.stdout);
        }
    }
    Err(Error::tool("lz4", "no LZ4 kernel payload found in the bzImage"))
}

type Modules = Vec<(String, Vec<u8>)>;

/// The wanted modules and what they depend on (from each `.ko`'s `.modinfo`
/// `depends=`), dependencies first.
fn resolve_modules(dir: &Path) -> Result<Modules> {
    let mut files = std::collections::HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).at("listing", &d)?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
                files.insert(name.replace('-', "_"), path);
            }
        }
    }
    fn visit(
        name: &str,
        files: &std::collections::HashMap<String, PathBuf>,
        ordered: &mut Modules,
        depth: usize,
    ) -> Result<()> {
        if ordered.iter().any(|(n, _)| n == name) || depth > 32 {
            return Ok(());
        }
        // Not a module file: built into this kernel, nothing to load.
        let Some(path) = files.get(name) else { return Ok(()) };
        let bytes = fs::read(path).at("reading", path)?;
        for dep in modinfo_depends(&bytes) {
            visit(&dep, files, ordered, depth + 1)?;
        }
        if !ordered.iter().any(|(n, _)| n == name) {
            ordered.push((name.to_string(), bytes));
        }
        Ok(())
    }
    let mut ordered = Vec::new();
    for m in MODULES {
        visit(m, &files, &mut ordered, 0)?;
    }
    Ok(ordered)
}

/// `depends=a,b` from a module's `.modinfo` strings (`key=value\0` records).
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else { return Vec::new() };
    let rest = &ko[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// A newc cpio archive (what the kernel unpacks as an initramfs), reproducible: fixed
/// inode numbers, mtime 0, owner root.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields =
            [self.ino, mode, 0, 0, nlink, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data, (0, 0));
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes(), (0, 0));
    }

    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, 0o020000 | perm, &[], (major, minor));
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

fn initramfs(busybox: &Path, modules: &Modules) -> Result<Vec<u8>> {
    let mut cpio = Cpio::default();
    for d in ["bin", "dev", "etc", "lib", "lib/modules", "newroot", "proc", "sys"] {
        cpio.dir(d);
    }
    cpio.char_dev("dev/console", 0o600, 5, 1);
    cpio.char_dev("dev/null", 0o666, 1, 3);
    cpio.file("bin/busybox", 0o755, &fs::read(busybox).at("reading", busybox)?);
    for applet in APPLETS {
        cpio.symlink(&format!("bin/{applet}"), "busybox");
    }
    cpio.file("init", 0o755, INIT.as_bytes());
    let list: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    cpio.file("etc/modules", 0o644, format!("{}\n", list.join(" ")).as_bytes());
    for (name, bytes) in modules {
        cpio.file(&format!("lib/modules/{name}.ko"), 0o644, bytes);
    }
    Ok(cpio.finish())
}

/// The base disk of one image: the image's root filesystem plus the guest glue (busybox
/// init, the qemu-ga runner, the power button) in `/.roost`, as an ext4 file. The
/// image's tree is hard-linked into a staging tree (no data copied) and glue files
/// replace links rather than write through them, so the image itself is never touched.
pub fn base_disk(vm_dir: &Path, rootfs: &Path, busybox: &Path) -> Result<PathBuf> {
    if !rootfs.join("usr/sbin/qemu-ga").exists() {
        return Err(Error::Invalid(
            "this image has no qemu-guest-agent, which a VM needs (use a Debian image from `roost image build`)".into(),
        ));
    }
    // Named by the image's digest (its directory in the store) when it has one.
    let key = rootfs
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .filter(|n| n.len() == 64)
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(sha2::Sha256::digest(rootfs.as_os_str().as_encoded_bytes())));
    let dir = vm_dir.join("bases").join(format!("{key}.v{KIT_VERSION}"));
    let base = dir.join("base.raw");
    if base.is_file() {
        return Ok(base);
    }
    let _lock = lock(&vm_dir.join("bases").join(format!("{key}.lock")))?;
    if base.is_file() {
        return Ok(base);
    }
    let tmp = vm_dir.join("tmp").join(format!("base.{key}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).at("creating", &tmp)?;
    let built = build_base(&tmp, rootfs, busybox).and_then(|()| {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).at("creating", &dir)?;
        fs::rename(tmp.join("base.raw"), &base).at("moving the base disk into", &dir)?;
        // Shared by every VM of the image: nothing may write to it.
        fs::set_permissions(&base, fs::Permissions::from_mode(0o444)).at("chmod", &base)
    });
    let _ = fs::remove_dir_all(&tmp);
    built.map(|()| base)
}

fn build_base(tmp: &Path, rootfs: &Path, busybox: &Path) -> Result<()> {
    let stage = tmp.join("root");
    // Hard links when the image is on the same filesystem, else a copy.
    let linked =
        Command::new("cp").arg("-al").arg(rootfs).arg(&stage).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !linked {
        let _ = fs::remove_dir_all(&stage);
        run("cp", "coreutils", Command::new("cp").arg("-a").arg(rootfs).arg(&stage))?;
    }
    let put = |rel: &str, perm: u32, data: &[u8]| -> Result<()> {
        let path = stage.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).at("creating", parent)?;
        }
        let _ = fs::remove_file(&path);
        fs::write(&path, data).at("writing", &path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(perm)).at("chmod", &path)
    };
    put(".roost/bin/busybox", 0o755, &fs::read(busybox).at("reading", busybox)?)?;
    for applet in ["sh", "init", "getty", "poweroff", "reboot", "sleep"] {
        let link = stage.join(".roost/bin").join(applet);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("busybox", &link).at("linking", &link)?;
    }
    put("etc/inittab", 0o644, INITTAB.as_bytes())?;
    put(".roost/rc.sysinit", 0o755, RC_SYSINIT.as_bytes())?;
    put(".roost/rc.shutdown", 0o755, RC_SHUTDOWN.as_bytes())?;
    put(".roost/qga", 0o755, RUN_QGA.as_bytes())?;
    put(".roost/acpi/PWRF/00000080", 0o755, POWER_BUTTON.as_bytes())?;
    put("sbin/shutdown", 0o755, SHUTDOWN_SHIM.as_bytes())?;
    // Room to write on top of what the image holds; the qcow2 overlay stores only what
    // changes, so unused space costs nothing.
    let size_mb = du_mb(&stage) + 1024;
    run(
        "mkfs.ext4",
        "e2fsprogs",
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "roost-root", "-E", "root_owner=0:0", "-d"])
            .arg(&stage)
            .arg(tmp.join("base.raw"))
            .arg(format!("{size_mb}M")),
    )?;
    Ok(())
}

/// Megabytes under `dir` (apparent sizes, symlinks not followed).
fn du_mb(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len() + 4096;
            }
        }
    }
    total >> 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_is_newc_and_block_padded() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("init", 0o755, b"#!/bin/sh\n");
        c.symlink("bin/sh", "busybox");
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 512, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
        assert!(text.contains(&format!("{:08x}", 0o100755)));
        // Header (110) + "bin\0" padded to 4 = 116: the second entry starts there.
        assert_eq!(&out[116..122], b"070701");
    }

    #[test]
    fn reads_module_dependencies() {
        let ko = b"\x7fELF....\0license=GPL\0depends=virtio,virtio_ring\0intree=Y\0";
        assert_eq!(modinfo_depends(ko), vec!["virtio", "virtio_ring"]);
        assert!(modinfo_depends(b"\0intree=Y\0").is_empty());
    }
}
