//! The control plane over the simulated node (`tests/common/sim.rs`): the server's
//! router, services, store and background tasks in this test's process, with a node in
//! memory. What is tested here is the control plane's own logic: validation,
//! authorization, tenancy, quotas, address management, what it asks of the node and
//! what it leaves behind when the node fails. What only the real host shows (runc,
//! nftables, netlink, QEMU) stays in the suites that run a real server as root.

mod common;

use std::time::Duration;

use common::sim::SimServer;
use common::{ADMIN_PASSWORD, stderr, stdout};
use common::{busybox, status};
use roost_api::auth::Role;
use roost_api::instances::{CreateInstanceRequest, ExecStart, InstanceListParams, InstanceStatus};
use roost_api::networks::{CreateNetworkRequest, NicRequest};
use roost_api::projects::{CreateProjectRequest, Quota};
use roost_api::users::CreateUserRequest;
use roost_api::{ErrorCode, ListParams};
use roost_client::Client;

/// An instance on `network` (and nothing else), in the caller's default project.
fn client_req(name: &str, project: Option<&str>, network: &str, groups: &[&str]) -> CreateInstanceRequest {
    CreateInstanceRequest {
        project: project.map(str::to_string),
        networks: vec![NicRequest { network: network.into(), ip: None }],
        security_groups: groups.iter().map(|g| g.to_string()).collect(),
        ..busybox(name)
    }
}

async fn running(client: &Client, req: CreateInstanceRequest) -> roost_api::instances::Instance {
    let created = client.create_instance(&req).await.unwrap();
    let i = client.wait_instance(&created.instance.id, InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
    assert_eq!(i.status, InstanceStatus::Running, "{i:?}");
    i
}

#[tokio::test]
async fn bad_input_is_refused_and_leaves_nothing() {
    let server = SimServer::start();
    let admin = server.admin().await;
    running(&admin, busybox("taken")).await;
    let cases = [
        (CreateInstanceRequest { image: "no-such-image".into(), ..busybox("a") }, 400, "image"),
        (CreateInstanceRequest { memory_bytes: Some(0), ..busybox("b") }, 400, "memory_bytes"),
        (CreateInstanceRequest { cpus: Some(0.0), ..busybox("c") }, 400, "cpus"),
        (CreateInstanceRequest { command: Some(vec!["no-such-program".into()]), ..busybox("d") }, 400, "command"),
        (CreateInstanceRequest { name: "Bad Name".into(), ..busybox("e") }, 400, "name"),
    ];
    for (req, code, field) in cases {
        let err = admin.create_instance(&req).await.unwrap_err();
        assert_eq!(status(&err), code, "{field}: {err}");
        assert_eq!(err.body().unwrap().details[0].field, field, "{err}");
    }
    let err = admin.create_instance(&busybox("taken")).await.unwrap_err();
    assert_eq!((status(&err), err.body().unwrap().code), (409, ErrorCode::Conflict));
    let all = admin.list_instances(&InstanceListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 1, "nothing was created");
    assert_eq!(server.node.instance_ids().len(), 1, "nothing reached the node");
}

#[tokio::test]
async fn concurrent_creates_get_unique_addresses_and_quotas_hold() {
    let server = SimServer::start();
    let admin = server.admin().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move { admin.create_instance(&busybox(&format!("c{i}"))).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut ips = std::collections::HashSet::new();
    for i in 0..50 {
        let inst =
            admin.wait_instance(&format!("c{i}"), InstanceStatus::Running, Duration::from_secs(60)).await.unwrap();
        assert_eq!(inst.status, InstanceStatus::Running, "{inst:?}");
        assert!(ips.insert(inst.ip.unwrap()), "duplicate address");
    }

    // 20 concurrent creates against a quota of 5 create exactly 5.
    admin.create_project(&CreateProjectRequest { name: "capped".into(), description: None }).await.unwrap();
    admin.set_quota("capped", &Quota { limits: [("instances".to_string(), Some(5))].into() }).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            admin
                .create_instance(&CreateInstanceRequest {
                    project: Some("capped".into()),
                    start: Some(false),
                    ..busybox(&format!("q{i}"))
                })
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(e) => {
                assert_eq!(status(&e), 403, "{e}");
                assert!(e.to_string().contains("instances limit is 5, 5 in use, 1 requested"), "{e}");
            }
        }
    }
    assert_eq!(created, 5);
    let usage = admin.usage("capped").await.unwrap();
    assert_eq!(usage.resources["instances"].used, 5);
}

#[tokio::test]
async fn tenancy_applies_to_instances() {
    let server = SimServer::start();
    let admin = server.admin().await;
    for name in ["team-a", "team-b"] {
        admin.create_project(&CreateProjectRequest { name: name.into(), description: None }).await.unwrap();
    }
    let mut clients = Vec::new();
    for (name, project, role) in
        [("vera", "team-a", Role::Viewer), ("otto", "team-a", Role::Operator), ("olga", "team-b", Role::Operator)]
    {
        let req = CreateUserRequest {
            name: name.into(),
            role: Some(Role::Operator),
            password: Some(format!("{name}-password")),
            projects: Some(vec![]),
            ..Default::default()
        };
        admin.create_user(&req).await.unwrap();
        admin.set_member(project, name, role).await.unwrap();
        let token = server.anonymous().login(name, &format!("{name}-password")).await.unwrap().token;
        clients.push(Client::new(&server.url, Some(token)).unwrap());
    }
    let (vera, otto, olga) = (&clients[0], &clients[1], &clients[2]);
    let app = running(otto, CreateInstanceRequest { project: Some("team-a".into()), ..busybox("app") }).await;
    assert_eq!(vera.get_instance(&app.id, None).await.unwrap().name, "app");
    assert_eq!(
        status(
            &vera
                .create_instance(&CreateInstanceRequest { project: Some("team-a".into()), ..busybox("x") })
                .await
                .unwrap_err()
        ),
        403
    );
    assert_eq!(
        status(&vera.exec(&app.id, &ExecStart { cmd: vec!["true".into()], ..Default::default() }).await.err().unwrap()),
        403
    );
    assert_eq!(status(&vera.stop_instance(&app.id, None, None).await.unwrap_err()), 403);
    // A refused restart leaves nothing behind that would restart it later.
    assert_eq!(status(&vera.restart_instance(&app.id, None, None).await.unwrap_err()), 403);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = otto.get_instance(&app.id, None).await.unwrap();
    assert_eq!((after.status, after.started_at), (InstanceStatus::Running, app.started_at), "not restarted");
    assert_eq!(status(&olga.get_instance(&app.id, None).await.unwrap_err()), 404);
    assert_eq!(status(&olga.delete_instance(&app.id, None, true).await.unwrap_err()), 404);
    assert!(olga.list_instances(&InstanceListParams::default()).await.unwrap().items.is_empty());
    assert_eq!(
        status(
            &olga
                .create_instance(&CreateInstanceRequest { project: Some("team-a".into()), ..busybox("x") })
                .await
                .unwrap_err()
        ),
        404
    );
    let _ = admin.list_projects(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn ipam_never_hands_out_an_address_twice() {
    let server = SimServer::start();
    let admin = server.admin().await;
    admin
        .create_network(&CreateNetworkRequest {
            name: "small".into(),
            cidr: Some("10.123.200.0/26".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // 50 creates at once (stopped: this is about addresses, not containers).
    let mut tasks = Vec::new();
    for n in 0..50 {
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let req = CreateInstanceRequest { start: Some(false), ..client_req(&format!("i{n}"), None, "small", &[]) };
            admin.create_instance(&req).await
        }));
    }
    let mut ips = Vec::new();
    for t in tasks {
        let created = t.await.unwrap().unwrap();
        ips.push(created.instance.ip.clone().unwrap());
    }
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50, "{ips:?}");
    let net = admin.get_network("small", None).await.unwrap();
    assert_eq!((net.addresses_used, net.addresses_total), (50, 61));
    // Lists carry the NICs and groups too.
    let listed = admin.all_instances(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 50);
    assert!(listed.iter().all(|i| i.nics.len() == 1 && i.nics[0].network == "small" && i.nics[0].name == "eth0"));
    assert!(listed.iter().all(|i| i.security_groups == vec!["default".to_string()]));
    // Full: 61 usable addresses; the 12th more is refused with a clear error.
    for n in 50..61 {
        let req = CreateInstanceRequest { start: Some(false), ..client_req(&format!("i{n}"), None, "small", &[]) };
        admin.create_instance(&req).await.unwrap();
    }
    let req = CreateInstanceRequest { start: Some(false), ..client_req("full", None, "small", &[]) };
    let err = admin.create_instance(&req).await.unwrap_err();
    assert_eq!(status(&err), 409);
    assert!(err.to_string().contains("no free address"), "{err}");
    // Deleting frees the address for the next one.
    let op = admin.delete_instance("i7", None, false).await.unwrap();
    admin.wait_operation(&op.id, |_| {}).await.unwrap();
    let created = admin.create_instance(&req).await.unwrap();
    assert_eq!(created.instance.ip, Some(ips[7].clone()));
    // A static address outside the range, or the gateway, is a 400 naming the field.
    let bad = CreateInstanceRequest {
        networks: vec![NicRequest { network: "small".into(), ip: Some("10.123.200.1".into()) }],
        start: Some(false),
        ..client_req("gw", None, "small", &[])
    };
    let err = admin.create_instance(&bad).await.unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(err.to_string().contains("gateway"), "{err}");
}

#[test]
fn networks_and_groups_say_which_project_they_belong_to() {
    let server = SimServer::start();
    let ok = |args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}", args.join(" "), stderr(&out));
        stdout(&out)
    };
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&["project", "create", "team-a"]);
    // Every project has a `default` network and group: the lists say whose.
    for what in ["network", "sg"] {
        let listed = ok(&[what, "ls"]);
        let header: Vec<_> = listed.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header[..2], ["NAME", "PROJECT"], "{listed}");
        for project in ["default", "team-a"] {
            assert!(
                listed.lines().any(|l| l.split_whitespace().take(2).eq(["default", project])),
                "{what} ls:\n{listed}"
            );
        }
    }
}

#[tokio::test]
async fn an_instance_s_life_reaches_the_node_and_ends_there() {
    let server = SimServer::start();
    let admin = server.admin().await;
    let web = running(&admin, busybox("web")).await;
    assert_eq!(server.node.instance_ids(), vec![web.id.clone()]);

    // Files and exec go to the node's instance.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", &b"hello\n"[..]).unwrap();
    admin.upload_files("web", "/srv", tar.into_inner().unwrap()).await.unwrap();
    let start = ExecStart { cmd: vec!["cat".into(), "/srv/hello.txt".into()], ..Default::default() };
    let out = admin.exec("web", &start).await.unwrap().run(None).await.unwrap();
    assert_eq!((out.code, out.stdout.as_slice()), (0, &b"hello\n"[..]));
    let start = ExecStart { cmd: vec!["no-such-tool".into()], ..Default::default() };
    assert_eq!(admin.exec("web", &start).await.unwrap().run(None).await.unwrap().code, 127);

    // Stop, start, delete: each reaches the node once it is asked for.
    let op = admin.stop_instance("web", None, None).await.unwrap();
    admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(admin.get_instance("web", None).await.unwrap().status, InstanceStatus::Stopped);
    let op = admin.start_instance("web", None).await.unwrap();
    admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(admin.get_instance("web", None).await.unwrap().status, InstanceStatus::Running);
    let op = admin.delete_instance("web", None, true).await.unwrap();
    admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert!(server.node.instance_ids().is_empty(), "deleted on the node too");
    let calls = server.node.calls();
    for call in ["prepare", "start", "stop", "delete"] {
        assert!(calls.iter().any(|c| c == &format!("{call} {}", web.id)), "{call}: {calls:?}");
    }
    // Every change is audited, from the create to the delete.
    let audit = admin.list_audit(&Default::default()).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    for action in ["instance.create", "instance.stop", "instance.start", "instance.delete", "instance.files.write"] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
}

#[tokio::test]
async fn a_failing_node_leaves_no_half_made_volume() {
    let server = SimServer::start();
    let admin = server.admin().await;
    let req = roost_api::volumes::CreateVolumeRequest {
        name: "data".into(),
        size_bytes: Some(1 << 30),
        ..Default::default()
    };
    server.node.fail_next("create_volume", 1);
    let err = admin.create_volume(&req).await.unwrap_err();
    assert_eq!(status(&err), 500, "{err}");
    // The answer names no node internals, and nothing is left on either side.
    assert!(!err.to_string().contains("injected"), "{err}");
    assert!(admin.list_volumes(None).await.unwrap().is_empty());
    assert!(server.node.volume_ids().is_empty());
    assert_eq!(admin.usage("default").await.unwrap().resources["volume_gib"].used, 0);

    // The next try works; a snapshot that fails on the node leaves no snapshot row.
    let volume = admin.create_volume(&req).await.unwrap();
    assert_eq!(server.node.volume_ids(), vec![volume.id.clone()]);
    server.node.fail_next("snapshot_volume", 1);
    let snap =
        roost_api::volumes::CreateSnapshotRequest { volume: "data".into(), name: "s1".into(), ..Default::default() };
    assert_eq!(status(&admin.create_snapshot(&snap).await.unwrap_err()), 500);
    assert!(admin.list_snapshots(Some("data"), None).await.unwrap().is_empty());
    admin.create_snapshot(&snap).await.unwrap();
    assert_eq!(admin.list_snapshots(Some("data"), None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_node_s_network_state_follows_the_store() {
    use roost_api::networks::{CreateRuleRequest, CreateSecurityGroupRequest, Direction, Protocol};
    let server = SimServer::start();
    let admin = server.admin().await;
    let net = admin
        .create_network(&CreateNetworkRequest {
            name: "back".into(),
            cidr: Some("10.9.8.0/24".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let sg = CreateSecurityGroupRequest { name: "web".into(), ..Default::default() };
    let group = admin.create_security_group(&sg).await.unwrap();
    let rule = CreateRuleRequest {
        direction: Direction::Ingress,
        protocol: Protocol::Tcp,
        ports: Some("80".into()),
        cidr: Some("0.0.0.0/0".into()),
        security_group: None,
        description: None,
    };
    admin.add_security_group_rule("web", None, &rule).await.unwrap();
    let web = running(&admin, client_req("web", None, "back", &["web"])).await;

    // What the node was asked to make: the network's bridge, the instance's port with
    // its address and groups, and the group's rule.
    let state = server.node.network().expect("the network state was applied");
    let bridge = state.bridges.iter().find(|b| b.network_id == net.id).expect("the network's bridge");
    assert_eq!(bridge.gateway.to_string(), "10.9.8.1");
    let nic = state.firewall.nics.iter().find(|n| n.bridge == bridge.bridge).expect("the instance's port");
    assert_eq!(Some(nic.ip.to_string()), web.ip);
    assert!(nic.groups.contains(&group.id), "{:?}", nic.groups);
    assert_eq!(state.firewall.groups[&group.id].len(), 2, "default egress and the new rule");

    // The instance and the network gone, so is their state on the node.
    let op = admin.delete_instance("web", None, true).await.unwrap();
    admin.wait_operation(&op.id, |_| {}).await.unwrap();
    admin.delete_network("back", None).await.unwrap();
    let mut gone = false;
    for _ in 0..100 {
        let state = server.node.network().unwrap();
        if !state.bridges.iter().any(|b| b.network_id == net.id) && state.firewall.nics.iter().all(|n| n.ip != nic.ip) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the network's bridge and port were not removed from the node's state");
}

#[tokio::test]
async fn templates_build_once_cache_and_sandboxes_start_from_them() {
    use roost_api::operations::OperationStatus;
    use roost_api::sandbox_templates::{BuildSandboxTemplateRequest, SandboxTemplateBuild};
    let server = SimServer::start();
    let admin = server.admin().await;
    let build = |name: &str, run: &[&str]| BuildSandboxTemplateRequest {
        name: name.into(),
        from: None,
        run: run.iter().map(|s| s.to_string()).collect(),
        project: None,
    };
    let op = admin.build_sandbox_template(&build("tools", &["echo one", "echo two"])).await.unwrap();
    let done = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{done:?}");
    let result: SandboxTemplateBuild = serde_json::from_value(done.result.unwrap()).unwrap();
    assert_eq!(result.cache, "miss");
    assert!(result.log.contains("one") && result.log.contains("two"), "{}", result.log);
    // The same commands again: a cache hit, nothing runs.
    let before = server.node.calls().len();
    let op = admin.build_sandbox_template(&build("tools", &["echo one", "echo two"])).await.unwrap();
    let done = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    let result: SandboxTemplateBuild = serde_json::from_value(done.result.unwrap()).unwrap();
    assert_eq!(result.cache, "hit");
    assert!(!server.node.calls()[before..].iter().any(|c| c.starts_with("prepare")), "a hit starts no instance");

    // A failing command fails the build, names the command, and leaves no template and
    // no build instance behind.
    let op = admin.build_sandbox_template(&build("broken", &["echo ok", "false"])).await.unwrap();
    let done = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(done.status, OperationStatus::Failed, "{done:?}");
    let message = done.error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains("command 2 of 2 (`false`) exited with code 1"), "{message}");
    let names: Vec<String> = admin.list_sandbox_templates(None).await.unwrap().into_iter().map(|t| t.name).collect();
    assert!(names.contains(&"tools".to_string()) && !names.contains(&"broken".to_string()), "{names:?}");
    assert!(server.node.instance_ids().is_empty(), "build instances are gone: {:?}", server.node.instance_ids());

    // A sandbox starts from the template, on the node, until it is killed.
    let req = roost_api::sandboxes::CreateSandboxRequest { template: Some("tools".into()), ..Default::default() };
    let sandbox = admin.create_sandbox(&req).await.unwrap();
    assert_eq!((sandbox.template.as_str(), sandbox.state.as_str()), ("tools", "running"));
    assert_eq!(server.node.instance_ids(), vec![sandbox.instance_id.clone()]);
    assert_eq!(admin.list_sandboxes().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_create_retried_with_its_idempotency_key_reaches_the_node_once() {
    let server = SimServer::start();
    let admin = server.admin().await;
    let http = common::http();
    let post = |key: &str, name: &str| {
        http.post(format!("{}/v1/instances", server.url))
            .bearer_auth(admin.token().unwrap())
            .header("idempotency-key", key)
            .json(&serde_json::json!({"name": name, "image": "busybox"}))
            .send()
    };
    let first = post("web-1", "web").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    // Retries, one while the first may still be starting: the first answer, replayed.
    for _ in 0..3 {
        let retry = post("web-1", "web").await.unwrap();
        assert_eq!(retry.status(), 202);
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        let retry: serde_json::Value = retry.json().await.unwrap();
        assert_eq!(retry["instance"]["id"], first["instance"]["id"]);
    }
    let id = first["instance"]["id"].as_str().unwrap();
    admin.wait_instance(id, InstanceStatus::Running, Duration::from_secs(30)).await.unwrap();
    assert_eq!(server.node.instance_ids(), vec![id.to_string()], "one instance on the node");
    let prepares = server.node.calls().iter().filter(|c| c.starts_with("prepare ")).count();
    assert_eq!(prepares, 1, "{:?}", server.node.calls());
    // The same key for another request is refused and makes nothing.
    assert_eq!(post("web-1", "other").await.unwrap().status(), 422);
    assert_eq!(admin.list_instances(&InstanceListParams::default()).await.unwrap().items.len(), 1);
}

/// A tenant's image never stands in for a builtin one or for another project's: builtin
/// names are reserved, and an image name resolves in the project an instance or
/// sandbox is made in (plus the builtins), even for an admin who sees every project.
#[tokio::test]
async fn image_names_resolve_in_the_target_project_and_builtin_names_are_reserved() {
    let server = SimServer::start();
    let admin = server.admin().await;
    for name in ["team-a", "team-b"] {
        admin.create_project(&CreateProjectRequest { name: name.into(), description: None }).await.unwrap();
    }
    let olga = common::user_in(&server.url, &admin, "olga", &[("team-b", Role::Operator)]).await;
    let tiny = || reqwest::Body::from(common::tarball_with("hello", 2));
    // Builtin names are taken, whatever the way an image is made.
    for name in ["busybox", "base", "code-interpreter-v1"] {
        let err = olga.import_image(name, Some("team-b"), tiny()).await.expect_err(name);
        assert_eq!(status(&err), 409, "import {name}: {err}");
        let build = roost_api::images::BuildImageRequest {
            name: name.into(),
            from: "debian:bookworm".into(),
            packages: vec![],
            project: Some("team-b".into()),
        };
        let err = olga.build_image(&build).await.expect_err(name);
        assert_eq!(status(&err), 409, "build {name}: {err}");
        let template = roost_api::sandbox_templates::BuildSandboxTemplateRequest {
            name: name.into(),
            from: Some("busybox".into()),
            run: vec!["true".into()],
            project: Some("team-b".into()),
        };
        let err = olga.build_sandbox_template(&template).await.expect_err(name);
        assert_eq!(status(&err), 409, "template {name}: {err}");
    }
    let images = olga.list_images(Some("team-b")).await.unwrap();
    let named: Vec<_> = images.iter().filter(|i| i.name == "busybox").collect();
    assert_eq!(named.len(), 1, "{images:?}");
    assert!(named[0].project_id.is_none(), "the builtin: {images:?}");

    // team-b's own image is team-b's alone.
    let tool = olga.import_image("tool", Some("team-b"), tiny()).await.unwrap();
    for image in ["tool", tool.id.as_str()] {
        let name = format!("uses-{}", image.len());
        let req = CreateInstanceRequest { project: Some("team-a".into()), start: Some(false), ..busybox(&name) };
        let req = CreateInstanceRequest { image: image.into(), ..req };
        let err = admin.create_instance(&req).await.expect_err("another project's image");
        assert_eq!(status(&err), 400, "{image}: {err}");
        let sandbox = roost_api::sandboxes::CreateSandboxRequest {
            template: Some(image.into()),
            project: Some("team-a".into()),
            ..Default::default()
        };
        let err = admin.create_sandbox(&sandbox).await.expect_err("another project's template");
        assert_eq!(status(&err), 404, "{image}: {err}");
    }
    assert!(!admin.list_images(Some("team-a")).await.unwrap().iter().any(|i| i.name == "tool"));
    // In its own project it works, for its members and for the admin.
    let req = CreateInstanceRequest { project: Some("team-b".into()), start: Some(false), ..busybox("tooled") };
    let req = CreateInstanceRequest { image: "tool".into(), ..req };
    let made = admin.create_instance(&req).await.unwrap();
    assert_eq!(made.instance.image, "tool");
    // And busybox is the builtin everywhere.
    let req = CreateInstanceRequest { project: Some("team-b".into()), start: Some(false), ..busybox("plain") };
    let made = olga.create_instance(&req).await.unwrap();
    let builtin = admin.get_image("busybox").await.unwrap();
    assert!(builtin.project_id.is_none());
    assert_eq!(made.instance.image, "busybox");
}
