//! The sandbox warm pool (`--sandbox-pool N`) end to end: a real server with compute, a
//! small `slim` template built offline, sandboxes created through Roost's CLI (the same control
//! path the E2B API takes). A pooled sandbox is handed out thawed and clean, to exactly
//! the caller's project; pools are per project; the pool refills; a create with env vars
//! starts cold; and a server without a pool (0, the default) still creates sandboxes.
//! No timings are asserted: waits have deadlines only so a broken pool fails.

mod common;

use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer, stderr, stdout};
use serde_json::Value;

fn build_slim(server: &TestServer) {
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out =
        server.cli(&["image", "build", "slim", "--from", "debian:bookworm", "--packages", "bash,procps"], None, &[]);
    assert!(out.status.success(), "image build: {}", stderr(&out));
}

fn json(server: &TestServer, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = server.cli(&all, None, env);
    assert!(out.status.success(), "roost {}: {}\n--- server:\n{}", args.join(" "), stderr(&out), server.output());
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The pool row of a project (by id) and template.
fn pool_of(pools: &Value, project_id: &str) -> Option<Value> {
    pools.as_array().unwrap().iter().find(|p| p["project_id"] == project_id && p["template"] == "slim").cloned()
}

/// Waits until the project's `slim` pool holds `ready` frozen sandboxes.
fn wait_ready(server: &TestServer, project_id: &str, ready: u64, env: &[(&str, &str)]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let pools = json(server, &["sandbox", "pool"], env);
        if let Some(p) = pool_of(&pools, project_id)
            && p["ready"].as_u64() == Some(ready)
        {
            return p;
        }
        assert!(Instant::now() < deadline, "the pool of {project_id} never held {ready}: {pools}\n{}", server.output());
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_warm_pool_hands_out_frozen_sandboxes_to_the_caller_and_refills() {
    let mut options = ServerOptions::compute(60);
    options.args.extend(["--sandbox-pool".into(), "2".into()]);
    let server = TestServer::start_with(options);
    build_slim(&server);
    let ok = |args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]| {
        let out = server.cli(args, stdin, env);
        assert!(out.status.success(), "roost {}: {}\n--- server:\n{}", args.join(" "), stderr(&out), server.output());
        stdout(&out)
    };
    // bob works in team-b only.
    ok(&["project", "create", "team-b"], None, &[]);
    // Images (templates) are per project: team-b gets its own `slim`.
    let packages = ["image", "build", "slim", "--from", "debian:bookworm", "--packages", "bash,procps"];
    ok(&packages, None, &[("ROOST_PROJECT", "team-b")]);
    ok(
        &["user", "create", "bob", "--role", "operator", "--join", "team-b", "--password-stdin"],
        Some("bob-password\n"),
        &[],
    );
    ok(&["project", "add-member", "team-b", "bob", "--role", "operator"], None, &[]);
    let bob_config = server.cli_home.path().join("bob.toml");
    let bob_env = [("ROOST_CONFIG_FILE", bob_config.to_str().unwrap()), ("ROOST_PROJECT", "team-b")];
    ok(&["login", "-u", "bob", "--password-stdin"], Some("bob-password\n"), &bob_env);
    let default_id = json(&server, &["project", "show", "default"], &[])["id"].as_str().unwrap().to_string();
    let team_b = json(&server, &["project", "show", "team-b"], &[])["id"].as_str().unwrap().to_string();

    // Nothing is pooled before a project asks for sandboxes.
    assert_eq!(json(&server, &["sandbox", "pool"], &[]), serde_json::json!([]));

    // The first create in a project is cold and starts the fill.
    let first = ok(&["sandbox", "create", "--template", "slim", "--metadata", "n=1"], None, &[]).trim().to_string();
    assert!(first.starts_with("sbx-"), "{first}");
    ok(&["sandbox", "files", "write", &first, "/tmp/secret.txt"], Some("the first sandbox's\n"), &[]);
    let filled = wait_ready(&server, &default_id, 2, &[]);
    assert_eq!(filled["size"], 2);
    assert_eq!(filled["hits"], 0);
    assert_eq!(filled["misses"], 1);
    // Pooled instances are frozen, and no one's sandboxes until handed out.
    let instances = json(&server, &["instance", "ls"], &[]);
    let paused: Vec<String> = instances
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "paused")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paused.len(), 2, "{instances}");
    let listed = json(&server, &["sandbox", "ls"], &[]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "pooled sandboxes are not listed: {listed}");

    // bob's create in team-b does not take from the default project's pool.
    let bobs =
        ok(&["sandbox", "create", "--template", "slim", "--metadata", "who=bob"], None, &bob_env).trim().to_string();
    let shown = json(&server, &["sandbox", "show", &bobs], &bob_env);
    assert_eq!(shown["project_id"], team_b.as_str());
    assert!(!paused.contains(&shown["instance_id"].as_str().unwrap().to_string()), "{shown}");
    let pools = json(&server, &["sandbox", "pool"], &[]);
    assert_eq!(pool_of(&pools, &default_id).unwrap()["hits"], 0, "{pools}");
    assert_eq!(pool_of(&pools, &team_b).unwrap()["misses"], 1, "{pools}");

    // The next create in the default project is served from its pool: thawed, with
    // the caller's metadata and TTL, clean (nothing of the other sandbox), running.
    let pooled = ok(&["sandbox", "create", "--template", "slim", "--metadata", "n=3", "--ttl", "7m"], None, &[])
        .trim()
        .to_string();
    let shown = json(&server, &["sandbox", "show", &pooled], &[]);
    assert!(paused.contains(&shown["instance_id"].as_str().unwrap().to_string()), "not from the pool: {shown}");
    assert_eq!(shown["state"], "running");
    assert_eq!(shown["project_id"], default_id.as_str());
    assert_eq!(shown["metadata"]["n"], "3");
    let instance = json(&server, &["instance", "show", shown["instance_id"].as_str().unwrap()], &[]);
    assert_eq!(instance["status"], "running", "{instance}");
    assert_eq!(ok(&["sandbox", "exec", &pooled, "--", "echo", "thawed"], None, &[]), "thawed\n");
    let out = server.cli(&["sandbox", "exec", &pooled, "--", "cat", "/tmp/secret.txt"], None, &[]);
    assert!(!out.status.success(), "a pooled sandbox sees another's file: {}", stdout(&out));
    let pools = json(&server, &["sandbox", "pool"], &[]);
    assert_eq!(pool_of(&pools, &default_id).unwrap()["hits"], 1, "{pools}");

    // bob cannot see it, nor the default project's pool.
    let out = server.cli(&["sandbox", "show", &pooled], None, &bob_env);
    assert!(!out.status.success(), "bob sees the admin's sandbox");
    let bob_pools = json(&server, &["sandbox", "pool"], &bob_env);
    assert!(pool_of(&bob_pools, &default_id).is_none(), "{bob_pools}");

    // The pool refills in the background, and team-b's fills too: bob's next create is
    // a pooled one, his.
    wait_ready(&server, &default_id, 2, &[]);
    wait_ready(&server, &team_b, 2, &bob_env);
    let bobs2 = ok(&["sandbox", "create", "--template", "slim"], None, &bob_env).trim().to_string();
    let shown = json(&server, &["sandbox", "show", &bobs2], &bob_env);
    assert_eq!(shown["project_id"], team_b.as_str());
    let pools = json(&server, &["sandbox", "pool"], &bob_env);
    assert_eq!(pool_of(&pools, &team_b).unwrap()["hits"], 1, "{pools}");
    assert_eq!(ok(&["sandbox", "exec", &bobs2, "--", "id", "-u"], None, &bob_env), "0\n");
    // bob's pooled sandbox acts as bob: he can pause, resume and kill it.
    ok(&["sandbox", "pause", &bobs2], None, &bob_env);
    ok(&["sandbox", "resume", &bobs2], None, &bob_env);

    // Env vars are fixed when an instance starts: such a create is cold, and gets them.
    let with_env =
        ok(&["sandbox", "create", "--template", "slim", "--env", "GREETING=cold"], None, &[]).trim().to_string();
    assert_eq!(ok(&["sandbox", "exec", &with_env, "--", "sh", "-c", "echo $GREETING"], None, &[]), "cold\n");
    let pools = json(&server, &["sandbox", "pool"], &[]);
    assert_eq!(pool_of(&pools, &default_id).unwrap()["misses"], 2, "{pools}");

    for (id, env) in
        [(&first, &[][..]), (&pooled, &[][..]), (&with_env, &[][..]), (&bobs, &bob_env[..]), (&bobs2, &bob_env[..])]
    {
        ok(&["sandbox", "kill", id], None, env);
    }
    assert_eq!(json(&server, &["sandbox", "ls"], &[]), serde_json::json!([]));
    let audit = ok(&["audit", "ls", "-o", "json", "--limit", "500"], None, &[]);
    assert!(audit.contains("sandbox.create") && audit.contains("sandbox.kill"), "{audit}");
    drop(server);
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(60));
}

#[test]
fn without_a_pool_every_create_is_cold_and_works() {
    let server = TestServer::start_with(ServerOptions::compute(61));
    build_slim(&server);
    let out = server.cli(&["sandbox", "create", "--template", "slim"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let out = server.cli(&["sandbox", "exec", &id, "--", "echo", "cold"], None, &[]);
    assert_eq!(stdout(&out), "cold\n", "{}", stderr(&out));
    assert_eq!(json(&server, &["sandbox", "pool"], &[]), serde_json::json!([]));
    let instances = json(&server, &["instance", "ls"], &[]);
    assert_eq!(instances.as_array().unwrap().len(), 1, "nothing pre-created: {instances}");
    let out = server.cli(&["sandbox", "kill", &id], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(server);
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(61));
}

/// The pool lives in memory: after a restart its frozen instances belong to nobody. The
/// new server removes them (instance rows, runc containers, bundles), keeps the sandboxes
/// that were handed out, and fills a pool of its own on the next create.
#[test]
fn a_restarted_server_removes_the_pool_of_its_previous_run() {
    let pooled = || {
        let mut options = ServerOptions::compute(76);
        options.args.extend(["--sandbox-pool".into(), "2".into()]);
        options
    };
    let mut server = TestServer::start_with(pooled());
    build_slim(&server);
    let ok = |server: &TestServer, args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}\n--- server:\n{}", args.join(" "), stderr(&out), server.output());
        stdout(&out)
    };
    let kept = ok(&server, &["sandbox", "create", "--template", "slim"]).trim().to_string();
    let default_id = json(&server, &["project", "show", "default"], &[])["id"].as_str().unwrap().to_string();
    wait_ready(&server, &default_id, 2, &[]);
    let paused: Vec<String> = json(&server, &["instance", "ls"], &[])
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "paused")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paused.len(), 2);

    assert!(server.terminate().success());
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    let runc_root = roost_node::drivers::container::ContainerConfig::for_data_dir(data_dir.path()).runc_root;
    for id in &paused {
        assert!(runc_root.join(id).exists(), "{id} outlived the server, frozen");
    }
    let again = TestServer::start_in(data_dir, pooled());
    let out = again.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let instances = json(&again, &["instance", "ls"], &[]);
        let left: Vec<&Value> =
            instances.as_array().unwrap().iter().filter(|i| paused.iter().any(|p| i["id"] == p.as_str())).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "pooled instances of the earlier run remain: {left:?}\n{}", again.output());
        std::thread::sleep(Duration::from_millis(300));
    }
    for id in &paused {
        assert!(!runc_root.join(id).exists(), "the runc container of {id} remains");
        assert!(!again.data_path().join("instances").join(id).exists(), "the bundle of {id} remains");
    }
    // The handed-out sandbox was never the pool's: it still runs, and answers.
    assert_eq!(ok(&again, &["sandbox", "exec", &kept, "--", "echo", "kept"]), "kept\n");
    let audit = ok(&again, &["audit", "ls", "-o", "json", "--limit", "500"]);
    assert!(audit.contains("sandbox-pool"), "the removal is audited: {audit}");
    // The new server's pool fills again from its first create.
    let next = ok(&again, &["sandbox", "create", "--template", "slim"]).trim().to_string();
    wait_ready(&again, &default_id, 2, &[]);
    for id in [&kept, &next] {
        ok(&again, &["sandbox", "kill", id]);
    }
    drop(again);
    drop(server);
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(76));
}
