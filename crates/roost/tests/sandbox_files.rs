//! Sandbox files never pass through the server's memory whole, end to end on a real
//! server with compute, through Roost's `/v1/sandboxes/{id}/files` and E2B's `/files`:
//! reading a device such as `/dev/zero` is refused with a clear error and the server
//! carries on; a 300 MiB upload and its download stream (the server's peak resident
//! memory, `VmHWM`, grows by far less than the file: a size, not a time).

mod common;

use std::process::{Command, Output};

use common::{ServerOptions, TestServer, stderr, stdout};
use serde_json::Value;

const N: u8 = 38;
const BIG: u64 = 300 << 20;

fn ok(server: &TestServer, args: &[&str]) -> String {
    let out = server.cli(args, None, &[]);
    assert!(out.status.success(), "roost {}: {}\n--- server:\n{}", args.join(" "), stderr(&out), server.output());
    stdout(&out)
}

/// curl with `args`: (status, body). `-o` in `args` sends the body to a file.
fn curl(args: &[&str]) -> (u16, String) {
    let out: Output = Command::new("curl")
        .args(["-sS", "--max-time", "600", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs (Debian package 'curl')");
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A line of `/proc/<pid>/status` in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// How far the server's peak resident memory rose above its current size while `f` ran.
fn peak_growth_mib(pid: u32, f: impl FnOnce()) -> u64 {
    // Resets VmHWM to the current resident size (written by the owner, as root here).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kib(pid, "VmRSS:");
    f();
    status_kib(pid, "VmHWM:").saturating_sub(before) >> 10
}

#[test]
fn devices_are_refused_and_big_files_stream_through_both_apis() {
    let server = TestServer::start_with(ServerOptions::compute(N));
    let pid = server.child.id();
    let e2b = server.e2b_url.clone().expect("the banner shows the E2B listener");
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token =
        tokio::runtime::Runtime::new().unwrap().block_on(async { server.admin().await.token().unwrap().to_string() });
    let bearer = format!("Authorization: Bearer {token}");
    let key = ok(&server, &["sandbox", "key", "create", "files"]).trim().to_string();
    let api_key = format!("X-API-KEY: {key}");
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &api_key,
        "-H",
        "content-type: application/json",
        "--data",
        r#"{"templateID":"busybox","timeout":600}"#,
        &format!("{e2b}/sandboxes"),
    ]);
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["sandboxID"].as_str().unwrap().to_string();
    let v1 = |path: &str| format!("{}/v1/sandboxes/{id}/files?path={path}", server.url);
    let envd = |path: &str| format!("{e2b}/files?path={path}");
    let sandbox_header = format!("E2b-Sandbox-Id: {id}");

    // A device is refused at once with a reason, on both APIs; the server is fine after.
    let (code, body) = curl(&["-H", &bearer, &v1("/dev/zero")]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a regular file"), "{body}");
    let (code, body) = curl(&["-H", &api_key, "-H", &sandbox_header, &envd("/dev/zero")]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a regular file"), "{body}");
    // A link to one too (the test follows it inside the sandbox).
    ok(&server, &["sandbox", "exec", &id, "--", "ln", "-s", "/dev/urandom", "/tmp/random"]);
    let (code, body) = curl(&["-H", &bearer, &v1("/tmp/random")]);
    assert_eq!(code, 400, "{body}");
    let (code, _) = curl(&["-H", &bearer, &v1("/no/such/file")]);
    assert_eq!(code, 404);
    let (code, body) = curl(&[&format!("{}/health/live", server.url)]);
    assert_eq!(code, 200, "{body}");

    // 300 MiB up and down through Roost's API: streamed both ways.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).unwrap();
        let block: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for _ in 0..BIG >> 20 {
            f.write_all(&block).unwrap();
        }
    }
    let upload = format!("@{}", big.display());
    let growth = peak_growth_mib(pid, || {
        let (code, body) = curl(&["-X", "PUT", "-H", &bearer, "--data-binary", &upload, &v1("/tmp/big")]);
        assert_eq!(code, 204, "{body}");
    });
    assert!(growth < 100, "the server's peak memory grew by {growth} MiB for a 300 MiB upload");
    let size = ok(&server, &["sandbox", "exec", &id, "--", "sh", "-c", "wc -c < /tmp/big"]);
    assert_eq!(size.trim(), BIG.to_string());
    let back = dir.path().join("back");
    let growth = peak_growth_mib(pid, || {
        let (code, _) = curl(&["-H", &bearer, "-o", back.to_str().unwrap(), &v1("/tmp/big")]);
        assert_eq!(code, 200);
    });
    assert!(growth < 100, "the server's peak memory grew by {growth} MiB for a 300 MiB download");
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&big).unwrap(), "the download is the upload");

    // And through E2B's `/files` (the body, and a multipart form as the SDKs send it).
    let growth = peak_growth_mib(pid, || {
        let (code, body) = curl(&[
            "-X",
            "POST",
            "-H",
            &api_key,
            "-H",
            &sandbox_header,
            "-H",
            "content-type: application/octet-stream",
            "--data-binary",
            &upload,
            &envd("/tmp/e2b-big"),
        ]);
        assert_eq!(code, 200, "{body}");
        let form = format!("file=@{};filename=form-big", big.display());
        let (code, body) = curl(&["-H", &api_key, "-H", &sandbox_header, "-F", &form, &envd("/tmp/form-big")]);
        assert_eq!(code, 200, "{body}");
    });
    assert!(growth < 100, "the server's peak memory grew by {growth} MiB for 300 MiB uploads through E2B");
    let sums = ok(&server, &["sandbox", "exec", &id, "--", "sh", "-c", "md5sum /tmp/big /tmp/e2b-big /tmp/form-big"]);
    let sums: Vec<&str> = sums.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert!(sums.len() == 3 && sums.iter().all(|s| *s == sums[0]), "{sums:?}");
    // No temporary upload files are left beside them.
    let ls = ok(&server, &["sandbox", "exec", &id, "--", "ls", "-a", "/tmp"]);
    assert!(!ls.contains("roost-upload"), "{ls}");

    ok(&server, &["sandbox", "kill", &id]);
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(N));
}
