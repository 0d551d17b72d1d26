//! Sandbox templates built from setup commands, end to end: a real server with compute,
//! the builtin `base` template built offline from Debian packages on first use, builds
//! through `roost sandbox template build` (each command run with `sh -c` in a real runc
//! container, the result snapshotted into the image store), sandboxes created from the
//! result through the CLI and the official E2B Python SDK, the build cache (hit, miss,
//! counters in the CLI and the API), a failing command, deletion and tenant isolation.
//! The commands are offline (no PyPI): they write files and run python3.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ServerOptions, TestServer, stderr, stdout};
use roost_api::auth::Role;
use roost_api::operations::OperationStatus;
use roost_api::projects::CreateProjectRequest;
use roost_api::sandbox_templates::{BuildSandboxTemplateRequest, SandboxTemplateBuild};
use roost_api::sandboxes::CreateSandboxRequest;
use roost_api::users::CreateUserRequest;
use roost_client::Client;
use serde_json::Value;

const RUN_A: &str = "mkdir -p /opt && echo hello-template > /opt/x";
const RUN_B: &str = "python3 -c \"open('/opt/y', 'w').write(str(6 * 7))\"";
const RUN_C: &str = "echo more > /opt/z";
const RUN_B2: &str = "python3 -c \"open('/opt/y', 'w').write(str(6 * 8))\"";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn json(server: &TestServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = server.cli(&all, None, &[]);
    assert!(out.status.success(), "roost {}: {}\n--- server:\n{}", args.join(" "), stderr(&out), server.output());
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn template<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|t| t["name"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_build_from_commands_with_a_content_addressed_cache() {
    let server = TestServer::start_with(ServerOptions::compute(70));
    let ok = |args: &[&str]| {
        let out = server.cli(args, None, &[]);
        assert!(out.status.success(), "roost {}: {}\n--- server:\n{}", args.join(" "), stderr(&out), server.output());
        out
    };
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The builtin templates are listed before anything is built.
    let list = json(&server, &["sandbox", "template", "ls"]);
    for name in ["base", "code-interpreter-v1"] {
        let t = template(&list, name).unwrap_or_else(|| panic!("no builtin {name}: {list}"));
        assert_eq!(t["builtin"], true);
    }

    // A first build: a miss, the commands' output streamed on stderr, the files there.
    let build = ["sandbox", "template", "build", "tpl-a", "--from", "base", "--run", RUN_A, "--run", RUN_B];
    let out = ok(&build);
    assert!(stdout(&out).contains("cache: miss"), "{}", stdout(&out));
    assert!(stderr(&out).contains("[1/2]") && stderr(&out).contains("[2/2]"), "progress: {}", stderr(&out));
    let first = json(&server, &["sandbox", "template", "show", "tpl-a"]);
    assert_eq!(first["base"], "base");
    assert_eq!(first["commands"], serde_json::json!([RUN_A, RUN_B]));
    assert_eq!((first["hits"].as_u64(), first["misses"].as_u64()), (Some(0), Some(1)));
    let key = first["cache_key"].as_str().unwrap().to_string();
    let digest = first["digest"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    assert!(first["size_bytes"].as_u64().unwrap() > 1 << 20, "{first}");
    // No build container is left.
    let instances = json(&server, &["instance", "ls"]);
    assert!(!instances.to_string().contains("tmpl-build-"), "{instances}");

    // A sandbox from it has the files.
    let id = stdout(&ok(&["sandbox", "create", "--template", "tpl-a", "--ttl", "2m"])).trim().to_string();
    let out = ok(&["sandbox", "exec", &id, "--", "sh", "-c", "cat /opt/x /opt/y"]);
    assert_eq!(stdout(&out), "hello-template\n42");
    // Refused while a sandbox uses it.
    let out = server.cli(&["sandbox", "template", "rm", "tpl-a"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("used by"), "{}", stderr(&out));
    ok(&["sandbox", "kill", &id]);

    // The same inputs again: a hit, nothing rebuilt; 1 miss and 1 hit in the CLI and API.
    let out = ok(&build);
    assert!(stdout(&out).contains("cache: hit"), "{}", stdout(&out));
    let list = json(&server, &["sandbox", "template", "ls"]);
    let t = template(&list, "tpl-a").unwrap();
    assert_eq!((t["hits"].as_u64(), t["misses"].as_u64()), (Some(1), Some(1)), "{t}");
    assert_eq!(t["digest"], digest.as_str());
    let admin = server.admin().await;
    let api = admin.list_sandbox_templates(None).await.unwrap();
    let t = api.iter().find(|t| t.name == "tpl-a").unwrap();
    assert_eq!((t.hits, t.misses), (1, 1));
    assert_eq!(t.cache_key.as_deref(), Some(key.as_str()));
    assert!(t.last_used_at.is_some() && t.build_seconds.is_some());
    // The API's answer says hit too.
    let req = BuildSandboxTemplateRequest {
        name: "tpl-a".into(),
        from: Some("base".into()),
        run: vec![RUN_A.into(), RUN_B.into()],
        project: None,
    };
    let op = admin.build_sandbox_template(&req).await.unwrap();
    let op = admin.wait_operation(&op.id, |_| {}).await.unwrap();
    let result: SandboxTemplateBuild = serde_json::from_value(op.result.clone().unwrap()).unwrap();
    assert_eq!(result.cache, "hit");
    assert_eq!((result.template.hits, result.template.misses), (2, 1));

    // Another name with the same inputs: a hit sharing the contents.
    let out = ok(&["sandbox", "template", "build", "tpl-same", "--run", RUN_A, "--run", RUN_B]);
    assert!(stdout(&out).contains("cache: hit"), "{}", stdout(&out));
    let same = json(&server, &["sandbox", "template", "show", "tpl-same"]);
    assert_eq!(same["digest"], digest.as_str());
    assert_eq!((same["hits"].as_u64(), same["misses"].as_u64()), (Some(1), Some(0)));

    // A changed command: a miss, another key and digest, the new contents in sandboxes.
    let out = ok(&["sandbox", "template", "build", "tpl-a", "--from", "base", "--run", RUN_A, "--run", RUN_B2]);
    assert!(stdout(&out).contains("cache: miss"), "{}", stdout(&out));
    let second = json(&server, &["sandbox", "template", "show", "tpl-a"]);
    assert_ne!(second["cache_key"], key.as_str());
    assert_ne!(second["digest"], digest.as_str());
    assert_eq!((second["hits"].as_u64(), second["misses"].as_u64()), (Some(2), Some(2)));
    let id = stdout(&ok(&["sandbox", "create", "--template", "tpl-a", "--ttl", "2m"])).trim().to_string();
    assert_eq!(stdout(&ok(&["sandbox", "exec", &id, "--", "cat", "/opt/y"])), "48");
    ok(&["sandbox", "kill", &id]);
    // tpl-same still has the first contents.
    let id = stdout(&ok(&["sandbox", "create", "--template", "tpl-same", "--ttl", "2m"])).trim().to_string();
    assert_eq!(stdout(&ok(&["sandbox", "exec", &id, "--", "cat", "/opt/y"])), "42");
    ok(&["sandbox", "kill", &id]);
    // Adding a command starts from the template that has the others (tpl-same): only the
    // new command runs.
    let out = ok(&["sandbox", "template", "build", "tpl-more", "--run", RUN_A, "--run", RUN_B, "--run", RUN_C]);
    assert!(stdout(&out).contains("cache: miss (2 of 3 commands from the cache)"), "{}", stdout(&out));
    let more = json(&server, &["sandbox", "template", "show", "tpl-more"]);
    let log = more["build_log"].as_str().unwrap();
    assert!(log.contains("(cached: template 'tpl-same')") && log.contains("[3/3] $ echo more"), "{log}");
    let id = stdout(&ok(&["sandbox", "create", "--template", "tpl-more", "--ttl", "2m"])).trim().to_string();
    let out = ok(&["sandbox", "exec", &id, "--", "sh", "-c", "cat /opt/x /opt/y /opt/z"]);
    assert_eq!(stdout(&out), "hello-template\n42more\n");
    ok(&["sandbox", "kill", &id]);

    // A failing command fails the build with its exit code and output; nothing is left.
    let out = server.cli(
        &["sandbox", "template", "build", "tpl-bad", "--run", "echo before", "--run", "echo oops-failed >&2; exit 3"],
        None,
        &[],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("command 2 of 2") && err.contains("exited with code 3") && err.contains("oops-failed"),
        "{err}"
    );
    let list = json(&server, &["sandbox", "template", "ls"]);
    assert!(template(&list, "tpl-bad").is_none(), "{list}");
    let images = json(&server, &["image", "ls"]);
    assert!(!images.to_string().contains("tpl-bad"), "{images}");
    let instances = json(&server, &["instance", "ls"]);
    assert!(!instances.to_string().contains("tmpl-build-"), "{instances}");
    let tmp = server.data_path().join("images/tmp");
    let leftovers: Vec<_> =
        std::fs::read_dir(&tmp).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Bad requests: no commands, a builtin's name, an unknown base.
    for args in [
        vec!["sandbox", "template", "build", "base", "--run", "true"],
        vec!["sandbox", "template", "build", "x", "--from", "no-such-base", "--run", "true"],
    ] {
        let out = server.cli(&args, None, &[]);
        assert!(!out.status.success(), "{args:?} should fail");
    }
    let out = server.cli(&["sandbox", "template", "rm", "base"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("builtin"), "{}", stderr(&out));

    // The official E2B SDK creates a sandbox from the built template by name.
    let python = workspace_root().join("target/e2benv/bin/python");
    assert!(python.exists(), "target/e2benv is missing: run `scripts/install-deps.sh --test`");
    let key_out = ok(&["sandbox", "key", "create", "templates"]);
    let e2b_key = stdout(&key_out).trim().to_string();
    let e2b = server.e2b_url.clone().unwrap();
    let script = "from e2b import Sandbox\n\
                  s = Sandbox.create('tpl-a')\n\
                  print(s.files.read('/opt/x').strip(), s.commands.run('cat /opt/y').stdout)\n\
                  s.kill()\n";
    let out = Command::new(&python)
        .args(["-c", script])
        .env("E2B_API_URL", &e2b)
        .env("E2B_SANDBOX_URL", &e2b)
        .env("E2B_API_KEY", &e2b_key)
        .env_remove("E2B_DOMAIN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "hello-template 48");

    // Tenant isolation: a member of another project neither sees nor uses nor deletes it,
    // and gets no cache hit from this project's builds.
    admin.create_project(&CreateProjectRequest { name: "other".into(), description: None }).await.unwrap();
    let req = CreateUserRequest {
        name: "olga".into(),
        role: Some(Role::Operator),
        password: Some("olga-password".into()),
        projects: Some(vec![]),
        ..Default::default()
    };
    admin.create_user(&req).await.unwrap();
    admin.set_member("other", "olga", Role::Operator).await.unwrap();
    let session = server.anonymous().login("olga", "olga-password").await.unwrap();
    let olga = Client::new(&server.url, Some(session.token)).unwrap();
    let seen = olga.list_sandbox_templates(None).await.unwrap();
    assert!(seen.iter().all(|t| t.builtin), "{seen:?}");
    assert!(olga.get_sandbox_template("tpl-a", None).await.is_err());
    assert!(olga.delete_sandbox_template("tpl-a", None).await.is_err());
    let create =
        CreateSandboxRequest { template: Some("tpl-a".into()), project: Some("other".into()), ..Default::default() };
    let err = olga.create_sandbox(&create).await.unwrap_err();
    assert!(err.to_string().contains("tpl-a"), "{err}");
    let req = BuildSandboxTemplateRequest {
        name: "tpl-a".into(),
        from: None,
        run: vec![RUN_A.into(), RUN_B.into()],
        project: Some("other".into()),
    };
    let op = olga.build_sandbox_template(&req).await.unwrap();
    let op = olga.wait_operation(&op.id, |_| {}).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let theirs: SandboxTemplateBuild = serde_json::from_value(op.result.unwrap()).unwrap();
    assert_eq!(theirs.cache, "miss");
    assert_eq!(theirs.template.cache_key.as_deref(), Some(key.as_str()), "the same inputs, the same key");
    assert_ne!(theirs.template.digest.as_deref(), Some(digest.as_str()), "but the project's own contents");
    // Each project's `tpl-a` is its own.
    let mine = admin.get_sandbox_template("tpl-a", Some("default")).await.unwrap();
    assert_eq!(mine.template.misses, 2);

    // Deleting: the template and its image go; sandboxes can no longer use it.
    ok(&["sandbox", "template", "rm", "tpl-same"]);
    let list = json(&server, &["sandbox", "template", "ls", "--project", "default"]);
    assert!(template(&list, "tpl-same").is_none(), "{list}");
    let out = server.cli(&["sandbox", "create", "--template", "tpl-same"], None, &[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    // The audit log has the builds and the deletion.
    let audit = json(&server, &["audit", "ls"]);
    let text = audit.to_string();
    assert!(text.contains("sandbox_template.build") && text.contains("sandbox_template.delete"), "{text}");
}
