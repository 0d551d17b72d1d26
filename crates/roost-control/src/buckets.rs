//! Object storage, control side: buckets (create, list with stats, delete), S3 access keys
//! (secret shown once, stored encrypted), presigned URLs, and who may do what over S3.
//! Objects are the object service's (`objects`); the S3 protocol is the `roost-s3` crate's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use roost_api::auth::{AuthMethod, Role};
use roost_api::buckets::{
    Bucket, CreateBucketRequest, CreateS3KeyRequest, CreatedS3Key, PresignMethod, PresignRequest, PresignedUrl, S3Key,
    UpdateBucketRequest, UpdateS3KeyRequest,
};
use roost_api::ids::IdKind;
use roost_api::projects::DEFAULT_PROJECT;
use roost_api::tokens::Scope;
use roost_api::{ListParams, Page};
use roost_store::buckets::{BucketRow, S3KeyRow};
use roost_store::list::CREATED_OR_NAME;
use roost_store::{StoreError, now_ms, to_time};

use crate::error::Validator;
use crate::events::Audience;
use crate::list::list_query;
use crate::secrets::MasterKey;
use crate::{Control, Error, Principal, RequestContext, Result};

/// A resolved S3 credential is trusted this long before the store is asked again;
/// deleting a key through this server evicts it at once.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
/// The description of the keys `roost bucket presign` signs with: `presign:<bucket>:read`
/// (GET URLs) and `presign:<bucket>:write` (PUT URLs). Keys described just `presign`
/// (all buckets, read and write) were made by earlier versions; they keep working for
/// the URLs they signed but sign no new ones.
pub const PRESIGN_KEY: &str = "presign";
/// Presigned URLs live at most this long (S3's limit).
const PRESIGN_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// An S3 access key resolved to its secret and the principal it acts as.
#[derive(Debug, Clone)]
pub struct S3Identity {
    pub key: S3KeyRow,
    pub secret: String,
    pub principal: Principal,
}

impl S3Identity {
    /// Whether the key's own limits let it reach this bucket: by id, so a bucket made
    /// later under a deleted one's name is not the key's (and by project, for a key made
    /// with a project-restricted token).
    pub fn may_reach(&self, bucket_id: &str, project_id: &str) -> bool {
        let in_project = self.key.project_id.as_deref().is_none_or(|p| p == project_id);
        let in_buckets = self.key.bucket_id_limit().is_none_or(|ids| ids.iter().any(|b| b == bucket_id));
        in_project && in_buckets
    }

    /// Whether the key may make buckets: only a key limited to no bucket (a limited key
    /// cannot name a bucket that does not exist yet).
    pub fn may_create_buckets(&self) -> bool {
        self.key.read_only == 0 && self.key.bucket_ids.is_none()
    }

    /// Whether the key has ended (made with an expiring token that has).
    pub fn expired(&self, now: i64) -> bool {
        self.key.expires_at.is_some_and(|at| at <= now)
    }
}

#[derive(Default)]
pub(crate) struct S3KeyCache {
    entries: RwLock<HashMap<String, (Instant, Arc<S3Identity>)>>,
}

impl S3KeyCache {
    fn get(&self, id: &str) -> Option<Arc<S3Identity>> {
        let entries = self.entries.read().ok()?;
        let (at, identity) = entries.get(id)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| identity.clone())
    }

    fn put(&self, identity: Arc<S3Identity>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() > 10_000 {
                entries.retain(|_, (at, _)| at.elapsed() < KEY_CACHE_TTL);
            }
            entries.insert(identity.key.id.clone(), (Instant::now(), identity));
        }
    }

    fn evict(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(id);
        }
    }

    fn evict_user(&self, user_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (_, identity)| identity.key.user_id != user_id);
        }
    }
}

/// S3 bucket naming rules: 3-63 characters of `a-z 0-9 . -`, starting and ending with a
/// letter or digit, no `..`, not an IP address, no `xn--` prefix or `-s3alias` suffix.
pub fn check_bucket_name(v: &mut Validator, field: &str, name: &str) {
    let chars_ok = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && chars_ok
        && edge(name.bytes().next())
        && edge(name.bytes().last())
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias");
    v.check(
        ok,
        field,
        "must be 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit \
         (S3 bucket naming rules; names are global)",
    );
}

impl Control {
    /// The master key for secrets at rest (loaded, or created, on first use).
    pub fn master_key(&self) -> Result<&MasterKey> {
        if let Some(key) = self.inner.master_key.get() {
            return Ok(key);
        }
        let key = MasterKey::load_or_create(&self.settings().data_dir.join("secrets"))
            .map_err(|e| Error::internal(format!("cannot load the master key: {e}")))?;
        Ok(self.inner.master_key.get_or_init(|| key))
    }

    /// Where object data lives: `data_dir/objects/<bucket-id>/`.
    pub fn objects_dir(&self) -> PathBuf {
        self.settings().data_dir.join("objects")
    }

    pub async fn create_bucket(&self, ctx: &RequestContext, p: &Principal, req: CreateBucketRequest) -> Result<Bucket> {
        p.require_scope(Scope::Write)?;
        let mut v = Validator::default();
        check_bucket_name(&mut v, "name", &req.name);
        v.finish()?;
        let access = self.project_access(p, req.project.as_deref().unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let public = req.public_read.unwrap_or(false);
        let row = BucketRow {
            id: IdKind::Bucket.generate(),
            name: req.name.clone(),
            project_id: access.project.id.clone(),
            policy: public.then(|| public_read_policy(&req.name)),
            public_read: public as i64,
            cors: None,
            lifecycle: None,
            versioning: None,
            created_by: Some(p.user_id.clone()),
            created_at: now_ms(),
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        self.check_quota(tx.conn(), &access.project, &[("buckets", 1)]).await?;
        roost_store::buckets::insert_bucket(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!("a bucket named '{}' already exists", req.name)),
            e => e.into(),
        })?;
        tx.audit("bucket.create", Some(("bucket", &row.id)), body.as_ref()).await?;
        let bucket = roost_store::buckets::BucketWithStats { bucket: row, objects: 0, size_bytes: 0 }.to_api();
        tx.event("bucket.created", "bucket", &bucket.id, &bucket, Audience::Project(bucket.project_id.clone()));
        tx.commit().await?;
        Ok(bucket)
    }

    pub async fn list_buckets_page(
        &self,
        p: &Principal,
        params: &roost_api::ProjectListParams,
    ) -> Result<Page<Bucket>> {
        // By name unless `sort` says otherwise.
        let query = list_query(&crate::list::by_name_unless_sorted(&params.paging()), CREATED_OR_NAME)?;
        let project_id = match &params.project {
            Some(key) => Some(self.project_access(p, key).await?.project.id),
            None => None,
        };
        let (rows, next_cursor) =
            self.store().buckets_page(&self.project_scope(p), project_id.as_deref(), &query).await?;
        Ok(Page { items: rows.iter().map(|r| r.to_api()).collect(), next_cursor })
    }

    /// Every bucket the principal sees (S3's ListBuckets has no pages).
    pub async fn list_buckets(&self, p: &Principal, project: Option<&str>) -> Result<Vec<Bucket>> {
        let project_id = match project {
            Some(key) => Some(self.project_access(p, key).await?.project.id),
            None => None,
        };
        let rows = self.store().list_buckets(&self.project_scope(p), project_id.as_deref()).await?;
        Ok(rows.iter().map(|r| r.to_api()).collect())
    }

    pub async fn get_bucket(&self, p: &Principal, key: &str) -> Result<Bucket> {
        Ok(self.bucket_row(p, key).await?.to_api())
    }

    pub(crate) async fn bucket_row(&self, p: &Principal, key: &str) -> Result<roost_store::buckets::BucketWithStats> {
        self.store().bucket_by_key(key, &self.project_scope(p)).await?.ok_or_else(|| Error::not_found("bucket", key))
    }

    /// Makes a bucket public-read or private, or turns versioning on or off (suspended).
    pub async fn update_bucket(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        req: UpdateBucketRequest,
        if_match: Option<&str>,
    ) -> Result<Bucket> {
        p.require_scope(Scope::Write)?;
        let row = self.bucket_row(p, key).await?;
        let proof = self.project_access(p, &row.bucket.project_id).await?.require_write()?;
        let mut v = Validator::default();
        if let Some(state) = &req.versioning {
            v.check(state == "Enabled" || state == "Suspended", "versioning", "must be Enabled or Suspended");
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let id = &row.bucket.id;
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("buckets", id, if_match, self.get_bucket(p, id)).await?;
        let mut bucket = row.to_api();
        if let Some(public) = req.public_read {
            let policy = public.then(|| public_read_policy(&row.bucket.name));
            roost_store::buckets::set_public_read(tx.conn(), id, policy.as_deref(), public).await?;
            bucket.public_read = public;
        }
        // Once enabled, versioning can be suspended but never removed (as in S3); a
        // bucket never versioned stays so when asked to suspend.
        match req.versioning.as_deref() {
            Some("Suspended") if row.bucket.versioning.is_none() => {}
            Some(state) => {
                roost_store::buckets::set_versioning(tx.conn(), id, state).await?;
                bucket.versioning = Some(state.to_string());
            }
            None => {}
        }
        tx.audit("bucket.update", Some(("bucket", id)), body.as_ref()).await?;
        tx.event("bucket.updated", "bucket", id, &bucket, Audience::Project(bucket.project_id.clone()));
        tx.commit().await?;
        self.get_bucket(p, id).await
    }

    /// Deletes a bucket: refused (409) while it holds objects unless `force`, which
    /// deletes them too (and any multipart uploads in progress).
    pub async fn delete_bucket(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        force: bool,
        if_match: Option<&str>,
    ) -> Result<()> {
        p.require_scope(Scope::Write)?;
        let row = self.bucket_row(p, key).await?;
        let proof = self.project_access(p, &row.bucket.project_id).await?.require_write()?;
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("buckets", &row.bucket.id, if_match, self.get_bucket(p, &row.bucket.id)).await?;
        let count = roost_store::buckets::object_count(tx.conn(), &row.bucket.id).await?;
        if count > 0 && !force {
            return Err(Error::conflict(format!(
                "bucket '{}' holds {count} object(s): delete them first or use force",
                row.bucket.name
            )));
        }
        if !roost_store::buckets::delete_bucket(tx.conn(), &row.bucket.id).await? {
            return Err(Error::not_found("bucket", key));
        }
        // The keys made only to presign URLs for this bucket go with it (a later bucket of
        // the same name is another bucket).
        let presign_keys = roost_store::buckets::delete_keys_of_bucket(
            tx.conn(),
            &[presign_description(&row.bucket.name, false), presign_description(&row.bucket.name, true)],
            &serde_json::to_string(&[&row.bucket.id]).unwrap_or_default(),
        )
        .await?;
        let body = serde_json::json!({ "force": force, "presign_keys_deleted": presign_keys });
        tx.audit("bucket.delete", Some(("bucket", &row.bucket.id)), Some(&body)).await?;
        tx.bare_event("bucket.deleted", "bucket", &row.bucket.id, Audience::Project(row.bucket.project_id.clone()));
        tx.commit().await?;
        for id in &presign_keys {
            self.inner.s3_keys.evict(id);
        }
        // The rows are gone, so nothing can reach these files any more.
        let dir = self.objects_dir().join(&row.bucket.id);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a deleted bucket's files (the collector retries)");
        }
        Ok(())
    }

    /// Fails when storing `adding` more bytes would exceed the project's `bucket_gib`
    /// quota. Cheap when no such limit is set.
    pub async fn check_bucket_bytes(&self, project_id: &str, adding: i64) -> Result<()> {
        let limits = roost_store::projects::quotas_in(
            &mut *self.store().pool().acquire().await.map_err(StoreError::from)?,
            project_id,
        )
        .await?;
        let Some((_, limit)) = limits.into_iter().find(|(r, _)| r == "bucket_gib") else { return Ok(()) };
        let used: i64 = roost_store::sqlx::query_scalar(
            "SELECT (SELECT CAST(COALESCE(SUM(o.size), 0) AS BIGINT) FROM objects o \
             JOIN buckets b ON b.id = o.bucket_id WHERE b.project_id = $1) \
             + (SELECT CAST(COALESCE(SUM(v.size), 0) AS BIGINT) FROM object_versions v \
             JOIN buckets b ON b.id = v.bucket_id WHERE b.project_id = $1)",
        )
        .bind(project_id)
        .fetch_one(self.store().pool())
        .await
        .map_err(StoreError::from)?;
        if used + adding > limit * (1 << 30) {
            return Err(Error::forbidden(format!(
                "quota exceeded: bucket_gib limit is {limit}, {:.2} GiB in use",
                used as f64 / (1u64 << 30) as f64
            )));
        }
        Ok(())
    }

    pub async fn create_s3_key(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateS3KeyRequest,
    ) -> Result<CreatedS3Key> {
        p.require_scope(Scope::Write)?;
        let mut v = Validator::default();
        if let Some(d) = &req.description {
            v.check(d.len() <= 200, "description", "must be at most 200 characters");
        }
        v.finish()?;
        // Limits are kept by bucket id: a bucket deleted and made again under its name is
        // another bucket, out of this key's reach.
        let mut limit: Vec<(String, String)> = Vec::new();
        for key in &req.buckets {
            let bucket = self.bucket_row(p, key).await?;
            if !limit.iter().any(|(id, _)| *id == bucket.bucket.id) {
                limit.push((bucket.bucket.id, bucket.bucket.name));
            }
        }
        let read_only = req.read_only || p.scope < Scope::Write;
        let (expires_at, project_id) = p.credential_limits();
        let limits = KeyLimits { buckets: (!limit.is_empty()).then_some(limit), read_only, expires_at, project_id };
        self.insert_s3_key(ctx, p, req.description.clone(), limits).await
    }

    async fn insert_s3_key(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        description: Option<String>,
        limits: KeyLimits,
    ) -> Result<CreatedS3Key> {
        let id = new_access_key_id();
        let secret = new_secret_key();
        let (ids, names): (Vec<String>, Vec<String>) = limits.buckets.clone().unwrap_or_default().into_iter().unzip();
        let row = S3KeyRow {
            id: id.clone(),
            user_id: p.user_id.clone(),
            description,
            secret_enc: self.master_key()?.seal(&id, &secret)?,
            buckets: limits.buckets.is_some().then(|| serde_json::to_string(&names).unwrap_or_default()),
            read_only: limits.read_only as i64,
            created_at: now_ms(),
            last_used_at: None,
            expires_at: limits.expires_at,
            project_id: limits.project_id.clone(),
            bucket_ids: limits.buckets.is_some().then(|| serde_json::to_string(&ids).unwrap_or_default()),
        };
        let body = serde_json::json!({
            "description": row.description,
            "buckets": names,
            "bucket_ids": ids,
            "read_only": limits.read_only,
            "expires_at": limits.expires_at.map(to_time),
            "project_id": limits.project_id,
        });
        let proof = p.require_owner()?;
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::buckets::insert_s3_key(tx.conn(), &row).await?;
        tx.audit("s3_key.create", Some(("s3_key", &row.id)), Some(&body)).await?;
        tx.commit().await?;
        Ok(CreatedS3Key { key: row.to_api(), secret })
    }

    pub async fn list_s3_keys(&self, p: &Principal, params: &ListParams) -> Result<Page<S3Key>> {
        let query = list_query(params, CREATED_OR_NAME)?;
        let (rows, next_cursor) = self.store().s3_keys_page(&p.user_id, &query).await?;
        Ok(Page { items: rows.iter().map(S3KeyRow::to_api).collect(), next_cursor })
    }

    pub async fn get_s3_key(&self, p: &Principal, id: &str) -> Result<S3Key> {
        match self.store().s3_key(id).await? {
            Some(row) if row.user_id == p.user_id => Ok(row.to_api()),
            _ => Err(Error::not_found("s3 key", id)),
        }
    }

    /// Changes the description of a key of the caller's (what it reaches never changes).
    pub async fn update_s3_key(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        req: UpdateS3KeyRequest,
        if_match: Option<&str>,
    ) -> Result<S3Key> {
        let proof = p.require_owner()?;
        let key = self.get_s3_key(p, id).await?;
        let mut v = Validator::default();
        if let Some(Some(d)) = &req.description {
            v.check(d.len() <= 200, "description", "must be at most 200 characters");
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("s3_keys", &key.id, if_match, self.get_s3_key(p, &key.id)).await?;
        let mut updated = key.clone();
        if let Some(description) = &req.description {
            roost_store::buckets::set_s3_key_description(tx.conn(), &p.user_id, &key.id, description.as_deref())
                .await?;
            updated.description = description.clone();
        }
        tx.audit("s3_key.update", Some(("s3_key", &key.id)), body.as_ref()).await?;
        tx.event("s3_key.updated", "s3_key", &key.id, &updated, Audience::User(key.user_id.clone()));
        tx.commit().await?;
        self.get_s3_key(p, &key.id).await
    }

    /// Revokes a key of the caller's: it stops working at once on this server.
    pub async fn delete_s3_key(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let proof = p.require_owner()?;
        let key = self.get_s3_key(p, id).await?;
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("s3_keys", &key.id, if_match, self.get_s3_key(p, &key.id)).await?;
        if !roost_store::buckets::delete_s3_key(tx.conn(), &p.user_id, &key.id).await? {
            return Err(Error::not_found("s3 key", id));
        }
        tx.audit("s3_key.delete", Some(("s3_key", &key.id)), None).await?;
        tx.commit().await?;
        self.inner.s3_keys.evict(&key.id);
        Ok(())
    }

    /// Forgets cached S3 credentials of a user (disabled, deleted, role changed).
    /// Drops every cached credential of a user (sessions and tokens, S3 keys, sandbox
    /// keys) after a change to their rights: disabled, deleted, role or membership
    /// changed. The next request authenticates against the store.
    pub fn forget_cached_credentials(&self, user_id: &str) {
        self.auth_cache().evict(|q| q.user_id == user_id);
        self.inner.s3_keys.evict_user(user_id);
        self.forget_sandbox_keys_of(user_id);
    }

    /// The key and the principal it acts as; `None` for an unknown key or a disabled user.
    pub async fn s3_identity(&self, access_key: &str) -> Result<Option<Arc<S3Identity>>> {
        let now = now_ms();
        if let Some(identity) = self.inner.s3_keys.get(access_key) {
            return Ok((!identity.expired(now)).then_some(identity));
        }
        let Some(key) = self.store().s3_key(access_key).await? else { return Ok(None) };
        if key.expires_at.is_some_and(|at| at <= now) {
            return Ok(None);
        }
        let Some(user) = self.store().user_by_id(&key.user_id).await? else { return Ok(None) };
        if user.disabled != 0 {
            return Ok(None);
        }
        let secret = self.master_key()?.open(&key.id, &key.secret_enc)?;
        if key.last_used_at.is_none_or(|t| now - t > 60_000) {
            let _ = self.store().touch_s3_key(&key.id, now).await;
        }
        let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
        let principal = Principal {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            role,
            method: AuthMethod::Token,
            scope: if key.read_only != 0 { Scope::Read } else { Scope::Write },
            token_id: Some(key.id.clone()),
            token_name: Some("s3-key".into()),
            session_id: None,
            csrf_hash: None,
            expires_at: key.expires_at,
            project_id: key.project_id.clone(),
            user,
        };
        let identity = Arc::new(S3Identity { key, secret, principal });
        self.inner.s3_keys.put(identity.clone());
        Ok(Some(identity))
    }

    /// Whether the S3 caller may read (or, with `write`, change) the bucket: the owner's
    /// role in the bucket's project (viewers read only) and the key's own limits. A
    /// bucket of a project the owner is not in is forbidden, never revealed.
    /// With `write`, the proof that opens the write's change.
    pub async fn s3_bucket_access(
        &self,
        who: &S3Identity,
        bucket: &BucketRow,
        write: bool,
    ) -> Result<Option<crate::policy::ProjectWrite>> {
        if !who.may_reach(&bucket.id, &bucket.project_id) {
            return Err(Error::forbidden(format!("this key is limited to other buckets than '{}'", bucket.name)));
        }
        if write && who.key.read_only != 0 {
            return Err(Error::forbidden("this key is read-only"));
        }
        let access = self
            .project_access(&who.principal, &bucket.project_id)
            .await
            .map_err(|_| Error::forbidden(format!("access to bucket '{}' is denied", bucket.name)))?;
        if write { access.require_write().map(Some) } else { Ok(None) }
    }

    /// A presigned URL for one object, signed with the caller's presign key for the bucket
    /// and method (created on first use; deleting it revokes every URL it signed). It
    /// acts with the caller's rights when used, within the key's limits.
    pub async fn presign(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        bucket: &str,
        req: PresignRequest,
    ) -> Result<PresignedUrl> {
        let method = req.method.unwrap_or(PresignMethod::Get);
        let mut v = Validator::default();
        v.check(!req.key.is_empty() && req.key.len() <= 1024, "key", "must be 1-1024 bytes");
        let expires = match humantime::parse_duration(req.expires.as_deref().unwrap_or("1h")) {
            Ok(d) if d >= Duration::from_secs(1) && d <= PRESIGN_MAX => d,
            Ok(_) => {
                v.add("expires", "must be between 1s and 7d");
                Duration::from_secs(1)
            }
            Err(_) => {
                v.add("expires", "must be a duration like 15m, 1h or 7d");
                Duration::from_secs(1)
            }
        };
        v.finish()?;
        let row = self.bucket_row(p, bucket).await?;
        let access = self.project_access(p, &row.bucket.project_id).await?;
        if method == PresignMethod::Put {
            p.require_scope(Scope::Write)?;
            access.require_write()?;
        }
        let endpoint =
            self.settings().s3_endpoint.clone().ok_or_else(|| {
                Error::new(roost_api::ErrorCode::Unavailable, "the S3 endpoint is off (--s3-listen off)")
            })?;
        // A URL never outlives the token that asked for it.
        let expires = match p.credential_limits().0 {
            Some(at) => {
                let left = Duration::from_millis((at - now_ms()).max(1) as u64);
                expires.min(left).max(Duration::from_secs(1))
            }
            None => expires,
        };
        let key = self.presign_key(ctx, p, &row.bucket, method == PresignMethod::Put).await?;
        let now = chrono::Utc::now();
        let url = crate::presign::presign_url(
            &endpoint,
            &self.settings().s3_region,
            &key.0,
            &key.1,
            match method {
                PresignMethod::Get => "GET",
                PresignMethod::Put => "PUT",
            },
            &row.bucket.name,
            &req.key,
            now,
            expires.as_secs(),
        )?;
        let body = serde_json::json!({ "key": req.key, "method": method, "expires_in_seconds": expires.as_secs() });
        // A URL is a credential: minting one is audited, whoever may read the bucket.
        let mut tx = self.change(ctx, &p.identity_proof()).await?;
        tx.audit("bucket.presign", Some(("bucket", &row.bucket.id)), Some(&body)).await?;
        tx.commit().await?;
        Ok(PresignedUrl { url, method, expires_at: to_time(now.timestamp_millis() + expires.as_millis() as i64) })
    }
}

impl Control {
    /// The caller's presign key for one bucket (id and secret): limited to that bucket,
    /// and read-only unless `write`, so a URL it signs can do nothing beyond its one
    /// operation even with the key's own rights. Made on first use, which needs a write
    /// scope; deleting it revokes every URL it signed.
    async fn presign_key(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        bucket: &BucketRow,
        write: bool,
    ) -> Result<(String, String)> {
        let description = presign_description(&bucket.name, write);
        let keys = self.store().s3_keys_of(&p.user_id).await?;
        // The limits are checked, not only the name: a key the user described alike
        // but made with wider rights (or for an earlier bucket of this name) is not used.
        let fits = |k: &S3KeyRow| {
            k.description.as_deref() == Some(description.as_str())
                && k.bucket_id_limit().as_deref() == Some(std::slice::from_ref(&bucket.id))
                && (k.read_only == 0) == write
                && k.expires_at.is_none()
        };
        match keys.into_iter().find(fits) {
            Some(k) => {
                let secret = self.master_key()?.open(&k.id, &k.secret_enc)?;
                Ok((k.id, secret))
            }
            None => {
                p.require_scope(Scope::Write)?;
                // The user's own key for the bucket, whatever credential first asked: it is
                // limited to this one bucket and acts with the user's rights when a URL is
                // used; a URL itself never outlives the token that asked for it.
                let limits = KeyLimits {
                    buckets: Some(vec![(bucket.id.clone(), bucket.name.clone())]),
                    read_only: !write,
                    expires_at: None,
                    project_id: None,
                };
                let created = self.insert_s3_key(ctx, p, Some(description), limits).await?;
                Ok((created.key.id, created.secret))
            }
        }
    }
}

/// What an S3 key is limited to.
struct KeyLimits {
    /// (id, name) of each bucket; `None`: not limited to buckets.
    buckets: Option<Vec<(String, String)>>,
    read_only: bool,
    expires_at: Option<i64>,
    project_id: Option<String>,
}

/// The description of a user's presign key for one bucket: `presign:<bucket>:read|write`.
fn presign_description(bucket: &str, write: bool) -> String {
    format!("{PRESIGN_KEY}:{bucket}:{}", if write { "write" } else { "read" })
}

/// A bucket policy that lets anyone GET objects (what `public_read` sets).
pub fn public_read_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [format!("arn:aws:s3:::{bucket}/*")]
        }]
    })
    .to_string()
}

/// Whether a bucket policy document grants anonymous `s3:GetObject` on the whole bucket
/// (the one policy Roost interprets; any other statement is kept but not enforced).
pub fn policy_is_public_read(doc: &str) -> Result<bool> {
    let v: serde_json::Value =
        serde_json::from_str(doc).map_err(|e| Error::invalid(format!("the policy is not JSON: {e}")))?;
    let statements = match &v["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => return Err(Error::invalid("the policy has no Statement")),
    };
    let as_list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };
    Ok(statements.iter().any(|s| {
        let anyone = s["Principal"] == "*" || as_list(&s["Principal"]["AWS"]).iter().any(|p| p == "*");
        let get = as_list(&s["Action"]).iter().any(|a| a == "s3:GetObject" || a == "s3:*" || a == "*");
        let everything = as_list(&s["Resource"]).iter().any(|r| r.ends_with("/*"));
        s["Effect"] == "Allow" && anyone && get && everything && s.get("Condition").is_none()
    }))
}

/// `RK` and 18 characters of `A-Z 2-7` (90 random bits): the shape of an AWS access key id.
fn new_access_key_id() -> String {
    let mut s = String::new();
    roost_api::ids::push_random(&mut s, 18);
    format!("RK{}", s.to_ascii_uppercase())
}

/// 40 characters of `A-Z a-z 0-9` (about 238 random bits), like an AWS secret key.
fn new_secret_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    // 248 = 4 * 62: rejection-free enough for a secret (bias < 2^-5 on 6 of 62 symbols is
    // avoided by drawing again).
    bytes
        .iter()
        .map(|b| {
            let mut b = *b;
            while b >= 248 {
                let mut one = [0u8; 1];
                getrandom::fill(&mut one).expect("random");
                b = one[0];
            }
            ALPHABET[(b % 62) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["photos", "a.b-c", "abc", "my-bucket-2026"] {
            let mut v = Validator::default();
            check_bucket_name(&mut v, "name", ok);
            assert!(v.finish().is_ok(), "{ok}");
        }
        for bad in ["ab", "Photos", "-abc", "abc-", "a..b", "192.168.1.1", "xn--abc", "a_b", &"a".repeat(64)] {
            let mut v = Validator::default();
            check_bucket_name(&mut v, "name", bad);
            assert!(v.finish().is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_have_the_aws_shape() {
        let id = new_access_key_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("RK") && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        let secret = new_secret_key();
        assert_eq!(secret.len(), 40);
        assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn public_read_policies_are_recognised() {
        assert!(policy_is_public_read(&public_read_policy("photos")).unwrap());
        let aws = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::p/*"}}"#;
        assert!(policy_is_public_read(aws).unwrap());
        let deny = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::p/*"}]}"#;
        assert!(!policy_is_public_read(deny).unwrap());
        assert!(policy_is_public_read("nope").is_err());
    }
}
