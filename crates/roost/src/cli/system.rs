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
