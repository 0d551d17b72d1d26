//! The warm pool (`--sandbox-pool N`): per project and template, N sandboxes started
//! ahead of time and frozen (cgroup freezer, the driver's pause), handed out on create by
//! thawing one, and refilled in the background.
//!
//! Tenancy: an instance lives in a project and takes its address from that project's
//! network, so a pool cannot be shared between projects. Pools are kept per project and
//! template, and only for pairs a create has asked for (the first create in a project is
//! cold and starts the fill). A pooled instance has no sandbox row — no key, no TTL, no
//! usage, invisible to the sandbox API — until it is handed out; then the row is written
//! for the caller (its key, project and user) exactly as a cold create writes it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use roost_api::ids::IdKind;
use roost_api::instances::{CreateInstanceRequest, InstanceStatus};
use roost_api::sandboxes::SandboxPoolStats;

use crate::images::node_error;
use crate::sandboxes::{SANDBOX_CPUS, SANDBOX_MEMORY};
use crate::{Control, Principal, RequestContext};

/// One pre-created, frozen sandbox: its future sandbox id (the instance's name) and its
/// instance.
#[derive(Debug, Clone)]
pub(crate) struct Pooled {
    pub id: String,
    pub instance_id: String,
}

#[derive(Default)]
struct Slot {
    ready: VecDeque<Pooled>,
    filling: bool,
    hits: u64,
    misses: u64,
}

/// The pools, by (project id, template).
#[derive(Default)]
pub(crate) struct Pool {
    size: AtomicU32,
    slots: Mutex<HashMap<(String, String), Slot>>,
}

/// How a sandbox's instance is asked for, pooled or cold: the same request either way,
/// so a pooled sandbox is indistinguishable from a cold one once handed out.
pub(crate) fn sandbox_instance_request(
    id: &str,
    template: &str,
    project: &str,
    env: BTreeMap<String, String>,
) -> CreateInstanceRequest {
    let mut labels = BTreeMap::new();
    labels.insert("roost.sandbox".to_string(), id.to_string());
    CreateInstanceRequest {
        name: id.to_string(),
        image: template.to_string(),
        project: Some(project.to_string()),
        cpus: Some(SANDBOX_CPUS),
        memory_bytes: Some(SANDBOX_MEMORY),
        env,
        labels,
        ..Default::default()
    }
}

impl Control {
    fn pool(&self) -> &Pool {
        &self.inner.sandboxes.pool
    }

    /// Sets how many frozen sandboxes each pool keeps (0: no pool, every create is cold).
    pub fn set_sandbox_pool(&self, size: u32) {
        self.pool().size.store(size, Ordering::Relaxed);
    }

    pub fn sandbox_pool_size(&self) -> u32 {
        self.pool().size.load(Ordering::Relaxed)
    }

    /// A frozen sandbox of this project and template, thawed (its row still says Paused:
    /// the caller records it Running); `None` when the pool is empty (counted as a miss)
    /// or the one taken would not thaw (it is deleted).
    pub(crate) async fn take_pooled(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        project: &str,
        template: &str,
    ) -> Option<Pooled> {
        if self.sandbox_pool_size() == 0 {
            return None;
        }
        let taken = {
            let mut slots = self.pool().slots.lock().expect("pool");
            let slot = slots.entry((project.to_string(), template.to_string())).or_default();
            let taken = slot.ready.pop_front();
            if taken.is_some() {
                slot.hits += 1;
            } else {
                slot.misses += 1;
            }
            taken
        };
        let pooled = taken?;
        // Thawed only: the row says Running in the same transaction that writes the
        // sandbox (`create_sandbox`), one store write for the whole handout.
        let thawed = async {
            self.node()?.driver.resume(&pooled.instance_id).await.map_err(node_error)?;
            Ok::<(), crate::Error>(())
        };
        match thawed.await {
            Ok(()) => Some(pooled),
            Err(e) => {
                tracing::warn!(instance = %pooled.instance_id, error = %e.message, "a pooled sandbox did not thaw");
                let _ = self.delete_instance(ctx, p, &pooled.instance_id, None, true, None).await;
                None
            }
        }
    }

    /// Counts a create that did not look in the pool (it asked for env vars, which are
    /// fixed when an instance starts).
    pub(crate) fn note_pool_miss(&self, project: &str, template: &str) {
        if self.sandbox_pool_size() > 0 {
            let mut slots = self.pool().slots.lock().expect("pool");
            slots.entry((project.to_string(), template.to_string())).or_default().misses += 1;
        }
    }

    /// Tops the pool of this project and template up to the pool size, in the
    /// background, one sandbox at a time (so a fill never competes with the creates it
    /// serves for more than one start). `p` is the caller whose create asked for the
    /// pair: it has write access to the project, and the instances are made as it (the
    /// creator is rewritten to whoever receives one).
    pub(crate) fn refill_sandbox_pool(&self, p: &Principal, project: &str, template: &str) {
        let size = self.sandbox_pool_size() as usize;
        if size == 0 {
            return;
        }
        let key = (project.to_string(), template.to_string());
        {
            let mut slots = self.pool().slots.lock().expect("pool");
            let slot = slots.entry(key.clone()).or_default();
            if slot.filling || slot.ready.len() >= size {
                return;
            }
            slot.filling = true;
        }
        let control = self.clone();
        let p = p.clone();
        tokio::spawn(async move {
            loop {
                let missing = {
                    let slots = control.pool().slots.lock().expect("pool");
                    slots.get(&key).map(|s| s.ready.len() < control.sandbox_pool_size() as usize).unwrap_or(false)
                };
                if !missing || control.shutdown().is_cancelled() {
                    break;
                }
                match control.prestart_sandbox(&p, &key.0, &key.1).await {
                    Ok(pooled) => control
                        .pool()
                        .slots
                        .lock()
                        .expect("pool")
                        .entry(key.clone())
                        .or_default()
                        .ready
                        .push_back(pooled),
                    Err(e) => {
                        tracing::warn!(project = %key.0, template = %key.1, error = %e.message, "cannot fill the sandbox pool");
                        break;
                    }
                }
            }
            if let Some(slot) = control.pool().slots.lock().expect("pool").get_mut(&key) {
                slot.filling = false;
            }
        });
    }

    /// Starts one sandbox instance and freezes it.
    async fn prestart_sandbox(&self, p: &Principal, project: &str, template: &str) -> crate::Result<Pooled> {
        let ctx = RequestContext::default();
        let id = IdKind::Sandbox.generate();
        let req = sandbox_instance_request(&id, template, project, BTreeMap::new());
        let (instance, _) = self.create_instance(&ctx, p, req).await?;
        let cleanup = |e: crate::Error| async {
            let _ = self.delete_instance(&ctx, p, &instance.id, None, true, None).await;
            e
        };
        let running =
            match self.wait_instance(p, &instance.id, None, InstanceStatus::Running, Duration::from_secs(120)).await {
                Ok(i) => i,
                Err(e) => return Err(cleanup(e).await),
            };
        if running.status != InstanceStatus::Running {
            let e = crate::Error::new(
                roost_api::ErrorCode::Unavailable,
                format!("a pooled sandbox did not start: {}", running.status.as_str()),
            );
            return Err(cleanup(e).await);
        }
        let frozen = async {
            self.driver_of(&instance.id).await?.pause(&instance.id).await.map_err(node_error)?;
            if let Some(row) = self.store().instance(&instance.id).await? {
                self.record(&row, InstanceStatus::Paused, None, None, row.started_at).await?;
            }
            Ok::<(), crate::Error>(())
        };
        if let Err(e) = frozen.await {
            return Err(cleanup(e).await);
        }
        Ok(Pooled { id, instance_id: instance.id })
    }

    /// Removes the pooled sandboxes an earlier run of the server left behind. The pool
    /// lives in memory, so after a restart its frozen instances belong to nobody: they
    /// carry the `roost.sandbox` label but no sandbox row. Each is deleted as its creator
    /// (audited as `instance.delete`, source `sandbox-pool`), through the reconciler like
    /// any delete. Only instances older than `before` (the server's start, ms) are
    /// considered, so a cold create in progress (its row is written after its instance)
    /// is never taken for a leftover. Returns how many it deleted.
    pub async fn remove_pool_leftovers(&self, before: i64) -> crate::Result<usize> {
        let ctx = RequestContext { source: Some("sandbox-pool".into()), ..Default::default() };
        let mut removed = 0;
        for row in self.store().all_instances().await? {
            let labels = row.labels();
            let Some(sandbox) = labels.get("roost.sandbox") else { continue };
            if row.created_at >= before
                || row.desired() == roost_api::instances::Desired::Terminated
                || self.store().sandbox(sandbox).await?.is_some()
            {
                continue;
            }
            let user = match &row.created_by {
                Some(u) => self.store().user_by_id(u).await?,
                None => None,
            };
            let Some(user) = user else {
                tracing::warn!(instance = %row.id, "a pooled sandbox of an earlier run has no creator to delete it as");
                continue;
            };
            let p = crate::sandboxes::acting_as(user, &row.project_id, None, "sandbox pool");
            match self.delete_instance(&ctx, &p, &row.id, None, true, None).await {
                Ok(_) => removed += 1,
                Err(e) => {
                    tracing::warn!(instance = %row.id, error = %e.message, "cannot remove a pooled sandbox of an earlier run")
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed the warm pool's sandboxes of an earlier run");
        }
        Ok(removed)
    }

    /// The pools of the projects the principal can see.
    pub async fn sandbox_pool_stats(&self, p: &Principal) -> crate::Result<Vec<SandboxPoolStats>> {
        let size = self.sandbox_pool_size();
        let mut all: Vec<SandboxPoolStats> = {
            let slots = self.pool().slots.lock().expect("pool");
            slots
                .iter()
                .map(|((project, template), s)| SandboxPoolStats {
                    project_id: project.clone(),
                    template: template.clone(),
                    size,
                    ready: s.ready.len() as u32,
                    hits: s.hits,
                    misses: s.misses,
                })
                .collect()
        };
        all.sort_by(|a, b| (&a.project_id, &a.template).cmp(&(&b.project_id, &b.template)));
        let mut out = Vec::new();
        for s in all {
            if let Some(only) = &p.project_id
                && only != &s.project_id
            {
                continue;
            }
            if self.project_access(p, &s.project_id).await.is_ok() {
                out.push(s);
            }
        }
        Ok(out)
    }
}

impl Control {
    /// Empties the pool of this project and template, deleting its frozen sandboxes (a
    /// template rebuilt or deleted: they run the old contents).
    pub(crate) async fn drain_sandbox_pool(&self, p: &Principal, project: &str, template: &str) {
        let drained: Vec<Pooled> = {
            let mut slots = self.pool().slots.lock().expect("pool");
            match slots.get_mut(&(project.to_string(), template.to_string())) {
                Some(slot) => slot.ready.drain(..).collect(),
                None => Vec::new(),
            }
        };
        let ctx = RequestContext::default();
        for pooled in drained {
            match self.delete_instance(&ctx, p, &pooled.instance_id, None, true, None).await {
                Ok(op) => {
                    let _ = self.wait_operation(p, &op.id, Duration::from_secs(60)).await;
                }
                Err(e) => {
                    tracing::warn!(instance = %pooled.instance_id, error = %e.message, "could not drain a pooled sandbox")
                }
            }
        }
    }
}
