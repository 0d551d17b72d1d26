//! A sandbox's background processes and files on Roost's own API and CLI, end to end: a
//! real server with compute, the builtin `base` template (built offline on first use,
//! once for this test binary), `roost sandbox exec -d|ps|signal|attach` and the file
//! endpoints, with a project viewer refused what runs commands. No timings are
//! asserted: waits have deadlines only so a broken feature fails.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer, stderr, stdout};
use roost_api::audit::AuditQuery;
use roost_api::auth::Role;
use roost_api::sandboxes::{CreateSandboxRequest, ProcessSignal, StartSandboxProcessRequest};
use roost_api::users::CreateUserRequest;
use roost_client::Client;
use serde_json::Value;

/// Whether a `ps -o json` row is the process with this (printed) pid.
fn is_pid(row: &Value, pid: &str) -> bool {
    row["pid"].as_u64().is_some() && row["pid"].as_u64() == pid.parse().ok()
}

fn status(e: &roost_client::ClientError) -> u16 {
    e.status().map(|s| s.as_u16()).unwrap_or(0)
}

#[test]
fn background_processes_are_listed_signalled_and_reattached_and_files_round_trip() {
    let server = TestServer::start_with(ServerOptions::compute(72));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ok = |args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}\n--- server:\n{}", args.join(" "), stderr(&out), server.output());
        stdout(&out)
    };
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The first create builds `base` (the CLI waits for it).
    let id = ok(&["sandbox", "create", "--ttl", "10m"]).trim().to_string();
    let ps = |id: &str| -> Vec<Value> {
        serde_json::from_str::<Value>(&ok(&["sandbox", "ps", id, "-o", "json"])).unwrap().as_array().unwrap().clone()
    };

    // The foreground exec is unchanged: output, stdin and the exit code.
    let out = server.cli(
        &["sandbox", "exec", "-i", &id, "--", "sh", "-c", "cat; echo oops >&2; exit 3"],
        Some("piped\n"),
        &[],
    );
    assert_eq!((out.status.code(), stdout(&out).as_str(), stderr(&out).trim()), (Some(3), "piped\n", "oops"));

    // A background loop: its pid is printed at once, `ps` lists it with its settings.
    let script = "for i in 1 2 3 4 5; do echo \"$STEP$i\"; sleep 1; done; echo finished >&2; exit 4";
    let pid = ok(&[
        "sandbox", "exec", "-d", "--tag", "counter", "--env", "STEP=n", "--cwd", "/tmp", &id, "--", "sh", "-c", script,
    ])
    .trim()
    .to_string();
    assert!(pid.parse::<u32>().is_ok(), "a pid: {pid}");
    let listed = ps(&id);
    let row = listed.iter().find(|p| is_pid(p, &pid)).unwrap_or_else(|| panic!("{pid} in {listed:?}"));
    assert_eq!(
        (row["tag"].as_str(), row["cmd"].as_str(), row["cwd"].as_str()),
        (Some("counter"), Some("sh"), Some("/tmp"))
    );
    assert_eq!(row["args"][1], script);

    // Attach while it runs: later output, stderr, then its exit code as the CLI's.
    let out = server.cli(&["sandbox", "attach", &id, &pid], None, &[]);
    assert_eq!(out.status.code(), Some(4), "attach exits with the process's code: {}", stderr(&out));
    assert!(stdout(&out).ends_with("n4\nn5\n"), "{}", stdout(&out));
    assert!(stderr(&out).contains("finished"), "{}", stderr(&out));
    // It ended: gone from `ps`, yet a re-attach replays what it printed from the start.
    assert!(!ps(&id).iter().any(|p| is_pid(p, &pid)));
    let out = server.cli(&["sandbox", "attach", &id, &pid], None, &[]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(stdout(&out), "n1\nn2\nn3\nn4\nn5\n");
    assert_eq!(stderr(&out), "finished\n");

    // `sleep 1000` in the background, TERM: it leaves the list, and an attach reports 143.
    let sleeper = ok(&["sandbox", "exec", "-d", &id, "--", "sleep", "1000"]).trim().to_string();
    assert!(ps(&id).iter().any(|p| is_pid(p, &sleeper) && p["cmd"] == "sleep"));
    ok(&["sandbox", "signal", &id, &sleeper, "--signal", "TERM"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ps(&id).iter().any(|p| is_pid(p, &sleeper)) {
        assert!(Instant::now() < deadline, "the signalled process is still listed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = server.cli(&["sandbox", "attach", &id, &sleeper], None, &[]);
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    // `kill-process` is the same command; KILL ends it with 137.
    let other = ok(&["sandbox", "exec", "-d", &id, "--", "sleep", "1000"]).trim().to_string();
    ok(&["sandbox", "kill-process", &id, &other, "--signal", "KILL"]);
    let out = server.cli(&["sandbox", "attach", &id, &other], None, &[]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let out = server.cli(&["sandbox", "signal", &id, "999999"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("not found"), "{}", stderr(&out));

    // stdin through an attach (the process was started with -i to keep it open).
    let reader =
        ok(&["sandbox", "exec", "-d", "-i", &id, "--", "sh", "-c", "read line; echo \"got $line\""]).trim().to_string();
    let out = server.cli(&["sandbox", "attach", "-i", &id, &reader], Some("hello\n"), &[]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "got hello\n"), "{}", stderr(&out));

    // Ctrl-C detaches without stopping the process.
    let ticker = ok(&["sandbox", "exec", "-d", &id, "--", "sh", "-c", "while true; do echo tick; sleep 0.2; done"])
        .trim()
        .to_string();
    let mut child = Command::new(common::roost_bin())
        .args(["sandbox", "attach", &id, &ticker])
        .env("ROOST_CONFIG_FILE", server.cli_config_path())
        .env("ROOST_SERVER", &server.url)
        .env_remove("ROOST_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 5];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"tick\n");
    common::signal(child.id(), "INT");
    let exited = common::wait_exit(&mut child, Duration::from_secs(20)).expect("attach exits on Ctrl-C");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(exited.success() && err.contains("Detached"), "{exited:?}: {err}");
    assert!(ps(&id).iter().any(|p| is_pid(p, &ticker)), "still running after a detach");
    ok(&["sandbox", "signal", &id, &ticker]);

    rt.block_on(async {
        let admin = server.admin().await;
        // Files: upload (binary), list, download, mkdir (twice: 409), move, remove.
        let data: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
        admin.upload_sandbox_file(&id, "/tmp/fb/data.bin", data.clone()).await.unwrap();
        let entries = admin.list_sandbox_dir(&id, "/tmp/fb").await.unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(
            (entries[0].name.as_str(), entries[0].kind.as_str(), entries[0].size),
            ("data.bin", "file", data.len() as u64)
        );
        assert_eq!(admin.download_sandbox_file(&id, "/tmp/fb/data.bin").await.unwrap(), data);
        let dir = admin.sandbox_mkdir(&id, "/tmp/fb/sub").await.unwrap();
        assert_eq!((dir.path.as_str(), dir.kind.as_str()), ("/tmp/fb/sub", "dir"));
        assert_eq!(status(&admin.sandbox_mkdir(&id, "/tmp/fb/sub").await.unwrap_err()), 409);
        let moved = admin.move_sandbox_file(&id, "/tmp/fb/data.bin", "/tmp/fb/sub/moved.bin").await.unwrap();
        assert_eq!((moved.name.as_str(), moved.size), ("moved.bin", data.len() as u64));
        let names: Vec<String> =
            admin.list_sandbox_dir(&id, "/tmp/fb").await.unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["sub"]);
        // Relative paths are under /root, as in the E2B SDKs.
        admin.upload_sandbox_file(&id, "notes.txt", b"hi\n".to_vec()).await.unwrap();
        assert_eq!(admin.download_sandbox_file(&id, "/root/notes.txt").await.unwrap(), b"hi\n");
        admin.remove_sandbox_file(&id, "/tmp/fb").await.unwrap();
        assert_eq!(status(&admin.list_sandbox_dir(&id, "/tmp/fb").await.unwrap_err()), 404);
        assert_eq!(status(&admin.download_sandbox_file(&id, "/tmp/nope").await.unwrap_err()), 404);
        assert_eq!(status(&admin.list_sandbox_dir(&id, "/root/notes.txt").await.unwrap_err()), 400);

        // A viewer of the project sees the processes but may not start, signal, attach
        // or touch files; someone outside the project does not see the sandbox at all.
        let req = CreateUserRequest {
            name: "vera".into(),
            role: Some(Role::Viewer),
            password: Some("vera-password".into()),
            projects: Some(vec!["default".into()]),
            ..Default::default()
        };
        admin.create_user(&req).await.unwrap();
        let session = server.anonymous().login("vera", "vera-password").await.unwrap();
        let vera = Client::new(&server.url, Some(session.token)).unwrap();
        let running = admin
            .start_sandbox_process(
                &id,
                &StartSandboxProcessRequest { cmd: "sleep".into(), args: vec!["1000".into()], ..Default::default() },
            )
            .await
            .unwrap();
        assert!(vera.list_sandbox_processes(&id).await.unwrap().iter().any(|p| p.pid == running.pid));
        let start = StartSandboxProcessRequest { cmd: "true".into(), ..Default::default() };
        assert_eq!(status(&vera.start_sandbox_process(&id, &start).await.unwrap_err()), 403);
        assert_eq!(
            status(&vera.signal_sandbox_process(&id, running.pid, ProcessSignal::Number(9)).await.unwrap_err()),
            403
        );
        assert_eq!(status(&vera.attach_sandbox_process(&id, running.pid).await.err().unwrap()), 403);
        assert_eq!(status(&vera.list_sandbox_dir(&id, "/root").await.unwrap_err()), 403);
        assert_eq!(status(&vera.upload_sandbox_file(&id, "/tmp/x", b"x".to_vec()).await.unwrap_err()), 403);
        assert_eq!(status(&vera.remove_sandbox_file(&id, "/root/notes.txt").await.unwrap_err()), 403);
        let bad = ProcessSignal::Name("NOPE".into());
        assert_eq!(status(&admin.signal_sandbox_process(&id, running.pid, bad).await.unwrap_err()), 400);
        admin.signal_sandbox_process(&id, running.pid, ProcessSignal::Name("SIGKILL".into())).await.unwrap();

        // Every change was audited, refusals included.
        let audit = admin
            .list_audit(&AuditQuery { action: Some("sandbox.".into()), limit: Some(500), ..Default::default() })
            .await
            .unwrap();
        let count = |action: &str, result: &str| {
            audit.items.iter().filter(|e| e.action == action && (result.is_empty() || e.result == result)).count()
        };
        assert!(count("sandbox.process.start", "success") >= 6, "{:?}", audit.items);
        assert!(count("sandbox.process.signal", "success") >= 4);
        assert!(count("sandbox.process.start", "") > count("sandbox.process.start", "success"), "the refusal too");
        for action in ["sandbox.files.write", "sandbox.files.mkdir", "sandbox.files.move", "sandbox.files.remove"] {
            assert!(count(action, "success") >= 1, "{action}");
        }

        // Bad input gets a 400 naming the field, never a 500: a NUL byte anywhere a
        // command line, an environment or a path is built from.
        let http = common::http();
        let token = admin.token().unwrap().to_string();
        let base = format!("{}/v1/sandboxes/{id}", server.url);
        let bad = |response: reqwest::Response, field: &'static str| async move {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"]["code"], "validation_failed", "{body}");
            assert!(body["error"]["details"].as_array().unwrap().iter().any(|d| d["field"] == field), "{body}");
        };
        let post = |path: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send();
        bad(post("/files/move", serde_json::json!({"from": "/tmp/a\0b", "to": "/tmp/c"})).await.unwrap(), "from").await;
        bad(post("/files/move", serde_json::json!({"from": "/tmp/a", "to": "/tmp/\0"})).await.unwrap(), "to").await;
        bad(post("/processes", serde_json::json!({"cmd": "ec\0ho"})).await.unwrap(), "cmd").await;
        bad(post("/processes", serde_json::json!({"cmd": "echo", "args": ["a\0"]})).await.unwrap(), "args").await;
        bad(post("/processes", serde_json::json!({"cmd": "env", "env": {"A": "b\0"}})).await.unwrap(), "env").await;
        bad(post("/dirs", serde_json::json!({"path": "/tmp/\0d"})).await.unwrap(), "path").await;
        for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
            let r = http.request(method, format!("{base}/files?path=/tmp/x%00y")).bearer_auth(&token).send().await;
            bad(r.unwrap(), "path").await;
        }
        let r = http.get(format!("{base}/dirs?path=%00")).bearer_auth(&token).send().await.unwrap();
        bad(r, "path").await;

        // A paused sandbox refuses file operations at once, as it refuses processes.
        admin.sandbox_action(&id, "pause").await.unwrap();
        let paused = [
            status(&admin.list_sandbox_dir(&id, "/root").await.unwrap_err()),
            status(&admin.download_sandbox_file(&id, "/root/notes.txt").await.unwrap_err()),
            status(&admin.upload_sandbox_file(&id, "/tmp/p", b"x".to_vec()).await.unwrap_err()),
            status(&admin.sandbox_mkdir(&id, "/tmp/p-dir").await.unwrap_err()),
            status(&admin.move_sandbox_file(&id, "/root/notes.txt", "/tmp/n").await.unwrap_err()),
            status(&admin.remove_sandbox_file(&id, "/root/notes.txt").await.unwrap_err()),
            status(&admin.start_sandbox_process(&id, &start).await.unwrap_err()),
        ];
        assert_eq!(paused, [409; 7]);
        admin.sandbox_action(&id, "resume").await.unwrap();
        assert_eq!(admin.download_sandbox_file(&id, "/root/notes.txt").await.unwrap(), b"hi\n", "nothing was lost");
    });
    ok(&["sandbox", "kill", &id]);

    rt.block_on(async {
        let admin = server.admin().await;
        // The builtin `base`, built for the first create, shows its digest and size in the
        // images list as the templates page does (its row was "—" before).
        let base = admin.get_image("base").await.unwrap();
        assert!(base.size_bytes.is_some_and(|s| s > 0) && base.digest.is_some(), "{base:?}");
        let listed = admin.list_images(None).await.unwrap();
        let row = listed.iter().find(|i| i.name == "base").expect("base is listed");
        assert_eq!((row.size_bytes, row.digest.as_deref()), (base.size_bytes, base.digest.as_deref()));

        // A sandbox whose time runs out is ended by the server: the audit log records
        // `system` (source `sandbox-ttl`), not the user who created it.
        let req = CreateSandboxRequest { ttl_secs: Some(1), ..Default::default() };
        let short = admin.create_sandbox(&req).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while admin.get_sandbox(&short.id).await.is_ok() {
            assert!(Instant::now() < deadline, "the sandbox outlived its TTL\n{}", server.output());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let entries = |resource: String| {
            let admin = &admin;
            async move {
                let q = AuditQuery { resource: Some(resource), limit: Some(100), ..Default::default() };
                admin.list_audit(&q).await.unwrap().items
            }
        };
        let me = admin.whoami().await.unwrap().user.id;
        let created = entries(short.id.clone()).await;
        let by =
            |action: &str| created.iter().find(|e| e.action == action).map(|e| (e.actor.clone(), e.source.clone()));
        assert_eq!(by("sandbox.create").map(|a| a.0), Some(me), "{created:?}");
        assert_eq!(by("sandbox.expire"), Some(("system".into(), Some("sandbox-ttl".into()))), "{created:?}");
        // Its instance is deleted by the server too (the delete completes after the row
        // ends: wait for its entry).
        let deadline = Instant::now() + Duration::from_secs(60);
        let deleted = loop {
            let e = entries(short.instance_id.clone()).await;
            if let Some(d) = e.into_iter().find(|e| e.action == "instance.delete") {
                break d;
            }
            assert!(Instant::now() < deadline, "no instance.delete for {}", short.instance_id);
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!((deleted.actor.as_str(), deleted.source.as_deref()), ("system", Some("sandbox-ttl")));
    });
}
