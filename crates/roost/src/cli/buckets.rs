//! `roost bucket create|ls|show|rm|presign` and `roost s3-key create|ls|show|rm`.

use roost_api::buckets::{Bucket, CreateBucketRequest, CreateS3KeyRequest, PresignMethod, PresignRequest, S3Key};

use super::output::{ago, print_block, print_list, print_structured, until, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum BucketCommand {
    /// Create a bucket in the current project (names are global, as in S3)
    Create {
        name: String,
        /// Let anyone GET objects without a signature (static hosting)
        #[arg(long)]
        public_read: bool,
    },
    /// List buckets: name, objects, size, created
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a bucket
    Show { name: String },
    /// Make a bucket public-read or private, or turn versioning on or off
    #[command(visible_alias = "set")]
    Update {
        name: String,
        /// Anyone may read its objects: on or off
        #[arg(long, value_parser = super::parse_switch)]
        public: Option<bool>,
        /// Versioning: on (Enabled) or off (Suspended)
        #[arg(long, value_parser = super::parse_switch)]
        versioning: Option<bool>,
    },
    /// Delete a bucket (refused while it holds objects, unless --force)
    #[command(visible_alias = "delete")]
    Rm {
        name: String,
        /// Delete its objects too
        #[arg(long)]
        force: bool,
    },
    /// Print a presigned URL for one object (usable with plain curl until it expires)
    Presign {
        bucket: String,
        key: String,
        /// Lifetime, e.g. 15m, 1h, 7d (at most 7d)
        #[arg(long, default_value = "1h")]
        expires: String,
        /// GET to download, PUT to upload
        #[arg(long, value_enum, default_value_t = MethodArg::Get)]
        method: MethodArg,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    #[value(name = "GET", alias = "get")]
    Get,
    #[value(name = "PUT", alias = "put")]
    Put,
}

#[derive(Debug, clap::Subcommand)]
pub enum S3KeyCommand {
    /// Create an S3 access key; its secret is printed once
    Create {
        /// Limit the key to this bucket (repeat for more)
        #[arg(long = "bucket", value_name = "BUCKET")]
        buckets: Vec<String>,
        /// The key may only read
        #[arg(long)]
        read_only: bool,
        /// Free text to recognise the key by
        #[arg(long)]
        description: Option<String>,
    },
    /// List your S3 keys
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show one key
    Show { id: String },
    /// Change a key's description (`--description ''` clears it)
    #[command(visible_alias = "set")]
    Update {
        id: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete (revoke) a key
    #[command(visible_aliases = ["delete", "revoke"])]
    Rm { id: String },
}

/// Bytes for people: B, KiB, MiB, GiB.
pub fn human_size(bytes: i64) -> String {
    let b = bytes as f64;
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b if b < 1 << 30 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        _ => format!("{:.2} GiB", b / (1u64 << 30) as f64),
    }
}

fn bucket_fields(b: &Bucket) -> Vec<(&'static str, String)> {
    vec![
        ("name", b.name.clone()),
        ("id", b.id.clone()),
        ("project", b.project_id.clone()),
        ("objects", b.objects.to_string()),
        ("size", human_size(b.size_bytes)),
        ("public read", if b.public_read { "yes".into() } else { "no".into() }),
        ("versioning", b.versioning.clone().unwrap_or_else(|| "off".into())),
        ("created", when(Some(b.created_at), "-")),
    ]
}

fn key_fields(k: &S3Key) -> Vec<(&'static str, String)> {
    vec![
        ("access key id", k.id.clone()),
        ("description", k.description.clone().unwrap_or_default()),
        ("buckets", if k.buckets.is_empty() { "all".into() } else { k.buckets.join(", ") }),
        ("read only", if k.read_only { "yes".into() } else { "no".into() }),
        ("expires", until(k.expires_at)),
        ("created", when(Some(k.created_at), "-")),
        ("last used", when(k.last_used_at, "never")),
    ]
}

pub async fn run(global: &GlobalArgs, cmd: BucketCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    match cmd {
        BucketCommand::Create { name, public_read } => {
            let req = CreateBucketRequest { name, project, public_read: Some(public_read) };
            let b = client.create_bucket(&req).await?;
            if print_structured(global.output, &b)? {
                return Ok(());
            }
            eprintln!("Created bucket '{}' ({}).", b.name, b.id);
            Ok(())
        }
        BucketCommand::Ls(page) => {
            let params = roost_api::ProjectListParams { project, ..Default::default() };
            let buckets: Vec<roost_api::buckets::Bucket> = page.fetch(&client, "/v1/buckets", params).await?;
            print_list(global.output, &buckets, &["name", "objects", "size", "created"], |b| {
                vec![b.name.clone(), b.objects.to_string(), human_size(b.size_bytes), ago(Some(b.created_at))]
            })
        }
        BucketCommand::Update { name, public, versioning } => {
            let req = roost_api::buckets::UpdateBucketRequest {
                public_read: public,
                versioning: versioning.map(|on| if on { "Enabled" } else { "Suspended" }.to_string()),
            };
            let b = client.update_bucket(&name, &req).await?;
            print_block(global.output, &b, &bucket_fields(&b))
        }
        BucketCommand::Show { name } => {
            let b = client.get_bucket(&name).await?;
            print_block(global.output, &b, &bucket_fields(&b))
        }
        BucketCommand::Rm { name, force } => {
            let b = client.get_bucket(&name).await?;
            client.delete_bucket(&b.id, force).await?;
            eprintln!("Deleted bucket '{}'{}.", b.name, if force { " and its objects" } else { "" });
            Ok(())
        }
        BucketCommand::Presign { bucket, key, expires, method } => {
            let method = match method {
                MethodArg::Get => PresignMethod::Get,
                MethodArg::Put => PresignMethod::Put,
            };
            let url =
                client.presign(&bucket, &PresignRequest { key, method: Some(method), expires: Some(expires) }).await?;
            if print_structured(global.output, &url)? {
                return Ok(());
            }
            println!("{}", url.url);
            Ok(())
        }
    }
}

pub async fn run_keys(global: &GlobalArgs, cmd: S3KeyCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        S3KeyCommand::Create { buckets, read_only, description } => {
            let created = client.create_s3_key(&CreateS3KeyRequest { description, buckets, read_only }).await?;
            if print_structured(global.output, &created)? {
                return Ok(());
            }
            let k = &created.key;
            eprintln!(
                "Created S3 key for {}{}. The secret is not shown again:",
                if k.buckets.is_empty() { "all your buckets".to_string() } else { k.buckets.join(", ") },
                if k.read_only { ", read-only" } else { "" }
            );
            println!("Access key id:     {}", k.id);
            println!("Secret access key: {}", created.secret);
            Ok(())
        }
        S3KeyCommand::Ls(page) => {
            let keys: Vec<roost_api::buckets::S3Key> =
                page.fetch(&client, "/v1/s3-keys", roost_api::ListParams::default()).await?;
            print_list(
                global.output,
                &keys,
                &["access key id", "description", "buckets", "read only", "expires", "created", "last used"],
                |k| {
                    vec![
                        k.id.clone(),
                        k.description.clone().unwrap_or_default(),
                        if k.buckets.is_empty() && k.bucket_ids.is_empty() {
                            "all".into()
                        } else {
                            k.buckets.join(",")
                        },
                        if k.read_only { "yes".into() } else { "no".into() },
                        until(k.expires_at),
                        ago(Some(k.created_at)),
                        k.last_used_at.map(|l| ago(Some(l))).unwrap_or_else(|| "never".into()),
                    ]
                },
            )
        }
        S3KeyCommand::Show { id } => {
            let k = client.get_s3_key(&id).await?;
            print_block(global.output, &k, &key_fields(&k))
        }
        S3KeyCommand::Update { id, description } => {
            let req = roost_api::buckets::UpdateS3KeyRequest { description: super::patch_text(description) };
            let k = client.update_s3_key(&id, &req).await?;
            print_block(global.output, &k, &key_fields(&k))
        }
        S3KeyCommand::Rm { id } => {
            client.delete_s3_key(&id).await?;
            eprintln!("Deleted S3 key {id}; it no longer works.");
            Ok(())
        }
    }
}
