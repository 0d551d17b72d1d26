//! Exec through roost-init (`init/roost-init.rs`), the pid 1 of containers started with
//! the default init: one connection to its socket in the instance directory instead of a
//! `runc exec` (a Go program plus nsexec: tens of milliseconds). The process it forks
//! inherits pid 1's namespaces, cgroup, user, capabilities, no_new_privs and seccomp —
//! what runc exec would give it, as runc exec starts from the same bundle process.
//!
//! The pipes are ours, passed over the socket: nothing relays output. The process's
//! host pid comes from the kernel (SO_PASSCRED on the message it sends before exec), so
//! signals go to it directly; its exit code comes from roost-init, which reaps it.
//! `Ok(None)`: the agent is not there (an older container, or roost-init gone): the
//! caller falls back to `runc exec`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, bind, connect, recv,
    recvmsg, sendmsg, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::runc::classify;
use crate::driver::{ExecProcess, ExecRequest, ExecSession};
use crate::{Error, Result};

/// Where a container's roost-init listens (in its instance directory, on the host).
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("init.sock")
}

/// The listening socket roost-init serves (it gets the descriptor; the path stays on
/// the host, where only we connect).
pub fn listen(path: &Path) -> Result<OwnedFd> {
    let io = |what: &str, e: Errno| Error::io(format!("{what} {}", path.display()), e.into());
    let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| io("creating the socket", e))?;
    let addr = UnixAddr::new(path).map_err(|e| io("naming the socket", e))?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| io("binding", e))?;
    nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(64).expect("backlog"))
        .map_err(|e| io("listening on", e))?;
    Ok(fd)
}

/// Waits until roost-init answers on its socket: the container's pid 1 has left runc's
/// init and runs. Without it a start could return while pid 1 is still `runc init`, and
/// freezing it then (the warm pool pauses right after start) can leave the cgroup v1
/// freezer stuck in FREEZING.
pub async fn wait_ready(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let io = |what: &str, e: Errno| Error::io(format!("roost-init did not answer: {what}"), e.into());
        let conn = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
            .map_err(|e| io("socket", e))?;
        setsockopt(&conn, sockopt::ReceiveTimeout, &TimeVal::new(30, 0)).map_err(|e| io("SO_RCVTIMEO", e))?;
        connect(conn.as_raw_fd(), &UnixAddr::new(&path).map_err(|e| io("address", e))?)
            .map_err(|e| io("connect", e))?;
        nix::sys::socket::send(conn.as_raw_fd(), b"q", MsgFlags::MSG_NOSIGNAL).map_err(|e| io("send", e))?;
        let mut buf = [0u8; 4];
        match recv(conn.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(1) if buf[0] == b'q' => Ok(()),
            Ok(_) => Err(Error::tool("roost-init", "the container's init exited before it served")),
            Err(e) => Err(io("receive", e)),
        }
    })
    .await
    .map_err(|e| Error::io("roost-init", std::io::Error::other(e)))?
}

/// Longest request sent in one message (the rest falls back to `runc exec`).
const MAX_REQUEST: usize = 200 * 1024;

/// Starts `request` through the container's roost-init; `env` is the process's whole
/// environment (the bundle's, with the request's on top).
pub async fn start(socket: &Path, env: Vec<String>, request: &ExecRequest) -> Result<Option<ExecSession>> {
    let socket = socket.to_path_buf();
    let cmd = request.cmd.clone();
    let cwd = request.cwd.clone().unwrap_or_else(|| "/".into());
    let started = tokio::task::spawn_blocking(move || handshake(&socket, &cwd, &cmd, &env))
        .await
        .map_err(|e| Error::io("exec", std::io::Error::other(e)))??;
    let Some(started) = started else { return Ok(None) };
    let stdin = pipe::Sender::from_owned_fd(started.stdin).map_err(|e| Error::io("exec pipes", e))?;
    let stdout = pipe::Receiver::from_owned_fd(started.stdout).map_err(|e| Error::io("exec pipes", e))?;
    let stderr = pipe::Receiver::from_owned_fd(started.stderr).map_err(|e| Error::io("exec pipes", e))?;
    nix::fcntl::fcntl(&started.conn, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
        .map_err(|e| Error::io("exec socket", e.into()))?;
    // SAFETY: the descriptor is ours and stays open as long as the AsyncFd owns it.
    let conn = unsafe { AsyncFd::register_with_interest(started.conn, tokio::io::Interest::READABLE) }
        .map_err(|e| Error::io("exec socket", e.into()))?;
    let process = AgentExec { conn: Some(conn), pid: started.pid };
    Ok(Some(ExecSession::new(Box::new(stdin), Box::new(stdout), Some(Box::new(stderr)), Box::new(process))))
}

struct Started {
    conn: OwnedFd,
    pid: Option<u32>,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

fn encode(cwd: &str, cmd: &[String], env: &[String]) -> Vec<u8> {
    let mut msg = vec![b'r'];
    let put = |msg: &mut Vec<u8>, s: &str| {
        msg.extend_from_slice(&(s.len() as u32).to_le_bytes());
        msg.extend_from_slice(s.as_bytes());
    };
    put(&mut msg, cwd);
    for list in [cmd, env] {
        msg.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for s in list {
            put(&mut msg, s);
        }
    }
    msg
}

/// Connects, sends the request with the child's ends of three pipes, and reads back the
/// child's pid and whether it started. Blocking; a few hundred microseconds.
fn handshake(path: &Path, cwd: &str, cmd: &[String], env: &[String]) -> Result<Option<Started>> {
    let msg = encode(cwd, cmd, env);
    if msg.len() > MAX_REQUEST {
        return Ok(None);
    }
    let io = |what: &str, e: Errno| Error::io(format!("exec through roost-init: {what}"), e.into());
    let conn =
        socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).map_err(|e| io("socket", e))?;
    setsockopt(&conn, sockopt::PassCred, &true).map_err(|e| io("SO_PASSCRED", e))?;
    // A frozen or stuck init never holds an exec forever.
    setsockopt(&conn, sockopt::ReceiveTimeout, &TimeVal::new(30, 0)).map_err(|e| io("SO_RCVTIMEO", e))?;
    let addr = UnixAddr::new(path).map_err(|e| io("address", e))?;
    match connect(conn.as_raw_fd(), &addr) {
        Ok(()) => {}
        // No agent (an older container) or no longer listening: runc exec instead.
        Err(Errno::ENOENT | Errno::ECONNREFUSED) => return Ok(None),
        Err(e) => return Err(io("connect", e)),
    }
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe", e));
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    {
        let fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        match sendmsg::<()>(conn.as_raw_fd(), &[IoSlice::new(&msg)], &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => {}
            Err(Errno::EMSGSIZE) => return Ok(None),
            Err(e) => return Err(io("send", e)),
        }
    }
    // The child's ends live on in the child only: EOF on stdout once it exits.
    drop((in_r, out_w, err_w));
    let mut pid = None;
    loop {
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        let (n, creds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let m = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                .map_err(|e| io("receive", e))?;
            let creds = m.cmsgs().ok().and_then(|mut c| {
                c.find_map(|c| match c {
                    ControlMessageOwned::ScmCredentials(u) => Some(u.pid()),
                    _ => None,
                })
            });
            (m.bytes, creds)
        };
        match buf[..n].first() {
            // The child, before exec: the kernel translated its pid into ours.
            Some(b'p') => pid = creds.filter(|&p| p > 0).map(|p| p as u32),
            Some(b's') => {
                return Ok(Some(Started { conn, pid, stdin: in_w, stdout: out_r, stderr: err_r }));
            }
            Some(b'e') => return Err(classify(String::from_utf8_lossy(&buf[1..n]).into_owned())),
            _ => return Err(Error::tool("roost-init", "the exec agent closed the connection")),
        }
    }
}

struct AgentExec {
    /// `None` once the exit code was read.
    conn: Option<AsyncFd<OwnedFd>>,
    pid: Option<u32>,
}

#[async_trait]
impl ExecProcess for AgentExec {
    fn resize(&self, _rows: u16, _cols: u16) -> Result<()> {
        Err(Error::Conflict("the exec has no terminal to resize".into()))
    }

    fn host_pid(&self) -> Option<u32> {
        self.conn.as_ref().and(self.pid)
    }

    async fn wait(&mut self) -> Result<i32> {
        let Some(conn) = &self.conn else { return Err(Error::Conflict("the exec was waited for already".into())) };
        let mut buf = [0u8; 16];
        let n = loop {
            let mut guard = conn.readable().await.map_err(|e| Error::io("waiting for the exec", e))?;
            match guard.try_io(|fd| recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(std::io::Error::from)) {
                Ok(Ok(n)) => break n,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(Error::io("waiting for the exec", e)),
                Err(_) => continue,
            }
        };
        self.conn = None;
        if n == 5 && buf[0] == b'x' {
            return Ok(i32::from_le_bytes(buf[1..5].try_into().expect("4 bytes")));
        }
        // roost-init went away without telling: the container was killed, and every
        // process in it with SIGKILL.
        Ok(128 + 9)
    }
}
