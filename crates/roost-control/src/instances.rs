//! Instances: create, list, show, start, stop, restart, delete, wait, exec, logs, files
//! and stats. Changes set the desired state and wake the reconciler, which moves the
//! node toward it and reports what it observes.

use std::collections::{BTreeMap, HashMap};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use roost_api::ids::IdKind;
use roost_api::instances::{
    CreateInstanceRequest, Desired, Instance, InstanceListParams, InstanceStatus, RestartPolicy, UpdateInstanceRequest,
};
use roost_api::operations::Operation;
use roost_api::projects::DEFAULT_PROJECT;
use roost_api::{ListParams, Page};
use roost_node::api::Instances;
use roost_store::instances::{InstanceRow, SORT_KEYS};
use roost_store::{StoreError, now_ms};
use tokio::sync::broadcast::error::RecvError;

use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::images::node_error;
use crate::kernel::Change;
use crate::list::list_query;
use crate::node::Node;
use crate::operations::OperationHandle;
use crate::policy::ProjectWrite;
use crate::{Control, Error, Principal, RequestContext, Result};
use roost_store::sqlx::AnyConnection;

/// Default and bounds of an instance's size.
pub const DEFAULT_CPUS: f64 = 1.0;
pub const DEFAULT_MEMORY: u64 = 512 << 20;
const MIN_MEMORY: u64 = 4 << 20;
/// Seconds between SIGTERM and SIGKILL when none is given.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The compute side of the control plane's state.
#[derive(Default)]
pub(crate) struct Compute {
    pub node: std::sync::OnceLock<Arc<Node>>,
    /// Set once the reconciler's start-up cleanup ran: kicks reconcile at once from then.
    pub reconciler_ready: std::sync::atomic::AtomicBool,
    /// Operations waiting for the reconciler to reach the desired state, by instance.
    pub ops: Mutex<HashMap<String, Vec<OperationHandle>>>,
    /// One reconcile at a time per instance.
    pub locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Restarts asked for, by instance.
    pub restarts: Mutex<std::collections::HashSet<String>>,
    /// SIGTERM-to-SIGKILL grace of pending stops, by instance.
    pub graces: Mutex<HashMap<String, Duration>>,
    /// Instances to reconcile again once the running step ends.
    pub dirty: Mutex<std::collections::HashSet<String>>,
    /// The sampler's last reading per instance: CPU time (ns) and when.
    pub last_cpu: Mutex<HashMap<String, (u64, std::time::Instant)>>,
    /// The latest sample per instance, for `stats`.
    pub latest: Mutex<HashMap<String, roost_api::instances::InstanceStats>>,
    /// Image digests already resolved on the node, by image id (resolving the builtin
    /// image hashes the host's busybox).
    pub digests: Mutex<HashMap<String, String>>,
    /// One network sync at a time, from reading the store to the node's apply: two
    /// interleaved would let the older view be applied last (a just-started instance's
    /// port gone from the rules until the next drift check).
    pub network_sync: tokio::sync::Mutex<()>,
}

/// The API view of an instance read on `conn`, so a change's event shows the instance
/// as that change leaves it.
pub(crate) async fn instance_view(conn: &mut AnyConnection, row: &InstanceRow) -> Result<Instance> {
    let image = roost_store::images::name_in(conn, &row.image_id).await?.unwrap_or_else(|| row.image_id.clone());
    let mut api = row.to_api(&image);
    let (nics, groups) = roost_store::networks::network_views_in(conn, std::slice::from_ref(&row.id)).await?;
    api.nics = nics.into_iter().map(crate::networks::nic_view).collect();
    api.security_groups = groups.into_iter().map(|(_, g)| g).collect();
    api.volumes = roost_store::volumes::volumes_of_instance(conn, &row.id)
        .await?
        .into_iter()
        .map(crate::volumes::instance_volume)
        .collect();
    api.cloned_from = roost_store::volumes::cloned_from_in(conn, &row.id).await?;
    Ok(api)
}

impl Change<'_> {
    /// Raises `kind` (`instance.created`, `instance.updated`) with the instance as this
    /// change leaves it.
    pub(crate) async fn instance_event(&mut self, kind: &str, id: &str) -> Result<()> {
        let Some(row) = roost_store::instances::get_in(self.conn(), id).await? else { return Ok(()) };
        let api = instance_view(self.conn(), &row).await?;
        self.event(kind, "instance", id, &api, Audience::Project(row.project_id.clone()));
        Ok(())
    }
}

fn check_env_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 255
        && k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Control {
    /// Attaches the node and starts the background tasks that drive it: the network
    /// sync, the reconciler, the metrics sampler, backup policies and the warm pool.
    pub fn attach_node(&self, node: Node) {
        let _ = self.inner.compute.node.set(Arc::new(node));
        let tasks = self.tasks();
        tasks.register(crate::networks::NETWORK_SYNC, crate::networks::NetworkSync::new(self.clone()));
        let reconciler = crate::reconciler::InstanceReconciler { control: self.clone(), cleaned: false };
        tasks.register(crate::reconciler::INSTANCE_RECONCILER, reconciler);
        tasks.register(crate::samples::INSTANCE_METRICS, crate::samples::InstanceMetrics::new(self.clone()));
        tasks.register(crate::volumes::BACKUP_POLICIES, crate::volumes::BackupPolicies(self.clone()));
        tasks.register(crate::sandbox_pool::SANDBOX_POOL, crate::sandbox_pool::SandboxPoolFill(self.clone()));
    }

    pub(crate) fn node(&self) -> Result<Arc<Node>> {
        self.inner.compute.node.get().cloned().ok_or_else(|| {
            Error::new(
                roost_api::ErrorCode::Unavailable,
                "this server runs no compute node (instances are unavailable)",
            )
        })
    }

    /// The driver of an instance by id (its row's type; the container driver for an id
    /// without a row).
    pub(crate) async fn driver_of(&self, id: &str) -> Result<Arc<dyn Instances>> {
        let node = self.node()?;
        match self.store().instance(id).await? {
            Some(row) => node.driver_for(&row.kind),
            None => node.driver_for("container"),
        }
    }

    pub(crate) fn compute(&self) -> &Compute {
        &self.inner.compute
    }

    /// The API view of a row (with its image's name, NICs, groups and volumes).
    pub(crate) async fn instance_api(&self, row: &InstanceRow) -> Instance {
        self.instance_apis(std::slice::from_ref(row)).await.remove(0)
    }

    /// The API view of instances: images, NICs, groups, volumes and lineage are read in
    /// a fixed number of queries for all of them (a failed read leaves its part empty).
    pub(crate) async fn instance_apis(&self, rows: &[InstanceRow]) -> Vec<Instance> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let image_ids: Vec<String> = rows.iter().map(|r| r.image_id.clone()).collect();
        let images = self.store().image_names(&image_ids).await.unwrap_or_default();
        let mut views = self.instance_network_views(&ids).await;
        let mut volumes = self.instances_volumes(&ids).await;
        let sources = self.store().clone_sources(&ids).await.unwrap_or_default();
        rows.iter()
            .map(|row| {
                let mut api = row.to_api(images.get(&row.image_id).unwrap_or(&row.image_id));
                (api.nics, api.security_groups) = views.remove(&row.id).unwrap_or_default();
                api.volumes = volumes.remove(&row.id).unwrap_or_default();
                api.cloned_from = sources.get(&row.id).cloned();
                api
            })
            .collect()
    }

    /// An instance the principal may see, by id or name (`project` narrows names).
    pub(crate) async fn instance_row(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<InstanceRow> {
        let project_id = match project {
            Some(k) => Some(self.project_access(p, k).await?.project.id),
            None => None,
        };
        self.store()
            .instance_by_key(key, &self.project_scope(p), project_id.as_deref())
            .await?
            .ok_or_else(|| Error::not_found("instance", key))
    }

    /// The instance and the principal's role in its project, for changes.
    async fn writable_instance(
        &self,
        p: &Principal,
        key: &str,
        project: Option<&str>,
    ) -> Result<(InstanceRow, ProjectWrite)> {
        let row = self.instance_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        Ok((row, proof))
    }

    pub async fn create_instance(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateInstanceRequest,
    ) -> Result<(Instance, Operation)> {
        let access = self.project_access(p, req.project.as_deref().unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        let cpus = req.cpus.unwrap_or(DEFAULT_CPUS);
        v.check(cpus > 0.0 && cpus <= 256.0 && cpus.is_finite(), "cpus", "must be more than 0 and at most 256");
        let memory = req.memory_bytes.unwrap_or(DEFAULT_MEMORY);
        v.check((MIN_MEMORY..=(1 << 40)).contains(&memory), "memory_bytes", "must be between 4 MiB and 1 TiB");
        for (k, val) in &req.env {
            v.check(check_env_key(k), "env", format!("'{k}' is not a valid variable name"));
            v.check(val.len() <= 32 * 1024, "env", format!("the value of '{k}' is longer than 32 KiB"));
        }
        for (k, val) in &req.labels {
            check_label(&mut v, k, val);
        }
        if let Some(cmd) = &req.command {
            v.check(!cmd.is_empty() && !cmd[0].is_empty(), "command", "must name a program");
        }
        let kind = req.kind.clone().unwrap_or_else(|| "container".into());
        v.check(kind == "container" || kind == "vm", "type", "must be container or vm");
        if let Some(script) = &req.user_data {
            v.check(script.len() <= 64 * 1024, "user_data", "must be at most 64 KiB");
        }
        v.check(req.ssh_keys.len() <= 32, "ssh_keys", "at most 32 keys");
        let mut capabilities_add: Vec<String> = Vec::new();
        for cap in &req.capabilities_add {
            match roost_node::normalize_capability(cap) {
                Ok(cap) if !capabilities_add.contains(&cap) => capabilities_add.push(cap),
                Ok(_) => {}
                Err(message) => {
                    v.check(false, "capabilities_add", message);
                }
            }
        }
        v.check(
            kind != "vm" || capabilities_add.is_empty(),
            "capabilities_add",
            "a VM has its own kernel: capabilities are set inside it",
        );
        v.check(
            kind != "vm" || req.command.is_none(),
            "command",
            "a VM runs its image's init; run commands in it with exec",
        );
        v.finish()?;
        let image = self.image_for_project(&access.project.id, &req.image).await.map_err(|_| {
            Error::validation(vec![roost_api::FieldError {
                field: "image".into(),
                message: format!("no image named '{}'", req.image),
            }])
        })?;
        if image.status() != roost_api::images::ImageStatus::Ready {
            return Err(Error::unprocessable(format!("image '{}' is {}", image.name, image.status().as_str())));
        }
        let node = self.node()?;
        if kind == "vm" {
            node.driver_for("vm")?;
            let digest = self.image_digest(&image).await?;
            if !node.image_has_command(&digest, "/usr/sbin/qemu-ga").await.map_err(node_error)? {
                return Err(Error::validation(vec![roost_api::FieldError {
                    field: "image".into(),
                    message: format!(
                        "image '{}' has no qemu-guest-agent, which a VM needs (Debian images from `roost image build` have it)",
                        image.name
                    ),
                }]));
            }
        }
        // A command that is not in the image is the caller's mistake: say so now rather
        // than leave an instance in error.
        if let Some(cmd) = req.command.as_ref().and_then(|c| c.first()) {
            let digest = self.image_digest(&image).await?;
            if !node.image_has_command(&digest, cmd).await.map_err(node_error)? {
                return Err(Error::validation(vec![roost_api::FieldError {
                    field: "command".into(),
                    message: format!("'{cmd}' is not in image '{}'", image.name),
                }]));
            }
        }
        // The caller's own keys, by name or id; a key made with a restricted or expiring
        // token goes only into its project's instances, and only until it ends.
        let mut authorized = Vec::new();
        let checked_at = now_ms();
        for key in &req.ssh_keys {
            let refuse =
                |message: String| Error::validation(vec![roost_api::FieldError { field: "ssh_keys".into(), message }]);
            let Some(row) = self.store().ssh_key_by_key(&p.user_id, key).await? else {
                return Err(refuse(format!("no SSH key named '{key}'")));
            };
            if row.project_id.as_deref().is_some_and(|only| only != access.project.id) {
                return Err(refuse(format!(
                    "SSH key '{key}' was made with a token restricted to another project; it goes only into that project's instances"
                )));
            }
            if row.expires_at.is_some_and(|at| at <= checked_at) {
                return Err(refuse(format!("SSH key '{key}' has expired (it ended with the token that made it)")));
            }
            authorized.push(row.public_key);
        }
        self.ensure_project_defaults(&access.project.id).await?;
        let nics = self.resolve_networks(p, &access.project.id, &req.networks).await?;
        let groups = self.resolve_groups(p, &access.project.id, &req.security_groups).await?;
        let start = req.start.unwrap_or(true);
        let now = now_ms();
        let mut row = InstanceRow {
            id: IdKind::Instance.generate(),
            project_id: access.project.id.clone(),
            name: req.name.clone(),
            kind: kind.clone(),
            image_id: image.id.clone(),
            cpus_milli: (cpus * 1000.0).round() as i64,
            memory_bytes: memory as i64,
            command: req.command.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default()),
            env: serde_json::to_string(&req.env).unwrap_or_else(|_| "{}".into()),
            labels: serde_json::to_string(&req.labels).unwrap_or_else(|_| "{}".into()),
            restart_policy: req.restart.unwrap_or_default().as_str().into(),
            desired: if start { Desired::Running } else { Desired::Stopped }.as_str().into(),
            status: if start { InstanceStatus::Pending } else { InstanceStatus::Stopped }.as_str().into(),
            status_reason: None,
            ip: None,
            exit_code: None,
            restart_count: 0,
            created_by: Some(p.user_id.clone()),
            created_at: now,
            updated_at: now,
            started_at: None,
            capabilities_add: serde_json::to_string(&capabilities_add).unwrap_or_else(|_| "[]".into()),
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        let requested = [("instances", 1), ("vcpus", row.cpus_milli), ("memory_bytes", row.memory_bytes)];
        self.check_quota(tx.conn(), &access.project, &requested).await?;
        roost_store::instances::insert(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!(
                "an instance named '{}' already exists in project '{}'",
                req.name, access.project.name
            )),
            e => e.into(),
        })?;
        for (idx, (net, ip)) in nics.iter().enumerate() {
            let nic = Self::allocate_nic(tx.conn(), net, &row.id, idx as i64, *ip).await?;
            if idx == 0 {
                row.ip = Some(nic.ip);
            }
        }
        roost_store::networks::set_instance_groups(tx.conn(), &row.id, &groups).await?;
        self.attach_on_create(p, tx.conn(), &access.project.id, &row.id, &req.volumes).await?;
        if !authorized.is_empty() || req.user_data.is_some() {
            let boot = roost_store::ssh_keys::FirstBootRow {
                instance_id: row.id.clone(),
                ssh_keys: serde_json::to_string(&authorized).unwrap_or_else(|_| "[]".into()),
                user_data: req.user_data.clone(),
                done_at: None,
            };
            roost_store::ssh_keys::insert_first_boot(tx.conn(), &boot).await?;
        }
        let op = self.new_operation(&mut tx, p, "instance.create", Some(("instance", &row.id))).await?;
        tx.audit("instance.create", Some(("instance", &row.id)), body.as_ref()).await?;
        tx.instance_event("instance.created", &row.id).await?;
        tx.commit().await?;
        let snapshot = op.to_api();
        if start {
            self.track(&row.id, op);
            self.kick(&row.id);
        } else {
            op.succeed(None).await;
        }
        Ok((self.instance_api(&row).await, snapshot))
    }

    pub(crate) fn track(&self, id: &str, op: OperationHandle) {
        self.compute().ops.lock().expect("ops").entry(id.to_string()).or_default().push(op);
    }

    /// Ends the operations waiting on an instance.
    pub(crate) async fn settle(&self, id: &str, result: std::result::Result<(), Error>) {
        let ops = self.compute().ops.lock().expect("ops").remove(id).unwrap_or_default();
        for op in ops {
            match &result {
                Ok(()) => op.succeed(Some(serde_json::json!({"instance_id": id}))).await,
                Err(e) => op.fail(e).await,
            }
        }
    }

    pub async fn list_instances(&self, p: &Principal, params: &InstanceListParams) -> Result<Page<Instance>> {
        let list = ListParams {
            limit: params.limit,
            cursor: params.cursor.clone(),
            sort: params.sort.clone(),
            name: params.name.clone(),
        };
        let query = list_query(&list, SORT_KEYS)?;
        let project = match &params.project {
            Some(k) => Some(self.project_access(p, k).await?.project.id),
            None => None,
        };
        let mut v = Validator::default();
        if let Some(s) = &params.status {
            v.check(InstanceStatus::parse(s).is_some(), "status", format!("unknown status '{s}'"));
        }
        let label = match params.label.as_deref() {
            Some(l) => match l.split_once('=') {
                Some((k, val)) => Some((k, val)),
                None => {
                    v.add("label", "must be key=value");
                    None
                }
            },
            None => None,
        };
        v.finish()?;
        let (rows, next_cursor) = self
            .store()
            .list_instances(&self.project_scope(p), project.as_deref(), params.status.as_deref(), label, &query)
            .await?;
        let items = self.instance_apis(&rows).await;
        Ok(Page { items, next_cursor })
    }

    pub async fn get_instance(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<Instance> {
        let row = self.instance_row(p, key, project).await?;
        Ok(self.instance_api(&row).await)
    }

    #[allow(clippy::too_many_arguments)]
    async fn change_desired(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        desired: Desired,
        action: &str,
        grace: Option<Duration>,
    ) -> Result<(InstanceRow, Operation)> {
        let (row, proof) = self.writable_instance(p, key, project).await?;
        if row.desired() == Desired::Terminated {
            return Err(Error::conflict(format!("instance '{}' is being deleted", row.name)));
        }
        // Only once the caller may change it: a refused restart must not restart it later.
        if let Some(grace) = grace {
            self.compute().graces.lock().expect("graces").insert(row.id.clone(), grace);
        }
        if action == "instance.restart" {
            self.compute().restarts.lock().expect("restarts").insert(row.id.clone());
        }
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::instances::set_desired(tx.conn(), &row.id, desired, now_ms()).await?;
        let op = self.new_operation(&mut tx, p, action, Some(("instance", &row.id))).await?;
        tx.audit(action, Some(("instance", &row.id)), None).await?;
        tx.commit().await?;
        let snapshot = op.to_api();
        self.track(&row.id, op);
        self.kick(&row.id);
        Ok((row, snapshot))
    }

    pub async fn start_instance(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
    ) -> Result<Operation> {
        Ok(self.change_desired(ctx, p, key, project, Desired::Running, "instance.start", None).await?.1)
    }

    pub async fn stop_instance(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        grace: Duration,
    ) -> Result<Operation> {
        Ok(self.change_desired(ctx, p, key, project, Desired::Stopped, "instance.stop", Some(grace)).await?.1)
    }

    pub async fn restart_instance(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        grace: Duration,
    ) -> Result<Operation> {
        Ok(self.change_desired(ctx, p, key, project, Desired::Running, "instance.restart", Some(grace)).await?.1)
    }

    /// Changes labels (a merge: `null` removes one) and the restart policy.
    pub async fn update_instance(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: UpdateInstanceRequest,
        if_match: Option<&str>,
    ) -> Result<Instance> {
        let (row, proof) = self.writable_instance(p, key, project).await?;
        let mut v = Validator::default();
        for (k, val) in req.labels.iter().flatten().flatten() {
            check_label(&mut v, k, val.as_deref().unwrap_or_default());
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        // The merge reads the labels under the row lock, so concurrent patches all land.
        tx.lock_row("instances", &row.id).await?;
        tx.check_if_match("instances", &row.id, if_match, self.get_instance(p, &row.id, None)).await?;
        let current = roost_store::instances::get_in(tx.conn(), &row.id)
            .await?
            .ok_or_else(|| Error::not_found("instance", key))?;
        let mut labels = current.labels();
        match req.labels {
            None => {}
            Some(None) => labels.clear(),
            Some(Some(changes)) => {
                for (k, val) in changes {
                    match val {
                        Some(val) => labels.insert(k, val),
                        None => labels.remove(&k),
                    };
                }
            }
        }
        let mut v = Validator::default();
        v.check(labels.len() <= 64, "labels", "at most 64 labels");
        v.finish()?;
        let restart = req.restart.map(RestartPolicy::as_str).unwrap_or(current.restart_policy.as_str());
        let labels = serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into());
        roost_store::instances::set_labels_and_restart(tx.conn(), &row.id, &labels, restart, now_ms()).await?;
        tx.audit("instance.update", Some(("instance", &row.id)), body.as_ref()).await?;
        tx.instance_event("instance.updated", &row.id).await?;
        tx.commit().await?;
        self.get_instance(p, &row.id, None).await
    }

    /// Deletes an instance; a running one only with `force`.
    pub async fn delete_instance(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        force: bool,
        if_match: Option<&str>,
    ) -> Result<Operation> {
        let (row, proof) = self.writable_instance(p, key, project).await?;
        let active = matches!(
            row.status(),
            InstanceStatus::Running
                | InstanceStatus::Provisioning
                | InstanceStatus::Pending
                | InstanceStatus::Rebooting
        ) && row.desired() != Desired::Terminated;
        if active && !force {
            return Err(Error::conflict(format!(
                "instance '{}' is {}; stop it first or delete with force",
                row.name,
                row.status().as_str()
            )));
        }
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("instances", &row.id, if_match, self.get_instance(p, &row.id, None)).await?;
        roost_store::instances::set_desired(tx.conn(), &row.id, Desired::Terminated, now_ms()).await?;
        let op = self.new_operation(&mut tx, p, "instance.delete", Some(("instance", &row.id))).await?;
        tx.audit("instance.delete", Some(("instance", &row.id)), None).await?;
        tx.commit().await?;
        let snapshot = op.to_api();
        self.track(&row.id, op);
        self.kick(&row.id);
        Ok(snapshot)
    }

    /// Blocks until the instance reaches `status` (for `terminated`: until it is gone),
    /// the wait ends, or the server shuts down; returns it as it is then (or 404 once
    /// deleted while waiting for something else).
    pub async fn wait_instance(
        &self,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        status: InstanceStatus,
        wait: Duration,
    ) -> Result<Instance> {
        let mut updates = self.events().subscribe();
        let row = self.instance_row(p, key, project).await?;
        let id = row.id.clone();
        let deadline = tokio::time::Instant::now() + wait.min(crate::operations::MAX_WAIT);
        let mut current = self.instance_api(&row).await;
        loop {
            if current.status == status {
                return Ok(current);
            }
            // Waiting for running is over once it has failed.
            if status == InstanceStatus::Running && current.status == InstanceStatus::Error {
                return Ok(current);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(current),
                _ = self.shutdown().cancelled() => return Ok(current),
                received = updates.recv() => match received {
                    Ok(ev) if ev.event.resource_id == id => {
                        if ev.event.kind == "instance.deleted" {
                            if status == InstanceStatus::Terminated {
                                current.status = InstanceStatus::Terminated;
                                return Ok(current);
                            }
                            return Err(Error::not_found("instance", key));
                        }
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Ok(current),
                },
            }
            match self.store().instance(&id).await? {
                Some(row) => current = self.instance_api(&row).await,
                None if status == InstanceStatus::Terminated => {
                    current.status = InstanceStatus::Terminated;
                    return Ok(current);
                }
                None => return Err(Error::not_found("instance", key)),
            }
        }
    }

    /// Checks the caller may run commands in (and copy files to and from) the instance,
    /// and that it runs; returns its id.
    pub async fn instance_for_exec(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<String> {
        let (row, _) = self.writable_instance(p, key, project).await?;
        // Running commands is never a read, whatever the HTTP method.
        p.require_scope(roost_api::tokens::Scope::Write)?;
        if row.status() != InstanceStatus::Running {
            return Err(Error::conflict(format!("instance '{}' is {}, not running", row.name, row.status().as_str())));
        }
        Ok(row.id)
    }

    /// Runs a command in an instance: every door's commands pass here, so a string the
    /// node cannot take is refused here, whoever sent it.
    pub async fn exec(&self, id: &str, request: roost_node::ExecRequest) -> Result<roost_node::ExecSession> {
        let mut v = Validator::default();
        for arg in &request.cmd {
            crate::error::check_no_nul(&mut v, "cmd", arg);
        }
        for (key, value) in &request.env {
            crate::error::check_no_nul(&mut v, "env", key);
            crate::error::check_no_nul(&mut v, "env", value);
        }
        if let Some(cwd) = &request.cwd {
            crate::error::check_no_nul(&mut v, "cwd", cwd);
        }
        v.finish()?;
        self.driver_of(id).await?.exec(id, request).await.map_err(node_error)
    }

    pub async fn instance_logs(
        &self,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        query: roost_node::LogQuery,
    ) -> Result<roost_node::LogLines> {
        let row = self.instance_row(p, key, project).await?;
        let driver = self.node()?.driver_for(&row.kind)?;
        driver.logs(&row.id, query).await.map_err(node_error)
    }

    pub async fn copy_in(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        path: &str,
        tar: roost_node::TarStream,
    ) -> Result<()> {
        check_file_path(path)?;
        let id = self.instance_for_exec(p, key, project).await?;
        self.driver_of(&id).await?.copy_in(&id, path, tar).await.map_err(node_error)?;
        self.audit_standalone(
            ctx,
            &p.user_id,
            p.token_id.clone(),
            "instance.files.write",
            Some(("instance", &id)),
            "success",
        )
        .await;
        Ok(())
    }

    pub async fn copy_out(
        &self,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        path: &str,
    ) -> Result<roost_node::TarStream> {
        check_file_path(path)?;
        let id = self.instance_for_exec(p, key, project).await?;
        self.driver_of(&id).await?.copy_out(&id, path).await.map_err(node_error)
    }

    /// Labels of an instance as the sampler and `/metrics` name it.
    pub(crate) fn metric_labels(row: &InstanceRow) -> BTreeMap<&'static str, String> {
        BTreeMap::from([("instance", row.id.clone()), ("name", row.name.clone()), ("project", row.project_id.clone())])
    }
}

/// Whether an instance whose main process ended should be started again.
pub fn should_restart(policy: RestartPolicy, exit_code: i32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != 0,
        RestartPolicy::Never => false,
    }
}

/// Labels: a key of 1-63 characters without `=`, a value of at most 255.
fn check_label(v: &mut Validator, key: &str, value: &str) {
    let ok = !key.is_empty() && key.len() <= 63 && value.len() <= 255 && !key.contains('=');
    v.check(ok, "labels", format!("'{key}' is not a valid label (key 1-63 characters without '=', value at most 255)"));
}

/// `?path=` of the instance file routes: required (an empty one would mean the whole
/// root file system), and free of NUL bytes.
fn check_file_path(path: &str) -> Result<()> {
    let mut v = Validator::default();
    v.check(!path.is_empty(), "path", "is required: the file or directory in the instance");
    crate::error::check_no_nul(&mut v, "path", path);
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert!(should_restart(RestartPolicy::Always, 0));
        assert!(should_restart(RestartPolicy::OnFailure, 1));
        assert!(!should_restart(RestartPolicy::OnFailure, 0));
        assert!(!should_restart(RestartPolicy::Never, 137));
    }

    #[test]
    fn env_names() {
        assert!(check_env_key("PATH") && check_env_key("_x1"));
        assert!(!check_env_key("1X") && !check_env_key("A-B") && !check_env_key(""));
    }
}
