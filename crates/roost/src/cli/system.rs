//! `roost system backup`.

use super::output::print_block;
use super::{GlobalArgs, operations};

#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Back up the embedded SQLite store into <data-dir>/backups/ (consistent, online)
    Backup {
        /// Return the operation at once instead of waiting
        #[arg(long)]
        no_wait: bool,
    },
}

pub async fn run(global: &GlobalArgs, cmd: SystemCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        SystemCommand::Backup { no_wait } => {
            let op = client.create_backup().await?;
            let op = if no_wait { op } else { operations::wait(&client, &op.id).await? };
            print_block(global.output, &op, &operations::fields(&op))?;
            operations::finished_ok(&op)
        }
    }
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
