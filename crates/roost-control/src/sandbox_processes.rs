//! Roost's own API for a sandbox's processes and files (`/v1/sandboxes/{id}/processes`,
//! `/files`, `/dirs`): the same process table and exec-based file operations the E2B
//! listener uses, with Roost's access checks and audit entries.

use std::sync::Arc;

use roost_api::ErrorCode;
use roost_api::sandboxes::{
    ProcessSignal, SandboxFileEntry, SandboxProcess as ProcessInfo, StartSandboxProcessRequest,
};
use roost_api::tokens::Scope;

use crate::error::{Validator, check_no_nul};
use crate::sandboxes::{ProcessEvent, SandboxProcess, SandboxView};
use crate::{Control, Error, Principal, RequestContext, Result};

/// A relative path is relative to the home of the user commands run as (as in E2B).
pub fn resolve_path(path: &str) -> Result<String> {
    resolve_field("path", path)
}

/// [`resolve_path`] for the request field `field` (named in the error).
pub fn resolve_field(field: &str, path: &str) -> Result<String> {
    let mut v = Validator::default();
    v.check(!path.is_empty(), field, "is required");
    check_no_nul(&mut v, field, path);
    v.finish()?;
    Ok(if path.starts_with('/') { path.to_string() } else { format!("/root/{path}") })
}

/// `find -printf` format of one entry: type, size, mode (octal), permissions, owner,
/// group, mtime, symlink target, path; NUL-terminated.
const FIND_FORMAT: &str = "%y\t%s\t%m\t%M\t%u\t%g\t%T@\t%l\t%p\\0";

/// Entries printed by `find -printf FIND_FORMAT`.
pub fn parse_entries(out: &[u8]) -> Vec<SandboxFileEntry> {
    out.split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .filter_map(|r| {
            let line = String::from_utf8_lossy(r);
            let f: Vec<&str> = line.splitn(9, '\t').collect();
            if f.len() != 9 {
                return None;
            }
            let kind = match f[0] {
                "d" => "dir",
                "l" => "symlink",
                _ => "file",
            };
            let secs: f64 = f[6].parse().unwrap_or(0.0);
            let nanos = (secs.fract() * 1e9).round().min(999_999_999.0) as u32;
            let modified_at = chrono::DateTime::from_timestamp(secs.trunc() as i64, nanos).unwrap_or_default();
            let path = f[8].to_string();
            Some(SandboxFileEntry {
                name: path.rsplit('/').next().unwrap_or(&path).to_string(),
                kind: kind.into(),
                size: f[1].parse().unwrap_or(0),
                mode: u32::from_str_radix(f[2], 8).unwrap_or(0),
                permissions: f[3].to_string(),
                owner: f[4].to_string(),
                group: f[5].to_string(),
                modified_at,
                symlink_target: (f[0] == "l").then(|| f[7].to_string()),
                path,
            })
        })
        .collect()
}

fn fs_error(path: &str, stderr: &[u8]) -> Error {
    let text = String::from_utf8_lossy(stderr).trim().to_string();
    if text.contains("No such file") {
        Error::not_found("path", path)
    } else {
        Error::new(ErrorCode::InvalidRequest, text)
    }
}

/// A process a caller asks a sandbox to run.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    pub cmd: String,
    pub args: Vec<String>,
    pub env: std::collections::BTreeMap<String, String>,
    /// `/root` when none is given.
    pub cwd: Option<String>,
    pub tag: Option<String>,
    /// A terminal of (rows, cols).
    pub pty: Option<(u16, u16)>,
}

fn info(p: &SandboxProcess) -> ProcessInfo {
    ProcessInfo {
        pid: p.pid,
        tag: p.tag.clone(),
        cmd: p.cmd.clone(),
        args: p.args.clone(),
        cwd: p.cwd.clone(),
        started_at: chrono::DateTime::from_timestamp_millis(p.started_at).unwrap_or_default(),
    }
}

impl Control {
    /// A sandbox the caller may run commands in (a viewer or a read-only token gets 403).
    async fn exec_sandbox(&self, p: &Principal, id: &str) -> Result<SandboxView> {
        p.require_scope(Scope::Write)?;
        self.writable_sandbox(p, id).await
    }

    async fn audit_sandbox(
        &self,
        ctx: &RequestContext,
        view: &SandboxView,
        action: &str,
        body: &serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.change(ctx, view.write_proof()?).await?;
        tx.audit(action, Some(("sandbox", &view.row.id)), Some(body)).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- the sandbox file and process service: E2B's envd and Roost's /v1 both call
    // these with a view their own authentication resolved, so the rules and the audit
    // entries are the same whichever door a request came through ----

    /// Starts a process a caller asked for; audited (`sandbox.process.start`). The
    /// receiver sees everything it prints.
    pub async fn sandbox_process_start(
        &self,
        ctx: &RequestContext,
        view: &SandboxView,
        spec: ProcessSpec,
    ) -> Result<(Arc<SandboxProcess>, tokio::sync::broadcast::Receiver<ProcessEvent>)> {
        view.write_proof()?;
        // What reaches the node as a command line, environment or directory: a NUL byte
        // cannot be passed there, so it is the caller's mistake (400), never a 500.
        let mut v = Validator::default();
        v.check(!spec.cmd.trim().is_empty(), "cmd", "is required");
        check_no_nul(&mut v, "cmd", &spec.cmd);
        for arg in &spec.args {
            check_no_nul(&mut v, "args", arg);
        }
        for (key, value) in &spec.env {
            check_no_nul(&mut v, "env", key);
            check_no_nul(&mut v, "env", value);
        }
        if let Some(cwd) = &spec.cwd {
            check_no_nul(&mut v, "cwd", cwd);
        }
        v.finish()?;
        if spec.tag.as_deref().is_some_and(|t| t.starts_with(crate::sandbox_watch::WATCHER_TAG_PREFIX)) {
            return Err(Error::invalid("that tag prefix is reserved"));
        }
        if let Some((rows, cols)) = spec.pty
            && (rows == 0 || cols == 0 || rows > 1000 || cols > 1000)
        {
            return Err(Error::invalid("pty.size: rows and cols must be between 1 and 1000"));
        }
        let cwd = spec.cwd.filter(|c| !c.is_empty()).or_else(|| Some("/root".into()));
        let (cmd, args) = (spec.cmd.clone(), spec.args.clone());
        let started = self.start_sandbox_process(view, spec.cmd, spec.args, spec.env, cwd, spec.tag, spec.pty).await?;
        // The command line is the caller's own; env values may be secrets, so not those.
        let body = serde_json::json!({"pid": started.0.pid, "cmd": cmd, "args": args, "pty": spec.pty.is_some()});
        self.audit_sandbox(ctx, view, "sandbox.process.start", &body).await?;
        Ok(started)
    }

    /// Sends a signal to a process; audited (`sandbox.process.signal`).
    pub async fn sandbox_process_signal(
        &self,
        ctx: &RequestContext,
        view: &SandboxView,
        process: &SandboxProcess,
        signal: i32,
    ) -> Result<()> {
        view.write_proof()?;
        process.signal(signal)?;
        let body = serde_json::json!({"pid": process.pid, "signal": signal});
        self.audit_sandbox(ctx, view, "sandbox.process.signal", &body).await
    }

    /// One entry (a file, a directory, a link).
    pub async fn sandbox_stat(&self, view: &SandboxView, path: &str) -> Result<SandboxFileEntry> {
        let path = resolve_path(path)?;
        let (out, err, code) =
            self.sandbox_run(view, &["find", &path, "-maxdepth", "0", "-printf", FIND_FORMAT]).await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        parse_entries(&out).into_iter().next().ok_or_else(|| Error::not_found("path", &path))
    }

    /// The entries of a directory, `depth` levels down (at least one).
    pub async fn sandbox_entries(&self, view: &SandboxView, path: &str, depth: u32) -> Result<Vec<SandboxFileEntry>> {
        let path = resolve_path(path)?;
        if self.sandbox_stat(view, &path).await?.kind != "dir" {
            return Err(Error::invalid(format!("'{path}' is not a directory")));
        }
        let depth = depth.clamp(1, 64).to_string();
        let (out, err, code) = self
            .sandbox_run(view, &["find", &path, "-mindepth", "1", "-maxdepth", &depth, "-printf", FIND_FORMAT])
            .await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        Ok(parse_entries(&out))
    }

    /// Writes a file (parents made) from `data` as it arrives, at most `max` bytes;
    /// audited (`sandbox.files.write`). Returns the size written.
    pub async fn sandbox_write_file(
        &self,
        ctx: &RequestContext,
        view: &SandboxView,
        path: &str,
        data: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        max: u64,
    ) -> Result<u64> {
        view.write_proof()?;
        let path = resolve_path(path)?;
        let size = self.sandbox_write_from(view, &path, data, max).await?;
        let body = serde_json::json!({"path": path, "size": size});
        self.audit_sandbox(ctx, view, "sandbox.files.write", &body).await?;
        Ok(size)
    }

    /// Removes a file or a directory with its contents (never `/`); audited.
    pub async fn sandbox_remove_path(&self, ctx: &RequestContext, view: &SandboxView, path: &str) -> Result<()> {
        view.write_proof()?;
        let path = resolve_path(path)?;
        if path.trim_end_matches('/').is_empty() {
            return Err(Error::invalid("refusing to remove /"));
        }
        self.sandbox_stat(view, &path).await?;
        let (_, err, code) = self.sandbox_run(view, &["rm", "-rf", "--", &path]).await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        self.audit_sandbox(ctx, view, "sandbox.files.remove", &serde_json::json!({"path": path})).await
    }

    /// Makes a directory and its parents; 409 if something is there already; audited.
    pub async fn sandbox_make_dir(
        &self,
        ctx: &RequestContext,
        view: &SandboxView,
        path: &str,
    ) -> Result<SandboxFileEntry> {
        view.write_proof()?;
        let path = resolve_path(path)?;
        if self.sandbox_run(view, &["test", "-e", &path]).await?.2 == 0 {
            return Err(Error::conflict(format!("'{path}' already exists")));
        }
        let (_, err, code) = self.sandbox_run(view, &["mkdir", "-p", "--", &path]).await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        self.audit_sandbox(ctx, view, "sandbox.files.mkdir", &serde_json::json!({"path": path})).await?;
        self.sandbox_stat(view, &path).await
    }

    /// Moves or renames a file or directory; audited.
    pub async fn sandbox_move_path(
        &self,
        ctx: &RequestContext,
        view: &SandboxView,
        from: &str,
        to: &str,
    ) -> Result<SandboxFileEntry> {
        view.write_proof()?;
        let (from, to) = (resolve_field("from", from)?, resolve_field("to", to)?);
        let (_, err, code) = self.sandbox_run(view, &["mv", "-T", "--", &from, &to]).await?;
        if code != 0 {
            return Err(fs_error(&from, &err));
        }
        let body = serde_json::json!({"from": from, "to": to});
        self.audit_sandbox(ctx, view, "sandbox.files.move", &body).await?;
        self.sandbox_stat(view, &to).await
    }

    // ---- Roost's /v1 (by sandbox id, with Roost's principal) ----

    /// Processes running in a sandbox (watches, which run as processes, left out).
    pub async fn list_sandbox_processes(&self, p: &Principal, id: &str) -> Result<Vec<ProcessInfo>> {
        let view = self.sandbox(p, id).await?;
        Ok(self
            .sandbox_processes(&view.row.id)
            .iter()
            .filter(|p| !p.tag.as_deref().is_some_and(|t| t.starts_with(crate::sandbox_watch::WATCHER_TAG_PREFIX)))
            .map(|p| info(p))
            .collect())
    }

    /// Starts a process in the background and returns at once.
    pub async fn start_background_process(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        req: StartSandboxProcessRequest,
    ) -> Result<ProcessInfo> {
        let view = self.exec_sandbox(p, id).await?;
        let spec = ProcessSpec { cmd: req.cmd, args: req.args, env: req.env, cwd: req.cwd, tag: req.tag, pty: None };
        let (process, _rx) = self.sandbox_process_start(ctx, &view, spec).await?;
        if !req.stdin {
            process.close_stdin().await;
        }
        Ok(info(&process))
    }

    /// Sends a signal to a running process.
    pub async fn signal_sandbox_process(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        pid: u32,
        signal: &ProcessSignal,
    ) -> Result<()> {
        let view = self.exec_sandbox(p, id).await?;
        let number = signal.number().ok_or_else(|| Error::invalid(format!("unknown signal {signal:?}")))?;
        let process = self.sandbox_process(&view.row.id, Some(pid), None)?;
        self.sandbox_process_signal(ctx, &view, &process, number).await
    }

    /// A running or recently ended process to attach to (its output can be replayed
    /// and, while it runs, stdin written: so only for callers who may run commands).
    pub async fn attach_sandbox_process(&self, p: &Principal, id: &str, pid: u32) -> Result<Arc<SandboxProcess>> {
        let view = self.exec_sandbox(p, id).await?;
        self.sandbox_process_any(&view.row.id, pid)
    }

    /// The entries of a directory, directories first (reading files runs commands in
    /// the sandbox, so it needs the right to run them).
    pub async fn sandbox_list_dir(&self, p: &Principal, id: &str, path: &str) -> Result<Vec<SandboxFileEntry>> {
        let view = self.exec_sandbox(p, id).await?;
        let mut entries = self.sandbox_entries(&view, path, 1).await?;
        entries.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
        Ok(entries)
    }

    /// A file's contents, streamed.
    pub async fn sandbox_download(&self, p: &Principal, id: &str, path: &str) -> Result<crate::sandboxes::FileChunks> {
        let view = self.exec_sandbox(p, id).await?;
        self.sandbox_read_file(&view, &resolve_path(path)?).await
    }

    /// Writes a file (parents made) from `data` as it arrives, at most `max` bytes.
    pub async fn sandbox_upload(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        path: &str,
        data: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        max: u64,
    ) -> Result<()> {
        let view = self.exec_sandbox(p, id).await?;
        self.sandbox_write_file(ctx, &view, path, data, max).await.map(|_| ())
    }

    /// Removes a file or a directory with its contents.
    pub async fn sandbox_remove(&self, ctx: &RequestContext, p: &Principal, id: &str, path: &str) -> Result<()> {
        let view = self.exec_sandbox(p, id).await?;
        self.sandbox_remove_path(ctx, &view, path).await
    }

    /// Makes a directory and its parents; 409 if something is there already.
    pub async fn sandbox_mkdir(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        path: &str,
    ) -> Result<SandboxFileEntry> {
        let view = self.exec_sandbox(p, id).await?;
        self.sandbox_make_dir(ctx, &view, path).await
    }

    /// Moves or renames a file or directory.
    pub async fn sandbox_move(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        from: &str,
        to: &str,
    ) -> Result<SandboxFileEntry> {
        let view = self.exec_sandbox(p, id).await?;
        self.sandbox_move_path(ctx, &view, from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandboxes::Recent;

    #[test]
    fn find_output_becomes_entries() {
        let out = b"d\t4096\t755\tdrwxr-xr-x\troot\troot\t1700000000.5\t\t/root/dir\0f\t3\t644\t-rw-r--r--\troot\troot\t1700000000.0\t\t/root/a.txt\0l\t4\t777\tlrwxrwxrwx\troot\troot\t1.0\t/etc\t/root/ln\0";
        let e = parse_entries(out);
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].name.as_str(), e[0].kind.as_str(), e[0].mode), ("dir", "dir", 0o755));
        assert_eq!((e[1].name.as_str(), e[1].size, e[1].symlink_target.as_deref()), ("a.txt", 3, None));
        assert_eq!((e[2].kind.as_str(), e[2].symlink_target.as_deref()), ("symlink", Some("/etc")));
    }

    #[test]
    fn relative_paths_are_under_root_and_empty_ones_refused() {
        assert_eq!(resolve_path("a/b").unwrap(), "/root/a/b");
        assert_eq!(resolve_path("/tmp").unwrap(), "/tmp");
        assert!(resolve_path("").is_err());
    }

    fn text(events: &[ProcessEvent]) -> (String, String) {
        let (mut o, mut e) = (String::new(), String::new());
        for ev in events {
            match ev {
                ProcessEvent::Stdout(d) => o.push_str(&String::from_utf8_lossy(d)),
                ProcessEvent::Stderr(d) => e.push_str(&String::from_utf8_lossy(d)),
                ProcessEvent::End(_) => {}
            }
        }
        (o, e)
    }

    #[test]
    fn the_replay_keeps_the_tail_of_each_stream_in_order() {
        let mut r = Recent::default();
        r.push(false, b"0123", 6);
        r.push(true, b"ab", 6);
        r.push(false, b"4567", 6);
        // stdout keeps its last 6 bytes; stderr is untouched by stdout's trimming.
        assert_eq!(text(&r.events()), ("234567".into(), "ab".into()));
        // A chunk bigger than the limit keeps only its tail.
        r.push(true, b"cdefghijk", 6);
        assert_eq!(text(&r.events()), ("234567".into(), "fghijk".into()));
        r.exit = Some(143);
        assert!(matches!(r.events().last(), Some(ProcessEvent::End(143))));
        // Order across streams is kept: stdout "23", then "4567", then stderr.
        let kinds: Vec<bool> = r.events().iter().map(|e| matches!(e, ProcessEvent::Stderr(_))).collect();
        assert_eq!(kinds, vec![false, false, true, false]);
    }
}
