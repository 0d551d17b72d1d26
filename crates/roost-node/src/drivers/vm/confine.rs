//! QEMU, confined. QEMU parses what a guest sends it (virtio rings, device registers),
//! so an escape from the guest lands in the QEMU process: it must hold as little as
//! possible.
//!
//! - **An unprivileged user** (`roost-qemu`, a system user made on first use): QEMU is
//!   started as that user rather than dropping to it with `-runas`, because QEMU 7.2's
//!   `-sandbox elevateprivileges=deny` blocks the `setuid` that `-runas` needs (measured:
//!   QEMU dies of SIGSYS).
//! - **Nothing opened by path.** The driver opens every file QEMU needs as root (kernel,
//!   initrd, disks, the console log), makes its sockets (QMP, console, guest agent) and
//!   opens its taps, and hands them over as file descriptors (`-add-fd` sets for disks
//!   and the log, `fd=` for sockets and taps, `/proc/self/fd/N` for the kernel and
//!   initrd). So QEMU needs no access to the data directory at all.
//! - **A `/dev` of its own**: a private mount namespace with a tmpfs on `/dev` holding
//!   `null`, `zero`, `full`, `random`, `urandom` and, under KVM, a `kvm` node owned by the
//!   QEMU user (the host's `/dev/kvm` may be root's alone).
//! - **`-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny`**
//!   (QEMU's seccomp filter). `spawn=deny` forbids fork, which `-daemonize` needs: QEMU is
//!   not daemonized but started in its own session, and is ready once QMP answers.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::{Error, Result};

/// QEMU's own seccomp filter, every optional part denied.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// Most descriptors handed to one QEMU (3 sockets, kernel, initrd, log, disks, taps).
pub const MAX_FDS: usize = 64;

/// The user QEMU runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuUser {
    pub uid: u32,
    pub gid: u32,
}

impl QemuUser {
    /// The user `name`, made as a system user (no home, no shell) when it is missing.
    pub fn ensure(name: &str) -> Result<QemuUser> {
        if let Some(user) = lookup(name)? {
            return Ok(user);
        }
        let out = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
            .arg(name)
            .output()
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Error::missing("useradd", "passwd")
                } else {
                    Error::io("running useradd", e)
                }
            })?;
        // Another driver may have made it meanwhile.
        if let Some(user) = lookup(name)? {
            return Ok(user);
        }
        Err(Error::tool("useradd", String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// The user's uid and gid from the password database (`/etc/passwd`).
fn lookup(name: &str) -> Result<Option<QemuUser>> {
    let text = std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("reading /etc/passwd", e))?;
    Ok(text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some(QemuUser { uid: f[2].parse().ok()?, gid: f[3].parse().ok()? }))?
    }))
}

/// The descriptors handed to QEMU, numbered from 3 in the order they are added.
#[derive(Default)]
pub struct Handover {
    fds: Vec<OwnedFd>,
}

impl Handover {
    /// Adds `fd`; its number in QEMU.
    pub fn add(&mut self, fd: OwnedFd) -> Result<i32> {
        if self.fds.len() >= MAX_FDS {
            return Err(Error::Invalid(format!("a VM takes at most {MAX_FDS} files (disks, NICs)")));
        }
        self.fds.push(fd);
        Ok(2 + self.fds.len() as i32)
    }

    pub fn raw(&self) -> Vec<RawFd> {
        use std::os::fd::AsRawFd;
        self.fds.iter().map(|f| f.as_raw_fd()).collect()
    }
}

/// Opens the persistent tap `name` (made by the driver) for QEMU, with virtio-net
/// headers, as `-netdev tap,fd=` wants it.
pub fn open_tap(name: &str) -> Result<OwnedFd> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    // SAFETY: plain system calls on a descriptor we own; `ifr` is zeroed and sized.
    unsafe {
        let fd = libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(Error::io("opening /dev/net/tun", io::Error::last_os_error()));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (slot, b) in ifr.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
            *slot = b as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        if libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), TUNSETIFF, &ifr) < 0 {
            return Err(Error::io(format!("opening tap {name}"), io::Error::last_os_error()));
        }
        Ok(fd)
    }
}

/// What the child does between fork and exec (async-signal-safe calls only, no
/// allocation): its own session; `fds` as 3, 4, ...; a private `/dev`; then the QEMU
/// user, with no supplementary groups.
///
/// # Safety
/// Only to be called in the child of a fork, before exec.
pub unsafe fn enter(fds: &[RawFd], kvm: Option<libc::dev_t>, user: QemuUser) -> io::Result<()> {
    let check = |r: libc::c_int| if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) };
    unsafe {
        check(libc::setsid())?;
        // Above every target number first, so no dup2 overwrites a source.
        let mut high = [0 as RawFd; MAX_FDS];
        for (i, &fd) in fds.iter().enumerate().take(MAX_FDS) {
            high[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3 + MAX_FDS as libc::c_int);
            check(high[i])?;
        }
        for (i, &fd) in high.iter().enumerate().take(fds.len().min(MAX_FDS)) {
            check(libc::dup2(fd, 3 + i as libc::c_int))?;
            libc::close(fd);
        }
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            c"tmpfs".as_ptr(),
            c"/dev".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            c"mode=0755,size=65536".as_ptr().cast(),
        ))?;
        let nodes: [(&CStr, u32, u32); 5] = [
            (c"/dev/null", 1, 3),
            (c"/dev/zero", 1, 5),
            (c"/dev/full", 1, 7),
            (c"/dev/random", 1, 8),
            (c"/dev/urandom", 1, 9),
        ];
        for (path, major, minor) in nodes {
            check(libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(major, minor)))?;
            check(libc::chmod(path.as_ptr(), 0o666))?;
        }
        if let Some(dev) = kvm {
            check(libc::mknod(c"/dev/kvm".as_ptr(), libc::S_IFCHR | 0o600, dev))?;
            check(libc::chown(c"/dev/kvm".as_ptr(), user.uid, user.gid))?;
        }
        check(libc::setgroups(0, std::ptr::null()))?;
        check(libc::setresgid(user.gid, user.gid, user.gid))?;
        check(libc::setresuid(user.uid, user.uid, user.uid))?;
    }
    Ok(())
}
