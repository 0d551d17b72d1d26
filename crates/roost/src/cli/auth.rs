//! `roost login`, `logout`, `whoami`.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{Context, bail};
use roost_client::Client;

use super::output::{print_block, when};
use super::{ClientConfig, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// User name (asked for when absent)
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    /// Read the password from standard input instead of asking
    #[arg(long)]
    pub password_stdin: bool,
}

pub async fn login(global: &GlobalArgs, args: LoginArgs) -> anyhow::Result<()> {
    let mut config = ClientConfig::load()?;
    let server = global.server_url(&config);
    let client = Client::new(&server, None)?;
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username: ")?,
    };
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the password from standard input")?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").context("cannot read the password")?
    } else {
        bail!("no terminal to ask for the password: pass --password-stdin and pipe it in");
    };
    // Plain message: the "run roost login" hint of other 401s would not help here.
    let session = client.login(&username, &password).await.map_err(|e| anyhow::anyhow!(e.to_string()))?;
    config.server = Some(client.base_url().to_string());
    config.token = Some(session.token);
    config.username = Some(session.user.name.clone());
    let path = config.save()?;
    eprintln!(
        "Logged in to {} as {} ({}); session saved in {} until {}.",
        client.base_url(),
        session.user.name,
        session.user.role.as_str(),
        path.display(),
        session.expires_at.format("%Y-%m-%d %H:%M UTC")
    );
    Ok(())
}

fn prompt(label: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the user name: pass --username");
    }
    eprint!("{label}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim().to_string();
    if line.is_empty() {
        bail!("a user name is required");
    }
    Ok(line)
}

pub async fn logout(global: &GlobalArgs) -> anyhow::Result<()> {
    let mut config = ClientConfig::load()?;
    let server = global.server_url(&config);
    let Some(token) = config.token.clone() else {
        eprintln!("Not logged in.");
        return Ok(());
    };
    let client = Client::new(&server, Some(token))?;
    match client.logout().await {
        Ok(()) => {}
        // An expired or unknown session is as good as ended.
        Err(e) if e.status().map(|s| s.as_u16()) == Some(401) => {}
        Err(e) => eprintln!("warning: the server did not end the session ({e}); forgetting it here anyway"),
    }
    config.token = None;
    config.save()?;
    eprintln!("Logged out of {server}.");
    Ok(())
}

pub async fn whoami(global: &GlobalArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let me = client.whoami().await?;
    let mut fields = vec![
        ("user", me.user.name.clone()),
        ("id", me.user.id.clone()),
        ("role", me.user.role.as_str().to_string()),
        ("server", client.base_url().to_string()),
        ("auth", format!("{:?}", me.auth).to_lowercase()),
        ("scope", me.scope.to_string()),
    ];
    if let Some(name) = &me.token_name {
        fields.push(("token", format!("{name} ({})", me.token_id.clone().unwrap_or_default())));
    }
    fields.push(("expires", when(me.expires_at, "never")));
    print_block(global.output, &me, &fields)
}
