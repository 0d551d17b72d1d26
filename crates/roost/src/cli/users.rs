//! `roost user …` (admins), `roost passwd` and `roost profile` (everyone).

use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};
use roost_api::ListParams;
use roost_api::auth::Role;
use roost_api::users::{CreateUserRequest, UpdateUserRequest, UserDetails};

use super::output::{ago, print_block, print_list, print_structured, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a one-time password unless --password-stdin gives one
    Create {
        name: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Viewer)]
        role: RoleArg,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the initial password from standard input
        #[arg(long)]
        password_stdin: bool,
        /// Projects to join (repeatable; default: the default project)
        #[arg(long = "join", value_name = "PROJECT")]
        projects: Vec<String>,
    },
    /// List users
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a user (`me` for yourself)
    Show { name: String },
    /// Change a user's role, email or display name
    Set {
        name: String,
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Disable a user: their sessions end and tokens stop at once
    Disable { name: String },
    /// Enable a disabled user
    Enable { name: String },
    /// Delete a user
    #[command(visible_alias = "delete")]
    Rm { name: String },
    /// Set a new password (generated and printed once, or from --password-stdin)
    ResetPassword {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn read_stdin_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("cannot read the password from standard input")?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

pub async fn run(global: &GlobalArgs, cmd: UserCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        UserCommand::Create { name, role, email, display_name, password_stdin, projects } => {
            let password = password_stdin.then(read_stdin_password).transpose()?;
            let req = CreateUserRequest {
                name,
                role: Some(role.into()),
                email,
                display_name,
                password,
                projects: (!projects.is_empty()).then_some(projects),
            };
            let created = client.create_user(&req).await?;
            if print_structured(global.output, &created)? {
                return Ok(());
            }
            eprintln!(
                "Created user '{}' ({}), role {}.",
                created.user.name,
                created.user.id,
                created.user.role.as_str()
            );
            if let Some(password) = created.password {
                eprintln!("One-time password (shown only now; they can change it with 'roost passwd'):");
                println!("{password}");
            }
            Ok(())
        }
        UserCommand::Ls(page) => {
            let users: Vec<UserDetails> = page.fetch(&client, "/v1/users", ListParams::default()).await?;
            print_list(global.output, &users, &["name", "id", "role", "status", "email", "created"], |u| {
                vec![
                    u.user.name.clone(),
                    u.user.id.clone(),
                    u.user.role.as_str().into(),
                    if u.disabled { "disabled" } else { "active" }.into(),
                    u.user.email.clone().unwrap_or_else(|| "-".into()),
                    ago(Some(u.user.created_at)),
                ]
            })
        }
        UserCommand::Show { name } => {
            let u = client.get_user(&name).await?;
            print_block(global.output, &u, &user_fields(&u))
        }
        UserCommand::Set { name, role, email, display_name } => {
            let req = UpdateUserRequest {
                email: email.map(Some),
                display_name: display_name.map(Some),
                role: role.map(Into::into),
            };
            let u = client.update_user(&name, &req).await?;
            print_block(global.output, &u, &user_fields(&u))
        }
        UserCommand::Disable { name } => {
            let u = client.set_user_disabled(&name, true).await?;
            eprintln!("Disabled user '{}': their sessions ended and their tokens no longer work.", u.user.name);
            Ok(())
        }
        UserCommand::Enable { name } => {
            let u = client.set_user_disabled(&name, false).await?;
            eprintln!("Enabled user '{}'.", u.user.name);
            Ok(())
        }
        UserCommand::Rm { name } => {
            let u = client.get_user(&name).await?;
            client.delete_user(&u.user.id).await?;
            eprintln!("Deleted user '{}' ({}).", u.user.name, u.user.id);
            Ok(())
        }
        UserCommand::ResetPassword { name, password_stdin } => {
            let password = password_stdin.then(read_stdin_password).transpose()?;
            let reset = client.reset_password(&name, password).await?;
            match reset.password {
                Some(p) => {
                    eprintln!("New one-time password for '{name}' (their sessions ended):");
                    println!("{p}");
                }
                None => eprintln!("Password of '{name}' set; their sessions ended."),
            }
            Ok(())
        }
    }
}

fn user_fields(u: &UserDetails) -> Vec<(&'static str, String)> {
    vec![
        ("name", u.user.name.clone()),
        ("id", u.user.id.clone()),
        ("role", u.user.role.as_str().into()),
        ("status", if u.disabled { "disabled" } else { "active" }.into()),
        ("display name", u.user.display_name.clone().unwrap_or_else(|| "-".into())),
        ("email", u.user.email.clone().unwrap_or_else(|| "-".into())),
        ("created", when(Some(u.user.created_at), "-")),
        ("updated", when(Some(u.updated_at), "-")),
    ]
}

#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Read the current and the new password from standard input, one per line
    #[arg(long)]
    pub password_stdin: bool,
}

/// `roost passwd`: change your own password.
pub async fn passwd(global: &GlobalArgs, args: PasswdArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let (current, new) = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        let mut lines = text.lines();
        match (lines.next(), lines.next()) {
            (Some(c), Some(n)) => (c.to_string(), n.to_string()),
            _ => bail!("--password-stdin expects two lines: the current password, then the new one"),
        }
    } else if std::io::stdin().is_terminal() {
        let current = rpassword::prompt_password("Current password: ")?;
        let new = rpassword::prompt_password("New password: ")?;
        if rpassword::prompt_password("New password again: ")? != new {
            bail!("the new passwords differ; nothing changed");
        }
        (current, new)
    } else {
        bail!("no terminal to ask for passwords: pass --password-stdin");
    };
    client.change_password(&current, &new).await?;
    eprintln!("Password changed; your other sessions ended.");
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    #[arg(long)]
    pub display_name: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
}

/// `roost profile`: show or edit your own display name and email.
pub async fn profile(global: &GlobalArgs, args: ProfileArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let u = if args.display_name.is_some() || args.email.is_some() {
        let req =
            UpdateUserRequest { email: args.email.map(Some), display_name: args.display_name.map(Some), role: None };
        client.update_user("me", &req).await?
    } else {
        client.get_user("me").await?
    };
    print_block(global.output, &u, &user_fields(&u))
}
