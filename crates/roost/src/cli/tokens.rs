//! `roost token create|ls|show|rm`.

use roost_api::ListParams;
use roost_api::tokens::{CreateTokenRequest, Scope, Token};

use super::output::{ago, print_block, print_list, print_structured, until, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once (alone on stdout, for scripts)
    Create {
        /// Unique among your tokens
        name: String,
        /// What it may do
        #[arg(long, value_enum, default_value_t = ScopeArg::Read)]
        scope: ScopeArg,
        /// Lifetime, e.g. 30d, 12h (default: never expires)
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Restrict the token to this project
        #[arg(long = "only-project", value_name = "PROJECT")]
        only_project: Option<String>,
    },
    /// List your tokens
    #[command(visible_alias = "list")]
    Ls {
        /// Only names matching this glob (`ci*`)
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one token
    Show { name: String },
    /// Rename a token (scope and expiry never change)
    #[command(visible_alias = "set")]
    Update {
        name: String,
        /// The new name
        #[arg(long = "name", value_name = "NEW_NAME")]
        new_name: String,
    },
    /// Delete (revoke) a token
    #[command(visible_aliases = ["delete", "revoke"])]
    Rm { name: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ScopeArg {
    Read,
    Write,
    Admin,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Read => Scope::Read,
            ScopeArg::Write => Scope::Write,
            ScopeArg::Admin => Scope::Admin,
        }
    }
}

pub async fn run(global: &GlobalArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        TokenCommand::Create { name, scope, expires, only_project } => {
            let req = CreateTokenRequest {
                name,
                scope: Some(scope.into()),
                expires_in: expires,
                expires_at: None,
                project: only_project,
            };
            let created = client.create_token(&req).await?;
            if print_structured(global.output, &created)? {
                return Ok(());
            }
            let t = &created.token;
            eprintln!(
                "Created token '{}' ({}), scope {}, expires {}. Its secret follows; it is not shown again:",
                t.name,
                t.id,
                t.scope,
                t.expires_at.map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "never".into())
            );
            println!("{}", created.secret);
            Ok(())
        }
        TokenCommand::Ls { name, page } => {
            let params = ListParams { name, ..Default::default() };
            let tokens: Vec<Token> = page.fetch(&client, "/v1/tokens", params).await?;
            print_list(global.output, &tokens, &["name", "prefix", "scope", "created", "expires", "last used"], |t| {
                vec![
                    t.name.clone(),
                    format!("{}…", t.prefix),
                    t.scope.to_string(),
                    ago(Some(t.created_at)),
                    until(t.expires_at),
                    t.last_used_at.map(|l| ago(Some(l))).unwrap_or_else(|| "never".into()),
                ]
            })
        }
        TokenCommand::Show { name } => {
            let t = client.get_token(&name).await?;
            print_block(global.output, &t, &token_fields(&t))
        }
        TokenCommand::Update { name, new_name } => {
            let req = roost_api::tokens::UpdateTokenRequest { name: Some(new_name) };
            let t = client.update_token(&name, &req).await?;
            print_block(global.output, &t, &token_fields(&t))
        }
        TokenCommand::Rm { name } => {
            let t = client.get_token(&name).await?;
            client.delete_token(&t.id).await?;
            eprintln!("Deleted token '{}' ({}); it no longer works.", t.name, t.id);
            Ok(())
        }
    }
}

fn token_fields(t: &Token) -> Vec<(&'static str, String)> {
    vec![
        ("name", t.name.clone()),
        ("id", t.id.clone()),
        ("prefix", format!("{}…", t.prefix)),
        ("scope", t.scope.to_string()),
        ("created", when(Some(t.created_at), "-")),
        (
            "expires",
            match t.expires_at {
                None => "never".into(),
                Some(e) => format!("{} ({})", e.format("%Y-%m-%d %H:%M:%S UTC"), until(Some(e))),
            },
        ),
        ("last used", when(t.last_used_at, "never")),
    ]
}
