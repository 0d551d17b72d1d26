//! `roost audit ls|export|verify` (admins).

use std::io::Write;

use roost_api::audit::AuditQuery;

use super::GlobalArgs;
use super::output::{print_block, print_list};

#[derive(Debug, Clone, clap::Args)]
pub struct AuditFilterArgs {
    /// User name, user id or token id
    #[arg(long)]
    pub actor: Option<String>,
    /// An action (token.create) or a prefix (token.)
    #[arg(long)]
    pub action: Option<String>,
    /// A resource id or type
    #[arg(long)]
    pub resource: Option<String>,
    /// RFC 3339 time or a duration ago (24h)
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339 time or a duration ago
    #[arg(long)]
    pub until: Option<String>,
}

impl AuditFilterArgs {
    fn query(&self) -> AuditQuery {
        AuditQuery {
            actor: self.actor.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            limit: None,
            cursor: None,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List entries, newest first
    #[command(visible_alias = "list")]
    Ls {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// How many entries
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Export entries as CSV (oldest first) to stdout or a file
    Export {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// CSV (the only format)
        #[arg(long, default_value_t = true)]
        csv: bool,
        /// Write to this file instead of stdout
        #[arg(long, short = 'f')]
        file: Option<std::path::PathBuf>,
    },
    /// Check the hash chain; exits non-zero and names the first broken entry if any
    Verify,
}

pub async fn run(global: &GlobalArgs, cmd: AuditCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        AuditCommand::Ls { filter, limit } => {
            let mut q = filter.query();
            let mut items = Vec::new();
            while items.len() < limit as usize {
                q.limit = Some((limit as usize - items.len()).min(1000) as u32);
                let page = client.list_audit(&q).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => break,
                }
            }
            print_list(
                global.output,
                &items,
                &["seq", "time", "actor", "action", "resource", "result", "source"],
                |e| {
                    vec![
                        e.seq.to_string(),
                        e.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                        e.actor_name.clone().unwrap_or_else(|| e.actor.clone()),
                        e.action.clone(),
                        e.resource_id.clone().unwrap_or_else(|| "-".into()),
                        e.result.clone(),
                        e.source.clone().unwrap_or_else(|| "-".into()),
                    ]
                },
            )
        }
        AuditCommand::Export { filter, file, .. } => {
            let csv = client.export_audit_csv(&filter.query()).await?;
            match file {
                Some(path) => {
                    std::fs::write(&path, csv.as_bytes())?;
                    eprintln!("Wrote {} entries to {}.", csv.lines().count().saturating_sub(1), path.display());
                }
                None => std::io::stdout().write_all(csv.as_bytes())?,
            }
            Ok(())
        }
        AuditCommand::Verify => {
            let v = client.verify_audit().await?;
            let mut fields = vec![
                ("result", if v.ok { "intact".to_string() } else { "BROKEN".to_string() }),
                ("checked", v.checked.to_string()),
                (
                    "starts after",
                    if v.starts_after == 0 {
                        "the beginning".into()
                    } else {
                        format!("archived entry {}", v.starts_after)
                    },
                ),
            ];
            if let Some(seq) = v.first_broken_seq {
                fields.push(("first broken", seq.to_string()));
            }
            if let Some(reason) = &v.reason {
                fields.push(("reason", reason.clone()));
            }
            print_block(global.output, &v, &fields)?;
            if !v.ok {
                anyhow::bail!("the audit chain is broken at entry {}", v.first_broken_seq.unwrap_or_default());
            }
            Ok(())
        }
    }
}
