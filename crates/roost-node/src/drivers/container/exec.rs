//! Exec without a relay: `runc exec --detach` starts the process and exits, so the
//! process is reparented to us (the subreaper). Without a terminal it keeps the pipes
//! runc was given, which are ours; with one, runc hands us the pty master over a
//! console socket. Either way nothing stays between the caller and the process, and
//! its exit status comes from its pidfd.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use oci_spec::runtime::{BoxBuilder, Spec};
use tokio::net::UnixListener;

use super::bundle::merge_env;
use super::runc::{Runc, failure};
use crate::driver::{ExecProcess, ExecRequest, ExecSession};
use crate::error::IoContext;
use crate::pty::{self, PtyMaster};
use crate::reaper::PidFd;
use crate::{Error, Result};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The files of one exec, removed when it has started.
struct ExecFiles {
    process: PathBuf,
    pid: PathBuf,
    socket: PathBuf,
}

impl ExecFiles {
    fn new(dir: &Path) -> ExecFiles {
        let n = format!("{}-{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed));
        let mut socket = dir.join(format!("{n}.sock"));
        // A unix socket path has room for 107 bytes; a deep data directory may not fit.
        if socket.as_os_str().len() > 100 {
            socket = std::env::temp_dir().join(format!("roost-exec-{n}.sock"));
        }
        ExecFiles { process: dir.join(format!("{n}.json")), pid: dir.join(format!("{n}.pid")), socket }
    }
}

impl Drop for ExecFiles {
    fn drop(&mut self) {
        for path in [&self.process, &self.pid, &self.socket] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts `request` in the running container `id` whose bundle is `bundle`.
pub async fn start(runc: &Runc, id: &str, bundle: &Path, log: &Path, request: ExecRequest) -> Result<ExecSession> {
    if request.cmd.is_empty() {
        return Err(Error::Invalid("exec needs a command".into()));
    }
    let dir = bundle.join("exec");
    std::fs::create_dir_all(&dir).at("creating", &dir)?;
    let files = ExecFiles::new(&dir);
    write_process(bundle, &request, &files.process)?;

    let mut command = runc.command(Some(log));
    command.arg("exec").arg("--detach").arg("--pid-file").arg(&files.pid).arg("--process").arg(&files.process);
    if request.tty {
        let listener = UnixListener::bind(&files.socket).at("creating console socket", &files.socket)?;
        command.arg("--console-socket").arg(&files.socket).arg(id);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = runc.spawn(&mut command)?;
        let master = tokio::select! {
            master = pty::receive_master(&listener) => Some(master.map_err(|e| Error::io("receiving the exec's terminal", e))?),
            status = child.wait() => {
                let status = status.map_err(|e| Error::io("waiting for runc", e))?;
                if !status.success() {
                    return Err(failure(log, "exec"));
                }
                None
            }
        };
        let status = child.wait().await.map_err(|e| Error::io("waiting for runc", e))?;
        if !status.success() {
            return Err(failure(log, "exec"));
        }
        let master = match master {
            Some(master) => master,
            None => pty::receive_master(&listener).await.map_err(|e| Error::io("receiving the exec's terminal", e))?,
        };
        let pty = PtyMaster::new(master).map_err(|e| Error::io("setting up the exec's terminal", e))?;
        if request.rows > 0 && request.cols > 0 {
            pty.resize(request.rows, request.cols).map_err(|e| Error::io("sizing the exec's terminal", e))?;
        }
        let pidfd = open_pidfd(&files.pid)?;
        let process = RuncExec { pidfd: Some(pidfd), pty: Some(pty.clone()) };
        return Ok(ExecSession::new(Box::new(pty.clone()), Box::new(pty), None, Box::new(process)));
    }

    command.arg(id).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = runc.spawn(&mut command)?;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let status = child.wait().await.map_err(|e| Error::io("waiting for runc", e))?;
    if !status.success() {
        return Err(failure(log, "exec"));
    }
    let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
        return Err(Error::io("exec", std::io::Error::other("missing pipes")));
    };
    let pidfd = open_pidfd(&files.pid)?;
    Ok(ExecSession::new(
        Box::new(stdin),
        Box::new(stdout),
        Some(Box::new(stderr)),
        Box::new(RuncExec { pidfd: Some(pidfd), pty: None }),
    ))
}

/// The exec's process: the container's process with the request's command, environment
/// and directory (runc takes a whole process with `--process`, so we start from the
/// bundle's: same user, capabilities, limits).
fn write_process(bundle: &Path, request: &ExecRequest, target: &Path) -> Result<()> {
    let mut process = bundle_process(bundle)?;
    process.set_args(Some(request.cmd.clone()));
    process.set_env(Some(process_env(&process, request)));
    process.set_cwd(request.cwd.clone().unwrap_or_else(|| "/".into()).into());
    process.set_terminal(Some(request.tty));
    if request.tty && request.rows > 0 && request.cols > 0 {
        let size = BoxBuilder::default()
            .height(request.rows as u64)
            .width(request.cols as u64)
            .build()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        process.set_console_size(Some(size));
    }
    let json = serde_json::to_vec(&process).expect("process serializes");
    std::fs::write(target, json).at("writing", target)
}

/// The bundle's process (user, capabilities, environment of the container's init).
pub fn bundle_process(bundle: &Path) -> Result<oci_spec::runtime::Process> {
    let config = bundle.join("config.json");
    let spec = Spec::load(&config)
        .map_err(|e| Error::io(format!("reading {}", config.display()), std::io::Error::other(e)))?;
    spec.process().clone().ok_or_else(|| Error::Invalid("bundle without a process".into()))
}

/// An exec's environment: the bundle's, with the request's on top.
pub fn process_env(process: &oci_spec::runtime::Process, request: &ExecRequest) -> Vec<String> {
    let mut env: Vec<(String, String)> = process
        .env()
        .clone()
        .unwrap_or_default()
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    merge_env(&mut env, &request.env);
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn open_pidfd(pid_file: &Path) -> Result<PidFd> {
    let text = std::fs::read_to_string(pid_file).at("reading", pid_file)?;
    let pid: u32 =
        text.trim().parse().map_err(|_| Error::tool("runc", format!("bad pid file {}", pid_file.display())))?;
    PidFd::open(pid).map_err(|e| Error::io(format!("watching exec process {pid}"), e))
}

struct RuncExec {
    /// `None` once reaped.
    pidfd: Option<PidFd>,
    pty: Option<PtyMaster>,
}

impl Drop for RuncExec {
    /// The process is our child: a session dropped without `wait` must still have it
    /// reaped when it ends, or it stays a zombie as long as the server runs.
    fn drop(&mut self) {
        if let Some(pidfd) = self.pidfd.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = pidfd.wait().await;
            });
        }
    }
}

#[async_trait]
impl ExecProcess for RuncExec {
    fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        match &self.pty {
            Some(pty) => pty.resize(rows, cols).map_err(|e| Error::io("resizing the terminal", e)),
            None => Err(Error::Conflict("the exec has no terminal to resize".into())),
        }
    }

    fn host_pid(&self) -> Option<u32> {
        self.pidfd.as_ref().map(|p| p.pid())
    }

    fn resizer(&self) -> Option<crate::driver::Resizer> {
        let pty = self.pty.clone()?;
        Some(std::sync::Arc::new(move |rows, cols| {
            pty.resize(rows, cols).map_err(|e| Error::io("resizing the terminal", e))
        }))
    }

    async fn wait(&mut self) -> Result<i32> {
        let Some(pidfd) = &self.pidfd else { return Err(Error::Conflict("the exec was waited for already".into())) };
        let exit = pidfd.wait().await.map_err(|e| {
            Error::io(format!("waiting for exec process {} (is the server a subreaper?)", pidfd.pid()), e)
        })?;
        self.pidfd = None;
        Ok(exit.code())
    }
}
