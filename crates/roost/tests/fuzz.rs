//! Fuzzes the whole API from its OpenAPI document, as an outside tester would: the
//! checked-in `openapi.json` drives Schemathesis (pinned in `tests/fuzz/requirements.txt`,
//! installed into `target/fuzzenv` by `scripts/install-deps.sh --test`) against a real
//! server, as an admin, with a fixed seed. It fails on any server error (but the 503 of
//! operations that need the compute node, which this server runs without: see
//! `tests/fuzz/hooks.py`) and on any answer the document does not describe: a status,
//! a content type, a header or a body that does not match its schema.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{ServerOptions, TestServer};
use roost_api::tokens::{CreateTokenRequest, Scope};

/// Test cases per operation: the run stays within a few minutes on two cores (about
/// 7,000 requests with the coverage and stateful phases).
const MAX_EXAMPLES: &str = "8";
const SEED: &str = "20260517";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_api_answers_fuzzed_requests_as_its_document_says() {
    let root = workspace_root();
    let schemathesis = root.join("target/fuzzenv/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: run `scripts/install-deps.sh --test` (Debian package python3-venv, \
         then schemathesis from PyPI)",
        schemathesis.display()
    );
    let mut opts = ServerOptions::default();
    // The fuzzer's requests are many; the limits would only turn them into 429s.
    opts.args.extend(["--mutation-rate-per-minute".into(), "1000000".into()]);
    opts.args.extend(["--login-rate-per-minute".into(), "10000".into()]);
    let server = TestServer::start_with(opts);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = rt.block_on(async {
        let admin = server.admin().await;
        let req = CreateTokenRequest { name: "fuzz-9c2k7q".into(), scope: Some(Scope::Admin), ..Default::default() };
        admin.create_token(&req).await.unwrap().secret
    });
    let report = tempfile::tempdir().unwrap();
    let out = Command::new(&schemathesis)
        .arg("run")
        .arg(root.join("openapi.json"))
        .args(["--url", &server.url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "no_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,\
             response_schema_conformance",
        ])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "2", "--no-shrink"])
        .args(["--request-timeout", "30"])
        // An endless stream, and the end of the session the fuzzer logs in with.
        .args(["--exclude-path", "/v1/events", "--exclude-path", "/v1/auth/logout"])
        .args(["--report", "junit", "--report-dir"])
        .arg(report.path())
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", root.join("crates/roost/tests/fuzz"))
        .env("NO_COLOR", "1")
        .current_dir(report.path())
        .output()
        .expect("run schemathesis");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n--- server log (tail):\n{}",
        tail(&server.output())
    );
    assert!(text.contains("generated"), "{text}");
    // The summary (operations, cases, checks) for whoever runs with --nocapture.
    eprintln!("{}", tail(&text));
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}
