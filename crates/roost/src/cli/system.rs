//! `roost system backup`, `roost system tasks [ls|run NAME]`, `roost node show`.

use std::time::Duration;

use roost_api::system::{BackgroundTask, TaskOutcome};

use super::output::{ago, print_block, print_list, when};
use super::{GlobalArgs, operations};

#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Back up the embedded SQLite store into <data-dir>/backups/ (consistent, online)
    Backup {
        /// Return the operation at once instead of waiting
        #[arg(long)]
        no_wait: bool,
    },
    /// Background tasks: what each does, which server runs it, its last run (admins)
    Tasks {
        #[command(subcommand)]
        cmd: Option<TasksCommand>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TasksCommand {
    /// List the background tasks (the default)
    #[command(visible_alias = "list")]
    Ls,
    /// Run a task now, wait for that run and print its outcome
    Run {
        /// The task's name (`roost system tasks` lists them)
        name: String,
        /// Return once the run is asked for instead of waiting for it
        #[arg(long)]
        no_wait: bool,
    },
}

/// How long `tasks run` waits for the run to finish.
const RUN_WAIT: Duration = Duration::from_secs(60);

pub async fn run(global: &GlobalArgs, cmd: SystemCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        SystemCommand::Backup { no_wait } => {
            let op = client.create_backup().await?;
            let op = if no_wait { op } else { operations::wait(&client, &op.id).await? };
            print_block(global.output, &op, &operations::fields(&op))?;
            operations::finished_ok(&op)
        }
        SystemCommand::Tasks { cmd: None | Some(TasksCommand::Ls) } => {
            let tasks = client.list_tasks().await?;
            let headers = ["name", "period", "last run", "took", "outcome", "next run", "runs", "holder"];
            print_list(global.output, &tasks, &headers, |t| {
                let last = t.last_run.as_ref();
                vec![
                    t.name.clone(),
                    period(t.period_ms),
                    last.map(|r| ago(Some(r.started_at))).unwrap_or_else(|| "never".into()),
                    last.map(|r| took(r.elapsed_ms)).unwrap_or_else(|| "-".into()),
                    outcome(t, 40),
                    next_run(t),
                    t.runs.to_string(),
                    t.holder.clone().unwrap_or_else(|| "-".into()),
                ]
            })
        }
        SystemCommand::Tasks { cmd: Some(TasksCommand::Run { name, no_wait }) } => {
            let asked = client.run_task(&name).await?;
            let task = match asked.run_requested_at {
                Some(at) if !no_wait => wait_for_run(&client, &name, at).await?,
                _ => asked,
            };
            print_block(global.output, &task, &task_fields(&task))?;
            match &task.last_run {
                Some(r) if !no_wait && r.outcome == TaskOutcome::Error => {
                    anyhow::bail!("task '{}' failed: {}", task.name, r.error.as_deref().unwrap_or("unknown error"))
                }
                _ => Ok(()),
            }
        }
    }
}

/// Polls the task until a run that started at or after `at` has finished.
async fn wait_for_run(
    client: &roost_client::Client,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<BackgroundTask> {
    let deadline = tokio::time::Instant::now() + RUN_WAIT;
    loop {
        let task = client.get_task(name).await?;
        if task.last_run.as_ref().is_some_and(|r| r.started_at >= at) {
            return Ok(task);
        }
        if tokio::time::Instant::now() >= deadline {
            let who = match &task.holder {
                Some(h) => format!("server {h} holds it"),
                None => "no server holds it now".into(),
            };
            anyhow::bail!(
                "the run of '{name}' did not finish within {}s ({who}); `roost system tasks` shows it when it does",
                RUN_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn period(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn took(ms: u64) -> String {
    if ms < 1000 { format!("{ms}ms") } else { format!("{:.1}s", ms as f64 / 1000.0) }
}

/// `ok`, `error: <message>` (cut to `width`), or `-` before the first run.
fn outcome(t: &BackgroundTask, width: usize) -> String {
    match &t.last_run {
        None => "-".into(),
        Some(r) if r.outcome == TaskOutcome::Ok => "ok".into(),
        Some(r) => {
            let text = format!("error: {}", r.error.as_deref().unwrap_or(""));
            match text.char_indices().nth(width) {
                Some((i, _)) => format!("{}…", &text[..i]),
                None => text,
            }
        }
    }
}

fn next_run(t: &BackgroundTask) -> String {
    if t.run_requested_at.is_some() {
        return "asked".into();
    }
    match t.next_run_at {
        None => "-".into(),
        Some(at) if (at - chrono::Utc::now()).num_milliseconds() >= 1000 => ago(Some(at)),
        Some(_) => "now".into(),
    }
}

fn task_fields(t: &BackgroundTask) -> Vec<(&'static str, String)> {
    let last = t.last_run.as_ref();
    let mut fields = vec![
        ("name", t.name.clone()),
        ("description", t.description.clone()),
        ("period", period(t.period_ms)),
        ("holder", t.holder.clone().unwrap_or_else(|| "-".into())),
        ("runs", t.runs.to_string()),
        ("last run", when(last.map(|r| r.started_at), "never")),
    ];
    if let Some(r) = last {
        fields.push(("ran on", r.server.clone()));
        fields.push(("took", took(r.elapsed_ms)));
        fields.push(("outcome", r.outcome.as_str().to_string()));
        match (&r.details, &r.error) {
            (_, Some(e)) => fields.push(("error", e.clone())),
            (Some(d), None) => fields.push(("details", d.to_string())),
            (None, None) => {}
        }
    }
    if let Some(at) = t.run_requested_at {
        fields.push(("run asked", when(Some(at), "-")));
    }
    fields.push(("next run", next_run(t)));
    fields
}

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// What this server's node runs: instance types, and the microVM accelerator and why
    Show,
}

pub async fn run_node(global: &GlobalArgs, cmd: NodeCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        NodeCommand::Show => {
            let info = client.node_info().await?;
            let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let mut fields = vec![
                ("compute", if info.compute { "on".to_string() } else { "off".to_string() }),
                ("instance types", info.instance_types.join(", ")),
                ("accelerator", opt(&info.accelerator)),
                ("why", opt(&info.accelerator_reason)),
            ];
            if !info.kvm_checks.is_empty() {
                let checks: Vec<String> = info
                    .kvm_checks
                    .iter()
                    .map(|c| format!("{} {} ({})", c.name, if c.passed { "ok" } else { "FAILED" }, c.detail))
                    .collect();
                fields.push(("kvm checks", checks.join("; ")));
            }
            if let Some(khz) = info.tsc_khz {
                fields.push(("tsc khz", khz.to_string()));
            }
            if let Some(why) = &info.vm_unavailable {
                fields.push(("vms unavailable", why.clone()));
            }
            print_block(global.output, &info, &fields)
        }
    }
}
