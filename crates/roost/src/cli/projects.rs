//! `roost project …`: tenancy.

use std::collections::BTreeMap;

use anyhow::bail;
use roost_api::ListParams;
use roost_api::projects::{CreateProjectRequest, Project, Quota};

use super::output::{ago, print_block, print_list, print_structured, when};
use super::users::RoleArg;
use super::{ClientConfig, GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum ProjectCommand {
    /// Create a project (admins)
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the projects you belong to (admins: all)
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a project
    Show { name: String },
    /// Delete an empty project (admins)
    #[command(visible_alias = "delete")]
    Rm { name: String },
    /// Make a project the current one for later commands (saved in the CLI config)
    Use { name: String },
    /// List a project's members
    Members {
        name: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Add a user to a project, or change their role there (admins)
    AddMember {
        project: String,
        user: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Viewer)]
        role: RoleArg,
    },
    /// Remove a user from a project (admins)
    RemoveMember { project: String, user: String },
    /// Show or set a project's quota
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// What a project uses against its quota
    Usage { name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum QuotaCommand {
    /// Show the limits
    Show { project: String },
    /// Set limits (admins); `none` removes one
    Set {
        project: String,
        #[arg(long)]
        instances: Option<String>,
        #[arg(long)]
        vcpus: Option<String>,
        /// Memory, e.g. 16g
        #[arg(long)]
        memory: Option<String>,
        /// Volume size in GiB
        #[arg(long)]
        volume_gib: Option<String>,
        #[arg(long)]
        buckets: Option<String>,
        /// Bucket storage in GiB
        #[arg(long)]
        bucket_gib: Option<String>,
    },
}

fn limit(flag: &str, text: &str, size: bool) -> anyhow::Result<Option<i64>> {
    if text == "none" || text == "unlimited" {
        return Ok(None);
    }
    let value = if size { roost_api::parse_size(text) } else { text.parse::<u64>().ok() };
    match value {
        Some(v) => Ok(Some(v as i64)),
        None if size => bail!("--{flag}: '{text}' is not a size like 16g or 512m (or none)"),
        None => bail!("--{flag}: '{text}' is not a whole number (or none)"),
    }
}

pub async fn run(global: &GlobalArgs, cmd: ProjectCommand) -> anyhow::Result<()> {
    if let ProjectCommand::Use { name } = &cmd {
        let client = global.client()?;
        let project = client.get_project(name).await?;
        let mut config = ClientConfig::load()?;
        config.project = Some(project.name.clone());
        config.save()?;
        eprintln!("Now using project '{}' ({}).", project.name, project.id);
        return Ok(());
    }
    let client = global.client()?;
    match cmd {
        ProjectCommand::Create { name, description } => {
            let p = client.create_project(&CreateProjectRequest { name, description }).await?;
            if !print_structured(global.output, &p)? {
                eprintln!("Created project '{}' ({}).", p.name, p.id);
            }
            Ok(())
        }
        ProjectCommand::Ls(page) => {
            let params = ListParams { sort: Some("name".into()), ..Default::default() };
            let items: Vec<Project> = page.fetch(&client, "/v1/projects", params).await?;
            let current = global.project_name()?;
            print_list(global.output, &items, &["name", "id", "description", "created"], |p| {
                let marker = if current.as_deref() == Some(p.name.as_str()) { " *" } else { "" };
                vec![
                    format!("{}{marker}", p.name),
                    p.id.clone(),
                    p.description.clone().unwrap_or_else(|| "-".into()),
                    ago(Some(p.created_at)),
                ]
            })
        }
        ProjectCommand::Show { name } => {
            let p = client.get_project(&name).await?;
            print_block(global.output, &p, &project_fields(&p))
        }
        ProjectCommand::Rm { name } => {
            let p = client.get_project(&name).await?;
            client.delete_project(&p.id).await?;
            eprintln!("Deleted project '{}' ({}).", p.name, p.id);
            Ok(())
        }
        ProjectCommand::Use { .. } => unreachable!("handled above"),
        ProjectCommand::Members { name, page } => {
            let params = ListParams { sort: Some("name".into()), ..Default::default() };
            let path = format!("/v1/projects/{}/members", roost_client::encode(&name));
            let members: Vec<roost_api::projects::Member> = page.fetch(&client, &path, params).await?;
            print_list(global.output, &members, &["user", "id", "role", "added"], |m| {
                vec![m.user_name.clone(), m.user_id.clone(), m.role.as_str().into(), ago(Some(m.added_at))]
            })
        }
        ProjectCommand::AddMember { project, user, role } => {
            let m = client.set_member(&project, &user, role.into()).await?;
            eprintln!("'{}' is now {} in project '{project}'.", m.user_name, m.role.as_str());
            Ok(())
        }
        ProjectCommand::RemoveMember { project, user } => {
            client.remove_member(&project, &user).await?;
            eprintln!("Removed '{user}' from project '{project}'.");
            Ok(())
        }
        ProjectCommand::Quota(QuotaCommand::Show { project }) => {
            let q = client.quota(&project).await?;
            print_quota(global, &q)
        }
        ProjectCommand::Quota(QuotaCommand::Set {
            project,
            instances,
            vcpus,
            memory,
            volume_gib,
            buckets,
            bucket_gib,
        }) => {
            let mut limits = BTreeMap::new();
            for (key, flag, value, size) in [
                ("instances", "instances", instances, false),
                ("vcpus", "vcpus", vcpus, false),
                ("memory_bytes", "memory", memory, true),
                ("volume_gib", "volume-gib", volume_gib, false),
                ("buckets", "buckets", buckets, false),
                ("bucket_gib", "bucket-gib", bucket_gib, false),
            ] {
                if let Some(v) = value {
                    limits.insert(key.to_string(), limit(flag, &v, size)?);
                }
            }
            if limits.is_empty() {
                bail!("give at least one limit, e.g. --instances 10 --memory 16g");
            }
            let q = client.set_quota(&project, &Quota { limits }).await?;
            print_quota(global, &q)
        }
        ProjectCommand::Usage { name } => {
            let usage = client.usage(&name).await?;
            if print_structured(global.output, &usage)? {
                return Ok(());
            }
            let rows: Vec<_> = usage.resources.into_iter().collect();
            print_list(global.output, &rows, &["resource", "used", "limit"], |(name, line)| {
                vec![
                    name.clone(),
                    amount(name, line.used),
                    line.limit.map(|l| amount(name, l)).unwrap_or_else(|| "unlimited".into()),
                ]
            })
        }
    }
}

/// The names of the projects the caller sees, by id (for PROJECT columns); empty if
/// they cannot be listed (the column then shows ids).
pub async fn names_by_id(client: &roost_client::Client) -> std::collections::HashMap<String, String> {
    let params = ListParams { limit: Some(1000), ..Default::default() };
    roost_client::all_pages(params, |p| async move { client.list_projects(&p).await })
        .await
        .map(|items| items.into_iter().map(|p| (p.id, p.name)).collect())
        .unwrap_or_default()
}

/// A quota or usage amount as people read it: sizes in binary units (`16 GiB`).
fn amount(resource: &str, value: i64) -> String {
    if resource.ends_with("_bytes") && value >= 0 {
        super::output::bytes(value as u64)
    } else if resource.ends_with("_gib") {
        format!("{value} GiB")
    } else {
        value.to_string()
    }
}

fn print_quota(global: &GlobalArgs, q: &Quota) -> anyhow::Result<()> {
    let fields: Vec<(&str, String)> = roost_api::projects::QUOTA_RESOURCES
        .iter()
        .map(|(name, _)| {
            let limit = q.limits.get(*name).copied().flatten();
            (*name, limit.map(|v| amount(name, v)).unwrap_or_else(|| "unlimited".into()))
        })
        .collect();
    print_block(global.output, q, &fields)
}

fn project_fields(p: &Project) -> Vec<(&'static str, String)> {
    vec![
        ("name", p.name.clone()),
        ("id", p.id.clone()),
        ("description", p.description.clone().unwrap_or_else(|| "-".into())),
        ("created", when(Some(p.created_at), "-")),
    ]
}
