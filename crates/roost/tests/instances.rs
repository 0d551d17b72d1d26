//! Container instances end to end: a real server as root running real runc containers
//! on its own bridge, driven through the typed client and the CLI.

mod common;

use std::time::Duration;

use common::{ServerOptions, TestServer, stderr, stdout};
use common::{busybox, status};
use roost_api::ErrorCode;
use roost_api::auth::Role;
use roost_api::instances::{CreateInstanceRequest, ExecStart, InstanceListParams, InstanceStatus, RestartPolicy};
use roost_api::projects::CreateProjectRequest;
use roost_client::{Client, ClientError};

async fn running(client: &Client, req: CreateInstanceRequest) -> roost_api::instances::Instance {
    let created = client.create_instance(&req).await.unwrap();
    let i = client.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
    assert_eq!(i.status, InstanceStatus::Running, "{i:?}");
    i
}

async fn exec(client: &Client, name: &str, cmd: &[&str]) -> roost_client::exec::ExecOutput {
    let start = ExecStart { cmd: cmd.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    client.exec(name, &start).await.unwrap().run(None).await.unwrap()
}

/// Nothing of the instance is left on the host.
fn assert_no_traces(server: &TestServer, id: &str) {
    assert!(!server.data_path().join("instances").join(id).exists(), "instance directory left behind");
    assert!(!std::path::Path::new("/run/netns").join(id).exists(), "netns left behind");
    let links = std::process::Command::new("ip").args(["-o", "link"]).output().unwrap();
    let suffix = &id[2..];
    assert!(!String::from_utf8_lossy(&links.stdout).contains(suffix), "veth left behind");
}

#[tokio::test]
async fn lifecycle_exec_logs_files_and_stats() {
    let server = TestServer::start_with(ServerOptions::compute(11));
    let admin = server.admin().await;
    let images = admin.list_images(None).await.unwrap();
    assert!(images.iter().any(|i| i.name == "busybox" && i.source == "builtin"));

    let mut req = busybox("web");
    req.cpus = Some(0.5);
    req.env = [("GREETING".to_string(), "hello".to_string())].into();
    req.labels = [("tier".to_string(), "front".to_string())].into();
    let web = running(&admin, req).await;
    let ip = web.ip.clone().expect("an address");
    assert!(ip.starts_with("10.111.0."), "{ip}");

    let out = exec(&admin, "web", &["sh", "-c", "echo $GREETING from $(hostname); echo oops >&2; exit 7"]).await;
    assert_eq!(
        (String::from_utf8_lossy(&out.stdout).trim(), String::from_utf8_lossy(&out.stderr).trim(), out.code),
        ("hello from web", "oops", 7)
    );
    // stdin reaches the command.
    let start = ExecStart { cmd: vec!["cat".into()], ..Default::default() };
    let out = admin.exec("web", &start).await.unwrap().run(Some(b"piped input".to_vec())).await.unwrap();
    assert_eq!(out.stdout, b"piped input");
    // A terminal: output on one stream, and it is a tty.
    let start = ExecStart {
        cmd: vec!["sh".into(), "-c".into(), "tty && stty size".into()],
        tty: true,
        rows: Some(33),
        cols: Some(101),
        ..Default::default()
    };
    let out = admin.exec("web", &start).await.unwrap().run(None).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/") && text.contains("33 101"), "{text}");
    // The CPU limit is real.
    let quota = exec(
        &admin,
        "web",
        &["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"],
    )
    .await;
    let nums: Vec<i64> =
        String::from_utf8_lossy(&quota.stdout).split_whitespace().filter_map(|n| n.parse().ok()).collect();
    assert_eq!(nums.len(), 2, "{:?}", String::from_utf8_lossy(&quota.stdout));
    assert_eq!(nums[0] * 2, nums[1], "cpus 0.5 is half the period");

    // Files both ways through the API.
    let local = server.cli_home.path().join("hello.txt");
    std::fs::write(&local, "hello world").unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_path_with_name(&local, "hello.txt").unwrap();
    admin.upload_files("web", "/tmp", tar.into_inner().unwrap()).await.unwrap();
    assert_eq!(exec(&admin, "web", &["cat", "/tmp/hello.txt"]).await.stdout, b"hello world");
    let back = admin.download_files("web", "/tmp/hello.txt").await.unwrap().bytes().await.unwrap();
    let mut archive = tar::Archive::new(std::io::Cursor::new(back));
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
    assert_eq!(content, "hello world");

    // Logs of a command that prints.
    let printer = running(
        &admin,
        CreateInstanceRequest {
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "for i in 1 2 3; do echo line $i; done; echo bad >&2; sleep 3600".into(),
            ]),
            ..busybox("printer")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut logs = Box::pin(admin.instance_logs(&printer.id, None, Some(2), false).await.unwrap());
    let mut lines = Vec::new();
    while let Some(l) = futures_util::StreamExt::next(&mut logs).await {
        let l = l.unwrap();
        lines.push((l.stream, l.line));
    }
    assert_eq!(lines, [("stdout".to_string(), "line 3".to_string()), ("stderr".to_string(), "bad".to_string())]);

    let stats = admin.instance_stats("web").await.unwrap();
    assert!(stats.memory_bytes > 0 && stats.pids >= 1 && stats.memory_limit == Some(64 << 20), "{stats:?}");

    // Filters.
    let labelled = admin
        .list_instances(&InstanceListParams { label: Some("tier=front".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(labelled.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["web"]);
    let by_status = admin
        .list_instances(&InstanceListParams { status: Some("running".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_status.items.len(), 2);

    // Stop, start, restart, delete.
    let op = admin.stop_instance("web", None, Some(5)).await.unwrap();
    assert_eq!(
        admin.wait_operation(&op.id, |_| {}).await.unwrap().status,
        roost_api::operations::OperationStatus::Succeeded
    );
    assert_eq!(admin.get_instance("web", None).await.unwrap().status, InstanceStatus::Stopped);
    let err = admin
        .exec("web", &ExecStart { cmd: vec!["true".into()], ..Default::default() })
        .await
        .err()
        .expect("exec on a stopped instance");
    assert_eq!(status(&err), 409);
    let op = admin.start_instance("web", None).await.unwrap();
    admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(admin.get_instance("web", None).await.unwrap().ip.as_deref(), Some(ip.as_str()), "the address is kept");
    let op = admin.restart_instance("web", None, Some(5)).await.unwrap();
    admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(
        exec(&admin, "web", &["cat", "/tmp/hello.txt"]).await.stdout,
        b"hello world",
        "the root filesystem survives restarts"
    );
    let err = admin.delete_instance("web", None, false).await.unwrap_err();
    assert_eq!(status(&err), 409, "a running instance needs force");
    for name in ["web", "printer"] {
        let op = admin.delete_instance(name, None, true).await.unwrap();
        admin.wait_operation(&op.id, |_| {}).await.unwrap();
    }
    assert_eq!(status(&admin.get_instance("web", None).await.unwrap_err()), 404);
    assert_no_traces(&server, &web.id);
    common::remove_test_network(11).await;
}

#[tokio::test]
async fn memory_limits_kill_and_restart_policies_act() {
    let server = TestServer::start_with(ServerOptions::compute(13));
    let admin = server.admin().await;
    let hog = CreateInstanceRequest {
        memory_bytes: Some(16 << 20),
        command: Some(vec!["sh".into(), "-c".into(), "head -c 200m /dev/zero | tail > /dev/null".into()]),
        ..busybox("hog")
    };
    let created = admin.create_instance(&hog).await.unwrap();
    let hog =
        admin.wait_instance(&created.instance.id, InstanceStatus::Stopped, Duration::from_secs(60)).await.unwrap();
    assert_eq!(hog.status, InstanceStatus::Stopped);
    assert!(hog.status_reason.as_deref().unwrap_or_default().contains("OOM"), "{hog:?}");

    let flaky = CreateInstanceRequest {
        restart: Some(RestartPolicy::OnFailure),
        command: Some(vec!["sh".into(), "-c".into(), "sleep 0.3; exit 1".into()]),
        ..busybox("flaky")
    };
    admin.create_instance(&flaky).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let i = admin.get_instance("flaky", None).await.unwrap();
        if i.restart_count >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never restarted: {i:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let done = CreateInstanceRequest {
        command: Some(vec!["true".into()]),
        restart: Some(RestartPolicy::OnFailure),
        ..busybox("done")
    };
    let created = admin.create_instance(&done).await.unwrap();
    let done =
        admin.wait_instance(&created.instance.id, InstanceStatus::Stopped, Duration::from_secs(30)).await.unwrap();
    assert_eq!((done.exit_code, done.restart_count), (Some(0), 0), "a clean exit is not restarted under on-failure");
    common::remove_test_network(13).await;
}

#[tokio::test]
async fn instances_survive_server_restarts_and_crashes_converge() {
    let mut server = TestServer::start_with(ServerOptions::compute(16));
    let admin = server.admin().await;
    let keep = running(&admin, busybox("keep")).await;
    exec(&admin, "keep", &["sh", "-c", "echo alive > /tmp/mark"]).await;

    // Crash during a create and during a delete.
    let doomed = running(&admin, busybox("doomed")).await;
    let created = admin.create_instance(&busybox("half")).await.unwrap();
    admin.delete_instance("doomed", None, true).await.unwrap();
    common::signal(server.child.id(), "KILL");
    common::wait_exit(&mut server.child, Duration::from_secs(10)).unwrap();

    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    let again = TestServer::start_in(data_dir, ServerOptions::compute(16));
    let admin = again.admin().await;
    let half =
        admin.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
    assert_eq!(half.status, InstanceStatus::Running, "a half-created instance is finished");
    let gone = admin.wait_instance(&doomed.id, InstanceStatus::Terminated, Duration::from_secs(60)).await;
    assert!(gone.is_err() || gone.unwrap().status == InstanceStatus::Terminated, "a half-deleted instance is removed");
    assert_eq!(status(&admin.get_instance(&doomed.id, None).await.unwrap_err()), 404);
    assert_no_traces(&again, &doomed.id);
    // The running one was adopted, not restarted: its files are still there.
    assert_eq!(admin.get_instance(&keep.id, None).await.unwrap().status, InstanceStatus::Running);
    assert_eq!(exec(&admin, "keep", &["cat", "/tmp/mark"]).await.stdout, b"alive\n");
    common::remove_test_network(16).await;
}

#[test]
fn the_cli_runs_instances() {
    let server = TestServer::start_with(ServerOptions::compute(17));
    let ok = |args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}", args.join(" "), stderr(&out));
        out
    };
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success());
    let out = ok(&["run", "--rm", "--image", "busybox", "--", "echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n");
    let out = server.cli(&["run", "--rm", "--image", "busybox", "--", "sh", "-c", "exit 4"], None, &[]);
    assert_eq!(out.status.code(), Some(4));
    let out = ok(&[
        "instance", "create", "web", "--image", "busybox", "--cpus", "1", "--memory", "64m", "--env", "A=b", "--label",
        "app=web",
    ]);
    assert!(stdout(&out).trim().starts_with("i-"));
    assert!(stderr(&out).contains("is running at 10.117.0."), "{}", stderr(&out));
    let ps = stdout(&ok(&["ps"]));
    let header: Vec<_> = ps.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ID", "STATUS", "TYPE", "IMAGE", "IP", "CPUS", "MEMORY", "AGE"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("web ") && l.split_whitespace().nth(3) == Some("container") && l.contains("64M")),
        "{ps}"
    );
    let out = ok(&["exec", "web", "--", "sh", "-c", "echo $A"]);
    assert_eq!(stdout(&out), "b\n");
    let out = server.cli(&["exec", "web", "--", "sh", "-c", "exit 9"], None, &[]);
    assert_eq!(out.status.code(), Some(9));
    let local = server.cli_home.path().join("note.txt");
    std::fs::write(&local, "a note").unwrap();
    ok(&["cp", local.to_str().unwrap(), "web:/tmp/note.txt"]);
    let back = server.cli_home.path().join("back.txt");
    ok(&["cp", "web:/tmp/note.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "a note");
    let show = stdout(&ok(&["instance", "show", "web"]));
    assert!(show.contains("status:") && show.contains("app=web"), "{show}");
    ok(&["i", "stop", "web", "--timeout", "3"]);
    assert!(stdout(&ok(&["ps", "--status", "stopped"])).contains("web"));
    ok(&["instance", "start", "web"]);
    let out = server.cli(&["instance", "rm", "web"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("stop it first or delete with force"), "{}", stderr(&out));
    ok(&["instance", "rm", "--force", "web"]);
    assert_eq!(stdout(&ok(&["ps"])).lines().count(), 1);
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(17));
}

#[tokio::test]
async fn instances_reach_each_other_and_are_sampled() {
    let server = TestServer::start_with(ServerOptions::compute(19));
    let admin = server.admin().await;
    // Raw sockets (busybox's ping) are for instances that ask for NET_RAW.
    let a = running(&admin, CreateInstanceRequest { capabilities_add: vec!["NET_RAW".into()], ..busybox("a") }).await;
    assert_eq!(a.capabilities_add, vec!["NET_RAW".to_string()]);
    let b = running(&admin, busybox("b")).await;
    let b_ip = b.ip.clone().unwrap();
    let out = exec(&admin, "a", &["ping", "-c", "1", "-W", "2", &b_ip]).await;
    assert_eq!(out.code, 0, "a cannot reach b: {}", String::from_utf8_lossy(&out.stdout));
    let a_ip = a.ip.clone().unwrap();
    let out = exec(&admin, "b", &["ping", "-c", "1", "-W", "2", &a_ip]).await;
    assert_ne!(out.code, 0, "b has no NET_RAW");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default route goes through the bridge, and egress is masqueraded.
    let route = exec(&admin, "a", &["ip", "route"]).await;
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("default via 10.119.0.1"),
        "{}",
        String::from_utf8_lossy(&route.stdout)
    );
    let rules = std::process::Command::new("nft").args(["list", "ruleset"]).output().unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(rules.contains("10.119.0.0/24") && rules.contains("masquerade"), "no NAT for the network:\n{rules}");

    // The sampler records a point every 10 s and exports gauges.
    exec(&admin, "a", &["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let series = admin.instance_metrics(&a.id, "5m").await.unwrap();
    assert_eq!(series.resolution_secs, 10);
    assert!(!series.points.is_empty(), "no samples after 11 s");
    assert!(series.points.iter().all(|p| p.memory_bytes > 0));
    let text = admin.metrics().await.unwrap();
    assert!(text.lines().any(|l| l.starts_with("roost_instance_memory_bytes{") && l.contains(&a.id)), "{text}");
    assert_eq!(admin.instance_metrics(&a.id, "forever").await.unwrap_err().status().unwrap().as_u16(), 400);
    common::remove_test_network(19).await;
}

#[test]
fn debian_images_build_offline_from_packages_and_run() {
    let server = TestServer::start_with(ServerOptions::compute(20));
    let ok = |args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}", args.join(" "), stderr(&out));
        out
    };
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success());
    let out = ok(&["image", "build", "deb", "--from", "debian:bookworm", "--packages", "curl"]);
    let progress = stderr(&out);
    assert!(progress.lines().filter(|l| l.contains(" running ")).count() >= 2, "no progress shown:\n{progress}");
    let shown = stdout(&ok(&["image", "show", "deb", "-o", "json"]));
    let image: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(image["status"], "ready");
    assert_eq!(image["description"], "debian:bookworm +curl");
    // The same inputs are the same image: the second build reuses the first.
    ok(&["image", "build", "deb-again", "--from", "debian:bookworm", "--packages", "curl"]);
    let again: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&["image", "show", "deb-again", "-o", "json"]))).unwrap();
    assert_eq!(again["digest"], image["digest"]);

    ok(&["instance", "create", "d", "--image", "deb", "--memory", "128m"]);
    let out = ok(&["exec", "d", "--", "curl", "--version"]);
    assert!(stdout(&out).starts_with("curl "), "{}", stdout(&out));
    let out = server.cli(&["image", "rm", "deb"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("is used by 1 instance"), "{}", stderr(&out));
    ok(&["instance", "rm", "-f", "d"]);
    ok(&["image", "rm", "deb"]);
    let out = server.cli(&["image", "build", "bad", "--from", "ubuntu:noble"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("debian:<suite>"), "{}", stderr(&out));
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(20));
}

/// The same with the file stored as a GNU sparse entry: a few bytes in the archive that
/// unpack to `size`.
fn sparse_tarball_with(name: &str, size: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::File::create(&file).unwrap().set_len(size as u64).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    tar.sparse(true);
    tar.append_path_with_name(&file, name).unwrap();
    tar.into_inner().unwrap()
}

/// `gzip -c` of the bytes (Debian package 'gzip').
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip runs (Debian package 'gzip')");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// An import is authorized before its body is read (a stranger's upload is refused while
/// it is still being sent), and both what is sent and what it unpacks to are capped: too
/// much is a 413 that leaves nothing behind.
#[tokio::test]
async fn image_imports_are_authorized_first_and_capped() {
    let mut opts = ServerOptions::compute(44);
    opts.env.push(("ROOST_IMAGE_IMPORT_MAX_SIZE".into(), "1MiB".into()));
    opts.env.push(("ROOST_IMAGE_IMPORT_MAX_UNPACKED".into(), "8MiB".into()));
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    admin.create_project(&CreateProjectRequest { name: "team-a".into(), description: None }).await.unwrap();
    let vera = common::user_in(&server.url, &admin, "vera", &[("team-a", Role::Viewer)]).await;
    let olga = common::user_in(&server.url, &admin, "olga", &[]).await;
    let leftovers = || {
        let mut found = Vec::new();
        for dir in ["tmp", "images/tmp"] {
            if let Ok(entries) = std::fs::read_dir(server.data_path().join(dir)) {
                found.extend(entries.map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy())));
            }
        }
        found
    };

    // A body that never ends: only an answer given before reading it can arrive.
    for (who, expected) in [(&olga, 404), (&vera, 403)] {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        tx.send(Ok(vec![0u8; 64 * 1024])).await.unwrap();
        let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
        let sent = tokio::time::timeout(Duration::from_secs(60), who.import_image("stream", Some("team-a"), body))
            .await
            .expect("no answer while the body was still being sent: the upload was read before the check");
        let err = sent.expect_err("refused");
        assert_eq!(status(&err), expected, "{err}");
        drop(tx);
    }

    // Over the upload cap: 413, nothing kept.
    let big = common::tarball_with("big", 2 << 20);
    let err = admin
        .import_image("big", Some("team-a"), reqwest::Body::from(big))
        .await
        .map(|i| panic!("over the cap, yet imported: {i:?}\n{}", server.output()))
        .unwrap_err();
    assert_eq!(status(&err), 413, "{err}");
    assert_eq!(code_of(&err), ErrorCode::PayloadTooLarge);
    // A decompression bomb: 64 MiB of zeros in a few kilobytes.
    let bomb = gzip(&common::tarball_with("zeros", 64 << 20));
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let err = admin.import_image("bomb", Some("team-a"), reqwest::Body::from(bomb)).await.expect_err("a bomb");
    assert_eq!(status(&err), 413, "{err}");
    assert!(err.to_string().contains("unpack"), "{err}");
    // A sparse entry: tiny in the archive, 64 MiB on disk.
    let sparse = sparse_tarball_with("holes", 64 << 20);
    assert!(sparse.len() < 64 << 10, "{}", sparse.len());
    let err = admin.import_image("holes", Some("team-a"), reqwest::Body::from(sparse)).await.expect_err("sparse");
    assert_eq!(status(&err), 413, "{err}");
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    let names: Vec<String> = admin.list_images(Some("team-a")).await.unwrap().into_iter().map(|i| i.name).collect();
    assert!(!names.iter().any(|n| ["big", "bomb", "holes"].contains(&n.as_str())), "{names:?}");
    // Within the caps an import works as before.
    let fine = gzip(&common::tarball_with("fine", 4 << 20));
    admin.import_image("fine", Some("team-a"), reqwest::Body::from(fine)).await.unwrap();
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    common::remove_test_network(44).await;
}

fn code_of(err: &ClientError) -> ErrorCode {
    err.body().map(|b| b.code).unwrap_or(ErrorCode::Unknown)
}

/// The receiving end of a channel as a stream (for a request body sent bit by bit).
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// An SSH key made with a token restricted to one project goes only into that project's
/// instances, and only until the token ends; one made in a session goes anywhere.
#[tokio::test]
async fn ssh_keys_made_with_a_restricted_token_stay_in_its_project() {
    let server = TestServer::start_with(ServerOptions::compute(45));
    let admin = server.admin().await;
    for name in ["team-a", "team-b"] {
        admin.create_project(&CreateProjectRequest { name: name.into(), description: None }).await.unwrap();
    }
    // A team-a token for an hour (what a key may go into), one for seconds (its end).
    let restricted = |name: &str, lasts: chrono::Duration| roost_api::tokens::CreateTokenRequest {
        name: name.into(),
        scope: Some(roost_api::tokens::Scope::Write),
        expires_at: Some(chrono::Utc::now() + lasts),
        project: Some("team-a".into()),
        ..Default::default()
    };
    let ssh_key = |name: &str| roost_api::ssh_keys::CreateSshKeyRequest { name: name.into(), public_key: None };
    let hour = admin.create_token(&restricted("hour", chrono::Duration::hours(1))).await.unwrap();
    Client::new(&server.url, Some(hour.secret)).unwrap().create_ssh_key(&ssh_key("from-token")).await.unwrap();
    admin.create_ssh_key(&ssh_key("from-session")).await.unwrap();
    let with_key = |name: &str, project: &str, key: &str| CreateInstanceRequest {
        project: Some(project.into()),
        start: Some(false),
        ssh_keys: vec![key.into()],
        ..busybox(name)
    };
    admin.create_instance(&with_key("a1", "team-a", "from-token")).await.unwrap();
    let err = admin.create_instance(&with_key("b1", "team-b", "from-token")).await.expect_err("another project");
    assert_eq!(status(&err), 400, "{err}");
    admin.create_instance(&with_key("b2", "team-b", "from-session")).await.unwrap();
    // Once the token that made it has ended, the key goes into no new instance.
    let brief = admin.create_token(&restricted("brief", chrono::Duration::seconds(5))).await.unwrap();
    Client::new(&server.url, Some(brief.secret)).unwrap().create_ssh_key(&ssh_key("brief")).await.unwrap();
    let ended = brief.token.expires_at.unwrap() + chrono::Duration::milliseconds(500);
    tokio::time::sleep((ended - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    let err = admin.create_instance(&with_key("a2", "team-a", "brief")).await.expect_err("an ended key");
    assert_eq!(status(&err), 400, "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    common::remove_test_network(45).await;
}
