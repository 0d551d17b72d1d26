//! Projects: create and manage them (admins), see the ones you belong to, members,
//! quotas and usage.

use std::collections::BTreeMap;

use roost_api::auth::Role;
use roost_api::ids::IdKind;
use roost_api::projects::{
    CreateProjectRequest, DEFAULT_PROJECT, Member, Project, QUOTA_RESOURCES, Quota, SetMemberRequest,
    UpdateProjectRequest, Usage, UsageLine,
};
use roost_api::{ListParams, Page};
use roost_store::list::CREATED_OR_NAME;
use roost_store::projects::{ProjectRow, SORT_KEYS};
use roost_store::{StoreError, now_ms};

use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::list::list_query;
use crate::{Control, Error, Principal, RequestContext, Result};

/// How much of each quota resource a project uses: the counting query, and how many of
/// its units make one unit of the limit (vCPUs are counted in thousandths). Resource
/// kinds register here as they are added (volumes, buckets, ...); a kind that does not
/// exist yet uses nothing.
const USAGE_QUERIES: &[(&str, &str, i64)] = &[
    ("instances", "SELECT COUNT(*) FROM instances WHERE project_id = $1", 1),
    ("vcpus", "SELECT CAST(COALESCE(SUM(cpus_milli), 0) AS BIGINT) FROM instances WHERE project_id = $1", 1000),
    ("memory_bytes", "SELECT CAST(COALESCE(SUM(memory_bytes), 0) AS BIGINT) FROM instances WHERE project_id = $1", 1),
    ("buckets", "SELECT COUNT(*) FROM buckets WHERE project_id = $1", 1),
    (
        "bucket_gib",
        "SELECT (SELECT CAST(COALESCE(SUM(o.size), 0) AS BIGINT) FROM objects o JOIN buckets b ON b.id = o.bucket_id \
         WHERE b.project_id = $1) + (SELECT CAST(COALESCE(SUM(v.size), 0) AS BIGINT) FROM object_versions v \
         JOIN buckets b ON b.id = v.bucket_id WHERE b.project_id = $1)",
        1 << 30,
    ),
    ("volume_gib", "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM volumes WHERE project_id = $1", 1 << 30),
];

impl Control {
    /// Creates the `default` project on the first start.
    pub(crate) async fn ensure_default_project(&self) -> Result<()> {
        if self.store().project_by_key(DEFAULT_PROJECT).await?.is_some() {
            return Ok(());
        }
        let now = now_ms();
        let row = ProjectRow {
            id: IdKind::Project.generate(),
            name: DEFAULT_PROJECT.into(),
            description: Some("Created on the first start".into()),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.system_change().await?;
        match roost_store::projects::insert(tx.conn(), &row).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Ok(()), // another server made it
            Err(e) => return Err(e.into()),
        }
        tx.audit("project.create", Some(("project", &row.id)), None).await?;
        tx.event("project.created", "project", &row.id, &row.to_api(), Audience::Admins);
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_project(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateProjectRequest,
    ) -> Result<Project> {
        let proof = p.require_admin()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        if let Some(d) = &req.description {
            v.check(d.chars().count() <= 1000, "description", "must be at most 1000 characters");
        }
        v.finish()?;
        let now = now_ms();
        let row = ProjectRow {
            id: IdKind::Project.generate(),
            name: req.name.clone(),
            description: req.description.clone(),
            created_at: now,
            updated_at: now,
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::projects::insert(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!("a project named '{}' already exists", req.name)),
            e => e.into(),
        })?;
        tx.audit("project.create", Some(("project", &row.id)), body.as_ref()).await?;
        let project = row.to_api();
        tx.event("project.created", "project", &project.id, &project, Audience::Admins);
        tx.commit().await?;
        // Its default network and security group, when this server runs instances.
        if self.node().is_ok() {
            self.ensure_project_defaults(&row.id).await?;
            self.request_firewall_sync();
        }
        Ok(project)
    }

    pub async fn list_projects(&self, p: &Principal, params: &ListParams) -> Result<Page<Project>> {
        let query = list_query(params, SORT_KEYS)?;
        let member = (!p.sees_everything()).then_some(p.user_id.as_str());
        let (mut rows, next_cursor) = self.store().list_projects(member, &query).await?;
        if let Some(only) = &p.project_id {
            rows.retain(|r| &r.id == only);
        }
        Ok(Page { items: rows.iter().map(ProjectRow::to_api).collect(), next_cursor })
    }

    pub async fn get_project(&self, p: &Principal, key: &str) -> Result<Project> {
        Ok(self.project_access(p, key).await?.project.to_api())
    }

    pub async fn update_project(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        req: UpdateProjectRequest,
        if_match: Option<&str>,
    ) -> Result<Project> {
        let access = self.project_access(p, key).await?;
        let proof = p.require_admin()?;
        let mut v = Validator::default();
        if let Some(d) = &req.description {
            v.check(d.chars().count() <= 1000, "description", "must be at most 1000 characters");
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        let id = &access.project.id;
        tx.check_if_match("projects", id, if_match, self.get_project(p, id)).await?;
        roost_store::projects::update_description(tx.conn(), &access.project.id, req.description.as_deref(), now_ms())
            .await?;
        tx.audit("project.update", Some(("project", &access.project.id)), body.as_ref()).await?;
        let fresh = roost_store::projects::get_in(tx.conn(), &access.project.id)
            .await?
            .ok_or_else(|| Error::not_found("project", key))?;
        tx.event("project.updated", "project", &fresh.id, &fresh.to_api(), Audience::Project(fresh.id.clone()));
        tx.commit().await?;
        self.get_project(p, &access.project.id).await
    }

    /// Deletes a project; the `default` project and projects that still hold resources
    /// are refused.
    pub async fn delete_project(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let access = self.project_access(p, key).await?;
        let proof = p.require_admin()?;
        if access.project.name == DEFAULT_PROJECT {
            return Err(Error::conflict("the default project cannot be deleted"));
        }
        let usage = self.usage_counts(&access.project.id).await?;
        if let Some((kind, n)) = usage.iter().find(|(_, n)| **n > 0) {
            return Err(Error::conflict(format!(
                "project '{}' still has {n} {kind}; delete them first",
                access.project.name
            )));
        }
        let mut tx = self.change(ctx, &proof).await?;
        let id = &access.project.id;
        tx.check_if_match("projects", id, if_match, self.get_project(p, id)).await?;
        roost_store::projects::delete(tx.conn(), &access.project.id).await?;
        tx.audit("project.delete", Some(("project", &access.project.id)), None).await?;
        tx.bare_event("project.deleted", "project", &access.project.id, Audience::Admins);
        tx.commit().await?;
        self.request_firewall_sync();
        // Tokens restricted to the project went with it.
        self.auth_cache().evict(|q| q.project_id.as_deref() == Some(access.project.id.as_str()));
        Ok(())
    }

    /// Members by name unless `sort` says otherwise.
    pub async fn list_members(&self, p: &Principal, key: &str, params: &ListParams) -> Result<Page<Member>> {
        let query = list_query(&crate::list::by_name_unless_sorted(params), CREATED_OR_NAME)?;
        let access = self.project_access(p, key).await?;
        let (items, next_cursor) = self.store().members_page(&access.project.id, &query).await?;
        Ok(Page { items, next_cursor })
    }

    /// Adds a member or changes their role (admins).
    pub async fn set_member(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        user_key: &str,
        req: SetMemberRequest,
    ) -> Result<Member> {
        let access = self.project_access(p, key).await?;
        let proof = p.require_admin()?;
        if !matches!(req.role, Role::Operator | Role::Viewer) {
            return Err(Error::validation(vec![roost_api::FieldError {
                field: "role".into(),
                message: "must be operator or viewer (admins are admins in every project)".into(),
            }]));
        }
        let user = self.store().user_by_key(user_key).await?.ok_or_else(|| Error::not_found("user", user_key))?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::projects::upsert_member(tx.conn(), &access.project.id, &user.id, req.role.as_str(), now_ms())
            .await?;
        tx.audit("project.member.set", Some(("project", &access.project.id)), body.as_ref()).await?;
        tx.commit().await?;
        self.forget_cached_credentials(&user.id);
        let members = self.store().members(&access.project.id).await?;
        members.into_iter().find(|m| m.user_id == user.id).ok_or_else(|| Error::internal("member vanished"))
    }

    pub async fn remove_member(&self, ctx: &RequestContext, p: &Principal, key: &str, user_key: &str) -> Result<()> {
        let access = self.project_access(p, key).await?;
        let proof = p.require_admin()?;
        let user = self.store().user_by_key(user_key).await?.ok_or_else(|| Error::not_found("user", user_key))?;
        let mut tx = self.change(ctx, &proof).await?;
        if !roost_store::projects::remove_member(tx.conn(), &access.project.id, &user.id).await? {
            return Err(Error::not_found("member", user_key));
        }
        tx.audit("project.member.remove", Some(("project", &access.project.id)), None).await?;
        tx.commit().await?;
        self.forget_cached_credentials(&user.id);
        Ok(())
    }

    pub async fn get_quota(&self, p: &Principal, key: &str) -> Result<Quota> {
        let access = self.project_access(p, key).await?;
        let limits = self.store().quotas(&access.project.id).await?;
        Ok(Quota { limits: limits.into_iter().map(|(k, v)| (k, Some(v))).collect() })
    }

    /// Sets or removes limits (admins). Only the resources named in the request change.
    pub async fn set_quota(&self, ctx: &RequestContext, p: &Principal, key: &str, req: Quota) -> Result<Quota> {
        let access = self.project_access(p, key).await?;
        let proof = p.require_admin()?;
        let mut v = Validator::default();
        for (resource, limit) in &req.limits {
            if !QUOTA_RESOURCES.iter().any(|(name, _)| name == resource) {
                let known: Vec<_> = QUOTA_RESOURCES.iter().map(|(n, _)| *n).collect();
                v.add(resource, format!("unknown quota resource; use one of: {}", known.join(", ")));
            } else if limit.is_some_and(|l| l < 0) {
                v.add(resource, "must be 0 or more (null removes the limit)");
            }
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        for (resource, limit) in &req.limits {
            roost_store::projects::set_quota(tx.conn(), &access.project.id, resource, *limit).await?;
        }
        tx.audit("project.quota.set", Some(("project", &access.project.id)), body.as_ref()).await?;
        tx.commit().await?;
        self.get_quota(p, &access.project.id).await
    }

    pub async fn usage(&self, p: &Principal, key: &str) -> Result<Usage> {
        let access = self.project_access(p, key).await?;
        let used = self.usage_counts(&access.project.id).await?;
        let limits: BTreeMap<String, i64> = self.store().quotas(&access.project.id).await?.into_iter().collect();
        let resources = QUOTA_RESOURCES
            .iter()
            .map(|(name, _)| {
                let line = UsageLine { used: used.get(*name).copied().unwrap_or(0), limit: limits.get(*name).copied() };
                (name.to_string(), line)
            })
            .collect();
        Ok(Usage { project_id: access.project.id, resources })
    }

    async fn usage_counts(&self, project_id: &str) -> Result<BTreeMap<String, i64>> {
        let mut out = BTreeMap::new();
        for (resource, sql, scale) in USAGE_QUERIES {
            let used: i64 = roost_store::sqlx::query_scalar(roost_store::sqlx::AssertSqlSafe(*sql))
                .bind(project_id)
                .fetch_one(self.store().pool())
                .await
                .map_err(roost_store::StoreError::from)?;
            // Whole units, rounded up: half a vCPU in use is one of the limit.
            out.insert(resource.to_string(), (used + scale - 1) / scale);
        }
        Ok(out)
    }

    /// Inside a create's transaction: fails with 403 naming the quota, its limit and the
    /// current use when adding `requested` would exceed a limit. The project row is
    /// locked first so concurrent creates count one after another.
    pub async fn check_quota(
        &self,
        conn: &mut roost_store::sqlx::AnyConnection,
        project: &ProjectRow,
        requested: &[(&str, i64)],
    ) -> Result<()> {
        roost_store::projects::lock(conn, &project.id, self.store().backend()).await?;
        let limits: BTreeMap<String, i64> =
            roost_store::projects::quotas_in(conn, &project.id).await?.into_iter().collect();
        for (resource, amount) in requested {
            let Some(limit) = limits.get(*resource) else { continue };
            let (sql, scale) = match USAGE_QUERIES.iter().find(|(r, _, _)| r == resource) {
                Some((_, q, scale)) => (Some(*q), *scale),
                None => (None, 1),
            };
            let used: i64 = match sql {
                Some(sql) => roost_store::sqlx::query_scalar(roost_store::sqlx::AssertSqlSafe(sql))
                    .bind(&project.id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(roost_store::StoreError::from)?,
                None => 0,
            };
            if used + amount > limit * scale {
                let show = |v: i64| if scale == 1 { v.to_string() } else { format!("{}", v as f64 / scale as f64) };
                return Err(Error::forbidden(format!(
                    "quota exceeded in project '{}': {resource} limit is {limit}, {} in use, {} requested",
                    project.name,
                    show(used),
                    show(*amount)
                )));
            }
        }
        Ok(())
    }
}
