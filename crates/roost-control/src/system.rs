//! Server-wide administration: consistent backups of the embedded store, the
//! background tasks (listing, running one now) and the server-wide housekeeping task.

use std::time::Duration;

use roost_api::system::{BackgroundTask as TaskView, BackupResult, TaskOutcome, TaskRun};
use roost_store::tasks::TaskRow;
use roost_store::{Backend, now_ms, to_time};

use crate::tasks::{BackgroundTask, TaskSpec};
use crate::{Control, Error, Principal, RequestContext, Result};
use roost_api::operations::Operation;

impl Control {
    /// Starts a backup of the SQLite store into `<data-dir>/backups/`; returns the
    /// operation that tracks it.
    pub async fn start_backup(&self, ctx: &RequestContext, principal: &Principal) -> Result<Operation> {
        let proof = principal.require_admin()?;
        if self.store().backend() != Backend::Sqlite {
            return Err(Error::unprocessable(
                "backups are for the embedded SQLite store; back PostgreSQL up with pg_dump",
            ));
        }
        let mut tx = self.change(ctx, &proof).await?;
        let op = self.new_operation(&mut tx, principal, "system.backup", None).await?;
        tx.audit("system.backup", Some(("operation", op.id())), None).await?;
        op.announce_in(&mut tx);
        tx.commit().await?;

        let snapshot = op.to_api();
        let control = self.clone();
        tokio::spawn(async move {
            let mut op = op;
            op.progress(10, "copying the store").await;
            match control.backup_now().await {
                Ok(result) => op.succeed(serde_json::to_value(result).ok()).await,
                Err(err) => op.fail(&err).await,
            }
        });
        Ok(snapshot)
    }

    async fn backup_now(&self) -> Result<BackupResult> {
        let dir = self.settings().data_dir.join("backups");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let name = format!("roost-{}.db", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let path = dir.join(name);
        self.store().backup_sqlite_to(&path).await?;
        let bytes = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
        tracing::info!(path = %path.display(), bytes, "store backup written");
        Ok(BackupResult { path: path.display().to_string(), bytes })
    }
}

impl Control {
    /// What the compute node runs and how (any signed-in user: it names no tenant data).
    pub async fn node_info(&self, principal: &Principal) -> Result<roost_api::system::NodeInfo> {
        let _ = principal;
        let Ok(node) = self.node() else {
            return Ok(roost_api::system::NodeInfo::default());
        };
        let node_facts = node.facts();
        let facts = node_facts.accelerator.as_ref();
        Ok(roost_api::system::NodeInfo {
            compute: true,
            instance_types: node_facts.instance_types.clone(),
            accelerator: facts.map(|f| f.accelerator.clone()),
            accelerator_reason: facts.map(|f| f.reason.clone()),
            kvm_usable: facts.map(|f| f.kvm_usable),
            tsc_khz: facts.map(|f| f.tsc_khz),
            kvm_checks: facts
                .map(|f| {
                    f.checks
                        .iter()
                        .map(|(name, passed, detail)| roost_api::system::KvmCheck {
                            name: name.clone(),
                            passed: *passed,
                            detail: detail.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            vm_unavailable: node_facts.vm_unavailable.clone(),
        })
    }
}

/// How long the event log keeps events (for `Last-Event-ID` and streams catching up),
/// and how many of the newest it keeps whatever their age.
const EVENT_LOG_KEEP: (Duration, i64) = (Duration::from_secs(24 * 3600), 10_000);

/// Expired sessions, old idempotency keys and events, audit retention.
pub(crate) const HOUSEKEEPING: TaskSpec = TaskSpec {
    name: "housekeeping",
    description: "Removes expired login sessions, idempotency keys and events older than a day, and archives \
                  audit entries older than --audit-retention",
    period: Duration::from_secs(600),
};

struct Housekeeping(Control);

impl BackgroundTask for Housekeeping {
    async fn activate(&mut self) -> Result<serde_json::Value> {
        let control = &self.0;
        // Each step runs whatever the others did; the round fails if any did.
        let mut errors = Vec::new();
        let sessions = control.store().delete_expired_sessions(now_ms()).await.unwrap_or_else(|e| {
            errors.push(format!("expired sessions: {e}"));
            0
        });
        if sessions > 0 {
            tracing::info!(sessions, "removed expired sessions");
        }
        let day_ago = now_ms() - 24 * 3600 * 1000;
        let keys = control.store().prune_idempotency_keys(day_ago).await.unwrap_or_else(|e| {
            errors.push(format!("idempotency keys: {e}"));
            0
        });
        let (keep_for, keep_newest) = EVENT_LOG_KEEP;
        let events =
            control.store().prune_events(now_ms() - keep_for.as_millis() as i64, keep_newest).await.unwrap_or_else(
                |e| {
                    errors.push(format!("event log: {e}"));
                    0
                },
            );
        if let Err(e) = control.apply_audit_retention().await {
            errors.push(format!("audit retention: {}", e.message));
        }
        if !errors.is_empty() {
            return Err(Error::internal(errors.join("; ")));
        }
        let retention = control.settings().audit_retention.map(|d| humantime::format_duration(d).to_string());
        Ok(serde_json::json!({
            "expired_sessions": sessions,
            "idempotency_keys": keys,
            "events": events,
            "audit_retention": retention.unwrap_or_else(|| "off".into()),
        }))
    }
}

impl Control {
    /// Starts the server-wide background tasks (the node's start with `attach_node`).
    pub fn start_tasks(&self) {
        self.tasks().register(HOUSEKEEPING, Housekeeping(self.clone()));
        self.tasks().register(crate::sandboxes::SANDBOX_EXPIRY, crate::sandboxes::SandboxExpiry(self.clone()));
    }

    /// Every background task, of this server and of the others sharing its store
    /// (admins).
    pub async fn list_tasks(&self, principal: &Principal) -> Result<Vec<TaskView>> {
        principal.require_admin_read()?;
        let rows = self.store().tasks().await?;
        let specs = self.tasks().specs();
        let now = now_ms();
        let mut out: Vec<TaskView> = rows
            .iter()
            .map(|row| task_view(Some(row), specs.iter().find(|s| s.name == row.name), &row.name, now))
            .collect();
        // Registered here but not taken yet (the first moments after a start).
        for spec in specs.iter().filter(|s| !rows.iter().any(|r| r.name == s.name)) {
            out.push(task_view(None, Some(spec), spec.name, now));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One background task (admins).
    pub async fn get_task(&self, principal: &Principal, name: &str) -> Result<TaskView> {
        principal.require_admin_read()?;
        let row = self.store().task(name).await?;
        let spec = self.tasks().specs().into_iter().find(|s| s.name == name);
        if row.is_none() && spec.is_none() {
            return Err(Error::not_found("background task", name));
        }
        Ok(task_view(row.as_ref(), spec.as_ref(), name, now_ms()))
    }

    /// Asks for a run of a background task now (admins): this server runs it when it
    /// holds the task's lease, else the holder does when it next renews the lease.
    pub async fn run_task(&self, ctx: &RequestContext, principal: &Principal, name: &str) -> Result<TaskView> {
        let proof = principal.require_admin()?;
        let spec = self.tasks().specs().into_iter().find(|s| s.name == name);
        let mut tx = self.change(ctx, &proof).await?;
        let known = roost_store::tasks::request_run(tx.conn(), name, now_ms()).await?;
        if !known && spec.is_none() {
            return Err(Error::not_found("background task", name));
        }
        tx.audit("system.task.run", Some(("task", name)), None).await?;
        tx.commit().await?;
        if let Some(spec) = spec {
            self.tasks().activator(spec.name).activate();
        }
        self.get_task(principal, name).await
    }
}

/// The API view of a task from its row (any server's) and this server's registration.
fn task_view(row: Option<&TaskRow>, spec: Option<&TaskSpec>, name: &str, now: i64) -> TaskView {
    let holder = row.filter(|r| r.lease_expires_at > now).and_then(|r| r.holder.clone());
    let last_run = row.and_then(|r| {
        let ok = r.last_ok? == 1;
        let details = r.last_details.clone().unwrap_or_default();
        Some(TaskRun {
            server: r.last_server.clone().unwrap_or_default(),
            started_at: to_time(r.last_started_at?),
            elapsed_ms: r.last_elapsed_ms.unwrap_or(0).max(0) as u64,
            outcome: if ok { TaskOutcome::Ok } else { TaskOutcome::Error },
            details: if ok { serde_json::from_str(&details).ok() } else { None },
            error: (!ok).then_some(details),
        })
    });
    let requested = row.and_then(|r| r.wake_requested_at).filter(|at| row.and_then(|r| r.last_started_at) < Some(*at));
    TaskView {
        name: name.to_string(),
        description: spec.map(|s| s.description.to_string()).or(row.map(|r| r.description.clone())).unwrap_or_default(),
        period_ms: spec.map(|s| s.period.as_millis() as u64).or(row.map(|r| r.period_ms.max(0) as u64)).unwrap_or(0),
        next_run_at: holder.as_ref().and(row.and_then(|r| r.next_run_at)).map(to_time),
        holder,
        runs: row.map_or(0, |r| r.runs.max(0) as u64),
        last_run,
        run_requested_at: requested.map(to_time),
    }
}
