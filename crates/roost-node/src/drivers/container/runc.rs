//! runc, as a subprocess. Every call passes `--root` (Roost's containers live apart
//! from anyone else's runc containers) and `--log` in JSON, where the reason of a
//! failure is read from.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct Runc {
    bin: PathBuf,
    root: PathBuf,
}

impl Runc {
    pub fn new(bin: PathBuf, root: PathBuf) -> Runc {
        Runc { bin, root }
    }

    /// Whether runc keeps state for `id` (a directory per container in its root).
    pub fn has_state(&self, id: &str) -> bool {
        self.root.join(id).join("state.json").exists()
    }

    pub fn command(&self, log: Option<&Path>) -> Command {
        let mut command = Command::new(&self.bin);
        command.arg("--root").arg(&self.root);
        if let Some(log) = log {
            command.arg("--log").arg(log).arg("--log-format").arg("json");
        }
        command.stdin(Stdio::null()).kill_on_drop(false);
        command
    }

    /// `runc run -d`: starts the container and returns once its init runs. Its stdout
    /// and stderr are the given files, which the init inherits: no process sits between
    /// the container and its logs.
    pub async fn run_detached(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        (out, err): (File, File),
        log: &Path,
        init_socket: Option<&OwnedFd>,
    ) -> Result<()> {
        let mut command = self.command(Some(log));
        command.arg("run").arg("--detach");
        if let Some(socket) = init_socket {
            // roost-init's listening socket becomes the container's fd 3.
            let fd = socket.as_raw_fd();
            command.arg("--preserve-fds").arg("1");
            // SAFETY: dup2 and fcntl only, between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if fd != 3 && libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let status = self.spawn(&mut command)?.wait().await.map_err(|e| Error::io("waiting for runc", e))?;
        if status.success() { Ok(()) } else { Err(failure(log, "run")) }
    }

    /// `runc kill`; a container that does not run (or exist) is fine.
    pub async fn kill(&self, id: &str, signal: &str, log: &Path) -> Result<()> {
        let mut command = self.command(Some(log));
        command.arg("kill").arg(id).arg(signal).stdout(Stdio::null()).stderr(Stdio::piped());
        let output = self.output(&mut command).await?;
        if output.status.success() {
            return Ok(());
        }
        let message = String::from_utf8_lossy(&output.stderr);
        if message.contains("not running") || message.contains("does not exist") {
            return Ok(());
        }
        Err(Error::tool("runc", format!("kill {id}: {}", message.trim())))
    }

    /// `runc delete --force`: kills what still runs and forgets the container. Missing
    /// is fine.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let mut command = self.command(None);
        command.arg("delete").arg("--force").arg(id).stdout(Stdio::null()).stderr(Stdio::piped());
        let output = self.output(&mut command).await?;
        let message = String::from_utf8_lossy(&output.stderr);
        if output.status.success() || message.contains("does not exist") {
            return Ok(());
        }
        Err(Error::tool("runc", format!("delete {id}: {}", message.trim())))
    }

    /// The pid of the container's init, as `runc state` reports it (0 when stopped).
    pub async fn state_pid(&self, id: &str) -> Option<u32> {
        let mut command = self.command(None);
        command.arg("state").arg(id).stdout(Stdio::piped()).stderr(Stdio::null());
        let output = self.output(&mut command).await.ok()?;
        let state: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        state["pid"].as_u64().filter(|&pid| pid > 0).map(|pid| pid as u32)
    }

    /// The ids of every container in our root.
    pub async fn list(&self) -> Result<Vec<String>> {
        let mut command = self.command(None);
        command.arg("list").arg("--quiet").stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = self.output(&mut command).await?;
        if !output.status.success() {
            return Err(Error::tool("runc", format!("list: {}", String::from_utf8_lossy(&output.stderr).trim())));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    pub fn spawn(&self, command: &mut Command) -> Result<tokio::process::Child> {
        command.spawn().map_err(|e| self.spawn_error(e))
    }

    async fn output(&self, command: &mut Command) -> Result<std::process::Output> {
        command.output().await.map_err(|e| self.spawn_error(e))
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::missing(format!("runc ({})", self.bin.display()), "runc")
        } else {
            Error::io(format!("running {}", self.bin.display()), e)
        }
    }
}

/// The error runc logged last, as an [`Error`]: a command missing in the image becomes
/// [`Error::CommandNotFound`] (a 4xx for the API, not a server fault).
pub fn failure(log: &Path, action: &str) -> Error {
    classify(last_error(log).unwrap_or_else(|| format!("runc {action} failed (no reason logged)")))
}

/// A start failure's message as an [`Error`] (runc's wording, which roost-init copies).
pub fn classify(message: String) -> Error {
    if is_not_found(&message) {
        return Error::CommandNotFound(message);
    }
    if message.contains("chdir to cwd") {
        return Error::Invalid(message);
    }
    Error::tool("runc", message)
}

fn is_not_found(message: &str) -> bool {
    message.contains("executable file not found")
        || (message.contains("exec:") && message.contains("no such file or directory"))
}

/// The message of the last `"level":"error"` line of a runc JSON log.
pub fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        (value["level"] == "error").then(|| value["msg"].as_str().map(str::to_string)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_error_and_classifies_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runc.log");
        std::fs::write(
            &log,
            concat!(
                "{\"level\":\"error\",\"msg\":\"old\",\"time\":\"t\"}\n",
                "{\"level\":\"warning\",\"msg\":\"meh\",\"time\":\"t\"}\n",
                "{\"level\":\"error\",\"msg\":\"runc run failed: unable to start container process: exec: \\\"nope\\\": executable file not found in $PATH\",\"time\":\"t\"}\n",
            ),
        )
        .unwrap();
        assert!(last_error(&log).unwrap().contains("nope"));
        assert!(matches!(failure(&log, "run"), Error::CommandNotFound(_)));
        assert!(is_not_found("exec: \"/x\": stat /x: no such file or directory"));
        assert!(!is_not_found("cgroup: no such file or directory"));
    }
}
