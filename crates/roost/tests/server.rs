//! The server process: first start, restarts, settings, shutdown, PostgreSQL.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ADMIN_PASSWORD, ServerOptions, TestServer, roost_bin};
use futures_util::StreamExt;
use roost_api::events::EventFilter;
use roost_api::tokens::CreateTokenRequest;
use roost_client::Client;

#[tokio::test]
async fn the_first_start_prints_a_one_time_admin_password_and_later_starts_do_not() {
    let mut server = TestServer::start_with(ServerOptions { admin_password: None, ..Default::default() });
    let out = server.output();
    let password = out
        .lines()
        .find_map(|l| l.split("password: ").nth(1))
        .unwrap_or_else(|| panic!("no password in:\n{out}"))
        .trim()
        .to_string();
    assert!(password.len() >= 16);
    assert!(out.contains(&format!("console   {}/", server.url)), "{out}");
    server.anonymous().login("admin", &password).await.expect("the printed password works");
    assert!(server.terminate().success());

    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    let again = TestServer::start_in(data_dir, ServerOptions { admin_password: None, ..Default::default() });
    let out = again.output();
    assert!(!out.contains(&password) && !out.contains("password: "), "printed again:\n{out}");
    assert!(out.contains("printed on the first start"), "{out}");
    again.anonymous().login("admin", &password).await.expect("the admin survives restarts");
}

#[tokio::test]
async fn bad_settings_stop_startup_with_a_message_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(roost_bin());
        cmd.arg("server").arg("--data-dir").arg(dir.path()).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--listen", "localhost"], &[]);
    assert!(
        err.starts_with("error: invalid setting listen = 'localhost' (from flag --listen): expected an address"),
        "{err}"
    );
    let err = run(&[], &[("ROOST_LOG_FORMAT", "xml")]);
    assert!(
        err.contains(
            "invalid setting log_format = 'xml' (from environment variable ROOST_LOG_FORMAT): expected text or json"
        ),
        "{err}"
    );
    let config = dir.path().join("roost.toml");
    std::fs::write(&config, "session_ttl = \"forever\"\n").unwrap();
    let err = run(&["--config", config.to_str().unwrap()], &[]);
    assert!(
        err.contains(&format!("invalid setting session_ttl = 'forever' (from 'session_ttl' in {})", config.display())),
        "{err}"
    );
    let err = run(&[], &[("ROOST_DATABASE", "mysql://root:hunter2@db/roost")]);
    assert!(err.contains("invalid setting database") && !err.contains("hunter2"), "{err}");
    let err = run(&[], &[("ROOST_ADMIN_PASSWORD", "short")]);
    assert!(err.contains("ROOST_ADMIN_PASSWORD must be at least 8 characters"), "{err}");

    // A good file value is used when neither flag nor env says otherwise.
    std::fs::write(&config, "login_rate_per_minute = 1\nlog_format = \"json\"\n").unwrap();
    let server = TestServer::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    });
    server.anonymous().login("admin", "wrong-password").await.unwrap_err();
    let err = server.anonymous().login("admin", ADMIN_PASSWORD).await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 429, "the file's rate applies");
    let json_line = server.output().lines().find(|l| l.starts_with('{')).map(str::to_string).expect("JSON log lines");
    let parsed: serde_json::Value = serde_json::from_str(&json_line).unwrap();
    assert!(parsed.get("level").is_some(), "{json_line}");
}

#[tokio::test]
async fn sigterm_ends_streams_and_stops_cleanly() {
    let mut server = TestServer::start();
    let admin = server.admin().await;
    let mut events = Box::pin(admin.events(&EventFilter::default(), None).await.unwrap());
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    });
    // The open stream ends instead of holding the shutdown forever.
    let ended = tokio::time::timeout(Duration::from_secs(20), async { while events.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the event stream did not end");
    let (status, server) = status.await.unwrap();
    assert!(status.success(), "{status:?}\n{}", server.output());
    assert!(server.output().contains("stopped"), "{}", server.output());
}

#[tokio::test]
async fn the_same_server_runs_on_postgresql() {
    let url = common::fresh_postgres_database().await;
    let mut server =
        TestServer::start_with(ServerOptions { args: vec!["--database".into(), url.clone()], ..Default::default() });
    assert!(server.output().contains("store: postgres://postgres@127.0.0.1"), "{}", server.output());
    let admin = server.admin().await;
    let req = CreateTokenRequest { name: "on-pg".into(), ..Default::default() };
    let secret = admin.create_token(&req).await.unwrap().secret;
    let err = admin.create_backup().await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 422, "backups are SQLite's; PostgreSQL has pg_dump");
    assert!(server.terminate().success());

    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    let again =
        TestServer::start_in(data_dir, ServerOptions { args: vec!["--database".into(), url], ..Default::default() });
    let client = Client::new(&again.url, Some(secret)).unwrap();
    assert_eq!(client.whoami().await.unwrap().token_name.as_deref(), Some("on-pg"), "data lives in PostgreSQL");
    assert!(!again.data_path().join("roost.db").exists(), "no SQLite file when PostgreSQL is the store");
}

/// Events live in the durable log: two servers on one PostgreSQL see each other's
/// changes on their streams at once (LISTEN/NOTIFY wakes the readers), and a client that
/// resumes with `Last-Event-ID` on the other server gets what it missed; so does a
/// client of a server that restarted.
#[tokio::test]
async fn events_reach_the_clients_of_every_server_on_one_postgresql() {
    let url = common::fresh_postgres_database().await;
    let on_pg = || ServerOptions { args: vec!["--database".into(), url.clone()], ..Default::default() };
    let mut a = TestServer::start_with(on_pg());
    let b = TestServer::start_with(on_pg());
    let (admin_a, admin_b) = (a.admin().await, b.admin().await);
    let tokens = EventFilter { kind: Some("token".into()), resource_id: None };
    let mut on_b = Box::pin(admin_b.events(&tokens, None).await.unwrap());

    let created = admin_a.create_token(&CreateTokenRequest { name: "made-on-a".into(), ..Default::default() }).await;
    let created = created.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), on_b.next()).await.expect("B's stream hears A").unwrap();
    let event = event.unwrap();
    assert_eq!((event.kind.as_str(), event.resource_id.as_str()), ("token.created", created.token.id.as_str()));

    admin_a.delete_token("made-on-a").await.unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(10), on_b.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((deleted.kind.as_str(), deleted.id), ("token.deleted", event.id + 1), "in log order, no gap");

    // A restarted server replays from the log, not from memory.
    assert!(a.terminate().success());
    let data_dir = std::mem::replace(&mut a.data_dir, tempfile::tempdir().unwrap());
    let a = TestServer::start_in(data_dir, on_pg());
    let admin_a = a.admin().await;
    let mut resumed = Box::pin(admin_a.events(&tokens, Some(event.id)).await.unwrap());
    let replayed = tokio::time::timeout(Duration::from_secs(10), resumed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((replayed.kind.as_str(), replayed.id), ("token.deleted", deleted.id));
}
