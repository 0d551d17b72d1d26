//! The sandbox template repository on SQLite and a real PostgreSQL server: insert,
//! cache-key lookup scoped to one project, hit/miss counters, a rebuild that re-tags the
//! image and keeps the counters, scoped listing, deletion.

use roost_store::images::ImageRow;
use roost_store::list::ProjectScope;
use roost_store::projects::ProjectRow;
use roost_store::sandbox_templates::{self as repo, TemplateRow};
use roost_store::sqlx;
use roost_store::{Store, StoreError};

async fn postgres_store() -> Store {
    let base = std::env::var("ROOST_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "ROOST_TEST_POSTGRES is not set: the store suite needs a PostgreSQL server (Debian package \
             'postgresql'); run the tests with `make test`, which installs it and starts one"
        )
    });
    let name = format!("roost_test_{}", roost_api::ids::IdKind::Operation.generate().replace('-', "_"));
    let admin = roost_store::raw_pool(&base).await.expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create database");
    admin.close().await;
    let i = base.rfind('/').expect("a database in ROOST_TEST_POSTGRES");
    Store::open(&format!("{}/{name}", &base[..i])).await.expect("open the PostgreSQL store")
}

#[tokio::test]
async fn sandbox_templates_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    suite(&Store::open_sqlite(&dir.path().join("roost.db")).await.unwrap()).await;
}

#[tokio::test]
async fn sandbox_templates_on_postgres() {
    suite(&postgres_store().await).await;
}

fn image(id: &str, project: &str, name: &str, digest: &str) -> ImageRow {
    ImageRow {
        id: id.into(),
        name: name.into(),
        project_id: project.into(),
        source: "template".into(),
        description: None,
        status: "ready".into(),
        status_reason: None,
        digest: Some(digest.into()),
        size_bytes: Some(10),
        spec: None,
        created_by: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn template(image_id: &str, project: &str, key: &str) -> TemplateRow {
    TemplateRow {
        image_id: image_id.into(),
        project_id: project.into(),
        base: "base".into(),
        base_digest: "b".repeat(64),
        cache_key: key.into(),
        commands: r#"["echo a > /a","echo b > /b"]"#.into(),
        build_log: "a\nb\n".into(),
        build_ms: Some(1500),
        hits: 0,
        misses: 0,
        last_used_at: None,
        updated_at: 1,
    }
}

async fn suite(store: &Store) {
    let mut tx = store.write().await.unwrap();
    let c = tx.conn();
    for p in ["prj-a", "prj-b"] {
        let row = ProjectRow { id: p.into(), name: p.into(), description: None, created_at: 1, updated_at: 1 };
        roost_store::projects::insert(c, &row).await.unwrap();
    }
    // The same inputs (key k1) in two projects, each with its own image.
    roost_store::images::insert(c, &image("img-a", "prj-a", "ds", "d-a")).await.unwrap();
    roost_store::images::insert(c, &image("img-b", "prj-b", "ds", "d-b")).await.unwrap();
    repo::insert(c, &template("img-a", "prj-a", "k1")).await.unwrap();
    repo::insert(c, &template("img-b", "prj-b", "k1")).await.unwrap();
    repo::count_build(c, "img-a", false, 10).await.unwrap();
    repo::count_build(c, "img-a", true, 20).await.unwrap();
    repo::count_build(c, "img-a", true, 30).await.unwrap();
    tx.commit().await.unwrap();
    // One template row per image (its own transaction: PostgreSQL aborts one after an error).
    let mut tx = store.write().await.unwrap();
    assert!(matches!(repo::insert(tx.conn(), &template("img-a", "prj-a", "k2")).await, Err(StoreError::Conflict(_))));
    drop(tx);

    let a = store.sandbox_template("img-a").await.unwrap().unwrap();
    assert_eq!((a.hits, a.misses, a.last_used_at), (2, 1, Some(30)));
    assert_eq!(a.commands(), vec!["echo a > /a".to_string(), "echo b > /b".to_string()]);
    assert_eq!(a.build_ms, Some(1500));
    // The cache lookup sees only the project's own builds.
    let found = store.sandbox_templates_by_cache_key("prj-a", "k1").await.unwrap();
    assert_eq!(found.iter().map(|t| t.image_id.as_str()).collect::<Vec<_>>(), ["img-a"]);
    assert!(store.sandbox_templates_by_cache_key("prj-a", "k2").await.unwrap().is_empty());

    // A rebuild with other inputs: the image points elsewhere, the counters stay.
    let mut tx = store.write().await.unwrap();
    let mut rebuilt = template("img-a", "prj-a", "k2");
    rebuilt.commands = r#"["echo c > /c"]"#.into();
    rebuilt.updated_at = 40;
    repo::update_build(tx.conn(), &rebuilt).await.unwrap();
    repo::retag_image(tx.conn(), "img-a", "d-a2", 99, "rebuilt", 40).await.unwrap();
    tx.commit().await.unwrap();
    let a = store.sandbox_template("img-a").await.unwrap().unwrap();
    assert_eq!((a.cache_key.as_str(), a.hits, a.misses), ("k2", 2, 1));
    assert_eq!(a.commands(), vec!["echo c > /c".to_string()]);
    let img = store.image_by_id("img-a").await.unwrap().unwrap();
    assert_eq!((img.digest.as_deref(), img.size_bytes), (Some("d-a2"), Some(99)));
    assert_eq!(store.sandbox_templates_by_cache_key("prj-a", "k2").await.unwrap().len(), 1);

    // Listing by scope and project; touching on use.
    assert_eq!(store.list_sandbox_templates(&ProjectScope::All, None).await.unwrap().len(), 2);
    let only_b = store.list_sandbox_templates(&ProjectScope::One("prj-b".into()), None).await.unwrap();
    assert_eq!(only_b.iter().map(|t| t.image_id.as_str()).collect::<Vec<_>>(), ["img-b"]);
    assert!(store.list_sandbox_templates(&ProjectScope::All, Some("prj-x")).await.unwrap().is_empty());
    store.touch_sandbox_template("img-b", 77).await.unwrap();
    assert_eq!(store.sandbox_template("img-b").await.unwrap().unwrap().last_used_at, Some(77));

    // Deletion.
    let mut tx = store.write().await.unwrap();
    assert!(repo::delete(tx.conn(), "img-b").await.unwrap());
    assert!(!repo::delete(tx.conn(), "img-b").await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.sandbox_template("img-b").await.unwrap().is_none());
}
