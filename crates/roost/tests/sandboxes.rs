//! Sandboxes end to end: a real server with compute, the builtin `base` and
//! `code-interpreter-v1` templates built offline from Debian packages on first use, a key from `roost sandbox key create`, and the official E2B
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
    // The templates are builtin: listed before anything is built, built offline from
    // Debian packages on first use (no `roost image build` by hand).
    let images = stdout(&ok(&["image", "ls", "-o", "json"]));
    let images: serde_json::Value = serde_json::from_str(&images).unwrap();
    for name in ["base", "code-interpreter-v1"] {
        assert!(
            images.as_array().unwrap().iter().any(|i| i["name"] == name && i["source"] == "builtin"),
            "no builtin template {name}: {images}"
        );
    }
    // First use builds each template (the SDK's create has a 30 s request timeout, so the
    // CLI, which waits, builds them): python3 in base, IPython and matplotlib in the other.
    for (template, check) in [
        (
            "base",
            "python3 -c 'print(6*7)' && command -v inotifywait >/dev/null && pip --version >/dev/null && echo tools",
        ),
        ("code-interpreter-v1", "python3 -c 'import IPython, matplotlib, numpy; print(6*7)' && echo tools"),
    ] {
        // The build's progress shows on stderr, as an image build's does; stdout is the id.
        let out = ok(&["sandbox", "create", "--template", template, "--ttl", "2m"]);
        let progress = stderr(&out);
        let building = format!("building template '{template}'");
        assert!(
            progress.lines().filter(|l| l.contains(" running ") && l.contains(&building)).count() >= 2,
            "no progress shown:\n{progress}"
        );
        let id = stdout(&out).trim().to_string();
        assert!(id.starts_with("sbx-") && !id.contains(char::is_whitespace), "the id alone on stdout: {id}");
        let out = ok(&["sandbox", "exec", &id, "--", "bash", "-c", check]);
        assert_eq!(stdout(&out), "42\ntools\n", "{template}");
        ok(&["sandbox", "kill", &id]);
    }
    // A template that does not exist is named in the error.
    let out = server.cli(&["sandbox", "create", "--template", "no-such-template"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("no-such-template"), "{}", stderr(&out));
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
    let ops: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&ok(&["operation", "ls", "--limit", "1000", "-o", "json"]))).unwrap();
    let builds: Vec<_> = ops.iter().filter(|o| o["kind"] == "template.build").collect();
    assert_eq!(builds.len(), 2, "one operation per first build, none for a built template: {ops:?}");
    assert!(builds.iter().all(|o| o["status"] == "succeeded"), "{builds:?}");
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
    // This one and the two that built the templates.
    assert!(rows.iter().any(|u| u["key_id"].is_null() && u["sandboxes"] == 3), "{usage}");
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
    // A URL for a port: python's http.server in the sandbox, reached by curl through
    // Roost's proxy at `8000-<id>.localhost:<e2b port>` (curl resolves *.localhost itself).
    ok(&[
        "sandbox",
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "mkdir -p /tmp/www && echo hello-from-the-sandbox > /tmp/www/index.html && \
         cd /tmp/www && nohup python3 -m http.server 8000 >/dev/null 2>&1 &",
    ]);
    let url = stdout(&ok(&["sandbox", "url", &id, "8000"])).trim().to_string();
    assert!(url.starts_with(&format!("http://8000-{id}.localhost:")) && url.contains("roost_token="), "{url}");
    let curl = |args: &[&str]| {
        let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output();
        out.expect("curl runs (Debian package 'curl')")
    };
    // The page through the URL (the server may need a moment to bind), then again with
    // only the cookie the first visit set.
    let jar = server.data_path().join("sandbox-url-cookies");
    let jar = jar.to_str().unwrap();
    let mut page = String::new();
    for _ in 0..50 {
        page = stdout(&curl(&["-c", jar, &url]));
        if page.contains("hello-from-the-sandbox") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(page.contains("hello-from-the-sandbox"), "through {url}: {page:?}");
    let token = url.split("roost_token=").nth(1).unwrap();
    let base = url.split('?').next().unwrap();
    assert_eq!(token.len(), 32, "{url}");
    let again = curl(&["-b", jar, &format!("{base}index.html")]);
    assert!(stdout(&again).contains("hello-from-the-sandbox"), "with the cookie: {}", stdout(&again));
    // Without the token, or with another port's, the proxy refuses.
    let bare = curl(&["-o", "/dev/null", "-w", "%{http_code}", base]);
    assert_eq!(stdout(&bare), "401");
    let other_port = url.replacen("http://8000-", "http://8001-", 1);
    let wrong = curl(&["-o", "/dev/null", "-w", "%{http_code}", &other_port]);
    assert_eq!(stdout(&wrong), "401");

    // Watching a directory: `roost sandbox files watch` prints changes as they happen.
    ok(&["sandbox", "files", "mkdir", &id, "/tmp/watched"]);
    let mut watch = Command::new(common::roost_bin())
        .args(["sandbox", "files", "watch", &id, "/tmp/watched"])
        .env("ROOST_CONFIG_FILE", server.cli_config_path())
        .env("ROOST_SERVER", &server.url)
        .env_remove("ROOST_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = {
        use std::io::BufRead;
        let out = std::io::BufReader::new(watch.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    // inotifywait prints nothing when its watches are set up: write until an event shows.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l.starts_with("CREATE") && l.ends_with("/tmp/watched/new.txt")) {
        assert!(std::time::Instant::now() < deadline, "no CREATE event: {seen:?}");
        let out = server.cli(&["sandbox", "files", "write", &id, "/tmp/watched/new.txt"], Some("x"), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        ok(&["sandbox", "files", "rm", &id, "/tmp/watched/new.txt"]);
        while let Ok(line) = lines.recv_timeout(std::time::Duration::from_millis(500)) {
            seen.push(line);
        }
    }
    assert!(seen.iter().any(|l| l.starts_with("DELETE") && l.ends_with("/tmp/watched/new.txt")), "{seen:?}");
    let _ = watch.kill();
    let _ = watch.wait();

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
