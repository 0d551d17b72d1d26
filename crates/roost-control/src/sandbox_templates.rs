//! Sandbox templates built from setup commands (`roost sandbox template build NAME
//! --from BASE --run CMD…`).
//!
//! A build starts a throwaway container from the base template's image (a real instance
//! on the project's default network, so `pip install` reaches the network), runs each
//! command in order with `sh -c`, copies the resulting root filesystem into the image
//! store and deletes the container. The template is then an image row of the project
//! (so sandboxes, the warm pool and instances resolve it by name like any image) plus a
//! `sandbox_templates` row with how it was built and its cache counters.
//!
//! Cache: the key is the SHA-256 of the base image's digest and the ordered commands.
//! A build whose key matches a ready template of the same project is a hit: nothing runs,
//! the existing image is (re)tagged to the name. The cache is per project (a build never
//! learns what another project built); the store digest of a template's image is the
//! SHA-256 of the project id and the key, so two projects never share contents.

use std::collections::HashMap;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use roost_api::ErrorCode;
use roost_api::ids::IdKind;
use roost_api::images::ImageStatus;
use roost_api::instances::{CreateInstanceRequest, InstanceStatus};
use roost_api::operations::Operation;
use roost_api::projects::DEFAULT_PROJECT;
use roost_api::sandbox_templates::{
    BuildSandboxTemplateRequest, DEFAULT_BASE, MAX_COMMAND_LEN, MAX_COMMANDS, SandboxTemplate, SandboxTemplateBuild,
    SandboxTemplateDetail,
};
use roost_store::images::{BUILTIN, ImageRow};
use roost_store::list::ProjectScope;
use roost_store::now_ms;
use roost_store::sandbox_templates::TemplateRow;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::images::node_error;
use crate::jobs::template_build::TemplateBuild;
use crate::operations::OperationHandle;
use crate::{Control, Error, Principal, RequestContext, Result};

/// The image source of a built template.
pub const SOURCE: &str = "template";
/// How much of the commands' output is kept (the end of it).
const LOG_LIMIT: usize = 64 * 1024;
/// The build container's size (package installs want more than a sandbox's default).
const BUILD_CPUS: f64 = 1.0;
const BUILD_MEMORY: u64 = 1 << 30;
/// Progress messages with the output's latest line, at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(300);

/// The cache key: SHA-256 over the base image's digest and the ordered commands.
pub fn cache_key(base_digest: &str, commands: &[String]) -> String {
    let json = serde_json::json!({"base": base_digest, "commands": commands});
    hex::encode(Sha256::digest(json.to_string().as_bytes()))
}

/// Where a project's template with this cache key lives in the node's image store.
fn store_digest(project_id: &str, key: &str) -> String {
    hex::encode(Sha256::digest(format!("sandbox-template\0{project_id}\0{key}").as_bytes()))
}

type BuildLocks = Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>;

/// One build per project and name at a time (a second waits, then usually hits).
fn build_lock(project_id: &str, name: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<BuildLocks> = OnceLock::new();
    let locks = LOCKS.get_or_init(Mutex::default);
    locks.lock().expect("template locks").entry((project_id.to_string(), name.to_string())).or_default().clone()
}

/// The end of a log, cut at a character boundary.
fn tail(log: &str, max: usize) -> &str {
    if log.len() <= max {
        return log;
    }
    let mut start = log.len() - max;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

fn api(image: &ImageRow, t: Option<&TemplateRow>) -> SandboxTemplate {
    SandboxTemplate {
        id: image.id.clone(),
        name: image.name.clone(),
        project_id: (image.project_id != BUILTIN).then(|| image.project_id.clone()),
        builtin: image.project_id == BUILTIN,
        base: t.map(|t| t.base.clone()),
        cache_key: t.map(|t| t.cache_key.clone()),
        digest: image.digest.clone(),
        commands: t.map(TemplateRow::commands).unwrap_or_default(),
        size_bytes: image.size_bytes.map(|s| s as u64),
        status: image.status(),
        description: image.description.clone(),
        hits: t.map_or(0, |t| t.hits as u64),
        misses: t.map_or(0, |t| t.misses as u64),
        last_used_at: t.and_then(|t| t.last_used_at).map(roost_store::to_time),
        build_seconds: t.and_then(|t| t.build_ms).map(|ms| ms as f64 / 1000.0),
        created_at: roost_store::to_time(image.created_at),
    }
}

/// What a build produced (a real one, or the cached one a hit reuses).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Built {
    digest: String,
    size: u64,
    log: String,
    build_ms: i64,
}

impl Built {
    pub(crate) fn new(digest: String, size: u64, log: String, build_ms: i64) -> Built {
        Built { digest, size, log, build_ms }
    }
}

/// What a template build job is given (the build container's name chosen up front, so
/// an undo finds one a crash cut short).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct TemplateBuildParams {
    pub project_id: String,
    pub name: String,
    pub base_id: String,
    pub commands: Vec<String>,
    pub build_instance: String,
    #[serde(default)]
    pub user_id: Option<String>,
}

impl TemplateBuildParams {
    fn user_id(&self) -> &str {
        self.user_id.as_deref().unwrap_or(crate::audit::SYSTEM_ACTOR)
    }
}

/// The template image a build retagged, as it was (for the undo).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Replaced {
    image_id: String,
    digest: String,
    size: i64,
    description: String,
}

/// What a template build's steps found and made.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct TemplateBuildState {
    pub key: String,
    pub base_digest: String,
    pub base_name: String,
    /// Where the template's contents go in the image store.
    pub digest: String,
    /// The image the build container starts from, and how many commands it has applied.
    pub start_image: String,
    pub start_name: String,
    pub cached_steps: usize,
    /// A ready template with the same key exists: nothing runs.
    pub hit: bool,
    pub instance_id: Option<String>,
    pub log: String,
    pub built: Option<Built>,
    pub image_id: Option<String>,
    pub replaced: Option<Replaced>,
    /// When the build container was asked for (ms since the epoch): the build's time.
    pub build_started_at: i64,
}

impl Control {
    /// The builtin templates and the built templates of the projects the principal can
    /// see (or of one project).
    pub async fn list_sandbox_templates(
        &self,
        p: &Principal,
        params: &roost_api::ProjectListParams,
    ) -> Result<roost_api::Page<SandboxTemplate>> {
        let query = crate::list::list_query(&params.paging(), roost_store::list::CREATED_OR_NAME)?;
        let project_id = match &params.project {
            Some(key) => Some(self.project_access(p, key).await?.project.id),
            None => None,
        };
        let builtin: Vec<&str> = crate::templates::BUILTIN_TEMPLATES.iter().map(|t| t.name).collect();
        let (images, next_cursor) =
            self.store().template_images_page(&builtin, &self.project_scope(p), project_id.as_deref(), &query).await?;
        let ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
        let templates: HashMap<String, TemplateRow> =
            self.store().sandbox_templates_of(&ids).await?.into_iter().map(|t| (t.image_id.clone(), t)).collect();
        let mut items = Vec::with_capacity(images.len());
        for image in &images {
            let mut item = api(image, templates.get(&image.id));
            if item.builtin {
                self.fill_builtin(&mut item, image).await;
            }
            items.push(item);
        }
        Ok(roost_api::Page { items, next_cursor })
    }

    /// A builtin template's digest and size once it has been built on this node.
    async fn fill_builtin(&self, item: &mut SandboxTemplate, row: &ImageRow) {
        let digest = self.compute().digests.lock().expect("digests").get(&row.id).cloned();
        if let (Some(digest), Ok(node)) = (digest, self.node()) {
            item.size_bytes = node.image(&digest).await.ok().flatten().map(|i| i.size_bytes);
            item.digest = Some(digest);
        }
    }

    /// A template (builtin or built) by name or id, with its last build's output.
    pub async fn get_sandbox_template(
        &self,
        p: &Principal,
        key: &str,
        project: Option<&str>,
    ) -> Result<SandboxTemplateDetail> {
        let (image, t) = self.template_row(p, key, project).await?;
        let mut template = api(&image, t.as_ref());
        if template.builtin {
            self.fill_builtin(&mut template, &image).await;
        }
        Ok(SandboxTemplateDetail { template, build_log: t.map(|t| t.build_log).unwrap_or_default() })
    }

    async fn template_row(
        &self,
        p: &Principal,
        key: &str,
        project: Option<&str>,
    ) -> Result<(ImageRow, Option<TemplateRow>)> {
        let scope = match project {
            Some(project) => ProjectScope::One(self.project_access(p, project).await?.project.id),
            None => self.project_scope(p),
        };
        let not_found = || Error::not_found("template", key);
        let image = self.store().image_by_key(key, &scope).await?.ok_or_else(not_found)?;
        if image.project_id == BUILTIN {
            return match crate::templates::builtin_template(&image.name) {
                Some(_) => Ok((image, None)),
                None => Err(not_found()),
            };
        }
        let t = self.store().sandbox_template(&image.id).await?.ok_or_else(not_found)?;
        Ok((image, Some(t)))
    }

    /// Starts a build; the operation's result is a [`SandboxTemplateBuild`].
    pub async fn build_sandbox_template(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: BuildSandboxTemplateRequest,
    ) -> Result<Operation> {
        let access = self.project_access(p, req.project.as_deref().unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let project_id = access.project.id.clone();
        let from = req.from.clone().unwrap_or_else(|| DEFAULT_BASE.to_string());
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        v.check(!req.run.is_empty(), "run", "give at least one command");
        v.check(req.run.len() <= MAX_COMMANDS, "run", format!("at most {MAX_COMMANDS} commands"));
        for cmd in &req.run {
            v.check(
                !cmd.trim().is_empty() && cmd.len() <= MAX_COMMAND_LEN && !cmd.contains('\0'),
                "run",
                format!("each command must be 1 to {MAX_COMMAND_LEN} bytes"),
            );
        }
        v.finish()?;
        if crate::images::is_builtin_name(&req.name) {
            return Err(crate::images::builtin_name_taken(&req.name));
        }
        self.node()?;
        let scope = ProjectScope::One(project_id.clone());
        // The base: a builtin template or one of this project's images, ready.
        let base =
            self.store().image_by_key(&from, &scope).await?.ok_or_else(|| Error::not_found("template", &from))?;
        if base.status() != ImageStatus::Ready {
            return Err(Error::unprocessable(format!("template '{from}' is {}", base.status().as_str())));
        }
        if base.name == req.name && base.project_id == project_id {
            return Err(Error::invalid(format!("template '{}' cannot be built from itself", req.name)));
        }
        // The name may be taken only by a template (a rebuild), not by another image.
        if let Some(existing) = self.store().image_by_key(&req.name, &scope).await?
            && existing.project_id == project_id
            && existing.source != SOURCE
        {
            return Err(Error::conflict(format!(
                "an image named '{}' already exists in project '{}'",
                req.name, access.project.name
            )));
        }
        let mut instance_name = String::from("tmpl-build-");
        roost_api::ids::push_random(&mut instance_name, 8);
        let params = TemplateBuildParams {
            project_id,
            name: req.name.clone(),
            base_id: base.id.clone(),
            commands: req.run.clone(),
            build_instance: instance_name,
            user_id: Some(p.user_id.clone()),
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        let job = self.new_job::<TemplateBuild>(&mut tx, p, None, params).await?;
        tx.audit("sandbox_template.build", Some(("sandbox_template", &req.name)), body.as_ref()).await?;
        tx.commit().await?;
        let snapshot = job.operation();
        tokio::spawn(async move {
            // One build per project and name at a time (a second waits, then usually hits).
            let lock = build_lock(&job.params().project_id, &job.params().name);
            let _guard = lock.lock().await;
            job.run_to_end().await;
        });
        Ok(snapshot)
    }

    /// A build's first step: the base's contents (a builtin template is built now on
    /// first use), the cache key, and where to start: a hit, the longest prefix of the
    /// commands the project has built already, or the base.
    pub(crate) async fn plan_template_build(
        &self,
        params: &TemplateBuildParams,
        op: &mut OperationHandle,
    ) -> Result<TemplateBuildState> {
        let base = self
            .store()
            .image_by_id(&params.base_id)
            .await?
            .ok_or_else(|| Error::not_found("template", &params.base_id))?;
        op.progress(1, &format!("building template '{}' from '{}'", params.name, base.name)).await;
        let base_digest = self.image_digest(&base).await?;
        let commands = &params.commands;
        let key = cache_key(&base_digest, commands);
        let mut state = TemplateBuildState {
            base_name: base.name.clone(),
            digest: store_digest(&params.project_id, &key),
            key: key.clone(),
            base_digest: base_digest.clone(),
            start_image: base.id.clone(),
            start_name: base.name.clone(),
            ..Default::default()
        };
        // A hit: a ready template of this project with this key whose contents are here.
        if let Some((image, t)) = self.cached_template(&params.project_id, &key).await? {
            op.progress(90, &format!("cache hit: the image of template '{}' has key {key}", image.name)).await;
            state.hit = true;
            state.cached_steps = commands.len();
            state.built = Some(Built {
                digest: image.digest.clone().unwrap_or_default(),
                size: image.size_bytes.unwrap_or(0) as u64,
                log: t.build_log.clone(),
                build_ms: t.build_ms.unwrap_or(0),
            });
            return Ok(state);
        }
        // A miss starts from the longest prefix of the commands the project has built
        // already (adding a command re-runs only the new ones).
        for k in (1..commands.len()).rev() {
            if let Some((image, _)) =
                self.cached_template(&params.project_id, &cache_key(&base_digest, &commands[..k])).await?
            {
                (state.start_image, state.start_name, state.cached_steps) = (image.id.clone(), image.name.clone(), k);
                break;
            }
        }
        Ok(state)
    }

    /// The throwaway container of a build (named in the parameters), running.
    pub(crate) async fn start_build_container(
        &self,
        p: &Principal,
        params: &TemplateBuildParams,
        state: &TemplateBuildState,
        op: &mut OperationHandle,
    ) -> Result<String> {
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("roost.template-build".to_string(), params.name.clone());
        let req = CreateInstanceRequest {
            name: params.build_instance.clone(),
            image: state.start_image.clone(),
            project: Some(params.project_id.clone()),
            cpus: Some(BUILD_CPUS),
            memory_bytes: Some(BUILD_MEMORY),
            labels,
            ..Default::default()
        };
        op.progress(2, "starting the build container").await;
        let (instance, _) = self.create_instance(&RequestContext::default(), p, req).await?;
        let running =
            self.wait_instance(p, &instance.id, None, InstanceStatus::Running, Duration::from_secs(120)).await?;
        if running.status != InstanceStatus::Running {
            return Err(Error::new(
                ErrorCode::Unavailable,
                format!(
                    "the build container did not start: {} {}",
                    running.status.as_str(),
                    running.status_reason.unwrap_or_default()
                ),
            ));
        }
        Ok(instance.id)
    }

    /// Removes a build's container, found by its name (also one a crash cut short).
    pub(crate) async fn remove_build_container(&self, params: &TemplateBuildParams) -> Result<()> {
        let scope = ProjectScope::One(params.project_id.clone());
        match self.store().instance_by_key(&params.build_instance, &scope, Some(&params.project_id)).await? {
            Some(row) => self.purge_instance(&row.id).await,
            None => Ok(()),
        }
    }

    /// Runs the commands not cached yet in the build container, in order; the log.
    pub(crate) async fn run_build_commands(
        &self,
        instance_id: &str,
        commands: &[String],
        state: &TemplateBuildState,
        op: &mut OperationHandle,
    ) -> Result<String> {
        let skip = state.cached_steps;
        let mut log = String::new();
        let n = commands.len();
        for (i, cmd) in commands.iter().enumerate().take(skip) {
            log.push_str(&format!("[{}/{n}] $ {cmd} (cached: template '{}')\n", i + 1, state.start_name));
        }
        for (i, cmd) in commands.iter().enumerate().skip(skip) {
            let percent = (5 + i * 80 / n) as u8;
            let header = format!("[{}/{n}] $ {cmd}\n", i + 1);
            log.push_str(&header);
            op.progress(percent, header.trim_end()).await;
            let code = self.run_build_command(instance_id, cmd, i + 1, n, percent, &mut log, op).await?;
            if code != 0 {
                let out = tail(&log, 2000).to_string();
                return Err(Error::unprocessable(format!(
                    "command {} of {n} (`{cmd}`) exited with code {code}; the end of its output:\n{out}",
                    i + 1
                )));
            }
        }
        Ok(log)
    }

    /// Copies the build container's root filesystem into the image store.
    pub(crate) async fn save_build_rootfs(
        &self,
        instance_id: &str,
        params: &TemplateBuildParams,
        state: &TemplateBuildState,
        op: &mut OperationHandle,
    ) -> Result<(String, u64)> {
        op.progress(88, "saving the template's root filesystem").await;
        let source = roost_node::api::ImageSource::Derived {
            base_digest: state.base_digest.clone(),
            commands: params.commands.clone(),
        };
        let node = self.node()?;
        let image = node.capture_image(instance_id, &state.digest, &params.name, source).await.map_err(node_error)?;
        Ok((image.digest, image.size_bytes))
    }

    /// Removes a build's saved contents unless an image row points at them.
    pub(crate) async fn remove_build_contents(&self, digest: &str) -> Result<()> {
        let node = self.node()?;
        let used = self
            .store()
            .list_images(&ProjectScope::All, None)
            .await?
            .iter()
            .any(|r| r.digest.as_deref() == Some(digest));
        if !used && node.image(digest).await.map_err(node_error)?.is_some() {
            node.remove_image(digest).await.map_err(node_error)?;
        }
        Ok(())
    }

    /// Records a build: the template's image row and `sandbox_templates` row, new or
    /// retagged to the new contents; what it replaced goes into the state for the undo.
    pub(crate) async fn record_template_build(
        &self,
        params: &TemplateBuildParams,
        state: &mut TemplateBuildState,
    ) -> Result<()> {
        let (project_id, name, commands) = (&params.project_id, &params.name, &params.commands);
        let built = state.built.clone().ok_or_else(|| Error::internal("a template build recorded before it built"))?;
        let scope = ProjectScope::One(project_id.to_string());
        let existing = self.store().image_by_key(name, &scope).await?.filter(|i| &i.project_id == project_id);
        let now = now_ms();
        let description = format!("sandbox template: {} + {} command(s)", state.base_name, commands.len());
        let row = TemplateRow {
            image_id: existing.as_ref().map(|i| i.id.clone()).unwrap_or_else(|| IdKind::Image.generate()),
            project_id: project_id.to_string(),
            base: state.base_name.clone(),
            base_digest: state.base_digest.clone(),
            cache_key: state.key.clone(),
            commands: serde_json::to_string(commands).unwrap_or_else(|_| "[]".into()),
            build_log: tail(&built.log, LOG_LIMIT).to_string(),
            build_ms: Some(built.build_ms),
            hits: 0,
            misses: 0,
            last_used_at: Some(now),
            updated_at: now,
        };
        // The build was authorized and audited when asked for; recording its result is
        // the server's.
        let mut tx = self.system_change().await?;
        let recorded = match &existing {
            Some(image) => {
                roost_store::sandbox_templates::retag_image(
                    tx.conn(),
                    &image.id,
                    &built.digest,
                    built.size as i64,
                    &description,
                    now,
                )
                .await?;
                roost_store::sandbox_templates::update_build(tx.conn(), &row).await?;
                state.replaced = Some(Replaced {
                    image_id: image.id.clone(),
                    digest: image.digest.clone().unwrap_or_default(),
                    size: image.size_bytes.unwrap_or(0),
                    description: image.description.clone().unwrap_or_default(),
                });
                let mut image = image.clone();
                (image.digest, image.size_bytes, image.description, image.updated_at) =
                    (Some(built.digest.clone()), Some(built.size as i64), Some(description), now);
                image
            }
            None => {
                let image = ImageRow {
                    id: row.image_id.clone(),
                    name: name.to_string(),
                    project_id: project_id.to_string(),
                    source: SOURCE.into(),
                    description: Some(description),
                    status: ImageStatus::Ready.as_str().into(),
                    status_reason: None,
                    digest: Some(built.digest.clone()),
                    size_bytes: Some(built.size as i64),
                    spec: serde_json::to_string(&serde_json::json!({"base": state.base_name, "cache_key": state.key}))
                        .ok(),
                    created_by: Some(params.user_id().to_string()),
                    created_at: now,
                    updated_at: now,
                };
                roost_store::images::insert(tx.conn(), &image).await.map_err(|e| match e {
                    roost_store::StoreError::Conflict(_) => {
                        Error::conflict(format!("an image named '{name}' was created during the build"))
                    }
                    e => e.into(),
                })?;
                roost_store::sandbox_templates::insert(tx.conn(), &row).await?;
                image
            }
        };
        roost_store::sandbox_templates::count_build(tx.conn(), &row.image_id, state.hit, now).await?;
        let kind = if existing.is_some() { "image.updated" } else { "image.created" };
        tx.event(kind, "image", &recorded.id, &recorded.to_api(), Audience::Project(project_id.to_string()));
        tx.commit().await?;
        state.image_id = Some(row.image_id);
        Ok(())
    }

    /// Undoes [`Control::record_template_build`]: a new template's rows go, a retagged
    /// one points at its previous contents again.
    pub(crate) async fn unrecord_template_build(
        &self,
        params: &TemplateBuildParams,
        state: &TemplateBuildState,
    ) -> Result<()> {
        let scope = ProjectScope::One(params.project_id.clone());
        let Some(image) = self
            .store()
            .image_by_key(&params.name, &scope)
            .await?
            .filter(|i| i.project_id == params.project_id && i.source == SOURCE)
        else {
            return Ok(());
        };
        let mut tx = self.system_change().await?;
        match &state.replaced {
            Some(old) if old.image_id == image.id => {
                roost_store::sandbox_templates::retag_image(
                    tx.conn(),
                    &old.image_id,
                    &old.digest,
                    old.size,
                    &old.description,
                    now_ms(),
                )
                .await?;
                tx.event(
                    "image.updated",
                    "image",
                    &image.id,
                    &image.to_api(),
                    Audience::Project(params.project_id.clone()),
                );
            }
            // Made by this build (its digest is this build's): it goes.
            _ if image.digest.as_deref() == Some(state.digest.as_str()) && state.replaced.is_none() => {
                roost_store::sandbox_templates::delete(tx.conn(), &image.id).await?;
                roost_store::images::delete(tx.conn(), &image.id).await?;
                tx.bare_event("image.deleted", "image", &image.id, Audience::Project(params.project_id.clone()));
            }
            _ => return Ok(()),
        }
        tx.commit().await?;
        Ok(())
    }

    /// After a recorded build: sandboxes resolve the new contents, frozen ones of the old
    /// version leave the warm pool, old contents no one uses go; the operation's result.
    pub(crate) async fn finish_template_build(
        &self,
        p: Option<&Principal>,
        params: &TemplateBuildParams,
        state: &TemplateBuildState,
    ) -> Result<SandboxTemplateBuild> {
        let image_id = state.image_id.clone().ok_or_else(|| Error::internal("a template build finished unrecorded"))?;
        let built = state.built.clone().unwrap_or_default();
        let previous_digest = state.replaced.as_ref().map(|r| r.digest.clone());
        if previous_digest.as_deref() != Some(built.digest.as_str()) {
            self.compute().digests.lock().expect("digests").remove(&image_id);
            if let Some(p) = p {
                self.drain_sandbox_pool(p, &params.project_id, &image_id).await;
            }
            if let Some(old) = previous_digest.filter(|d| !d.is_empty()) {
                self.remove_unused_contents(&image_id, &old).await;
            }
        }
        let image =
            self.store().image_by_id(&image_id).await?.ok_or_else(|| Error::not_found("template", &params.name))?;
        let t = self.store().sandbox_template(&image_id).await?;
        let template = api(&image, t.as_ref());
        let log = if state.hit { String::new() } else { tail(&built.log, LOG_LIMIT).to_string() };
        let cache = if state.hit { "hit" } else { "miss" };
        Ok(SandboxTemplateBuild { cache: cache.into(), template, log, cached_steps: state.cached_steps as u32 })
    }

    /// A ready template of the project built with this cache key, its contents on this node.
    async fn cached_template(&self, project_id: &str, key: &str) -> Result<Option<(ImageRow, TemplateRow)>> {
        let node = self.node()?;
        for t in self.store().sandbox_templates_by_cache_key(project_id, key).await? {
            if let Some(image) = self.store().image_by_id(&t.image_id).await?
                && image.status() == ImageStatus::Ready
                && let Some(digest) = &image.digest
                && node.image(digest).await.map_err(node_error)?.is_some()
            {
                return Ok(Some((image, t)));
            }
        }
        Ok(None)
    }

    /// Removes an image's old contents when no image row points at them and no instance
    /// of the image (which may still run on them) is left.
    async fn remove_unused_contents(&self, image_id: &str, digest: &str) {
        let Ok(node) = self.node() else { return };
        let shared = match self.store().list_images(&ProjectScope::All, None).await {
            Ok(rows) => rows.iter().any(|r| r.digest.as_deref() == Some(digest)),
            Err(_) => true,
        };
        let used = self.store().image_users(image_id).await.map_or(true, |n| n > 0);
        if !shared
            && !used
            && let Err(e) = node.remove_image(digest).await
        {
            tracing::warn!(image = %image_id, error = %e, "could not remove a template's old contents");
        }
    }

    /// Runs one command with `sh -c`, appending its output (stdout and stderr as they
    /// come) to `log`; returns its exit code.
    #[allow(clippy::too_many_arguments)]
    async fn run_build_command(
        &self,
        instance_id: &str,
        cmd: &str,
        index: usize,
        total: usize,
        percent: u8,
        log: &mut String,
        op: &mut OperationHandle,
    ) -> Result<i32> {
        let mut session = self
            .exec(
                instance_id,
                roost_node::ExecRequest {
                    cmd: vec!["sh".into(), "-c".into(), cmd.to_string()],
                    env: vec![("DEBIAN_FRONTEND".into(), "noninteractive".into())],
                    cwd: Some("/".into()),
                    ..Default::default()
                },
            )
            .await?;
        // No input: a command that reads stdin sees its end.
        drop(session.stdin.take());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        for reader in [session.stdout.take(), session.stderr.take()].into_iter().flatten() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = reader;
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut last = Instant::now();
        while let Some(chunk) = rx.recv().await {
            log.push_str(&String::from_utf8_lossy(&chunk));
            if log.len() > 4 * LOG_LIMIT {
                *log = tail(log, LOG_LIMIT).to_string();
            }
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                let line = log.trim_end().rsplit('\n').next().unwrap_or("").chars().take(200).collect::<String>();
                op.progress(percent, &format!("[{index}/{total}] {line}")).await;
            }
        }
        if !log.ends_with('\n') {
            log.push('\n');
        }
        session.wait().await.map_err(node_error)
    }

    /// Deletes a built template no instance uses (sandboxes made from it, frozen ones in
    /// the warm pool aside, must end first).
    pub async fn delete_sandbox_template(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<()> {
        let (image, t) = self.template_row(p, key, project).await?;
        let Some(_) = t else {
            return Err(Error::forbidden(format!("'{}' is a builtin template", image.name)));
        };
        let proof = self.project_access(p, &image.project_id).await?.require_write()?;
        let lock = build_lock(&image.project_id, &image.name);
        let _guard = lock.lock().await;
        self.drain_sandbox_pool(p, &image.project_id, &image.id).await;
        let users = self.store().image_users(&image.id).await?;
        if users > 0 {
            return Err(Error::conflict(format!(
                "template '{}' is used by {users} sandbox(es) or instance(s); kill them first",
                image.name
            )));
        }
        let mut tx = self.change(ctx, &proof).await?;
        let current = self.get_sandbox_template(p, &image.id, None);
        tx.check_if_match("images", &image.id, if_match, current).await?;
        roost_store::sandbox_templates::delete(tx.conn(), &image.id).await?;
        roost_store::images::delete(tx.conn(), &image.id).await?;
        tx.audit("sandbox_template.delete", Some(("sandbox_template", &image.id)), None).await?;
        tx.bare_event("image.deleted", "image", &image.id, Audience::Project(image.project_id.clone()));
        tx.commit().await?;
        self.compute().digests.lock().expect("digests").remove(&image.id);
        if let Some(digest) = &image.digest {
            self.remove_unused_contents(&image.id, digest).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_follows_base_and_ordered_commands() {
        let a = vec!["echo a > /a".to_string(), "echo b > /b".to_string()];
        let b = vec!["echo b > /b".to_string(), "echo a > /a".to_string()];
        assert_eq!(cache_key("d1", &a), cache_key("d1", &a.clone()));
        assert_ne!(cache_key("d1", &a), cache_key("d1", &b));
        assert_ne!(cache_key("d1", &a), cache_key("d2", &a));
        // Joining commands differently is another key (no ambiguity from concatenation).
        assert_ne!(cache_key("d1", &["ab".into()]), cache_key("d1", &["a".into(), "b".into()]));
        assert_eq!(cache_key("d1", &a).len(), 64);
        assert_ne!(store_digest("prj-a", "k"), store_digest("prj-b", "k"));
    }

    #[test]
    fn tail_keeps_the_end_at_a_char_boundary() {
        assert_eq!(tail("hello", 10), "hello");
        assert_eq!(tail("hello", 2), "lo");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 2), "b");
    }
}
