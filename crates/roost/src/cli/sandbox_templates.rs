//! `roost sandbox template ls|show|build|rm`: sandbox templates built from a base
//! template plus setup commands, with a content-addressed build cache.

use roost_api::sandbox_templates::{BuildSandboxTemplateRequest, SandboxTemplate, SandboxTemplateBuild};

use super::output::{ago, print_block, print_list, print_structured, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum SandboxTemplateCommand {
    /// List the builtin templates and your projects' templates, with cache hits/misses
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a template: cache key, commands, counters and its last build's output
    Show { name: String },
    /// Build a template: the base's filesystem, each --run command in order (`sh -c`, in
    /// a throwaway container with network), then a snapshot. The same base and commands
    /// again is a cache hit: nothing runs.
    Build {
        name: String,
        /// The base template (builtin `base`, `code-interpreter-v1`, or one of yours)
        #[arg(long, default_value = "base")]
        from: String,
        /// A setup command (repeatable; run in order)
        #[arg(long = "run", value_name = "CMD", required = true)]
        run: Vec<String>,
        /// Return the operation at once
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete a built template (refused while sandboxes use it)
    #[command(visible_alias = "delete")]
    Rm { name: String },
}

fn size(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

fn short(digest: Option<&String>) -> String {
    digest.map(|d| d.chars().take(12).collect()).unwrap_or_else(|| "-".into())
}

fn fields(t: &SandboxTemplate) -> Vec<(&'static str, String)> {
    vec![
        ("name", t.name.clone()),
        ("id", t.id.clone()),
        ("project", t.project_id.clone().unwrap_or_else(|| "(builtin)".into())),
        ("status", t.status.as_str().into()),
        ("base", t.base.clone().unwrap_or_else(|| "-".into())),
        ("cache key", t.cache_key.clone().unwrap_or_else(|| "-".into())),
        ("digest", t.digest.clone().unwrap_or_else(|| "-".into())),
        ("commands", if t.commands.is_empty() { "-".into() } else { t.commands.join("\n") }),
        ("size", size(t.size_bytes)),
        ("hits", t.hits.to_string()),
        ("misses", t.misses.to_string()),
        ("build", t.build_seconds.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into())),
        ("last used", when(t.last_used_at, "-")),
        ("created", when(Some(t.created_at), "-")),
    ]
}

pub async fn run(global: &GlobalArgs, cmd: SandboxTemplateCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    match cmd {
        SandboxTemplateCommand::Ls(page) => {
            let params = roost_api::ProjectListParams { project, ..Default::default() };
            let items: Vec<roost_api::sandbox_templates::SandboxTemplate> =
                page.fetch(&client, "/v1/sandbox-templates", params).await?;
            print_list(
                global.output,
                &items,
                &["name", "base", "cache key", "commands", "size", "status", "hits", "misses", "last used"],
                |t| {
                    vec![
                        t.name.clone(),
                        t.base.clone().unwrap_or_else(|| if t.builtin { "(builtin)".into() } else { "-".into() }),
                        short(t.cache_key.as_ref()),
                        t.commands.len().to_string(),
                        size(t.size_bytes),
                        t.status.as_str().into(),
                        t.hits.to_string(),
                        t.misses.to_string(),
                        ago(t.last_used_at),
                    ]
                },
            )
        }
        SandboxTemplateCommand::Show { name } => {
            let t = client.get_sandbox_template(&name, project.as_deref()).await?;
            if print_structured(global.output, &t)? {
                return Ok(());
            }
            print_block(global.output, &t.template, &fields(&t.template))?;
            if !t.build_log.is_empty() {
                println!("\nlast build's output:\n{}", t.build_log.trim_end());
            }
            Ok(())
        }
        SandboxTemplateCommand::Build { name, from, run, no_wait } => {
            let req = BuildSandboxTemplateRequest { name, from: Some(from), run, project };
            let op = client.build_sandbox_template(&req).await?;
            let op = if no_wait { op } else { super::operations::wait(&client, &op.id).await? };
            if print_structured(global.output, &op)? {
                return super::operations::finished_ok(&op);
            }
            super::operations::finished_ok(&op)?;
            match op.result.clone().and_then(|r| serde_json::from_value::<SandboxTemplateBuild>(r).ok()) {
                Some(b) => {
                    let t = &b.template;
                    let steps = if b.cache == "miss" && b.cached_steps > 0 {
                        format!(" ({} of {} commands from the cache)", b.cached_steps, t.commands.len())
                    } else {
                        String::new()
                    };
                    println!(
                        "cache: {}{steps} — template '{}' ({}), key {}, {} (hits {}, misses {})",
                        b.cache,
                        t.name,
                        t.id,
                        short(t.cache_key.as_ref()),
                        size(t.size_bytes),
                        t.hits,
                        t.misses
                    );
                }
                None => eprintln!("Building template '{}': operation {}.", req.name, op.id),
            }
            Ok(())
        }
        SandboxTemplateCommand::Rm { name } => {
            client.delete_sandbox_template(&name, project.as_deref()).await?;
            eprintln!("Deleted template '{name}'.");
            Ok(())
        }
    }
}
