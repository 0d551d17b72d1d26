//! envd beyond the JSON codec, end to end: a real server with compute, the builtin
//! `base` template (built once, offline, for this file's one server), and the official
//! E2B SDKs running `tests/e2b/envd_suite.py` (a PTY session through the async Python
//! SDK, and the binary codec through the SDK's generated messages with connectrpc's
//! `proto_binary_codec`) and `tests/e2b/js/envd_suite.mjs` (a PTY session through the JS
//! SDK). Only `E2B_API_URL`, `E2B_SANDBOX_URL` and `E2B_API_KEY` are set for them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ServerOptions, TestServer, stderr, stdout};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

#[test]
fn pty_sessions_and_the_binary_codec_through_the_official_sdks() {
    let python = workspace_root().join("target/e2benv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: a virtualenv with the e2b SDK (Debian package 'python3-venv', e2b from PyPI); \
         run `scripts/install-deps.sh --test`",
        python.display()
    );
    let js = workspace_root().join("target/e2b-js");
    assert!(
        js.join("node_modules/e2b/package.json").exists(),
        "{} has no e2b JS SDK: run `scripts/install-deps.sh --test` (Node.js and npm needed)",
        js.display()
    );
    let server = TestServer::start_with(ServerOptions::compute(74));
    let e2b = server.e2b_url.clone().expect("the banner shows the E2B listener");
    let ok = |args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}", args.join(" "), stderr(&out));
        out
    };
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The CLI waits while the template is built on first use (the SDK's create would
    // time out); the suites then share the built image.
    let id = stdout(&ok(&["sandbox", "create", "--template", "base", "--ttl", "2m"])).trim().to_string();
    ok(&["sandbox", "kill", &id]);
    let key = stdout(&ok(&["sandbox", "key", "create", "envd-suite"])).trim().to_string();

    let run = |what: &str, mut cmd: Command| {
        let out = cmd
            .env("E2B_API_URL", &e2b)
            .env("E2B_SANDBOX_URL", &e2b)
            .env("E2B_API_KEY", &key)
            .env("TEMPLATE", "base")
            .env_remove("E2B_DOMAIN")
            .env_remove("E2B_DEBUG")
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let printed = format!("{}\n{}", stdout(&out), stderr(&out));
        assert!(
            out.status.success() && printed.contains("all ok"),
            "{what} failed:\n{printed}\n--- server:\n{}",
            server.output()
        );
    };
    let mut py = Command::new(&python);
    py.arg(workspace_root().join("crates/roost/tests/e2b/envd_suite.py"));
    run("envd_suite.py", py);

    // The JS suite runs from a folder of its own whose node_modules is the SDK's (the
    // SDK's folder is shared and stays as installed).
    let dir = server.data_path().join("envd-js");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(js.join("node_modules"), dir.join("node_modules")).unwrap();
    std::fs::copy(workspace_root().join("crates/roost/tests/e2b/js/envd_suite.mjs"), dir.join("envd_suite.mjs"))
        .unwrap();
    let mut node = Command::new("node");
    node.arg(dir.join("envd_suite.mjs"));
    run("the JS envd suite (node, Node.js)", node);

    // The access token's secret is the server's, kept beside the other secrets.
    let secret = server.data_path().join("secrets/envd-tokens.key");
    let meta = std::fs::metadata(&secret).unwrap_or_else(|e| panic!("{}: {e}", secret.display()));
    assert_eq!(meta.len(), 32);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // Every sandbox is gone once killed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let sandboxes = stdout(&ok(&["sandbox", "ls", "-o", "json"]));
        let sandboxes: serde_json::Value = serde_json::from_str(&sandboxes).unwrap();
        if sandboxes.as_array().map(Vec::len) == Some(0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sandboxes left: {sandboxes}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(74));
}
