//! The command-line client: global options, the saved session, and output formats.

pub mod audit;
pub mod auth;
pub mod buckets;
pub mod events;
pub mod images;
pub mod instances;
pub mod networks;
pub mod operations;
pub mod output;
pub mod projects;
pub mod sandbox_templates;
pub mod sandboxes;
pub mod ssh_keys;
pub mod system;
pub mod terminal;
pub mod tokens;
pub mod users;
pub mod volumes;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::Context;
use roost_client::{Client, ClientError};
use serde::{Deserialize, Serialize};

pub use output::OutputFormat;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Server URL [env: ROOST_SERVER] [default: the logged-in server, else http://127.0.0.1:7700]
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Output format
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Project to act in [env: ROOST_PROJECT] [default: the one chosen with 'roost project use', else default]
    #[arg(long, short = 'p', global = true, value_name = "PROJECT")]
    pub project: Option<String>,
}

/// `--limit` and `--cursor` of a list command. Without `--limit` it shows every item
/// (following the pages); with it, one page, and prints the cursor of the next one.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PageArgs {
    /// Show one page of at most this many (1-1000); default: everything
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this cursor (printed by a previous --limit)
    #[arg(long, requires = "limit")]
    pub cursor: Option<String>,
}

impl PageArgs {
    /// The items of the collection at `path` with `params`' filters.
    pub async fn fetch<T, P>(&self, client: &Client, path: &str, mut params: P) -> anyhow::Result<Vec<T>>
    where
        T: serde::de::DeserializeOwned,
        P: roost_client::Paged + Serialize,
    {
        let Some(limit) = self.limit else { return Ok(client.all(path, params).await?) };
        params.default_limit(limit);
        if let Some(c) = &self.cursor {
            params.set_cursor(c.clone());
        }
        let page: roost_api::Page<T> = client.page(path, &params).await?;
        if let Some(next) = page.next_cursor {
            eprintln!("(more: --limit {limit} --cursor {next})");
        }
        Ok(page.items)
    }
}

/// An optional text flag of an `update`: absent leaves the field, `''` clears it.
pub fn patch_text(value: Option<String>) -> Option<Option<String>> {
    value.map(|v| (!v.is_empty()).then_some(v))
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`) for the switches of an `update`.
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "enabled" => Ok(true),
        "off" | "false" | "no" | "0" | "disabled" => Ok(false),
        _ => Err(format!("'{text}' is not on or off")),
    }
}

/// What `roost login` keeps (`~/.config/roost/config.toml`, mode 0600).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The session token of the last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The current project (`roost project use`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl ClientConfig {
    /// `$ROOST_CONFIG_FILE`, else `$XDG_CONFIG_HOME/roost/config.toml`, else
    /// `~/.config/roost/config.toml`.
    pub fn path() -> anyhow::Result<PathBuf> {
        if let Some(p) = std::env::var_os("ROOST_CONFIG_FILE").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
        };
        Ok(base.join("roost").join("config.toml"))
    }

    pub fn load() -> anyhow::Result<ClientConfig> {
        let path = Self::path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file readable by its owner only (it holds a credential).
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = toml::to_string(self).context("config serializes")?;
        let tmp = path.with_extension("toml.tmp");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

impl GlobalArgs {
    /// The server: `--server`, else `ROOST_SERVER`, else the saved one, else the default.
    pub fn server_url(&self, config: &ClientConfig) -> String {
        self.server
            .clone()
            .or_else(|| std::env::var("ROOST_SERVER").ok().filter(|s| !s.is_empty()))
            .or_else(|| config.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string())
    }

    /// The project commands act in: `--project`, else `ROOST_PROJECT`, else the saved
    /// current project; `None` means the server's default.
    pub fn project_name(&self) -> anyhow::Result<Option<String>> {
        if let Some(p) = &self.project {
            return Ok(Some(p.clone()));
        }
        if let Some(p) = std::env::var("ROOST_PROJECT").ok().filter(|p| !p.is_empty()) {
            return Ok(Some(p));
        }
        Ok(ClientConfig::load()?.project)
    }

    /// A client with credentials: `ROOST_TOKEN`, else the saved session.
    pub fn client(&self) -> anyhow::Result<Client> {
        let config = ClientConfig::load()?;
        let server = self.server_url(&config);
        let token = std::env::var("ROOST_TOKEN").ok().filter(|t| !t.is_empty()).or_else(|| {
            // A saved session belongs to the server it was made on.
            (config.server.as_deref().map(|s| s.trim_end_matches('/')) == Some(server.trim_end_matches('/')))
                .then(|| config.token.clone())
                .flatten()
        });
        if token.is_none() {
            anyhow::bail!("not logged in to {server}: run 'roost login --server {server}' or set ROOST_TOKEN");
        }
        Ok(Client::new(&server, token)?)
    }
}

/// One line for the user: the server's message, with a hint where one helps.
pub fn describe_error(err: &anyhow::Error) -> String {
    if let Some(client_err) = err.downcast_ref::<ClientError>() {
        let status = client_err.status().map(|s| s.as_u16());
        let mut msg = client_err.to_string();
        if status == Some(401) {
            msg.push_str(" (run 'roost login' or check ROOST_TOKEN)");
        }
        return msg;
    }
    format!("{err:#}")
}
