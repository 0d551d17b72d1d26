//! Per-key limits of the E2B-compatible API and microVM sandboxes, against a real server
//! with compute: a key's concurrent-sandbox and creations-per-minute limits answer 429
//! with Retry-After (raw HTTP, as any E2B client sees them), and `roost sandbox create
//! --type vm` boots the template as a QEMU microVM that runs commands, keeps files,
//! pauses and dies like a container sandbox; a disabled user's key is refused at once.
//! One server and one template for all of it.

mod common;

use std::process::{Command, Output};

use common::{ServerOptions, TestServer, stderr, stdout};
use roost_api::auth::Role;
use roost_api::sandboxes::CreateSandboxKeyRequest;
use roost_api::users::CreateUserRequest;
use serde_json::Value;

const N: u8 = 62;

fn ok(server: &TestServer, args: &[&str]) -> String {
    let out = server.cli(args, None, &[]);
    assert!(out.status.success(), "roost {}: {}\n--- server:\n{}", args.join(" "), stderr(&out), server.output());
    stdout(&out)
}

/// An E2B REST call with the key: (status, headers, body).
fn e2b(url: &str, key: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "120", "-D", "-", "-X", method, "-H", &format!("X-API-KEY: {key}")]);
    if let Some(body) = body {
        cmd.args(["-H", "content-type: application/json", "--data", body]);
    }
    let out: Output = cmd.arg(format!("{url}{path}")).output().expect("curl runs (Debian package 'curl')");
    let text = stdout(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn retry_after(headers: &str) -> u64 {
    let line =
        headers.lines().find(|l| l.starts_with("retry-after:")).unwrap_or_else(|| panic!("no Retry-After: {headers}"));
    line["retry-after:".len()..].trim().parse().unwrap()
}

#[test]
fn key_limits_answer_429_and_vm_sandboxes_run_commands() {
    let server = TestServer::start_with(ServerOptions::compute(N));
    let e2b_url = server.e2b_url.clone().expect("the banner shows the E2B listener");
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A template of the project's, smaller and quicker to build than the builtin `base`,
    // and bootable as a VM.
    ok(&server, &["image", "build", "slim", "--from", "debian:bookworm", "--packages", "bash,procps"]);

    // Limits: one sandbox at a time, three creations a minute.
    let key =
        ok(&server, &["sandbox", "key", "create", "limited", "--max-sandboxes", "1", "--creates-per-minute", "3"])
            .trim()
            .to_string();
    let create = r#"{"templateID":"slim","timeout":120}"#;
    let mut created = Vec::new();
    let (status, _, body) = e2b(&e2b_url, &key, "POST", "/sandboxes", Some(create));
    assert_eq!(status, 201, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    created.push(first["sandboxID"].as_str().unwrap().to_string());
    // A second while the first lives: over the concurrency limit.
    let (status, headers, body) = e2b(&e2b_url, &key, "POST", "/sandboxes", Some(create));
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("1 sandboxes at once"), "{body}");
    assert!(retry_after(&headers) >= 1, "{headers}");
    // Killing it frees the slot; two more creations fit in the minute, the fourth does not.
    for _ in 0..2 {
        let (status, _, body) = e2b(&e2b_url, &key, "DELETE", &format!("/sandboxes/{}", created.last().unwrap()), None);
        assert_eq!(status, 204, "{body}");
        let (status, _, body) = e2b(&e2b_url, &key, "POST", "/sandboxes", Some(create));
        assert_eq!(status, 201, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        created.push(v["sandboxID"].as_str().unwrap().to_string());
    }
    let (status, _, body) = e2b(&e2b_url, &key, "DELETE", &format!("/sandboxes/{}", created.last().unwrap()), None);
    assert_eq!(status, 204, "{body}");
    let (status, headers, body) = e2b(&e2b_url, &key, "POST", "/sandboxes", Some(create));
    assert_eq!(status, 429, "over the per-minute limit: {body}");
    let wait = retry_after(&headers);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // The refused creations started nothing; the three that ran are in the key's usage.
    let keys: Value = serde_json::from_str(&ok(&server, &["sandbox", "key", "ls", "-o", "json"])).unwrap();
    let key_id =
        keys.as_array().unwrap().iter().find(|k| k["name"] == "limited").unwrap()["id"].as_str().unwrap().to_string();
    let usage: Value =
        serde_json::from_str(&ok(&server, &["sandbox", "usage", "--key", &key_id, "-o", "json"])).unwrap();
    assert_eq!(usage[0]["sandboxes"], 3, "{usage}");
    let live: Value = serde_json::from_str(&ok(&server, &["sandbox", "ls", "-o", "json"])).unwrap();
    assert_eq!(live, serde_json::json!([]), "nothing left running");

    // A key acts as its creator: once an admin disables them, their key is refused at
    // once (the key cache forgets them), though it was used and cached a moment before.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bobs_key = rt.block_on(async {
        let admin = server.admin().await;
        let req = CreateUserRequest {
            name: "bob".into(),
            role: Some(Role::Operator),
            password: Some("bob-password".into()),
            projects: Some(vec!["default".into()]),
            ..Default::default()
        };
        admin.create_user(&req).await.unwrap();
        let session = server.anonymous().login("bob", "bob-password").await.unwrap();
        let bob = roost_client::Client::new(&server.url, Some(session.token)).unwrap();
        let req = CreateSandboxKeyRequest { name: "bobs".into(), ..Default::default() };
        bob.create_sandbox_key(&req).await.unwrap().secret
    });
    let (status, _, body) = e2b(&e2b_url, &bobs_key, "GET", "/sandboxes", None);
    assert_eq!(status, 200, "{body}");
    rt.block_on(async { server.admin().await.set_user_disabled("bob", true).await.unwrap() });
    let (status, _, body) = e2b(&e2b_url, &bobs_key, "GET", "/sandboxes", None);
    assert_eq!(status, 401, "a disabled user's key: {body}");

    // A microVM sandbox: the same template, its own kernel.
    let id =
        ok(&server, &["sandbox", "create", "--type", "vm", "--template", "slim", "--ttl", "5m"]).trim().to_string();
    assert!(id.starts_with("sbx-"), "{id}");
    let shown: Value = serde_json::from_str(&ok(&server, &["sandbox", "show", &id, "-o", "json"])).unwrap();
    assert_eq!(shown["type"], "vm", "{shown}");
    let instance: Value =
        serde_json::from_str(&ok(&server, &["instance", "show", shown["instance_id"].as_str().unwrap(), "-o", "json"]))
            .unwrap();
    assert_eq!(instance["type"], "vm", "{instance}");
    let listed = ok(&server, &["sandbox", "ls"]);
    assert!(listed.contains(&id) && listed.contains("vm"), "{listed}");
    // It runs commands in the guest: its kernel took the VM's command line.
    let out = ok(&server, &["sandbox", "exec", &id, "--", "sh", "-c", "cat /proc/cmdline; echo guest-ok"]);
    assert!(out.contains("console=ttyS0") && out.contains("guest-ok"), "{out}");
    let out = server.cli(&["sandbox", "exec", &id, "--", "sh", "-c", "exit 9"], None, &[]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    // Files through the guest's own tools.
    let out = server.cli(&["sandbox", "files", "write", &id, "/tmp/vm/note.txt"], Some("inside the vm\n"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ok(&server, &["sandbox", "files", "read", &id, "/tmp/vm/note.txt"]), "inside the vm\n");
    // Pause (the guest's vCPUs stop) and resume; the file is still there.
    ok(&server, &["sandbox", "pause", &id]);
    let shown: Value = serde_json::from_str(&ok(&server, &["sandbox", "show", &id, "-o", "json"])).unwrap();
    assert_eq!(shown["state"], "paused", "{shown}");
    ok(&server, &["sandbox", "resume", &id]);
    assert_eq!(ok(&server, &["sandbox", "files", "read", &id, "/tmp/vm/note.txt"]), "inside the vm\n");
    ok(&server, &["sandbox", "kill", &id]);
    // The instance is deleted in the background (kill answers at once, as E2B's does).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let instances: Value = serde_json::from_str(&ok(&server, &["instance", "ls", "-o", "json"])).unwrap();
        if instances == serde_json::json!([]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the VM outlived its sandbox: {instances}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let instance_id = instance["id"].as_str().unwrap();
    let qemu = Command::new("pgrep").args(["-f", instance_id]).output().expect("pgrep runs (Debian package 'procps')");
    assert!(stdout(&qemu).trim().is_empty(), "no QEMU of {instance_id} left: {}", stdout(&qemu));
    // A bad type is refused by name.
    let out = server.cli(&["sandbox", "create", "--type", "lxc"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("lxc"), "{}", stderr(&out));

    drop(server);
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(N));
}
