//! Exit statuses without a monitor process.
//!
//! runc started with `-d` exits as soon as the container runs, so the container's init
//! (and a detached `runc exec`'s process) would be reparented to PID 1 and its exit
//! status lost. [`become_subreaper`] makes this server their new parent instead; we then
//! wait for exactly those pids through pidfds, never with `waitpid(-1)`, which would
//! steal the statuses of the children tokio spawned (runc itself, nft, ...).

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};
use tokio::io::unix::AsyncFd;

/// Makes this process the parent of orphans in its subtree (prctl
/// `PR_SET_CHILD_SUBREAPER`). Process-wide and idempotent.
pub fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// As a shell reports it: the code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// A pidfd: a handle on one process that cannot be confused with a later process
/// reusing its pid.
pub struct PidFd {
    fd: AsyncFd<OwnedFd>,
    pid: u32,
}

impl PidFd {
    /// Opens a pidfd for `pid`. Needs a tokio runtime (the fd is registered with it).
    pub fn open(pid: u32) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // SAFETY: an OwnedFd stays open, and the same fd, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)? };
        Ok(PidFd { fd, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves when the process has exited (a pidfd polls readable then).
    pub async fn exited(&self) -> io::Result<()> {
        let _guard = self.fd.readable().await?;
        Ok(())
    }

    /// Collects the exit status if the process has exited and is our child; `Ok(None)`
    /// while it runs; `ECHILD` when it is not our child (or was reaped already).
    pub fn try_reap(&self) -> io::Result<Option<Exit>> {
        let status =
            nix::sys::wait::waitid(Id::PIDFd(self.fd.get_ref().as_fd()), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG)
                .map_err(io::Error::from)?;
        Ok(match status {
            WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
            WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
            _ => None,
        })
    }

    /// Waits for the exit and collects the status (`ECHILD` when not our child).
    pub async fn wait(&self) -> io::Result<Exit> {
        loop {
            if let Some(exit) = self.try_reap()? {
                return Ok(exit);
            }
            let mut guard = self.fd.readable().await?;
            guard.clear_ready();
        }
    }

    /// Sends a signal to exactly this process.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, no siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}

/// What `/proc/<pid>/stat` says of a process: enough to tell it from a later process
/// with the same pid (the start time) and whether it is a zombie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: u32,
    /// Clock ticks after boot.
    pub start_ticks: u64,
}

impl ProcStat {
    pub fn read(pid: u32) -> Option<ProcStat> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        ProcStat::parse(&text)
    }

    pub fn parse(text: &str) -> Option<ProcStat> {
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let rest = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(ProcStat {
            state: fields.first()?.chars().next()?,
            ppid: fields.get(1)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }

    /// Still running (not a zombie or dead).
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Whether `pid` is still the process that started at `start_ticks` and runs.
pub fn same_process_alive(pid: u32, start_ticks: u64) -> bool {
    ProcStat::read(pid).is_some_and(|s| s.start_ticks == start_ticks && s.alive())
}

/// Reaps `pid` if it is our zombie child started at `start_ticks`: the fallback for an
/// exit no watcher collected (a new driver in the same process, or a runtime that ended).
pub fn reap_zombie(pid: u32, start_ticks: u64) -> Option<Exit> {
    let stat = ProcStat::read(pid)?;
    if stat.start_ticks != start_ticks || stat.alive() || stat.ppid != std::process::id() {
        return None;
    }
    match nix::sys::wait::waitid(
        Id::Pid(nix::unistd::Pid::from_raw(pid as i32)),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
    ) {
        Ok(WaitStatus::Exited(_, code)) => Some(Exit::Code(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(Exit::Signal(sig as i32)),
        _ => None,
    }
}

/// Sends signal `sig` to host process `pid` (an exec the caller started and has not
/// seen end, so the pid is still its own).
pub fn signal(pid: u32, sig: i32) -> std::io::Result<()> {
    let signal = nix::sys::signal::Signal::try_from(sig).map_err(std::io::Error::from)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_names() {
        let text = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200";
        let stat = ProcStat::parse(text).unwrap();
        assert_eq!(stat, ProcStat { state: 'S', ppid: 1, start_ticks: 98765 });
        assert!(stat.alive());
        let zombie = ProcStat::parse("7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0").unwrap();
        assert!(!zombie.alive());
    }

    #[tokio::test]
    async fn waits_for_a_child_through_its_pidfd() {
        // Reaped through the pidfd, not Child::wait: that is what is tested.
        #[allow(clippy::zombie_processes)]
        let child = std::process::Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let pidfd = PidFd::open(child.id()).unwrap();
        assert_eq!(pidfd.wait().await.unwrap(), Exit::Code(7));
        assert_eq!(Exit::Signal(9).code(), 137);
    }
}
