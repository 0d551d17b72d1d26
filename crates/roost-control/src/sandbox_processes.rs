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
use crate::sandboxes::{SandboxProcess, SandboxView};
use crate::{Control, Error, Principal, RequestContext, Result, audit};

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

/// `find -printf` format of one entry: type, size, mode (octal), mtime, symlink target,
/// path; NUL-terminated.
const FIND_FORMAT: &str = "%y\t%s\t%m\t%T@\t%l\t%p\\0";

/// Entries printed by `find -printf FIND_FORMAT`.
pub fn parse_entries(out: &[u8]) -> Vec<SandboxFileEntry> {
    out.split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .filter_map(|r| {
            let line = String::from_utf8_lossy(r);
            let f: Vec<&str> = line.splitn(6, '\t').collect();
            if f.len() != 6 {
                return None;
            }
            let kind = match f[0] {
                "d" => "dir",
                "l" => "symlink",
                _ => "file",
            };
            let secs: f64 = f[3].parse().unwrap_or(0.0);
            let modified_at =
                chrono::DateTime::from_timestamp(secs as i64, (secs.fract() * 1e9) as u32).unwrap_or_default();
            let path = f[5].to_string();
            Some(SandboxFileEntry {
                name: path.rsplit('/').next().unwrap_or(&path).to_string(),
                kind: kind.into(),
                size: f[1].parse().unwrap_or(0),
                mode: u32::from_str_radix(f[2], 8).unwrap_or(0),
                modified_at,
                symlink_target: (f[0] == "l").then(|| f[4].to_string()),
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
        Error::new(ErrorCode::ValidationFailed, text)
    }
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
        p: &Principal,
        action: &str,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.store().write().await?;
        audit::record(tx.conn(), ctx, p, action, Some(("sandbox", id)), Some(body)).await?;
        tx.commit().await?;
        Ok(())
    }

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
        let mut v = Validator::default();
        v.check(!req.cmd.trim().is_empty(), "cmd", "is required");
        check_no_nul(&mut v, "cmd", &req.cmd);
        for arg in &req.args {
            check_no_nul(&mut v, "args", arg);
        }
        for (key, value) in &req.env {
            check_no_nul(&mut v, "env", key);
            check_no_nul(&mut v, "env", value);
        }
        if let Some(cwd) = &req.cwd {
            check_no_nul(&mut v, "cwd", cwd);
        }
        v.finish()?;
        if req.tag.as_deref().is_some_and(|t| t.starts_with(crate::sandbox_watch::WATCHER_TAG_PREFIX)) {
            return Err(Error::invalid("that tag prefix is reserved"));
        }
        let cwd = req.cwd.filter(|c| !c.is_empty()).or_else(|| Some("/root".into()));
        let (process, _rx) =
            self.start_sandbox_process(&view, req.cmd.clone(), req.args.clone(), req.env, cwd, req.tag, None).await?;
        if !req.stdin {
            process.close_stdin().await;
        }
        // The command line is the caller's own; env values may be secrets, so only names.
        let body = serde_json::json!({"pid": process.pid, "cmd": req.cmd, "args": req.args});
        self.audit_sandbox(ctx, p, "sandbox.process.start", &view.row.id, &body).await?;
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
        process.signal(number)?;
        let body = serde_json::json!({"pid": pid, "signal": number});
        self.audit_sandbox(ctx, p, "sandbox.process.signal", &view.row.id, &body).await
    }

    /// A running or recently ended process to attach to (its output can be replayed
    /// and, while it runs, stdin written: so only for callers who may run commands).
    pub async fn attach_sandbox_process(&self, p: &Principal, id: &str, pid: u32) -> Result<Arc<SandboxProcess>> {
        let view = self.exec_sandbox(p, id).await?;
        self.sandbox_process_any(&view.row.id, pid)
    }

    /// The entries of a directory (reading files runs commands in the sandbox, so it
    /// needs the right to run them).
    pub async fn sandbox_list_dir(&self, p: &Principal, id: &str, path: &str) -> Result<Vec<SandboxFileEntry>> {
        let view = self.exec_sandbox(p, id).await?;
        let path = resolve_path(path)?;
        let (out, err, code) =
            self.sandbox_run(&view, &["find", &path, "-maxdepth", "0", "-type", "d", "-printf", "d"]).await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        if out.is_empty() {
            return Err(Error::invalid(format!("'{path}' is not a directory")));
        }
        let (out, err, code) = self
            .sandbox_run(&view, &["find", &path, "-mindepth", "1", "-maxdepth", "1", "-printf", FIND_FORMAT])
            .await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        let mut entries = parse_entries(&out);
        entries.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
        Ok(entries)
    }

    /// A file's contents.
    pub async fn sandbox_download(&self, p: &Principal, id: &str, path: &str) -> Result<Vec<u8>> {
        let view = self.exec_sandbox(p, id).await?;
        self.sandbox_read_file(&view, &resolve_path(path)?).await
    }

    /// Writes a file (parents made).
    pub async fn sandbox_upload(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        path: &str,
        data: Vec<u8>,
    ) -> Result<()> {
        let view = self.exec_sandbox(p, id).await?;
        let path = resolve_path(path)?;
        let size = data.len();
        self.sandbox_write_file(&view, &path, data).await?;
        let body = serde_json::json!({"path": path, "size": size});
        self.audit_sandbox(ctx, p, "sandbox.files.write", &view.row.id, &body).await
    }

    /// Removes a file or a directory with its contents.
    pub async fn sandbox_remove(&self, ctx: &RequestContext, p: &Principal, id: &str, path: &str) -> Result<()> {
        let view = self.exec_sandbox(p, id).await?;
        let path = resolve_path(path)?;
        if path == "/" {
            return Err(Error::invalid("refusing to remove /"));
        }
        let (_, err, code) = self.sandbox_run(&view, &["ls", "-d", "--", &path]).await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        let (_, err, code) = self.sandbox_run(&view, &["rm", "-rf", "--", &path]).await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        self.audit_sandbox(ctx, p, "sandbox.files.remove", &view.row.id, &serde_json::json!({"path": path})).await
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
        let path = resolve_path(path)?;
        if self.sandbox_run(&view, &["test", "-e", &path]).await?.2 == 0 {
            return Err(Error::conflict(format!("'{path}' already exists")));
        }
        let (_, err, code) = self.sandbox_run(&view, &["mkdir", "-p", "--", &path]).await?;
        if code != 0 {
            return Err(fs_error(&path, &err));
        }
        self.audit_sandbox(ctx, p, "sandbox.files.mkdir", &view.row.id, &serde_json::json!({"path": path})).await?;
        self.sandbox_stat(&view, &path).await
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
        let (from, to) = (resolve_field("from", from)?, resolve_field("to", to)?);
        let (_, err, code) = self.sandbox_run(&view, &["mv", "-T", "--", &from, &to]).await?;
        if code != 0 {
            return Err(fs_error(&from, &err));
        }
        let body = serde_json::json!({"from": from, "to": to});
        self.audit_sandbox(ctx, p, "sandbox.files.move", &view.row.id, &body).await?;
        self.sandbox_stat(&view, &to).await
    }

    async fn sandbox_stat(&self, view: &SandboxView, path: &str) -> Result<SandboxFileEntry> {
        let (out, err, code) =
            self.sandbox_run(view, &["find", path, "-maxdepth", "0", "-printf", FIND_FORMAT]).await?;
        if code != 0 {
            return Err(fs_error(path, &err));
        }
        parse_entries(&out).into_iter().next().ok_or_else(|| Error::not_found("path", path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandboxes::{ProcessEvent, Recent};

    #[test]
    fn find_output_becomes_entries() {
        let out = b"d\t4096\t755\t1700000000.5\t\t/root/dir\0f\t3\t644\t1700000000.0\t\t/root/a.txt\0l\t4\t777\t1.0\t/etc\t/root/ln\0";
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
