//! The store's suite, run against the embedded SQLite store and a real PostgreSQL server
//! (`make test` starts one and sets ROOST_TEST_POSTGRES).

use roost_store::audit::{self, AuditEntry};
use roost_store::list::{Cursor, CursorValue, ListQuery};
use roost_store::operations::OperationRow;
use roost_store::sessions::SessionRow;
use roost_store::sqlx;
use roost_store::tokens::TokenRow;
use roost_store::users::UserRow;
use roost_store::{Backend, SortKey, Store, StoreError};

/// A fresh database on the test PostgreSQL server.
async fn postgres_store() -> Store {
    Store::open(&postgres_url().await).await.expect("open the PostgreSQL store")
}

/// A fresh, empty database on the test PostgreSQL server: its URL.
async fn postgres_url() -> String {
    let base = std::env::var("ROOST_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "ROOST_TEST_POSTGRES is not set: the store suite needs a PostgreSQL server (Debian package \
             'postgresql'); run the tests with `make test`, which installs it and starts one on 127.0.0.1:55432"
        )
    });
    let name = format!("roost_test_{}", roost_api::ids::IdKind::Operation.generate().replace('-', "_"));
    let admin = roost_store::raw_pool(&base).await.expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create database");
    admin.close().await;
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("ROOST_TEST_POSTGRES has no database part: {base}"),
    }
}

/// Keys limited to buckets by name before migration 0013 are limited by id after it: to
/// the buckets that had those names, and a key whose buckets were all gone to nothing.
async fn bucket_limits_become_ids(url: &str, migrations: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(migrations);
    let mut before = sqlx::migrate::Migrator::new(dir.as_path()).await.expect("read the migrations");
    before.migrations = std::borrow::Cow::Owned(before.migrations.iter().filter(|m| m.version < 13).cloned().collect());
    let pool = roost_store::raw_pool(url).await.unwrap();
    before.run(&pool).await.expect("the migrations before 0013");
    let mut conn = pool.acquire().await.unwrap();
    roost_store::users::insert(&mut conn, &user("usr-alice0000000", "alice")).await.unwrap();
    let project = roost_store::projects::ProjectRow {
        id: "prj-aaaaaaaaaaaa".into(),
        name: "a".into(),
        description: None,
        created_at: 1_000,
        updated_at: 1_000,
    };
    roost_store::projects::insert(&mut conn, &project).await.unwrap();
    for (id, name) in [("bkt-photos000000", "photos"), ("bkt-other0000000", "other")] {
        let bucket = roost_store::buckets::BucketRow {
            id: id.into(),
            name: name.into(),
            project_id: project.id.clone(),
            policy: None,
            public_read: 0,
            cors: None,
            lifecycle: None,
            versioning: None,
            created_by: None,
            created_at: 1_000,
        };
        roost_store::buckets::insert_bucket(&mut conn, &bucket).await.unwrap();
    }
    for (id, buckets) in
        [("RKBOTH", Some(r#"["photos","other"]"#)), ("RKGONE", Some(r#"["deleted"]"#)), ("RKALL", None)]
    {
        sqlx::query(
            "INSERT INTO s3_keys (id, user_id, description, secret_enc, buckets, read_only, created_at) \
             VALUES ($1, 'usr-alice0000000', NULL, '00', $2, 0, 1000)",
        )
        .bind(id)
        .bind(buckets)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    drop(conn);
    pool.close().await;
    let store = Store::open(url).await.expect("the remaining migrations");
    let limit = |id: &'static str| {
        let store = &store;
        async move {
            let key = store.s3_key(id).await.unwrap().unwrap();
            key.bucket_id_limit().map(|mut ids| {
                ids.sort();
                ids
            })
        }
    };
    assert_eq!(limit("RKBOTH").await, Some(vec!["bkt-other0000000".to_string(), "bkt-photos000000".to_string()]));
    assert_eq!(limit("RKGONE").await, Some(vec![]), "limited to nothing");
    assert_eq!(limit("RKALL").await, None, "not limited");
    assert_eq!(store.s3_key("RKBOTH").await.unwrap().unwrap().bucket_names(), ["photos", "other"], "names kept");
    store.close().await;
}

#[tokio::test]
async fn bucket_limits_become_ids_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("roost.db").display());
    bucket_limits_become_ids(&url, "sqlite").await;
}

#[tokio::test]
async fn bucket_limits_become_ids_on_postgres() {
    bucket_limits_become_ids(&postgres_url().await, "postgres").await;
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    Store::open_sqlite(&dir.path().join("roost.db")).await.expect("open the SQLite store")
}

#[tokio::test]
async fn suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    assert_eq!(store.backend(), Backend::Sqlite);
    suite(&store).await;
    // Reopening runs migrations again: they must be idempotent and keep data.
    store.close().await;
    let again = sqlite_store(&dir).await;
    assert!(again.user_by_name("alice").await.unwrap().is_some());
    backup(&again, &dir).await;
}

#[tokio::test]
async fn suite_on_postgres() {
    let store = postgres_store().await;
    assert_eq!(store.backend(), Backend::Postgres);
    suite(&store).await;
    assert!(store.backup_sqlite_to(std::path::Path::new("/tmp/x.db")).await.is_err());
}

async fn backup(store: &Store, dir: &tempfile::TempDir) {
    let target = dir.path().join("copy.db");
    store.backup_sqlite_to(&target).await.unwrap();
    let copy = Store::open_sqlite(&target).await.unwrap();
    assert!(copy.user_by_name("alice").await.unwrap().is_some(), "the backup holds the data");
}

async fn suite(store: &Store) {
    store.check_ready().await.expect("ready after migrations");
    users(store).await;
    tokens(store).await;
    sessions(store).await;
    operations(store).await;
    audit_chain(store).await;
    meta(store).await;
    presign_keys(store).await;
    concurrent_writes(store).await;
    event_log(store).await;
    task_leases(store).await;
}

fn new_event(kind: &str, id: &str) -> roost_store::events::NewEvent {
    roost_store::events::NewEvent {
        time: roost_store::now_ms(),
        kind: kind.into(),
        resource_type: "token".into(),
        resource_id: id.into(),
        audience: "user:usr-a".into(),
        data: Some(format!("{{\"id\":\"{id}\"}}")),
    }
}

/// Events land with their transaction or not at all, in sequence order without gaps,
/// also when many transactions append at once; pruning keeps the newest.
async fn event_log(store: &Store) {
    use roost_store::events;
    let start = store.last_event_seq().await.unwrap();
    let mut tx = store.write().await.unwrap();
    let seqs = events::append(
        tx.conn(),
        store.backend(),
        &[new_event("token.created", "tok-e1"), new_event("token.deleted", "tok-e1")],
    )
    .await
    .unwrap();
    assert_eq!(seqs, vec![start + 1, start + 2]);
    tx.commit().await.unwrap();
    // A rolled-back transaction leaves no event and takes no number.
    let mut tx = store.write().await.unwrap();
    events::append(tx.conn(), store.backend(), &[new_event("token.created", "tok-rolled-back")]).await.unwrap();
    drop(tx);
    assert_eq!(store.last_event_seq().await.unwrap(), start + 2);
    let rows = store.events_after(start, 100).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.resource_id.as_str()).collect::<Vec<_>>(), ["tok-e1", "tok-e1"]);
    assert_eq!(rows[0].kind, "token.created");
    assert_eq!(rows[0].audience, "user:usr-a");

    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.write().await.unwrap();
            events::append(tx.conn(), store.backend(), &[new_event("token.created", &format!("tok-p{i}"))])
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = store.events_after(start, 1000).await.unwrap();
    assert_eq!(rows.len(), 32);
    for pair in rows.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "no gaps");
    }
    assert_eq!(store.last_event_seq().await.unwrap(), start + 32);

    // Everything is older than "now + 1s"; the newest 5 stay.
    let pruned = store.prune_events(roost_store::now_ms() + 1000, 5).await.unwrap();
    assert!(pruned >= 27, "{pruned}");
    assert_eq!(store.first_event_seq().await.unwrap(), Some(start + 28));
    assert_eq!(store.events_after(0, 1000).await.unwrap().len(), 5);
}

/// A bucket's presign keys (described `presign:<bucket>:…` and limited to exactly that
/// bucket, by id) are deleted with it; every other key stays.
async fn presign_keys(store: &Store) {
    use roost_store::buckets::S3KeyRow;
    let key = |id: &str, description: &str, buckets: Option<&str>| S3KeyRow {
        id: id.into(),
        user_id: "usr-alice0000000".into(),
        description: Some(description.into()),
        secret_enc: "00".into(),
        buckets: None,
        read_only: 1,
        created_at: 1_000,
        last_used_at: None,
        expires_at: None,
        project_id: None,
        bucket_ids: buckets.map(String::from),
    };
    let mut tx = store.write().await.unwrap();
    for k in [
        key("RKREAD", "presign:photos:read", Some(r#"["bkt-photos000000"]"#)),
        key("RKWRITE", "presign:photos:write", Some(r#"["bkt-photos000000"]"#)),
        key("RKOLD", "presign", None),
        key("RKWIDER", "presign:photos:read", Some(r#"["bkt-photos000000","bkt-other0000000"]"#)),
        key("RKOTHER", "presign:other:read", Some(r#"["bkt-other0000000"]"#)),
    ] {
        roost_store::buckets::insert_s3_key(tx.conn(), &k).await.unwrap();
    }
    let descriptions = ["presign:photos:read".to_string(), "presign:photos:write".to_string()];
    let mut gone =
        roost_store::buckets::delete_keys_of_bucket(tx.conn(), &descriptions, r#"["bkt-photos000000"]"#).await.unwrap();
    tx.commit().await.unwrap();
    gone.sort();
    assert_eq!(gone, ["RKREAD", "RKWRITE"]);
    let mut left: Vec<String> = store.s3_keys_of("usr-alice0000000").await.unwrap().into_iter().map(|k| k.id).collect();
    left.sort();
    assert_eq!(left, ["RKOLD", "RKOTHER", "RKWIDER"]);
}

fn user(id: &str, name: &str) -> UserRow {
    UserRow {
        id: id.into(),
        name: name.into(),
        email: Some(format!("{name}@example.test")),
        display_name: None,
        role: "operator".into(),
        password_hash: "$argon2id$x".into(),
        disabled: 0,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

async fn users(store: &Store) {
    let mut tx = store.write().await.unwrap();
    roost_store::users::insert(tx.conn(), &user("usr-alice0000000", "alice")).await.unwrap();
    roost_store::users::insert(tx.conn(), &user("usr-bob000000000", "bob")).await.unwrap();
    tx.commit().await.unwrap();

    let alice = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(alice.id, "usr-alice0000000");
    assert_eq!(alice.email.as_deref(), Some("alice@example.test"));
    assert!(store.user_by_id("usr-bob000000000").await.unwrap().is_some());
    assert!(store.user_by_name("carol").await.unwrap().is_none());
    assert_eq!(store.user_count().await.unwrap(), 2);

    let mut tx = store.write().await.unwrap();
    let err = roost_store::users::insert(tx.conn(), &user("usr-other0000000", "alice")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    drop(tx); // rolled back

    // A dropped transaction leaves nothing behind.
    let mut tx = store.write().await.unwrap();
    roost_store::users::insert(tx.conn(), &user("usr-ghost0000000", "ghost")).await.unwrap();
    drop(tx);
    assert!(store.user_by_name("ghost").await.unwrap().is_none());
}

fn token(id: &str, user_id: &str, name: &str, created_at: i64) -> TokenRow {
    TokenRow {
        id: id.into(),
        user_id: user_id.into(),
        name: name.into(),
        prefix: "rst_abcdefgh".into(),
        token_hash: format!("hash-{id}"),
        scope: "write".into(),
        created_at,
        expires_at: None,
        last_used_at: None,
        project_id: None,
    }
}

async fn tokens(store: &Store) {
    let mut tx = store.write().await.unwrap();
    // Two share a created_at so the id tie-break is exercised.
    for (i, created) in [(1, 10), (2, 20), (3, 20), (4, 30), (5, 40)] {
        let t = token(&format!("tok-a{i}"), "usr-alice0000000", &format!("ci-{i}"), created);
        roost_store::tokens::insert(tx.conn(), &t).await.unwrap();
    }
    roost_store::tokens::insert(tx.conn(), &token("tok-b1", "usr-bob000000000", "ci-1", 15)).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let dup = roost_store::tokens::insert(tx.conn(), &token("tok-a9", "usr-alice0000000", "ci-1", 50)).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "names are unique per user");
    drop(tx);

    let by_created = SortKey { field: "created_at", text: false };
    let mut query = ListQuery { limit: 2, sort: by_created, descending: true, after: None, name_like: None };
    let mut seen = Vec::new();
    loop {
        let (rows, next) = store.list_tokens("usr-alice0000000", &query).await.unwrap();
        assert!(rows.len() <= 2);
        seen.extend(rows.iter().map(|r| r.id.clone()));
        match next {
            Some(cursor) => query.after = Some(Cursor::decode(&cursor).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, ["tok-a5", "tok-a4", "tok-a3", "tok-a2", "tok-a1"], "newest first, no row twice or lost");

    let by_name = ListQuery {
        limit: 10,
        sort: SortKey { field: "name", text: true },
        descending: false,
        after: Some(Cursor { sort: "name".into(), value: CursorValue::Text("ci-2".into()), id: "tok-a2".into() }),
        name_like: Some("ci-%".into()),
    };
    let (rows, next) = store.list_tokens("usr-alice0000000", &by_name).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["ci-3", "ci-4", "ci-5"]);
    assert!(next.is_none());

    let literal = ListQuery { name_like: Some(roost_store::list::glob_to_like("ci_1")), after: None, ..by_name };
    assert!(store.list_tokens("usr-alice0000000", &literal).await.unwrap().0.is_empty(), "_ is not a wildcard");

    let (bobs, _) = store.list_tokens("usr-bob000000000", &query_all()).await.unwrap();
    assert_eq!(bobs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["tok-b1"], "only the owner's tokens");

    assert_eq!(store.token_by_key("usr-alice0000000", "ci-3").await.unwrap().unwrap().id, "tok-a3");
    assert_eq!(store.token_by_key("usr-alice0000000", "tok-a3").await.unwrap().unwrap().name, "ci-3");
    assert!(store.token_by_key("usr-bob000000000", "tok-a3").await.unwrap().is_none(), "not another user's");

    let (t, u) = store.token_by_hash("hash-tok-a4").await.unwrap().unwrap();
    assert_eq!((t.id.as_str(), u.name.as_str()), ("tok-a4", "alice"));
    store.touch_token("tok-a4", 99_000).await.unwrap();
    assert_eq!(store.token_by_key("usr-alice0000000", "tok-a4").await.unwrap().unwrap().last_used_at, Some(99_000));

    let mut tx = store.write().await.unwrap();
    assert!(!roost_store::tokens::delete(tx.conn(), "usr-bob000000000", "tok-a4").await.unwrap());
    assert!(roost_store::tokens::delete(tx.conn(), "usr-alice0000000", "tok-a4").await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.token_by_hash("hash-tok-a4").await.unwrap().is_none());
}

fn query_all() -> ListQuery {
    ListQuery {
        limit: 100,
        sort: SortKey { field: "created_at", text: false },
        descending: true,
        after: None,
        name_like: None,
    }
}

async fn sessions(store: &Store) {
    let session = |id: &str, hash: &str, expires_at| SessionRow {
        id: id.into(),
        user_id: "usr-bob000000000".into(),
        token_hash: hash.into(),
        csrf_hash: "csrf".into(),
        source: Some("127.0.0.1".into()),
        created_at: 1,
        expires_at,
        last_seen_at: None,
    };
    let mut tx = store.write().await.unwrap();
    roost_store::sessions::insert(tx.conn(), &session("ses-1", "sh-1", 5_000)).await.unwrap();
    roost_store::sessions::insert(tx.conn(), &session("ses-2", "sh-2", 50_000)).await.unwrap();
    tx.commit().await.unwrap();
    let (s, u) = store.session_by_hash("sh-1").await.unwrap().unwrap();
    assert_eq!((s.id.as_str(), u.name.as_str(), s.source.as_deref()), ("ses-1", "bob", Some("127.0.0.1")));
    assert_eq!(store.delete_expired_sessions(10_000).await.unwrap(), 1);
    assert!(store.session_by_hash("sh-1").await.unwrap().is_none());
    let mut tx = store.write().await.unwrap();
    assert!(roost_store::sessions::delete(tx.conn(), "ses-2").await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.session_by_hash("sh-2").await.unwrap().is_none());
}

async fn operations(store: &Store) {
    let op = |id: &str, by: &str, status: &str, created_at| OperationRow {
        id: id.into(),
        kind: "system.backup".into(),
        status: status.into(),
        progress: 0,
        message: None,
        error_code: None,
        error_message: None,
        result: None,
        resource_type: None,
        resource_id: None,
        created_by: Some(by.into()),
        created_at,
        updated_at: created_at,
        finished_at: None,
        project_id: None,
        job_params: None,
        job_state: None,
        job_step: None,
        job_steps: None,
        job_step_name: None,
        job_unwinding: 0,
    };
    // A job: its parameters, state and step survive for a restart to resume or unwind.
    let job = OperationRow {
        kind: "instance.clone".into(),
        job_params: Some("{\"name\":\"copy\"}".into()),
        job_state: Some("{}".into()),
        job_step: Some(0),
        job_steps: Some(4),
        job_step_name: Some("create the instance".into()),
        ..op("op-4", "usr-alice0000000", "running", 4)
    };
    let mut tx = store.write().await.unwrap();
    roost_store::operations::insert(tx.conn(), &op("op-1", "usr-alice0000000", "running", 1)).await.unwrap();
    roost_store::operations::insert(tx.conn(), &op("op-2", "usr-bob000000000", "pending", 2)).await.unwrap();
    roost_store::operations::insert(tx.conn(), &op("op-3", "usr-bob000000000", "succeeded", 3)).await.unwrap();
    roost_store::operations::insert(tx.conn(), &job).await.unwrap();
    tx.commit().await.unwrap();
    let mut job = store.operation("op-4", None).await.unwrap().unwrap();
    job.job_step = Some(2);
    job.job_step_name = Some("copy volumes".into());
    job.job_state = Some("{\"copied\":[\"vol-1\"]}".into());
    job.job_unwinding = 1;
    let mut tx = store.write().await.unwrap();
    roost_store::operations::update(tx.conn(), &job).await.unwrap();
    tx.commit().await.unwrap();
    let api = store.operation("op-4", None).await.unwrap().unwrap().to_api();
    assert_eq!(
        (api.step, api.steps, api.step_name.as_deref(), api.unwinding),
        (Some(3), Some(4), Some("copy volumes"), true)
    );

    assert!(store.operation("op-1", Some("usr-bob000000000")).await.unwrap().is_none(), "not another user's");
    assert!(store.operation("op-1", None).await.unwrap().is_some());
    let (bobs, _) = store.list_operations(Some("usr-bob000000000"), &query_all()).await.unwrap();
    assert_eq!(bobs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["op-3", "op-2"]);
    let (all, _) = store.list_operations(None, &query_all()).await.unwrap();
    assert_eq!(all.len(), 4);

    let mut row = store.operation("op-1", None).await.unwrap().unwrap();
    row.progress = 50;
    row.message = Some("copying".into());
    row.result = Some("{\"path\":\"/x\"}".into());
    let mut tx = store.write().await.unwrap();
    roost_store::operations::update(tx.conn(), &row).await.unwrap();
    tx.commit().await.unwrap();
    let api = store.operation("op-1", None).await.unwrap().unwrap().to_api();
    assert_eq!((api.progress, api.message.as_deref()), (50, Some("copying")));
    assert_eq!(api.result.unwrap()["path"], "/x");

    let interrupted = store.fail_interrupted_operations(100).await.unwrap();
    let mut ids: Vec<_> = interrupted.iter().map(|o| o.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["op-1", "op-2"], "a job is not marked failed: it is resumed or unwound");
    let failed = store.operation("op-2", None).await.unwrap().unwrap().to_api();
    assert_eq!(failed.error.unwrap().code, "interrupted");
    let jobs = store.unfinished_jobs().await.unwrap();
    assert_eq!(jobs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["op-4"]);
    assert_eq!(jobs[0].job_state.as_deref(), Some("{\"copied\":[\"vol-1\"]}"));
    assert_eq!(store.operation("op-3", None).await.unwrap().unwrap().status, "succeeded", "final ones untouched");
}

async fn audit_chain(store: &Store) {
    let entry = |action: &str| AuditEntry {
        time: 7,
        actor: "usr-alice0000000".into(),
        action: action.into(),
        result: "success".into(),
        ..Default::default()
    };
    let mut tx = store.write().await.unwrap();
    let first = audit::append(tx.conn(), &entry("token.create")).await.unwrap();
    let second = audit::append(tx.conn(), &entry("token.delete")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(second, first + 1);
    let rows = store.audit_entries(0, 100).await.unwrap();
    let mut prev = "0".repeat(64);
    for row in &rows {
        assert_eq!(row.prev_hash, prev, "each entry links to the one before");
        assert_eq!(row.hash, audit::entry_hash(&row.prev_hash, row.seq, &row.entry()));
        prev = row.hash.clone();
    }
    // A rolled-back append leaves the chain as it was.
    let mut tx = store.write().await.unwrap();
    audit::append(tx.conn(), &entry("token.create")).await.unwrap();
    drop(tx);
    let mut tx = store.write().await.unwrap();
    let next = audit::append(tx.conn(), &entry("token.create")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next, second + 1);
    assert_eq!(store.audit_entries(second, 10).await.unwrap()[0].prev_hash, rows.last().unwrap().hash);
}

async fn meta(store: &Store) {
    let mut tx = store.write().await.unwrap();
    roost_store::meta::set(tx.conn(), "k", "one").await.unwrap();
    roost_store::meta::set(tx.conn(), "k", "two").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.meta("k").await.unwrap().as_deref(), Some("two"));
    assert_eq!(store.meta("missing").await.unwrap(), None);
}

/// Many writers at once: all succeed and the audit chain stays a chain.
async fn concurrent_writes(store: &Store) {
    let before = store.audit_entries(0, 10_000).await.unwrap().len();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.write().await.unwrap();
            let t = token(&format!("tok-c{i}"), "usr-bob000000000", &format!("c-{i}"), 100 + i);
            roost_store::tokens::insert(tx.conn(), &t).await.unwrap();
            audit::append(
                tx.conn(),
                &AuditEntry {
                    time: 1,
                    actor: "x".into(),
                    action: "token.create".into(),
                    result: "success".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = store.audit_entries(0, 10_000).await.unwrap();
    assert_eq!(rows.len(), before + 40);
    for pair in rows.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
}

/// A task's lease: one holder at a time, taken over once expired, renewed by a recorded
/// run, released at shutdown; a run asked of any server reaches the holder.
async fn task_leases(store: &Store) {
    use roost_store::tasks::TaskRunRecord;
    let take = |server: &'static str, now: i64| async move {
        store.acquire_task_lease("sweep", "sweeps", 5000, server, now, now + 30_000).await.unwrap()
    };
    let request = |at: i64| async move {
        let mut tx = store.write().await.unwrap();
        let known = roost_store::tasks::request_run(tx.conn(), "sweep", at).await.unwrap();
        tx.commit().await.unwrap();
        known
    };
    assert!(!request(1).await, "no row before a server took it");
    assert!(take("srv-a", 1000).await.is_some(), "a free lease is taken");
    assert!(take("srv-b", 2000).await.is_none(), "a held lease is refused");
    assert!(take("srv-a", 3000).await.is_some(), "the holder renews");
    let row = store.task("sweep").await.unwrap().unwrap();
    assert_eq!((row.holder.as_deref(), row.lease_expires_at, row.runs), (Some("srv-a"), 33_000, 0));

    // A run asked of another server shows in the holder's next renewal.
    assert!(request(4000).await);
    let run = TaskRunRecord {
        server: "srv-a",
        started_at: 5000,
        elapsed_ms: 12,
        ok: true,
        details: r#"{"swept":3}"#,
        next_run_at: 10_000,
        lease_until: 40_000,
    };
    let held = store.record_task_run("sweep", &run).await.unwrap().expect("still srv-a's");
    assert_eq!(held.wake_requested_at, Some(4000));
    let row = store.task("sweep").await.unwrap().unwrap();
    assert_eq!(
        (row.runs, row.lease_expires_at, row.last_ok, row.last_details.as_deref()),
        (1, 40_000, Some(1), Some(r#"{"swept":3}"#))
    );

    // Expired: another server takes it over; the old holder's late record keeps the
    // status but not the lease.
    assert!(take("srv-b", 39_999).await.is_none(), "not before it expires");
    assert!(take("srv-b", 40_000).await.is_some(), "taken over once expired");
    let late = TaskRunRecord { server: "srv-a", ok: false, details: "boom", lease_until: 90_000, ..run };
    assert!(store.record_task_run("sweep", &late).await.unwrap().is_none(), "srv-a lost it");
    let row = store.task("sweep").await.unwrap().unwrap();
    assert_eq!((row.holder.as_deref(), row.lease_expires_at, row.runs), (Some("srv-b"), 70_000, 2));

    // Released: free for anyone at once.
    store.release_task_lease("sweep", "srv-a").await.unwrap();
    assert_eq!(
        store.task("sweep").await.unwrap().unwrap().holder.as_deref(),
        Some("srv-b"),
        "only the holder releases"
    );
    store.release_task_lease("sweep", "srv-b").await.unwrap();
    assert!(take("srv-a", 41_000).await.is_some());
    assert_eq!(store.tasks().await.unwrap().len(), 1);

    // The next process on srv-a's data directory gives up whatever srv-a held.
    assert_eq!(store.release_task_leases_of("srv-a").await.unwrap(), 1);
    assert!(take("srv-c", 42_000).await.is_some(), "free at once, long before it would expire");
}
