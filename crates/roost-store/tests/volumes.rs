//! The volume repository on SQLite and a real PostgreSQL server: one attachment per
//! volume (a second attach loses), detach on instance removal, snapshots of a policy
//! newest first, lineage, scoped listing.

use roost_store::images::ImageRow;
use roost_store::instances::InstanceRow;
use roost_store::list::ProjectScope;
use roost_store::projects::ProjectRow;
use roost_store::sqlx;
use roost_store::volumes::{self as repo, PolicyRow, SnapshotRow, VolumeRow};
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
async fn volumes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    suite(&Store::open_sqlite(&dir.path().join("roost.db")).await.unwrap()).await;
}

#[tokio::test]
async fn volumes_on_postgres() {
    suite(&postgres_store().await).await;
}

fn volume(id: &str, project: &str, name: &str) -> VolumeRow {
    VolumeRow {
        id: id.into(),
        project_id: project.into(),
        name: name.into(),
        size_bytes: 1 << 30,
        filesystem: "ext4".into(),
        format: "raw".into(),
        instance_id: None,
        mount_path: None,
        read_only: 0,
        cloned_from: None,
        created_by: None,
        created_at: 1,
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
    let image = ImageRow {
        id: "img-x".into(),
        name: "x".into(),
        project_id: "prj-a".into(),
        source: "builtin".into(),
        description: None,
        status: "ready".into(),
        status_reason: None,
        digest: None,
        size_bytes: None,
        spec: None,
        created_by: None,
        created_at: 1,
        updated_at: 1,
    };
    roost_store::images::insert(c, &image).await.unwrap();
    for id in ["i-one", "i-two"] {
        let i = InstanceRow {
            id: id.into(),
            project_id: "prj-a".into(),
            name: id.into(),
            kind: "container".into(),
            image_id: "img-x".into(),
            cpus_milli: 1000,
            memory_bytes: 1 << 28,
            command: None,
            env: "{}".into(),
            labels: "{}".into(),
            restart_policy: "never".into(),
            desired: "stopped".into(),
            status: "stopped".into(),
            status_reason: None,
            ip: None,
            exit_code: None,
            restart_count: 0,
            created_by: None,
            created_at: 1,
            updated_at: 1,
            started_at: None,
            capabilities_add: "[]".into(),
        };
        roost_store::instances::insert(c, &i).await.unwrap();
    }
    repo::insert_volume(c, &volume("vol-a", "prj-a", "data")).await.unwrap();
    repo::insert_volume(c, &volume("vol-b", "prj-b", "data")).await.unwrap();
    tx.commit().await.unwrap();
    // (Its own transaction: PostgreSQL aborts a transaction at its first error.)
    let mut tx = store.write().await.unwrap();
    let dup = repo::insert_volume(tx.conn(), &volume("vol-c", "prj-a", "data")).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "names are unique per project: {dup:?}");
    drop(tx);

    // One attachment: the second attach loses, whatever it thought.
    let mut tx = store.write().await.unwrap();
    assert!(repo::set_attachment(tx.conn(), "vol-a", Some(("i-one", "/data", false)), 2).await.unwrap());
    assert!(!repo::set_attachment(tx.conn(), "vol-a", Some(("i-two", "/data", true)), 3).await.unwrap());
    tx.commit().await.unwrap();
    let attached = store.attached_volumes("i-one").await.unwrap();
    assert_eq!(attached.len(), 1);
    assert_eq!((attached[0].mount_path.as_deref(), attached[0].read_only), (Some("/data"), 0));
    assert!(store.attached_volumes("i-two").await.unwrap().is_empty());

    // Scoped listing: one project's volumes only.
    let a = store.volumes_in(&ProjectScope::One("prj-a".into()), None).await.unwrap();
    assert_eq!(a.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["vol-a"]);
    assert_eq!(store.volumes_in(&ProjectScope::All, Some("prj-b")).await.unwrap().len(), 1);

    // Instance removal detaches; lineage is kept and removed with the instance.
    let mut tx = store.write().await.unwrap();
    repo::set_lineage(tx.conn(), "i-two", "i-one", 4).await.unwrap();
    repo::detach_all(tx.conn(), "i-one", 5).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.cloned_from("i-two").await.unwrap().as_deref(), Some("i-one"));
    assert!(store.volume_by_id("vol-a").await.unwrap().unwrap().instance_id.is_none());
    let mut tx = store.write().await.unwrap();
    repo::delete_lineage(tx.conn(), "i-two").await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.cloned_from("i-two").await.unwrap().is_none());

    // A policy's snapshots, newest first; snapshots of a volume.
    let mut tx = store.write().await.unwrap();
    let policy = PolicyRow {
        id: "bkp-n".into(),
        project_id: "prj-a".into(),
        name: "nightly".into(),
        volume_id: "vol-a".into(),
        cron: "0 2 * * *".into(),
        keep: 2,
        last_run_at: None,
        last_result: None,
        last_error: None,
        next_run_at: Some(10),
        created_by: None,
        created_at: 1,
        updated_at: 1,
    };
    repo::insert_policy(tx.conn(), &policy).await.unwrap();
    for (n, at) in [("s1", 10), ("s2", 30), ("s3", 20)] {
        let s = SnapshotRow {
            id: format!("snap-{n}"),
            project_id: "prj-a".into(),
            name: n.into(),
            volume_id: "vol-a".into(),
            size_bytes: 1 << 30,
            description: None,
            policy_id: Some("bkp-n".into()),
            instance_snapshot_id: None,
            created_by: None,
            created_at: at,
        };
        repo::insert_snapshot(tx.conn(), &s).await.unwrap();
    }
    let order: Vec<String> =
        repo::snapshots_of_policy(tx.conn(), "bkp-n").await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(order, ["s2", "s3", "s1"]);
    assert_eq!(repo::policies_of_volume(tx.conn(), "vol-a").await.unwrap(), 1);
    repo::record_run(tx.conn(), "bkp-n", 40, "failed", Some("disk full"), Some(50)).await.unwrap();
    tx.commit().await.unwrap();
    let p = store.policy_by_id("bkp-n").await.unwrap().unwrap();
    assert_eq!(
        (p.last_result.as_deref(), p.last_error.as_deref(), p.next_run_at),
        (Some("failed"), Some("disk full"), Some(50))
    );
    let of_volume = store.snapshots_in(&ProjectScope::All, None, Some("vol-a")).await.unwrap();
    assert_eq!(of_volume.len(), 3);
    assert!(store.snapshots_in(&ProjectScope::One("prj-b".into()), None, None).await.unwrap().is_empty());
}
