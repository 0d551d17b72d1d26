//! `roost sandbox create|ls|show|kill|pause|resume|timeout|exec|ps|signal|attach|usage|
//! url|files` and `roost sandbox key create|ls|rm` (keys of the E2B-compatible API).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use roost_api::sandboxes::{
    CreateSandboxKeyRequest, CreateSandboxRequest, ProcessSignal, Sandbox, SandboxTimeoutRequest,
    StartSandboxProcessRequest,
};

use super::output::{ago, print_block, print_list, print_structured, until, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Create a sandbox and print its id once it runs
    Create {
        /// The template (an image name)
        #[arg(long, default_value = "base")]
        template: String,
        /// Time to live, e.g. 5m, 1h
        #[arg(long, default_value = "5m")]
        ttl: String,
        /// Environment variable K=V (repeatable)
        #[arg(long = "env", short = 'e', value_name = "K=V")]
        env: Vec<String>,
        /// Metadata k=v (repeatable)
        #[arg(long = "metadata", value_name = "k=v")]
        metadata: Vec<String>,
        /// `container` (default) or `vm` (a microVM booting the template; slower to start,
        /// its own kernel)
        #[arg(long = "type", value_name = "TYPE", default_value = "container", value_parser = ["container", "vm"])]
        kind: String,
    },
    /// List live sandboxes with the time they have left
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a sandbox
    Show { id: String },
    /// Kill a sandbox (and everything it had)
    #[command(visible_aliases = ["rm", "delete"])]
    Kill { id: String },
    /// Freeze a sandbox's processes (cgroup freezer); memory and state are kept
    Pause { id: String },
    /// Thaw a paused sandbox
    Resume { id: String },
    /// Set the time left, e.g. `roost sandbox timeout sbx-… 10m`
    Timeout { id: String, ttl: String },
    /// Run a command in a sandbox (stdout/stderr streamed; exits with its code), or
    /// start it in the background with -d (prints its pid)
    Exec(SandboxExecArgs),
    /// Usage per key: sandboxes, sandbox-seconds, vCPU-seconds, commands
    Usage {
        /// Only this key (id)
        #[arg(long)]
        key: Option<String>,
        /// Since this long ago, e.g. 1h, 7d
        #[arg(long, default_value = "24h")]
        since: String,
    },
    /// Keys of the E2B-compatible API (E2B_API_KEY)
    #[command(subcommand, visible_alias = "keys")]
    Key(SandboxKeyCommand),
    /// Files in a sandbox (through exec, with the sandbox's own tools)
    #[command(subcommand)]
    Files(SandboxFilesCommand),
    /// Warm pools: frozen sandboxes kept ready per template (`roost server --sandbox-pool N`)
    Pool,
    /// Print a URL reaching a port of the sandbox through Roost's proxy (browser, curl)
    Url { id: String, port: u16 },
    /// List the processes running in a sandbox
    Ps { id: String },
    /// Send a signal to a process of a sandbox
    #[command(visible_alias = "kill-process")]
    Signal {
        id: String,
        pid: u32,
        /// TERM, KILL, INT, HUP, … or a number
        #[arg(long, short = 's', default_value = "TERM")]
        signal: String,
    },
    /// Re-attach to a process: replays what it printed recently (last 64 KiB per
    /// stream), then streams until it ends and exits with its code; Ctrl-C detaches
    /// without stopping it
    Attach {
        id: String,
        pid: u32,
        /// Send stdin to the process (it must have been started with -i)
        #[arg(short = 'i', long)]
        interactive: bool,
    },
    /// Templates: builtin ones and those built from a base plus commands (build cache)
    #[command(subcommand, visible_alias = "templates")]
    Template(super::sandbox_templates::SandboxTemplateCommand),
}

#[derive(Debug, clap::Args)]
pub struct SandboxExecArgs {
    /// Start it in the background and print its pid (`roost sandbox ps`, `attach`, `signal`)
    #[arg(short = 'd', long)]
    pub background: bool,
    /// With --background: a label for the process
    #[arg(long)]
    pub tag: Option<String>,
    /// Keep stdin open and send it to the command (with -d: keep it open for `attach -i`)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal (with -i: an interactive shell session)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Environment variable K=V (repeatable)
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory
    #[arg(long, short = 'w', visible_alias = "workdir")]
    pub cwd: Option<String>,
    pub id: String,
    /// The command (after --)
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum SandboxFilesCommand {
    /// List a directory
    Ls { id: String, path: String },
    /// Print a file to stdout
    Read { id: String, path: String },
    /// Write stdin to a file (parent directories are made)
    Write { id: String, path: String },
    /// Remove a file or directory (recursively)
    Rm { id: String, path: String },
    /// Make a directory (and its parents)
    Mkdir { id: String, path: String },
    /// Move or rename
    Mv { id: String, from: String, to: String },
    /// Print changes under a directory as they happen (`EVENT path` lines; inotify in
    /// the sandbox, through its `inotifywait`, from inotify-tools)
    Watch {
        id: String,
        path: String,
        /// Follow subdirectories too
        #[arg(long)]
        recursive: bool,
    },
}

/// The command each file operation runs in the sandbox, and whether it reads stdin.
fn files_command(cmd: SandboxFilesCommand) -> (String, Vec<String>, bool) {
    let sh = |script: &str, args: &[&str]| {
        let mut v = vec!["sh".to_string(), "-c".to_string(), script.to_string(), "sh".to_string()];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    };
    match cmd {
        SandboxFilesCommand::Ls { id, path } => (id, vec!["ls".into(), "-la".into(), "--".into(), path], false),
        SandboxFilesCommand::Read { id, path } => (id, vec!["cat".into(), "--".into(), path], false),
        SandboxFilesCommand::Write { id, path } => {
            (id, sh("mkdir -p -- \"$(dirname -- \"$1\")\" && cat > \"$1\"", &[&path]), true)
        }
        SandboxFilesCommand::Rm { id, path } => (id, vec!["rm".into(), "-rf".into(), "--".into(), path], false),
        SandboxFilesCommand::Mkdir { id, path } => (id, vec!["mkdir".into(), "-p".into(), "--".into(), path], false),
        SandboxFilesCommand::Mv { id, from, to } => (id, vec!["mv".into(), "--".into(), from, to], false),
        SandboxFilesCommand::Watch { id, path, recursive } => {
            let mut cmd: Vec<String> =
                ["inotifywait", "-q", "-m", "-e", "create,modify,delete,moved_from,moved_to,attrib"]
                    .map(String::from)
                    .into();
            if recursive {
                cmd.push("-r".into());
            }
            cmd.extend(["--format".into(), "%e %w%f".into(), "--".into(), path]);
            (id, cmd, false)
        }
    }
}

/// `roost sandbox files …`: the exit code of the operation's command.
pub async fn files(global: &GlobalArgs, cmd: SandboxFilesCommand) -> anyhow::Result<i32> {
    let (id, command, stdin) = files_command(cmd);
    let args = super::instances::ExecArgs {
        interactive: stdin,
        tty: false,
        env: Vec::new(),
        workdir: None,
        name: id,
        command,
    };
    super::instances::exec(global, args).await
}

fn kv(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => bail!("--{flag} '{kv}': expected KEY=VALUE"),
        })
        .collect()
}

fn seconds(flag: &str, text: &str) -> anyhow::Result<u64> {
    Ok(humantime::parse_duration(text)
        .with_context(|| format!("{flag} '{text}': expected a duration like 5m"))?
        .as_secs())
}

fn fields(s: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        ("id", s.id.clone()),
        ("template", s.template.clone()),
        ("type", s.kind.clone()),
        ("state", s.state.clone()),
        ("instance", s.instance_id.clone()),
        ("key", s.key_id.clone().unwrap_or_else(|| "-".into())),
        ("metadata", s.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")),
        ("started", when(Some(s.started_at), "-")),
        ("expires", until(Some(s.expires_at))),
        ("commands", s.commands.to_string()),
    ]
}

/// `roost sandbox exec` returns the command's exit code (0 once a background one started).
pub async fn exec(global: &GlobalArgs, args: SandboxExecArgs) -> anyhow::Result<i32> {
    if args.background {
        let client = global.client()?;
        let mut command = args.command.into_iter();
        let req = StartSandboxProcessRequest {
            cmd: command.next().unwrap_or_default(),
            args: command.collect(),
            tag: args.tag,
            env: kv("env", &args.env)?,
            cwd: args.cwd,
            stdin: args.interactive,
        };
        let started = client.start_sandbox_process(&args.id, &req).await?;
        if !print_structured(global.output, &started)? {
            println!("{}", started.pid);
        }
        return Ok(0);
    }
    if args.tag.is_some() {
        bail!("--tag names a background process: add --background (-d)");
    }
    // A sandbox's instance is named by the sandbox id: the instance exec WebSocket.
    let exec = super::instances::ExecArgs {
        interactive: args.interactive,
        tty: args.tty,
        env: args.env,
        workdir: args.cwd,
        name: args.id,
        command: args.command,
    };
    super::instances::exec(global, exec).await
}

/// Creates a sandbox; while it waits, shows the progress of its template's first build
/// (a builtin template is built from Debian packages on first use, which takes a while)
/// on stderr, as `roost image build` does, so `id=$(roost sandbox create)` still gets
/// the id alone.
async fn create_showing_template_build(
    client: &roost_client::Client,
    req: &CreateSandboxRequest,
) -> anyhow::Result<Sandbox> {
    use futures_util::StreamExt;
    let create = client.create_sandbox(req);
    tokio::pin!(create);
    // The build is an operation (`template.build`) on the template's image; subscribe
    // before creating, so its first update is not missed. Without either, just wait.
    let template = req.template.as_deref().unwrap_or("base");
    let image = client.get_image(template).await.ok();
    let filter = roost_api::events::EventFilter { kind: Some("operation".into()), resource_id: None };
    let events = match image {
        Some(_) => client.events(&filter, None).await.ok(),
        None => None,
    };
    let (Some(image), Some(events)) = (image, events) else { return Ok(create.await?) };
    let mut events = Box::pin(events);
    let mut progress = super::operations::Progress::default();
    loop {
        tokio::select! {
            created = &mut create => return Ok(created?),
            Some(Ok(event)) = events.next() => {
                let op = event.data.and_then(|d| serde_json::from_value::<roost_api::operations::Operation>(d).ok());
                if let Some(op) = op.filter(|op| op.kind == "template.build" && op.resource_id.as_deref() == Some(image.id.as_str())) {
                    progress.show(&op);
                }
            }
        }
    }
}

/// `roost sandbox attach`: the process's exit code, or 0 when detached with Ctrl-C.
pub async fn attach(global: &GlobalArgs, id: String, pid: u32, interactive: bool) -> anyhow::Result<i32> {
    use std::io::Write;

    use roost_client::exec::ExecEvent;
    let client = global.client()?;
    let (mut writer, mut reader) = client.attach_sandbox_process(&id, pid).await?.split();
    let (input_tx, mut input_rx) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(16);
    if interactive {
        super::instances::read_stdin_into(input_tx);
    }
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
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
                Some(ExecEvent::Exit(code)) => return Ok(code),
                None => bail!("the connection closed before the process ended"),
            },
            Some(input) = input_rx.recv(), if interactive => match input {
                Some(data) => writer.stdin(&data).await?,
                None => writer.eof().await?,
            },
            _ = interrupt.recv() => {
                // Detach: closing the socket leaves the process running.
                drop(writer);
                eprintln!("\nDetached from process {pid}; it keeps running (`roost sandbox attach {id} {pid}`).");
                return Ok(0);
            }
        }
    }
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
    Ls(PageArgs),
    /// Show a key (never its secret)
    Show { id: String },
    /// Rename a key or change its limits (the next create sees them)
    #[command(visible_alias = "set")]
    Update {
        id: String,
        /// The new name
        #[arg(long = "name", value_name = "NEW_NAME")]
        new_name: Option<String>,
        /// Most sandboxes alive at once
        #[arg(long)]
        max_sandboxes: Option<u32>,
        /// Most creations per minute
        #[arg(long)]
        creates_per_minute: Option<u32>,
    },
    /// Revoke a key (by id, or by name when one visible key has it): E2B requests with it
    /// are refused at once
    #[command(visible_aliases = ["revoke", "delete"])]
    Rm {
        /// The key's id (sbk-…) or name
        key: String,
    },
}

pub async fn run(global: &GlobalArgs, cmd: SandboxCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        SandboxCommand::Create { template, ttl, env, metadata, kind } => {
            let req = CreateSandboxRequest {
                template: Some(template),
                ttl_secs: Some(seconds("--ttl", &ttl)?),
                env: kv("env", &env)?,
                metadata: kv("metadata", &metadata)?,
                project: global.project_name()?,
                kind: Some(kind),
            };
            let created = create_showing_template_build(&client, &req).await?;
            if print_structured(global.output, &created)? {
                return Ok(());
            }
            println!("{}", created.id);
            Ok(())
        }
        SandboxCommand::Ls(page) => {
            let params = roost_api::ProjectListParams { project: global.project_name()?, ..Default::default() };
            let items: Vec<roost_api::sandboxes::Sandbox> = page.fetch(&client, "/v1/sandboxes", params).await?;
            let columns = ["id", "template", "type", "state", "expires in", "commands", "age"];
            print_list(global.output, &items, &columns, |s| {
                vec![
                    s.id.clone(),
                    s.template.clone(),
                    s.kind.clone(),
                    s.state.clone(),
                    until(Some(s.expires_at)),
                    s.commands.to_string(),
                    ago(Some(s.started_at)),
                ]
            })
        }
        SandboxCommand::Show { id } => {
            let s = client.get_sandbox(&id).await?;
            print_block(global.output, &s, &fields(&s))
        }
        SandboxCommand::Kill { id } => {
            client.kill_sandbox(&id).await?;
            eprintln!("Killed sandbox {id}.");
            Ok(())
        }
        SandboxCommand::Pause { id } => {
            client.sandbox_action(&id, "pause").await?;
            eprintln!("Paused sandbox {id}.");
            Ok(())
        }
        SandboxCommand::Resume { id } => {
            client.sandbox_action(&id, "resume").await?;
            eprintln!("Resumed sandbox {id}.");
            Ok(())
        }
        SandboxCommand::Timeout { id, ttl } => {
            client.sandbox_timeout(&id, &SandboxTimeoutRequest { ttl_secs: seconds("ttl", &ttl)? }).await?;
            eprintln!("Sandbox {id} now ends in {ttl}.");
            Ok(())
        }
        SandboxCommand::Exec(_) | SandboxCommand::Files(_) | SandboxCommand::Attach { .. } => {
            unreachable!("dispatched by main")
        }
        SandboxCommand::Ps { id } => {
            let items = client.list_sandbox_processes(&id).await?;
            print_list(global.output, &items, &["pid", "tag", "command", "cwd", "started"], |p| {
                let mut command = vec![p.cmd.clone()];
                command.extend(p.args.iter().cloned());
                vec![
                    p.pid.to_string(),
                    p.tag.clone().unwrap_or_else(|| "-".into()),
                    command.join(" "),
                    p.cwd.clone().unwrap_or_else(|| "-".into()),
                    ago(Some(p.started_at)),
                ]
            })
        }
        SandboxCommand::Signal { id, pid, signal } => {
            let parsed = match signal.parse::<i32>() {
                Ok(n) => ProcessSignal::Number(n),
                Err(_) => ProcessSignal::Name(signal.clone()),
            };
            if parsed.number().is_none() {
                bail!("--signal '{signal}': expected TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT or a number");
            }
            client.signal_sandbox_process(&id, pid, parsed).await?;
            eprintln!("Sent SIG{} to process {pid}.", signal.to_ascii_uppercase().trim_start_matches("SIG"));
            Ok(())
        }
        SandboxCommand::Template(cmd) => super::sandbox_templates::run(global, cmd).await,
        SandboxCommand::Pool => {
            let pools = client.sandbox_pool().await?;
            print_list(global.output, &pools, &["project", "template", "ready", "size", "hits", "misses"], |s| {
                vec![
                    s.project_id.clone(),
                    s.template.clone(),
                    s.ready.to_string(),
                    s.size.to_string(),
                    s.hits.to_string(),
                    s.misses.to_string(),
                ]
            })
        }
        SandboxCommand::Url { id, port } => {
            let url = client.sandbox_url(&id, port).await?;
            if print_structured(global.output, &url)? {
                return Ok(());
            }
            println!("{}", url.url);
            Ok(())
        }
        SandboxCommand::Usage { key, since } => {
            let usage = client.sandbox_usage(key.as_deref(), seconds("--since", &since)?).await?;
            print_list(
                global.output,
                &usage,
                &["key", "sandboxes", "sandbox-seconds", "vcpu-seconds", "commands"],
                |u| {
                    vec![
                        u.key_id.clone().unwrap_or_else(|| "(no key)".into()),
                        u.sandboxes.to_string(),
                        format!("{:.1}", u.sandbox_seconds),
                        format!("{:.1}", u.vcpu_seconds),
                        u.commands.to_string(),
                    ]
                },
            )
        }
        SandboxCommand::Key(SandboxKeyCommand::Create { name, max_sandboxes, creates_per_minute }) => {
            let req =
                CreateSandboxKeyRequest { name, project: global.project_name()?, max_sandboxes, creates_per_minute };
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
        SandboxCommand::Key(SandboxKeyCommand::Show { id }) => {
            let k = client.get_sandbox_key(&id).await?;
            print_block(global.output, &k, &key_fields(&k))
        }
        SandboxCommand::Key(SandboxKeyCommand::Update { id, new_name, max_sandboxes, creates_per_minute }) => {
            let req =
                roost_api::sandboxes::UpdateSandboxKeyRequest { name: new_name, max_sandboxes, creates_per_minute };
            let k = client.update_sandbox_key(&id, &req).await?;
            print_block(global.output, &k, &key_fields(&k))
        }
        SandboxCommand::Key(SandboxKeyCommand::Ls(page)) => {
            let params = roost_api::ProjectListParams { project: global.project_name()?, ..Default::default() };
            let keys: Vec<roost_api::sandboxes::SandboxKey> = page.fetch(&client, "/v1/sandbox-keys", params).await?;
            let columns = ["name", "id", "prefix", "max sandboxes", "per minute", "expires", "created"];
            print_list(global.output, &keys, &columns, |k| {
                vec![
                    k.name.clone(),
                    k.id.clone(),
                    format!("{}…", k.prefix),
                    k.max_sandboxes.to_string(),
                    k.creates_per_minute.to_string(),
                    until(k.expires_at),
                    ago(Some(k.created_at)),
                ]
            })
        }
        SandboxCommand::Key(SandboxKeyCommand::Rm { key }) => {
            let id = if key.starts_with("sbk-") {
                key
            } else {
                let keys = client.list_sandbox_keys().await?;
                let named: Vec<_> = keys.iter().filter(|k| k.name == key).collect();
                match named.as_slice() {
                    [one] => one.id.clone(),
                    [] => anyhow::bail!("no sandbox key named '{key}' (see `roost sandbox key ls`)"),
                    _ => anyhow::bail!("more than one sandbox key is named '{key}': pass its id"),
                }
            };
            client.revoke_sandbox_key(&id).await?;
            eprintln!("Revoked sandbox key {id}: E2B requests with it are refused from now on.");
            Ok(())
        }
    }
}

fn key_fields(k: &roost_api::sandboxes::SandboxKey) -> Vec<(&'static str, String)> {
    vec![
        ("name", k.name.clone()),
        ("id", k.id.clone()),
        ("prefix", k.prefix.clone()),
        ("project", k.project_id.clone()),
        ("max sandboxes", k.max_sandboxes.to_string()),
        ("creates per minute", k.creates_per_minute.to_string()),
        ("expires", until(k.expires_at)),
        ("created", when(Some(k.created_at), "-")),
    ]
}
