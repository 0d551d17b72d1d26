//! Background tasks end to end: listing them, running one by API and by CLI, its status
//! after a success and after a real failure, who may do that, the audit trail, and two
//! `roost server` processes on one PostgreSQL running each task on one server at a time.

mod common;

use std::time::Duration;

use common::{ServerOptions, TestServer, stderr, stdout};
use roost_api::audit::AuditQuery;
use roost_api::auth::Role;
use roost_api::system::{BackgroundTask, TaskOutcome};
use roost_api::users::CreateUserRequest;
use roost_client::{Client, ClientError};

fn status(err: &ClientError) -> u16 {
    err.status().map(|s| s.as_u16()).unwrap_or(0)
}

/// This server's id, from its start-up log line.
fn server_id(server: &TestServer) -> String {
    let output = server.output();
    let line = output.lines().find(|l| l.contains("this server's id")).expect("the server logs its id");
    let at = line.find("srv-").expect("an id in the line");
    line[at..at + 16].to_string()
}

/// Polls the task until `done` holds (the driver runs it in the background).
async fn wait_task(client: &Client, name: &str, what: &str, done: impl Fn(&BackgroundTask) -> bool) -> BackgroundTask {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let task = client.get_task(name).await.unwrap();
        if done(&task) {
            return task;
        }
        assert!(std::time::Instant::now() < deadline, "{name}: {what} did not happen: {task:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks for a run and waits for that run to finish.
async fn run_and_wait(client: &Client, name: &str) -> BackgroundTask {
    let asked = client.run_task(name).await.unwrap();
    let at = asked.run_requested_at;
    wait_task(client, name, "the asked-for run", |t| {
        t.run_requested_at.is_none() && t.last_run.as_ref().is_some_and(|r| at.is_none_or(|at| r.started_at >= at))
    })
    .await
}

#[tokio::test]
async fn admins_list_and_run_background_tasks() {
    let server = TestServer::start();
    let me = server_id(&server);
    let admin = server.admin().await;

    // The server-wide tasks of a server without compute; each ran once at start.
    let tasks = admin.list_tasks().await.unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    for expected in ["housekeeping", "s3_housekeeping", "sandbox_expiry"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(!names.contains(&"instance_reconciler"), "node tasks only where a node is attached: {names:?}");
    let expiry = tasks.iter().find(|t| t.name == "sandbox_expiry").unwrap();
    assert_eq!(expiry.period_ms, 1000);
    assert!(!expiry.description.is_empty());
    let first = wait_task(&admin, "housekeeping", "the first run at start", |t| t.runs >= 1).await;
    assert_eq!(first.holder.as_deref(), Some(me.as_str()), "this server holds the lease (SQLite: the only one)");
    let last = first.last_run.clone().unwrap();
    assert_eq!((last.outcome, last.server.as_str()), (TaskOutcome::Ok, me.as_str()));
    let details = last.details.as_ref().unwrap();
    assert!(details.get("expired_sessions").is_some() && details.get("events").is_some(), "{last:?}");
    assert!(first.next_run_at.unwrap() > last.started_at);

    // By API: 202 and the task, with the run asked for; then the run, counted.
    let http = common::http();
    let token = admin.token().unwrap().to_string();
    let resp =
        http.post(format!("{}/v1/system/tasks/housekeeping/run", server.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let asked: BackgroundTask = resp.json().await.unwrap();
    assert_eq!(asked.name, "housekeeping");
    let ran = wait_task(&admin, "housekeeping", "the API's run", |t| {
        t.last_run.as_ref().is_some_and(|r| asked.run_requested_at.is_none_or(|at| r.started_at >= at))
    })
    .await;
    assert!(ran.runs > first.runs, "{} then {}", first.runs, ran.runs);
    assert_eq!(ran.last_run.as_ref().unwrap().outcome, TaskOutcome::Ok);

    // By CLI: `run` waits for its run and prints the outcome; the table lists it.
    let login = server.cli(&["login", "--username", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(login.status.success(), "{}", stderr(&login));
    let before = admin.get_task("housekeeping").await.unwrap().runs;
    let out = server.cli(&["system", "tasks", "run", "housekeeping"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("outcome:") && text.contains(" ok"), "{text}");
    assert!(text.contains("expired_sessions"), "the details are printed: {text}");
    assert!(admin.get_task("housekeeping").await.unwrap().runs > before);
    let out = server.cli(&["system", "tasks"], None, &[]);
    let table = stdout(&out);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "PERIOD", "LAST RUN", "TOOK", "OUTCOME", "NEXT RUN", "RUNS", "HOLDER"] {
        assert!(header.contains(column), "{column} in {header}");
    }
    let row = table.lines().find(|l| l.starts_with("sandbox_expiry ")).expect("a row per task");
    assert!(row.contains(" 1s ") && row.contains(&me), "{row}");
    let out = server.cli(&["system", "tasks", "ls", "-o", "json"], None, &[]);
    let listed: Vec<BackgroundTask> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed.len(), tasks.len());

    // Unknown names: 404 from the API and the CLI.
    let err = admin.run_task("no_such_task").await.unwrap_err();
    assert_eq!(status(&err), 404);
    assert_eq!(status(&admin.get_task("no_such_task").await.unwrap_err()), 404);
    let out = server.cli(&["system", "tasks", "run", "no_such_task"], None, &[]);
    assert!(!out.status.success() && stderr(&out).contains("not found"), "{}", stderr(&out));

    // Not an admin: 403 for both.
    let req = CreateUserRequest {
        name: "olga".into(),
        role: Some(Role::Operator),
        password: Some("olga-password-1".into()),
        ..Default::default()
    };
    admin.create_user(&req).await.unwrap();
    let session = server.anonymous().login("olga", "olga-password-1").await.unwrap();
    let olga = Client::new(&server.url, Some(session.token)).unwrap();
    assert_eq!(status(&olga.list_tasks().await.unwrap_err()), 403);
    assert_eq!(status(&olga.run_task("housekeeping").await.unwrap_err()), 403);

    // Audited: the runs as the admin, the refusals and the unknown name as failures.
    let query = AuditQuery { action: Some("system.task.run".into()), limit: Some(100), ..Default::default() };
    let entries = admin.list_audit(&query).await.unwrap().items;
    let admin_id = admin.whoami().await.unwrap().user.id;
    let ok: Vec<_> = entries.iter().filter(|e| e.result == "success").collect();
    assert_eq!(ok.len(), 2, "the API's and the CLI's run: {entries:?}");
    for e in &ok {
        assert_eq!((e.actor.as_str(), e.resource_type.as_deref()), (admin_id.as_str(), Some("task")));
        assert_eq!(e.resource_id.as_deref(), Some("housekeeping"));
    }
    assert!(
        entries.iter().any(|e| e.result == "failure: forbidden" && e.resource_id.as_deref() == Some("housekeeping"))
    );
    assert!(
        entries.iter().any(|e| e.result == "failure: not_found" && e.resource_id.as_deref() == Some("no_such_task"))
    );
}

#[tokio::test]
async fn a_failing_task_keeps_its_error_and_recovers() {
    // Audit retention of a second: the housekeeping archives entries into
    // <data-dir>/audit-archive/, which is made a file here, so the archive cannot be
    // written (a real failure of the real task).
    let server = TestServer::start_with(ServerOptions {
        args: vec!["--audit-retention".into(), "1s".into()],
        ..Default::default()
    });
    let admin = server.admin().await;
    let archive = server.data_path().join("audit-archive");
    let _ = std::fs::remove_dir_all(&archive);
    std::fs::write(&archive, b"not a directory").unwrap();
    // An entry older than the retention.
    admin.list_tasks().await.unwrap();
    let login = server.anonymous().login("admin", common::ADMIN_PASSWORD).await.unwrap();
    drop(login);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let failed = run_and_wait(&admin, "housekeeping").await;
    let last = failed.last_run.clone().unwrap();
    assert_eq!(last.outcome, TaskOutcome::Error, "{failed:?}");
    assert!(last.error.as_deref().unwrap().contains("audit retention"), "{last:?}");
    assert!(last.details.is_none());
    let mut errors = vec![last.error.unwrap()];
    // The CLI prints it and fails.
    let login = server.cli(&["login", "--username", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
    assert!(login.status.success(), "{}", stderr(&login));
    let out = server.cli(&["system", "tasks", "run", "housekeeping"], None, &[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("audit retention"), "{}", stderr(&out));
    assert!(stdout(&out).contains("error:"), "{}", stdout(&out));
    errors.push(admin.get_task("housekeeping").await.unwrap().last_run.unwrap().error.unwrap());
    let again = run_and_wait(&admin, "housekeeping").await;
    errors.push(again.last_run.unwrap().error.expect("still failing"));
    let table = stdout(&server.cli(&["system", "tasks"], None, &[]));
    assert!(table.lines().any(|l| l.starts_with("housekeeping ") && l.contains("error: audit retention")), "{table}");
    // Logged once per error, not once per failing run (the message names the archive
    // file, which changes when more entries have become old enough).
    let changes = 1 + errors.windows(2).filter(|w| w[0] != w[1]).count();
    let output = server.output();
    let logged = output.lines().filter(|l| l.contains("background task failed") && l.contains("housekeeping")).count();
    assert_eq!(logged, changes, "{errors:?}\n{output}");

    // Fixed: the next run is ok again.
    std::fs::remove_file(&archive).unwrap();
    let fixed = run_and_wait(&admin, "housekeeping").await;
    assert_eq!(fixed.last_run.unwrap().outcome, TaskOutcome::Ok);
    assert!(fixed.runs >= failed.runs + 3);
    assert!(archive.is_dir(), "the archive was written");
    assert!(server.output().contains("background task recovered"));
}

#[tokio::test]
async fn a_restart_after_a_crash_takes_the_tasks_over_at_once() {
    // An hour's lease: without the take-over, the next process would wait that long for
    // the leases its killed predecessor left.
    let options = || ServerOptions { args: vec!["--task-lease".into(), "1h".into()], ..Default::default() };
    let mut server = TestServer::start_with(options());
    let before = server_id(&server);
    let admin = server.admin().await;
    wait_task(&admin, "housekeeping", "a holder", |t| t.holder.as_deref() == Some(before.as_str())).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    drop(server);
    let again = TestServer::start_in(data_dir, options());
    let after = server_id(&again);
    assert_ne!(before, after, "a new id at every start");
    assert_eq!(std::fs::read_to_string(again.data_path().join("server-id")).unwrap().trim(), after);
    let admin = again.admin().await;
    for name in ["housekeeping", "sandbox_expiry", "s3_housekeeping"] {
        let task = wait_task(&admin, name, "the new process's run", |t| {
            t.last_run.as_ref().is_some_and(|r| r.server == after)
        })
        .await;
        assert_eq!(task.holder.as_deref(), Some(after.as_str()), "{name}");
    }
}

/// One activation of a task as the servers logged it (`roost_control::tasks` at debug).
#[derive(Debug)]
struct Activation {
    server: String,
    started: chrono::DateTime<chrono::Utc>,
    finished: chrono::DateTime<chrono::Utc>,
}

/// The activations of `task` in a server's JSON log, in order.
fn activations(server: &TestServer, task: &str) -> Vec<Activation> {
    let mut out = Vec::new();
    let mut open: Option<(String, chrono::DateTime<chrono::Utc>)> = None;
    for line in server.output().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["task"] != task {
            continue;
        }
        let Ok(at) = v["timestamp"].as_str().unwrap_or_default().parse::<chrono::DateTime<chrono::Utc>>() else {
            continue;
        };
        match v["message"].as_str() {
            Some("background task activation started") => {
                open = Some((v["server"].as_str().unwrap_or_default().to_string(), at));
            }
            Some("background task activation finished") => {
                let (server, started) = open.take().expect("a start before each finish");
                out.push(Activation { server, started, finished: at });
            }
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn two_servers_on_one_postgresql_run_each_task_on_one_server_at_a_time() {
    let url = common::fresh_postgres_database().await;
    // Compute off on both (the harness's default, said here because it matters): two
    // nodes on one host would share its bridges and firewall, and the node-facing tasks
    // are registered only where a node is attached. A short lease, so a takeover after
    // a crash takes seconds.
    let options = || ServerOptions {
        args: vec![
            "--database".into(),
            url.clone(),
            "--compute".into(),
            "off".into(),
            "--task-lease".into(),
            "3s".into(),
            "--log-format".into(),
            "json".into(),
            "--log-level".into(),
            "info,roost_control::tasks=debug".into(),
        ],
        ..Default::default()
    };
    let first = TestServer::start_with(options());
    let second = TestServer::start_with(options());
    let (id_first, id_second) = (server_id(&first), server_id(&second));
    assert_ne!(id_first, id_second);
    let on_first = first.admin().await;
    let on_second = second.admin().await;

    // One holder per task, the same seen from both servers.
    let task = "housekeeping";
    let held = wait_task(&on_first, task, "a holder and a first run", |t| t.holder.is_some() && t.runs >= 1).await;
    let holder = held.holder.clone().unwrap();
    assert!(holder == id_first || holder == id_second, "{holder}");
    for name in ["housekeeping", "sandbox_expiry", "s3_housekeeping"] {
        let a = wait_task(&on_first, name, "a holder", |t| t.holder.is_some()).await;
        let b = on_second.get_task(name).await.unwrap();
        assert_eq!(a.holder, b.holder, "{name}: both servers see one holder");
    }

    // Runs asked of both servers at once: all run on the holder, one at a time.
    let mut asks = Vec::new();
    for i in 0..20 {
        let client = if i % 2 == 0 { on_first.clone() } else { on_second.clone() };
        asks.push(tokio::spawn(async move { client.run_task("housekeeping").await.unwrap() }));
    }
    let mut latest = None;
    for ask in asks {
        latest = latest.max(ask.await.unwrap().run_requested_at);
    }
    let latest = latest.expect("runs asked for");
    let done = wait_task(&on_second, task, "the runs asked of both servers", |t| {
        t.last_run.as_ref().is_some_and(|r| r.started_at >= latest) && t.run_requested_at.is_none()
    })
    .await;
    let (holding, other) = if holder == id_first { (&first, &second) } else { (&second, &first) };
    let ran = activations(holding, task);
    assert!(activations(other, task).is_empty(), "the server without the lease never ran it");
    assert!(ran.len() >= 2, "the first run and at least one asked-for run: {ran:?}");
    assert!(ran.iter().all(|a| a.server == holder));
    for pair in ran.windows(2) {
        assert!(pair[0].finished <= pair[1].started, "activations overlap: {pair:?}");
    }
    let now = on_first.get_task(task).await.unwrap();
    assert!(now.runs >= ran.len() as u64 && now.runs >= done.runs, "every run recorded once");
    assert_eq!(done.last_run.as_ref().unwrap().server, holder);
    // The same for the task that runs every second: one server, never overlapping.
    let expiry = activations(holding, "sandbox_expiry");
    assert!(!expiry.is_empty());
    assert!(activations(other, "sandbox_expiry").is_empty());
    for pair in expiry.windows(2) {
        assert!(pair[0].finished <= pair[1].started, "activations overlap: {pair:?}");
    }

    // The holder dies without a word: once its lease runs out, the other takes over.
    let (mut dead, survivor, survivor_id, client) =
        if holder == id_first { (first, second, id_second, on_second) } else { (second, first, id_first, on_first) };
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let taken = wait_task(&client, task, "the takeover", |t| t.holder.as_deref() == Some(survivor_id.as_str())).await;
    assert_eq!(taken.holder.as_deref(), Some(survivor_id.as_str()));
    let after = run_and_wait(&client, task).await;
    let last = after.last_run.unwrap();
    assert_eq!((last.server.as_str(), last.outcome), (survivor_id.as_str(), TaskOutcome::Ok));
    assert!(after.runs > now.runs);
    let took_over = activations(&survivor, task);
    assert!(!took_over.is_empty() && took_over.iter().all(|a| a.server == survivor_id));
    for name in ["sandbox_expiry", "s3_housekeeping"] {
        wait_task(&client, name, "the takeover", |t| t.holder.as_deref() == Some(survivor_id.as_str())).await;
    }
}
