//! The warm pool (`--sandbox-pool N`): per project and template image, N sandboxes
//! started ahead of time and frozen (cgroup freezer, the driver's pause), handed out on
//! create by thawing one, and refilled in the background by the `sandbox_pool` task.
//!
//! Tenancy: an instance lives in a project and takes its address from that project's
//! network, so a pool cannot be shared between projects. Pools are kept per project and
//! image (by id: the name a create asks for is resolved in the project first, so a pool
//! never serves an image other than the one the name means now), and only for pairs a
//! create has asked for (the first create in a project is cold and starts the fill). A pooled instance has no sandbox row — no key, no TTL, no
//! usage, invisible to the sandbox API — until it is handed out; then the row is written
//! for the caller (its key, project and user) exactly as a cold create writes it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use roost_api::ids::IdKind;
use roost_api::instances::{CreateInstanceRequest, InstanceStatus};
use roost_api::sandboxes::SandboxPoolStats;

use roost_store::images::ImageRow;

use crate::images::node_error;
use crate::sandboxes::{SANDBOX_CPUS, SANDBOX_MEMORY};
use crate::tasks::{BackgroundTask, TaskSpec};
use crate::{Control, Principal, RequestContext};

/// Which pool: a project and a template image (by id), with the image's name for the
/// stats.
#[derive(Debug, Clone)]
pub(crate) struct PoolKey {
    pub project_id: String,
    pub image_id: String,
    pub template: String,
}

impl PoolKey {
    pub fn new(project_id: &str, image: &ImageRow) -> PoolKey {
        PoolKey { project_id: project_id.to_string(), image_id: image.id.clone(), template: image.name.clone() }
    }

    fn slot(&self) -> (String, String) {
        (self.project_id.clone(), self.image_id.clone())
    }
}

/// The warm pool's fill: woken by the creates that take from it or ask for a new pair;
/// the period only tops up what a create did not ask for again.
pub(crate) const SANDBOX_POOL: TaskSpec = TaskSpec {
    name: "sandbox_pool",
    description: "Keeps --sandbox-pool frozen sandboxes ready per project and template that a create asked for",
    period: Duration::from_secs(60),
};

pub(crate) struct SandboxPoolFill(pub(crate) Control);

impl BackgroundTask for SandboxPoolFill {
    async fn activate(&mut self) -> crate::Result<serde_json::Value> {
        self.0.fill_sandbox_pools().await
    }
}

/// One pre-created, frozen sandbox: its future sandbox id (the instance's name) and its
/// instance.
#[derive(Debug, Clone)]
pub(crate) struct Pooled {
    pub id: String,
    pub instance_id: String,
}

#[derive(Default)]
struct Slot {
    /// The template's name (for the stats).
    template: String,
    ready: VecDeque<Pooled>,
    /// Whose create asked for this pair last: the fill makes its instances as them.
    filler: Option<Principal>,
    /// The last fill failed: no retry until a create asks again.
    failed: bool,
    hits: u64,
    misses: u64,
}

/// The pools, by (project id, image id).
#[derive(Default)]
pub(crate) struct Pool {
    size: AtomicU32,
    slots: Mutex<HashMap<(String, String), Slot>>,
}

/// How a sandbox's instance is asked for, pooled or cold: the same request either way,
/// so a pooled sandbox is indistinguishable from a cold one once handed out. `image` is
/// the template's image id (resolved in the project already).
pub(crate) fn sandbox_instance_request(
    id: &str,
    image: &str,
    project: &str,
    env: BTreeMap<String, String>,
) -> CreateInstanceRequest {
    let mut labels = BTreeMap::new();
    labels.insert("roost.sandbox".to_string(), id.to_string());
    CreateInstanceRequest {
        name: id.to_string(),
        image: image.to_string(),
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
    pub(crate) async fn take_pooled(&self, ctx: &RequestContext, p: &Principal, key: &PoolKey) -> Option<Pooled> {
        if self.sandbox_pool_size() == 0 {
            return None;
        }
        let taken = {
            let mut slots = self.pool().slots.lock().expect("pool");
            let slot = slots.entry(key.slot()).or_default();
            slot.template.clone_from(&key.template);
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
            self.node()?.driver_for("container")?.resume(&pooled.instance_id).await.map_err(node_error)?;
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
    pub(crate) fn note_pool_miss(&self, key: &PoolKey) {
        if self.sandbox_pool_size() > 0 {
            let mut slots = self.pool().slots.lock().expect("pool");
            let slot = slots.entry(key.slot()).or_default();
            slot.template.clone_from(&key.template);
            slot.misses += 1;
        }
    }

    /// Asks the `sandbox_pool` task to top the pool of this project and template image
    /// up to the pool size. `p` is the caller whose create asked for the pair: it has
    /// write access to the project, and the instances are made as it (the creator is
    /// rewritten to whoever receives one).
    pub(crate) fn refill_sandbox_pool(&self, p: &Principal, pool: &PoolKey) {
        if self.sandbox_pool_size() == 0 {
            return;
        }
        {
            let mut slots = self.pool().slots.lock().expect("pool");
            let slot = slots.entry(pool.slot()).or_default();
            slot.template.clone_from(&pool.template);
            slot.filler = Some(p.clone());
            slot.failed = false;
        }
        self.tasks().activator(SANDBOX_POOL.name).activate();
    }

    /// Tops up every pool a create asked for, one sandbox at a time (so a fill never
    /// competes with the creates it serves for more than one start).
    async fn fill_sandbox_pools(&self) -> crate::Result<serde_json::Value> {
        let (mut started, mut failed) = (0, 0);
        let wanted: Vec<(PoolKey, Principal)> = {
            let slots = self.pool().slots.lock().expect("pool");
            slots
                .iter()
                .filter(|(_, s)| !s.failed)
                .filter_map(|((project_id, image_id), s)| {
                    let pool = PoolKey {
                        project_id: project_id.clone(),
                        image_id: image_id.clone(),
                        template: s.template.clone(),
                    };
                    s.filler.clone().map(|p| (pool, p))
                })
                .collect()
        };
        for (pool, p) in wanted {
            let key = pool.slot();
            loop {
                let missing = {
                    let slots = self.pool().slots.lock().expect("pool");
                    slots.get(&key).is_some_and(|s| s.ready.len() < self.sandbox_pool_size() as usize)
                };
                if !missing || self.shutdown().is_cancelled() {
                    break;
                }
                match self.prestart_sandbox(&p, &pool).await {
                    Ok(pooled) => {
                        started += 1;
                        self.pool().slots.lock().expect("pool").entry(key.clone()).or_default().ready.push_back(pooled)
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(project = %pool.project_id, template = %pool.template, image = %pool.image_id, error = %e.message, "cannot fill the sandbox pool");
                        if let Some(slot) = self.pool().slots.lock().expect("pool").get_mut(&key) {
                            slot.failed = true;
                        }
                        break;
                    }
                }
            }
        }
        let ready: usize = self.pool().slots.lock().expect("pool").values().map(|s| s.ready.len()).sum();
        Ok(serde_json::json!({ "started": started, "failed": failed, "ready": ready }))
    }

    /// Starts one sandbox instance of the pool's image and freezes it.
    async fn prestart_sandbox(&self, p: &Principal, pool: &PoolKey) -> crate::Result<Pooled> {
        let ctx = RequestContext::default();
        let id = IdKind::Sandbox.generate();
        let req = sandbox_instance_request(&id, &pool.image_id, &pool.project_id, BTreeMap::new());
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
                .map(|((project, image), s)| SandboxPoolStats {
                    project_id: project.clone(),
                    template: s.template.clone(),
                    image_id: image.clone(),
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
    /// Empties the pool of this project and image, deleting its frozen sandboxes (a
    /// template rebuilt or deleted: they run the old contents).
    pub(crate) async fn drain_sandbox_pool(&self, p: &Principal, project: &str, image_id: &str) {
        let drained: Vec<Pooled> = {
            let mut slots = self.pool().slots.lock().expect("pool");
            match slots.get_mut(&(project.to_string(), image_id.to_string())) {
                Some(slot) => {
                    // Refilled when a create asks for it again, not by the task's period.
                    slot.filler = None;
                    slot.ready.drain(..).collect()
                }
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
