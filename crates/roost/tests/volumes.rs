//! Block volumes with real images, loop devices and containers: a real server as root,
//! busybox instances writing data through volumes, snapshots, restores, clones, hot
//! attach and detach, online resize, backup policies, and `kill -9` in the middle of
//! copies followed by a restart.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{ServerOptions, TestServer, stderr, stdout};
use futures_util::StreamExt;
use roost_api::instances::{CreateInstanceRequest, ExecStart, Instance, InstanceStatus};
use roost_api::volumes::{
    AttachVolumeRequest, CloneInstanceRequest, CreateBackupPolicyRequest, CreateInstanceSnapshotRequest,
    CreateSnapshotRequest, CreateVolumeRequest, Effective, VolumeMountRequest, VolumeStatus,
};
use roost_client::{Client, ClientError};

fn status(err: &ClientError) -> u16 {
    err.status().map(|s| s.as_u16()).unwrap_or(0)
}

fn prerequisites() {
    for (tool, package) in [
        ("qemu-img", "qemu-utils"),
        ("mkfs.ext4", "e2fsprogs"),
        ("resize2fs", "e2fsprogs"),
        ("fsfreeze", "util-linux"),
        ("losetup", "util-linux"),
    ] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool} || test -x /usr/sbin/{tool} || test -x /sbin/{tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing: install the Debian package {package} (scripts/install-deps.sh)");
    }
}

fn busybox(name: &str, volumes: Vec<VolumeMountRequest>) -> CreateInstanceRequest {
    CreateInstanceRequest {
        name: name.into(),
        image: "busybox".into(),
        memory_bytes: Some(128 << 20),
        volumes,
        ..Default::default()
    }
}

async fn running(client: &Client, req: CreateInstanceRequest) -> Instance {
    let created = client.create_instance(&req).await.unwrap_or_else(|e| panic!("create {}: {e}", req.name));
    let i = client.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
    assert_eq!(i.status, InstanceStatus::Running, "{i:?}");
    i
}

async fn sh(client: &Client, instance: &str, script: &str) -> (i32, String) {
    let start = ExecStart { cmd: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() };
    let out = client.exec(instance, &start).await.unwrap().run(None).await.unwrap();
    (out.code, format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `sh -c` that must succeed; its output.
async fn ok(client: &Client, instance: &str, script: &str) -> String {
    let (code, out) = sh(client, instance, script).await;
    assert_eq!(code, 0, "{script}: {out}");
    out
}

async fn checksum(client: &Client, instance: &str, file: &str) -> String {
    ok(client, instance, &format!("sha256sum {file}")).await.split_whitespace().next().unwrap().to_string()
}

async fn wait_op(client: &Client, op: &roost_api::operations::Operation) {
    let done = client.wait_operation(&op.id, |_| {}).await.unwrap();
    assert!(done.error.is_none(), "{done:?}");
}

async fn stop(client: &Client, name: &str) {
    let op = client.stop_instance(name, None, Some(5)).await.unwrap();
    wait_op(client, &op).await;
}

async fn start(client: &Client, name: &str) {
    let op = client.start_instance(name, None).await.unwrap();
    wait_op(client, &op).await;
}

fn volume_mounts(data_dir: &Path) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = data_dir.join("volume-mounts");
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(dir.to_str().unwrap()))
        .map(String::from)
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default()
}

/// Waits until no operation is pending or running (jobs a restart took over).
async fn settled(admin: &Client) {
    use roost_api::operations::OperationStatus;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let ops = admin.list_operations(&Default::default()).await.unwrap().items;
        let busy: Vec<_> = ops
            .iter()
            .filter(|o| matches!(o.status, OperationStatus::Pending | OperationStatus::Running))
            .map(|o| o.kind.clone())
            .collect();
        if busy.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "operations still running: {busy:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn host_sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn volumes_attach_snapshot_restore_resize_and_clone_through_instances() {
    prerequisites();
    let mut server = TestServer::start_with(ServerOptions::compute(30));
    let admin = server.admin().await;
    let token = admin.token().unwrap().to_string();
    let env = [("ROOST_TOKEN", token.as_str())];

    // Create with the CLI; list shows it available.
    let out = server.cli(&["volume", "create", "data", "--size", "64m", "--format", "ext4"], None, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["volume", "ls"], None, &env);
    assert!(stdout(&out).contains("data") && stdout(&out).contains("available"), "{}", stdout(&out));
    let bad = CreateVolumeRequest { name: "x".into(), size_bytes: Some(1 << 20), ..Default::default() };
    assert_eq!(status(&admin.create_volume(&bad).await.unwrap_err()), 400);
    let bad = CreateVolumeRequest {
        name: "x".into(),
        size_bytes: Some(64 << 20),
        format: Some("ntfs".into()),
        ..Default::default()
    };
    assert_eq!(status(&admin.create_volume(&bad).await.unwrap_err()), 400);

    // Attached at create time; data with a checksum.
    let mount = VolumeMountRequest { volume: "data".into(), path: "/data".into(), read_only: None };
    let web = running(&admin, busybox("web", vec![mount])).await;
    assert_eq!(web.volumes.len(), 1);
    assert_eq!(web.volumes[0].path, "/data");
    assert!(ok(&admin, "web", "grep ' /data ' /proc/mounts").await.contains("ext4"));
    ok(&admin, "web", "dd if=/dev/urandom of=/data/blob bs=1024 count=4096 2>/dev/null && sync").await;
    let original = checksum(&admin, "web", "/data/blob").await;
    let v = admin.get_volume("data", None).await.unwrap();
    assert_eq!(
        (v.status, v.instance.as_deref(), v.mount_path.as_deref()),
        (VolumeStatus::Attached, Some("web"), Some("/data"))
    );
    assert!(v.used_bytes >= 4 << 20, "{v:?}");
    let out = server.cli(&["volume", "rm", "data"], None, &env);
    assert!(!out.status.success() && stderr(&out).contains("attached"), "{}", stderr(&out));

    // A crash-consistent snapshot while it runs, then the data is overwritten.
    let out =
        server.cli(&["snapshot", "create", "data", "--name", "before-upgrade", "--description", "pre"], None, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&admin, "web", "dd if=/dev/urandom of=/data/blob bs=1024 count=4096 2>/dev/null && sync").await;
    let overwritten = checksum(&admin, "web", "/data/blob").await;
    assert_ne!(original, overwritten);
    let out = server.cli(&["snapshot", "ls", "data"], None, &env);
    assert!(stdout(&out).contains("before-upgrade"), "{}", stdout(&out));
    // Restore needs the instance stopped (or the volume detached).
    let err = admin.restore_volume("data", "before-upgrade", None).await.unwrap_err();
    assert_eq!(status(&err), 409, "{err}");
    assert!(
        err.to_string().contains("roost instance stop web") && err.to_string().contains("roost instance start web"),
        "the refusal says how to proceed: {err}"
    );

    // Hot attach to the running instance; detach refuses while a file is open.
    admin
        .create_volume(&CreateVolumeRequest { name: "logs".into(), size_bytes: Some(32 << 20), ..Default::default() })
        .await
        .unwrap();
    let out = server.cli(&["volume", "attach", "logs", "web", "--path", "/var/log/app"], None, &env);
    assert!(out.status.success() && stderr(&out).contains("in use now"), "{}", stderr(&out));
    assert_eq!(ok(&admin, "web", "echo hot > /var/log/app/x && cat /var/log/app/x").await.trim(), "hot");
    // Backgrounded, tail opens the file a moment later: wait until it has.
    let hold = "tail -f /var/log/app/x > /dev/null 2>&1 & t=$!; \
                until ls -l /proc/$t/fd 2>/dev/null | grep -q /var/log/app/x; do sleep 0.05; done";
    ok(&admin, "web", hold).await;
    let err = admin.detach_volume("logs", false, None).await.unwrap_err();
    assert_eq!(status(&err), 409, "{err}");
    assert!(err.to_string().contains("tail"), "{err}");
    let out = server.cli(&["volume", "detach", "logs"], None, &env);
    assert!(!out.status.success() && stderr(&out).contains("open"), "{}", stderr(&out));
    let out = server.cli(&["volume", "detach", "logs", "--force"], None, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, _) = sh(&admin, "web", "grep -q ' /var/log/app ' /proc/mounts").await;
    assert_ne!(code, 0, "the volume is gone from the instance");
    ok(&admin, "web", "kill -9 $(pidof tail)").await;
    // The data written through it stayed on the volume: attach it again, read it back.
    let r = admin
        .attach_volume(
            "logs",
            &AttachVolumeRequest { instance: "web".into(), path: "/logs".into(), read_only: Some(true) },
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.effective, Effective::Now);
    assert_eq!(ok(&admin, "web", "cat /logs/x").await.trim(), "hot");
    let (code, _) = sh(&admin, "web", "touch /logs/y").await;
    assert_ne!(code, 0, "read-only");
    admin.detach_volume("logs", false, None).await.unwrap();
    // A file where the directory should be: refused, and nothing stays attached.
    let onto_file = AttachVolumeRequest { instance: "web".into(), path: "/bin/busybox".into(), read_only: None };
    let err = admin.attach_volume("logs", &onto_file, None).await.unwrap_err();
    assert_eq!(status(&err), 422, "{err}");
    assert_eq!(admin.get_volume("logs", None).await.unwrap().status, VolumeStatus::Available);

    // Online resize grows the filesystem.
    let out = server.cli(&["volume", "resize", "data", "--size", "128m"], None, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    // Online where the host lets resize2fs grow a mounted filesystem (CAP_SYS_RESOURCE),
    // else at the next mount: after a restart it is grown either way.
    let op = admin.restart_instance("web", None, Some(5)).await.unwrap();
    wait_op(&admin, &op).await;
    let df = ok(&admin, "web", "df -k /data | tail -1").await;
    let blocks: u64 = df.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(blocks > 100_000, "{df}");
    assert_eq!(checksum(&admin, "web", "/data/blob").await, overwritten);

    // Restore with the instance stopped; the checksum is the snapshot's again.
    stop(&admin, "web").await;
    assert!(volume_mounts(server.data_path()).is_empty(), "a stopped instance leaves no host mount");
    let out = server.cli(&["volume", "restore", "data", "--snapshot", "before-upgrade"], None, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    start(&admin, "web").await;
    assert_eq!(checksum(&admin, "web", "/data/blob").await, original, "restored data");
    // A volume attached to a stopped instance is applied at its next start.
    stop(&admin, "web").await;
    let r = admin
        .attach_volume(
            "logs",
            &AttachVolumeRequest { instance: "web".into(), path: "/logs".into(), read_only: None },
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.effective, Effective::NextStart);
    start(&admin, "web").await;
    assert_eq!(ok(&admin, "web", "cat /logs/x").await.trim(), "hot");

    // Clone a volume from the snapshot.
    let out = server.cli(&["volume", "create", "data2", "--from-snapshot", "before-upgrade"], None, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let data2 = admin.get_volume("data2", None).await.unwrap();
    assert_eq!(data2.size_bytes, 64 << 20);
    assert!(data2.cloned_from.is_some());

    // Instance snapshot and clone: independent copies.
    let isnap = admin
        .snapshot_instance(
            "web",
            &CreateInstanceSnapshotRequest { name: Some("web-snap".into()), description: None },
            None,
        )
        .await
        .unwrap();
    assert_eq!(isnap.volumes.len(), 2, "{isnap:?}");
    ok(&admin, "web", "echo rootfs-change > /root-note").await;
    let created =
        admin.clone_instance("web", &CloneInstanceRequest { name: "web2".into(), start: None }, None).await.unwrap();
    let web2 =
        admin.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
    assert_eq!(web2.status, InstanceStatus::Running, "{web2:?}");
    assert_eq!(web2.cloned_from.as_deref(), Some(web.id.as_str()));
    assert_eq!(web2.volumes.len(), 2, "{web2:?}");
    assert_eq!(ok(&admin, "web2", "cat /root-note").await.trim(), "rootfs-change");
    assert_eq!(checksum(&admin, "web2", "/data/blob").await, original);
    ok(&admin, "web2", "echo changed > /data/blob && sync").await;
    assert_eq!(checksum(&admin, "web", "/data/blob").await, original, "the clone's copy is its own");

    // Terminate the clone: its volume stays with the data, and attaches elsewhere.
    let op = admin.delete_instance("web2", None, true).await.unwrap();
    wait_op(&admin, &op).await;
    let copy = admin.get_volume("data-web2", None).await.unwrap();
    assert_eq!(copy.status, VolumeStatus::Available);
    let other = running(
        &admin,
        busybox("other", vec![VolumeMountRequest { volume: "data-web2".into(), path: "/d".into(), read_only: None }]),
    )
    .await;
    assert_eq!(ok(&admin, &other.name, "cat /d/blob").await.trim(), "changed");

    // Attachments survive a server restart and an instance restart.
    assert!(server.terminate().success());
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    server.firewall_table = None;
    let again = TestServer::start_in(data_dir, ServerOptions::compute(30));
    let admin = again.admin().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(checksum(&admin, "web", "/data/blob").await, original);
    let op = admin.restart_instance("web", None, Some(5)).await.unwrap();
    wait_op(&admin, &op).await;
    assert_eq!(checksum(&admin, "web", "/data/blob").await, original);
    assert_eq!(admin.get_volume("data", None).await.unwrap().status, VolumeStatus::Attached);

    // Clean up: delete instances, then volumes and snapshots.
    for name in ["web", "other"] {
        let op = admin.delete_instance(name, None, true).await.unwrap();
        wait_op(&admin, &op).await;
    }
    assert!(volume_mounts(again.data_path()).is_empty(), "no host mounts left: {:?}", volume_mounts(again.data_path()));
    for v in admin.list_volumes(None).await.unwrap() {
        admin.delete_volume(&v.id, None).await.unwrap();
    }
    assert!(files_in(&again.data_path().join("volumes")).is_empty());
    drop(again);
    common::remove_test_network(30).await;
}

#[tokio::test]
async fn backup_policies_keep_the_newest_and_record_failures() {
    prerequisites();
    let server = TestServer::start_with(ServerOptions::compute(31));
    let admin = server.admin().await;
    let token = admin.token().unwrap().to_string();
    let env = [("ROOST_TOKEN", token.as_str())];
    admin
        .create_volume(&CreateVolumeRequest { name: "db".into(), size_bytes: Some(32 << 20), ..Default::default() })
        .await
        .unwrap();
    admin
        .create_volume(&CreateVolumeRequest { name: "tmp".into(), size_bytes: Some(32 << 20), ..Default::default() })
        .await
        .unwrap();
    // Capacity counts against the project's volume_gib quota (64 MiB used so far).
    let usage = admin.usage("default").await.unwrap();
    assert_eq!(usage.resources["volume_gib"].used, 1, "64 MiB, rounded up to whole GiB: {usage:?}");
    let mut quota = roost_api::projects::Quota::default();
    quota.limits.insert("volume_gib".into(), Some(1));
    admin.set_quota("default", &quota).await.unwrap();
    let big = CreateVolumeRequest { name: "big".into(), size_bytes: Some(1 << 30), ..Default::default() };
    let err = admin.create_volume(&big).await.unwrap_err();
    assert_eq!(status(&err), 403, "{err}");
    assert!(err.to_string().contains("volume_gib"), "{err}");
    let err = admin.resize_volume("db", 2 << 30, None).await.unwrap_err();
    assert_eq!(status(&err), 403, "{err}");
    quota.limits.insert("volume_gib".into(), None);
    admin.set_quota("default", &quota).await.unwrap();

    // Every minute: the scheduler takes one within the next minute.
    let every = CreateBackupPolicyRequest {
        name: "minutely".into(),
        volume: "tmp".into(),
        cron: "* * * * *".into(),
        keep: 1,
        project: None,
    };
    let p = admin.create_backup_policy(&every).await.unwrap();
    assert!(p.next_run_at.unwrap() <= chrono::Utc::now() + chrono::Duration::seconds(61));

    let bad = CreateBackupPolicyRequest {
        name: "bad".into(),
        volume: "db".into(),
        cron: "0 2 * *".into(),
        keep: 7,
        project: None,
    };
    assert_eq!(status(&admin.create_backup_policy(&bad).await.unwrap_err()), 400);
    let out = server.cli(
        &["backup-policy", "create", "nightly", "--volume", "db", "--cron", "0 2 * * *", "--keep", "2"],
        None,
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for _ in 0..3 {
        let out = server.cli(&["backup-policy", "run", "nightly"], None, &env);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let p = admin.get_backup_policy("nightly", None).await.unwrap();
    assert_eq!((p.last_result.as_deref(), p.snapshot_count), (Some("success"), 2), "{p:?}");
    let next = p.next_run_at.unwrap();
    assert_eq!(next.format("%H:%M").to_string(), "02:00");
    let snaps = admin.list_snapshots(Some("db"), None).await.unwrap();
    assert_eq!(snaps.len(), 2, "the oldest beyond --keep is removed");
    assert!(snaps.iter().all(|s| s.policy_id.as_deref() == Some(p.id.as_str())));
    assert_eq!(files_in(&server.data_path().join("snapshots")).iter().filter(|f| f.starts_with("snap-")).count(), 2);
    // A policy whose volume is in use elsewhere refuses removal of the volume.
    assert_eq!(status(&admin.delete_volume("db", None).await.unwrap_err()), 409);

    // A failing run is recorded and visible, and emitted as an event.
    let events = admin.events(&Default::default(), None).await.unwrap();
    let mut events = Box::pin(events);
    let image =
        server.data_path().join("volumes").join(format!("{}.raw", admin.get_volume("db", None).await.unwrap().id));
    let hidden: PathBuf = image.with_extension("hidden");
    std::fs::rename(&image, &hidden).unwrap();
    let p = admin.run_backup_policy("nightly", None).await.unwrap();
    assert_eq!(p.last_result.as_deref(), Some("failed"));
    assert!(p.last_error.is_some());
    let out = server.cli(&["backup-policy", "ls"], None, &env);
    assert!(stdout(&out).contains("failed"), "{}", stdout(&out));
    let out = server.cli(&["backup-policy", "run", "nightly"], None, &env);
    assert!(!out.status.success(), "a failed run fails the command");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while std::time::Instant::now() < deadline && !seen {
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            seen = ev.map(|e| e.kind == "backup_policy.failed").unwrap_or(false);
        }
    }
    assert!(seen, "backup_policy.failed was published");
    std::fs::rename(&hidden, &image).unwrap();

    // The scheduled one ran on its own.
    let deadline = std::time::Instant::now() + Duration::from_secs(80);
    loop {
        let p = admin.get_backup_policy("minutely", None).await.unwrap();
        if p.last_run_at.is_some() {
            assert_eq!(p.last_result.as_deref(), Some("success"), "{p:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the scheduler never ran it");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    common::remove_test_network(31).await;
}

/// `kill -9` while a snapshot, a restore, a clone and a resize copy data: after a
/// restart the volume is whole (the old content), no half-written file or record is left.
#[tokio::test]
async fn kill_9_in_the_middle_of_copies_leaves_old_or_new() {
    prerequisites();
    let server = TestServer::start_with(ServerOptions::compute(32));
    let admin = server.admin().await;
    // 1 GiB of data, written on the host through a loop mount (fast), in a 2 GiB volume.
    let v = admin
        .create_volume(&CreateVolumeRequest { name: "big".into(), size_bytes: Some(2 << 30), ..Default::default() })
        .await
        .unwrap();
    let image = server.data_path().join("volumes").join(format!("{}.raw", v.id));
    let mnt = tempfile::tempdir().unwrap();
    let run = |cmd: &str| {
        let out = std::process::Command::new("sh").args(["-c", cmd]).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&format!("mount -o loop {} {}", image.display(), mnt.path().display()));
    run(&format!("head -c 1073741824 /dev/urandom > {}/blob && sync", mnt.path().display()));
    run(&format!("umount {}", mnt.path().display()));
    admin
        .create_snapshot(&CreateSnapshotRequest { volume: "big".into(), name: "base".into(), ..Default::default() })
        .await
        .unwrap();
    let before = host_sha256(&image);
    let snapshots = server.data_path().join("snapshots");
    let volumes = server.data_path().join("volumes");

    let mut current = server;
    for (what, dir) in [("snapshot", &snapshots), ("restore", &volumes), ("clone", &volumes), ("resize", &volumes)] {
        let c = current.admin().await;
        let task = tokio::spawn(async move {
            match what {
                "snapshot" => {
                    let req = CreateSnapshotRequest { volume: "big".into(), name: "cut".into(), ..Default::default() };
                    c.create_snapshot(&req).await.map(|_| ())
                }
                "restore" => c.restore_volume("big", "base", None).await.map(|_| ()),
                "clone" => {
                    let req = CreateVolumeRequest {
                        name: "half".into(),
                        from_snapshot: Some("base".into()),
                        ..Default::default()
                    };
                    c.create_volume(&req).await.map(|_| ())
                }
                _ => c.resize_volume("big", 3 << 30, None).await.map(|_| ()),
            }
        });
        // Wait for the temporary file of the copy, then kill the server.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !files_in(dir).iter().any(|f| f.starts_with(".tmp-")) {
            assert!(std::time::Instant::now() < deadline, "{what}: no copy started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        common::signal(current.child.id(), "KILL");
        common::wait_exit(&mut current.child, Duration::from_secs(10)).unwrap();
        let _ = task.await;
        assert!(files_in(dir).iter().any(|f| f.starts_with(".tmp-")), "{what}: killed in the middle");
        let data_dir = std::mem::replace(&mut current.data_dir, tempfile::tempdir().unwrap());
        current.firewall_table = None;
        current = TestServer::start_in(data_dir, ServerOptions::compute(32));
        // The restarted server takes over the interrupted job (a resize resumes, a
        // restore unwinds) in the background: wait until it has.
        settled(&current.admin().await).await;
    }
    let again = current;
    let admin = again.admin().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!files_in(&snapshots).iter().any(|f| f.starts_with(".tmp-")), "{:?}", files_in(&snapshots));
    assert!(!files_in(&volumes).iter().any(|f| f.starts_with(".tmp-")), "{:?}", files_in(&volumes));
    let names: Vec<String> = admin.list_snapshots(None, None).await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["base".to_string()], "no record of the interrupted snapshot");
    let vols = admin.list_volumes(None).await.unwrap();
    assert_eq!(vols.len(), 1, "no record of the interrupted clone");
    assert_eq!(files_in(&volumes).len(), 1, "no image without a record: {:?}", files_in(&volumes));
    // The interrupted resize is a resumable job: the restart finished it, row and image
    // alike (an unwound one would have left both at the old size and the same content).
    let resize = admin.list_operations(&Default::default()).await.unwrap().items;
    let resize = resize.iter().find(|o| o.kind == "volume.resize").expect("the resize's operation");
    if resize.status == roost_api::operations::OperationStatus::Succeeded {
        assert_eq!(vols[0].size_bytes, 3 << 30, "the resumed resize recorded the new size");
        assert_eq!(std::fs::metadata(&image).unwrap().len(), 3 << 30, "and grew the image");
    } else {
        assert_eq!(vols[0].size_bytes, 2 << 30, "the unwound resize left the old size: {resize:?}");
        assert_eq!(host_sha256(&image), before, "the volume is whole, as it was");
    }
    // And it still works: a restore and a snapshot complete now.
    admin.restore_volume("big", "base", None).await.unwrap();
    assert_eq!(host_sha256(&image), before);
    drop(again);
    common::remove_test_network(32).await;
}

/// The instance's row once its status is `want` (or the last seen after `within`).
async fn wait_status(client: &Client, name: &str, want: InstanceStatus, within: Duration) -> Instance {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let i = client.get_instance(name, None).await.unwrap();
        if i.status == want || tokio::time::Instant::now() > deadline {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A volume's image can hold any bytes a VM (or anyone with the raw image) wrote: the
/// host checks the filesystem, confined, before its kernel mounts or grows it, and
/// refuses a damaged one with a reason that names the volume.
#[tokio::test]
async fn a_damaged_volume_is_neither_mounted_nor_resized() {
    prerequisites();
    let server = TestServer::start_with(ServerOptions::compute(36));
    let admin = server.admin().await;
    let bad = admin
        .create_volume(&CreateVolumeRequest { name: "bad".into(), size_bytes: Some(64 << 20), ..Default::default() })
        .await
        .unwrap();
    let image = server.data_path().join("volumes").join(format!("{}.raw", bad.id));
    // Garbage over the group descriptors and the reserved GDT blocks.
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&image).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(&garbage).unwrap();
        f.sync_all().unwrap();
    }
    let before = host_sha256(&image);

    // Growing it is refused, and the image is untouched.
    let err = admin.resize_volume("bad", 128 << 20, None).await.unwrap_err();
    assert_eq!(status(&err), 422, "{err}");
    assert!(err.to_string().contains(&bad.id) && err.to_string().contains("damaged"), "{err}");
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 64 << 20);

    // An instance with it does not start; the reason names the volume.
    let req = busybox("victim", vec![VolumeMountRequest { volume: "bad".into(), path: "/d".into(), read_only: None }]);
    admin.create_instance(&req).await.unwrap();
    let i = wait_status(&admin, "victim", InstanceStatus::Error, Duration::from_secs(60)).await;
    assert_eq!(i.status, InstanceStatus::Error, "{i:?}");
    let reason = i.status_reason.clone().unwrap_or_default();
    assert!(reason.contains(&bad.id) && reason.contains("damaged"), "{i:?}");
    assert!(volume_mounts(server.data_path()).is_empty(), "never mounted");
    assert_eq!(host_sha256(&image), before, "the check writes nothing");

    // A sound volume still mounts and grows.
    admin
        .create_volume(&CreateVolumeRequest { name: "good".into(), size_bytes: Some(64 << 20), ..Default::default() })
        .await
        .unwrap();
    admin.resize_volume("good", 96 << 20, None).await.unwrap();
    let good = running(
        &admin,
        busybox("fine", vec![VolumeMountRequest { volume: "good".into(), path: "/d".into(), read_only: None }]),
    )
    .await;
    ok(&admin, &good.name, "echo ok > /d/x && sync").await;

    for name in ["victim", "fine"] {
        let op = admin.delete_instance(name, None, true).await.unwrap();
        wait_op(&admin, &op).await;
    }
    drop(server);
    common::remove_test_network(36).await;
}

/// Cloning a running container copies its upper layer with the container frozen, and
/// copies symlinks as symlinks: a link the instance made to a host path is never
/// followed on the host.
#[tokio::test]
async fn a_clone_copies_a_frozen_source_and_never_follows_its_symlinks() {
    prerequisites();
    let server = TestServer::start_with(ServerOptions::compute(37));
    let admin = server.admin().await;
    let src = running(&admin, busybox("src", Vec::new())).await;
    ok(&admin, "src", "ln -s /etc/shadow /leak && mkdir -p /srv && ln -s /etc /srv/etc-link").await;
    // Files appear and vanish all the time: a live copy trips over them.
    ok(&admin, "src", "mkdir /churn; (while :; do for i in 1 2 3 4 5 6 7 8; do mkdir -p /churn/$i/a/b && echo x > /churn/$i/a/b/f; done; rm -rf /churn/*; done) > /dev/null 2>&1 &").await;
    // Two counters written one after the other, among many files: a copy of a frozen
    // instance sees them equal or `a` one ahead; a live copy reads them at different times.
    ok(&admin, "src", "mkdir /state && for n in $(seq 1 3000); do echo $n > /state/pad$n; done").await;
    // (Each written whole, then renamed: never seen half-written.)
    let counters = "(i=0; while :; do i=$((i+1)); echo $i > /state/a.new; mv /state/a.new /state/a; \
                    echo $i > /state/b.new; mv /state/b.new /state/b; done) > /dev/null 2>&1 & \
                    until [ -e /state/b ]; do sleep 0.05; done";
    ok(&admin, "src", counters).await;
    for n in 0..3 {
        let name = format!("copy{n}");
        let created =
            admin.clone_instance("src", &CloneInstanceRequest { name: name.clone(), start: None }, None).await.unwrap();
        let op = admin.wait_operation(&created.operation.id, |_| {}).await.unwrap();
        assert!(op.error.is_none(), "clone {n} of a busy container: {op:?}");
        let copy =
            admin.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
        assert_eq!(copy.status, InstanceStatus::Running, "{copy:?}");
        let upper = server.data_path().join("instances").join(&copy.id).join("upper");
        let leak = std::fs::symlink_metadata(upper.join("leak")).unwrap();
        assert!(leak.file_type().is_symlink(), "copied as a symlink");
        assert_eq!(std::fs::read_link(upper.join("leak")).unwrap(), Path::new("/etc/shadow"));
        assert!(std::fs::symlink_metadata(upper.join("srv/etc-link")).unwrap().file_type().is_symlink());
        assert_eq!(ok(&admin, &name, "readlink /leak").await.trim(), "/etc/shadow");
        let counters = ok(&admin, &name, "cat /state/a; echo; cat /state/b").await;
        let values: Vec<i64> = counters.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let [a, b] = values[..] else { panic!("counters: {counters:?}") };
        assert!(a == b || a == b + 1, "copied at different moments: a={a} b={b}");
        let op = admin.delete_instance(&name, None, true).await.unwrap();
        wait_op(&admin, &op).await;
    }
    // The source was thawed: it runs, and its loop still goes.
    assert_eq!(admin.get_instance("src", None).await.unwrap().status, InstanceStatus::Running);
    assert_eq!(ok(&admin, "src", "echo alive").await.trim(), "alive");
    let op = admin.delete_instance(&src.id, None, true).await.unwrap();
    wait_op(&admin, &op).await;
    drop(server);
    common::remove_test_network(37).await;
}
