//! The CLI binary against a real server.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{ADMIN_PASSWORD, ServerOptions, TestServer, stderr, stdout};

#[test]
fn login_tokens_whoami_logout() {
    let server = TestServer::start();
    let out =
        server.cli(&["login", "--username", "admin", "--password-stdin"], Some(&format!("{ADMIN_PASSWORD}\n")), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Logged in to"), "{}", stderr(&out));
    let mode = std::fs::metadata(server.cli_config_path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the saved session is private");

    let out = server.cli(&["whoami"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("user:") && text.contains("admin") && text.contains("auth:     session"), "{text}");

    // The secret alone on stdout, so `TOKEN=$(roost token create ci)` works.
    let out = server.cli(&["token", "create", "ci", "--scope", "write", "--expires", "30d"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = stdout(&out).trim().to_string();
    assert!(secret.starts_with("rst_") && !secret.contains(' '), "{secret}");
    assert!(stderr(&out).contains("not shown again"));

    let out = server.cli(&["token", "create", "deploy", "--output", "json"], None, &[]);
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("rst_"));
    assert_eq!(created["scope"], "read");

    let out = server.cli(&["token", "ls"], None, &[]);
    let table = stdout(&out);
    let mut lines = table.lines();
    let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PREFIX", "SCOPE", "CREATED", "EXPIRES", "LAST", "USED"]);
    let ci_row = table.lines().find(|l| l.starts_with("ci ")).expect("ci listed");
    assert!(ci_row.contains(&secret[..12]) && ci_row.contains("write") && ci_row.contains("in 29d"), "{ci_row}");

    let out = server.cli(&["token", "ls", "-o", "yaml"], None, &[]);
    let listed: Vec<serde_json::Value> = yaml_serde::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);

    // ROOST_TOKEN authenticates instead of the saved session.
    let out = server.cli(&["whoami", "-o", "json"], None, &[("ROOST_TOKEN", &secret)]);
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((me["auth"].as_str(), me["token_name"].as_str()), (Some("token"), Some("ci")));

    let out = server.cli(&["token", "show", "ci"], None, &[]);
    assert!(stdout(&out).contains("scope:      write"), "{}", stdout(&out));
    let out = server.cli(&["token", "rm", "ci"], None, &[]);
    assert!(out.status.success() && stderr(&out).contains("Deleted token 'ci'"));

    // Errors: one line, non-zero exit.
    let out = server.cli(&["whoami"], None, &[("ROOST_TOKEN", &secret)]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: unknown or revoked token"), "{}", stderr(&out));
    let out = server.cli(&["token", "create", "deploy"], None, &[]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim(), "error: a token named 'deploy' already exists");
    let out = server.cli(&["token", "rm", "nope"], None, &[]);
    assert_eq!(stderr(&out).trim(), "error: token 'nope' not found");

    let out = server.cli(&["system", "backup"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("status:    succeeded"), "{}", stdout(&out));

    let out = server.cli(&["logout"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["whoami"], None, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not logged in"), "{}", stderr(&out));
}

#[test]
fn login_failures_are_clear() {
    let server = TestServer::start();
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some("wrong-password\n"), &[]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim(), "error: invalid username or password");
    let out = server.cli(&["login", "-u", "admin"], None, &[]);
    assert!(stderr(&out).contains("--password-stdin"), "{}", stderr(&out));
    let out =
        server.cli(&["login", "--server", "http://127.0.0.1:1", "-u", "admin", "--password-stdin"], Some("x\n"), &[]);
    assert!(stderr(&out).starts_with("error: cannot reach the server at http://127.0.0.1:1"), "{}", stderr(&out));
    let out = server.cli(&["whoami", "--server", "not a url"], None, &[("ROOST_TOKEN", "rst_x")]);
    assert!(stderr(&out).contains("invalid server URL"), "{}", stderr(&out));
}

#[test]
fn users_projects_quotas_and_audit_from_the_cli() {
    let server = TestServer::start();
    let ok = |args: &[&str], stdin: Option<&str>| {
        let out = server.cli(args, stdin, &[]);
        assert!(out.status.success(), "roost {}: {}", args.join(" "), stderr(&out));
        out
    };
    ok(&["login", "-u", "admin", "--password-stdin"], Some(ADMIN_PASSWORD));

    let out = ok(&["user", "create", "alice", "--role", "operator", "--email", "alice@example.com"], None);
    let password = stdout(&out).trim().to_string();
    assert!(password.len() >= 16 && !password.contains(' '), "the one-time password alone on stdout: {password}");
    ok(&["user", "create", "bob", "--password-stdin"], Some("bob-password\n"));
    let out = ok(&["user", "ls"], None);
    let table = stdout(&out);
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("alice ") && l.contains("operator") && l.contains("active")),
        "{table}"
    );
    ok(&["user", "disable", "bob"], None);
    assert!(stdout(&ok(&["user", "show", "bob"], None)).contains("disabled"));
    ok(&["user", "enable", "bob"], None);
    ok(&["user", "set", "bob", "--role", "operator"], None);
    let reset = stdout(&ok(&["user", "reset-password", "bob"], None)).trim().to_string();
    assert!(reset.len() >= 16);

    ok(&["project", "create", "team-a", "--description", "The A team"], None);
    ok(&["project", "add-member", "team-a", "alice", "--role", "operator"], None);
    let members = stdout(&ok(&["project", "members", "team-a"], None));
    assert!(members.lines().any(|l| l.starts_with("alice") && l.contains("operator")), "{members}");
    let set = stdout(&ok(&["project", "quota", "set", "team-a", "--instances", "10", "--memory", "16g"], None));
    assert!(set.contains("memory_bytes:  16 GiB") && !set.contains("17179869184"), "sizes read as sizes: {set}");
    let quota = stdout(&ok(&["project", "quota", "show", "team-a"], None));
    assert!(quota.contains("instances:") && quota.contains("memory_bytes:  16 GiB"), "{quota}");
    let usage = stdout(&ok(&["project", "usage", "team-a"], None));
    assert!(
        usage.lines().any(|l| l.starts_with("instances") && l.contains(" 0 ") && l.trim_end().ends_with("10")),
        "{usage}"
    );
    let out = server.cli(&["project", "quota", "set", "team-a", "--memory", "lots"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("--memory: 'lots' is not a size"), "{}", stderr(&out));
    ok(&["project", "use", "team-a"], None);
    let listed = stdout(&ok(&["project", "ls"], None));
    assert!(listed.lines().any(|l| l.starts_with("team-a *")), "the current project is marked: {listed}");

    let audit = stdout(&ok(&["audit", "ls", "--action", "user."], None));
    assert!(audit.lines().filter(|l| l.contains("user.create")).count() >= 2, "{audit}");
    // The actor by name in the table (by id in JSON, with the name beside it), and
    // `--actor` takes a name.
    let actors: Vec<_> = audit.lines().skip(1).filter_map(|l| l.split_whitespace().nth(3)).collect();
    assert!(actors.iter().all(|a| ["admin", "system"].contains(a)) && actors.contains(&"admin"), "{audit}");
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&ok(&["audit", "ls", "--actor", "admin", "-o", "json"], None))).unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["actor"].as_str().unwrap().starts_with("usr-") && e["actor_name"] == "admin"),
        "{entries:?}"
    );
    let csv = stdout(&ok(&["audit", "export", "--csv"], None));
    assert!(csv.starts_with("seq,time,actor"));
    let verify = stdout(&ok(&["audit", "verify"], None));
    assert!(verify.contains("intact"), "{verify}");

    // alice: her own password and profile.
    let alice = |args: &[&str], stdin: Option<&str>| {
        let out = server.cli(
            args,
            stdin,
            &[("ROOST_CONFIG_FILE", server.cli_home.path().join("alice.toml").to_str().unwrap())],
        );
        assert!(out.status.success(), "alice: roost {}: {}", args.join(" "), stderr(&out));
        out
    };
    alice(&["login", "-u", "alice", "--password-stdin"], Some(&password));
    alice(&["passwd", "--password-stdin"], Some(&format!("{password}\nalice-new-password\n")));
    let profile = stdout(&alice(&["profile", "--display-name", "Alice A."], None));
    assert!(profile.contains("Alice A.") && profile.contains("alice@example.com"), "{profile}");
    let out = server.cli(
        &["user", "create", "mallory"],
        None,
        &[("ROOST_CONFIG_FILE", server.cli_home.path().join("alice.toml").to_str().unwrap())],
    );
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim(), "error: user 'alice' is not an admin");
    let out = server.cli(&["login", "-u", "alice", "--password-stdin"], Some(&password), &[]);
    assert!(!out.status.success(), "the old password no longer works");
}

#[test]
fn ssh_key_create_writes_the_private_key_before_registering_it() {
    let server = TestServer::start();
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A fresh machine: HOME has no ~/.ssh.
    let home = tempfile::tempdir().unwrap();
    let key_path = home.path().join(".ssh").join("roost-mykey");
    let key_arg = key_path.to_str().unwrap();
    let home_env = [("HOME", home.path().to_str().unwrap())];
    let out = server.cli(&["ssh-key", "create", "mykey", "--out", key_arg], None, &home_env);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home.path().join(".ssh")), 0o700, "the directory is made private, as ssh-keygen does");
    assert_eq!(mode(&key_path), 0o600);
    let private = std::fs::read_to_string(&key_path).unwrap();
    assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"), "{private}");
    assert_eq!(std::fs::read_dir(home.path().join(".ssh")).unwrap().count(), 1, "no temporary file is left");
    let listed = stdout(&server.cli(&["ssh-key", "ls"], None, &[]));
    assert!(listed.lines().any(|l| l.starts_with("mykey ")), "{listed}");

    // An existing file is not overwritten, and then no key is registered.
    let out = server.cli(&["ssh-key", "create", "second", "--out", key_arg], None, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exists") && stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), private, "the existing key is untouched");
    assert!(!stdout(&server.cli(&["ssh-key", "ls"], None, &[])).contains("second"));
    // A name that exists: refused by the server, and the file made for it is gone again.
    let other = home.path().join(".ssh").join("other");
    let out = server.cli(&["ssh-key", "create", "mykey", "--out", other.to_str().unwrap()], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(home.path().join(".ssh")).unwrap().count(), 1, "nothing left behind");
    // A path that cannot be written: nothing is registered.
    let out = server.cli(&["ssh-key", "create", "third", "--out", "/proc/roost-key"], None, &[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&server.cli(&["ssh-key", "ls"], None, &[])).contains("third"));
    // --force replaces the file, still private.
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = server.cli(&["ssh-key", "create", "second", "--out", key_arg, "--force"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(std::fs::read_to_string(&key_path).unwrap(), private);
    assert_eq!(mode(&key_path), 0o600);
    assert!(stdout(&server.cli(&["ssh-key", "ls"], None, &[])).contains("second"));
}

#[test]
fn exec_and_console_want_a_terminal_for_one_and_end_at_the_input_s_end() {
    let server = TestServer::start_with(ServerOptions::compute(86));
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["instance", "create", "web", "--image", "busybox", "--memory", "64m"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A hang guard only: each of these ends in well under a second.
    let limit = std::time::Duration::from_secs(120);

    // -it from a pipe or /dev/null: said at once, as `docker exec -it` does.
    let out = server.cli_ending_within(&["exec", "-it", "web", "--", "sh"], None, limit);
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("error: the input device is not a TTY"), "{}", stderr(&out));
    assert!(stderr(&out).contains("use -i without -t"), "{}", stderr(&out));
    let out = server.cli_ending_within(&["console", "web"], Some("exit\n"), limit);
    assert!(!out.status.success() && stderr(&out).contains("not a TTY"), "{}", stderr(&out));
    // Without a terminal, a shell reading stdin ends at its end.
    let out = server.cli_ending_within(&["exec", "-i", "web", "--", "sh"], None, limit);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = server.cli_ending_within(&["exec", "-i", "web", "--", "sh"], Some("echo piped\nexit 3\n"), limit);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(3), "piped\n"), "{}", stderr(&out));

    // On a terminal: -it runs the command on one; console says how to leave.
    let out = server.cli_on_terminal(&["exec", "-it", "web", "--", "sh", "-c", "tty"], b"", limit);
    assert!(out.status.success() && stdout(&out).contains("/dev/pts/"), "{}{}", stdout(&out), stderr(&out));
    let out = server.cli_on_terminal(&["console", "web"], b"echo on-the-$((6*7))\rexit\r", limit);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "Connected to a shell in web; type exit or press Ctrl-D to leave.\n");
    assert!(stdout(&out).contains("on-the-42"), "{}", stdout(&out));
    tokio::runtime::Runtime::new().unwrap().block_on(common::remove_test_network(86));
}

#[test]
fn a_closed_output_pipe_ends_the_cli_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let server = TestServer::start();
    let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(ADMIN_PASSWORD), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // `roost audit ls -o json | head -0`: the reader is gone before the CLI writes.
    let mut child = std::process::Command::new(common::roost_bin())
        .args(["audit", "ls", "-o", "json"])
        .env("ROOST_CONFIG_FILE", server.cli_config_path())
        .env("ROOST_SERVER", &server.url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}
