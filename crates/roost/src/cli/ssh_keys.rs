//! `roost ssh-key create|import|ls|show|rm` and `roost ssh`.

use std::path::PathBuf;

use anyhow::Context;
use roost_api::ListParams;
use roost_api::ssh_keys::{CreateSshKeyRequest, SshKey};

use super::output::{ago, print_block, print_list, print_structured, until, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum SshKeyCommand {
    /// Generate an Ed25519 key pair; the private key is printed (or written with --out)
    /// once and never stored
    Create {
        name: String,
        /// Write the private key to this file (mode 600; its directory is made, mode 700)
        /// instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// With --out: replace an existing file
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Import a public key file (e.g. ~/.ssh/id_ed25519.pub)
    Import { name: String, file: PathBuf },
    /// List your SSH keys
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show one key
    Show { name: String },
    /// Rename a key
    #[command(visible_alias = "set")]
    Update {
        name: String,
        /// The new name
        #[arg(long = "name", value_name = "NEW_NAME")]
        new_name: String,
    },
    /// Delete a key (instances that got it keep it)
    #[command(visible_alias = "delete")]
    Rm { name: String },
}

pub async fn run(global: &GlobalArgs, cmd: SshKeyCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        SshKeyCommand::Create { name, out, force } => {
            // The file is made before the key is registered, so a path that cannot be
            // written never leaves a registered key whose private half is lost.
            let file = match &out {
                Some(path) => Some(PrivateKeyFile::create(path, force)?),
                None => None,
            };
            let created = match client.create_ssh_key(&CreateSshKeyRequest { name, public_key: None }).await {
                Ok(created) => created,
                Err(e) => {
                    if let Some(f) = file {
                        f.discard();
                    }
                    return Err(e.into());
                }
            };
            let private = created.private_key.clone().unwrap_or_default();
            if let (Some(path), Some(file)) = (out, file) {
                if let Err(e) = file.write(private.as_bytes()) {
                    // Without its private key the registered key is of no use: take it back.
                    let rollback = client.delete_ssh_key(&created.key.id).await;
                    let undone = match rollback {
                        Ok(()) => "the key was not kept".to_string(),
                        Err(_) => format!("delete the key with 'roost ssh-key rm {}'", created.key.name),
                    };
                    return Err(e.context(format!("writing {} ({undone})", path.display())));
                }
                eprintln!(
                    "Created SSH key '{}' ({}); the private key is in {} (not stored by Roost).",
                    created.key.name,
                    created.key.fingerprint,
                    path.display()
                );
                return print_block(global.output, &created.key, &fields(&created.key));
            }
            if print_structured(global.output, &created)? {
                return Ok(());
            }
            eprintln!(
                "Created SSH key '{}' ({}). Its private key follows; it is not shown again:",
                created.key.name, created.key.fingerprint
            );
            print!("{private}");
            Ok(())
        }
        SshKeyCommand::Import { name, file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let key = client
                .create_ssh_key(&CreateSshKeyRequest { name, public_key: Some(text.trim().to_string()) })
                .await?
                .key;
            print_block(global.output, &key, &fields(&key))
        }
        SshKeyCommand::Ls(page) => {
            let keys: Vec<SshKey> = page.fetch(&client, "/v1/ssh-keys", ListParams::default()).await?;
            print_list(global.output, &keys, &["name", "fingerprint", "type", "expires", "created"], |k| {
                vec![
                    k.name.clone(),
                    k.fingerprint.clone(),
                    k.public_key.split_whitespace().next().unwrap_or_default().to_string(),
                    until(k.expires_at),
                    ago(Some(k.created_at)),
                ]
            })
        }
        SshKeyCommand::Show { name } => {
            let k = client.get_ssh_key(&name).await?;
            print_block(global.output, &k, &fields(&k))
        }
        SshKeyCommand::Update { name, new_name } => {
            let req = roost_api::ssh_keys::UpdateSshKeyRequest { name: Some(new_name) };
            let k = client.update_ssh_key(&name, &req).await?;
            print_block(global.output, &k, &fields(&k))
        }
        SshKeyCommand::Rm { name } => {
            let k = client.get_ssh_key(&name).await?;
            client.delete_ssh_key(&k.id).await?;
            eprintln!("Deleted SSH key '{}' ({}).", k.name, k.id);
            Ok(())
        }
    }
}

/// Where a new private key goes: a temporary file beside the target, made (with the
/// target's directory) before the key exists, so every way of failing to write shows up
/// before anything is registered; moved into place once the key is written.
struct PrivateKeyFile {
    path: PathBuf,
    temp: PathBuf,
    file: std::fs::File,
    force: bool,
}

impl PrivateKeyFile {
    fn create(path: &std::path::Path, force: bool) -> anyhow::Result<PrivateKeyFile> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            // Like ssh-keygen's ~/.ssh: private to its owner.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        if path.is_dir() {
            anyhow::bail!("{} is a directory: give --out the key file's path", path.display());
        }
        if path.exists() && !force {
            anyhow::bail!("{} exists: choose another --out, or add --force to replace it", path.display());
        }
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(".tmp-{}", std::process::id()));
        let temp = PathBuf::from(temp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(PrivateKeyFile { path: path.to_path_buf(), temp, file, force })
    }

    /// Writes the key and moves it into place (over an existing file only with --force).
    fn write(self, key: &[u8]) -> anyhow::Result<()> {
        use std::io::Write;
        let result = (|| -> std::io::Result<()> {
            let mut file = &self.file;
            file.write_all(key)?;
            file.sync_all()?;
            if !self.force && self.path.exists() {
                return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file appeared meanwhile"));
            }
            std::fs::rename(&self.temp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        Ok(result?)
    }

    fn discard(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

fn fields(k: &SshKey) -> Vec<(&'static str, String)> {
    vec![
        ("name", k.name.clone()),
        ("id", k.id.clone()),
        ("fingerprint", k.fingerprint.clone()),
        ("public key", k.public_key.clone()),
        ("project", k.project_id.clone().unwrap_or_else(|| "any".into())),
        ("expires", until(k.expires_at)),
        ("created", when(Some(k.created_at), "-")),
    ]
}

#[derive(Debug, Clone, clap::Args)]
pub struct SshArgs {
    /// The instance
    pub name: String,
    /// Login user
    #[arg(long, short = 'l', default_value = "root")]
    pub user: String,
    /// Private key file (passed to ssh -i)
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Extra arguments for ssh (after --), e.g. a command
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `roost ssh NAME`: ssh to the instance's address (this host is on its network's
/// bridge), or through a port forward to its port 22 when one exists.
pub async fn ssh(global: &GlobalArgs, a: SshArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let project = global.project_name()?;
    let instance = client.get_instance(&a.name, project.as_deref()).await?;
    let forwards = client.list_port_forwards(project.as_deref(), Some(&instance.id)).await.unwrap_or_default();
    let forward = forwards.iter().find(|p| p.instance_port == 22).map(|p| p.host_port);
    let (host, port) = match (forward, &instance.ip) {
        (Some(port), _) => ("127.0.0.1".to_string(), port),
        (None, Some(ip)) => (ip.clone(), 22),
        (None, None) => anyhow::bail!("instance '{}' has no address and no port forward to 22", a.name),
    };
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-p").arg(port.to_string());
    // Host keys are remembered per instance, in Roost's own known_hosts next to the CLI's
    // config: addresses are reused by later instances (whose keys differ), and the user's
    // ~/.ssh/known_hosts stays untouched.
    let known_hosts = super::ClientConfig::path()?.with_file_name("known_hosts");
    if let Some(dir) = known_hosts.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    cmd.arg("-o").arg(format!("UserKnownHostsFile={}", known_hosts.display()));
    cmd.arg("-o").arg(format!("HostKeyAlias=roost-{}", instance.id));
    cmd.args(["-o", "StrictHostKeyChecking=accept-new"]);
    if let Some(i) = &a.identity {
        cmd.arg("-i").arg(i);
    }
    cmd.arg(format!("{}@{host}", a.user)).args(&a.args);
    let status = cmd.status().context("running ssh (Debian package openssh-client)")?;
    Ok(status.code().unwrap_or(255))
}
