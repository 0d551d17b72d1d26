//! Jobs with undo, end to end on a real server as root: a failure injected at every step
//! of an instance clone and of a sandbox template build (`ROOST_JOB_FAIL_AT`) leaves the
//! world as it was (rows, files in the data directory, the project's usage), with the
//! operation failed with the injected error and the failure audited; a server aborted
//! right after a step (`ROOST_JOB_CRASH_AT`, as `kill -9` would) and started again on
//! the same data directory unwinds the job. A volume resize (resumable) fails at every
//! step leaving the volume's image as it was, and a crash after its growth is resumed
//! to success by the restarted server.
//!
//! The other kinds (volume restore, instance snapshot, image build) are shown against
//! the simulated node, in this process ([`common::sim::SimServer`]): the control plane
//! injects the failures ([`roost_control::Control::inject_job_failures`]) and the node's
//! volumes, snapshots, instances and images are compared.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{ServerOptions, TestServer};
use roost_api::ListParams;
use roost_api::audit::AuditQuery;
use roost_api::images::{BuildImageRequest, ImageStatus};
use roost_api::instances::{CreateInstanceRequest, ExecStart, InstanceListParams, InstanceStatus};
use roost_api::operations::{Operation, OperationStatus};
use roost_api::sandbox_templates::BuildSandboxTemplateRequest;
use roost_api::volumes::{
    CloneInstanceRequest, CreateInstanceSnapshotRequest, CreateSnapshotRequest, CreateVolumeRequest, VolumeMountRequest,
};
use roost_client::Client;

const CLONE_STEPS: usize = 4;
const BUILD_STEPS: usize = 6;
const RESIZE_STEPS: usize = 3;
const RESTORE_STEPS: usize = 3;
const INSTANCE_SNAPSHOT_STEPS: usize = 3;
const IMAGE_BUILD_STEPS: usize = 3;

/// What a job could leave behind: rows the API shows, the project's usage, and the
/// entries of the data directory's instance, volume and image folders.
#[derive(Debug, PartialEq, Eq)]
struct World {
    instances: BTreeSet<String>,
    volumes: BTreeSet<String>,
    images: BTreeSet<String>,
    templates: BTreeSet<String>,
    usage: String,
    files: BTreeSet<String>,
}

fn entries(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.insert(format!("{prefix}/{}", entry.file_name().to_string_lossy()));
    }
}

async fn world(client: &Client, data: &Path) -> World {
    let instances = client.list_instances(&InstanceListParams::default()).await.unwrap();
    let mut files = BTreeSet::new();
    entries(&data.join("instances"), "instances", &mut files);
    entries(&data.join("volumes"), "volumes", &mut files);
    entries(&data.join("snapshots"), "snapshots", &mut files);
    entries(&data.join("images").join("sha256"), "images/sha256", &mut files);
    // The image store keeps an empty lock file per digest it ever locked (removing a
    // flock file would race with a waiter on it); it holds nothing.
    files.retain(|f| !f.ends_with(".lock"));
    World {
        instances: instances.items.iter().map(|i| format!("{} {}", i.id, i.name)).collect(),
        volumes: client.list_volumes(None).await.unwrap().iter().map(|v| format!("{} {}", v.id, v.name)).collect(),
        images: client.list_images(None).await.unwrap().iter().map(|i| format!("{} {}", i.id, i.name)).collect(),
        templates: client.list_sandbox_templates(None).await.unwrap().iter().map(|t| t.name.clone()).collect(),
        usage: serde_json::to_string(&client.usage("default").await.unwrap().resources).unwrap(),
        files,
    }
}

/// The newest operation of a kind.
async fn newest(client: &Client, kind: &str) -> Operation {
    let page = client.list_operations(&ListParams { limit: Some(20), ..Default::default() }).await.unwrap();
    page.items.into_iter().find(|o| o.kind == kind).unwrap_or_else(|| panic!("no {kind} operation"))
}

/// The operation failed at `step` with the injected error, and its failure is audited.
async fn failed_with_injection(client: &Client, op: &Operation, kind: &str, step: usize, steps: usize) {
    let op = client.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failed, "{op:?}");
    let error = op.error.clone().unwrap();
    assert_eq!(error.code, "unavailable", "{op:?}");
    assert!(error.message.contains(&format!("injected failure after step {step}/{steps}")), "{op:?}");
    assert_eq!((op.step, op.steps, op.unwinding), (Some(step as u32), Some(steps as u32), false), "{op:?}");
    assert!(op.message.as_deref().unwrap_or("").contains("undone"), "{op:?}");
    let audit = client
        .list_audit(&AuditQuery { action: Some(kind.into()), resource: Some(op.id.clone()), ..Default::default() })
        .await
        .unwrap();
    assert!(
        audit.items.iter().any(|e| e.result == "failure: unavailable"),
        "no audited failure of {}: {:?}",
        op.id,
        audit.items
    );
}

/// A running busybox instance `src` with a volume `data` of `volume` bytes at /data.
async fn running_with_volume(admin: &Client, volume: u64, memory: u64) {
    admin
        .create_volume(&CreateVolumeRequest { name: "data".into(), size_bytes: Some(volume), ..Default::default() })
        .await
        .unwrap();
    let created = admin
        .create_instance(&CreateInstanceRequest {
            name: "src".into(),
            image: "busybox".into(),
            memory_bytes: Some(memory),
            volumes: vec![VolumeMountRequest { volume: "data".into(), path: "/data".into(), read_only: None }],
            ..Default::default()
        })
        .await
        .unwrap();
    let src =
        admin.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
    assert_eq!(src.status, InstanceStatus::Running, "{src:?}");
}

async fn sh(client: &Client, instance: &str, script: &str) -> String {
    let start = ExecStart { cmd: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() };
    let out = client.exec(instance, &start).await.unwrap().run(None).await.unwrap();
    assert_eq!(out.code, 0, "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn with_env(n: u8, env: &[(&str, &str)]) -> ServerOptions {
    let mut opts = ServerOptions::compute(n);
    opts.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    opts
}

/// Stops `server` (or waits for it to have aborted) and starts another on its data dir.
fn restart(mut server: TestServer, opts: ServerOptions, aborted: bool) -> TestServer {
    if aborted {
        let status = common::wait_exit(&mut server.child, Duration::from_secs(120)).expect("the server aborts");
        assert!(!status.success(), "aborted, not exited: {status:?}");
    } else {
        assert!(server.terminate().success());
    }
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    drop(server);
    TestServer::start_in(data_dir, opts)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clone_fails_at_every_step_and_a_crash_is_unwound_leaving_nothing() {
    let fail_at: Vec<String> = (1..=CLONE_STEPS).map(|s| format!("instance.clone:{s}")).collect();
    let server = TestServer::start_with(with_env(64, &[("ROOST_JOB_FAIL_AT", &fail_at.join(","))]));
    let admin = server.admin().await;
    running_with_volume(&admin, 32 << 20, 128 << 20).await;
    sh(&admin, "src", "echo root-change > /note && echo volume-data > /data/blob && sync").await;
    let before = world(&admin, server.data_path()).await;

    for step in 1..=CLONE_STEPS {
        let req = CloneInstanceRequest { name: format!("copy{step}"), start: None };
        let op = match admin.clone_instance("src", &req, None).await {
            // The first step runs before the answer: its failure is the answer.
            Err(e) => {
                assert_eq!(step, 1, "{e}");
                assert_eq!(e.status().map(|s| s.as_u16()), Some(503), "{e}");
                assert!(e.to_string().contains("injected failure after step 1/4"), "{e}");
                newest(&admin, "instance.clone").await
            }
            Ok(created) => {
                assert!(step > 1, "step 1's failure is the answer");
                assert_eq!(created.operation.steps, Some(CLONE_STEPS as u32));
                created.operation
            }
        };
        failed_with_injection(&admin, &op, "instance.clone", step, CLONE_STEPS).await;
        assert_eq!(world(&admin, server.data_path()).await, before, "after a failure at step {step}");
    }

    // The failures are used up: the next clone succeeds, with the copies.
    let created =
        admin.clone_instance("src", &CloneInstanceRequest { name: "whole".into(), start: None }, None).await.unwrap();
    let op = admin.wait_operation(&created.operation.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert_eq!((op.step, op.steps), (Some(4), Some(4)), "{op:?}");
    assert_eq!(sh(&admin, "whole", "cat /note /data/blob").await, "root-change\nvolume-data\n");
    let deleting = admin.delete_instance("whole", None, true).await.unwrap();
    admin.wait_operation(&deleting.id, |_| {}).await.unwrap();
    admin.delete_volume("data-whole", None).await.unwrap();
    assert_eq!(world(&admin, server.data_path()).await, before, "the clone removed again");

    // Aborted right after the volumes were copied: the clone exists half-made on disk.
    let server = restart(server, with_env(64, &[("ROOST_JOB_CRASH_AT", "instance.clone:3")]), false);
    let admin = server.admin().await;
    let created =
        admin.clone_instance("src", &CloneInstanceRequest { name: "crash".into(), start: None }, None).await.unwrap();
    let clone_id = created.instance.id.clone();
    let server = restart(server, ServerOptions::compute(64), true);
    assert!(server.data_path().join("instances").join(&clone_id).join("upper").is_dir(), "the copy was made");
    // The restarted server unwinds it.
    let admin = server.admin().await;
    let op = admin.wait_operation(&created.operation.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failed, "{op:?}");
    let error = op.error.clone().unwrap();
    assert_eq!(error.code, "interrupted", "{op:?}");
    assert!(error.message.contains("during step 4/4 (start)"), "{op:?}");
    assert_eq!(world(&admin, server.data_path()).await, before, "after the unwound crash");
    // The source runs on, untouched.
    assert_eq!(sh(&admin, "src", "cat /note /data/blob").await, "root-change\nvolume-data\n");
    let deleting = admin.delete_instance("src", None, true).await.unwrap();
    admin.wait_operation(&deleting.id, |_| {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_build_fails_at_every_step_and_a_crash_is_unwound_leaving_nothing() {
    // Step 0 never fails: the first build (the seed below) goes through.
    let fail_at: Vec<String> = (0..=BUILD_STEPS).map(|s| format!("sandbox_template.build:{s}")).collect();
    let server = TestServer::start_with(with_env(65, &[("ROOST_JOB_FAIL_AT", &fail_at.join(","))]));
    let admin = server.admin().await;
    let build = |name: &str| BuildSandboxTemplateRequest {
        name: name.into(),
        from: Some("busybox".into()),
        run: vec![format!("echo {name} > /made"), "mkdir -p /opt && echo two > /opt/two".into()],
        project: None,
    };
    // A first build unpacks the base image into the image store (shared by everything
    // made from busybox, not a build's own).
    let seed = admin.build_sandbox_template(&build("seed")).await.unwrap();
    let seed = admin.wait_operation(&seed.id, |_| {}).await.unwrap();
    assert_eq!(seed.status, OperationStatus::Succeeded, "{seed:?}");
    let before = world(&admin, server.data_path()).await;
    for step in 1..=BUILD_STEPS {
        let op = admin.build_sandbox_template(&build("tpl")).await.unwrap();
        assert_eq!(op.steps, Some(BUILD_STEPS as u32));
        failed_with_injection(&admin, &op, "sandbox_template.build", step, BUILD_STEPS).await;
        assert_eq!(world(&admin, server.data_path()).await, before, "after a failure at step {step}");
    }

    // Then a build succeeds.
    let op = admin.build_sandbox_template(&build("tpl")).await.unwrap();
    let op = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert_eq!(op.result.as_ref().unwrap()["cache"], "miss", "{op:?}");
    let built = world(&admin, server.data_path()).await;
    assert!(built.templates.contains("tpl"), "{built:?}");

    // Aborted right after the contents were saved (the build container still there):
    // the restarted server removes the container and the contents.
    let server = restart(server, with_env(65, &[("ROOST_JOB_CRASH_AT", "sandbox_template.build:4")]), false);
    let admin = server.admin().await;
    let op = admin.build_sandbox_template(&build("other")).await.unwrap();
    let server = restart(server, ServerOptions::compute(65), true);
    let admin = server.admin().await;
    let op = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failed, "{op:?}");
    assert_eq!(op.error.as_ref().unwrap().code, "interrupted", "{op:?}");
    assert_eq!(world(&admin, server.data_path()).await, built, "after the unwound crash");
}

/// A request that ran its job inline answered with the injected error of `step`.
fn injected(err: &roost_client::ClientError, step: usize, steps: usize) {
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503), "{err}");
    assert!(err.to_string().contains(&format!("injected failure after step {step}/{steps}")), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resize_fails_at_every_step_leaving_the_volume_and_a_crash_after_growing_is_resumed() {
    let fail_at: Vec<String> = (1..=RESIZE_STEPS).map(|s| format!("volume.resize:{s}")).collect();
    let server = TestServer::start_with(with_env(66, &[("ROOST_JOB_FAIL_AT", &fail_at.join(","))]));
    let admin = server.admin().await;
    let volume = admin
        .create_volume(&CreateVolumeRequest { name: "data".into(), size_bytes: Some(32 << 20), ..Default::default() })
        .await
        .unwrap();
    let image = server.data_path().join("volumes").join(format!("{}.raw", volume.id));
    let image_size =
        |data: &Path| std::fs::metadata(data.join("volumes").join(format!("{}.raw", volume.id))).unwrap().len();
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 32 << 20);
    let before = world(&admin, server.data_path()).await;
    for step in 1..=RESIZE_STEPS {
        let err = admin.resize_volume("data", 64 << 20, None).await.unwrap_err();
        injected(&err, step, RESIZE_STEPS);
        let op = newest(&admin, "volume.resize").await;
        failed_with_injection(&admin, &op, "volume.resize", step, RESIZE_STEPS).await;
        assert_eq!(world(&admin, server.data_path()).await, before, "after a failure at step {step}");
        assert_eq!(admin.get_volume("data", None).await.unwrap().size_bytes, 32 << 20);
        assert_eq!(image_size(server.data_path()), 32 << 20, "the image is put back after step {step}");
    }

    // Aborted right after the growth (the row still says 32 MiB): the restarted server
    // resumes the job and records the size.
    let server = restart(server, with_env(66, &[("ROOST_JOB_CRASH_AT", "volume.resize:2")]), false);
    let admin = server.admin().await;
    // The server aborts under the request.
    assert!(admin.resize_volume("data", 64 << 20, None).await.is_err());
    let server = restart(server, ServerOptions::compute(66), true);
    let admin = server.admin().await;
    let op = newest(&admin, "volume.resize").await;
    let op = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert_eq!((op.step, op.steps), (Some(RESIZE_STEPS as u32), Some(RESIZE_STEPS as u32)), "{op:?}");
    assert_eq!(admin.get_volume("data", None).await.unwrap().size_bytes, 64 << 20);
    assert_eq!(image_size(server.data_path()), 64 << 20);
    let after = world(&admin, server.data_path()).await;
    assert_eq!(after.files, before.files, "the resize's copy is gone");
    admin.delete_volume("data", None).await.unwrap();
}

/// What a job could leave behind on the simulated node and in the store.
#[derive(Debug, PartialEq, Eq)]
struct SimWorld {
    volumes: BTreeSet<String>,
    snapshots: BTreeSet<String>,
    instance_snapshots: BTreeSet<String>,
    instances: BTreeSet<String>,
    images: BTreeSet<String>,
    usage: String,
    node_volumes: Vec<String>,
    node_snapshots: Vec<String>,
    node_instances: Vec<String>,
    node_images: Vec<String>,
}

async fn sim_world(server: &common::sim::SimServer, client: &Client) -> SimWorld {
    let instances = client.list_instances(&InstanceListParams::default()).await.unwrap();
    let isnaps =
        server.control.store().instance_snapshots_in(&roost_store::list::ProjectScope::All, None).await.unwrap();
    SimWorld {
        volumes: (client.list_volumes(None).await.unwrap().iter())
            .map(|v| format!("{} {} {}", v.id, v.name, v.size_bytes))
            .collect(),
        snapshots: (client.list_snapshots(None, None).await.unwrap().iter())
            .map(|s| format!("{} {}", s.id, s.name))
            .collect(),
        instance_snapshots: isnaps.iter().map(|s| format!("{} {}", s.id, s.name)).collect(),
        instances: instances.items.iter().map(|i| format!("{} {} {:?}", i.id, i.name, i.status)).collect(),
        // A failed build's row stays (failed, with the reason), as it always did.
        images: (client.list_images(None).await.unwrap().iter())
            .filter(|i| i.status != ImageStatus::Failed)
            .map(|i| format!("{} {} {:?} {:?}", i.id, i.name, i.status, i.digest))
            .collect(),
        usage: serde_json::to_string(&client.usage("default").await.unwrap().resources).unwrap(),
        node_volumes: server.node.volume_ids(),
        node_snapshots: server.node.snapshot_ids(),
        node_instances: server.node.instance_ids(),
        node_images: server.node.image_digests(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_and_a_resize_fail_at_every_step_leaving_the_volume() {
    let server = common::sim::SimServer::start();
    let admin = server.admin().await;
    admin
        .create_volume(&CreateVolumeRequest { name: "data".into(), size_bytes: Some(64 << 20), ..Default::default() })
        .await
        .unwrap();
    let snap = CreateSnapshotRequest { volume: "data".into(), name: "s1".into(), ..Default::default() };
    admin.create_snapshot(&snap).await.unwrap();
    // Grown after the snapshot, so a restore changes the size back.
    assert_eq!(admin.resize_volume("data", 128 << 20, None).await.unwrap().size_bytes, 128 << 20);
    let before = sim_world(&server, &admin).await;
    assert_eq!(before.node_snapshots.len(), 1, "the resize's copy is removed: {before:?}");

    server.control.inject_job_failures("volume.restore", &[1, 2, 3]);
    for step in 1..=RESTORE_STEPS {
        injected(&admin.restore_volume("data", "s1", None).await.unwrap_err(), step, RESTORE_STEPS);
        let op = newest(&admin, "volume.restore").await;
        failed_with_injection(&admin, &op, "volume.restore", step, RESTORE_STEPS).await;
        assert_eq!(sim_world(&server, &admin).await, before, "after a failure at step {step}");
    }
    server.control.inject_job_failures("volume.resize", &[1, 2, 3]);
    for step in 1..=RESIZE_STEPS {
        injected(&admin.resize_volume("data", 256 << 20, None).await.unwrap_err(), step, RESIZE_STEPS);
        let op = newest(&admin, "volume.resize").await;
        failed_with_injection(&admin, &op, "volume.resize", step, RESIZE_STEPS).await;
        assert_eq!(sim_world(&server, &admin).await, before, "after a failure at step {step}");
    }
    // A node that fails the restore itself: the copy is put back and removed.
    server.node.fail_next("restore_volume", 1);
    let err = admin.restore_volume("data", "s1", None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500), "{err}");
    assert_eq!(sim_world(&server, &admin).await, before, "after the node failed the restore");

    // Then a restore goes through: the snapshot's size, and no copy left.
    let restored = admin.restore_volume("data", "s1", None).await.unwrap();
    assert_eq!(restored.size_bytes, 64 << 20);
    let op = newest(&admin, "volume.restore").await;
    assert_eq!((op.status, op.step, op.steps), (OperationStatus::Succeeded, Some(3), Some(3)), "{op:?}");
    assert_eq!(server.node.snapshot_ids(), before.node_snapshots);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_snapshot_fails_at_every_step_leaving_nothing() {
    let server = common::sim::SimServer::start();
    let admin = server.admin().await;
    running_with_volume(&admin, 64 << 20, 64 << 20).await;
    let before = sim_world(&server, &admin).await;
    let req = |name: &str| CreateInstanceSnapshotRequest { name: Some(name.into()), description: None };

    server.control.inject_job_failures("instance.snapshot", &[1, 2, 3]);
    for step in 1..=INSTANCE_SNAPSHOT_STEPS {
        injected(&admin.snapshot_instance("src", &req("snap"), None).await.unwrap_err(), step, INSTANCE_SNAPSHOT_STEPS);
        let op = newest(&admin, "instance.snapshot").await;
        failed_with_injection(&admin, &op, "instance.snapshot", step, INSTANCE_SNAPSHOT_STEPS).await;
        assert_eq!(sim_world(&server, &admin).await, before, "after a failure at step {step}");
    }
    // The node fails a volume's snapshot: the archive and the row go again.
    server.node.fail_next("snapshot_volume", 1);
    let err = admin.snapshot_instance("src", &req("snap"), None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500), "{err}");
    assert_eq!(sim_world(&server, &admin).await, before, "after the node failed a volume's snapshot");

    let made = admin.snapshot_instance("src", &req("snap"), None).await.unwrap();
    assert_eq!(made.volumes.len(), 1, "{made:?}");
    assert_eq!(made.volumes[0].name, "snap-data");
    let after = sim_world(&server, &admin).await;
    assert_eq!(after.node_snapshots, vec![made.id.clone(), made.volumes[0].id.clone()]);
    // A taken name is a conflict, and its archive is removed again.
    let err = admin.snapshot_instance("src", &req("snap"), None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err}");
    assert_eq!(sim_world(&server, &admin).await, after);
    // The instance was thawed after each archive.
    let src = admin.get_instance("src", None).await.unwrap();
    assert_eq!(src.status, InstanceStatus::Running, "{src:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_build_fails_at_every_step_leaving_no_contents() {
    let server = common::sim::SimServer::start();
    let admin = server.admin().await;
    let build = |name: &str, packages: &[&str]| BuildImageRequest {
        name: name.into(),
        from: "debian:bookworm".into(),
        packages: packages.iter().map(|p| p.to_string()).collect(),
        project: None,
    };
    let first = admin.build_image(&build("first", &["curl"])).await.unwrap();
    assert_eq!(first.steps, Some(IMAGE_BUILD_STEPS as u32));
    let first = admin.wait_operation(&first.id, |_| {}).await.unwrap();
    assert_eq!(first.status, OperationStatus::Succeeded, "{first:?}");
    assert_eq!(admin.get_image("first").await.unwrap().status, ImageStatus::Ready);
    let before = sim_world(&server, &admin).await;

    // Contents of their own (other packages), then contents the first image shares.
    server.control.inject_job_failures("image.build", &[1, 2, 3, 2, 3]);
    let attempts = [(1, "jq"), (2, "jq"), (3, "jq"), (2, "curl"), (3, "curl")];
    for (i, (step, package)) in attempts.into_iter().enumerate() {
        let name = format!("img{i}");
        let op = admin.build_image(&build(&name, &[package])).await.unwrap();
        failed_with_injection(&admin, &op, "image.build", step, IMAGE_BUILD_STEPS).await;
        assert_eq!(sim_world(&server, &admin).await, before, "after a failure at step {step} ({package})");
        let image = admin.get_image(&name).await.unwrap();
        assert_eq!((image.status, image.digest.clone()), (ImageStatus::Failed, None), "{image:?}");
        assert!(image.status_reason.unwrap_or_default().contains("injected failure"), "{name}");
    }
    // A failure on the node is the operation's error, and the image shows it.
    server.node.fail_next("build_debian_image", 1);
    let op = admin.build_image(&build("broken", &["jq"])).await.unwrap();
    let op = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failed, "{op:?}");
    assert_eq!(admin.get_image("broken").await.unwrap().status, ImageStatus::Failed);
    assert_eq!(sim_world(&server, &admin).await, before);

    let op = admin.build_image(&build("second", &["jq"])).await.unwrap();
    let op = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let second = admin.get_image("second").await.unwrap();
    assert_eq!(op.result.as_ref().unwrap()["digest"], serde_json::json!(second.digest), "{op:?}");
    assert_eq!(server.node.image_digests().len(), before.node_images.len() + 1);
}
