//! Sandboxes end to end: a real server with compute, the builtin `base` and
//! `code-interpreter-v1` templates built offline from Debian packages on first use, a key from `roost sandbox key create`, and the official E2B
//! Python SDK (pinned, in `target/e2benv`, installed by `scripts/install-deps.sh --test`)
//! running `tests/e2b/sdk_suite.py` against the E2B listener unmodified — only
//! `E2B_API_URL`, `E2B_SANDBOX_URL` and `E2B_API_KEY` are set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ServerOptions, TestServer, stderr, stdout};
use roost_api::sandboxes::{CreateSandboxRequest, StartSandboxProcessRequest};

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

/// A small HTTP server on the host's loopback that counts the requests it gets: what a
/// redirect from a sandbox would make Roost fetch if its proxy followed redirects.
fn host_bait() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nhost's secret");
        }
    });
    (port, hits)
}

/// The port proxy hands a sandbox's redirect back to the client as it is: Roost never
/// fetches the `Location` itself (a sandbox pointing it at the host's loopback, or at a
/// metadata service, reaches nothing), and it connects only to the sandbox's address.
#[test]
fn the_port_proxy_passes_redirects_back_and_never_follows_them() {
    let server = TestServer::start_with(ServerOptions::compute(41));
    let e2b = server.e2b_url.clone().expect("the banner shows the E2B listener");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (bait_port, hits) = host_bait();
    rt.block_on(async {
        let admin = server.admin().await;
        let req = CreateSandboxRequest {
            template: Some("busybox".into()),
            ttl_secs: Some(300),
            ..Default::default()
        };
        let sandbox = admin.create_sandbox(&req).await.unwrap();
        let id = sandbox.id.clone();
        // BusyBox httpd runs a CGI script whose answer (starting with `HTTP/`) it passes on
        // verbatim: a 307 to the host's loopback.
        let location = format!("http://127.0.0.1:{bait_port}/stolen");
        let script = format!(
            "#!/bin/sh\nprintf 'HTTP/1.0 307 Temporary Redirect\\r\\nLocation: {location}\\r\\nContent-Length: 0\\r\\n\\r\\n'\n"
        );
        admin.upload_sandbox_file(&id, "/tmp/www/cgi-bin/go", script.into_bytes()).await.unwrap();
        let start = |cmd: &str, args: &[&str]| StartSandboxProcessRequest {
            cmd: cmd.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            cwd: Some("/tmp".into()),
            ..Default::default()
        };
        admin.start_sandbox_process(&id, &start("chmod", &["755", "/tmp/www/cgi-bin/go"])).await.unwrap();
        admin.start_sandbox_process(&id, &start("httpd", &["-f", "-p", "8000", "-h", "/tmp/www"])).await.unwrap();
        let url = admin.sandbox_url(&id, 8000).await.unwrap();
        // Through the URL (host routing) and through the SDK's headers: the same proxy.
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let e2b_host = e2b.trim_start_matches("http://").to_string();
        let through_url = || {
            http.get(format!("{e2b}/cgi-bin/go"))
                .header("host", format!("{}:{}", url.host, e2b_host.rsplit(':').next().unwrap()))
                .header("x-roost-sandbox-token", &url.token)
        };
        // httpd may need a moment to bind.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let response = loop {
            let r = through_url().send().await.unwrap();
            if r.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE && r.status() != reqwest::StatusCode::BAD_GATEWAY {
                break r;
            }
            assert!(std::time::Instant::now() < deadline, "httpd never answered: {}", r.status());
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let status = response.status().as_u16();
        let got_location = response.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        let body = response.text().await.unwrap();
        assert_eq!(
            (status, got_location.as_deref()),
            (307, Some(location.as_str())),
            "the redirect comes back unchanged: {body:?}"
        );
        assert!(!body.contains("host's secret"), "{body}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "the server fetched the redirect's target");
        admin.kill_sandbox(&id).await.unwrap();
    });
    rt.block_on(common::remove_test_network(41));
}

/// Sandbox keys can be revoked (API, CLI): the next E2B request with one is refused at
/// once, and the revocation is audited. Someone else's key is not found.
#[test]
fn sandbox_keys_are_revoked_at_once() {
    let server = TestServer::start();
    let e2b = server.e2b_url.clone().expect("the E2B listener");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    rt.block_on(async {
        let admin = server.admin().await;
        let http = common::http();
        let make = |name: &'static str| {
            let admin = admin.clone();
            async move {
                let req = roost_api::sandboxes::CreateSandboxKeyRequest { name: name.into(), ..Default::default() };
                admin.create_sandbox_key(&req).await.unwrap()
            }
        };
        let list = |secret: String| {
            let http = http.clone();
            let e2b = e2b.clone();
            async move { http.get(format!("{e2b}/sandboxes")).header("x-api-key", secret).send().await.unwrap().status() }
        };
        // Through the API.
        let first = make("first").await;
        assert_eq!(list(first.secret.clone()).await, 200, "the key works (and is cached now)");
        let r = http
            .delete(format!("{}/v1/sandbox-keys/{}", server.url, first.key.id))
            .bearer_auth(admin.token().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        assert_eq!(list(first.secret.clone()).await, 401, "the revoked key still works");
        assert!(!admin.list_sandbox_keys().await.unwrap().iter().any(|k| k.id == first.key.id));
        // Through the CLI.
        let second = make("second").await;
        assert_eq!(list(second.secret.clone()).await, 200);
        let out = server.cli(&["sandbox", "key", "rm", &second.key.id], None, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(list(second.secret.clone()).await, 401);
        // A key of a project another user is not in, or one already revoked: not found.
        let req = roost_api::users::CreateUserRequest {
            name: "bob".into(),
            password: Some("bob-password".into()),
            role: Some(roost_api::auth::Role::Operator),
            projects: Some(vec![]),
            ..Default::default()
        };
        admin.create_user(&req).await.unwrap();
        let bob = server.anonymous().login("bob", "bob-password").await.unwrap().token;
        let third = make("third").await;
        for (who, id) in [(&bob, &third.key.id), (&admin.token().unwrap().to_string(), &first.key.id)] {
            let r = http.delete(format!("{}/v1/sandbox-keys/{id}", server.url)).bearer_auth(who).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 404);
        }
        assert_eq!(list(third.secret.clone()).await, 200);
        let audit = admin
            .list_audit(&roost_api::audit::AuditQuery { action: Some("sandbox_key.delete".into()), ..Default::default() })
            .await
            .unwrap();
        let revoked: Vec<_> = audit.items.iter().filter(|e| e.result == "success").collect();
        assert_eq!(revoked.len(), 2, "{:?}", audit.items);
        assert!(audit.items.iter().any(|e| e.result.contains("not_found")), "refusals are audited too");
    });
}
