//! Directory watches in a sandbox (envd's `CreateWatcher` / `GetWatcherEvents` /
//! `RemoveWatcher` and `WatchDir`): inotify inside the sandbox through an exec'd
//! `inotifywait -m` (inotify-tools, in the builtin templates), its lines turned into
//! envd's filesystem events. Nothing else runs in the sandbox for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::sandboxes::{ProcessEvent, SandboxProcess, SandboxView};
use crate::{Control, Error, Result};

/// The tag of a watcher's process (hidden from the SDK's process list).
pub const WATCHER_TAG_PREFIX: &str = "roost-watcher-";
/// Events kept for a watcher nobody polls.
const MAX_PENDING: usize = 10_000;

/// One filesystem event, as envd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsEvent {
    /// Relative to the watched directory.
    pub name: String,
    /// envd's `EventType` name: `EVENT_TYPE_CREATE`, `_WRITE`, `_REMOVE`, `_RENAME`, `_CHMOD`.
    pub kind: &'static str,
}

/// A running watch.
pub struct Watcher {
    pub id: String,
    pub sandbox: String,
    process: Arc<SandboxProcess>,
    pending: Mutex<Vec<FsEvent>>,
    events: broadcast::Sender<Option<FsEvent>>,
}

impl Watcher {
    /// Events since the last call.
    pub fn take(&self) -> Vec<FsEvent> {
        std::mem::take(&mut *self.pending.lock().expect("pending"))
    }

    /// Events from now on; `None` when the watch ended.
    pub fn subscribe(&self) -> broadcast::Receiver<Option<FsEvent>> {
        self.events.subscribe()
    }
}

#[derive(Default)]
pub(crate) struct Watchers {
    by_id: Mutex<HashMap<String, Arc<Watcher>>>,
}

/// One `inotifywait --format '%e|%w%f'` line → events (a move is a rename of the old
/// name and a create of the new, as envd reports it).
pub fn parse_line(line: &str, root: &str) -> Option<FsEvent> {
    let (events, path) = line.split_once('|')?;
    let root = root.trim_end_matches('/');
    let name = path.strip_prefix(root).unwrap_or(path).trim_start_matches('/').to_string();
    let kind = events.split(',').find_map(|e| match e {
        "CREATE" | "MOVED_TO" => Some("EVENT_TYPE_CREATE"),
        "MODIFY" | "CLOSE_WRITE" => Some("EVENT_TYPE_WRITE"),
        "DELETE" => Some("EVENT_TYPE_REMOVE"),
        "MOVED_FROM" => Some("EVENT_TYPE_RENAME"),
        "ATTRIB" => Some("EVENT_TYPE_CHMOD"),
        _ => None,
    })?;
    Some(FsEvent { name, kind })
}

impl Control {
    /// Starts watching `path` in the sandbox; returns once inotify's watches are set, so
    /// no change made after it returns is missed.
    pub async fn create_sandbox_watcher(
        &self,
        view: &SandboxView,
        path: &str,
        recursive: bool,
    ) -> Result<Arc<Watcher>> {
        if path.is_empty() {
            return Err(Error::unprocessable("path is required"));
        }
        let mut id_bytes = [0u8; 8];
        getrandom::fill(&mut id_bytes).map_err(|e| Error::internal(format!("random source: {e}")))?;
        let id = hex::encode(id_bytes);
        let mut args: Vec<String> =
            ["-m", "-e", "create,modify,delete,moved_from,moved_to,attrib", "--format", "%e|%w%f"]
                .map(String::from)
                .into();
        if recursive {
            args.push("-r".into());
        }
        args.extend(["--".into(), path.to_string()]);
        let tag = Some(format!("{WATCHER_TAG_PREFIX}{id}"));
        let (process, mut rx) = self
            .start_sandbox_process(view, "inotifywait".into(), args, Default::default(), None, tag, None)
            .await
            .map_err(|e| {
                Error::unprocessable(format!(
                    "watching needs inotifywait (Debian package inotify-tools) in the template: {}",
                    e.message
                ))
            })?;
        // inotifywait says on stderr when its watches are set (or why it failed).
        let mut stderr = Vec::new();
        let mut stdout = Vec::new();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match rx.recv().await {
                    Ok(ProcessEvent::Stderr(b)) => {
                        stderr.extend_from_slice(&b);
                        if String::from_utf8_lossy(&stderr).contains("Watches established") {
                            return Ok(());
                        }
                    }
                    Ok(ProcessEvent::Stdout(b)) => stdout.extend_from_slice(&b),
                    Ok(ProcessEvent::End(code)) => {
                        let why = String::from_utf8_lossy(&stderr).trim().to_string();
                        let missing = why.contains("not found") || why.contains("no such file");
                        let why = if code == 127 || (missing && why.contains("inotifywait")) {
                            format!("inotifywait is not in the template (Debian package inotify-tools): {why}")
                        } else {
                            why
                        };
                        return Err(Error::unprocessable(format!("cannot watch '{path}': {why}")));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Error::unprocessable(format!("cannot watch '{path}': the watch ended")));
                    }
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let _ = process.signal(9);
                return Err(Error::unprocessable(format!(
                    "cannot watch '{path}': inotifywait did not set its watches"
                )));
            }
        }
        let (events, _) = broadcast::channel(1024);
        let watcher = Arc::new(Watcher {
            id: id.clone(),
            sandbox: view.row.id.clone(),
            process,
            pending: Mutex::new(Vec::new()),
            events,
        });
        self.inner.watchers.by_id.lock().expect("watchers").insert(id.clone(), watcher.clone());
        let control = self.clone();
        let w = watcher.clone();
        let root = path.to_string();
        tokio::spawn(async move {
            let mut line = stdout;
            let emit = |line: &[u8]| {
                if let Some(ev) = parse_line(String::from_utf8_lossy(line).trim_end(), &root) {
                    let mut pending = w.pending.lock().expect("pending");
                    if pending.len() < MAX_PENDING {
                        pending.push(ev.clone());
                    }
                    let _ = w.events.send(Some(ev));
                }
            };
            loop {
                while let Some(nl) = line.iter().position(|b| *b == b'\n') {
                    let rest = line.split_off(nl + 1);
                    emit(&line);
                    line = rest;
                }
                match rx.recv().await {
                    Ok(ProcessEvent::Stdout(b)) => line.extend_from_slice(&b),
                    Ok(ProcessEvent::Stderr(_)) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Ok(ProcessEvent::End(_)) | Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            let _ = w.events.send(None);
            control.inner.watchers.by_id.lock().expect("watchers").remove(&w.id);
        });
        Ok(watcher)
    }

    /// A watcher of this sandbox.
    pub fn sandbox_watcher(&self, sandbox: &str, id: &str) -> Result<Arc<Watcher>> {
        self.inner
            .watchers
            .by_id
            .lock()
            .expect("watchers")
            .get(id)
            .filter(|w| w.sandbox == sandbox)
            .cloned()
            .ok_or_else(|| Error::not_found("watcher", id))
    }

    /// Stops a watch (its inotifywait is killed).
    pub fn remove_sandbox_watcher(&self, sandbox: &str, id: &str) -> Result<()> {
        let w = self.sandbox_watcher(sandbox, id)?;
        self.inner.watchers.by_id.lock().expect("watchers").remove(id);
        let _ = w.process.signal(15);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inotifywait_lines_become_envd_events() {
        let ev = |kind, name: &str| Some(FsEvent { name: name.into(), kind });
        assert_eq!(parse_line("CREATE|/tmp/w/a.txt", "/tmp/w"), ev("EVENT_TYPE_CREATE", "a.txt"));
        assert_eq!(parse_line("CREATE,ISDIR|/tmp/w/d", "/tmp/w/"), ev("EVENT_TYPE_CREATE", "d"));
        assert_eq!(parse_line("MODIFY|/tmp/w/sub/a", "/tmp/w"), ev("EVENT_TYPE_WRITE", "sub/a"));
        assert_eq!(parse_line("DELETE|/tmp/w/a", "/tmp/w"), ev("EVENT_TYPE_REMOVE", "a"));
        assert_eq!(parse_line("MOVED_FROM|/tmp/w/a", "/tmp/w"), ev("EVENT_TYPE_RENAME", "a"));
        assert_eq!(parse_line("MOVED_TO|/tmp/w/b", "/tmp/w"), ev("EVENT_TYPE_CREATE", "b"));
        assert_eq!(parse_line("ATTRIB|/tmp/w/b", "/tmp/w"), ev("EVENT_TYPE_CHMOD", "b"));
        assert_eq!(parse_line("OPEN|/tmp/w/b", "/tmp/w"), None);
        assert_eq!(parse_line("garbage", "/tmp/w"), None);
    }
}
