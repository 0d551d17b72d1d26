//! Images: the builtin busybox, Debian builds and tarball imports. Rows carry names and
//! ownership; contents live in the node's content-addressed image store.

use std::path::Path;

use roost_node::api::ImageInfo;

use roost_api::ids::IdKind;
use roost_api::images::{BuildImageRequest, Image, ImageStatus, UpdateImageRequest};
use roost_api::operations::Operation;
use roost_api::projects::DEFAULT_PROJECT;
use roost_api::{Page, ProjectListParams};
use roost_store::images::{BUILTIN, ImageRow};
use roost_store::list::CREATED_OR_NAME;
use roost_store::{StoreError, now_ms};

use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::jobs::image_build::{ImageBuild, ImageBuildParams};
use crate::list::list_query;
use crate::{Control, Error, Principal, RequestContext, Result};

/// The builtin image every project sees.
pub const BUSYBOX: &str = "busybox";

/// Whether `name` is a builtin image's (busybox, the builtin sandbox templates): no
/// project image may take it, so a name like `busybox` or `base` always means the image
/// Roost ships, never one a tenant put in its place.
pub fn is_builtin_name(name: &str) -> bool {
    name == BUSYBOX || crate::templates::builtin_template(name).is_some()
}

/// The error for a project image that would take a builtin image's name.
pub(crate) fn builtin_name_taken(name: &str) -> Error {
    Error::conflict(format!("'{name}' is the name of a builtin image; choose another name"))
}

impl Control {
    /// Makes sure the builtin image rows exist (their contents are built on first use).
    pub(crate) async fn ensure_builtin_images(&self) -> Result<()> {
        let failed = self.store().fail_interrupted_builds(now_ms()).await?;
        if failed > 0 {
            tracing::warn!(images = failed, "image builds interrupted by a restart were marked failed");
        }
        let mut builtins =
            vec![(BUSYBOX, "BusyBox from the host's busybox-static, with the usual applets".to_string(), None)];
        for t in crate::templates::BUILTIN_TEMPLATES {
            let spec = serde_json::json!({"suite": crate::templates::TEMPLATE_SUITE, "packages": t.packages});
            let description = format!("{} (built on first use)", t.description);
            builtins.push((t.name, description, Some(spec.to_string())));
        }
        let builtin_scope = roost_store::list::ProjectScope::One(String::new());
        for (name, description, spec) in builtins {
            if self.store().image_by_key(name, &builtin_scope).await?.is_some() {
                continue;
            }
            let now = now_ms();
            let row = ImageRow {
                id: IdKind::Image.generate(),
                name: name.into(),
                project_id: BUILTIN.into(),
                source: "builtin".into(),
                description: Some(description),
                status: ImageStatus::Ready.as_str().into(),
                status_reason: None,
                digest: None,
                size_bytes: None,
                spec,
                created_by: Some("system".into()),
                created_at: now,
                updated_at: now,
            };
            let mut tx = self.system_change().await?;
            match roost_store::images::insert(tx.conn(), &row).await {
                Ok(()) => tx.event("image.created", "image", &row.id, &row.to_api(), Audience::Project(BUILTIN.into())),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
        }
        // Images of projects named like a builtin one, from before such names were
        // reserved: the name now means the builtin image.
        for row in self.store().images_named_like_builtins().await? {
            tracing::warn!(
                image = %row.id, name = %row.name, project = %row.project_id,
                "a project image has a builtin image's name: the name now means the builtin one; use the id or rebuild it under another name"
            );
        }
        Ok(())
    }

    /// Images by name unless `sort` says otherwise.
    pub async fn list_images(&self, p: &Principal, params: &ProjectListParams) -> Result<Page<Image>> {
        let query = list_query(&crate::list::by_name_unless_sorted(&params.paging()), CREATED_OR_NAME)?;
        let project_id = match &params.project {
            Some(key) => Some(self.project_access(p, key).await?.project.id),
            None => None,
        };
        let (rows, next_cursor) =
            self.store().images_page(&self.project_scope(p), project_id.as_deref(), &query).await?;
        Ok(Page { items: rows.iter().map(ImageRow::to_api).collect(), next_cursor })
    }

    pub async fn get_image(&self, p: &Principal, key: &str) -> Result<Image> {
        Ok(self.image_row(p, key).await?.to_api())
    }

    pub(crate) async fn image_row(&self, p: &Principal, key: &str) -> Result<ImageRow> {
        self.store().image_by_key(key, &self.project_scope(p)).await?.ok_or_else(|| Error::not_found("image", key))
    }

    /// The image an instance of `project_id` runs for `key`: a builtin one or one of that
    /// project, whoever asks (an admin sees every project's images, yet an instance of one
    /// project never runs another's). The caller has checked its access to the project.
    pub(crate) async fn image_for_project(&self, project_id: &str, key: &str) -> Result<ImageRow> {
        self.store().image_for_project(key, project_id).await?.ok_or_else(|| Error::not_found("image", key))
    }

    /// The image's digest on this node, building a builtin one on first use.
    pub(crate) async fn image_digest(&self, row: &ImageRow) -> Result<String> {
        self.image_digest_for(row, None).await
    }

    /// [`Control::image_digest`]; a builtin template's first build shows its progress as
    /// an operation of `requester`'s (the caller that waits for it).
    pub(crate) async fn image_digest_for(&self, row: &ImageRow, requester: Option<&Principal>) -> Result<String> {
        let cached = self.compute().digests.lock().expect("digests").get(&row.id).cloned();
        if let Some(digest) = cached
            && self.node()?.image(&digest).await.ok().flatten().is_some()
        {
            return Ok(digest);
        }
        let digest = self.resolve_digest(row, requester).await?;
        self.compute().digests.lock().expect("digests").insert(row.id.clone(), digest.clone());
        Ok(digest)
    }

    async fn resolve_digest(&self, row: &ImageRow, requester: Option<&Principal>) -> Result<String> {
        let node = self.node()?;
        if row.source == "builtin" && row.name == BUSYBOX {
            let image = node.busybox_image().await.map_err(node_error)?;
            self.record_builtin_build(row, &image).await;
            return Ok(image.digest);
        }
        if row.source == "builtin"
            && let Some(template) = crate::templates::builtin_template(&row.name)
        {
            let image = self.build_builtin_template(template, row, requester).await?;
            self.record_builtin_build(row, &image).await;
            return Ok(image.digest);
        }
        let digest =
            row.digest.as_deref().ok_or_else(|| Error::unprocessable(format!("image '{}' is not built", row.name)))?;
        match node.image(digest).await.map_err(node_error)? {
            Some(image) => Ok(image.digest),
            None => Err(Error::unprocessable(format!("image '{}' is missing from this node's image store", row.name))),
        }
    }

    /// A builtin image is built on first use: its row learns the digest and size then,
    /// so the images list shows them (as a build or an import records its own).
    async fn record_builtin_build(&self, row: &ImageRow, image: &ImageInfo) {
        let size = image.size_bytes as i64;
        if row.digest.as_deref() == Some(image.digest.as_str()) && row.size_bytes == Some(size) {
            return;
        }
        let outcome = async {
            let mut tx = self.system_change().await?;
            let (ready, now) = (ImageStatus::Ready, now_ms());
            roost_store::images::finish(tx.conn(), &row.id, ready, None, Some(&image.digest), Some(size), now).await?;
            let mut updated = row.clone();
            (updated.digest, updated.size_bytes, updated.updated_at) = (Some(image.digest.clone()), Some(size), now);
            tx.event("image.updated", "image", &row.id, &updated.to_api(), Audience::Project(row.project_id.clone()));
            tx.commit().await
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(image = %row.name, error = %e.message, "cannot record the builtin image's size");
        }
    }

    /// Starts a Debian build; returns the operation that tracks it.
    pub async fn build_image(&self, ctx: &RequestContext, p: &Principal, req: BuildImageRequest) -> Result<Operation> {
        let access = self.project_access(p, req.project.as_deref().unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        if is_builtin_name(&req.name) {
            return Err(builtin_name_taken(&req.name));
        }
        let suite = match req.from.split_once(':') {
            Some(("debian", suite))
                if !suite.is_empty() && suite.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
            {
                suite.to_string()
            }
            _ => {
                v.add("from", "must be debian:<suite>, e.g. debian:bookworm");
                String::new()
            }
        };
        for pkg in &req.packages {
            let ok = !pkg.is_empty()
                && pkg.len() <= 100
                && pkg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
            v.check(ok, "packages", format!("'{pkg}' is not a Debian package name"));
        }
        v.finish()?;
        self.node()?;
        let mut packages = req.packages.clone();
        packages.sort();
        packages.dedup();
        let description = if packages.is_empty() {
            format!("debian:{suite}")
        } else {
            format!("debian:{suite} +{}", packages.join(","))
        };
        let now = now_ms();
        let row = ImageRow {
            id: IdKind::Image.generate(),
            name: req.name.clone(),
            project_id: access.project.id.clone(),
            source: "debian".into(),
            description: Some(description),
            status: ImageStatus::Building.as_str().into(),
            status_reason: None,
            digest: None,
            size_bytes: None,
            spec: serde_json::to_string(&serde_json::json!({"suite": suite, "packages": packages})).ok(),
            created_by: Some(p.user_id.clone()),
            created_at: now,
            updated_at: now,
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::images::insert(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!(
                "an image named '{}' already exists in project '{}'",
                req.name, access.project.name
            )),
            e => e.into(),
        })?;
        let params = ImageBuildParams {
            image_id: row.id.clone(),
            project_id: row.project_id.clone(),
            name: row.name.clone(),
            suite,
            packages,
        };
        let job = self.new_job::<ImageBuild>(&mut tx, p, Some(("image", &row.id)), params).await?;
        tx.audit("image.build", Some(("image", &row.id)), body.as_ref()).await?;
        tx.event("image.created", "image", &row.id, &row.to_api(), Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        let snapshot = job.operation();
        job.spawn();
        Ok(snapshot)
    }

    /// Builds a Debian image's contents on the node (a build of the same contents is
    /// reused), showing its progress on the operation; returns the digest and size.
    pub(crate) async fn build_debian_contents(
        &self,
        params: &ImageBuildParams,
        op: &mut crate::operations::OperationHandle,
    ) -> Result<(String, u64)> {
        let node = self.node()?;
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Box::new(move |p| {
            let _ = progress_tx.send(p);
        });
        let build = node.build_debian_image(&params.name, &params.suite, &params.packages, progress);
        tokio::pin!(build);
        let built = loop {
            tokio::select! {
                result = &mut build => break result.map_err(node_error)?,
                Some(p) = progress_rx.recv() => op.progress(p.percent.clamp(1, 99), &p.message).await,
            }
        };
        Ok((built.digest, built.size_bytes))
    }

    /// Removes contents a build made unless another image uses them (a reused build).
    pub(crate) async fn remove_unshared_contents(&self, image_id: &str, digest: &str) -> Result<()> {
        let shared = self
            .store()
            .list_images(&roost_store::list::ProjectScope::All, None)
            .await?
            .iter()
            .any(|r| r.id != image_id && r.digest.as_deref() == Some(digest));
        if shared {
            return Ok(());
        }
        self.node()?.remove_image(digest).await.map_err(node_error)
    }

    /// A built image's row: ready, with its contents' digest and size.
    pub(crate) async fn record_image_build(&self, image_id: &str, digest: &str, size: u64) -> Result<()> {
        let mut tx = self.system_change().await?;
        let (ready, size) = (ImageStatus::Ready, Some(size as i64));
        roost_store::images::finish(tx.conn(), image_id, ready, None, Some(digest), size, now_ms()).await?;
        image_updated(&mut tx, image_id).await?;
        tx.commit().await
    }

    /// The undo of [`Control::record_image_build`]: building again, without contents.
    pub(crate) async fn unrecord_image_build(&self, image_id: &str) -> Result<()> {
        let mut tx = self.system_change().await?;
        roost_store::images::unfinish(tx.conn(), image_id, now_ms()).await?;
        image_updated(&mut tx, image_id).await?;
        tx.commit().await
    }

    /// A build's image row after its job failed: `failed`, with the reason (the image
    /// stays listed, so its owner sees why the build failed).
    pub(crate) async fn fail_image_build(&self, image_id: &str, reason: &str) -> Result<()> {
        let mut tx = self.system_change().await?;
        let failed = ImageStatus::Failed;
        roost_store::images::finish(tx.conn(), image_id, failed, Some(reason), None, None, now_ms()).await?;
        image_updated(&mut tx, image_id).await?;
        tx.commit().await
    }
}

/// Raises `image.updated` with the image as `change` leaves it.
async fn image_updated(change: &mut crate::kernel::Change<'_>, image_id: &str) -> Result<()> {
    if let Some(row) = roost_store::images::get_in(change.conn(), image_id).await? {
        change.event("image.updated", "image", image_id, &row.to_api(), Audience::Project(row.project_id.clone()));
    }
    Ok(())
}

impl Control {
    /// Checks that the principal may import an image named `name` into `project` (write
    /// access, a valid name that is not a builtin's): done before the upload is read, so
    /// nobody can make the server store a file it would refuse. Returns the project id.
    pub async fn authorize_image_import(&self, p: &Principal, name: &str, project: Option<&str>) -> Result<String> {
        Ok(self.image_import_access(p, name, project).await?.0)
    }

    /// [`Control::authorize_image_import`], with the proof the import's change needs.
    async fn image_import_access(
        &self,
        p: &Principal,
        name: &str,
        project: Option<&str>,
    ) -> Result<(String, crate::policy::ProjectWrite)> {
        let access = self.project_access(p, project.unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", name);
        v.finish()?;
        if is_builtin_name(name) {
            return Err(builtin_name_taken(name));
        }
        self.node()?;
        Ok((access.project.id, proof))
    }

    /// Imports a root filesystem tarball already written to `path` (it is removed after),
    /// unpacking at most `image_import_max_unpacked` bytes.
    pub async fn import_image(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        name: &str,
        project: Option<&str>,
        path: &Path,
    ) -> Result<Image> {
        let imported = async {
            let (project_id, proof) = self.image_import_access(p, name, project).await?;
            let node = self.node()?;
            let limit = self.settings().image_import_max_unpacked;
            // A file that does not unpack is the uploader's to fix.
            let file =
                tokio::fs::File::open(path).await.map_err(|e| Error::internal(format!("reading the upload: {e}")))?;
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let image = node.import_image(&file_name, Box::new(file), limit).await.map_err(|e| match e {
                roost_node::Error::Missing { .. } | roost_node::Error::TooLarge(_) => node_error(e),
                e => Error::unprocessable(format!("not a root filesystem tarball (.tar, .tar.gz, .tar.zst): {e}")),
            })?;
            Ok::<_, Error>((project_id, proof, image))
        }
        .await;
        let _ = tokio::fs::remove_file(path).await;
        let (project_id, proof, image) = imported?;
        let project_name = self.store().project_by_key(&project_id).await?.map(|p| p.name).unwrap_or_default();
        let now = now_ms();
        let row = ImageRow {
            id: IdKind::Image.generate(),
            name: name.to_string(),
            project_id: project_id.clone(),
            source: "import".into(),
            description: Some("imported root filesystem tarball".into()),
            status: ImageStatus::Ready.as_str().into(),
            status_reason: None,
            digest: Some(image.digest.clone()),
            size_bytes: Some(image.size_bytes as i64),
            spec: None,
            created_by: Some(p.user_id.clone()),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::images::insert(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::conflict(format!("an image named '{name}' already exists in project '{project_name}'"))
            }
            e => e.into(),
        })?;
        tx.audit("image.import", Some(("image", &row.id)), None).await?;
        let api = row.to_api();
        tx.event("image.created", "image", &api.id, &api, Audience::Project(project_id));
        tx.commit().await?;
        Ok(api)
    }

    /// Changes a project image's description (builtin images stay as they are).
    pub async fn update_image(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        req: UpdateImageRequest,
        if_match: Option<&str>,
    ) -> Result<Image> {
        let row = self.image_row(p, key).await?;
        if row.project_id == BUILTIN {
            return Err(Error::forbidden(format!("'{}' is a builtin image", row.name)));
        }
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut v = Validator::default();
        if let Some(Some(d)) = &req.description {
            v.check(d.chars().count() <= 1000, "description", "must be at most 1000 characters");
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("images", &row.id, if_match, self.get_image(p, &row.id)).await?;
        let mut image = row.to_api();
        if let Some(description) = &req.description {
            roost_store::images::set_description(tx.conn(), &row.id, description.as_deref(), now_ms()).await?;
            image.description = description.clone();
        }
        tx.audit("image.update", Some(("image", &row.id)), body.as_ref()).await?;
        tx.event("image.updated", "image", &row.id, &image, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.get_image(p, &row.id).await
    }

    /// Deletes an image no instance uses (builtin images stay).
    pub async fn delete_image(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let row = self.image_row(p, key).await?;
        if row.project_id == BUILTIN {
            return Err(Error::forbidden(format!("'{}' is a builtin image", row.name)));
        }
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let users = self.store().image_users(&row.id).await?;
        if users > 0 {
            return Err(Error::conflict(format!(
                "image '{}' is used by {users} instance(s); delete them first",
                row.name
            )));
        }
        if row.status() == ImageStatus::Building {
            return Err(Error::conflict(format!("image '{}' is still building", row.name)));
        }
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("images", &row.id, if_match, self.get_image(p, &row.id)).await?;
        roost_store::images::delete(tx.conn(), &row.id).await?;
        tx.audit("image.delete", Some(("image", &row.id)), None).await?;
        tx.bare_event("image.deleted", "image", &row.id, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        // The contents go when no other image row shares them.
        if let (Some(digest), Ok(node)) = (&row.digest, self.node()) {
            let shared = self
                .store()
                .list_images(&roost_store::list::ProjectScope::All, None)
                .await?
                .iter()
                .any(|r| r.digest.as_deref() == Some(digest));
            if !shared && let Err(e) = node.remove_image(digest).await {
                tracing::warn!(image = %row.id, error = %e, "could not remove the image's files");
            }
        }
        Ok(())
    }
}

/// A node-side failure as an API error: what the caller can fix is a 4xx, a missing
/// host prerequisite a 503 naming the package, the rest a 500.
pub(crate) fn node_error(e: roost_node::Error) -> Error {
    use roost_api::ErrorCode;
    let message = e.to_string();
    match e {
        roost_node::Error::NotFound(_) => Error::new(ErrorCode::NotFound, message),
        roost_node::Error::Invalid(_) | roost_node::Error::Unsupported(_) | roost_node::Error::CommandNotFound(_) => {
            Error::unprocessable(message)
        }
        roost_node::Error::Conflict(_) => Error::conflict(message),
        roost_node::Error::TooLarge(_) => Error::new(ErrorCode::PayloadTooLarge, message),
        roost_node::Error::Missing { .. } => Error::new(ErrorCode::Unavailable, message),
        _ => Error::internal(message),
    }
}
