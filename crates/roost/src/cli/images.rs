//! `roost image ls|show|build|import|rm`.

use roost_api::images::{BuildImageRequest, Image};

use super::output::{ago, print_block, print_list, print_structured, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// List the builtin images and your projects' images
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show an image
    Show { name: String },
    /// Change a project image's description (`--description ''` clears it)
    #[command(visible_alias = "set")]
    Update {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Build a Debian image offline from Debian packages (mmdebstrap), with progress
    Build {
        name: String,
        /// What to build: debian:<suite>
        #[arg(long, default_value = "debian:bookworm")]
        from: String,
        /// Extra packages, comma-separated
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
        /// Return the operation at once
        #[arg(long)]
        no_wait: bool,
    },
    /// Import a root filesystem tarball (.tar, .tar.gz, .tar.zst)
    Import { name: String, file: std::path::PathBuf },
    /// Delete an image no instance uses
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

pub async fn run(global: &GlobalArgs, cmd: ImageCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    match cmd {
        ImageCommand::Ls(page) => {
            let params = roost_api::ProjectListParams { project, ..Default::default() };
            let images: Vec<Image> = page.fetch(&client, "/v1/images", params).await?;
            print_list(global.output, &images, &["name", "id", "source", "status", "size", "created"], |i| {
                vec![
                    i.name.clone(),
                    i.id.clone(),
                    i.source.clone(),
                    i.status.as_str().into(),
                    size(i.size_bytes),
                    ago(Some(i.created_at)),
                ]
            })
        }
        ImageCommand::Show { name } => {
            let i = client.get_image(&name).await?;
            print_block(global.output, &i, &fields(&i))
        }
        ImageCommand::Update { name, description } => {
            let req = roost_api::images::UpdateImageRequest { description: super::patch_text(description) };
            let i = client.update_image(&name, &req).await?;
            print_block(global.output, &i, &fields(&i))
        }
        ImageCommand::Build { name, from, packages, no_wait } => {
            let req = BuildImageRequest { name, from, packages, project };
            let op = client.build_image(&req).await?;
            let op = if no_wait { op } else { super::operations::wait(&client, &op.id).await? };
            if !print_structured(global.output, &op)? {
                match &op.result {
                    Some(r) => {
                        eprintln!("Built image '{}' ({}).", req.name, r["image_id"].as_str().unwrap_or_default())
                    }
                    None if no_wait => eprintln!("Building image '{}': operation {}.", req.name, op.id),
                    None => {}
                }
            }
            super::operations::finished_ok(&op)
        }
        ImageCommand::Import { name, file } => {
            let f = tokio::fs::File::open(&file)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
            let stream = tokio_util::io::ReaderStream::new(f);
            let image = client.import_image(&name, project.as_deref(), reqwest::Body::wrap_stream(stream)).await?;
            if !print_structured(global.output, &image)? {
                eprintln!("Imported image '{}' ({}), {}.", image.name, image.id, size(image.size_bytes));
            }
            Ok(())
        }
        ImageCommand::Rm { name } => {
            let i = client.get_image(&name).await?;
            client.delete_image(&i.id).await?;
            eprintln!("Deleted image '{}' ({}).", i.name, i.id);
            Ok(())
        }
    }
}

fn fields(i: &Image) -> Vec<(&'static str, String)> {
    vec![
        ("name", i.name.clone()),
        ("id", i.id.clone()),
        ("source", i.source.clone()),
        ("from", i.description.clone().unwrap_or_else(|| "-".into())),
        ("status", i.status.as_str().into()),
        ("reason", i.status_reason.clone().unwrap_or_else(|| "-".into())),
        ("digest", i.digest.clone().unwrap_or_else(|| "-".into())),
        ("size", size(i.size_bytes)),
        ("project", i.project_id.clone().unwrap_or_else(|| "(builtin)".into())),
        ("created", when(Some(i.created_at), "-")),
    ]
}
