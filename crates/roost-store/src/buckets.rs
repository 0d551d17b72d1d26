//! Object storage: buckets, object metadata, multipart uploads and S3 access keys. The
//! object data lives on disk (the `roost-s3` crate); these rows name its files.

use roost_api::buckets::{Bucket, S3Key};
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{Bind, ListQuery, ProjectScope, bind_all, key_by_created_or_name};
use crate::{Result, Store, StoreError, to_time};

#[derive(Debug, Clone, FromRow)]
pub struct BucketRow {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub policy: Option<String>,
    pub public_read: i64,
    pub cors: Option<String>,
    pub lifecycle: Option<String>,
    /// `None`: never versioned; `Enabled` or `Suspended`.
    pub versioning: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// A bucket with its object count and bytes stored.
#[derive(Debug, Clone, FromRow)]
pub struct BucketWithStats {
    #[sqlx(flatten)]
    pub bucket: BucketRow,
    pub objects: i64,
    pub size_bytes: i64,
}

impl BucketWithStats {
    pub fn to_api(&self) -> Bucket {
        let b = &self.bucket;
        Bucket {
            id: b.id.clone(),
            name: b.name.clone(),
            project_id: b.project_id.clone(),
            objects: self.objects,
            size_bytes: self.size_bytes,
            public_read: b.public_read != 0,
            versioning: b.versioning.clone(),
            created_at: to_time(b.created_at),
            created_by: b.created_by.clone(),
        }
    }
}

const BUCKET_COLUMNS: &str = "b.id, b.name, b.project_id, b.policy, b.public_read, b.cors, b.lifecycle, b.versioning, b.created_by, b.created_at";
/// Current objects (not delete markers), and bytes of every version kept.
const STATS: &str = "(SELECT COUNT(*) FROM objects o WHERE o.bucket_id = b.id AND o.delete_marker = 0) AS objects, \
     (SELECT CAST(COALESCE(SUM(o.size), 0) AS BIGINT) FROM objects o WHERE o.bucket_id = b.id) \
     + (SELECT CAST(COALESCE(SUM(v.size), 0) AS BIGINT) FROM object_versions v WHERE v.bucket_id = b.id) AS size_bytes";

pub async fn insert_bucket(conn: &mut AnyConnection, b: &BucketRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO buckets (id, name, project_id, policy, public_read, cors, lifecycle, versioning, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&b.id)
    .bind(&b.name)
    .bind(&b.project_id)
    .bind(&b.policy)
    .bind(b.public_read)
    .bind(&b.cors)
    .bind(&b.lifecycle)
    .bind(&b.versioning)
    .bind(&b.created_by)
    .bind(b.created_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Deletes the bucket, its object rows and uploads; returns whether it existed.
pub async fn delete_bucket(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    sqlx::query(
        "DELETE FROM multipart_parts WHERE upload_id IN (SELECT id FROM multipart_uploads WHERE bucket_id = $1)",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM multipart_uploads WHERE bucket_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM objects WHERE bucket_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM object_versions WHERE bucket_id = $1").bind(id).execute(&mut *conn).await?;
    let done = sqlx::query("DELETE FROM buckets WHERE id = $1").bind(id).execute(&mut *conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Objects in the bucket, every version and delete marker counted (within a transaction,
/// to refuse deleting a non-empty bucket).
pub async fn object_count(conn: &mut AnyConnection, bucket_id: &str) -> Result<i64> {
    let current: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM objects WHERE bucket_id = $1")
        .bind(bucket_id)
        .fetch_one(&mut *conn)
        .await?;
    let old: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM object_versions WHERE bucket_id = $1")
        .bind(bucket_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(current + old)
}

/// Which of the bucket's settings documents to change.
#[derive(Debug, Clone, Copy)]
pub enum BucketDoc {
    Policy,
    Cors,
    Lifecycle,
    Versioning,
}

/// Sets (or clears) a settings document; for the policy, also whether it makes the
/// bucket public-read.
pub async fn set_bucket_doc(
    conn: &mut AnyConnection,
    id: &str,
    doc: BucketDoc,
    value: Option<&str>,
    public_read: Option<bool>,
) -> Result<()> {
    let column = match doc {
        BucketDoc::Policy => "policy",
        BucketDoc::Cors => "cors",
        BucketDoc::Lifecycle => "lifecycle",
        BucketDoc::Versioning => "versioning",
    };
    sqlx::query(AssertSqlSafe(format!("UPDATE buckets SET {column} = $1 WHERE id = $2")))
        .bind(value)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if let Some(public) = public_read {
        sqlx::query("UPDATE buckets SET public_read = $1 WHERE id = $2")
            .bind(public as i64)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct ObjectRow {
    pub bucket_id: String,
    pub key: String,
    pub file_id: String,
    pub size: i64,
    pub etag: String,
    pub headers: Option<String>,
    pub parts: Option<i64>,
    pub modified_at: i64,
    /// `null` unless written while versioning was enabled.
    pub version_id: String,
    pub delete_marker: i64,
}

impl ObjectRow {
    pub fn is_delete_marker(&self) -> bool {
        self.delete_marker != 0
    }
}

const OBJECT_COLUMNS: &str =
    "bucket_id, key, file_id, size, etag, headers, parts, modified_at, version_id, delete_marker";

/// How a bucket keeps old versions when a key is written or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Never enabled: one version per key, replaced in place.
    Off,
    /// Every write makes a new version; old ones are kept.
    Enabled,
    /// New writes are version `null` (replacing an older `null`), other versions are kept.
    Suspended,
}

impl Versioning {
    pub fn of(bucket: &BucketRow) -> Versioning {
        match bucket.versioning.as_deref() {
            Some("Enabled") => Versioning::Enabled,
            Some("Suspended") => Versioning::Suspended,
            _ => Versioning::Off,
        }
    }
}

async fn current(conn: &mut AnyConnection, bucket_id: &str, key: &str) -> Result<Option<ObjectRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = $1 AND key = $2")))
        .bind(bucket_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?)
}

async fn insert_row(conn: &mut AnyConnection, table: &str, o: &ObjectRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (bucket_id, key, file_id, size, etag, headers, parts, modified_at, version_id, delete_marker) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )))
    .bind(&o.bucket_id)
    .bind(&o.key)
    .bind(&o.file_id)
    .bind(o.size)
    .bind(&o.etag)
    .bind(&o.headers)
    .bind(o.parts)
    .bind(o.modified_at)
    .bind(&o.version_id)
    .bind(o.delete_marker)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Removes the noncurrent `null` version of a key (suspended versioning replaces it);
/// returns its file.
async fn drop_null_version(conn: &mut AnyConnection, bucket_id: &str, key: &str) -> Result<Vec<String>> {
    let files: Vec<String> = sqlx::query_scalar(
        "SELECT file_id FROM object_versions WHERE bucket_id = $1 AND key = $2 AND version_id = 'null'",
    )
    .bind(bucket_id)
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM object_versions WHERE bucket_id = $1 AND key = $2 AND version_id = 'null'")
        .bind(bucket_id)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(files)
}

/// Makes `o` the current version of its key. The replaced version is kept as noncurrent
/// when versioning says so; the files no version names any more are returned, for the
/// caller to remove once the transaction is committed.
pub async fn put_object(conn: &mut AnyConnection, o: &ObjectRow, mode: Versioning) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    if mode == Versioning::Suspended {
        gone.extend(drop_null_version(conn, &o.bucket_id, &o.key).await?);
    }
    if let Some(old) = current(conn, &o.bucket_id, &o.key).await? {
        sqlx::query("DELETE FROM objects WHERE bucket_id = $1 AND key = $2")
            .bind(&o.bucket_id)
            .bind(&o.key)
            .execute(&mut *conn)
            .await?;
        let keep = match mode {
            Versioning::Off => false,
            Versioning::Enabled => true,
            Versioning::Suspended => old.version_id != "null",
        };
        if keep {
            insert_row(conn, "object_versions", &old).await?;
        } else if !old.is_delete_marker() {
            gone.push(old.file_id);
        }
    }
    insert_row(conn, "objects", o).await?;
    Ok(gone.into_iter().filter(|f| !f.is_empty()).collect())
}

/// Deletes a key's current version: removed (unversioned) or, versioned, replaced by the
/// delete marker `marker`. Returns the files to remove after commit.
pub async fn delete_object(
    conn: &mut AnyConnection,
    bucket_id: &str,
    key: &str,
    mode: Versioning,
    marker: Option<&ObjectRow>,
) -> Result<Vec<String>> {
    match (mode, marker) {
        (Versioning::Off, _) | (_, None) => {
            let old = current(conn, bucket_id, key).await?;
            sqlx::query("DELETE FROM objects WHERE bucket_id = $1 AND key = $2")
                .bind(bucket_id)
                .bind(key)
                .execute(&mut *conn)
                .await?;
            Ok(old.filter(|o| !o.is_delete_marker()).map(|o| o.file_id).into_iter().collect())
        }
        (_, Some(marker)) => put_object(conn, marker, mode).await,
    }
}

/// Permanently deletes one version, current or not; when it was current, the newest
/// noncurrent version becomes current. Returns the deleted version, if it existed (the
/// caller removes its file after commit).
pub async fn delete_version(
    conn: &mut AnyConnection,
    bucket_id: &str,
    key: &str,
    version_id: &str,
) -> Result<Option<ObjectRow>> {
    if let Some(cur) = current(conn, bucket_id, key).await?
        && cur.version_id == version_id
    {
        sqlx::query("DELETE FROM objects WHERE bucket_id = $1 AND key = $2")
            .bind(bucket_id)
            .bind(key)
            .execute(&mut *conn)
            .await?;
        let newest: Option<ObjectRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OBJECT_COLUMNS} FROM object_versions WHERE bucket_id = $1 AND key = $2 \
             ORDER BY modified_at DESC, version_id DESC LIMIT 1"
        )))
        .bind(bucket_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(n) = newest {
            sqlx::query("DELETE FROM object_versions WHERE bucket_id = $1 AND key = $2 AND version_id = $3")
                .bind(bucket_id)
                .bind(key)
                .bind(&n.version_id)
                .execute(&mut *conn)
                .await?;
            insert_row(conn, "objects", &n).await?;
        }
        return Ok(Some(cur));
    }
    let old: Option<ObjectRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {OBJECT_COLUMNS} FROM object_versions WHERE bucket_id = $1 AND key = $2 AND version_id = $3"
    )))
    .bind(bucket_id)
    .bind(key)
    .bind(version_id)
    .fetch_optional(&mut *conn)
    .await?;
    if old.is_some() {
        sqlx::query("DELETE FROM object_versions WHERE bucket_id = $1 AND key = $2 AND version_id = $3")
            .bind(bucket_id)
            .bind(key)
            .bind(version_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(old)
}

#[derive(Debug, Clone, FromRow)]
pub struct UploadRow {
    pub id: String,
    pub bucket_id: String,
    pub key: String,
    pub headers: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct PartRow {
    pub upload_id: String,
    pub part_number: i64,
    pub size: i64,
    pub etag: String,
    pub modified_at: i64,
}

pub async fn insert_upload(conn: &mut AnyConnection, u: &UploadRow) -> Result<()> {
    sqlx::query("INSERT INTO multipart_uploads (id, bucket_id, key, headers, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&u.id)
        .bind(&u.bucket_id)
        .bind(&u.key)
        .bind(&u.headers)
        .bind(u.created_at)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_upload(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    sqlx::query("DELETE FROM multipart_parts WHERE upload_id = $1").bind(id).execute(&mut *conn).await?;
    let done = sqlx::query("DELETE FROM multipart_uploads WHERE id = $1").bind(id).execute(&mut *conn).await?;
    Ok(done.rows_affected() > 0)
}

pub async fn put_part(conn: &mut AnyConnection, p: &PartRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO multipart_parts (upload_id, part_number, size, etag, modified_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (upload_id, part_number) DO UPDATE SET size = excluded.size, etag = excluded.etag, \
         modified_at = excluded.modified_at",
    )
    .bind(&p.upload_id)
    .bind(p.part_number)
    .bind(p.size)
    .bind(&p.etag)
    .bind(p.modified_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct S3KeyRow {
    pub id: String,
    pub user_id: String,
    pub description: Option<String>,
    pub secret_enc: String,
    /// JSON array of the names the key's buckets had when it was made (for display).
    pub buckets: Option<String>,
    pub read_only: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// When the key stops working (a key made with an expiring token ends with it).
    pub expires_at: Option<i64>,
    /// The one project the key reaches (made with a project-restricted token).
    pub project_id: Option<String>,
    /// JSON array of the bucket ids the key is limited to; `None`: not limited.
    pub bucket_ids: Option<String>,
}

impl S3KeyRow {
    pub fn bucket_names(&self) -> Vec<String> {
        self.buckets.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default()
    }

    /// The bucket ids the key is limited to; `None` when it is not limited (an empty list
    /// reaches nothing: a key whose buckets were all gone when ids replaced names).
    pub fn bucket_id_limit(&self) -> Option<Vec<String>> {
        self.bucket_ids.as_deref().map(|b| serde_json::from_str(b).unwrap_or_default())
    }

    pub fn to_api(&self) -> S3Key {
        S3Key {
            id: self.id.clone(),
            description: self.description.clone(),
            user_id: self.user_id.clone(),
            buckets: self.bucket_names(),
            bucket_ids: self.bucket_id_limit().unwrap_or_default(),
            read_only: self.read_only != 0,
            created_at: to_time(self.created_at),
            last_used_at: self.last_used_at.map(to_time),
            expires_at: self.expires_at.map(to_time),
            project_id: self.project_id.clone(),
        }
    }
}

const KEY_COLUMNS: &str = "id, user_id, description, secret_enc, buckets, read_only, created_at, last_used_at, expires_at, project_id, \
     bucket_ids";

pub async fn insert_s3_key(conn: &mut AnyConnection, k: &S3KeyRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO s3_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    )))
    .bind(&k.id)
    .bind(&k.user_id)
    .bind(&k.description)
    .bind(&k.secret_enc)
    .bind(&k.buckets)
    .bind(k.read_only)
    .bind(k.created_at)
    .bind(k.last_used_at)
    .bind(k.expires_at)
    .bind(&k.project_id)
    .bind(&k.bucket_ids)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Makes a bucket public-read (with the policy that says so) or private (no policy).
pub async fn set_public_read(conn: &mut AnyConnection, id: &str, policy: Option<&str>, public: bool) -> Result<()> {
    sqlx::query("UPDATE buckets SET policy = $2, public_read = $3 WHERE id = $1")
        .bind(id)
        .bind(policy)
        .bind(public as i64)
        .execute(conn)
        .await?;
    Ok(())
}

/// `Enabled` or `Suspended`.
pub async fn set_versioning(conn: &mut AnyConnection, id: &str, versioning: &str) -> Result<()> {
    sqlx::query("UPDATE buckets SET versioning = $2 WHERE id = $1").bind(id).bind(versioning).execute(conn).await?;
    Ok(())
}

pub async fn set_s3_key_description(
    conn: &mut AnyConnection,
    user_id: &str,
    id: &str,
    description: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE s3_keys SET description = $3 WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .bind(description)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_s3_key(conn: &mut AnyConnection, user_id: &str, id: &str) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM s3_keys WHERE user_id = $1 AND id = $2").bind(user_id).bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes every user's keys with one of these descriptions limited to exactly this one
/// bucket (`bucket_ids_json`, as stored: `["bkt-…"]`); returns their ids.
pub async fn delete_keys_of_bucket(
    conn: &mut AnyConnection,
    descriptions: &[String],
    bucket_ids_json: &str,
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for description in descriptions {
        let found: Vec<(String,)> = sqlx::query_as("SELECT id FROM s3_keys WHERE description = $1 AND bucket_ids = $2")
            .bind(description)
            .bind(bucket_ids_json)
            .fetch_all(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM s3_keys WHERE description = $1 AND bucket_ids = $2")
            .bind(description)
            .bind(bucket_ids_json)
            .execute(&mut *conn)
            .await?;
        ids.extend(found.into_iter().map(|(id,)| id));
    }
    Ok(ids)
}

impl Store {
    /// A bucket by id or name among the projects in scope, with its stats.
    pub async fn bucket_by_key(&self, key: &str, scope: &ProjectScope) -> Result<Option<BucketWithStats>> {
        let mut sql = format!("SELECT {BUCKET_COLUMNS}, {STATS} FROM buckets b WHERE (b.id = $1 OR b.name = $1)");
        let mut binds = vec![Bind::Text(key.to_string())];
        scope.apply(&mut sql, &mut binds, "b.project_id");
        let rows: Vec<BucketWithStats> =
            bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().next())
    }

    /// Buckets of the projects in scope (optionally one project), by name.
    pub async fn list_buckets(&self, scope: &ProjectScope, project: Option<&str>) -> Result<Vec<BucketWithStats>> {
        let mut sql = format!("SELECT {BUCKET_COLUMNS}, {STATS} FROM buckets b WHERE 1 = 1");
        let mut binds = Vec::new();
        scope.apply(&mut sql, &mut binds, "b.project_id");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND b.project_id = ${}", binds.len()));
        }
        sql.push_str(" ORDER BY b.name");
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }

    /// A page of the buckets in scope (or of one project), with their statistics.
    pub async fn buckets_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<BucketWithStats>, Option<String>)> {
        let (sql, binds) = crate::networks::scoped_sql(
            &format!("SELECT {BUCKET_COLUMNS}, {STATS} FROM buckets b WHERE 1 = 1"),
            scope,
            project,
            "b.project_id",
        );
        self.page(&sql, binds, query, |r: &BucketWithStats| {
            key_by_created_or_name(query.sort.field, r.bucket.created_at, &r.bucket.name, &r.bucket.id)
        })
        .await
    }

    /// A page of a user's S3 keys (`name` is the access key id).
    pub async fn s3_keys_page(&self, user_id: &str, query: &ListQuery) -> Result<(Vec<S3KeyRow>, Option<String>)> {
        let sql = format!("SELECT {KEY_COLUMNS}, id AS name FROM s3_keys WHERE user_id = $1");
        self.page(&sql, vec![Bind::Text(user_id.to_string())], query, |r: &S3KeyRow| {
            key_by_created_or_name(query.sort.field, r.created_at, &r.id, &r.id)
        })
        .await
    }

    /// A bucket by its (global) name, whoever owns it.
    pub async fn bucket_by_name(&self, name: &str) -> Result<Option<BucketRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {BUCKET_COLUMNS} FROM buckets b WHERE b.name = $1")))
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn all_buckets(&self) -> Result<Vec<BucketRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {BUCKET_COLUMNS} FROM buckets b ORDER BY b.name")))
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn object(&self, bucket_id: &str, key: &str) -> Result<Option<ObjectRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = $1 AND key = $2"
        )))
        .bind(bucket_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Up to `limit` objects whose key is `>= from` (or `> from` when `exclusive`), in
    /// byte order of the key.
    pub async fn objects_from(
        &self,
        bucket_id: &str,
        from: &str,
        exclusive: bool,
        limit: i64,
    ) -> Result<Vec<ObjectRow>> {
        let op = if exclusive { ">" } else { ">=" };
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = $1 AND key {op} $2 AND delete_marker = 0 \
             ORDER BY key LIMIT $3"
        )))
        .bind(bucket_id)
        .bind(from)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Objects last modified before `before` whose key starts with `prefix` (lifecycle).
    pub async fn objects_modified_before(&self, bucket_id: &str, before: i64, limit: i64) -> Result<Vec<ObjectRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = $1 AND modified_at < $2 AND delete_marker = 0 \
             ORDER BY key LIMIT $3"
        )))
        .bind(bucket_id)
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every file id the bucket's objects and their versions use (garbage collection).
    pub async fn object_file_ids(&self, bucket_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT file_id FROM objects WHERE bucket_id = $1 UNION SELECT file_id FROM object_versions WHERE bucket_id = $1",
        )
        .bind(bucket_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// One version of a key: the current one or a noncurrent one.
    pub async fn object_version(&self, bucket_id: &str, key: &str, version_id: &str) -> Result<Option<ObjectRow>> {
        if let Some(o) = self.object(bucket_id, key).await?
            && o.version_id == version_id
        {
            return Ok(Some(o));
        }
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OBJECT_COLUMNS} FROM object_versions WHERE bucket_id = $1 AND key = $2 AND version_id = $3"
        )))
        .bind(bucket_id)
        .bind(key)
        .bind(version_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Versions of keys `>= from`, each flagged current or not, in key order and newest
    /// first within a key (ListObjectVersions); at most `limit` rows.
    pub async fn versions_from(&self, bucket_id: &str, from: &str, limit: i64) -> Result<Vec<(ObjectRow, bool)>> {
        let current: Vec<ObjectRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = $1 AND key >= $2 ORDER BY key LIMIT $3"
        )))
        .bind(bucket_id)
        .bind(from)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let old: Vec<ObjectRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OBJECT_COLUMNS} FROM object_versions WHERE bucket_id = $1 AND key >= $2 \
             ORDER BY key, modified_at DESC LIMIT $3"
        )))
        .bind(bucket_id)
        .bind(from)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        // Only keys both queries fully covered are complete.
        let horizon = match (current.len() as i64 == limit, old.len() as i64 == limit) {
            (true, true) => current.last().map(|o| o.key.clone()).min(old.last().map(|o| o.key.clone())),
            (true, false) => current.last().map(|o| o.key.clone()),
            (false, true) => old.last().map(|o| o.key.clone()),
            (false, false) => None,
        };
        let mut all: Vec<(ObjectRow, bool)> =
            current.into_iter().map(|o| (o, true)).chain(old.into_iter().map(|o| (o, false))).collect();
        if let Some(h) = horizon {
            all.retain(|(o, _)| o.key.as_bytes() < h.as_bytes());
        }
        all.sort_by(|(a, a_cur), (b, b_cur)| {
            a.key.as_bytes().cmp(b.key.as_bytes()).then(b_cur.cmp(a_cur)).then(b.modified_at.cmp(&a.modified_at))
        });
        Ok(all)
    }

    pub async fn upload(&self, id: &str) -> Result<Option<UploadRow>> {
        Ok(sqlx::query_as("SELECT id, bucket_id, key, headers, created_at FROM multipart_uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// A bucket's uploads in progress, by key then start time.
    pub async fn uploads(&self, bucket_id: &str) -> Result<Vec<UploadRow>> {
        Ok(sqlx::query_as(
            "SELECT id, bucket_id, key, headers, created_at FROM multipart_uploads WHERE bucket_id = $1 \
             ORDER BY key, created_at",
        )
        .bind(bucket_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Uploads started before `before` (garbage collection, lifecycle).
    pub async fn uploads_started_before(&self, before: i64) -> Result<Vec<UploadRow>> {
        Ok(sqlx::query_as(
            "SELECT id, bucket_id, key, headers, created_at FROM multipart_uploads WHERE created_at < $1",
        )
        .bind(before)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn parts(&self, upload_id: &str) -> Result<Vec<PartRow>> {
        Ok(sqlx::query_as(
            "SELECT upload_id, part_number, size, etag, modified_at FROM multipart_parts WHERE upload_id = $1 \
             ORDER BY part_number",
        )
        .bind(upload_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn s3_key(&self, id: &str) -> Result<Option<S3KeyRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {KEY_COLUMNS} FROM s3_keys WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn s3_keys_of(&self, user_id: &str) -> Result<Vec<S3KeyRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM s3_keys WHERE user_id = $1 ORDER BY created_at, id"
        )))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records use; callers debounce.
    pub async fn touch_s3_key(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE s3_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
