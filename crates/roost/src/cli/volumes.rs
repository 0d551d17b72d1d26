//! `roost volume …`, `roost snapshot …` and `roost backup-policy …`.

use anyhow::Context;
use roost_api::volumes::{
    AttachVolumeRequest, BackupPolicy, CreateBackupPolicyRequest, CreateSnapshotRequest, CreateVolumeRequest,
    Effective, Snapshot, Volume, VolumeListParams, VolumeStatus,
};

use super::buckets::human_size;
use super::output::{ago, print_block, print_list, print_structured, until, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// Create a volume: `roost volume create data --size 10g [--format ext4]`, or a clone
    /// of a snapshot with --from-snapshot
    Create {
        name: String,
        /// Capacity, e.g. 512m, 10g (default with --from-snapshot: the snapshot's)
        #[arg(long)]
        size: Option<String>,
        /// The filesystem (ext4)
        #[arg(long)]
        format: Option<String>,
        /// Start from this snapshot (a clone)
        #[arg(long, value_name = "SNAPSHOT")]
        from_snapshot: Option<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a volume
    Show { name: String },
    /// Rename a volume
    #[command(visible_alias = "set")]
    Update {
        name: String,
        /// The new name
        #[arg(long = "name", value_name = "NEW_NAME")]
        new_name: Option<String>,
    },
    /// Grow a volume and its filesystem (also while attached and running)
    Resize {
        name: String,
        #[arg(long)]
        size: String,
    },
    /// Remove a volume and its data (refused while attached)
    #[command(visible_alias = "delete")]
    Rm { name: String },
    /// Attach to an instance at a path (to a running container at once)
    Attach {
        name: String,
        instance: String,
        #[arg(long)]
        path: String,
        #[arg(long)]
        read_only: bool,
    },
    /// Detach from its instance (refused while files are open, unless --force)
    Detach {
        name: String,
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Replace the content with a snapshot's (volume detached or instance stopped)
    Restore {
        name: String,
        #[arg(long)]
        snapshot: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a volume (crash-consistent while attached)
    Create {
        volume: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List snapshots (of one volume, or all)
    #[command(visible_alias = "list")]
    Ls {
        volume: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a snapshot
    Show { name: String },
    /// Rename a snapshot or change its description (`--description ''` clears it)
    #[command(visible_alias = "set")]
    Update {
        name: String,
        /// The new name
        #[arg(long = "name", value_name = "NEW_NAME")]
        new_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a snapshot
    #[command(visible_alias = "delete")]
    Rm { name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupPolicyCommand {
    /// Snapshots on a schedule: `roost backup-policy create nightly --volume data --cron "0 2 * * *" --keep 7`
    Create {
        name: String,
        #[arg(long)]
        volume: String,
        /// Five-field cron expression, UTC
        #[arg(long)]
        cron: String,
        /// Snapshots kept (the oldest beyond are removed after each run)
        #[arg(long)]
        keep: u32,
    },
    /// List policies: last run, result, next run
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a policy
    Show { name: String },
    /// Rename a policy, or change its schedule or how many it keeps
    #[command(visible_alias = "set")]
    Update {
        name: String,
        /// The new name
        #[arg(long = "name", value_name = "NEW_NAME")]
        new_name: Option<String>,
        /// Five-field cron expression, UTC
        #[arg(long)]
        cron: Option<String>,
        /// Snapshots kept
        #[arg(long)]
        keep: Option<u32>,
    },
    /// Remove a policy (its snapshots stay)
    #[command(visible_alias = "delete")]
    Rm { name: String },
    /// Run a policy now
    Run { name: String },
}

fn size_arg(flag: &str, s: &str) -> anyhow::Result<u64> {
    roost_api::parse_size(s).with_context(|| format!("--{flag} '{s}': expected a size like 512m or 10g"))
}

fn status(v: &Volume) -> &'static str {
    match v.status {
        VolumeStatus::Available => "available",
        VolumeStatus::Attached => "attached",
    }
}

fn volume_block(global: &GlobalArgs, v: &Volume) -> anyhow::Result<()> {
    print_block(
        global.output,
        v,
        &[
            ("name", v.name.clone()),
            ("id", v.id.clone()),
            ("size", human_size(v.size_bytes as i64)),
            ("used", human_size(v.used_bytes as i64)),
            ("filesystem", v.filesystem.clone()),
            ("format", v.format.clone()),
            ("status", status(v).into()),
            ("instance", v.instance.clone().unwrap_or_default()),
            ("path", v.mount_path.clone().unwrap_or_default()),
            ("read only", v.read_only.to_string()),
            ("cloned from", v.cloned_from.clone().unwrap_or_default()),
            ("created", ago(Some(v.created_at))),
        ],
    )
}

pub async fn run_volume(global: &GlobalArgs, cmd: VolumeCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    let project = project.as_deref();
    match cmd {
        VolumeCommand::Create { name, size, format, from_snapshot } => {
            let size_bytes = size.as_deref().map(|s| size_arg("size", s)).transpose()?;
            if size_bytes.is_none() && from_snapshot.is_none() {
                anyhow::bail!("--size is required (or --from-snapshot)");
            }
            let req = CreateVolumeRequest { name, size_bytes, format, from_snapshot, project: project.map(Into::into) };
            let v = client.create_volume(&req).await?;
            if !print_structured(global.output, &v)? {
                println!("{}", v.id);
                eprintln!("Created volume '{}' ({}, {}).", v.name, human_size(v.size_bytes as i64), v.filesystem);
            }
            Ok(())
        }
        VolumeCommand::Ls(page) => {
            let params = VolumeListParams { project: project.map(str::to_string), ..Default::default() };
            let items: Vec<Volume> = page.fetch(&client, "/v1/volumes", params).await?;
            print_list(
                global.output,
                &items,
                &["name", "id", "size", "used", "status", "instance", "path", "age"],
                |v| {
                    vec![
                        v.name.clone(),
                        v.id.clone(),
                        human_size(v.size_bytes as i64),
                        human_size(v.used_bytes as i64),
                        status(v).into(),
                        v.instance.clone().unwrap_or_default(),
                        v.mount_path.clone().unwrap_or_default(),
                        ago(Some(v.created_at)),
                    ]
                },
            )
        }
        VolumeCommand::Show { name } => volume_block(global, &client.get_volume(&name, project).await?),
        VolumeCommand::Update { name, new_name } => {
            let req = roost_api::volumes::UpdateVolumeRequest { name: new_name };
            volume_block(global, &client.update_volume(&name, project, &req).await?)
        }
        VolumeCommand::Resize { name, size } => {
            let v = client.resize_volume(&name, size_arg("size", &size)?, project).await?;
            if !print_structured(global.output, &v)? {
                eprintln!("Volume '{}' is now {}.", v.name, human_size(v.size_bytes as i64));
            }
            Ok(())
        }
        VolumeCommand::Rm { name } => {
            client.delete_volume(&name, project).await?;
            eprintln!("Removed volume '{name}'.");
            Ok(())
        }
        VolumeCommand::Attach { name, instance, path, read_only } => {
            let req =
                AttachVolumeRequest { instance: instance.clone(), path: path.clone(), read_only: Some(read_only) };
            let r = client.attach_volume(&name, &req, project).await?;
            if !print_structured(global.output, &r)? {
                match r.effective {
                    Effective::Now => eprintln!("Attached '{name}' to '{instance}' at {path}: in use now."),
                    Effective::NextStart => eprintln!(
                        "Attached '{name}' to '{instance}' at {path}: it appears when the instance next starts."
                    ),
                }
            }
            Ok(())
        }
        VolumeCommand::Detach { name, force } => {
            let v = client.detach_volume(&name, force, project).await?;
            if !print_structured(global.output, &v)? {
                eprintln!("Detached '{}'.", v.name);
            }
            Ok(())
        }
        VolumeCommand::Restore { name, snapshot } => {
            let v = client.restore_volume(&name, &snapshot, project).await?;
            if !print_structured(global.output, &v)? {
                eprintln!("Restored '{}' from snapshot '{snapshot}'.", v.name);
            }
            Ok(())
        }
    }
}

fn snapshot_row(s: &Snapshot) -> Vec<String> {
    vec![
        s.name.clone(),
        s.id.clone(),
        s.volume.clone().unwrap_or_else(|| s.volume_id.clone()),
        human_size(s.size_bytes as i64),
        human_size(s.stored_bytes as i64),
        s.description.clone().unwrap_or_default(),
        ago(Some(s.created_at)),
    ]
}

pub async fn run_snapshot(global: &GlobalArgs, cmd: SnapshotCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    match cmd {
        SnapshotCommand::Create { volume, name, description } => {
            let req = CreateSnapshotRequest { volume, name, description, project: project.clone() };
            let s = client.create_snapshot(&req).await?;
            if !print_structured(global.output, &s)? {
                println!("{}", s.id);
                eprintln!("Snapshot '{}' of '{}' taken.", s.name, s.volume.clone().unwrap_or_default());
            }
            Ok(())
        }
        SnapshotCommand::Ls { volume, page } => {
            let params = VolumeListParams { project: project.clone(), volume, ..Default::default() };
            let items: Vec<Snapshot> = page.fetch(&client, "/v1/snapshots", params).await?;
            print_list(
                global.output,
                &items,
                &["name", "id", "volume", "size", "stored", "description", "age"],
                snapshot_row,
            )
        }
        SnapshotCommand::Show { name } => {
            let s = client.get_snapshot(&name, project.as_deref()).await?;
            let fields = ["name", "id", "volume", "size", "stored", "description", "created"];
            let values = snapshot_row(&s);
            let pairs: Vec<(&str, String)> = fields.iter().copied().zip(values).collect();
            print_block(global.output, &s, &pairs)
        }
        SnapshotCommand::Update { name, new_name, description } => {
            let req = roost_api::volumes::UpdateSnapshotRequest {
                name: new_name,
                description: super::patch_text(description),
            };
            let s = client.update_snapshot(&name, project.as_deref(), &req).await?;
            let fields = ["name", "id", "volume", "size", "stored", "description", "created"];
            let pairs: Vec<(&str, String)> = fields.iter().copied().zip(snapshot_row(&s)).collect();
            print_block(global.output, &s, &pairs)
        }
        SnapshotCommand::Rm { name } => {
            client.delete_snapshot(&name, project.as_deref()).await?;
            eprintln!("Removed snapshot '{name}'.");
            Ok(())
        }
    }
}

fn policy_row(p: &BackupPolicy) -> Vec<String> {
    vec![
        p.name.clone(),
        p.volume.clone(),
        p.cron.clone(),
        p.keep.to_string(),
        p.snapshot_count.to_string(),
        when(p.last_run_at, "never"),
        match (&p.last_result, &p.last_error) {
            (Some(r), Some(e)) => format!("{r}: {e}"),
            (Some(r), None) => r.clone(),
            _ => "-".into(),
        },
        until(p.next_run_at),
    ]
}

const POLICY_FIELDS: [&str; 8] = ["name", "volume", "cron", "keep", "snapshots", "last run", "result", "next run"];

pub async fn run_policy(global: &GlobalArgs, cmd: BackupPolicyCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    match cmd {
        BackupPolicyCommand::Create { name, volume, cron, keep } => {
            let req = CreateBackupPolicyRequest { name, volume, cron, keep, project: project.clone() };
            let p = client.create_backup_policy(&req).await?;
            if !print_structured(global.output, &p)? {
                eprintln!("Created backup policy '{}': next run {}.", p.name, until(p.next_run_at));
            }
            Ok(())
        }
        BackupPolicyCommand::Ls(page) => {
            let params = VolumeListParams { project: project.clone(), ..Default::default() };
            let items: Vec<BackupPolicy> = page.fetch(&client, "/v1/backup-policies", params).await?;
            print_list(global.output, &items, &POLICY_FIELDS, policy_row)
        }
        BackupPolicyCommand::Show { name } => {
            let p = client.get_backup_policy(&name, project.as_deref()).await?;
            let pairs: Vec<(&str, String)> = POLICY_FIELDS.iter().copied().zip(policy_row(&p)).collect();
            print_block(global.output, &p, &pairs)
        }
        BackupPolicyCommand::Update { name, new_name, cron, keep } => {
            let req = roost_api::volumes::UpdateBackupPolicyRequest { name: new_name, cron, keep };
            let p = client.update_backup_policy(&name, project.as_deref(), &req).await?;
            let pairs: Vec<(&str, String)> = POLICY_FIELDS.iter().copied().zip(policy_row(&p)).collect();
            print_block(global.output, &p, &pairs)
        }
        BackupPolicyCommand::Rm { name } => {
            client.delete_backup_policy(&name, project.as_deref()).await?;
            eprintln!("Removed backup policy '{name}'.");
            Ok(())
        }
        BackupPolicyCommand::Run { name } => {
            let p = client.run_backup_policy(&name, project.as_deref()).await?;
            if !print_structured(global.output, &p)? {
                match p.last_result.as_deref() {
                    Some("success") => {
                        eprintln!("Backup '{}' succeeded ({} snapshots kept).", p.name, p.snapshot_count)
                    }
                    _ => anyhow::bail!(
                        "backup '{}' failed: {}",
                        p.name,
                        p.last_error.clone().unwrap_or_else(|| "unknown error".into())
                    ),
                }
            }
            Ok(())
        }
    }
}
