//! `roost sandbox key create|ls`: keys for the E2B-compatible sandbox API.

use roost_api::sandboxes::CreateSandboxKeyRequest;

use super::GlobalArgs;
use super::output::{ago, print_list, print_structured};

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Keys of the E2B-compatible API (E2B_API_KEY)
    #[command(subcommand, visible_alias = "keys")]
    Key(SandboxKeyCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum SandboxKeyCommand {
    /// Create a key (`e2b_` + 40 hex); its secret is printed once, alone on stdout
    Create {
        /// A label for the key
        name: String,
        /// Most sandboxes alive at once
        #[arg(long)]
        max_sandboxes: Option<u32>,
        /// Most creations per minute (more get 429 with Retry-After)
        #[arg(long)]
        creates_per_minute: Option<u32>,
    },
    /// List keys
    #[command(visible_alias = "list")]
    Ls,
}

pub async fn run(global: &GlobalArgs, cmd: SandboxCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        SandboxCommand::Key(SandboxKeyCommand::Create { name, max_sandboxes, creates_per_minute }) => {
            let req = CreateSandboxKeyRequest {
                name,
                project: global.project_name()?,
                max_sandboxes,
                creates_per_minute,
            };
            let created = client.create_sandbox_key(&req).await?;
            if print_structured(global.output, &created)? {
                return Ok(());
            }
            eprintln!(
                "Created sandbox key '{}' ({}). Set it as E2B_API_KEY; it is not shown again:",
                created.key.name, created.key.id
            );
            println!("{}", created.secret);
            Ok(())
        }
        SandboxCommand::Key(SandboxKeyCommand::Ls) => {
            let keys = client.list_sandbox_keys().await?;
            print_list(global.output, &keys, &["name", "id", "prefix", "max sandboxes", "per minute", "created"], |k| {
                vec![
                    k.name.clone(),
                    k.id.clone(),
                    format!("{}…", k.prefix),
                    k.max_sandboxes.to_string(),
                    k.creates_per_minute.to_string(),
                    ago(Some(k.created_at)),
                ]
            })
        }
    }
}
