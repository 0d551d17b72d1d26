//! `roost`: the server (`roost server`) and the command-line client in one binary.

mod cli;
mod config;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "roost", version, about = "Roost: a self-hosted cloud in one binary", propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the server's flag set does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the Roost server (API, console, control plane)
    Server(Box<config::ServerArgs>),
    /// Log in to a server and keep the session in ~/.config/roost/config.toml
    Login(cli::auth::LoginArgs),
    /// End the session and forget it
    Logout,
    /// Show who you are logged in as
    Whoami,
    /// Change your password
    Passwd(cli::users::PasswdArgs),
    /// Show or edit your profile (display name, email)
    Profile(cli::users::ProfileArgs),
    /// Manage users (admins)
    #[command(subcommand, visible_alias = "users")]
    User(cli::users::UserCommand),
    /// Projects: tenancy, members, quotas
    #[command(subcommand, visible_alias = "projects")]
    Project(cli::projects::ProjectCommand),
    /// The audit log (admins)
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Images instances start from
    #[command(subcommand, visible_alias = "images")]
    Image(cli::images::ImageCommand),
    /// Instances (containers)
    #[command(subcommand, visible_aliases = ["instances", "i"])]
    Instance(cli::instances::InstanceCommand),
    /// List instances (instance ls)
    Ps(cli::instances::LsArgs),
    /// Create an instance, print its output, exit with its exit code
    Run(cli::instances::RunArgs),
    /// Run a command in an instance
    Exec(cli::instances::ExecArgs),
    /// An interactive shell in an instance (a VM's serial console)
    Console { name: String },
    /// An instance's stdout and stderr
    Logs(cli::instances::LogsArgs),
    /// Copy files in and out of an instance (INSTANCE:/path)
    Cp(cli::instances::CpArgs),
    /// VPC networks and peering
    #[command(subcommand, visible_alias = "networks")]
    Network(cli::networks::NetworkCommand),
    /// Security groups and their rules
    #[command(subcommand, visible_alias = "security-group")]
    Sg(cli::networks::SgCommand),
    /// Port forwards from the host to instances
    #[command(subcommand, visible_alias = "ports")]
    Port(cli::networks::PortCommand),
    /// Object storage buckets (served over S3)
    #[command(subcommand, visible_alias = "buckets")]
    Bucket(cli::buckets::BucketCommand),
    /// S3 access keys for S3 clients (AWS CLI, boto3, rclone, s3cmd)
    #[command(subcommand, name = "s3-key", visible_alias = "s3-keys")]
    S3Key(cli::buckets::S3KeyCommand),
    /// Manage API tokens
    #[command(subcommand, visible_alias = "tokens")]
    Token(cli::tokens::TokenCommand),
    /// Inspect long-running operations
    #[command(subcommand, visible_alias = "op")]
    Operation(cli::operations::OperationCommand),
    /// Stream resource changes as they happen
    Events(cli::events::EventsArgs),
    /// Server administration (admins)
    #[command(subcommand)]
    System(cli::system::SystemCommand),
    /// Block volumes: create, attach, resize, restore
    #[command(subcommand, visible_alias = "volumes")]
    Volume(cli::volumes::VolumeCommand),
    /// Volume snapshots
    #[command(subcommand, visible_alias = "snapshots")]
    Snapshot(cli::volumes::SnapshotCommand),
    /// Scheduled volume snapshots with retention
    #[command(subcommand, name = "backup-policy", visible_alias = "backup-policies")]
    BackupPolicy(cli::volumes::BackupPolicyCommand),
    /// This server's compute node (instance types, microVM accelerator)
    #[command(subcommand)]
    Node(cli::system::NodeCommand),
    /// SSH keys to install into instances
    #[command(subcommand, name = "ssh-key", visible_alias = "ssh-keys")]
    SshKey(cli::ssh_keys::SshKeyCommand),
    /// SSH into an instance that runs sshd (its address, or a port forward to 22)
    Ssh(cli::ssh_keys::SshArgs),
    /// Sandboxes: ephemeral instances with a TTL, and keys of the E2B-compatible API
    #[command(subcommand, visible_alias = "sandboxes")]
    Sandbox(cli::sandboxes::SandboxCommand),
}

/// Commands that run something inside an instance exit with its exit code.
fn exit_with(code: i32) {
    if code != 0 {
        let _ = std::io::Write::flush(&mut std::io::stdout());
        std::process::exit(code.clamp(0, 255));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server wants every core; a CLI command is a few requests, and a single
    // thread starts faster.
    let runtime = if matches!(cli.command, Command::Server(_)) {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        // A CLI command whose reader goes away (`roost ps | head -1`) ends quietly, as
        // Unix tools do, rather than panicking on the failed write. (The server keeps
        // Rust's ignored SIGPIPE: a client closing a socket is an error to handle.)
        // SAFETY: setting a signal's disposition to its default before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(*args).await,
            Command::Login(args) => cli::auth::login(&cli.global, args).await,
            Command::Logout => cli::auth::logout(&cli.global).await,
            Command::Whoami => cli::auth::whoami(&cli.global).await,
            Command::Passwd(args) => cli::users::passwd(&cli.global, args).await,
            Command::Profile(args) => cli::users::profile(&cli.global, args).await,
            Command::User(cmd) => cli::users::run(&cli.global, cmd).await,
            Command::Project(cmd) => cli::projects::run(&cli.global, cmd).await,
            Command::Audit(cmd) => cli::audit::run(&cli.global, cmd).await,
            Command::Image(cmd) => cli::images::run(&cli.global, cmd).await,
            Command::Instance(cmd) => cli::instances::run(&cli.global, cmd).await,
            Command::Ps(args) => cli::instances::ls(&cli.global, args).await,
            Command::Run(args) => cli::instances::run_once(&cli.global, args).await.map(exit_with),
            Command::Exec(args) => cli::instances::exec(&cli.global, args).await.map(exit_with),
            Command::Console { name } => cli::instances::console(&cli.global, name).await.map(exit_with),
            Command::Logs(args) => cli::instances::logs(&cli.global, args).await,
            Command::Cp(args) => cli::instances::cp(&cli.global, args).await,
            Command::Token(cmd) => cli::tokens::run(&cli.global, cmd).await,
            Command::Network(cmd) => cli::networks::run_network(&cli.global, cmd).await,
            Command::Sg(cmd) => cli::networks::run_sg(&cli.global, cmd).await,
            Command::Port(cmd) => cli::networks::run_port(&cli.global, cmd).await,
            Command::Bucket(cmd) => cli::buckets::run(&cli.global, cmd).await,
            Command::S3Key(cmd) => cli::buckets::run_keys(&cli.global, cmd).await,
            Command::Sandbox(cli::sandboxes::SandboxCommand::Exec(args)) => {
                cli::sandboxes::exec(&cli.global, args).await.map(exit_with)
            }
            Command::Sandbox(cli::sandboxes::SandboxCommand::Files(cmd)) => {
                cli::sandboxes::files(&cli.global, cmd).await.map(exit_with)
            }
            Command::Sandbox(cli::sandboxes::SandboxCommand::Attach { id, pid, interactive }) => {
                cli::sandboxes::attach(&cli.global, id, pid, interactive).await.map(exit_with)
            }
            Command::Sandbox(cmd) => cli::sandboxes::run(&cli.global, cmd).await,
            Command::Operation(cmd) => cli::operations::run(&cli.global, cmd).await,
            Command::Events(args) => cli::events::run(&cli.global, args).await,
            Command::System(cmd) => cli::system::run(&cli.global, cmd).await,
            Command::Volume(cmd) => cli::volumes::run_volume(&cli.global, cmd).await,
            Command::Snapshot(cmd) => cli::volumes::run_snapshot(&cli.global, cmd).await,
            Command::BackupPolicy(cmd) => cli::volumes::run_policy(&cli.global, cmd).await,
            Command::Node(cmd) => cli::system::run_node(&cli.global, cmd).await,
            Command::SshKey(cmd) => cli::ssh_keys::run(&cli.global, cmd).await,
            Command::Ssh(args) => cli::ssh_keys::ssh(&cli.global, args).await.map(exit_with),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", cli::describe_error(&err));
            ExitCode::FAILURE
        }
    }
}
