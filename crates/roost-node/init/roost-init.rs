//! roost-init: the pid 1 of a container started with the default init (sandboxes among
//! them), and its exec agent. Built by roost-node's build script as a static binary (std
//! only, no crates) and bind-mounted read-only at `/dev/.roost-init`.
//!
//! As pid 1 it does what the default shell init did: waits forever, exits 0 on SIGTERM
//! or SIGINT, and reaps every orphan. It also accepts exec requests on fd 3, a listening
//! SOCK_SEQPACKET unix socket the driver made on the host (in the instance directory,
//! outside the container's root) and passed in with `runc run --preserve-fds 1`. Nothing
//! inside the container can reach that socket: its path is not in the container's
//! filesystem and the fd is close-on-exec. A process it forks inherits exactly what runc
//! gave pid 1: namespaces, cgroup, user, capabilities, no_new_privs, seccomp, rlimits.
//!
//! Protocol, one record per message:
//! - host: `q`; init: `q` (it is up: the driver's start returns only then, so a
//!   container is never frozen halfway through runc's init).
//! - host: `r` + cwd + argc + args + envc + env (each string a u32 LE length and its
//!   bytes; counts u32 LE), with SCM_RIGHTS: stdin, stdout, stderr.
//! - child (before exec): `p`; the host reads the child's host pid from the credentials
//!   the kernel attaches (SO_PASSCRED).
//! - init: `s` (started) or `e` + message (did not start: no such command, bad cwd).
//! - init, later: `x` + exit code as i32 LE (128 + signal when killed).

use std::collections::HashMap;
use std::ffi::c_void;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const SIGCHLD: i32 = 17;
const SOCK_CLOEXEC: i32 = 0o2000000;
const MSG_NOSIGNAL: i32 = 0x4000;
const MSG_CMSG_CLOEXEC: i32 = 0x40000000;
const SOL_SOCKET: i32 = 1;
const SO_RCVTIMEO: i32 = 20;
const SCM_RIGHTS: i32 = 1;
const F_SETFD: i32 = 2;
const FD_CLOEXEC: i32 = 1;
const WNOHANG: i32 = 1;
const POLLIN: i16 = 1;
const SFD_CLOEXEC: i32 = 0o2000000;
const EINTR: i32 = 4;
const LISTENER: RawFd = 3;

#[repr(C)]
struct Iovec {
    base: *mut c_void,
    len: usize,
}

#[repr(C)]
struct Msghdr {
    name: *mut c_void,
    namelen: u32,
    iov: *mut Iovec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: i32,
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

unsafe extern "C" {
    fn accept4(fd: i32, addr: *mut c_void, len: *mut u32, flags: i32) -> i32;
    fn recvmsg(fd: i32, msg: *mut Msghdr, flags: i32) -> isize;
    fn send(fd: i32, buf: *const c_void, len: usize, flags: i32) -> isize;
    fn read(fd: i32, buf: *mut c_void, len: usize) -> isize;
    fn close(fd: i32) -> i32;
    fn fcntl(fd: i32, cmd: i32, arg: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const c_void, len: u32) -> i32;
    fn sigemptyset(set: *mut [u64; 16]) -> i32;
    fn sigaddset(set: *mut [u64; 16], sig: i32) -> i32;
    fn sigprocmask(how: i32, set: *const [u64; 16], old: *mut [u64; 16]) -> i32;
    fn signalfd(fd: i32, set: *const [u64; 16], flags: i32) -> i32;
    fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn setsid() -> i32;
    fn __errno_location() -> *mut i32;
}

fn errno() -> i32 {
    // SAFETY: glibc's thread-local errno.
    unsafe { *__errno_location() }
}

fn main() {
    // SAFETY: plain syscalls on values we own.
    let sigfd = unsafe {
        let mut set = [0u64; 16];
        sigemptyset(&mut set);
        for sig in [SIGCHLD, SIGTERM, SIGINT] {
            sigaddset(&mut set, sig);
        }
        // Blocked signals are queued, not ignored, even for a pid 1 without handlers.
        sigprocmask(0 /* SIG_BLOCK */, &set, std::ptr::null_mut());
        signalfd(-1, &set, SFD_CLOEXEC)
    };
    // Without the socket (started by hand, or an fd limit) it is still a good pid 1.
    // SAFETY: fcntl on a descriptor number; fails harmlessly when it is not open.
    let agent = unsafe { fcntl(LISTENER, F_SETFD, FD_CLOEXEC) } == 0;
    let mut running: HashMap<i32, i32> = HashMap::new();
    loop {
        let mut fds = [PollFd { fd: sigfd, events: POLLIN, revents: 0 }, PollFd {
            fd: if agent { LISTENER } else { -1 },
            events: POLLIN,
            revents: 0,
        }];
        // SAFETY: two valid pollfd entries.
        if unsafe { poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if errno() == EINTR {
                continue;
            }
            std::process::exit(1);
        }
        if fds[0].revents != 0 {
            let mut info = [0u8; 128];
            // SAFETY: reads one signalfd_siginfo into a buffer of its size.
            if unsafe { read(sigfd, info.as_mut_ptr().cast(), info.len()) } == 128 {
                let signo = u32::from_ne_bytes(info[..4].try_into().expect("4 bytes")) as i32;
                if signo == SIGTERM || signo == SIGINT {
                    // Like the shell init it replaces: stop on request; the kernel
                    // kills what is left in the namespace.
                    std::process::exit(0);
                }
            }
            reap(&mut running);
        }
        if fds[1].revents != 0 {
            // SAFETY: accept on our listening socket.
            let conn = unsafe { accept4(LISTENER, std::ptr::null_mut(), std::ptr::null_mut(), SOCK_CLOEXEC) };
            if conn >= 0 {
                match serve(conn) {
                    Some(pid) => {
                        running.insert(pid, conn);
                    }
                    None => {
                        // SAFETY: our descriptor.
                        unsafe { close(conn) };
                    }
                }
            }
        }
    }
}

/// Reaps every exited child (orphans included); tells the host about its execs.
fn reap(running: &mut HashMap<i32, i32>) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
        if pid <= 0 {
            return;
        }
        if let Some(conn) = running.remove(&pid) {
            let code = if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) };
            let mut msg = vec![b'x'];
            msg.extend_from_slice(&code.to_le_bytes());
            reply(conn, &msg);
            // SAFETY: our descriptor, closed once.
            unsafe { close(conn) };
        }
    }
}

fn reply(conn: i32, msg: &[u8]) {
    // SAFETY: sends our buffer; MSG_NOSIGNAL: a host that went away is no SIGPIPE.
    unsafe { send(conn, msg.as_ptr().cast(), msg.len(), MSG_NOSIGNAL) };
}

struct Request {
    cwd: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdio: Vec<OwnedFd>,
}

/// Reads one request and starts it; the pid when it runs.
fn serve(conn: i32) -> Option<i32> {
    // A host that connects and sends nothing does not hold pid 1 up for long.
    let timeout = Timeval { sec: 5, usec: 0 };
    // SAFETY: a timeval of the right size.
    unsafe {
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, (&timeout as *const Timeval).cast(), size_of::<Timeval>() as u32)
    };
    let request = receive(conn)?;
    match start(conn, request) {
        Ok(pid) => {
            reply(conn, b"s");
            Some(pid)
        }
        Err(message) => {
            let mut msg = vec![b'e'];
            msg.extend_from_slice(message.as_bytes());
            reply(conn, &msg);
            None
        }
    }
}

fn receive(conn: i32) -> Option<Request> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut control = [0u64; 8];
    let mut iov = Iovec { base: buf.as_mut_ptr().cast(), len: buf.len() };
    let mut msg = Msghdr {
        name: std::ptr::null_mut(),
        namelen: 0,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen: size_of_val(&control),
        flags: 0,
    };
    // SAFETY: a msghdr pointing at our buffers.
    let n = unsafe { recvmsg(conn, &mut msg, MSG_CMSG_CLOEXEC) };
    // The descriptors first, so they are closed whatever else is wrong.
    let mut stdio = Vec::new();
    if msg.controllen >= 16 {
        let bytes: &[u8] = bytemuck(&control);
        let len = usize::from_ne_bytes(bytes[..8].try_into().ok()?);
        let level = i32::from_ne_bytes(bytes[8..12].try_into().ok()?);
        let typ = i32::from_ne_bytes(bytes[12..16].try_into().ok()?);
        if level == SOL_SOCKET && typ == SCM_RIGHTS {
            for chunk in bytes[16..len.min(bytes.len())].chunks_exact(4) {
                let fd = i32::from_ne_bytes(chunk.try_into().ok()?);
                // SAFETY: the kernel just gave us this descriptor.
                stdio.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    // A readiness probe (the driver's start waits for it): pid 1 runs and serves.
    if n > 0 && buf[0] == b'q' {
        reply(conn, b"q");
        return None;
    }
    if n <= 0 || stdio.len() != 3 || buf[0] != b'r' {
        return None;
    }
    let mut rest = &buf[1..n as usize];
    let cwd = string(&mut rest)?;
    let argc = word(&mut rest)?;
    let args = (0..argc).map(|_| string(&mut rest)).collect::<Option<Vec<_>>>()?;
    let envc = word(&mut rest)?;
    let mut env = Vec::new();
    for _ in 0..envc {
        let kv = string(&mut rest)?;
        let (k, v) = kv.split_once('=')?;
        env.push((k.to_string(), v.to_string()));
    }
    if args.is_empty() {
        return None;
    }
    Some(Request { cwd, args, env, stdio })
}

fn word(rest: &mut &[u8]) -> Option<u32> {
    let (head, tail) = rest.split_at_checked(4)?;
    *rest = tail;
    Some(u32::from_le_bytes(head.try_into().ok()?))
}

fn string(rest: &mut &[u8]) -> Option<String> {
    let len = word(rest)? as usize;
    let (head, tail) = rest.split_at_checked(len)?;
    *rest = tail;
    String::from_utf8(head.to_vec()).ok()
}

fn bytemuck(words: &[u64; 8]) -> &[u8] {
    // SAFETY: u64s viewed as their bytes, same lifetime.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast(), size_of_val(words)) }
}

/// Forks and execs the request; runc's error wording, so the host classifies both alike.
fn start(conn: i32, request: Request) -> Result<i32, String> {
    let Request { cwd, args, env, stdio } = request;
    if !std::path::Path::new(&cwd).is_dir() {
        return Err(format!("chdir to cwd ({cwd:?}) set in config.json failed: no such file or directory"));
    }
    let mut stdio = stdio.into_iter();
    let (stdin, stdout, stderr) = (stdio.next().expect("3"), stdio.next().expect("3"), stdio.next().expect("3"));
    let mut command = Command::new(&args[0]);
    command
        .args(&args[1..])
        .env_clear()
        .envs(env)
        .current_dir(&cwd)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // The signals pid 1 blocks (to read them from its signalfd) are not the
            // child's business: it starts with none blocked.
            let mut none = [0u64; 16];
            sigemptyset(&mut none);
            sigprocmask(2 /* SIG_SETMASK */, &none, std::ptr::null_mut());
            // As runc does for every process it starts: its own session.
            setsid();
            // The kernel attaches our pid (as the host sees it) to this message.
            if send(conn, b"p".as_ptr().cast(), 1, MSG_NOSIGNAL) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match command.spawn() {
        Ok(child) => Ok(child.id() as i32),
        Err(e) => {
            let program = &args[0];
            Err(match e.raw_os_error() {
                Some(2) if !program.contains('/') => {
                    format!("exec: {program:?}: executable file not found in $PATH")
                }
                Some(2) => format!("exec: {program:?}: stat {program}: no such file or directory"),
                _ => format!("exec: {program:?}: {e}"),
            })
        }
    }
}
