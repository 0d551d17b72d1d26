//! `roost operation ls|show|wait`.

use roost_api::ListParams;
use roost_api::operations::Operation;
use roost_client::Client;

use super::GlobalArgs;
use super::output::{ago, print_block, print_list, when};

#[derive(Debug, clap::Subcommand)]
pub enum OperationCommand {
    /// List recent operations
    #[command(visible_alias = "list")]
    Ls {
        /// How many to show
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one operation
    Show { id: String },
    /// Wait until an operation has finished; exits non-zero if it failed
    Wait { id: String },
}

pub async fn run(global: &GlobalArgs, cmd: OperationCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        OperationCommand::Ls { limit } => {
            let page = client.list_operations(&ListParams { limit: Some(limit), ..Default::default() }).await?;
            print_list(global.output, &page.items, &["id", "kind", "status", "progress", "created", "resource"], |op| {
                vec![
                    op.id.clone(),
                    op.kind.clone(),
                    op.status.as_str().to_string(),
                    format!("{}%", op.progress),
                    ago(Some(op.created_at)),
                    op.resource_id.clone().unwrap_or_else(|| "-".into()),
                ]
            })
        }
        OperationCommand::Show { id } => {
            let op = client.get_operation(&id, None).await?;
            print_block(global.output, &op, &fields(&op))
        }
        OperationCommand::Wait { id } => {
            let op = wait(&client, &id).await?;
            print_block(global.output, &op, &fields(&op))?;
            finished_ok(&op)
        }
    }
}

/// Waits for an operation, showing its progress on stderr.
pub async fn wait(client: &Client, id: &str) -> anyhow::Result<Operation> {
    let mut progress = Progress::default();
    let op = client.wait_operation(id, |op| progress.show(op)).await?;
    Ok(op)
}

/// An operation's progress on stderr, one line per change:
/// `op-… running 40% installing packages`.
#[derive(Default)]
pub struct Progress {
    last: String,
}

impl Progress {
    pub fn show(&mut self, op: &Operation) {
        let line = format!(
            "{} {} {}%{}",
            op.id,
            op.status.as_str(),
            op.progress,
            op.message.as_deref().map(|m| format!(" {m}")).unwrap_or_default()
        );
        if line != self.last {
            eprintln!("{line}");
            self.last = line;
        }
    }
}

/// An error when the operation failed, carrying its reason.
pub fn finished_ok(op: &Operation) -> anyhow::Result<()> {
    match &op.error {
        Some(err) => anyhow::bail!("operation {} failed: {} ({})", op.id, err.message, err.code),
        None => Ok(()),
    }
}

pub fn fields(op: &Operation) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("id", op.id.clone()),
        ("kind", op.kind.clone()),
        ("status", op.status.as_str().to_string()),
        ("progress", format!("{}%", op.progress)),
    ];
    if let Some(m) = &op.message {
        f.push(("message", m.clone()));
    }
    if let Some(e) = &op.error {
        f.push(("error", format!("{} ({})", e.message, e.code)));
    }
    if let Some(r) = &op.result {
        f.push(("result", r.to_string()));
    }
    if let (Some(t), Some(id)) = (&op.resource_type, &op.resource_id) {
        f.push(("resource", format!("{t} {id}")));
    }
    f.push(("created", when(Some(op.created_at), "-")));
    f.push(("finished", when(op.finished_at, "-")));
    f
}
