//! `roost instance …` (alias `i`), `roost ps`, `roost run`, `roost exec`, `roost console`,
//! `roost logs`, `roost cp`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use roost_api::instances::{
    CreateInstanceRequest, ExecStart, Instance, InstanceListParams, InstanceStatus, RestartPolicy,
};
use roost_client::Client;
use roost_client::exec::ExecEvent;

use super::GlobalArgs;
use super::output::{ago, print_block, print_list, print_structured, when};

#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// Image name or id
    #[arg(long)]
    pub image: String,
    /// CPUs (0.5 = half a CPU)
    #[arg(long, default_value_t = 1.0)]
    pub cpus: f64,
    /// Memory, e.g. 512m or 2g
    #[arg(long, default_value = "512m")]
    pub memory: String,
    /// Environment variable K=V (repeatable)
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// Label k=v (repeatable)
    #[arg(long = "label", short = 'l', value_name = "K=V")]
    pub labels: Vec<String>,
    /// What to do when the command exits
    #[arg(long, value_enum, default_value_t = RestartArg::Never)]
    pub restart: RestartArg,
    /// Network to join, one NIC each, eth0 first (repeatable; default: the project's `default`)
    #[arg(long = "network", value_name = "NETWORK")]
    pub networks: Vec<String>,
    /// A fixed address on the --network at the same position (repeatable)
    #[arg(long = "ip", value_name = "ADDRESS")]
    pub ips: Vec<String>,
    /// Security group (repeatable; default: the project's `default`)
    #[arg(long = "sg", value_name = "GROUP")]
    pub security_groups: Vec<String>,
    /// Attach a volume: VOLUME:/path[:ro] (repeatable)
    #[arg(long = "volume", short = 'v', value_name = "VOLUME:PATH")]
    pub volumes: Vec<String>,
    /// SSH key (yours, by name) installed for root at first boot (repeatable)
    #[arg(long = "ssh-key", value_name = "KEY")]
    pub ssh_keys: Vec<String>,
    /// A shell script run once at first boot; its output goes to the logs
    #[arg(long = "user-data", value_name = "FILE")]
    pub user_data: Option<std::path::PathBuf>,
    /// Add a capability to a container's default set: NET_RAW (ping), MKNOD or
    /// SYS_PTRACE (repeatable)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub capabilities_add: Vec<String>,
    /// What runs the instance: container, or vm (a QEMU microVM)
    #[arg(long = "type", default_value = "container", value_parser = ["container", "vm"])]
    pub kind: String,
    /// The command and its arguments (after --); default: the image's init
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RestartArg {
    Always,
    OnFailure,
    Never,
}

impl From<RestartArg> for RestartPolicy {
    fn from(r: RestartArg) -> RestartPolicy {
        match r {
            RestartArg::Always => RestartPolicy::Always,
            RestartArg::OnFailure => RestartPolicy::OnFailure,
            RestartArg::Never => RestartPolicy::Never,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum InstanceCommand {
    /// Create an instance; returns when it runs (or at once with --no-wait)
    Create {
        name: String,
        #[command(flatten)]
        args: Box<CreateArgs>,
        #[arg(long)]
        no_wait: bool,
    },
    /// List instances
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show an instance
    Show { name: String },
    /// Change labels (`--label k=v`, `--unlabel k`) or the restart policy
    #[command(visible_alias = "set")]
    Update {
        name: String,
        /// Add or change a label k=v (repeatable)
        #[arg(long = "label", short = 'l', value_name = "K=V")]
        labels: Vec<String>,
        /// Remove a label (repeatable)
        #[arg(long = "unlabel", value_name = "K")]
        unlabel: Vec<String>,
        /// What to do when the command exits
        #[arg(long, value_enum)]
        restart: Option<RestartArg>,
    },
    /// Stop: SIGTERM, then SIGKILL after --timeout seconds
    Stop {
        name: String,
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        #[arg(long)]
        no_wait: bool,
    },
    /// Start a stopped instance
    Start {
        name: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Stop and start again
    Restart {
        name: String,
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete an instance (--force for a running one)
    #[command(visible_alias = "delete")]
    Rm {
        name: String,
        #[arg(long, short = 'f')]
        force: bool,
        #[arg(long)]
        no_wait: bool,
    },
    /// Resource use: CPU, memory, processes, network
    Stats { name: String },
    /// Plug into or unplug from networks (also while running)
    #[command(subcommand)]
    Network(InstanceNetworkCommand),
    /// Replace the instance's security groups (applies at once)
    #[command(visible_alias = "security-groups")]
    Sg {
        name: String,
        /// Group (repeatable); none leaves no traffic in or out but replies
        #[arg(long = "sg", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Snapshot the root filesystem changes and every attached volume
    Snapshot {
        name: String,
        /// Snapshot name (default: <instance>-<UTC time>)
        #[arg(long = "name", value_name = "SNAPSHOT")]
        snapshot: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// A new, independent instance with copies of the root filesystem changes and volumes
    Clone {
        name: String,
        new_name: String,
        /// Leave the clone stopped
        #[arg(long)]
        no_start: bool,
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum InstanceNetworkCommand {
    /// Add a NIC on a network
    Attach {
        name: String,
        network: String,
        /// A fixed address (default: the lowest free one)
        #[arg(long)]
        ip: Option<String>,
    },
    /// Remove the NIC on a network
    Detach { name: String, network: String },
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct LsArgs {
    /// Only this status (running, stopped, error, ...)
    #[arg(long)]
    pub status: Option<String>,
    /// Only instances with this label (k=v)
    #[arg(long)]
    pub label: Option<String>,
    /// Instances of every project you can see, not just the current one
    #[arg(long, short = 'a')]
    pub all_projects: bool,
    #[command(flatten)]
    pub page: super::PageArgs,
}

fn pairs(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => bail!("--{flag} '{kv}': expected KEY=VALUE"),
        })
        .collect()
}

fn create_request(global: &GlobalArgs, name: String, a: &CreateArgs) -> anyhow::Result<CreateInstanceRequest> {
    let memory = roost_api::parse_size(&a.memory)
        .with_context(|| format!("--memory '{}': expected a size like 512m or 2g", a.memory))?;
    Ok(CreateInstanceRequest {
        name,
        image: a.image.clone(),
        project: global.project_name()?,
        cpus: Some(a.cpus),
        memory_bytes: Some(memory),
        command: (!a.command.is_empty()).then(|| a.command.clone()),
        env: pairs("env", &a.env)?,
        labels: pairs("label", &a.labels)?,
        restart: Some(a.restart.into()),
        start: Some(true),
        networks: nic_requests(&a.networks, &a.ips)?,
        security_groups: a.security_groups.clone(),
        volumes: a
            .volumes
            .iter()
            .map(|v| roost_api::volumes::parse_volume_mount(v).map_err(|e| anyhow::anyhow!("--volume: {e}")))
            .collect::<anyhow::Result<_>>()?,
        kind: Some(a.kind.clone()),
        ssh_keys: a.ssh_keys.clone(),
        user_data: match &a.user_data {
            Some(path) => Some(
                std::fs::read_to_string(path).with_context(|| format!("--user-data: reading {}", path.display()))?,
            ),
            None => None,
        },
        capabilities_add: a.capabilities_add.clone(),
    })
}

/// `--network a --ip x --network b` pairs addresses with networks by position.
fn nic_requests(networks: &[String], ips: &[String]) -> anyhow::Result<Vec<roost_api::networks::NicRequest>> {
    if ips.len() > networks.len().max(1) {
        anyhow::bail!("--ip: more addresses ({}) than networks ({})", ips.len(), networks.len().max(1));
    }
    let networks: Vec<String> =
        if networks.is_empty() && !ips.is_empty() { vec!["default".into()] } else { networks.to_vec() };
    Ok(networks
        .iter()
        .enumerate()
        .map(|(i, n)| roost_api::networks::NicRequest { network: n.clone(), ip: ips.get(i).cloned() })
        .collect())
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 { format!("{:.1}G", bytes as f64 / (1u64 << 30) as f64) } else { format!("{}M", bytes >> 20) }
}

/// Waits for `status`, in 60 s server-side steps, up to `limit`.
async fn wait_for(client: &Client, id: &str, status: InstanceStatus, limit: Duration) -> anyhow::Result<Instance> {
    let started = std::time::Instant::now();
    loop {
        let i = client.wait_instance(id, status, Duration::from_secs(60)).await?;
        if i.status == status {
            return Ok(i);
        }
        if i.status == InstanceStatus::Error {
            bail!("instance '{}' failed: {}", i.name, i.status_reason.unwrap_or_default());
        }
        if started.elapsed() > limit {
            bail!("instance '{}' is {} after {}s", i.name, i.status.as_str(), limit.as_secs());
        }
    }
}

pub async fn ls(global: &GlobalArgs, args: LsArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = if args.all_projects { None } else { global.project_name()? };
    let params = InstanceListParams { project, status: args.status, label: args.label, ..Default::default() };
    let items: Vec<Instance> = args.page.fetch(&client, "/v1/instances", params).await?;
    print_list(global.output, &items, &["name", "id", "status", "type", "image", "ip", "cpus", "memory", "age"], |i| {
        vec![
            i.name.clone(),
            i.id.clone(),
            i.status.as_str().into(),
            i.kind.clone(),
            i.image.clone(),
            i.ip.clone().unwrap_or_else(|| "-".into()),
            format!("{}", i.cpus),
            human(i.memory_bytes),
            ago(Some(i.created_at)).trim_end_matches(" ago").to_string(),
        ]
    })
}

pub async fn run(global: &GlobalArgs, cmd: InstanceCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    // Names resolve in the current project (`--project`, ROOST_PROJECT, `project use`).
    let project = global.project_name()?;
    match cmd {
        InstanceCommand::Create { name, args, no_wait } => {
            let req = create_request(global, name, &args)?;
            let created = client.create_instance(&req).await?;
            let instance = if no_wait {
                created.instance
            } else {
                wait_for(&client, &created.instance.id, InstanceStatus::Running, Duration::from_secs(600)).await?
            };
            if !print_structured(global.output, &instance)? {
                println!("{}", instance.id);
                eprintln!(
                    "Instance '{}' is {}{}.",
                    instance.name,
                    instance.status.as_str(),
                    instance.ip.as_deref().map(|ip| format!(" at {ip}")).unwrap_or_default()
                );
            }
            Ok(())
        }
        InstanceCommand::Ls(args) => ls(global, args).await,
        InstanceCommand::Show { name } => {
            let i = client.get_instance(&name, project.as_deref()).await?;
            print_block(global.output, &i, &fields(&i))
        }
        InstanceCommand::Update { name, labels, unlabel, restart } => {
            let mut changes = BTreeMap::new();
            for label in &labels {
                let (k, v) = label.split_once('=').with_context(|| format!("--label {label}: use k=v"))?;
                changes.insert(k.to_string(), Some(v.to_string()));
            }
            for k in unlabel {
                changes.insert(k, None);
            }
            let req = roost_api::instances::UpdateInstanceRequest {
                labels: (!changes.is_empty()).then_some(Some(changes)),
                restart: restart.map(Into::into),
            };
            let i = client.update_instance(&name, project.as_deref(), &req).await?;
            print_block(global.output, &i, &fields(&i))
        }
        InstanceCommand::Stop { name, timeout, no_wait } => {
            let op = client.stop_instance(&name, project.as_deref(), Some(timeout)).await?;
            finish(&client, op, no_wait, &format!("Stopped '{name}'.")).await
        }
        InstanceCommand::Start { name, no_wait } => {
            let op = client.start_instance(&name, project.as_deref()).await?;
            finish(&client, op, no_wait, &format!("Started '{name}'.")).await
        }
        InstanceCommand::Restart { name, timeout, no_wait } => {
            let op = client.restart_instance(&name, project.as_deref(), Some(timeout)).await?;
            finish(&client, op, no_wait, &format!("Restarted '{name}'.")).await
        }
        InstanceCommand::Rm { name, force, no_wait } => {
            let op = client.delete_instance(&name, project.as_deref(), force).await?;
            finish(&client, op, no_wait, &format!("Deleted '{name}'.")).await
        }
        InstanceCommand::Network(InstanceNetworkCommand::Attach { name, network, ip }) => {
            let nic = roost_api::networks::NicRequest { network, ip };
            let i = client.attach_network(&name, global.project_name()?.as_deref(), &nic).await?;
            if !print_structured(global.output, &i)? {
                let n = i.nics.last().map(|n| format!("{} {} on {}", n.name, n.ip, n.network)).unwrap_or_default();
                eprintln!("Attached: {n}.");
            }
            Ok(())
        }
        InstanceCommand::Network(InstanceNetworkCommand::Detach { name, network }) => {
            let i = client.detach_network(&name, &network, global.project_name()?.as_deref()).await?;
            if !print_structured(global.output, &i)? {
                eprintln!("Detached '{}' from network '{network}'.", i.name);
            }
            Ok(())
        }
        InstanceCommand::Snapshot { name, snapshot, description } => {
            let req = roost_api::volumes::CreateInstanceSnapshotRequest { name: snapshot, description };
            let s = client.snapshot_instance(&name, &req, project.as_deref()).await?;
            if !print_structured(global.output, &s)? {
                println!("{}", s.id);
                eprintln!(
                    "Snapshot '{}' of '{name}': root filesystem changes ({} bytes) and {} volume(s).",
                    s.name,
                    s.rootfs_bytes,
                    s.volumes.len()
                );
            }
            Ok(())
        }
        InstanceCommand::Clone { name, new_name, no_start, no_wait } => {
            let req = roost_api::volumes::CloneInstanceRequest { name: new_name, start: Some(!no_start) };
            let created = client.clone_instance(&name, &req, project.as_deref()).await?;
            let instance = if no_wait {
                created.instance
            } else {
                // The copies (and the start) are the operation's; a failed one is undone.
                let op = client.wait_operation(&created.operation.id, |_| {}).await?;
                super::operations::finished_ok(&op)?;
                client.get_instance(&created.instance.id, None).await?
            };
            if !print_structured(global.output, &instance)? {
                println!("{}", instance.id);
                eprintln!("Cloned '{name}' as '{}' ({}).", instance.name, instance.status.as_str());
            }
            Ok(())
        }
        InstanceCommand::Sg { name, groups } => {
            let i = client.set_security_groups(&name, global.project_name()?.as_deref(), &groups).await?;
            if !print_structured(global.output, &i)? {
                eprintln!(
                    "Security groups of '{}': {}.",
                    i.name,
                    if i.security_groups.is_empty() { "(none)".into() } else { i.security_groups.join(", ") }
                );
            }
            Ok(())
        }
        InstanceCommand::Stats { name } => {
            let s = client.instance_stats(&name).await?;
            let fields = vec![
                ("cpu", format!("{:.1}%", s.cpu_percent)),
                (
                    "memory",
                    format!(
                        "{} / {}",
                        human(s.memory_bytes),
                        s.memory_limit.map(human).unwrap_or_else(|| "unlimited".into())
                    ),
                ),
                ("pids", s.pids.to_string()),
                ("net rx", format!("{} bytes", s.net_rx_bytes)),
                ("net tx", format!("{} bytes", s.net_tx_bytes)),
            ];
            print_block(global.output, &s, &fields)
        }
    }
}

async fn finish(
    client: &Client,
    op: roost_api::operations::Operation,
    no_wait: bool,
    done: &str,
) -> anyhow::Result<()> {
    if no_wait {
        eprintln!("Operation {} started.", op.id);
        return Ok(());
    }
    let op = client.wait_operation(&op.id, |_| {}).await?;
    super::operations::finished_ok(&op)?;
    eprintln!("{done}");
    Ok(())
}

fn fields(i: &Instance) -> Vec<(&'static str, String)> {
    let mut f = vec![("name", i.name.clone()), ("id", i.id.clone()), ("status", i.status.as_str().into())];
    if let Some(r) = &i.status_reason {
        f.push(("reason", r.clone()));
    }
    f.extend([
        ("desired", i.desired.as_str().into()),
        ("type", i.kind.clone()),
        ("image", format!("{} ({})", i.image, i.image_id)),
        ("ip", i.ip.clone().unwrap_or_else(|| "-".into())),
        (
            "networks",
            if i.nics.is_empty() {
                "-".into()
            } else {
                i.nics.iter().map(|n| format!("{} {} ({})", n.name, n.ip, n.network)).collect::<Vec<_>>().join(", ")
            },
        ),
        ("security groups", if i.security_groups.is_empty() { "-".into() } else { i.security_groups.join(", ") }),
        ("cpus", i.cpus.to_string()),
        ("memory", human(i.memory_bytes)),
        ("command", i.command.as_ref().map(|c| c.join(" ")).unwrap_or_else(|| "(image default)".into())),
        ("restart", format!("{} (restarted {} times)", i.restart.as_str(), i.restart_count)),
        ("env", i.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")),
        ("labels", i.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")),
        ("project", i.project_id.clone()),
        ("created", when(Some(i.created_at), "-")),
        ("started", when(i.started_at, "-")),
    ]);
    if let Some(c) = i.exit_code {
        f.push(("exit code", c.to_string()));
    }
    f
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Instance name (default: a generated one)
    #[arg(long)]
    pub name: Option<String>,
    /// Delete the instance when the command ends
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// `roost run`: create, print the output until the command ends, exit with its code.
pub async fn run_once(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let name = args.name.clone().unwrap_or_else(|| {
        let mut n = String::from("run-");
        roost_api::ids::push_random(&mut n, 6);
        n
    });
    let req = create_request(global, name.clone(), &args.create)?;
    let created = client.create_instance(&req).await?;
    let id = created.instance.id;
    let result = async {
        // Running, or already done: a short command may finish before we look.
        let i = client.wait_instance(&id, InstanceStatus::Running, Duration::from_secs(60)).await?;
        if i.status == InstanceStatus::Error {
            bail!("instance '{name}' failed: {}", i.status_reason.unwrap_or_default());
        }
        let mut logs = Box::pin(client.instance_logs(&id, None, None, true).await?);
        while let Some(entry) = logs.next().await {
            let entry = entry?;
            if entry.stream == "stderr" {
                eprintln!("{}", entry.line);
            } else {
                println!("{}", entry.line);
            }
        }
        let done = wait_for(&client, &id, InstanceStatus::Stopped, Duration::from_secs(3600)).await?;
        Ok(done.exit_code.unwrap_or(0))
    }
    .await;
    if args.rm {
        let op = client.delete_instance(&id, None, true).await?;
        client.wait_operation(&op.id, |_| {}).await?;
    }
    result
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Keep stdin open and send it to the command
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal (with -i: an interactive shell session)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Environment variable K=V (repeatable)
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory
    #[arg(long, short = 'w')]
    pub workdir: Option<String>,
    pub name: String,
    /// The command (after --)
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Whether stdin is a terminal: an interactive terminal session needs one (typed keys
/// go to the remote terminal as they are; a pipe's end never reaches a shell there).
fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// `roost exec`: runs a command; returns its exit code.
pub async fn exec(global: &GlobalArgs, args: ExecArgs) -> anyhow::Result<i32> {
    if args.tty && args.interactive && !stdin_is_terminal() {
        bail!("the input device is not a TTY: -it needs a terminal; to pipe input into the command, use -i without -t");
    }
    let client = global.client()?;
    let (rows, cols) = crate::cli::terminal::size().unwrap_or((24, 80));
    let start = ExecStart {
        cmd: args.command,
        tty: args.tty,
        rows: Some(rows),
        cols: Some(cols),
        env: pairs("env", &args.env)?,
        cwd: args.workdir,
        console: false,
    };
    let connection = client.exec(&args.name, &start).await?;
    interactive_session(connection, args.interactive, args.tty).await
}

/// `roost console`: an interactive shell in the instance.
pub async fn console(global: &GlobalArgs, name: String) -> anyhow::Result<i32> {
    if !stdin_is_terminal() {
        bail!(
            "the input device is not a TTY: roost console needs a terminal; to pipe commands, use 'roost exec -i {name} -- sh'"
        );
    }
    let client = global.client()?;
    let instance = client.get_instance(&name, global.project_name()?.as_deref()).await?;
    let (rows, cols) = crate::cli::terminal::size().unwrap_or((24, 80));
    // bash where the image has it, else sh.
    let shell = "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi".to_string();
    let start = ExecStart {
        cmd: vec!["/bin/sh".into(), "-c".into(), shell],
        tty: true,
        rows: Some(rows),
        cols: Some(cols),
        // A VM's serial console (a root shell); containers run the shell above.
        console: true,
        ..Default::default()
    };
    let connection = client.exec(&instance.id, &start).await?;
    // Said before the terminal goes raw, as `virsh console` does: a serial console shows
    // nothing until something is typed, and only Ctrl-] (handled by the server) leaves it.
    if instance.kind == "vm" {
        eprintln!("Connected to {}'s serial console; press Enter for a prompt, Ctrl-] to leave.", instance.name);
    } else {
        eprintln!("Connected to a shell in {}; type exit or press Ctrl-D to leave.", instance.name);
    }
    interactive_session(connection, true, true).await
}

/// Reads stdin on its own thread (the reads block) into `tx`: chunks, then `None` at its
/// end.
pub(crate) fn read_stdin_into(tx: tokio::sync::mpsc::Sender<Option<Vec<u8>>>) {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(None);
                    break;
                }
                Ok(n) => {
                    if tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

async fn interactive_session(
    connection: roost_client::exec::ExecConnection,
    interactive: bool,
    tty: bool,
) -> anyhow::Result<i32> {
    let (mut writer, mut reader) = connection.split();
    let raw = if tty && interactive { crate::cli::terminal::RawMode::enable().ok() } else { None };
    let (input_tx, mut input_rx) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(16);
    if interactive {
        read_stdin_into(input_tx);
    } else {
        writer.eof().await?;
    }
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let code = loop {
        tokio::select! {
            event = reader.next() => match event? {
                Some(ExecEvent::Stdout(d)) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&d)?;
                    out.flush()?;
                }
                Some(ExecEvent::Stderr(d)) => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(&d)?;
                    err.flush()?;
                }
                Some(ExecEvent::Exit(code)) => break code,
                None => {
                    drop(raw);
                    bail!("the connection closed before the command ended");
                }
            },
            Some(input) = input_rx.recv(), if interactive => match input {
                Some(data) => writer.stdin(&data).await?,
                None => writer.eof().await?,
            },
            _ = winch.recv(), if tty => {
                if let Some((rows, cols)) = crate::cli::terminal::size() {
                    writer.resize(rows, cols).await?;
                }
            }
        }
    };
    drop(raw);
    Ok(code)
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    pub name: String,
    /// Keep printing new lines
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines of the last duration (10m) or since an RFC 3339 time
    #[arg(long)]
    pub since: Option<String>,
    /// Only the last N lines
    #[arg(long)]
    pub tail: Option<usize>,
    /// Prefix each line with its time
    #[arg(long, short = 't')]
    pub timestamps: bool,
}

pub async fn logs(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let mut stream = Box::pin(client.instance_logs(&args.name, args.since.as_deref(), args.tail, args.follow).await?);
    while let Some(entry) = stream.next().await {
        let entry = entry?;
        if global.output == super::OutputFormat::Json {
            println!("{}", serde_json::to_string(&entry)?);
            continue;
        }
        let line = if args.timestamps { format!("{} {}", entry.time.to_rfc3339(), entry.line) } else { entry.line };
        if entry.stream == "stderr" {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// A local path, or INSTANCE:/path
    pub source: String,
    /// A local path, or INSTANCE:/path
    pub destination: String,
}

fn remote(spec: &str) -> Option<(&str, &str)> {
    let (name, path) = spec.split_once(':')?;
    (!name.is_empty() && !name.contains('/') && path.starts_with('/')).then_some((name, path))
}

/// `roost cp`: copies files in and out through the API as tar streams.
pub async fn cp(global: &GlobalArgs, args: CpArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    match (remote(&args.source), remote(&args.destination)) {
        (None, Some((name, path))) => {
            let local = std::path::Path::new(&args.source);
            let meta = std::fs::metadata(local).with_context(|| format!("cannot read {}", local.display()))?;
            let (dir, entry) = match path.rsplit_once('/') {
                Some((dir, file)) if !file.is_empty() => (if dir.is_empty() { "/" } else { dir }, file.to_string()),
                _ => (path, local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
            };
            let mut builder = tar::Builder::new(Vec::new());
            if meta.is_dir() {
                builder.append_dir_all(&entry, local)?;
            } else {
                builder.append_path_with_name(local, &entry)?;
            }
            let tar = builder.into_inner()?;
            client.upload_files(name, dir, tar).await?;
            eprintln!("Copied {} to {name}:{dir}/{entry}.", local.display(), dir = dir.trim_end_matches('/'));
            Ok(())
        }
        (Some((name, path)), None) => {
            let response = client.download_files(name, path).await?;
            let bytes = response.bytes().await?;
            let local = std::path::PathBuf::from(&args.destination);
            let mut archive = tar::Archive::new(std::io::Cursor::new(bytes));
            let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
            // The archive holds `base` (a file or a directory); land it at the destination.
            let target_is_dir = local.is_dir();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let inner = entry.path()?.into_owned();
                let rel = inner.strip_prefix(&base).unwrap_or(&inner).to_path_buf();
                let dest = match (target_is_dir, rel.as_os_str().is_empty()) {
                    (true, _) => local.join(&base).join(&rel),
                    (false, true) => local.clone(),
                    (false, false) => local.join(&rel),
                };
                if rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                    bail!("refusing an archive entry outside the destination: {}", inner.display());
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                entry.unpack(&dest)?;
            }
            eprintln!("Copied {name}:{path} to {}.", local.display());
            Ok(())
        }
        _ => bail!("one side must be INSTANCE:/absolute/path and the other a local path"),
    }
}
