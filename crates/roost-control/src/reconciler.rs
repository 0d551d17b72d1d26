//! The reconciler owns the truth about instances: it compares each row's desired state
//! with what the driver observes and takes the next step. Every step is idempotent, so
//! after a crash anywhere a restart converges: running instances are adopted, half-made
//! ones finished, half-deleted ones removed, and anything the driver has without a row
//! is deleted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use roost_api::instances::{Desired, InstanceStatus};
use roost_node::InstanceStatus as Observed;
use roost_node::api::InstanceSpec;
use roost_node::driver::exit_code_of;
use roost_store::instances::InstanceRow;
use roost_store::now_ms;

use crate::images::node_error;
use crate::instances::{DEFAULT_STOP_TIMEOUT, should_restart};
use crate::tasks::{BackgroundTask, TaskSpec};
use crate::{Control, Error, Result};

/// Every instance, every 2 s even without a change (exits, drift); woken by changes.
pub(crate) const INSTANCE_RECONCILER: TaskSpec = TaskSpec {
    name: "instance_reconciler",
    description: "Steps every instance toward its desired state (exits, restart policies, drift) and deletes \
                  instances the node has without a row",
    period: Duration::from_secs(2),
};

/// The pass over all instances. A change to one instance is reconciled at once (`kick`),
/// outside this task, on the server that holds its lease.
pub(crate) struct InstanceReconciler {
    pub control: Control,
    /// Whether the start-up cleanup ran.
    pub cleaned: bool,
}

impl BackgroundTask for InstanceReconciler {
    async fn activate(&mut self) -> Result<serde_json::Value> {
        if !self.cleaned {
            // Before any instance starts: a stale volume mount removed later could be
            // one a start has just made. Kicks wait for this (they wake this task).
            self.control.clean_volume_leftovers().await;
            self.cleaned = true;
            self.control.compute().reconciler_ready.store(true, Ordering::SeqCst);
        }
        self.control.reconcile_all().await
    }
}

impl Control {
    /// Reconciles one instance now, on the server that runs the reconciler; elsewhere
    /// (or before its start-up cleanup) it wakes the reconciler, whose pass covers it.
    pub(crate) fn kick(&self, id: &str) {
        if self.node().is_err() {
            return;
        }
        if self.compute().reconciler_ready.load(Ordering::SeqCst) && self.tasks().holds(INSTANCE_RECONCILER.name) {
            self.spawn_reconcile(id.to_string());
        } else {
            self.tasks().activator(INSTANCE_RECONCILER.name).activate();
        }
    }

    fn spawn_reconcile(&self, id: String) {
        let control = self.clone();
        tokio::spawn(async move { control.reconcile(&id).await });
    }

    /// Every row, and every instance the driver has without a row.
    pub(crate) async fn reconcile_all(&self) -> Result<serde_json::Value> {
        let node = self.node()?;
        let rows = self.store().all_instances().await?;
        for row in &rows {
            self.spawn_reconcile(row.id.clone());
        }
        let mut orphans = 0;
        for driver in node.drivers() {
            match driver.list().await {
                Ok(ids) => {
                    for id in ids.into_iter().filter(|id| !rows.iter().any(|r| &r.id == id)) {
                        orphans += 1;
                        self.spawn_reconcile(id);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, driver = driver.kind(), "reconcile: cannot list the driver's instances")
                }
            }
        }
        Ok(serde_json::json!({ "instances": rows.len(), "orphans": orphans }))
    }

    pub(crate) fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.compute().locks.lock().expect("locks").entry(id.to_string()).or_default().clone()
    }

    /// Steps toward the desired state of one instance. One runs at a time per instance;
    /// a request that arrives meanwhile marks it dirty and the running one goes again.
    pub(crate) async fn reconcile(&self, id: &str) {
        let lock = self.lock_for(id);
        let Ok(_guard) = lock.try_lock() else {
            self.compute().dirty.lock().expect("dirty").insert(id.to_string());
            return;
        };
        loop {
            self.reconcile_step(id).await;
            if !self.compute().dirty.lock().expect("dirty").remove(id) {
                break;
            }
        }
    }

    async fn reconcile_step(&self, id: &str) {
        if let Err(e) = self.reconcile_locked(id).await {
            tracing::warn!(instance = id, error = %e.message, "reconcile step failed");
            if let Ok(Some(row)) = self.store().instance(id).await {
                let _ = self.record(&row, InstanceStatus::Error, Some(&e.message), row.exit_code, None).await;
                // A failed start is not retried in a loop; the owner starts it again.
                if row.desired() == Desired::Running {
                    let _ = self.set_desired(&row, Desired::Stopped).await;
                }
            }
            self.settle(id, Err(e)).await;
        }
    }

    async fn reconcile_locked(&self, id: &str) -> Result<()> {
        let node = self.node()?;
        let Some(row) = self.store().instance(id).await? else {
            // A driver has it, the store does not: an orphan.
            for driver in node.drivers() {
                if driver.inspect(id).await.map_err(node_error)?.status != Observed::Missing {
                    tracing::info!(instance = id, driver = driver.kind(), "deleting an orphaned instance");
                    driver.delete(id).await.map_err(node_error)?;
                }
            }
            self.compute().locks.lock().expect("locks").remove(id);
            return Ok(());
        };
        let driver = node.driver_for(&row.kind)?;
        let state = driver.inspect(id).await.map_err(node_error)?;
        match row.desired() {
            Desired::Terminated => {
                if row.status() != InstanceStatus::Terminating {
                    self.record(&row, InstanceStatus::Terminating, None, row.exit_code, None).await?;
                }
                driver.delete(id).await.map_err(node_error)?;
                self.delete_instance_rows(id, &row.project_id).await?;
                self.compute().graces.lock().expect("graces").remove(id);
                self.settle(id, Ok(())).await;
                self.forget_samples(id);
            }
            Desired::Stopped => {
                if matches!(state.status, Observed::Running | Observed::Paused) {
                    self.record(&row, InstanceStatus::Stopping, None, None, None).await?;
                    let grace =
                        self.compute().graces.lock().expect("graces").remove(id).unwrap_or(DEFAULT_STOP_TIMEOUT);
                    driver.stop(id, grace).await.map_err(node_error)?;
                    let after = driver.inspect(id).await.map_err(node_error)?;
                    let code = after.exit_code.map(|c| c as i64);
                    self.record(&row, InstanceStatus::Stopped, Some("stopped"), code, None).await?;
                } else if !matches!(row.status(), InstanceStatus::Stopped | InstanceStatus::Error) {
                    self.record(&row, InstanceStatus::Stopped, row.status_reason.as_deref(), row.exit_code, None)
                        .await?;
                }
                self.settle(id, Ok(())).await;
            }
            Desired::Running => {
                let restart = self.compute().restarts.lock().expect("restarts").remove(id);
                if restart && matches!(state.status, Observed::Running | Observed::Paused) {
                    self.record(&row, InstanceStatus::Rebooting, None, None, None).await?;
                    let grace =
                        self.compute().graces.lock().expect("graces").remove(id).unwrap_or(DEFAULT_STOP_TIMEOUT);
                    driver.stop(id, grace).await.map_err(node_error)?;
                } else if state.status == Observed::Running {
                    if row.status() != InstanceStatus::Running {
                        let started = state.started_at.map(system_ms).or(Some(now_ms()));
                        self.record(&row, InstanceStatus::Running, None, None, started).await?;
                    }
                    self.settle(id, Ok(())).await;
                    return Ok(());
                } else if state.status == Observed::Paused {
                    // Paused on purpose (a sandbox): neither restart it nor call it stopped.
                    if row.status() != InstanceStatus::Paused {
                        self.record(&row, InstanceStatus::Paused, None, None, row.started_at).await?;
                    }
                    self.settle(id, Ok(())).await;
                    return Ok(());
                } else if state.status == Observed::Stopped
                    && matches!(row.status(), InstanceStatus::Running | InstanceStatus::Paused)
                {
                    // It ended on its own: the restart policy decides.
                    let code = if state.exit_unknown { -1 } else { exit_code_of(state.exit_code, state.exit_signal) };
                    let reason = if state.oom_killed {
                        "OOM-killed: it used more memory than its limit".to_string()
                    } else if state.exit_unknown {
                        "exited while the server was down (exit status unknown)".to_string()
                    } else {
                        format!("exited with code {code}")
                    };
                    if !should_restart(row.restart(), code) {
                        self.set_desired(&row, Desired::Stopped).await?;
                        let code = (!state.exit_unknown).then_some(code as i64);
                        self.record(&row, InstanceStatus::Stopped, Some(&reason), code, None).await?;
                        return Ok(());
                    }
                    tracing::info!(instance = id, %reason, "restarting per its restart policy");
                    let mut tx = self.store().write().await?;
                    roost_store::instances::count_restart(tx.conn(), id).await?;
                    tx.commit().await?;
                }
                self.provision(&node, &row).await?;
                let mut t = crate::timing::Steps::new("provisioned");
                let started = driver.inspect(id).await.map_err(node_error)?;
                let at = started.started_at.map(system_ms).or(Some(now_ms()));
                let fresh = self.store().instance(id).await?.unwrap_or(row);
                t.step("inspect");
                self.record(&fresh, InstanceStatus::Running, None, None, at).await?;
                t.step("record running");
                self.settle(id, Ok(())).await;
                t.step("settle");
                // SSH keys and user data, once, off the reconcile path (a VM's agent
                // answers only once the guest has booted).
                let control = self.clone();
                let id = id.to_string();
                tokio::spawn(async move {
                    if let Err(e) = control.deliver_first_boot(&id).await {
                        tracing::warn!(instance = %id, error = %e.message, "first-boot data not delivered");
                    }
                });
            }
        }
        Ok(())
    }

    /// Address, image, prepare, start.
    async fn provision(&self, node: &crate::node::Node, row: &InstanceRow) -> Result<()> {
        let mut t = crate::timing::Steps::new("provision");
        if row.status() != InstanceStatus::Rebooting {
            self.record(row, InstanceStatus::Provisioning, None, None, None).await?;
        }
        t.step("record provisioning");
        self.ensure_nics(&row.id, &row.project_id).await?;
        let (networks, dns) = self.attachments_of(&row.id).await?;
        t.step("nics");
        let image = self
            .store()
            .image_by_id(&row.image_id)
            .await?
            .ok_or_else(|| Error::unprocessable("the instance's image is gone"))?;
        let digest = self.image_digest(&image).await?;
        t.step("image");
        // Bridges and the instance's rules exist before it runs (never fail-open).
        self.sync_firewall_now().await?;
        t.step("firewall");
        let spec = InstanceSpec {
            id: row.id.clone(),
            image: digest,
            cmd: row.command(),
            env: row.env().into_iter().collect(),
            cpus: row.cpus_milli as f64 / 1000.0,
            memory_bytes: row.memory_bytes as u64,
            pids_limit: 4096,
            hostname: row.name.clone(),
            networks,
            dns,
            disks: self.disks_of(&row.id).await?,
            capabilities_add: row.capabilities_add(),
        };
        t.step("spec");
        let driver = node.driver_for(&row.kind)?;
        let started = async {
            driver.prepare(&spec).await?;
            t.step("driver prepare");
            driver.start(&row.id).await?;
            t.step("driver start");
            Ok(())
        }
        .await;
        started.map_err(node_error)
    }

    /// Records an observed status and publishes the change.
    pub(crate) async fn record(
        &self,
        row: &InstanceRow,
        status: InstanceStatus,
        reason: Option<&str>,
        exit_code: Option<i64>,
        started_at: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.system_change().await?;
        roost_store::instances::set_status(tx.conn(), &row.id, status, reason, exit_code, started_at, now_ms()).await?;
        tx.instance_event("instance.updated", &row.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an instance's rows (its volumes stay, detached, with their data) once the
    /// node has deleted it.
    async fn delete_instance_rows(&self, id: &str, project_id: &str) -> Result<()> {
        let mut tx = self.system_change().await?;
        roost_store::volumes::detach_all(tx.conn(), id, now_ms()).await?;
        roost_store::volumes::delete_lineage(tx.conn(), id).await?;
        if roost_store::instances::delete(tx.conn(), id).await? {
            tx.bare_event("instance.deleted", "instance", id, crate::events::Audience::Project(project_id.to_string()));
        }
        tx.commit().await?;
        self.request_firewall_sync();
        Ok(())
    }

    /// Deletes an instance from the node (whichever driver has it), under its reconcile
    /// lock; nothing to do when no driver has it. Its row, if any, now wants it stopped,
    /// so the reconciler does not start it again.
    pub(crate) async fn delete_from_node(&self, id: &str) -> Result<()> {
        let node = self.node()?;
        let _lock = self.lock_for(id).lock_owned().await;
        if let Some(row) = self.store().instance(id).await?
            && row.desired() == Desired::Running
        {
            self.set_desired(&row, Desired::Stopped).await?;
        }
        for driver in node.drivers() {
            if driver.inspect(id).await.map_err(node_error)?.status != Observed::Missing {
                driver.delete(id).await.map_err(node_error)?;
            }
        }
        Ok(())
    }

    /// Removes an instance at once, from the node and the store (undoing a job that made
    /// it); nothing to do when it is gone already.
    pub(crate) async fn purge_instance(&self, id: &str) -> Result<()> {
        self.delete_from_node(id).await?;
        if let Some(row) = self.store().instance(id).await? {
            self.delete_instance_rows(id, &row.project_id).await?;
        }
        self.compute().locks.lock().expect("locks").remove(id);
        Ok(())
    }

    /// Starts a stopped instance and waits until it runs; an error when it fails to.
    pub(crate) async fn start_and_wait(&self, id: &str) -> Result<()> {
        let mut updates = self.events().subscribe();
        let row = self.store().instance(id).await?.ok_or_else(|| Error::not_found("instance", id))?;
        self.set_desired(&row, Desired::Running).await?;
        self.kick(id);
        loop {
            let row = self.store().instance(id).await?.ok_or_else(|| Error::not_found("instance", id))?;
            match row.status() {
                InstanceStatus::Running => return Ok(()),
                InstanceStatus::Error => {
                    return Err(Error::unprocessable(format!(
                        "instance '{}' did not start: {}",
                        row.name,
                        row.status_reason.unwrap_or_default()
                    )));
                }
                _ => {}
            }
            tokio::select! {
                _ = self.shutdown().cancelled() => return Err(Error::new(roost_api::ErrorCode::Unavailable, "the server is shutting down")),
                received = updates.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = received {
                    return Err(Error::new(roost_api::ErrorCode::Unavailable, "the server is shutting down"));
                },
            }
        }
    }

    pub(crate) async fn set_desired(&self, row: &InstanceRow, desired: Desired) -> Result<()> {
        let mut tx = self.store().write().await?;
        roost_store::instances::set_desired(tx.conn(), &row.id, desired, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn system_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
