//! Sandboxes end to end: a real server with compute, the `base` template built offline
//! from Debian packages, a key from `roost sandbox key create`, and the official E2B
//! Python SDK (pinned, in `target/e2benv`, installed by `scripts/install-deps.sh --test`)
//! running `tests/e2b/sdk_suite.py` against the E2B listener unmodified — only
//! `E2B_API_URL`, `E2B_SANDBOX_URL` and `E2B_API_KEY` are set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ServerOptions, TestServer, stderr, stdout};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn e2b_python() -> PathBuf {
    let py = workspace_root().join("target/e2benv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: a virtualenv with the e2b SDK (Debian package 'python3-venv', e2b from PyPI); \
         run `scripts/install-deps.sh --test`, which `make test` does",
        py.display()
    );
    let ok = Command::new(&py).args(["-c", "import e2b, e2b_code_interpreter"]).status().is_ok_and(|s| s.success());
    assert!(ok, "the e2b SDK is not importable in target/e2benv: run `scripts/install-deps.sh --test`");
    py
}

#[test]
fn the_official_e2b_python_sdk_runs_unmodified_against_roost() {
    let python = e2b_python();
    let server = TestServer::start_with(ServerOptions::compute(50));
    let e2b = server.e2b_url.clone().expect("the banner shows the E2B listener");
    let ok = |args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}", args.join(" "), stderr(&out));
        out
    };
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The template: Debian with bash and python3, built offline from packages.
    ok(&["image", "build", "base", "--from", "debian:bookworm", "--packages", "bash,python3,procps,findutils"]);
    // The code interpreter's: python3 with IPython and matplotlib; Roost's runner is copied in.
    ok(&[
        "image",
        "build",
        "code-interpreter-v1",
        "--from",
        "debian:bookworm",
        "--packages",
        "bash,python3,python3-ipython,python3-matplotlib,procps,findutils",
    ]);
    let out = ok(&["sandbox", "key", "create", "sdk-suite"]);
    let key = stdout(&out).trim().to_string();
    assert!(
        key.len() == 44 && key.starts_with("e2b_") && key[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "key shape: {key}"
    );
    let listed = stdout(&ok(&["sandbox", "key", "ls", "-o", "json"]));
    assert!(listed.contains("sdk-suite") && !listed.contains(&key), "{listed}");

    for suite in ["sdk_suite.py", "code_interpreter_suite.py"] {
        let out = Command::new(&python)
            .arg(workspace_root().join("crates/roost/tests/e2b").join(suite))
            .env("E2B_API_URL", &e2b)
            .env("E2B_SANDBOX_URL", &e2b)
            .env("E2B_API_KEY", &key)
            .env("TEMPLATE", "base")
            .env_remove("E2B_DOMAIN")
            .env_remove("E2B_DEBUG")
            .output()
            .unwrap();
        let printed = format!("{}\n{}", stdout(&out), stderr(&out));
        assert!(
            out.status.success() && printed.contains("all ok"),
            "{suite} failed:\n{printed}\n--- server:\n{}",
            server.output()
        );
    }

    // The official JS SDK: its folder under target/ (install-deps --test), our script in it.
    let js = workspace_root().join("target/e2b-js");
    assert!(
        js.join("node_modules/e2b/package.json").exists(),
        "{} has no e2b JS SDK: run `scripts/install-deps.sh --test` (Node.js and npm needed)",
        js.display()
    );
    std::fs::copy(workspace_root().join("crates/roost/tests/e2b/js/suite.mjs"), js.join("suite.mjs")).unwrap();
    let out = Command::new("node")
        .arg(js.join("suite.mjs"))
        .env("E2B_API_URL", &e2b)
        .env("E2B_SANDBOX_URL", &e2b)
        .env("E2B_API_KEY", &key)
        .env("TEMPLATE", "base")
        .env_remove("E2B_DOMAIN")
        .env_remove("E2B_DEBUG")
        .output()
        .expect("node (Node.js) runs");
    let printed = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && printed.contains("all ok"),
        "the JS SDK suite failed:\n{printed}\n--- server:\n{}",
        server.output()
    );

    // Roost's own CLI: create, exec (exit code and output), ls, pause/resume, timeout,
    // usage, kill.
    let id = stdout(&ok(&["sandbox", "create", "--ttl", "5m", "--env", "GREETING=hi", "--metadata", "owner=cli"]))
        .trim()
        .to_string();
    assert!(id.starts_with("sbx-"), "{id}");
    let out = ok(&["sandbox", "exec", &id, "--", "sh", "-c", "echo $GREETING; echo err >&2"]);
    assert_eq!(stdout(&out), "hi\n");
    assert!(stderr(&out).contains("err"), "{}", stderr(&out));
    let out = server.cli(&["sandbox", "exec", &id, "--", "sh", "-c", "exit 7"], None, &[]);
    assert_eq!(out.status.code(), Some(7));
    let listed = stdout(&ok(&["sandbox", "ls"]));
    assert!(listed.contains(&id) && listed.contains("running"), "{listed}");
    ok(&["sandbox", "pause", &id]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&ok(&["sandbox", "show", &id, "-o", "json"]))).unwrap();
    assert_eq!(shown["state"], "paused");
    assert_eq!(shown["metadata"]["owner"], "cli");
    ok(&["sandbox", "resume", &id]);
    ok(&["sandbox", "timeout", &id, "10m"]);
    let later: serde_json::Value = serde_json::from_str(&stdout(&ok(&["sandbox", "show", &id, "-o", "json"]))).unwrap();
    assert!(later["expires_at"].as_str() > shown["expires_at"].as_str(), "{later}");
    let usage: serde_json::Value = serde_json::from_str(&stdout(&ok(&["sandbox", "usage", "-o", "json"]))).unwrap();
    let rows = usage.as_array().unwrap();
    assert!(rows.iter().any(|u| u["key_id"].is_string() && u["commands"].as_u64() > Some(10)), "{usage}");
    assert!(rows.iter().any(|u| u["key_id"].is_null() && u["sandboxes"] == 1), "{usage}");
    // Files, through the sandbox's own tools.
    let out = server.cli(&["sandbox", "files", "write", &id, "/tmp/cli/a.txt"], Some("from the cli\n"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&ok(&["sandbox", "files", "read", &id, "/tmp/cli/a.txt"])), "from the cli\n");
    ok(&["sandbox", "files", "mkdir", &id, "/tmp/cli/d"]);
    ok(&["sandbox", "files", "mv", &id, "/tmp/cli/a.txt", "/tmp/cli/d/b.txt"]);
    assert!(stdout(&ok(&["sandbox", "files", "ls", &id, "/tmp/cli/d"])).contains("b.txt"));
    ok(&["sandbox", "files", "rm", &id, "/tmp/cli"]);
    let out = server.cli(&["sandbox", "files", "read", &id, "/tmp/cli/d/b.txt"], None, &[]);
    assert!(!out.status.success(), "read a removed file");
    ok(&["sandbox", "kill", &id]);
    assert!(!stdout(&ok(&["sandbox", "ls"])).contains(&id));

    // Every sandbox is gone: killed, expired, nothing left of their instances.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = ok(&["instance", "ls", "-o", "json"]);
        let instances: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        if instances.as_array().map(Vec::len) == Some(0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "instances left: {instances}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // Mutations are audited.
    let audit = stdout(&ok(&["audit", "ls", "-o", "json", "--limit", "500"]));
    for action in
        ["sandbox_key.create", "sandbox.create", "sandbox.kill", "sandbox.expire", "sandbox.pause", "sandbox.resume"]
    {
        assert!(audit.contains(action), "no {action} in the audit log");
    }
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(50));
}
